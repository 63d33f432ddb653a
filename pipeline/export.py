"""Export: records to JSON files (atomically), and overlay pictures of what was read."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .errors import OutputError
from .types import FormRecord, PageResult


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, then rename: a crash leaves old or new, never half."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise OutputError(path.parent, f"output folder not writable ({e.strerror or e})") from e
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def record_file(out_dir: Path, input_path: Path) -> Path:
    """`<out>/<input name>.json` (the name keeps its suffix: a.pdf -> a.pdf.json would be ugly)."""
    return out_dir / f"{input_path.stem}.json"


def write_records(out_dir: Path, input_path: Path, records: list[FormRecord]) -> Path:
    path = record_file(out_dir, input_path)
    data = [r.to_json() for r in records]
    atomic_write_text(path, json.dumps(data, ensure_ascii=False, indent=1))
    return path


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> None:
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))


def confidence_colour(conf: float) -> tuple[int, int, int]:
    """BGR: red below 0.5, through amber, to green at 1.0."""
    c = float(min(1.0, max(0.0, conf)))
    if c < 0.5:
        return (0, 0, 220)
    t = (c - 0.5) / 0.5
    return (0, int(80 + 140 * t), int(220 * (1 - t)))


def overlay_image(page: PageResult) -> np.ndarray:
    """The deskewed page with the detected grid, each cell tinted by its OCR confidence."""
    import cv2

    img = page.prepared.image
    base = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR) if img.ndim == 2 else img.copy()
    tint = base.copy()
    for g in page.grids:
        for c in g.cells:
            x0, y0, x1, y1 = c.bbox
            if c.text:
                cv2.rectangle(tint, (x0, y0), (x1, y1), confidence_colour(c.confidence), -1)
    out = cv2.addWeighted(tint, 0.28, base, 0.72, 0)
    for g in page.grids:
        for c in g.cells:
            x0, y0, x1, y1 = c.bbox
            cv2.rectangle(out, (x0, y0), (x1, y1), (200, 90, 0), 2)
    for t in page.free_lines:
        x0, y0, x1, y1 = t.bbox
        cv2.rectangle(out, (x0, y0), (x1, y1), (160, 160, 160), 1)
    return out


def write_overlay(out_dir: Path, input_path: Path, page: PageResult) -> Path:
    import cv2

    path = out_dir / "overlays" / f"{input_path.stem}-p{page.page_no}.png"
    ok, buf = cv2.imencode(".png", overlay_image(page))
    if not ok:
        raise OutputError(path, "could not encode overlay PNG")
    atomic_write_bytes(path, buf.tobytes())
    return path
