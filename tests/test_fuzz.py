"""Bounded fuzz: mutated corpus files through ingest, preprocess, grid and assemble.

Whatever the bytes, the only exception allowed out is a ScanformsError (the clean,
reported error); no OCR runs, so a few dozen examples take seconds.
"""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from pipeline import assemble, grid, ingest, preprocess
from pipeline.errors import ScanformsError
from pipeline.types import PageResult

RAW = Path(__file__).resolve().parents[1] / "data" / "raw"


def _table_page() -> np.ndarray:
    img = np.full((300, 240), 255, np.uint8)
    for x in (20, 120, 220):
        cv2.line(img, (x, 40), (x, 260), 0, 2)
    for y in (40, 110, 180, 260):
        cv2.line(img, (20, y), (220, y), 0, 2)
    cv2.putText(img, "2023", (30, 80), cv2.FONT_HERSHEY_SIMPLEX, 0.8, 0, 2)
    return img


def _encode(fmt: str) -> bytes:
    buf = io.BytesIO()
    im = Image.fromarray(_table_page())
    if fmt == "TIFF":  # a 2-page 1-bit TIFF, as fax-style archives hold
        im = im.convert("1")
        im.save(buf, format=fmt, save_all=True, append_images=[im], compression="group4")
    else:
        im.save(buf, format=fmt)
    return buf.getvalue()


CORPUS = {
    "scan.pdf": (RAW / "d030.pdf").read_bytes(),
    "table.png": _encode("PNG"),
    "table.jpg": _encode("JPEG"),
    "table.tif": _encode("TIFF"),
}


def _pipeline(path: Path) -> None:
    """ingest -> preprocess -> grid -> assemble, without OCR (at most 2 pages, low DPI)."""
    pages = []
    for page in itertools.islice(ingest.iter_pages(path, dpi=40), 2):
        prepared = preprocess.prepare(page, None)
        grids = grid.find_grids(prepared.binary, prepared.scale)
        pages.append(PageResult(prepared=prepared, grids=grids, free_lines=[]))
    assemble.split_forms(pages)


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, bytes]:
    name = draw(st.sampled_from(sorted(CORPUS)))
    data = bytearray(CORPUS[name])
    # mostly the first few KB: headers, IHDR/IFD, the PDF's first objects; sometimes anywhere
    for _ in range(draw(st.integers(1, 8))):
        hi = max(0, draw(st.sampled_from([min(len(data), 2048), len(data)])) - 1)
        lo = draw(st.sampled_from([0, min(8, hi)]))  # past the magic number half the time: go deeper
        i = draw(st.integers(lo, hi))
        op = draw(st.sampled_from(["set", "insert", "delete", "truncate"]))
        if op == "set" and i < len(data):
            data[i] = draw(st.integers(0, 255))
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[i : i + draw(st.integers(1, 64))]
        elif op == "truncate" and draw(st.booleans()):
            del data[max(8, i) :]
    return name, bytes(data)


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI is reproducible
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=mutated())
def test_mutated_files_fail_cleanly(tmp_path: Path, case: tuple[str, bytes]) -> None:
    name, data = case
    f = tmp_path / name
    f.write_bytes(data)
    try:
        _pipeline(f)
    except ScanformsError as e:
        assert e.path == f and e.reason  # names the file, says why
    assert ingest.count_pages(f) >= 0  # the progress count never raises


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus_files_go_through(tmp_path: Path, name: str) -> None:
    """The unmutated files run clean (so the fuzz test exercises the pipeline, not just error paths)."""
    f = tmp_path / name
    f.write_bytes(CORPUS[name])
    _pipeline(f)
