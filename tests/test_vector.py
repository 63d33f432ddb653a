"""Born-digital pages: ruling lines from the PDF's vector graphics -> grids, and the vector route.

The PDFs are written by hand (a content stream and the few objects around
it), so each test says exactly which drawing operators make the table.
"""

from __future__ import annotations

import ctypes
import json
from pathlib import Path

import numpy as np
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import pytest

from pipeline import engines, grid, ingest, process, vector

SCALE = 200 / 72
DEV = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "dev"

# A 4-row x 4-column table, x 100..500 pt, y 700 (top) .. 500 pt (bottom), rows 50 pt, columns 100 pt:
# row 0: cells (0,0) and (0,1)+(0,2) merged and (0,3); column 0: rows 1-2 merged.
XS = [100, 200, 300, 400, 500]
YS = [700, 650, 600, 550, 500]
CELLS = [  # (row, col, row_span, col_span)
    (0, 0, 1, 1), (0, 1, 1, 2), (0, 3, 1, 1),
    (1, 0, 2, 1), (1, 1, 1, 1), (1, 2, 1, 1), (1, 3, 1, 1),
    (2, 1, 1, 1), (2, 2, 1, 1), (2, 3, 1, 1),
    (3, 0, 1, 1), (3, 1, 1, 1), (3, 2, 1, 1), (3, 3, 1, 1),
]


def _pdf(content: str, *, rotate: int = 0, mediabox: tuple[float, ...] = (0, 0, 595, 842),
         cropbox: tuple[float, ...] | None = None, form: str | None = None,
         form_matrix: str = "1 0 0 1 0 0") -> bytes:
    """A one-page PDF with this content stream (and an optional form XObject /X1 drawing `form`)."""
    objs = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        None,  # the page, below
        None,  # the content stream
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    xobj = ""
    if form is not None:
        fb = form.encode()
        objs.append(f"<< /Type /XObject /Subtype /Form /BBox [0 0 595 842] /Matrix [{form_matrix}] "
                    f"/Length {len(fb)} >>\nstream\n{form}\nendstream")
        xobj = f" /XObject << /X1 {len(objs)} 0 R >>"
    box = f" /CropBox [{' '.join(map(str, cropbox))}]" if cropbox else ""
    objs[2] = (f"<< /Type /Page /Parent 2 0 R /MediaBox [{' '.join(map(str, mediabox))}]{box} /Rotate {rotate} "
               f"/Resources << /Font << /F1 5 0 R >>{xobj} >> /Contents 4 0 R >>")
    cb = content.encode()
    objs[3] = f"<< /Length {len(cb)} >>\nstream\n{content}\nendstream"
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, o in enumerate(objs, start=1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n{o}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{off:010d} 00000 n \n" for off in offsets).encode()
    out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def _cell_rects(width: float = 0.6) -> str:
    """One stroked rectangle per (merged) cell, as reportlab's table GRID draws them."""
    ops = [f"{width} w 0 0 0 RG"]
    for r, c, rs, cs in CELLS:
        x0, x1 = XS[c], XS[c + cs]
        y0, y1 = YS[r + rs], YS[r]
        ops.append(f"{x0} {y0} {x1 - x0} {y1 - y0} re S")
    return "\n".join(ops)


def _line_pieces() -> str:
    """The same table as single stroked lines (no edge twice), inner edges only where cells meet."""
    ops = ["0.5 w 0 0 0 RG", f"{XS[0]} {YS[0]} {XS[-1] - XS[0]} {YS[-1] - YS[0]} re S"]
    h = {(r, c) for r in range(1, 4) for c in range(4)} - {(2, 0)}  # no rule inside the merged (1-2, 0)
    v = {(r, c) for r in range(4) for c in range(1, 4)} - {(0, 2)}  # none inside the merged (0, 1-2)
    for r, c in sorted(h):
        ops.append(f"{XS[c]} {YS[r]} m {XS[c + 1]} {YS[r]} l S")
    for r, c in sorted(v):
        ops.append(f"{XS[c]} {YS[r]} m {XS[c]} {YS[r + 1]} l S")
    return "\n".join(ops)


def _thin_fills() -> str:
    """The same table as thin filled rectangles (1 pt), some edges drawn twice, slightly offset."""
    ops = ["0 0 0 rg"]
    for r, c, rs, cs in CELLS:
        x0, x1 = XS[c], XS[c + cs]
        y0, y1 = YS[r + rs], YS[r]
        ops += [f"{x0 - 0.5} {y1 - 0.5} {x1 - x0 + 1} 1 re f", f"{x0 - 0.5} {y0 - 0.5} {x1 - x0 + 1} 1 re f",
                f"{x0 - 0.5} {y0 - 0.5} 1 {y1 - y0 + 1} re f", f"{x1 - 0.5 + 0.2} {y0 - 0.5} 1 {y1 - y0 + 1} re f"]
    return "\n".join(ops)


def _write(tmp_path: Path, data: bytes, name: str = "t.pdf") -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def _page(path: Path) -> object:
    (page,) = list(ingest.iter_pages(path))
    return page


def _structure(g: object) -> list[tuple[int, int, int, int]]:
    return sorted((c.row, c.col, c.row_span, c.col_span) for c in g.cells)  # type: ignore[attr-defined]


def _expect_table(page: object, xs: list[float] = XS, ys: list[float] = YS) -> None:
    grids = process.vector_grids(page)  # type: ignore[arg-type]
    assert len(grids) == 1
    (g,) = grids
    assert _structure(g) == sorted(CELLS)
    assert all(abs(a - x * SCALE) <= 2 for a, x in zip(g.col_lines, xs, strict=True))
    assert all(abs(a - (842 - y) * SCALE) <= 2 for a, y in zip(g.row_lines, ys, strict=True))


@pytest.mark.parametrize("draw", [_cell_rects, _line_pieces, _thin_fills])
def test_rules_from_vector_graphics_give_the_known_grid(tmp_path: Path, draw: object) -> None:
    page = _page(_write(tmp_path, _pdf(draw())))  # type: ignore[operator]
    assert page.vector_lines  # type: ignore[attr-defined]
    _expect_table(page)


def test_invisible_and_curved_paths_are_not_rules(tmp_path: Path) -> None:
    noise = "\n".join([
        "1 1 1 RG 2 w 100 600 m 500 600 l S",  # a white stroke (an eraser) across the table
        "0 0 0 RG 1 w 150 675 m 180 690 210 690 240 675 c S",  # a curve
        "100 300 400 50 re n",  # a path that paints nothing
        "0.9 0.9 0.9 rg 100 200 400 60 re f",  # light shading: no rule either
        "0 0 0 RG 1 w 320 400 m 380 460 l S",  # a diagonal
    ])
    page = _page(_write(tmp_path, _pdf(_cell_rects() + "\n" + noise)))
    _expect_table(page)
    lines = page.vector_lines  # type: ignore[attr-defined]
    assert all(ln.pos < (842 - 480) * SCALE for ln in lines if ln.horizontal)  # nothing from below the table


def test_form_xobject_with_matrix(tmp_path: Path) -> None:
    # the table drawn at half size inside a form, placed by the form's matrix at (50, 400)
    page = _page(_write(tmp_path, _pdf("/X1 Do", form=_cell_rects(), form_matrix="0.5 0 0 0.5 50 400")))
    xs = [50 + 0.5 * x for x in XS]
    ys = [400 + 0.5 * y for y in YS]
    _expect_table(page, xs, ys)


def test_clip_cuts_rules(tmp_path: Path) -> None:
    # a long rule clipped to x 100..300: only that stretch is drawn
    content = "q 100 0 200 842 re W n 0 0 0 RG 1 w 50 400 m 550 400 l S Q"
    lines = _page(_write(tmp_path, _pdf(content))).vector_lines  # type: ignore[attr-defined]
    assert len(lines) == 1
    assert abs(lines[0].start - 100 * SCALE) <= 1 and abs(lines[0].end - 300 * SCALE) <= 1


@pytest.mark.parametrize("rotate", [0, 90, 180, 270])
@pytest.mark.parametrize("cropbox", [None, (20, 30, 580, 800)])
def test_page_to_pixels_is_pdfiums_mapping(tmp_path: Path, rotate: int, cropbox: tuple[float, ...] | None) -> None:
    doc = pdfium.PdfDocument(_write(tmp_path, _pdf("", rotate=rotate, cropbox=cropbox)).read_bytes())
    page = doc[0]
    m = vector.page_to_pixels(page, SCALE)
    w, h = page.get_size()
    k = 64  # FPDF_PageToDevice answers in whole device units: ask at 64x size
    dx, dy = ctypes.c_int(), ctypes.c_int()
    for x, y in [(0, 0), (100, 700), (500, 50), (300, 400)]:
        pdfium_c.FPDF_PageToDevice(page.raw, 0, 0, round(w * SCALE * k), round(h * SCALE * k), 0, x, y, dx, dy)
        px, py = m[0] * x + m[2] * y + m[4], m[1] * x + m[3] * y + m[5]
        assert abs(px - dx.value / k) < 0.05 and abs(py - dy.value / k) < 0.05


@pytest.mark.parametrize("rotate", [90, 270])
def test_rotated_page_rules_and_text_land_on_the_render(tmp_path: Path, rotate: int) -> None:
    content = _cell_rects(1.0) + "\nBT /F1 12 Tf 120 670 Td (AB) Tj ET"
    page = _page(_write(tmp_path, _pdf(content, rotate=rotate)))
    img = page.image  # type: ignore[attr-defined]
    assert img.shape[1] > img.shape[0]  # landscape as rendered
    grey = img.min(axis=2) if img.ndim == 3 else img
    (g,) = process.vector_grids(page)  # type: ignore[arg-type]
    assert (g.n_rows, g.n_cols) == (4, 4)  # a 90-degree turn makes columns rows
    for y in g.row_lines:  # every lattice line is ink in the render
        assert grey[y - 1:y + 2, g.col_lines[0] + 5:g.col_lines[-1] - 5].min(axis=0).mean() < 128
    for x in g.col_lines:
        assert grey[g.row_lines[0] + 5:g.row_lines[-1] - 5, x - 1:x + 2].min(axis=1).mean() < 128
    # the text layer's boxes are on the glyphs' ink too
    for ch in page.text_layer:  # type: ignore[attr-defined]
        x0, y0, x1, y1 = ch.bbox
        assert grey[y0:y1, x0:x1].min() < 128


def test_vector_route_reads_cells_without_ocr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    texts = {(0, 0): "Name", (0, 1): "Budget", (1, 0): "A1", (3, 3): "99.5"}
    ops = [_cell_rects()]
    for (r, c), t in texts.items():
        ops.append(f"BT /F1 10 Tf {XS[c] + 8} {YS[r] - 30} Td ({t}) Tj ET")
    path = _write(tmp_path, _pdf("\n".join(ops)))

    def no_engine(*a: object, **k: object) -> None:
        raise AssertionError("the vector route must not create the OCR engine")

    monkeypatch.setattr(engines, "get_engine", no_engine)
    res = process.process_file(path)
    (page,) = res.pages
    assert page.kind == "vector" and page.prepared.binary is None  # no image work at all
    (g,) = page.grids
    got = {(c.row, c.col): c.text for c in g.cells if c.text}
    assert got == texts


def test_born_digital_page_without_rules_falls_back_to_the_image(tmp_path: Path) -> None:
    path = _write(tmp_path, _pdf("BT /F1 10 Tf 100 700 Td (no table here) Tj ET"))
    page = _page(path)
    assert page.vector_lines == []  # type: ignore[attr-defined]
    res = process.read_page(page, engines.LazyEngine(), {})  # type: ignore[arg-type]
    assert res.kind == "vector" and res.grids == [] and res.prepared.binary is not None


@pytest.mark.skipif(not (DEV / "d001.pdf").exists(), reason="shared dev corpus not present")
def test_dev_page_matches_golden_structure() -> None:
    """The vector route and the scan route's golden grid agree on a dev page."""
    gold = json.loads((Path(__file__).parent / "golden" / "grid" / "d001_p1.json").read_text(encoding="utf-8"))[0]
    page = next(iter(ingest.iter_pages(DEV / "d001.pdf")))
    (g,) = process.vector_grids(page)
    assert sorted([c.row, c.col, c.row_span, c.col_span] for c in g.cells) == sorted(gold["cells"])
    assert all(abs(a - b) <= 3 for a, b in zip(g.col_lines, gold["col_lines"], strict=True))
    assert all(abs(a - b) <= 3 for a, b in zip(g.row_lines, gold["row_lines"], strict=True))


def test_edge_covers_equal_edge_cover() -> None:
    rng = np.random.default_rng(0)
    for _ in range(500):
        f = rng.random(int(rng.integers(0, 40))) < 0.5
        a = rng.integers(0, 50, 6)
        b = rng.integers(-5, 60, 6)
        assert grid._edge_covers(f, a, b).tolist() == [grid._edge_cover(f, int(x), int(y)) for x, y in zip(a, b, strict=True)]


def test_short_marks_are_not_rules(tmp_path: Path) -> None:
    # tick marks (3 pt) just above the table's top rule and touching it: no row, no column from them
    ticks = "\n".join(f"0 0 0 RG 1 w {x} 700 m {x} 703 l S" for x in range(110, 500, 20))
    page = _page(_write(tmp_path, _pdf(_cell_rects() + "\n" + ticks)))
    _expect_table(page)


def test_exact_grouping_equals_mask_grouping(tmp_path: Path) -> None:
    page = _page(_write(tmp_path, _pdf(_line_pieces() + "\n0 0 0 RG 1 w 100 300 m 300 300 l S 200 250 m 200 350 l S")))
    lines = page.vector_lines  # type: ignore[attr-defined]
    shape = page.image.shape[:2]  # type: ignore[attr-defined]
    hs = grid._merge_collinear([(ln.pos, ln.start, ln.end, ln.thickness) for ln in lines if ln.horizontal], 1.0)
    vs = [grid.Rule(False, r.pos, r.start, r.end, r.thickness, r.lo, r.hi) for r in grid._merge_collinear(
        [(ln.pos, ln.start, ln.end, ln.thickness) for ln in lines if not ln.horizontal], 1.0)]

    def key(groups: list) -> list:
        return [sorted((r.horizontal, r.pos, r.start) for r in g[0] + g[1]) for g in groups]

    exact = grid.group_rules(hs, vs, grid._px(grid.CLUSTER_TOL, grid.page_unit(shape), 3))
    assert len(exact) == 2  # the table, and the cross below it
    assert key(exact) == key(grid.group_tables(hs, vs, shape))


def test_many_rules_are_grouped_on_a_mask(monkeypatch: pytest.MonkeyPatch) -> None:
    table = [vector.VLine(True, y, 100.0, 500.0, 1.0) for y in (100.0, 200.0, 300.0)]
    table += [vector.VLine(False, x, 100.0, 300.0, 1.0) for x in (100.0, 300.0, 500.0)]
    # a vector drawing below: thousands of short separate strokes
    rng = np.random.default_rng(0)
    noise = [vector.VLine(True, float(y), float(x), float(x) + 30.0, 1.0)
             for x, y in zip(rng.integers(50, 1500, 4000), rng.integers(1000, 2300, 4000), strict=True)]

    def no_pairs(*a: object, **k: object) -> None:
        raise AssertionError("pairwise grouping on thousands of rules")

    monkeypatch.setattr(grid, "group_rules", no_pairs)
    grids = grid.grids_from_lines(table + noise, (2339, 1654), glyph=20.0)
    assert (grids[0].n_rows, grids[0].n_cols) == (2, 2)


def test_lazy_engine_is_made_once_on_first_use(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading
    import time

    made: list[int] = []

    class Fake:
        name = "fake"

        def __init__(self, threads: int | None = None, batching: str = "single") -> None:
            time.sleep(0.05)  # long enough for the threads to meet
            made.append(1)

    monkeypatch.setattr(engines, "_ENGINES", {})
    monkeypatch.setattr(engines, "RapidOcrEngine", Fake)
    lazy = engines.LazyEngine()
    assert not lazy.loaded and made == []  # nothing made until an OCR call
    ts = [threading.Thread(target=lambda: engines.LazyEngine().name) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert made == [1] and lazy.loaded
