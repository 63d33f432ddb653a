"""Cell text: a cell's lines joined into its text, and merged cells split where a rule was lost.

Below every stage that fills or reads cells (grid, ocr, textlayer, normalize): it knows
only `Cell` / `TextLine` and the spec's rule for joining lines.

"A rule was lost in the scan, so split the merged cell" is one repair met at four places,
each with its own evidence: a clean white channel in the ink (`grid.split_by_whitespace`),
OCR lines in separate lattice bands far apart (`split_by_text` here), lines falling in
separate indicator columns or rows (`normalize`). All four cut through `lines_into_bands`
(which band each line belongs to, or no split) and `cut_cell` (the piece of a cell
between two positions along one axis); a line that OCR read across the lost rule itself is
cut by `cut_line` (normalize.columns.lines_by_column).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

import numpy as np

from .types import Cell, Grid, TextLine
from .values import join_lines

# OCR line boxes are widened by these fractions of their height (left / right): detection
# boxes hug the glyphs and drop small trailing marks (，。、). `split_by_text` takes the
# padding off again to measure the gap between the glyphs.
PAD_BEFORE = 0.175
PAD_AFTER = 0.35


def group_visual_lines(lines: list[TextLine]) -> list[list[TextLine]]:
    """Lines of one cell grouped into visual rows (top to bottom), each left to right."""
    rows: list[list] = []
    for ln in sorted(lines, key=lambda t: (t.bbox[1] + t.bbox[3]) / 2):
        cy = (ln.bbox[1] + ln.bbox[3]) / 2
        h = ln.bbox[3] - ln.bbox[1]
        if rows:
            last = rows[-1]
            ly0 = min(t.bbox[1] for t in last)
            ly1 = max(t.bbox[3] for t in last)
            lcy = (ly0 + ly1) / 2
            if abs(cy - lcy) < 0.5 * max(h, ly1 - ly0):
                last.append(ln)
                continue
        rows.append([ln])
    return [sorted(r, key=lambda t: t.bbox[0]) for r in rows]


def reading_order(lines: list[TextLine]) -> list[TextLine]:
    """A cell's lines in the order its text reads (`group_visual_lines`, row after row): the
    order `finish_cell` joins them in, which a cell's `lines` list need not keep."""
    return [t for row in group_visual_lines(lines) for t in row]


def text_across(cells: list[Cell]) -> str:
    """The text of cells side by side that hold one value (its printed lines run on across a
    scratch or a bleed-through shadow taken for a rule): their lines joined row by row across
    the cells, not cell after cell. A value of four lines cut in two read as the four left
    halves, then the four right ones (dev garbled d033's 改进措施, accepted at 0.99).
    Cells stacked or with text not their lines' own (a repair, a text layer) keep their order."""
    lined = [c for c in cells if c.text]
    texts = [c.text for c in lined]
    if len(lined) < 2 or any(_lines_text(c) != c.text for c in lined):
        return join_lines(texts)
    for a, b in zip(lined, lined[1:], strict=False):
        overlap = min(a.bbox[3], b.bbox[3]) - max(a.bbox[1], b.bbox[1])
        if b.bbox[0] < a.bbox[2] - 2 or overlap < 0.5 * min(a.bbox[3] - a.bbox[1], b.bbox[3] - b.bbox[1]):
            return join_lines(texts)  # not side by side
    rows = group_visual_lines([t for c in lined for t in c.lines])
    return join_lines([join_lines([t.text for t in r]) for r in rows])


def _lines_text(c: Cell) -> str:
    """What `finish_cell` makes of a cell's lines."""
    return join_lines([join_lines([t.text for t in r]) for r in group_visual_lines(c.lines)])


def finish_cell(cell: Cell) -> None:
    """Set a cell's text (spec rule for joining lines) and its OCR confidence."""
    c = cell
    if not c.lines:
        c.text, c.confidence = "", 1.0
        return
    c.text = _lines_text(c)
    scores = []
    for t in c.lines:
        scores += t.char_scores if t.char_scores else [t.score] * max(1, len(t.text))
    c.confidence = float(min(scores)) if scores else 0.0


# --- the lost-rule repair: one way to cut, whatever the evidence ---------------------------


def lines_into_bands(
    lines: list[TextLine], n_bands: int, home: Callable[[TextLine], int | None]
) -> list[list[TextLine]] | None:
    """Each line into the band `home` gives it (in line order); None when a line has no
    single home: it runs across where the lost rule would be, so the cell is no split."""
    parts: list[list[TextLine]] = [[] for _ in range(n_bands)]
    for ln in lines:
        k = home(ln)
        if k is None:
            return None
        parts[k].append(ln)
    return parts


# The characters either side of a cut made by `cut_line` score at most this: where the line's
# characters really stood is an estimate, so the pieces go to review.
CUT_CHAR_SCORE = 0.5


def _char_width(ch: str) -> float:
    """A glyph's advance in ems: CJK and full-width marks one, Latin, digits and ASCII half."""
    return 1.0 if unicodedata.east_asian_width(ch) in ("W", "F") else 0.5


def cut_line(ln: TextLine, x: float) -> tuple[TextLine, TextLine] | None:
    """A line OCR read across a lost rule (two cells' texts on one baseline taken for one
    line), cut at page x. Its characters are placed along the glyphs' extent (the box less
    its padding) by their estimated advances, and the cut falls at the character boundary
    nearest x (`cut_line_at`). None when either side would be empty."""
    pos = _char_edges(ln)
    if pos is None:
        return None
    return cut_line_at(ln, int(np.argmin(np.abs(pos[1:-1] - x))) + 1, pos)


def _char_edges(ln: TextLine) -> np.ndarray | None:
    """Page x of each character boundary of a line (n + 1 of them), by the characters' estimated
    advances along the glyphs' extent; None for a line of one character or no extent."""
    if len(ln.text) < 2:
        return None
    x0, y0, x1, y1 = ln.bbox
    h = y1 - y0
    g0, g1 = x0 + PAD_BEFORE * h, x1 - PAD_AFTER * h
    if g1 <= g0:
        return None
    cum = np.cumsum([0.0] + [_char_width(ch) for ch in ln.text])
    return g0 + (g1 - g0) * cum / cum[-1]


def cut_line_at(ln: TextLine, k: int, pos: np.ndarray | None = None) -> tuple[TextLine, TextLine] | None:
    """A line cut before its character `k` (a rule lost inside it, or a label read with its
    value); the characters beside the cut score at most CUT_CHAR_SCORE, and the cut's x is
    estimated (`_char_edges`). None when either side would be empty."""
    pos = _char_edges(ln) if pos is None else pos
    if pos is None or not 0 < k < len(ln.text):
        return None
    n = len(ln.text)
    x0, y0, x1, y1 = ln.bbox
    left, right = ln.text[:k].rstrip(), ln.text[k:].lstrip()
    if not left or not right:
        return None
    scores = list(ln.char_scores) if ln.char_scores else [ln.score] * n
    scores[k - 1] = min(scores[k - 1], CUT_CHAR_SCORE)
    scores[k] = min(scores[k], CUT_CHAR_SCORE)
    cut = int(round(pos[k]))
    a_scores = scores[: len(ln.text[:k].rstrip())]
    b_scores = scores[n - len(right):]
    a = TextLine(left, (x0, y0, cut, y1), min(a_scores), a_scores, ln.model, cut=True)
    b = TextLine(right, (cut, y0, x1, y1), min(b_scores), b_scores, ln.model, cut=True)
    return a, b


def cut_cell(
    cell: Cell, axis: int, start: int, span: int, lo: int, hi: int, lines: list[TextLine] | None = None
) -> Cell:
    """The piece of `cell` over lattice bands [start, start + span) along `axis` (0: columns,
    1: rows), from pixel `lo` to `hi` on that axis; `lines`, when given, become its text."""
    x0, y0, x1, y1 = cell.bbox
    if axis == 0:
        piece = Cell(cell.row, start, cell.row_span, span, (lo, y0, hi, y1))
    else:
        piece = Cell(start, cell.col, span, cell.col_span, (x0, lo, x1, hi))
    if lines is not None:
        piece.lines = list(lines)
        finish_cell(piece)
    return piece


def _crosses(ln: TextLine, cut: int, axis: int) -> bool:
    """A line runs across `cut` (more than its boxes' sideways padding: a real crossing is deeper)."""
    a, b = (ln.bbox[0], ln.bbox[2]) if axis == 0 else (ln.bbox[1], ln.bbox[3])
    tol = 0.6 * (ln.bbox[3] - ln.bbox[1])
    return a + tol < cut < b - tol


def split_by_text(grid: Grid) -> int:
    """Split merged cells whose text sits in separate lattice bands with wide gaps between.

    A rule erased along its whole length (heavy scans) reads as a merged cell;
    when its text falls apart into blocks that each sit inside one lattice band,
    far apart compared with the line height, the cell is really several cells.
    Returns how many cells were split.
    """
    g = grid
    new_cells: list[Cell] = []
    n_split = 0
    for c in g.cells:
        parts = None
        if len(c.lines) >= 2 and (c.col_span > 1 or c.row_span > 1):
            h = float(np.median([ln.bbox[3] - ln.bbox[1] for ln in c.lines]))
            for axis, span in ((0, c.col_span), (1, c.row_span)):
                if span <= 1:
                    continue
                base = c.col if axis == 0 else c.row
                lines_pos = g.col_lines if axis == 0 else g.row_lines
                cuts = [lines_pos[base + k] for k in range(1, span)]
                # lattice lines that a text line runs across are no lost rule here (a stray
                # line from another row may fall inside a label); the others may be
                kept = [k for k in range(1, span) if not any(_crosses(ln, cuts[k - 1], axis) for ln in c.lines)]
                if not kept:
                    continue
                kept_cuts = [cuts[k - 1] for k in kept]

                def band_of(ln: TextLine, axis: int = axis, kept_cuts: list[int] = kept_cuts) -> int:
                    a, b = (ln.bbox[0], ln.bbox[2]) if axis == 0 else (ln.bbox[1], ln.bbox[3])
                    return sum(1 for cut in kept_cuts if cut <= (a + b) / 2)

                by_kept = lines_into_bands(c.lines, len(kept) + 1, band_of)
                if by_kept is None:  # never: no line crosses a kept cut
                    continue
                # band j (j kept cuts to the left) starts at lattice offset 0 or kept[j - 1]
                groups = {(0 if j == 0 else kept[j - 1]): lns for j, lns in enumerate(by_kept) if lns}
                if len(groups) < 2:
                    continue
                bands = sorted(groups)
                ok = True
                for b0, b1 in zip(bands, bands[1:], strict=False):
                    end = max(ln.bbox[2 + axis] for ln in groups[b0])
                    start = min(ln.bbox[axis] for ln in groups[b1])
                    if axis == 0:  # the gap between the glyphs: without the boxes' side padding
                        end -= PAD_AFTER * h
                        start += PAD_BEFORE * h
                    if start - end < (0.9 if axis == 0 else 0.5) * h:
                        ok = False
                if ok:
                    parts = (axis, bands, groups, cuts)
                    break
        if parts is None:
            new_cells.append(c)
            continue
        axis, bands, groups, cuts = parts
        n_split += 1
        edges = [c.bbox[axis]] + cuts + [c.bbox[axis + 2]]
        base = c.col if axis == 0 else c.row
        span = c.col_span if axis == 0 else c.row_span
        band_bounds = bands + [span]
        for i, band in enumerate(band_bounds[:-1]):
            lo = 0 if i == 0 else band
            hi = band_bounds[i + 1]
            new_cells.append(cut_cell(c, axis, base + lo, hi - lo, edges[lo], edges[hi], groups.get(band, [])))
    g.cells = new_cells
    return n_split
