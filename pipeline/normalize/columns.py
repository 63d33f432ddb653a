"""Column geometry: which named column of a form a cell sits in, on any page of the form."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..assemble import TableRow
from ..types import Cell, Grid


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
    `units` holds each grid's page scale unit (by id; 1.0 where absent): rules within
    10 px at 200 DPI line up.
    """

    def __init__(self, units: dict[int, float] | None = None) -> None:
        self.units = units or {}
        self.grid: Grid | None = None
        self.edges: list[float] = []
        self._shift: dict[int, float] = {}

    def set_reference(self, row: TableRow) -> None:
        self.grid = row.grid
        self.edges = sorted({float(x) for c in row.cells for x in (c.bbox[0], c.bbox[2])} | {
            float(x) for x in row.grid.col_lines})
        self._shift = {id(row.grid): 0.0}

    def shift(self, grid: Grid) -> float:
        if self.grid is None:
            return 0.0
        key = id(grid)
        if key not in self._shift:
            lines = [float(x) for x in grid.col_lines]
            tol = 10.0 * self.units.get(key, 1.0)
            best = 0.0
            cands = sorted({round(e - c) for e in self.edges for c in lines}, key=abs)
            if cands and lines:
                # every candidate shift scored at once (the same sums; the first best wins, as before)
                d = np.array(cands, dtype=np.float64)[:, None, None]
                c = np.array(lines)[None, :, None]
                e = np.array(self.edges)[None, None, :]
                scores = (np.abs(c + d - e) <= tol).any(axis=2).sum(axis=1)
                best = float(cands[int(np.argmax(scores))])
            self._shift[key] = best
        return self._shift[key]

    def span(self, cell: Cell, row: TableRow) -> tuple[float, float]:
        d = self.shift(row.grid)
        return cell.bbox[0] + d, cell.bbox[2] + d


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
