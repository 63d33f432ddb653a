"""Archive outputs (--pdf, --xlsx): the real pipeline (OCR from tests/ocr_cache), real pikepdf,
pdftotext and qpdf (poppler-utils, qpdf: `.ci/run` installs them), pypdf and openpyxl.

The main fixture runs `scanforms run` twice on a scan we ship (d025) and, where the shared dev
corpus is present, a garbled-layer file (d034): first without the flags, then with them, so the
archive outputs come from the per-file outputs of skipped files, no page read again.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipeline import archive_pdf, preprocess
from pipeline.layout import iter_record_cells, value_text

REPO = Path(__file__).resolve().parents[1]
DEV = REPO.parent / "shared" / "corpus" / "dev"
SAMPLE = REPO / "data" / "raw" / "d025.pdf"
GARBLED = DEV / "d034.pdf"  # a latin1-garbled text layer over a scan (its OCR is in tests/ocr_cache)
CACHE = REPO / "tests" / "ocr_cache"

needs_tools = pytest.mark.skipif(not (shutil.which("pdftotext") and shutil.which("qpdf")),
                                 reason="poppler-utils / qpdf not installed (.ci/run installs them)")


def _run(inputs: list[Path], out: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    import os

    env = dict(os.environ, SCANFORMS_OCR_CACHE=str(CACHE))
    return subprocess.run([sys.executable, "-m", "pipeline.cli", "run", *map(str, inputs), "--out", str(out), "-q",
                           *flags], cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=True)


@pytest.fixture(scope="module")
def archived(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path], dict[str, Any]]:
    out = tmp_path_factory.mktemp("archive")
    inputs = [SAMPLE] + ([GARBLED] if GARBLED.exists() else [])
    _run(inputs, out)
    assert not (out / "pdf").exists()
    _run(inputs, out, "--pdf", "--xlsx")
    report = json.loads((out / "run_report.json").read_text(encoding="utf-8"))
    return out, inputs, report


def _records(out: Path, stem: str) -> list[dict[str, Any]]:
    return json.loads((out / f"{stem}.json").read_text(encoding="utf-8"))


def _squash(s: str) -> str:
    return re.sub(r"\s+", "", s)


def _pdftotext(pdf: Path, page: int) -> str:
    return subprocess.run(["pdftotext", "-f", str(page), "-l", str(page), "-enc", "UTF-8", str(pdf), "-"],
                          capture_output=True, text=True, check=True).stdout


def _pypdf_text(pdf: Path) -> list[str]:
    import pypdf

    return [p.extract_text() or "" for p in pypdf.PdfReader(pdf).pages]


@pytest.mark.slow  # a real pipeline run over whole files
def test_rerun_with_flags_reads_no_page(archived: tuple[Path, list[Path], dict[str, Any]]) -> None:
    out, inputs, report = archived
    assert report["processed"] == 0 and report["skipped"] == len(inputs)
    for path in inputs:
        assert (out / "pdf" / f"{path.stem}.pdf").exists() and (out / "xlsx" / f"{path.stem}.xlsx").exists()
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text(encoding="utf-8").splitlines()]
    assert all("pdf 1 xlsx 1" in e["pipeline"] for e in manifest)


def _archive_pdfs(archived: tuple[Path, list[Path], dict[str, Any]]) -> list[tuple[Path, Path]]:
    """(input, its archive PDF) of the archived run."""
    out, inputs, _ = archived
    return [(path, out / "pdf" / f"{path.stem}.pdf") for path in inputs]


@pytest.mark.slow  # a real pipeline run over whole files
@needs_tools
def test_pdf_text_has_every_value_on_its_page(archived: tuple[Path, list[Path], dict[str, Any]]) -> None:
    out = archived[0]
    for path, pdf in _archive_pdfs(archived):
        by_pypdf = [_squash(t) for t in _pypdf_text(pdf)]
        by_poppler = [_squash(_pdftotext(pdf, i + 1)) for i in range(len(by_pypdf))]
        n = 0
        for rec in _records(out, path.stem):
            for _s, _r, key, cell in iter_record_cells(rec):
                text = _squash(value_text(cell))
                if not text:
                    continue
                n += 1
                page = cell["page"] - 1
                assert text in by_poppler[page], (path.name, key, text)
                assert text in by_pypdf[page], (path.name, key, text)
        assert n > 50


@pytest.mark.slow  # a real pipeline run over whole files
@needs_tools
def test_pdf_pages_match_input_and_check_clean(archived: tuple[Path, list[Path], dict[str, Any]]) -> None:
    import pikepdf

    for path, pdf in _archive_pdfs(archived):
        subprocess.run(["qpdf", "--check", str(pdf)], capture_output=True, text=True, check=True)
        with pikepdf.open(path) as src, pikepdf.open(pdf) as dst:
            assert len(dst.pages) == len(src.pages)
            for a, b in zip(src.pages, dst.pages, strict=True):
                assert [float(v) for v in a.mediabox] == pytest.approx([float(v) for v in b.mediabox], abs=0.01)
                # the scan's image data as it was: no re-encoding
                raw_a = {bytes(x.read_raw_bytes()) for x in a.get_images().values()}
                raw_b = {bytes(x.read_raw_bytes()) for x in b.get_images().values()}
                assert raw_a == raw_b
        assert pdf.stat().st_size <= 1.2 * path.stat().st_size


@pytest.mark.slow  # a real pipeline run over whole files
@needs_tools
@pytest.mark.skipif(not GARBLED.exists(), reason="shared dev corpus not present")
def test_search_on_garbled_file_hits_page_one(archived: tuple[Path, list[Path], dict[str, Any]]) -> None:
    out, _, _ = archived
    assert "项目名称" not in _pdftotext(GARBLED, 1)  # the input's layer is mojibake
    page1 = _pdftotext(out / "pdf" / "d034.pdf", 1)
    assert "项目名称" in page1
    assert "ÏîÄ¿" not in page1  # the old layer is gone, not just covered
    assert "项目名称" in _pypdf_text(out / "pdf" / "d034.pdf")[0]


@pytest.mark.slow  # a real pipeline run over whole files
def test_xlsx_grid_and_values(archived: tuple[Path, list[Path], dict[str, Any]]) -> None:
    import openpyxl

    out, inputs, _ = archived
    combined = [json.loads(line) for line in (out / "records.jsonl").read_text(encoding="utf-8").splitlines()]
    for path in inputs:
        layout = json.loads((out / "layout" / f"{path.stem}.json").read_text(encoding="utf-8"))
        pages = {p["page"]: p for p in layout["pages"]}
        wb = openpyxl.load_workbook(out / "xlsx" / f"{path.stem}.xlsx")
        recs = [r for r in combined if r["source"]["file"] == path.name]
        assert len(wb.sheetnames) == len(recs) + 1 and wb.sheetnames[-1] == "indicators"
        for ws, rec in zip(wb.worksheets, recs, strict=False):
            spans = [(c["row_span"], c["col_span"]) for n in rec["source"]["pages"] for g in pages[n]["grids"]
                     for c in g["cells"] if c["row_span"] > 1 or c["col_span"] > 1]
            merged = [(r.max_row - r.min_row + 1, r.max_col - r.min_col + 1) for r in ws.merged_cells.ranges]
            assert sorted(merged) == sorted(spans)
            shown = [c.value for row in ws.iter_rows() for c in row if c.value is not None]
            numbers = [float(v) for v in shown if isinstance(v, (int, float))]
            texts = "".join(str(v) for v in shown)
            for _s, _r, key, cell in iter_record_cells(rec):
                v = cell["value"]
                if isinstance(v, bool) or v is None:
                    continue
                if isinstance(v, (int, float)):
                    # typed: the number itself, or inside the label it shares a cell with (投入与管理 (36分))
                    assert any(math.isclose(float(v), x) for x in numbers) or _squash(value_text(cell)) in _squash(texts), key
                elif re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(v)):
                    assert any(getattr(x, "date", lambda: None)() == dt.date.fromisoformat(v) for x in shown), key
                else:
                    assert _squash(str(v))[:20] in _squash(texts), key
        ind = wb["indicators"]
        assert ind.max_row - 1 == sum(len(r["indicators"]) for r in recs)


@pytest.mark.slow  # a real pipeline run over whole files
@needs_tools
def test_review_decision_rewrites_pdf_and_xlsx(archived: tuple[Path, list[Path], dict[str, Any]],
                                               tmp_path: Path) -> None:
    import openpyxl
    import pikepdf

    from pipeline.review.session import ReviewSession

    src_out, _, _ = archived
    out = tmp_path / "out"
    shutil.copytree(src_out, out)
    session = ReviewSession(out, reviewer="t")
    try:
        # a cell sent to review whose type takes "7.25" (text or a number)
        item = next(it for it in session.items() if it.file == "d025.pdf" and it.page
                    and it.key in ("remark", "explanation", "name", "score", "weight"))
        before = (out / "pdf" / "d025.pdf").read_bytes()
        session.decide(item.id, "set", "7.25")
    finally:
        session.close()
    pdf = out / "pdf" / "d025.pdf"
    assert pdf.read_bytes() != before
    assert "7.25" in _pdftotext(pdf, item.page or 1)
    with pikepdf.open(SAMPLE) as a, pikepdf.open(pdf) as b:
        assert [bytes(x.read_raw_bytes()) for x in a.pages[0].get_images().values()] == \
               [bytes(x.read_raw_bytes()) for x in b.pages[0].get_images().values()]
        assert [float(v) for v in a.pages[0].mediabox] == pytest.approx([float(v) for v in b.pages[0].mediabox])
    subprocess.run(["qpdf", "--check", str(pdf)], capture_output=True, check=True)
    ws = openpyxl.load_workbook(out / "xlsx" / "d025.xlsx").worksheets[0]
    assert {7.25, "7.25"} & {c.value for row in ws.iter_rows() for c in row}


@pytest.mark.slow  # a real pipeline run over whole files
def test_run_one_writes_archive_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The processing path (a file read in this run) writes them too."""
    from pipeline import engines, process

    monkeypatch.setenv("SCANFORMS_OCR_CACHE", str(CACHE))
    monkeypatch.setattr(engines, "_ENGINES", {})
    outcome = process.run_one(SAMPLE, tmp_path, process.Options(pdf=True, xlsx=True))
    assert outcome.error is None
    assert (tmp_path / "pdf" / "d025.pdf").exists() and (tmp_path / "xlsx" / "d025.xlsx").exists()
    assert (tmp_path / "layout" / "d025.json").exists()


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
@pytest.mark.parametrize("skew", [0.0, -2.7, 4.1])
def test_content_matrix_matches_preprocess(rotation: int, skew: float) -> None:
    """A mark on the rendered page lands where preprocess's turn + deskew put it."""
    w0, h0 = 300, 420
    img = np.full((h0, w0), 255, np.uint8)
    img[100:104, 60:64] = 0  # a dot near (62, 102)
    turned = preprocess.turn(img, rotation)
    out = preprocess.deskew(turned, skew)
    ys, xs = np.nonzero(out < 128)
    want = (xs.mean() + 0.5, ys.mean() + 0.5)
    lp = {"page": 1, "render_size": [w0, h0], "rotation": rotation, "skew_deg": skew,
          "size": [out.shape[1], out.shape[0]], "dpi": 72}
    cropbox = [0.0, 0.0, float(w0), float(h0)]  # 1 px a point
    m, pm = archive_pdf.content_matrix(lp, cropbox, 0)
    x, y = 62.0, h0 - 102.0  # the dot's centre in PDF user space (y up)
    ux, uy = m[0] * x + m[2] * y + m[4], m[1] * x + m[3] * y + m[5]
    back = pm.pixels_to_user()  # points -> deskewed pixels: invert the page map
    px = (ux - back[4]) / back[0]
    py = (uy - back[5]) / back[3]
    assert px == pytest.approx(want[0], abs=1.5) and py == pytest.approx(want[1], abs=1.5)
    if rotation == 0 and skew == 0.0:
        assert m == pytest.approx((1.0, 0.0, 0.0, 1.0, 0.0, 0.0))  # the page is kept as it was


@pytest.mark.slow  # a real pipeline run over whole files
@needs_tools
def test_png_input_wrapped_losslessly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An image input: its pixels embedded as they are (img2pdf), one page of its size at its DPI, text on it."""
    import pikepdf
    from PIL import Image

    from pipeline import engines, ingest, process

    page = next(ingest.iter_pages(SAMPLE))  # the scan we ship, as the PNG a scanner would have written
    png = tmp_path / "scan.png"
    Image.fromarray(page.image[:, :, ::-1] if page.image.ndim == 3 else page.image).save(png, dpi=(page.dpi, page.dpi))
    monkeypatch.setenv("SCANFORMS_OCR_CACHE", str(CACHE))
    monkeypatch.setattr(engines, "_ENGINES", {})
    out = tmp_path / "out"
    assert process.run_one(png, out, process.Options(pdf=True)).error is None
    pdf = out / "pdf" / "scan.pdf"
    subprocess.run(["qpdf", "--check", str(pdf)], capture_output=True, check=True)
    with pikepdf.open(pdf) as doc:
        assert len(doc.pages) == 1
        h, w = page.image.shape[:2]
        assert [float(v) for v in doc.pages[0].mediabox] == pytest.approx([0, 0, w * 72 / page.dpi, h * 72 / page.dpi],
                                                                         abs=0.01)
        (img,) = doc.pages[0].get_images().values()
        embedded = np.asarray(pikepdf.PdfImage(img).as_pil_image().convert("RGB"))
    assert np.array_equal(embedded, np.asarray(Image.open(png).convert("RGB")))
    assert "项目名称" in _pdftotext(pdf, 1)


@needs_tools
@pytest.mark.skipif(not (DEV / "d001.pdf").exists(), reason="shared dev corpus not present")
def test_born_digital_pages_copied_unchanged(tmp_path: Path) -> None:
    import pikepdf

    from pipeline import process

    src = DEV / "d001.pdf"  # born-digital: read from its layer, no OCR
    assert process.run_one(src, tmp_path, process.Options(pdf=True)).error is None
    pdf = tmp_path / "pdf" / "d001.pdf"
    with pikepdf.open(src) as a, pikepdf.open(pdf) as b:
        assert len(a.pages) == len(b.pages)
        for pa, pb in zip(a.pages, b.pages, strict=True):
            assert [bytes(c.read_bytes()) for c in _streams(pa)] == [bytes(c.read_bytes()) for c in _streams(pb)]
            assert "/ScanformsText" not in pb.obj.Resources.get("/Font", {})
    for n in range(1, len(a.pages) + 1):
        assert _pdftotext(pdf, n) == _pdftotext(src, n)


def _streams(page: Any) -> list[Any]:
    import pikepdf

    c = page.obj.Contents
    return [c] if isinstance(c, pikepdf.Stream) else list(c)
