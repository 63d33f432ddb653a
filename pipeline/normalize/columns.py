"""Column geometry: which named column of a form a cell sits in, on any page of the form."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..assemble import TableRow
from ..celltext import cut_line, lines_into_bands
from ..types import Cell, Grid, TextLine


@dataclass
class Column:
    key: str
    x0: float  # page pixels on the page of the header row
    x1: float

    def overlap(self, a: float, b: float) -> float:
        return max(0.0, min(self.x1, b) - max(self.x0, a))


class ColumnFrame:
    """Maps x on any page of a form to x on the page whose header row named the columns.

    A continuation page is scanned with its own offset (and a damaged page may
    lose its outer rule), so its columns are found by aligning its rule
    positions to the header row's cell edges: the shift that lines up most rules.
    A photographed page also has its own scale (the phone nearer or further than for the
    header's page), so a stretch is fitted too and kept when it lines up at least
    STRETCH_GAIN more rules than the best shift (two rules always line up under some stretch).
    `units` holds each grid's page scale unit (by id; 1.0 where absent): rules within
    10 px at 200 DPI line up.
    """

    STRETCH = (0.8, 1.25)  # the scales a page of the same form is fitted at
    STRETCH_GAIN = 2

    def __init__(self, units: dict[int, float] | None = None) -> None:
        self.units = units or {}
        self.grid: Grid | None = None
        self.edges: list[float] = []
        self._fit: dict[int, tuple[float, float]] = {}

    def set_reference(self, row: TableRow) -> None:
        self.grid = row.grid
        self.edges = sorted({float(x) for c in row.cells for x in (c.bbox[0], c.bbox[2])} | {
            float(x) for x in row.grid.col_lines})
        self._fit = {id(row.grid): (1.0, 0.0)}

    def fit(self, grid: Grid) -> tuple[float, float]:
        """(scale, shift) taking x on `grid`'s page to x on the header row's page."""
        if self.grid is None:
            return 1.0, 0.0
        key = id(grid)
        if key not in self._fit:
            self._fit[key] = self._best_fit([float(x) for x in grid.col_lines], 10.0 * self.units.get(key, 1.0))
        return self._fit[key]

    def _best_fit(self, lines: list[float], tol: float) -> tuple[float, float]:
        if not lines or not self.edges:
            return 1.0, 0.0
        c = np.array(lines)
        e = np.array(self.edges)

        def matched(scale: np.ndarray, shift: np.ndarray) -> np.ndarray:
            mapped = scale[:, None, None] * c[None, :, None] + shift[:, None, None]
            return (np.abs(mapped - e[None, None, :]) <= tol).any(axis=2).sum(axis=1)

        # every candidate shift scored at once (the first best wins: the smallest shift)
        cands = np.array(sorted({round(x - y) for x in self.edges for y in lines}, key=abs), dtype=np.float64)
        scores = matched(np.ones_like(cands), cands)
        i = int(np.argmax(scores))
        best, best_score = (1.0, float(cands[i])), int(scores[i])
        if len(lines) >= 2 + self.STRETCH_GAIN:
            # a stretch: any two rules onto any two edges
            ia, ib = np.triu_indices(len(lines), 1)
            ja, jb = np.triu_indices(len(self.edges), 1)
            dc = (c[ib] - c[ia])[:, None]
            ok = dc > 0
            scale = np.where(ok, (e[jb] - e[ja])[None, :] / np.where(ok, dc, 1.0), 0.0)
            shift = e[ja][None, :] - scale * c[ia][:, None]
            keep = (scale >= self.STRETCH[0]) & (scale <= self.STRETCH[1])
            if keep.any():
                s, d = scale[keep], shift[keep]
                sc = matched(s, d)
                j = int(np.argmax(sc))
                if int(sc[j]) >= best_score + self.STRETCH_GAIN:
                    best = (float(s[j]), float(d[j]))
        return best

    def x(self, grid: Grid, x: float) -> float:
        scale, shift = self.fit(grid)
        return scale * x + shift

    def page_x(self, grid: Grid, x: float) -> float:
        """The inverse of `x`: x on the header row's page back to x on `grid`'s page."""
        scale, shift = self.fit(grid)
        return (x - shift) / scale

    def span(self, cell: Cell, row: TableRow) -> tuple[float, float]:
        return self.x(row.grid, cell.bbox[0]), self.x(row.grid, cell.bbox[2])


# A line crossing a column boundary by less than this many line heights is that line's
# detection box (or one character straddling where the rule was) reaching over: it belongs to
# the column holding the rest. Further across, it is two cells' texts read as one line.
OVERHANG = 1.5


def lines_by_column(
    cell: Cell, row: TableRow, cols: list[Column], frame: ColumnFrame, cut: bool = True
) -> list[list[TextLine]] | None:
    """The lines of a cell that fell across several named columns (`cols`, left to right: a
    rule lost in the scan), each given to the column it sits in. A line reaching over a
    boundary goes to the column holding most of it, and one running well into both
    neighbours is cut at the boundary between them (`cut_line`; with `cut` off, the cell is
    no split). None when a line fits neither way: the cell is no split."""
    grid = row.grid

    def extent(ln: TextLine) -> tuple[float, float, float]:
        """The line's x extent on the header's page, and its height."""
        return frame.x(grid, ln.bbox[0]), frame.x(grid, ln.bbox[2]), float(ln.bbox[3] - ln.bbox[1])

    def home(ln: TextLine) -> int | None:
        a, b, h = extent(ln)
        at = [i for i, col in enumerate(cols) if col.x0 - 0.5 * h <= a and b <= col.x1 + 0.5 * h]
        return at[0] if len(at) == 1 else None

    lines: list[TextLine] = []
    forced: dict[int, int] = {}  # id(line) -> column, for the lines placed here
    for ln in cell.lines:
        if home(ln) is not None:
            lines.append(ln)
            continue
        a, b, h = extent(ln)
        pair = [i for i in range(len(cols) - 1) if cols[i].x0 - 0.5 * h <= a and b <= cols[i + 1].x1 + 0.5 * h]
        if len(pair) != 1:
            return None
        left, right = cols[pair[0]], cols[pair[0] + 1]
        edge = (left.x1 + right.x0) / 2
        if edge - a < OVERHANG * h or b - edge < OVERHANG * h:
            # the box reaches over: the line is the column's that holds most of it
            lines.append(ln)
            forced[id(ln)] = pair[0] if edge - a > b - edge else pair[0] + 1
            continue
        pieces = cut_line(ln, frame.page_x(grid, edge)) if cut else None
        if pieces is None:
            return None
        lines += pieces
        forced[id(pieces[0])], forced[id(pieces[1])] = pair[0], pair[0] + 1
    return lines_into_bands(lines, len(cols), lambda ln: forced.get(id(ln), home(ln)))


def column_of(cell: Cell, row: TableRow, cols: list[Column], frame: ColumnFrame) -> Column | None:
    """The column most of `cell` lies in (None when none holds a real share of it)."""
    a, b = frame.span(cell, row)
    best = max(cols, key=lambda c: c.overlap(a, b), default=None)
    if best is None or best.overlap(a, b) <= 0.3 * min(b - a, best.x1 - best.x0):
        return None
    return best


# The indicator table's leading columns come in this order on every layout; the
# others (explanation, rule, values, weight, score, remark) vary, but all sit after them.
_LEAD_ORDER = {"level1": 0, "level2": 1, "name": 2}


def in_order(key: str, cell: Cell, cols: list[Column]) -> bool:
    """Whether a header cell at this x could carry `key`, given the columns already named."""
    rank = _LEAD_ORDER.get(key, 3)
    for col in cols:
        other = _LEAD_ORDER.get(col.key, 3)
        if other == rank:
            continue
        if (rank < other) != (cell.bbox[0] < col.x0):
            return False
    return True
