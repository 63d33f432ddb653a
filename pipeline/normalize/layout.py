"""Section layout: a form's table rows read in the order the forms are laid out.

A header grid of label | value pairs (with a 项目资金 block and a 年度总体目标 block on
some layouts), then an indicator table whose header row names the columns, up to its
合计 row or the notes. Which block a row belongs to is this module's job; where a cell
sits is `columns`', typing a value `cellvalue`'s, the indicator rows `indicators`'.
"""

from __future__ import annotations

import re

from ..assemble import FormPages, TableRow, is_title_text
from ..celltext import cut_cell, cut_line_at, group_visual_lines, lines_into_bands
from ..lexicon import LabelMatcher, get_matcher
from ..types import Cell, FormRecord, TextLine, Value
from ..values import fiscal_year_from_title
from .cellvalue import clean, typed_value
from .columns import Column, ColumnFrame, column_of, in_order, lines_by_column
from .indicators import (
    IndicatorRow,
    indicator_cells,
    indicator_values,
    infer_missing_score,
    infer_missing_weights,
    repair,
)

_SPECKS = ".,·:;'`_-，。、‘’\""
_TOTAL_RE = re.compile(r"^(合\s*计|总\s*分|合计得分|总\s*计)$")
_NOTES_RE = re.compile(r"^(说\s*明|注[:：])")


class RecordBuilder:
    """Reads one form's rows into a FormRecord."""

    def __init__(self, matcher: LabelMatcher) -> None:
        self.m = matcher
        self.frame = ColumnFrame()

    # --- the whole form -------------------------------------------------------------------
    def build(self, form: FormPages, file: str, index: int) -> FormRecord:
        rec = FormRecord(file=file, form_index=index, pages=form.page_numbers)
        self.frame = ColumnFrame({id(g): p.prepared.scale.unit for p in form.pages for g in p.grids
                                  if p.prepared.scale is not None})
        self._title(form, rec)
        rows = form.rows()
        state = "header"
        funding_cols: list[Column] = []
        goal_cols: list[Column] = []
        ind_cols: list[Column] = []
        ind_rows: list[IndicatorRow] = []
        header_cells: set[int] = set()  # ids of the indicator header row's cells
        for row in rows:
            texts = [clean(c.text) for c in row.cells]
            if state == "done":
                break
            if texts and any(_NOTES_RE.match(t) for t in texts[:2]):
                state = "done" if state == "indicators" else state
                continue
            if state != "indicators":
                cols = self._indicator_header(row)
                if cols:
                    ind_cols, state = cols, "indicators"
                    header_cells = {id(c) for c in row.cells}
                    self.frame.set_reference(row)
                    continue
                cols = self._funding_header(row)
                if cols:
                    self.frame.set_reference(row)
                    funding_cols, state = cols, "funding"
                    continue
                cols = self._goal_header(row)
                if cols:
                    self.frame.set_reference(row)
                    goal_cols, state = cols, "goal"
                    continue
                if state == "funding" and self._funding_row(row, funding_cols, rec):
                    continue
                if state == "goal" and self._goal_row(row, goal_cols, rec):
                    state = "header"
                    continue
                state = "header" if state in ("funding", "goal") else state
                self._pairs(row, rec)
            else:
                if self._total_row(row, ind_cols, rec):
                    state = "done"
                    continue
                if any(id(c) in header_cells for c in row.covering):
                    # a header cell run down into the rows below (the rule under '备注' lost in its
                    # column, dev heavy d015): a label, not the first row's remark
                    row = TableRow(row.page, row.grid, row.index, row.cells,
                                   [c for c in row.covering if id(c) not in header_cells])
                picked = indicator_cells(row, ind_cols, self.frame)
                if picked:
                    ind_rows.append(IndicatorRow(row, picked))
        keys = [c.key for c in ind_cols]
        repair(ind_rows, keys)
        rec.indicators = indicator_values(ind_rows, keys, self.m)
        self._trailing_total(rec)
        infer_missing_weights(rec.indicators, rec.fields.get("total_weight"))
        self._funding_fields(rec)
        infer_missing_score(rec.indicators, rec.fields.get("total_score"), rec.fields.get("funding_score"),
                            {p.page_no for p in form.pages if p.kind != "vector"})
        return rec

    # --- title ----------------------------------------------------------------------------
    def _title(self, form: FormPages, rec: FormRecord) -> None:
        titles = [t for t in form.title_lines if is_title_text(t.text)]
        page = form.page_numbers[0]
        if titles:
            t = max(titles, key=lambda t: len(t.text))
            text = re.sub(r"\s+", "", t.text).strip(".,·:;'`_-，。、")  # specks at the ends
            rec.fields["form_title"] = Value(text, t.text, t.score, page, t.bbox)
        year = None
        for t in form.title_lines:
            y = fiscal_year_from_title(t.text)
            if y:
                year = Value(y, t.text, t.score, page, t.bbox)
                break
        if year:
            rec.fields["fiscal_year"] = year

    # --- header grid: label | value pairs ----------------------------------------------------
    def _pairs(self, row: TableRow, rec: FormRecord) -> None:
        cells = row.cells
        i = 0
        while i < len(cells):
            c = cells[i]
            m = self.m.match(c.text, "fields") if c.text else None
            step = 1
            if m is None and i + 1 < len(cells) and c.text and cells[i + 1].text:
                # labels broken over two cells by a damaged scan ('自评 | 时间')
                m2 = self.m.match(c.text + cells[i + 1].text, "fields")
                if m2 is not None and m2.score >= 0.9:
                    m, step = m2, 2
            if m is None:
                i += 1
                continue
            j = i + step
            vals: list[Cell] = []
            while j < len(cells):
                nxt = cells[j]
                if nxt.text and self.m.match(nxt.text, "fields") is not None:
                    break
                vals.append(nxt)
                j += 1
                break  # one value cell per label; merged value cells are one cell
            while (vals and j < len(cells) and _continues(vals[-1], cells[j])
                   and not (cells[j].text and self.m.match(cells[j].text, "fields") is not None)):
                vals.append(cells[j])  # the value runs on across a spurious rule
                j += 1
            piece = self._shared_value(c, row) if step == 1 else None
            if piece is None and step == 1 and not any(x.text for x in vals):
                piece = self._value_in_label(c, m.key)
            if piece is not None:
                vals = [piece]
            if m.key not in rec.fields or rec.fields[m.key].value is None:
                score = m.score
                if vals and vals[0].text and (lm := self.m.match(vals[0].text)) is not None and lm.score >= 0.9:
                    # the value cell holds a label of the form (分值 beside 实施单位: cells shifted by a
                    # lost rule, dev heavy d012): which cell is this label's value is in doubt
                    score = min(score, 0.5)
                v = typed_value(self.m.kind("fields", m.key), vals, row.page, score)
                v.label = "".join(x.text for x in cells[i : i + step])
                if piece is not None:
                    v.evidence["repaired"] = 1.0  # which lines are whose is an estimate: reviewed
                rec.fields[m.key] = v
            i = j if vals else i + step

    def _value_in_label(self, label: Cell, key: str) -> Cell | None:
        """The value read into its label's cell, or None: a vertical rule lost between a label and
        its value makes one cell of both (dev heavy d011: '是否为经常性项目是', is_recurring missing).
        The start of the cell's text that is that label best, and better than the whole text is,
        is the label; the rest of its lines (a line cut where the label ends) the value. A bracket
        or unit after the label ('(元)') is no value."""
        lines = [t for r in group_visual_lines(label.lines) for t in r]
        text = "".join(t.text for t in lines)
        if text != label.text:
            return None
        whole = self.m.match(text, "fields")
        heads = [(h.score, k) for k in range(2, len(text))
                 if (h := self.m.match(text[:k], "fields")) is not None and h.key == key and h.score >= 0.9]
        if whole is None or not heads or max(heads)[0] <= whole.score:
            return None
        k = max(heads)[1]
        rest = text[k:].strip()
        if not rest or rest[0] in "(（[【%％:：" or self.m.match(rest) is not None:
            return None
        value: list[TextLine] = []
        start = 0
        for t in lines:
            end = start + len(t.text)
            if start >= k:
                value.append(t)
            elif end > k and t.text[k - start :].strip():  # the label ends inside this line: its tail
                pieces = cut_line_at(t, k - start)
                if pieces is None:
                    return None
                value.append(pieces[1])
            start = end
        x0 = min(t.bbox[0] for t in value)
        return cut_cell(label, 0, label.col, label.col_span, x0, label.bbox[2], value)

    def _shared_value(self, label: Cell, row: TableRow) -> Cell | None:
        """The piece beside `label` of a value cell that runs down past it, or None.

        A horizontal rule lost in the value column only makes one cell of the values of two
        label rows (dev heavy d029: 绩效等级's 优秀 and 主要绩效's text, the grade taken as
        '优秀多个相关集体…' and the achievements as missing). Where every lattice row the value
        spans has a fields label of its own beside it, each label takes the value's lines in
        its own band (as `indicators.split_down` does for indicator rows)."""
        v = next((x for x in row.covering if x.col == label.col_end and x.row <= label.row < x.row_end), None)
        if v is None or not v.lines or (v.row == label.row and v.row_end == label.row_end):
            return None
        beside = sorted((x for x in row.grid.cells if x.col_end == v.col and x.row < v.row_end and x.row_end > v.row),
                        key=lambda x: x.row)
        if (len(beside) < 2 or not any(x is label for x in beside)
                or beside[0].row != v.row or beside[-1].row_end != v.row_end
                or any(a.row_end != b.row for a, b in zip(beside, beside[1:], strict=False))
                or not all(x.text and self.m.match(x.text, "fields") is not None for x in beside)):
            return None
        edges = row.grid.row_lines
        bands = [(edges[x.row], edges[x.row_end]) for x in beside]

        def home(ln: TextLine) -> int | None:
            cy = (ln.bbox[1] + ln.bbox[3]) / 2
            inside = [k for k, (y0, y1) in enumerate(bands) if y0 <= cy < y1]
            return inside[0] if len(inside) == 1 else None

        parts = lines_into_bands(v.lines, len(bands), home)
        if parts is None:
            return None
        k = next(k for k, x in enumerate(beside) if x is label)
        return cut_cell(v, 1, label.row, label.row_span, bands[k][0], bands[k][1], parts[k])

    # --- funding block ---------------------------------------------------------------------
    def _header_cols(self, row: TableRow, section: str, min_hits: int) -> list[Column]:
        cols = []
        for c in row.cells:
            if not c.text:
                continue
            m = self.m.match(c.text, section)
            if m is not None:
                cols.append(Column(m.key, float(c.bbox[0]), float(c.bbox[2])))
        keys = {c.key for c in cols}
        return cols if len(keys) >= min_hits else []

    def _funding_header(self, row: TableRow) -> list[Column]:
        return self._header_cols(row, "funding", 3)

    def _funding_row(self, row: TableRow, cols: list[Column], rec: FormRecord) -> bool:
        src_cell = None
        out: dict[str, Value] = {}
        for c in row.cells:
            col = column_of(c, row, cols, self.frame)
            if col is None:
                if c.text and src_cell is None and self.m.match(c.text, "funding_rows") is not None:
                    src_cell = c
                elif (c.text and src_cell is None and not self.m.match(c.text, "fields")
                      and not self.m.match(c.text, "structure") and not self.m.match(c.text, "goal")):
                    src_cell = c  # an unknown row label: kept as written
                continue
            out[col.key] = typed_value(self.m.kind("funding", col.key), [c], row.page)
        if src_cell is None:
            return False
        m = self.m.match(src_cell.text, "funding_rows")
        label = m.label if m is not None else re.sub(r"\s+", "", src_cell.text)
        src = Value(label, src_cell.text, src_cell.confidence * (m.score if m else 0.5), row.page, src_cell.bbox)
        rec.funding.append({"source": src, **out})
        return True

    def _funding_fields(self, rec: FormRecord) -> None:
        """The 年度资金总额 row also fills the header fields it stands for."""
        if not rec.funding:
            return
        total = rec.funding[0]
        mapping = {
            "budget_initial": "budget_initial",
            "budget_annual": "budget_current_year",
            "executed": "budget_executed",
            "execution_rate": "execution_rate",
            "weight": "funding_weight",
            "score": "funding_score",
        }
        for src, dst in mapping.items():
            if src in total and dst not in rec.fields:
                rec.fields[dst] = total[src]

    # --- 年度总体目标 block ------------------------------------------------------------------
    def _goal_header(self, row: TableRow) -> list[Column]:
        cols = self._header_cols(row, "goal", 2)
        return cols

    def _goal_row(self, row: TableRow, cols: list[Column], rec: FormRecord) -> bool:
        got = False
        for c in row.cells:
            if not c.text:
                continue
            a, b = self.frame.span(c, row)
            over = sorted((col for col in cols if col.overlap(a, b) > 0.5 * (col.x1 - col.x0)), key=lambda k: k.x0)
            # no line cut here: a goal row's text need not line up with its header's columns
            # (dev garbled d017: lines of 年度总体目标 run 40 % into 实际完成情况's width)
            parts = lines_by_column(c, row, over, self.frame, cut=False) if len(over) >= 2 else None
            if parts is not None:
                # the rule between 年度总体目标 and 实际完成情况 lost: each its own lines
                for col, lines in zip(over, parts, strict=True):
                    if lines:
                        x0, x1 = min(ln.bbox[0] for ln in lines), max(ln.bbox[2] for ln in lines)
                        piece = cut_cell(c, 0, c.col, c.col_span, x0, x1, lines)
                        rec.fields[col.key] = typed_value("text", [piece], row.page)
                got = True
                continue
            col = column_of(c, row, cols, self.frame)
            if col is None:
                continue
            rec.fields[col.key] = v = typed_value("text", [c], row.page)
            if len(over) >= 2:  # over both columns and no split: whose text it is, is a guess
                v.evidence["repaired"] = 1.0
            got = True
        return got

    # --- indicator table ----------------------------------------------------------------------
    def _indicator_header(self, row: TableRow) -> list[Column]:
        cols = self._header_cols(row, "indicators", 3)
        if not cols:
            return []
        cols = self._loose_header(row, cols)
        keys = {c.key for c in cols}
        if not ({"weight", "score"} & keys) or not ({"name", "level1"} & keys):
            return []
        return cols

    def _loose_header(self, row: TableRow, cols: list[Column]) -> list[Column]:
        """Header cells too damaged for a label match, read in the light of the row's sure ones.

        Blurred heavy scans garble the small header print ('一组指春', '教重'). Once
        three or more cells of the row are sure indicator labels the row is the
        header, and each other cell takes the indicator label (of a key not yet
        taken) it is nearest to, if at most half its characters differ, and uniquely so.
        """
        from rapidfuzz.distance import Levenshtein

        from ..lexicon import clean_label

        if len({c.key for c in cols}) < 3:
            return cols
        taken = {c.key for c in cols}
        out = list(cols)
        for c in row.cells:
            t = clean_label(c.text)
            if not t or any(col.x0 == c.bbox[0] and col.x1 == c.bbox[2] for col in cols):
                continue
            best: list[tuple[int, str]] = []
            for key in self.m.keys("indicators"):
                if key in taken:
                    continue
                for label in self.m.labels("indicators", key):
                    d = Levenshtein.distance(t, label)
                    if 2 * d <= max(len(t), len(label)) and d < len(label):
                        best.append((d, key))
            best = [(d, k) for d, k in best if in_order(k, c, out)]
            if not best:
                continue
            dmin = min(d for d, _ in best)
            near = {k for d, k in best if d == dmin}
            if near == {"level1", "level2"} and not any(col.x0 < c.bbox[0] for col in out):
                # '级指标': the 一 / 二 lost (a thin bilevel stroke). A 二级指标 column never
                # comes first: the leftmost column is the 一级指标 (d049: 22 cells)
                near = {"level1"}
            if len(near) == 1:
                key = near.pop()
                taken.add(key)
                out.append(Column(key, float(c.bbox[0]), float(c.bbox[2])))
        # the leftmost cell, unread, left of a named 二级指标 / 指标名称 column: the 一级指标 that
        # leads every layout with one (_LEAD_ORDER). On dev d014, recognition in bfloat16 read its
        # blurred '一级指标' as '一数段春' (3 edits of 4), and the form lost the level1 and weight
        # columns of all 13 indicators. Three to five characters, as the label has: a 序号 is no 一级指标
        first = min((c for c in row.cells if clean_label(c.text)), key=lambda c: c.bbox[0], default=None)
        if (first is not None and "level1" not in taken and {"level2", "name"} & taken
                and not any(col.x0 == first.bbox[0] and col.x1 == first.bbox[2] for col in out)
                and 3 <= len(clean_label(first.text)) <= 5 and in_order("level1", first, out)):
            taken.add("level1")
            out.append(Column("level1", float(first.bbox[0]), float(first.bbox[2])))
        # by elimination: the one cell left unread is the one number column still missing
        # (权重 / 分值 / 得分 are two-character labels: one misread character and no match)
        left = [c for c in row.cells if clean_label(c.text)
                and not any(col.x0 == c.bbox[0] and col.x1 == c.bbox[2] for col in out)]
        missing = [k for k in ("weight", "score") if k not in taken]
        if len(left) == 1 and len(missing) == 1 and len(clean_label(left[0].text)) <= 4:
            out.append(Column(missing[0], float(left[0].bbox[0]), float(left[0].bbox[2])))
        return sorted(out, key=lambda col: col.x0)

    def _total_row(self, row: TableRow, cols: list[Column], rec: FormRecord) -> bool:
        if not any(_is_total(c.text) for c in row.cells[:3] if c.text):
            return False
        picked = indicator_cells(row, cols, self.frame)
        for key, dst in (("weight", "total_weight"), ("score", "total_score")):
            if key in picked and not _TOTAL_RE.match(clean(picked[key].cell.text)):
                rec.fields[dst] = typed_value("number", [picked[key].cell], row.page)
        return True

    @staticmethod
    def _trailing_total(rec: FormRecord) -> None:
        """The 合计 row under an erased rule was read as part of the last indicator row, and
        split off from it (`split_down`) as an indicator named 合计: it is the total row."""
        if not rec.indicators:
            return
        last = rec.indicators[-1]
        name = last.get("name")
        if name is None or not isinstance(name.value, str) or not _is_total(name.value):
            return
        rec.indicators.pop()
        for key, dst in (("weight", "total_weight"), ("score", "total_score")):
            v = last.get(key)
            if v is not None and v.value is not None and dst not in rec.fields:
                rec.fields[dst] = v


def _is_total(text: str) -> bool:
    """合计 / 总分 …, with the specks a damaged scan sticks to a label (',总分') stripped."""
    return _TOTAL_RE.match(clean(text).strip(_SPECKS)) is not None


def _continues(a: Cell, b: Cell) -> bool:
    """Cell `b` carries on the text of `a` on its left: a scratch taken for a rule cut one printed
    line in two (dev heavy d012: 上 | 海市人民政府合作交流办公室). OCR cut the line's box at the
    cells' edges, so `a`'s last line ends at its right edge and `b`'s first starts at its left
    one, on the same baseline, no more than half a line apart; printed text keeps clear of a
    real rule."""
    if not a.lines or not b.lines:
        return False
    la = max(a.lines, key=lambda t: t.bbox[2])
    lb = min(b.lines, key=lambda t: t.bbox[0])
    h = max(la.bbox[3] - la.bbox[1], lb.bbox[3] - lb.bbox[1])
    tol = 0.15 * h
    overlap = min(la.bbox[3], lb.bbox[3]) - max(la.bbox[1], lb.bbox[1])
    return (a.bbox[2] - la.bbox[2] <= tol and lb.bbox[0] - b.bbox[0] <= tol
            and 0 <= lb.bbox[0] - la.bbox[2] <= 0.5 * h
            and overlap >= 0.5 * min(la.bbox[3] - la.bbox[1], lb.bbox[3] - lb.bbox[1]))


def build_records(forms: list[FormPages], file: str, matcher: LabelMatcher | None = None) -> list[FormRecord]:
    b = RecordBuilder(matcher or get_matcher())
    return [b.build(f, file, i) for i, f in enumerate(forms)]
