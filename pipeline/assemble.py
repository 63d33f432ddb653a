"""Assemble: split a file's pages into forms and lay each form out as table rows.

A form starts on a page whose title line (…财政项目…绩效自评表 / 自我评价 /
自评价, or its damaged remains) sits above the table, or whose table opens
with the header grid (项目名称 …). Other pages continue the form before
them: their indicator table goes on without a repeated header.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .types import Cell, Grid, PageResult, TextLine

# Characters of the title; a damaged title keeps a few of them.
_TITLE_RE = re.compile(r"(财政|绩效|自评|自我评价|评价表|项目支出|财政项目|支出绩效)")
_YEAR_LINE_RE = re.compile(r"^[（(]?\s*\d{4}\s*年\s*度?\s*[）)]?$")
_HEADER_START = ("项目名称", "项目名 称", "项 目 名 称")


@dataclass
class TableRow:
    """One lattice row of a grid: the cells starting in it, plus those spanning down into it."""

    page: int
    grid: Grid
    index: int  # lattice row index in its grid
    cells: list[Cell]  # cells that start in this row, left to right
    covering: list[Cell]  # every cell that covers this row (incl. merged from above), left to right


@dataclass
class FormPages:
    """The pages of one form, in order, with the title lines found above its table."""

    pages: list[PageResult]
    title_lines: list[TextLine] = field(default_factory=list)

    @property
    def page_numbers(self) -> list[int]:
        return [p.page_no for p in self.pages]

    def rows(self) -> list[TableRow]:
        """All table rows of the form, page after page (the stitched table)."""
        out: list[TableRow] = []
        for p in self.pages:
            for g in p.grids:
                for r in range(g.n_rows):
                    starts = g.cells_in_row(r)
                    covering = sorted((c for c in g.cells if c.row <= r < c.row_end), key=lambda c: c.col)
                    if covering:
                        out.append(TableRow(page=p.page_no, grid=g, index=r, cells=starts, covering=covering))
        return out


def is_title_text(text: str) -> bool:
    t = re.sub(r"\s+", "", text)
    if len(t) < 4 or len(t) > 40:
        return False
    return bool(_TITLE_RE.search(t))


def title_lines(page: PageResult) -> list[TextLine]:
    """Free lines above the page's first grid that look like (part of) a form title."""
    if not page.grids:
        return []
    top = min(g.bbox[1] for g in page.grids)
    above = [t for t in page.free_lines if t.bbox[3] <= top + 5]
    titles = [t for t in above if is_title_text(t.text) or _YEAR_LINE_RE.match(re.sub(r"\s+", "", t.text))]
    return titles


def _opens_header_grid(page: PageResult) -> bool:
    """The page's first grid starts with the header grid (项目名称 in its first rows)."""
    if not page.grids:
        return False
    g = page.grids[0]
    for c in g.cells:
        if c.row <= 1 and re.sub(r"\s+", "", c.text).startswith("项目名"):
            return True
    return False


def split_forms(pages: list[PageResult]) -> list[FormPages]:
    """Group a file's pages into forms in reading order."""
    forms: list[FormPages] = []
    for p in pages:
        if not p.grids:
            continue
        titles = title_lines(p)
        has_title = any(is_title_text(t.text) for t in titles)
        starts = has_title or _opens_header_grid(p)
        if starts or not forms:
            forms.append(FormPages(pages=[p], title_lines=titles))
        else:
            forms[-1].pages.append(p)
    return forms
