"""Normalize: a form's table rows -> a FormRecord with canonical keys and typed values.

The table is read as the forms are laid out: a header grid of label | value
pairs (with a 项目资金 block and a 年度总体目标 block on some layouts), then
an indicator table whose header row names the columns. Labels are matched
against the lexicon in models/ (tolerant of OCR noise); values are typed by
the schema. Merged level1/level2 cells repeat down the rows they span, also
across a page break where the label is printed on one side only.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from .assemble import FormPages, TableRow, is_title_text
from .celltext import cut_cell, lines_into_bands
from .lexicon import LabelMatcher, get_matcher, snap_term, to_simplified
from .types import BBox, Cell, FormRecord, TextLine, Value
from .values import (
    fiscal_year_from_title,
    join_lines,
    parse_value,
    repair_enumeration,
    split_level1,
    strip_specks,
)

_SPECKS = ".,·:;'`_-，。、‘’\""
_TOTAL_RE = re.compile(r"^(合\s*计|总\s*分|合计得分|总\s*计)$")
_NOTES_RE = re.compile(r"^(说\s*明|注[:：])")
_DASHES = {"-", "—", "–", "－", "/"}


def _clean(text: str) -> str:
    return re.sub(r"\s+", "", text or "")


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
    """

    def __init__(self) -> None:
        self.grid: object | None = None
        self.edges: list[float] = []
        self._shift: dict[int, float] = {}

    def set_reference(self, row: TableRow) -> None:
        self.grid = row.grid
        self.edges = sorted({float(x) for c in row.cells for x in (c.bbox[0], c.bbox[2])} | {
            float(x) for x in row.grid.col_lines})
        self._shift = {id(row.grid): 0.0}

    def shift(self, grid: object) -> float:
        if self.grid is None:
            return 0.0
        key = id(grid)
        if key not in self._shift:
            lines = [float(x) for x in grid.col_lines]  # type: ignore[attr-defined]
            tol = 10.0
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


def _column_of(cell: Cell, row: TableRow, cols: list[Column], frame: ColumnFrame) -> Column | None:
    a, b = frame.span(cell, row)
    best = max(cols, key=lambda c: c.overlap(a, b), default=None)
    if best is None or best.overlap(a, b) <= 0.3 * min(b - a, best.x1 - best.x0):
        return None
    return best


# The indicator table's leading columns come in this order on every layout; the
# others (explanation, rule, values, weight, score, remark) vary, but all sit after them.
_LEAD_ORDER = {"level1": 0, "level2": 1, "name": 2}


def _in_order(key: str, cell: Cell, cols: list[Column]) -> bool:
    """Whether a header cell at this x could carry `key`, given the columns already named."""
    rank = _LEAD_ORDER.get(key, 3)
    for col in cols:
        other = _LEAD_ORDER.get(col.key, 3)
        if other == rank:
            continue
        if (rank < other) != (cell.bbox[0] < col.x0):
            return False
    return True


class RecordBuilder:
    """Reads one form's rows into a FormRecord."""

    def __init__(self, matcher: LabelMatcher) -> None:
        self.m = matcher
        self.frame = ColumnFrame()

    # --- values -------------------------------------------------------------------------
    def value(self, kind: str, cells: list[Cell], page: int, label_score: float = 1.0) -> Value:
        raw = join_lines([c.text for c in cells if c.text])
        bbox = _union([c.bbox for c in cells]) if cells else None
        ocr_conf = min((c.confidence for c in cells if c.text), default=1.0)
        evidence = cell_evidence(cells, label_score)
        if _clean(raw) in _DASHES or not _clean(raw):
            return Value(value=None, raw=raw, confidence=ocr_conf * label_score, page=page, bbox=bbox,
                         evidence=evidence | {"empty": 1.0, "parsed": 1.0})
        if kind == "text":
            raw_clean = strip_specks(raw)
            raw = raw_clean if raw_clean else raw
            if ocr_conf < 1.0:  # read by OCR (a text layer is taken as printed)
                raw = repair_enumeration(to_simplified(raw))
        val, ok = parse_value(kind, raw)
        conf = ocr_conf * label_score * (1.0 if ok else 0.3)
        reasons = [] if ok else [f"could not parse as {kind}"]
        evidence |= {"empty": 0.0, "parsed": 1.0 if ok else 0.0}
        return Value(value=val, raw=raw, confidence=conf, page=page, bbox=bbox, reasons=reasons, evidence=evidence)

    # --- the whole form -------------------------------------------------------------------
    def build(self, form: FormPages, file: str, index: int) -> FormRecord:
        rec = FormRecord(file=file, form_index=index, pages=form.page_numbers)
        self.frame = ColumnFrame()
        self._title(form, rec)
        rows = form.rows()
        state = "header"
        funding_cols: list[Column] = []
        goal_cols: list[Column] = []
        ind_cols: list[Column] = []
        ind_rows: list[tuple[TableRow, dict[str, tuple[Cell, float]]]] = []
        for row in rows:
            texts = [_clean(c.text) for c in row.cells]
            if state == "done":
                break
            if texts and any(_NOTES_RE.match(t) for t in texts[:2]):
                state = "done" if state == "indicators" else state
                continue
            if state != "indicators":
                cols = self._indicator_header(row)
                if cols:
                    ind_cols, state = cols, "indicators"
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
                picked = self._indicator_cells(row, ind_cols)
                if picked:
                    ind_rows.append((row, picked))
        rec.indicators = self._indicators(ind_rows, ind_cols)
        self._funding_fields(rec)
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
            if m.key not in rec.fields or rec.fields[m.key].value is None:
                v = self.value(self.m.kind("fields", m.key), vals, row.page, m.score)
                v.label = "".join(x.text for x in cells[i : i + step])
                rec.fields[m.key] = v
            i = j if vals else i + step

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
            col = _column_of(c, row, cols, self.frame)
            if col is None:
                if c.text and src_cell is None and self.m.match(c.text, "funding_rows") is not None:
                    src_cell = c
                elif (c.text and src_cell is None and not self.m.match(c.text, "fields")
                      and not self.m.match(c.text, "structure") and not self.m.match(c.text, "goal")):
                    src_cell = c  # an unknown row label: kept as written
                continue
            out[col.key] = self.value(self.m.kind("funding", col.key), [c], row.page)
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
            col = _column_of(c, row, cols, self.frame)
            if col is None or not c.text:
                continue
            rec.fields[col.key] = self.value("text", [c], row.page)
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

        from .lexicon import clean_label

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
            best = [(d, k) for d, k in best if _in_order(k, c, out)]
            if not best:
                continue
            dmin = min(d for d, _ in best)
            near = {k for d, k in best if d == dmin}
            if len(near) == 1:
                key = near.pop()
                taken.add(key)
                out.append(Column(key, float(c.bbox[0]), float(c.bbox[2])))
        # by elimination: the one cell left unread is the one number column still missing
        # (权重 / 分值 / 得分 are two-character labels: one misread character and no match)
        left = [c for c in row.cells if clean_label(c.text)
                and not any(col.x0 == c.bbox[0] and col.x1 == c.bbox[2] for col in out)]
        missing = [k for k in ("weight", "score") if k not in taken]
        if len(left) == 1 and len(missing) == 1 and len(clean_label(left[0].text)) <= 4:
            out.append(Column(missing[0], float(left[0].bbox[0]), float(left[0].bbox[2])))
        return sorted(out, key=lambda col: col.x0)

    def _indicator_cells(self, row: TableRow, cols: list[Column]) -> dict[str, tuple[Cell, float]]:
        picked: dict[str, tuple[Cell, float]] = {}
        for c in row.covering:
            a, b = self.frame.span(c, row)
            for col in cols:
                ov = col.overlap(a, b)
                if ov <= 0.5 * (col.x1 - col.x0):
                    continue
                if col.key in picked and picked[col.key][1] >= ov:
                    continue
                picked[col.key] = (c, ov)
        # a row must start here with some content of its own (not only merged cells from above)
        own = [c for c in row.cells if c.text]
        if not own:
            return {}
        return self._split_shared(picked, row, cols)

    def _split_shared(
        self, picked: dict[str, tuple[Cell, float]], row: TableRow, cols: list[Column]
    ) -> dict[str, tuple[Cell, float]]:
        """A cell that fell across several named columns (a rule lost in the scan) is split
        between them by where its lines sit, when no line crosses a column boundary."""
        by_cell: dict[int, list[str]] = {}
        for key, (c, _) in picked.items():
            by_cell.setdefault(id(c), []).append(key)
        col_of = {c.key: c for c in cols}
        d = self.frame.shift(row.grid)
        for keys in by_cell.values():
            if len(keys) < 2:
                continue
            cell = picked[keys[0]][0]
            if not cell.lines or cell.row_span > 1:
                continue
            cols_here = [col_of[k] for k in keys]

            def column(ln: TextLine, d: float = d, cols_here: list[Column] = cols_here) -> int | None:
                a, b = ln.bbox[0] + d, ln.bbox[2] + d
                tol = 0.5 * (ln.bbox[3] - ln.bbox[1])
                home = [i for i, col in enumerate(cols_here) if col.x0 - tol <= a and b <= col.x1 + tol]
                return home[0] if len(home) == 1 else None

            parts = lines_into_bands(cell.lines, len(keys), column)
            if parts is None or sum(1 for v in parts if v) < 2:
                continue
            for k, lines in zip(keys, parts, strict=True):
                # the piece keeps the cell's lattice place; its box is its own lines' extent
                x0 = min((ln.bbox[0] for ln in lines), default=cell.bbox[0])
                x1 = max((ln.bbox[2] for ln in lines), default=cell.bbox[2])
                picked[k] = (cut_cell(cell, 0, cell.col, cell.col_span, x0, x1, lines), picked[k][1])
        return picked

    @staticmethod
    def _split_down(ind_rows: list[tuple[TableRow, dict[str, tuple[Cell, float]]]], keys: list[str]) -> None:
        """Only level1/level2 legitimately span indicator rows. Any other cell met on several
        rows lost a horizontal rule in the scan: give each row the lines inside its band."""
        for key in keys:
            if key in ("level1", "level2"):
                continue
            i = 0
            while i < len(ind_rows):
                cell = ind_rows[i][1].get(key, (None, 0.0))[0]
                j = i + 1
                while cell is not None and j < len(ind_rows) and ind_rows[j][1].get(key, (None, 0.0))[0] is cell:
                    j += 1
                if cell is not None and j - i >= 2 and cell.lines:
                    bands = []
                    for row, _ in ind_rows[i:j]:
                        g = row.grid
                        bands.append((g.row_lines[row.index], g.row_lines[row.index + 1]))

                    def band(ln: TextLine, bands: list[tuple[int, int]] = bands) -> int | None:
                        cy = (ln.bbox[1] + ln.bbox[3]) / 2
                        home = [k for k, (y0, y1) in enumerate(bands) if y0 <= cy < y1]
                        return home[0] if len(home) == 1 else None

                    parts = lines_into_bands(cell.lines, len(bands), band)
                    if parts is not None:
                        for k, (row, picked) in enumerate(ind_rows[i:j]):
                            sub = cut_cell(cell, 1, row.index, 1, bands[k][0], bands[k][1], parts[k])
                            picked[key] = (sub, picked[key][1])
                i = j

    def _total_row(self, row: TableRow, cols: list[Column], rec: FormRecord) -> bool:
        # specks on a damaged scan stick to the label (',总分'): strip them before matching
        texts = [_clean(c.text).strip(_SPECKS) for c in row.cells[:3]]
        if not any(_TOTAL_RE.match(t) for t in texts if t):
            return False
        picked = self._indicator_cells(row, cols)
        for key, dst in (("weight", "total_weight"), ("score", "total_score")):
            if key in picked and not _TOTAL_RE.match(_clean(picked[key][0].text)):
                rec.fields[dst] = self.value("number", [picked[key][0]], row.page)
        return True

    def _indicators(
        self, ind_rows: list[tuple[TableRow, dict[str, tuple[Cell, float]]]], cols: list[Column]
    ) -> list[dict[str, Value]]:
        keys = [c.key for c in cols]
        # level1/level2 cut by a page break: the label is printed on one side only
        for key in ("level1", "level2"):
            if key not in keys:
                continue
            groups: list[list[int]] = []
            last_cell = None
            for i, (_row, picked) in enumerate(ind_rows):
                cell = picked.get(key, (None, 0))[0]
                if groups and cell is last_cell:
                    groups[-1].append(i)
                else:
                    groups.append([i])
                last_cell = cell
            texts = [_clean(strip_specks(ind_rows[g[0]][1][key][0].text)) if key in ind_rows[g[0]][1] else ""
                     for g in groups]
            for gi, g in enumerate(groups):
                if texts[gi]:
                    continue
                page = ind_rows[g[0]][0].page
                prev_ok = gi > 0 and ind_rows[groups[gi - 1][-1]][0].page == page - 1 and texts[gi - 1]
                next_ok = gi + 1 < len(groups) and ind_rows[groups[gi + 1][0]][0].page == page + 1 and texts[gi + 1]
                src = groups[gi - 1] if prev_ok else groups[gi + 1] if next_ok else None
                if src is None:
                    continue
                src_cell = ind_rows[src[0]][1][key][0]
                for i in g:
                    ind_rows[i][1][key] = (src_cell, 1.0)
        if "level1" in keys:
            _fill_blank_level1(ind_rows)
        self._split_down(ind_rows, keys)
        out: list[dict[str, Value]] = []
        for row, picked in ind_rows:
            rec: dict[str, Value] = {}
            for key in keys:
                if key not in picked:
                    continue
                cell = picked[key][0]
                if key == "level1":
                    name, points = split_level1(cell.text)
                    ev = cell_evidence([cell])
                    vocab = 0.0
                    if name:
                        name, vocab = snap_term(name, "level1")
                    rec["level1"] = Value(name or None, cell.text, cell.confidence, row.page, cell.bbox,
                                          evidence=ev | {"vocab": vocab})
                    rec["level1_points"] = Value(points, cell.text, cell.confidence, row.page, cell.bbox,
                                                 evidence=dict(ev))
                else:
                    rec[key] = self.value(self.m.kind("indicators", key), [cell], row.page)
                    if key == "level2" and isinstance(rec[key].value, str):
                        rec[key].value, vocab = snap_term(rec[key].value, "level2")
                        rec[key].evidence["vocab"] = vocab
            name = rec.get("name")
            if (name is None or name.value in (None, "")) and all(
                rec.get(k) is None or rec[k].value is None for k in ("weight", "score")
            ):
                continue
            out.append(rec)
        return out


def _groups(ind_rows: list[tuple[TableRow, dict[str, tuple[Cell, float]]]], key: str) -> list[list[int]]:
    """Runs of consecutive indicator rows that share one (merged) cell in column `key`."""
    groups: list[list[int]] = []
    last = None
    for i, (_row, picked) in enumerate(ind_rows):
        cell = picked.get(key, (None, 0))[0]
        if groups and cell is not None and cell is last:
            groups[-1].append(i)
        else:
            groups.append([i])
        last = cell
    return groups


def _fill_blank_level1(ind_rows: list[tuple[TableRow, dict[str, tuple[Cell, float]]]]) -> None:
    """A blank 一级指标 piece on a page: the merged cell was cut by a rule that isn't there.

    Every indicator belongs to a 一级指标, so a blank piece (a scratch or dust taken
    for a rule, or the rule between level1 and the label's own piece erased) takes the
    label of a neighbouring group. Which one is decided by the form's own arithmetic:
    a level1's points are the sum of its rows' weights, so the blank rows go where
    they make the sum come true (or at least leave room in it); failing that, to the
    neighbour sharing a 二级指标 cell with them; failing that, to the one neighbour they
    don't overflow; failing that, none.
    """
    groups = _groups(ind_rows, "level1")

    def text(g: list[int]) -> str:
        cell = ind_rows[g[0]][1].get("level1", (None, 0))[0]
        return _clean(split_level1(cell.text)[0]) if cell is not None else ""  # specks are blank

    def weights(g: list[int]) -> float | None:
        total = 0.0
        for i in g:
            cell = ind_rows[i][1].get("weight", (None, 0))[0]
            val, ok = parse_value("number", cell.text) if cell is not None and cell.text else (None, False)
            if not ok or val is None:
                return None
            total += float(val)
        return total

    def shares_level2(a: list[int], b: list[int]) -> bool:
        cells_a = {id(ind_rows[i][1]["level2"][0]) for i in a if "level2" in ind_rows[i][1]}
        return any(id(ind_rows[i][1]["level2"][0]) in cells_a for i in b if "level2" in ind_rows[i][1])

    texts = [text(g) for g in groups]
    for gi, g in enumerate(groups):
        if texts[gi]:
            continue
        page = ind_rows[g[0]][0].page
        cands = [j for j in (gi - 1, gi + 1)
                 if 0 <= j < len(groups) and texts[j] and any(ind_rows[i][0].page == page for i in groups[j])]
        if not cands:
            continue
        w_blank = weights(g)
        exact, room, over = [], [], []
        for j in cands:
            points = split_level1(ind_rows[groups[j][0]][1]["level1"][0].text)[1]
            w_nb = weights(groups[j])
            if points is None or w_blank is None or w_nb is None:
                continue
            if abs(w_nb + w_blank - float(points)) < 0.01:
                exact.append(j)
            elif w_nb + w_blank < float(points):
                room.append(j)
            else:
                over.append(j)
        shared = [j for j in cands if shares_level2(g, groups[j])]
        possible = [j for j in cands if j not in over]
        pick = next((c for c in (exact, room, shared, possible) if len(c) == 1), None)
        if pick is None:
            continue
        src = ind_rows[groups[pick[0]][0]][1]["level1"][0]
        for i in g:
            ind_rows[i][1]["level1"] = (src, 1.0)


def cell_evidence(cells: list[Cell], label_score: float = 1.0) -> dict[str, float]:
    """OCR evidence for a value read from these cells: character scores and how much was read."""
    scores: list[float] = []
    n_lines = 0
    for c in cells:
        for t in c.lines:
            n_lines += 1
            scores += t.char_scores if t.char_scores else [t.score] * max(1, len(t.text))
    n_chars = sum(len(c.text.replace(" ", "")) for c in cells)
    # Σ log p is how likely an exact read is (short text must match exactly); Σ (1 - p) / n is the
    # expected character error rate (long text may have 2 % of its characters wrong).
    clipped = [min(1.0, max(1e-3, s)) for s in scores]
    return {
        "ocr_sumlog": float(sum(math.log(s) for s in clipped)),
        "ocr_experr": float(sum(1 - s for s in clipped) / len(clipped)) if clipped else 0.0,
        "ocr_min": min(scores) if scores else 1.0,
        "ocr_mean": sum(scores) / len(scores) if scores else 1.0,
        "ocr_low": sum(s < 0.9 for s in scores) / len(scores) if scores else 0.0,
        "n_chars": float(n_chars),
        "n_lines": float(n_lines),
        "label": float(label_score),
    }


def _union(boxes: list[BBox]) -> BBox:
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def build_records(forms: list[FormPages], file: str, matcher: LabelMatcher | None = None) -> list[FormRecord]:
    b = RecordBuilder(matcher or get_matcher())
    return [b.build(f, file, i) for i, f in enumerate(forms)]
