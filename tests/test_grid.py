"""Grid: rules, lattice, merged cells on drawn tables, real scans and a golden dev page."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline import grid as G
from pipeline.types import Grid, PageScale

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
REAL = SHARED / "realscans"
DEV = SHARED / "corpus" / "dev"
GOLDEN = Path(__file__).resolve().parent / "golden" / "grid"

# A form-like table: 9 lattice rows x 6 lattice columns with header colspans, a tall
# merged first column, and a paragraph row. (row, col, row_span, col_span)
SPANS: list[tuple[int, int, int, int]] = [
    (0, 0, 1, 1), (0, 1, 1, 2), (0, 3, 1, 2), (0, 5, 1, 1),
    (1, 0, 1, 1), (1, 1, 1, 5),
    (2, 0, 1, 1), (2, 1, 1, 5),  # paragraph row (tall)
    (3, 0, 1, 1), (3, 1, 1, 1), (3, 2, 1, 1), (3, 3, 1, 1), (3, 4, 1, 1), (3, 5, 1, 1),
    (4, 0, 3, 1), (4, 1, 1, 1), (4, 2, 1, 1), (4, 3, 1, 1), (4, 4, 1, 1), (4, 5, 1, 1),
    (5, 1, 1, 1), (5, 2, 1, 1), (5, 3, 1, 1), (5, 4, 1, 1), (5, 5, 1, 1),
    (6, 1, 1, 1), (6, 2, 1, 1), (6, 3, 1, 1), (6, 4, 1, 1), (6, 5, 1, 1),
    (7, 0, 2, 1), (7, 1, 1, 1), (7, 2, 1, 3), (7, 5, 1, 1),
    (8, 1, 1, 1), (8, 2, 1, 1), (8, 3, 1, 1), (8, 4, 1, 1), (8, 5, 1, 1),
]
ROWS = [300, 360, 420, 900, 950, 1100, 1180, 1260, 1330, 1400]  # y of each rule: short and very tall rows
COLS = [150, 330, 560, 1100, 1230, 1360, 1520]  # x of each rule: narrow and wide columns


def _edges(spans: list[tuple[int, int, int, int]]) -> tuple[set[tuple[int, int]], set[tuple[int, int]]]:
    """Inner lattice edges that are drawn: (r, c) under cell (r, c), and (r, c) right of it."""
    owner: dict[tuple[int, int], int] = {}
    for k, (r, c, rs, cs) in enumerate(spans):
        for i in range(r, r + rs):
            for j in range(c, c + cs):
                owner[(i, j)] = k
    nr, nc = len(ROWS) - 1, len(COLS) - 1
    below = {(i, j) for i in range(nr - 1) for j in range(nc) if owner[(i, j)] != owner[(i + 1, j)]}
    right = {(i, j) for i in range(nr) for j in range(nc - 1) if owner[(i, j)] != owner[(i, j + 1)]}
    return below, right


def _text(img: np.ndarray, x0: int, y0: int, x1: int, y1: int, rng: np.random.Generator) -> None:
    """Lines of dense CJK-like glyphs: random strokes in 22 px boxes, monospaced.

    A third of the glyphs carry a full-width middle stroke, so strokes line up into
    horizontal runs across neighbours, as a row of 一/二/三-like glyphs does.
    """
    g, gap = 22, 3
    for ty in range(y0 + 10, y1 - g - 8, g + 8):
        for gx in range(x0 + 10, x1 - g - 10, g + gap):
            if rng.random() < 0.1:
                continue
            if rng.random() < 0.3:
                cv2.line(img, (gx, ty + g // 2), (gx + g, ty + g // 2), 0, 2)
            for _ in range(int(rng.integers(1, 4))):
                yy = ty + int(rng.integers(0, g))
                xa = gx + int(rng.integers(0, g // 2))
                cv2.line(img, (xa, yy), (xa + int(rng.integers(g // 3, g)), yy), 0, 2)
            for _ in range(int(rng.integers(1, 3))):
                xx = gx + int(rng.integers(2, g - 2))
                ya = ty + int(rng.integers(0, g // 3))
                cv2.line(img, (xx, ya), (xx, min(ty + g, ya + int(rng.integers(g // 2, g)))), 0, 2)


def _hole(img: np.ndarray, rng: np.random.Generator, frac: float, pos: int, a: int, b: int,
          horizontal: bool) -> None:
    """Erase `frac` of the rule stretch a..b at `pos` in one hole inside its middle 70%."""
    n = int((b - a) * frac)
    lo, hi = a + int(0.15 * (b - a)), b - int(0.15 * (b - a)) - n
    s = int(rng.integers(lo, max(lo + 1, hi)))
    if horizontal:
        img[pos - 4:pos + 5, s:s + n] = 255
    else:
        img[s:s + n, pos - 4:pos + 5] = 255


def _page(*, thick: int = 2, erase: float = 0.0, rotate: float = 0.0, speckle: float = 0.0,
          seal: bool = False, text: bool = True, seed: int = 0) -> np.ndarray:
    """A 200-DPI A4 page (grey, ink dark) with the SPANS table; returns the binary (ink = 255)."""
    rng = np.random.default_rng(seed)
    h, w = 2339, 1654
    img = np.full((h, w), 255, np.uint8)
    below, right = _edges(SPANS)

    def hline(y: int, xa: int, xb: int) -> None:
        cv2.line(img, (xa, y), (xb, y), 0, thick)

    def vline(x: int, ya: int, yb: int) -> None:
        cv2.line(img, (x, ya), (x, yb), 0, thick)

    hline(ROWS[0], COLS[0], COLS[-1])
    hline(ROWS[-1], COLS[0], COLS[-1])
    vline(COLS[0], ROWS[0], ROWS[-1])
    vline(COLS[-1], ROWS[0], ROWS[-1])
    for i, j in below:
        hline(ROWS[i + 1], COLS[j], COLS[j + 1])
    for i, j in right:
        vline(COLS[j + 1], ROWS[i], ROWS[i + 1])
    if erase > 0:  # a hole in every inner rule stretch of 100+ px, as faded scans have
        for i, j in below:
            if COLS[j + 1] - COLS[j] >= 100:
                _hole(img, rng, erase, ROWS[i + 1], COLS[j], COLS[j + 1], horizontal=True)
        for i, j in right:
            if ROWS[i + 1] - ROWS[i] >= 100:
                _hole(img, rng, erase, COLS[j + 1], ROWS[i], ROWS[i + 1], horizontal=False)
    if text:
        for r, c, rs, cs in SPANS:
            _text(img, COLS[c], ROWS[r], COLS[c + cs], ROWS[r + rs], rng)
        cv2.putText(img, "TITLE OF THE FORM 2019", (400, 200), cv2.FONT_HERSHEY_SIMPLEX, 2.0, 0, 4)
        _text(img, 150, 1450, 1520, 1600, rng)  # notes under the table
    if seal:  # a stamp: thick circle + star + ring of text, over the table
        cx, cy, rad = 900, 1000, 120
        cv2.circle(img, (cx, cy), rad, 0, 5)
        pts = np.array([[cx + 45 * np.cos(a), cy - 45 * np.sin(a)]
                        for a in np.linspace(np.pi / 2, np.pi / 2 + 4 * np.pi, 6)], np.int32)
        cv2.fillPoly(img, [pts], 0)
        for a in np.linspace(0.3, np.pi - 0.3, 9):
            cv2.circle(img, (int(cx + 90 * np.cos(a)), int(cy - 90 * np.sin(a))), 9, 0, 3)
    if rotate:
        m = cv2.getRotationMatrix2D((w / 2, h / 2), rotate, 1.0)
        img = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=255)
    binary = cv2.adaptiveThreshold(img, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV, 31, 15)
    if speckle:
        dots = rng.random((h, w)) < speckle
        binary[cv2.dilate(dots.astype(np.uint8), np.ones((2, 2), np.uint8)) > 0] = 255
    return binary


def _spans(g: Grid) -> list[tuple[int, int, int, int]]:
    return sorted((c.row, c.col, c.row_span, c.col_span) for c in g.cells)


def _check(g: Grid, tol: int = 8) -> None:
    assert _spans(g) == sorted(SPANS)
    assert len(g.row_lines) == len(ROWS) and len(g.col_lines) == len(COLS)
    assert max(abs(a - b) for a, b in zip(g.row_lines, ROWS, strict=True)) <= tol
    assert max(abs(a - b) for a, b in zip(g.col_lines, COLS, strict=True)) <= tol
    for c in g.cells:  # inner box: just inside the rules around the merged cell
        x0, y0, x1, y1 = c.bbox
        assert abs(x0 - COLS[c.col]) <= tol and abs(x1 - COLS[c.col_end]) <= tol
        assert abs(y0 - ROWS[c.row]) <= tol and abs(y1 - ROWS[c.row_end]) <= tol
        assert x0 > COLS[c.col] - 2 and x1 < COLS[c.col_end] + 2


# --- synthetic pages ---


def test_clean_table_exact() -> None:
    grids = G.find_grids(_page())
    assert len(grids) == 1
    _check(grids[0], tol=3)


def test_stages_separately() -> None:
    """Rules -> lattice -> separators -> merged spans, each checked on its own."""
    b = _page()
    hs, vs = G.find_rules(b)
    assert all(abs(h.pos - min(ROWS, key=lambda y: abs(y - h.pos))) <= 3 for h in hs)  # no glyph strokes
    assert all(abs(v.pos - min(COLS, key=lambda x: abs(x - v.pos))) <= 3 for v in vs)
    groups = G.group_tables(hs, vs, b.shape[:2])
    assert len(groups) == 1
    lat = G.build_lattice(*groups[0], b.shape[:2])
    assert lat is not None and len(lat.row_lines) == len(ROWS) and len(lat.col_lines) == len(COLS)
    hm, vm = G._draw(groups[0][0], b.shape[:2]), G._draw(groups[0][1], b.shape[:2])
    below, right = G.separators(lat, hm, vm, G.page_unit(b.shape))
    want_below, want_right = _edges(SPANS)
    assert {(int(i), int(j)) for i, j in zip(*np.nonzero(below >= 0.5), strict=True)} == want_below
    assert {(int(i), int(j)) for i, j in zip(*np.nonzero(right >= 0.5), strict=True)} == want_right
    assert G.merge_cells(below, right, lat.n_rows, lat.n_cols) == sorted(SPANS)


def test_merge_cells_rectangles_only() -> None:
    """A wrongly missing edge that would make an L-shape is refused, not grown into a big merge."""
    below = np.ones((2, 3))
    right = np.ones((3, 2))
    right[1, 0] = 0.0  # cells (1,0) and (1,1) merge (no ink at all: most certain)
    below[0, 0] = 0.3  # (0,0)-(1,0): would make an L-shape with the merged pair: refused
    spans = G.merge_cells(below, right, 3, 3)
    assert (1, 0, 1, 2) in spans and len(spans) == 8
    right[0, 0] = 0.2  # (0,0)+(0,1) join; with below[0, 1] missing too, a 2x2 block forms
    below[0, 1] = 0.1
    spans = G.merge_cells(below, right, 3, 3)
    assert (0, 0, 2, 2) in spans and len(spans) == 6


@pytest.mark.parametrize("thick", [1, 4])
def test_line_thickness(thick: int) -> None:
    grids = G.find_grids(_page(thick=thick))
    assert len(grids) == 1
    _check(grids[0])


def test_residual_skew() -> None:
    grids = G.find_grids(_page(rotate=0.15))
    assert len(grids) == 1
    _check(grids[0], tol=10)


def test_faded_rules_with_holes() -> None:
    """25% of every inner rule erased in holes: separators still hold."""
    grids = G.find_grids(_page(erase=0.25, rotate=0.1, seed=3))
    assert len(grids) == 1
    _check(grids[0], tol=10)


def test_speckles_and_seal() -> None:
    grids = G.find_grids(_page(speckle=0.002, seal=True, rotate=-0.1, seed=5))
    assert len(grids) == 1
    _check(grids[0], tol=10)


def test_missing_outer_border() -> None:
    b = _page()
    b[:, COLS[-1] - 6:COLS[-1] + 7] = 0  # right border gone entirely
    grids = G.find_grids(b)
    assert len(grids) == 1
    assert _spans(grids[0]) == sorted(SPANS)
    assert abs(grids[0].col_lines[-1] - COLS[-1]) <= 8


def test_text_only_page_has_no_grid() -> None:
    b = _page(text=True)
    b[ROWS[0] - 10:ROWS[-1] + 10, :] = 0
    rng = np.random.default_rng(1)
    img = np.full(b.shape, 255, np.uint8)
    _text(img, 150, 300, 1500, 1400, rng)
    b2 = cv2.adaptiveThreshold(img, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV, 31, 15)
    assert G.find_grids(b | b2) == []


def test_two_tables_top_to_bottom() -> None:
    b = _page(text=False)
    small = np.zeros_like(b)
    for y in (1700, 1760, 1820):
        cv2.line(small, (200, y), (1200, y), 255, 2)
    for x in (200, 700, 1200):
        cv2.line(small, (x, 1700), (x, 1820), 255, 2)
    grids = G.find_grids(b | small)
    assert [len(g.cells) for g in grids] == [len(SPANS), 4]
    assert grids[0].row_lines[0] < grids[1].row_lines[0]


# --- real images ---


def _real(name: str) -> np.ndarray:
    path = REAL / name
    if not path.exists():
        pytest.skip(f"{path} missing")
    img = cv2.imread(str(path))
    grey = img.max(axis=2)  # brightest channel: coloured fills and stamps turn pale, as preprocess does
    return cv2.adaptiveThreshold(grey, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV, 31, 15)


def test_realscan_row_span() -> None:
    """果园收成表: 名称/产量 span two header rows, 环比 spans two columns; 17 cells."""
    grids = G.find_grids(_real("03_tsr_wired_row_span.png"))
    assert len(grids) == 1
    g = grids[0]
    assert (g.n_rows, g.n_cols, len(g.cells)) == (5, 4, 17)
    spans = _spans(g)
    assert spans[:5] == [(0, 0, 2, 1), (0, 1, 2, 1), (0, 2, 1, 2), (1, 2, 1, 1), (1, 3, 1, 1)]
    assert all(s[2:] == (1, 1) for s in spans[5:])


def test_realscan_book_table() -> None:
    """步兵班战斗编组表: 方案 spans 2 columns, 编两个组/编三个组 span 2 rows, the note spans all."""
    grids = G.find_grids(_real("05_tsr_cls_wired_table_scan.png"))
    assert len(grids) == 1
    g = grids[0]
    assert (g.n_rows, g.n_cols, len(g.cells)) == (6, 3, 13)
    spans = _spans(g)
    assert (0, 0, 1, 2) in spans and (1, 0, 2, 1) in spans and (3, 0, 2, 1) in spans
    assert (5, 0, 1, 3) in spans


def _dev_page(name: str, page: int, dpi: int = 200) -> np.ndarray:
    path = DEV / name
    if not path.exists():
        pytest.skip(f"{path} missing")
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(str(path))
    rgb = doc[page - 1].render(scale=dpi / 72).to_numpy()
    grey = cv2.cvtColor(rgb[:, :, :3], cv2.COLOR_RGB2GRAY)
    return cv2.adaptiveThreshold(grey, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV, 31, 15)


def _as_json(grids: list[Grid]) -> list[dict[str, object]]:
    return [{"row_lines": g.row_lines, "col_lines": g.col_lines,
             "cells": [list(s) for s in _spans(g)]} for g in grids]


def test_golden_d001_page1() -> None:
    """Clean family-A page: header grid over the indicator table, one lattice; stored exactly."""
    got = _as_json(G.find_grids(_dev_page("d001.pdf", 1)))
    golden = json.loads((GOLDEN / "d001_p1.json").read_text(encoding="utf-8"))
    assert len(got) == len(golden) == 1
    assert got[0]["cells"] == golden[0]["cells"]
    # positions: exact on a vector render, ±1 px leeway for a rasteriser update
    for key in ("row_lines", "col_lines"):
        a, b = got[0][key], golden[0][key]
        assert isinstance(a, list) and isinstance(b, list) and len(a) == len(b)
        assert max(abs(x - y) for x, y in zip(a, b, strict=True)) <= 1
    # 10 header rows + 一级指标 header + 4 indicators (truth: 投入与管理 spans them)
    assert len(golden[0]["row_lines"]) == 16


def test_split_by_whitespace_restores_erased_rule() -> None:
    from pipeline.grid import split_by_whitespace
    from pipeline.types import Cell, Grid

    binary = np.zeros((100, 400), np.uint8)
    binary[40:60, 40:120] = 255  # text in the left band
    binary[40:60, 260:300] = 255  # a number in the right band, far apart
    g = Grid(row_lines=[0, 100], col_lines=[0, 200, 400], cells=[Cell(0, 0, 1, 2, (0, 0, 400, 100))])
    assert split_by_whitespace(g, binary, glyph=20.0) == 1
    assert [(c.col, c.col_span) for c in g.cells] == [(0, 1), (1, 1)]
    # a paragraph line running across the lattice line keeps the cell merged
    binary[:] = 0
    binary[40:60, 40:360] = 255
    g2 = Grid(row_lines=[0, 100], col_lines=[0, 200, 400], cells=[Cell(0, 0, 1, 2, (0, 0, 400, 100))])
    assert split_by_whitespace(g2, binary, glyph=20.0) == 0


def test_split_by_whitespace_past_remains_of_the_rule() -> None:
    """A rule erased but for a short stub at the line still splits; a speck is no text."""
    from pipeline.grid import split_by_whitespace
    from pipeline.types import Cell, Grid

    binary = np.zeros((100, 400), np.uint8)
    binary[40:60, 120:180] = 255  # 分值 close to the lost rule
    binary[40:60, 240:300] = 255  # 得分 on the other side
    binary[45:55, 199:202] = 255  # what is left of the rule
    g = Grid(row_lines=[0, 100], col_lines=[0, 200, 400], cells=[Cell(0, 0, 1, 2, (0, 0, 400, 100))])
    assert split_by_whitespace(g, binary, glyph=20.0) == 1
    assert [(c.col, c.col_span) for c in g.cells] == [(0, 1), (1, 1)]
    # a glyph on the line (ink beside the stub band) keeps the cell whole
    binary[40:60, 190:196] = 255
    g2 = Grid(row_lines=[0, 100], col_lines=[0, 200, 400], cells=[Cell(0, 0, 1, 2, (0, 0, 400, 100))])
    assert split_by_whitespace(g2, binary, glyph=20.0) == 0
    # text on one side and only a speck of dust on the other: one merged cell
    binary[:] = 0
    binary[40:60, 60:180] = 255
    binary[50:55, 300:305] = 255
    g3 = Grid(row_lines=[0, 100], col_lines=[0, 200, 400], cells=[Cell(0, 0, 1, 2, (0, 0, 400, 100))])
    assert split_by_whitespace(g3, binary, glyph=20.0) == 0


def test_find_grids_rule_erased_along_its_whole_length() -> None:
    """A column rule missing through one whole row (only a stub left) still gives two cells there."""
    img = np.zeros((400, 800), np.uint8)
    ys, xs = [50, 110, 170, 230], [50, 300, 500, 750]
    for y in ys:
        img[y - 1:y + 2, xs[0]:xs[-1] + 1] = 255
    for x in xs:
        img[ys[0]:ys[-1] + 1, x - 1:x + 2] = 255
    img[112:168, 499:502] = 0  # the rule between col 1 and col 2 erased through row 1 ...
    img[136:144, 499:502] = 255  # ... but for a stub
    for r in range(3):  # a few 'characters' per cell, away from the rules
        for a, b in zip(xs, xs[1:], strict=False):
            for k in range(3):
                gx = (a + b) // 2 - 30 + 22 * k
                img[ys[r] + 20:ys[r] + 40, gx:gx + 16] = 255
                img[ys[r] + 28:ys[r] + 31, gx - 3:gx + 19] = 0
    (g,) = G.find_grids(img)
    assert (g.n_rows, g.n_cols) == (3, 3)
    assert sorted((c.row, c.col, c.row_span, c.col_span) for c in g.cells) == [
        (r, c, 1, 1) for r in range(3) for c in range(3)]


def test_a_rule_left_as_a_stub_at_one_junction_still_divides_its_row() -> None:
    """A column rule erased down a tall last row but for a stub at its foot (dev d060): two cells."""
    img = np.zeros((2339, 1654), np.uint8)  # an A4 page at 200 DPI: the stub is short for its size
    ys, xs = [50, 200, 350, 620], [50, 300, 420, 850]
    for y in ys:
        img[y - 2:y + 3, xs[0]:xs[-1] + 1] = 255
    for x in xs:
        img[ys[0]:ys[-1] + 1, x - 2:x + 3] = 255
    img[ys[2] + 3:570, xs[2] - 2:xs[2] + 3] = 0  # 50 px of the rule left above the bottom rule
    for r in range(3):  # a line of 'characters' per cell, left-aligned a cell padding from the rule
        for a, b in zip(xs, xs[1:], strict=False):
            for gx in range(a + 10, b - 40, 24):
                img[ys[r] + 40:ys[r] + 58, gx:gx + 16] = 255
                img[ys[r] + 47:ys[r] + 50, gx - 2:gx + 18] = 0
    (g,) = G.find_grids(img, PageScale(unit=1.0, glyph=18.0))
    assert (g.n_rows, g.n_cols) == (3, 3)
    assert _spans(g) == [(r, c, 1, 1) for r in range(3) for c in range(3)]
    # and a merged cell stays merged where the rule really stops at the junction (its text
    # running across the line)
    img[ys[2] + 3:ys[3] - 2, xs[2] - 2:xs[2] + 3] = 0
    for gx in range(xs[1] + 20, xs[3] - 40, 24):
        img[ys[2] + 40:ys[2] + 58, gx:gx + 16] = 255
        img[ys[2] + 47:ys[2] + 50, gx - 2:gx + 18] = 0
    (g,) = G.find_grids(img, PageScale(unit=1.0, glyph=18.0))
    assert (2, 1, 1, 2) in _spans(g)


@pytest.mark.parametrize(("thick", "whole"), [(1, True), (3, False)])
def test_a_short_piece_inside_a_cell_cuts_it_only_as_thick_as_the_rules(thick: int, whole: bool) -> None:
    # a seal's pale arc lifted to the paper left a pixel-thick straight piece across a cell,
    # touching a column rule (bench/unseen.py's seal: it cut a row in two): no rule. A piece as
    # thick as the rules there is what damage left of one (dev d030's funding rows)
    img = np.zeros((2339, 1654), np.uint8)
    ys, xs = [300, 400, 500, 600, 700], [200, 600, 1000, 1400]
    for y in ys:
        img[y - 1:y + 2, xs[0]:xs[-1] + 1] = 255
    for x in xs:
        img[ys[0]:ys[-1] + 1, x - 1:x + 2] = 255
    img[550 - thick // 2:550 - thick // 2 + thick, xs[2] - 60:xs[2]] = 255  # touching the rule at 1000
    (g,) = G.find_grids(img, PageScale(unit=1.0, glyph=22.0))
    cell = next(c for c in g.cells if c.bbox[0] < 800 < c.bbox[2] and c.bbox[1] < 520 < c.bbox[3])
    assert (cell.bbox[3] > 580) is whole  # the cell between rules 500 and 600, or its top half


def test_a_glyph_touching_a_junction_does_not_cut_a_merged_cell() -> None:
    # text overflowing a merged 一级指标 cell (dev d061: 影响力目标（15分） over two rows) may
    # touch the junction of the row rule it runs across: the bracket's foot lies on the rule's
    # line, and the opened mask carried the rule on past the column rule by those pixels: read
    # as a damaged rule, the merged cell was cut in two
    img = np.full((2339, 1654), 255, np.uint8)
    below, right = _edges(SPANS)
    for y in (ROWS[0], ROWS[-1]):
        cv2.line(img, (COLS[0], y), (COLS[-1], y), 0, 3)
    for x in (COLS[0], COLS[-1]):
        cv2.line(img, (x, ROWS[0]), (x, ROWS[-1]), 0, 3)
    for i, j in below:
        cv2.line(img, (COLS[j], ROWS[i + 1]), (COLS[j + 1], ROWS[i + 1]), 0, 3)
    for i, j in right:
        cv2.line(img, (COLS[j + 1], ROWS[i]), (COLS[j + 1], ROWS[i + 1]), 0, 3)
    # a closing bracket in the merged cell (4, 0) whose foot runs along row rule 5 into the junction
    cv2.ellipse(img, (COLS[1] - 8, ROWS[5] - 16), (6, 16), 0, -90, 90, 0, 3)
    cv2.line(img, (COLS[1] - 8, ROWS[5]), (COLS[1], ROWS[5]), 0, 3)
    binary = (img < 128).astype(np.uint8) * 255
    (g,) = G.find_grids(binary)
    assert (4, 0, 3, 1) in _spans(g)
    hs, vs = G.find_rules(binary, 22.0)
    (row5,) = [h for h in hs if abs(h.pos - ROWS[5]) <= 3]
    assert row5.start >= COLS[1] - 5  # the bracket's foot is not rule
