"""The indicator table: cells picked per named column, the repairs a damaged scan needs, typed rows.

Rows come in as `IndicatorRow`s (a table row and the cell picked for each column);
the repairs work on those: a cell split where a lost rule merged two columns
(`split_shared`) or two rows (`split_down`), a level1/level2 label carried across
a page break, a blank 一级指标 piece given its neighbour's label (`fill_blank_level1`).
"""

from __future__ import annotations

import re
from typing import NamedTuple

from ..assemble import TableRow
from ..celltext import cut_cell, lines_into_bands
from ..lexicon import LabelMatcher, indicator_terms, snap_term
from ..types import Cell, TextLine, Value
from ..values import parse_value, split_level1, strip_specks
from .cellvalue import cell_evidence, clean, typed_value
from .columns import Column, ColumnFrame, lines_by_column


class Pick(NamedTuple):
    """The cell read for one column of a row, and how much of the column it covers (px)."""

    cell: Cell
    overlap: float


class IndicatorRow(NamedTuple):
    """One indicator row of the table: its table row and the cell picked for each column key."""

    row: TableRow
    picked: dict[str, Pick]


def _cell(r: IndicatorRow, key: str) -> Cell | None:
    pick = r.picked.get(key)
    return pick.cell if pick is not None else None


def indicator_cells(row: TableRow, cols: list[Column], frame: ColumnFrame) -> dict[str, Pick]:
    """The cell over each named column in this row ({} for a row with no text of its own)."""
    picked: dict[str, Pick] = {}
    for c in row.covering:
        a, b = frame.span(c, row)
        for col in cols:
            ov = col.overlap(a, b)
            if ov <= 0.5 * (col.x1 - col.x0):
                continue
            if col.key in picked and picked[col.key].overlap >= ov:
                continue
            picked[col.key] = Pick(c, ov)
    # a row must start here with some content of its own (not only merged cells from above)
    own = [c for c in row.cells if c.text]
    if not own:
        return {}
    return split_shared(picked, row, cols, frame)


def split_shared(picked: dict[str, Pick], row: TableRow, cols: list[Column], frame: ColumnFrame) -> dict[str, Pick]:
    """A cell that fell across several named columns (a rule lost in the scan) is split
    between them by where its lines sit (`columns.lines_by_column`)."""
    by_cell: dict[int, list[str]] = {}
    for key, pick in picked.items():
        by_cell.setdefault(id(pick.cell), []).append(key)
    col_of = {c.key: c for c in cols}
    for keys in by_cell.values():
        if len(keys) < 2:
            continue
        cell = picked[keys[0]].cell
        if not cell.lines or cell.row_span > 1:
            continue
        keys.sort(key=lambda k: col_of[k].x0)
        parts = lines_by_column(cell, row, [col_of[k] for k in keys], frame)
        if parts is None:
            continue
        # all of its lines in one column (a lone score beside a blank remark): that column's,
        # the others blank, not the text copied into each (dev garbled d018/d032: 4 accepted
        # wrong cells)
        for k, lines in zip(keys, parts, strict=True):
            # the piece keeps the cell's lattice place; its box is its own lines' extent
            x0 = min((ln.bbox[0] for ln in lines), default=cell.bbox[0])
            x1 = max((ln.bbox[2] for ln in lines), default=cell.bbox[2])
            picked[k] = Pick(cut_cell(cell, 0, cell.col, cell.col_span, x0, x1, lines), picked[k].overlap)
    return picked


def split_down(ind_rows: list[IndicatorRow], keys: list[str]) -> None:
    """Only level1/level2 legitimately span indicator rows. Any other cell met on several
    rows lost a horizontal rule in the scan: give each row the lines inside its band."""
    for key in keys:
        if key in ("level1", "level2"):
            continue
        i = 0
        while i < len(ind_rows):
            cell = _cell(ind_rows[i], key)
            j = i + 1
            while cell is not None and j < len(ind_rows) and _cell(ind_rows[j], key) is cell:
                j += 1
            if cell is not None and j - i >= 2 and cell.lines:
                bands = [(r.row.grid.row_lines[r.row.index], r.row.grid.row_lines[r.row.index + 1])
                         for r in ind_rows[i:j]]

                def band(ln: TextLine, bands: list[tuple[int, int]] = bands) -> int | None:
                    cy = (ln.bbox[1] + ln.bbox[3]) / 2
                    home = [k for k, (y0, y1) in enumerate(bands) if y0 <= cy < y1]
                    return home[0] if len(home) == 1 else None

                parts = lines_into_bands(cell.lines, len(bands), band)
                if parts is not None:
                    for k, r in enumerate(ind_rows[i:j]):
                        sub = cut_cell(cell, 1, r.row.index, 1, bands[k][0], bands[k][1], parts[k])
                        r.picked[key] = Pick(sub, r.picked[key].overlap)
            i = j


def _runs(ind_rows: list[IndicatorRow], key: str, blanks_together: bool) -> list[list[int]]:
    """Runs of consecutive indicator rows that share one (merged) cell in column `key`;
    with `blanks_together`, rows without that column run together too."""
    groups: list[list[int]] = []
    last = None
    for i, r in enumerate(ind_rows):
        cell = _cell(r, key)
        if groups and (cell is not None or blanks_together) and cell is last:
            groups[-1].append(i)
        else:
            groups.append([i])
        last = cell
    return groups


def carry_across_page_break(ind_rows: list[IndicatorRow], keys: list[str]) -> None:
    """level1/level2 cut by a page break: the label is printed on one side only."""
    for key in ("level1", "level2"):
        if key not in keys:
            continue
        groups = _runs(ind_rows, key, blanks_together=True)
        texts = [clean(strip_specks(ind_rows[g[0]].picked[key].cell.text)) if key in ind_rows[g[0]].picked else ""
                 for g in groups]
        for gi, g in enumerate(groups):
            if texts[gi]:
                continue
            page = ind_rows[g[0]].row.page
            # the label above the break may have blank pieces of its own under it (a false rule
            # near the page's foot, heavy d014): look past them, staying on the page before
            k = gi - 1
            while k >= 0 and not texts[k] and ind_rows[groups[k][0]].row.page == page - 1:
                k -= 1
            prev_ok = k >= 0 and ind_rows[groups[k][-1]].row.page == page - 1 and texts[k]
            next_ok = gi + 1 < len(groups) and ind_rows[groups[gi + 1][0]].row.page == page + 1 and texts[gi + 1]
            src = groups[k] if prev_ok else groups[gi + 1] if next_ok else None
            if src is None:
                continue
            src_cell = ind_rows[src[0]].picked[key].cell
            for i in g:
                ind_rows[i].picked[key] = Pick(src_cell, 1.0)


def fill_blank_level1(ind_rows: list[IndicatorRow]) -> None:
    """A blank 一级指标 piece on a page: the merged cell was cut by a rule that isn't there.

    Every indicator belongs to a 一级指标, so a blank piece (a scratch or dust taken
    for a rule, or the rule between level1 and the label's own piece erased) takes the
    label of a neighbouring group. Which one is decided by the form's own arithmetic:
    a level1's points are the sum of its rows' weights, so the blank rows go where
    they make the sum come true (or at least leave room in it); failing that, to the
    neighbour sharing a 二级指标 cell with them; failing that, to the one whose label their
    二级指标 is named after; failing that, to the one neighbour they don't overflow;
    failing that, none.
    """
    groups = _runs(ind_rows, "level1", blanks_together=False)

    def text(g: list[int]) -> str:
        cell = _cell(ind_rows[g[0]], "level1")
        return clean(split_level1(cell.text)[0]) if cell is not None else ""  # specks are blank

    def weights(g: list[int]) -> float | None:
        return _weights(ind_rows, g)

    def shares_level2(a: list[int], b: list[int]) -> bool:
        cells_a = {id(ind_rows[i].picked["level2"].cell) for i in a if "level2" in ind_rows[i].picked}
        return any(id(ind_rows[i].picked["level2"].cell) in cells_a for i in b if "level2" in ind_rows[i].picked)

    def names_level2(g: list[int], label: str) -> bool:
        # a 二级指标 is named after its 一级指标: 社会效益指标 under 效益指标, 服务对象满意度指标
        # under 满意度指标 (not every one is: 数量指标 under 产出指标)
        stem = re.sub(r"(指标|目标)$", "", label)
        return len(stem) >= 2 and any(
            stem in clean(strip_specks(c.text)) for i in g if (c := _cell(ind_rows[i], "level2")) is not None
        )

    texts = [text(g) for g in groups]
    for gi, g in enumerate(groups):
        if texts[gi]:
            continue
        page = ind_rows[g[0]].row.page
        cands = [j for j in (gi - 1, gi + 1)
                 if 0 <= j < len(groups) and texts[j] and any(ind_rows[i].row.page == page for i in groups[j])]
        if not cands:
            continue
        w_blank = weights(g)
        exact, room, over = [], [], []
        for j in cands:
            points = split_level1(ind_rows[groups[j][0]].picked["level1"].cell.text)[1]
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
        named = [j for j in cands if names_level2(g, texts[j])]
        possible = [j for j in cands if j not in over]
        pick = next((c for c in (exact, room, shared, named, possible) if len(c) == 1), None)
        if pick is None:
            continue
        src = ind_rows[groups[pick[0]][0]].picked["level1"].cell
        for i in g:
            ind_rows[i].picked["level1"] = Pick(src, 1.0)


def _weights(ind_rows: list[IndicatorRow], rows: list[int]) -> float | None:
    """The sum of these rows' weights, or None when one of them is not a number."""
    total = 0.0
    for i in rows:
        cell = _cell(ind_rows[i], "weight")
        val, ok = parse_value("number", cell.text) if cell is not None and cell.text else (None, False)
        if not ok or val is None:
            return None
        total += float(val)
    return total


_REMAINS_RE = re.compile(r"[分()（）.,，。·\s]")


def level1_reading(text: str) -> tuple[str, float | int | None]:
    """(name, points) of a 一级指标 cell. A cell that took in lines of the next column (the rule
    between them lost: '支持并发访问用户数效果目标 (15分). 预计产生效果') is read for the one
    level1 term inside it and the one 'N分' (heavy scans, d029 / d013: 10 cells)."""
    name, points = split_level1(text)
    terms = indicator_terms().get("level1", frozenset())
    if not name or snap_term(clean(name), "level1")[1] > 0:
        return name, points  # a term, or a damaged one (产出运标): `snap_term` reads it
    flat = clean(text)
    # terms of four characters and more: a short one (产出, 管理) lies inside damaged longer ones
    found = {t for t in terms if len(t) >= 4 and t in flat}
    found = {t for t in found if not any(t != u and t in u for u in found)}  # 产出 inside 产出目标
    if len(found) != 1:
        return name, points
    if points is None:
        figures = _POINTS_IN_RE.findall(flat)
        if len(figures) == 1:
            points = int(figures[0])
    return found.pop(), points


_POINTS_IN_RE = re.compile(r"(?<![0-9.])([0-9]{1,3})分")


def join_split_level1(ind_rows: list[IndicatorRow]) -> None:
    """A 一级指标 cut in two by a rule that isn't there: its name in one piece, its points
    in the next ('产出目标' over '(34分)', '产出目标（34' over '分)').

    The pieces are one label when the first has a name, the second no name (only the
    points, or only what the first left of them), and their joined text has both; and the form's arithmetic does not say otherwise (the
    rows' weights, where all read, do not add up to more than the points). Both pieces'
    rows then share the joined label (heavy scans, d060 / d029: 8 cells of level1 points)."""
    groups = _runs(ind_rows, "level1", blanks_together=False)
    gi = 0
    while gi + 1 < len(groups):
        a, b = _cell(ind_rows[groups[gi][0]], "level1"), _cell(ind_rows[groups[gi + 1][0]], "level1")
        same_page = ind_rows[groups[gi][0]].row.page == ind_rows[groups[gi + 1][0]].row.page
        if a is None or b is None or not same_page or not a.text or not b.text:
            gi += 1
            continue
        name_a, points_a = split_level1(a.text)
        name_b, _ = split_level1(b.text)
        joined = a.text.rstrip() + b.text.strip()
        name_j, points_j = split_level1(joined)
        rows = groups[gi] + groups[gi + 1]
        w = _weights(ind_rows, rows)
        # the second piece holds no name: the points, or what the first piece left of them ('分)')
        rest_only = not clean(name_b) or (points_a is not None and not _REMAINS_RE.sub("", clean(b.text)))
        if (clean(name_a) and rest_only and clean(name_j) == clean(name_a) and points_j is not None
                and (w is None or w <= float(points_j) + 0.01)):
            cell = Cell(a.row, a.col, a.row_span + b.row_span, a.col_span,
                        (min(a.bbox[0], b.bbox[0]), a.bbox[1], max(a.bbox[2], b.bbox[2]), b.bbox[3]),
                        text=joined, confidence=min(a.confidence, b.confidence), lines=a.lines + b.lines)
            for i in rows:
                ind_rows[i].picked["level1"] = Pick(cell, 1.0)
            groups[gi:gi + 2] = [rows]
            continue
        gi += 1


def repair(ind_rows: list[IndicatorRow], keys: list[str]) -> None:
    """The table's repairs, in order: labels across page breaks, split and blank level1
    pieces, lost row rules."""
    carry_across_page_break(ind_rows, keys)
    if "level1" in keys:
        join_split_level1(ind_rows)
        fill_blank_level1(ind_rows)
    split_down(ind_rows, keys)


def indicator_values(ind_rows: list[IndicatorRow], keys: list[str], matcher: LabelMatcher) -> list[dict[str, Value]]:
    """Each row's cells typed by the schema; rows with no name and no number are left out."""
    out: list[dict[str, Value]] = []
    group_of: dict[int, list[int]] = {}
    if "level1" in keys:
        groups = _runs(ind_rows, "level1", blanks_together=False)
        cells = [_cell(ind_rows[g[0]], "level1") for g in groups]
        # points are inferred only on a table whose other 一级指标 print theirs (many print none)
        printed = sum(1 for c in cells if c is not None and level1_reading(c.text)[1] is not None)
        for g in groups if printed >= 2 else []:
            for i in g:
                group_of[i] = g
    for ri, r in enumerate(ind_rows):
        rec: dict[str, Value] = {}
        for key in keys:
            if key not in r.picked:
                continue
            cell = r.picked[key].cell
            if key == "level1":
                name, points = level1_reading(cell.text)
                ev = cell_evidence([cell])
                vocab = 0.0
                if name:
                    name, vocab = snap_term(name, "level1")
                rec["level1"] = Value(name or None, cell.text, cell.confidence, r.row.page, cell.bbox,
                                      evidence=ev | {"vocab": vocab})
                conf, reasons = cell.confidence, []
                if points is None and vocab > 0 and ri in group_of:  # a term: not a stray name line
                    # points unreadable: a level1's points are the sum of its rows' weights
                    # (heavy scans: '影响力目' with its points lost); a figure inferred, so reviewed
                    w = _weights(ind_rows, group_of[ri])
                    if w is not None and w > 0:
                        points = int(w) if w == int(w) else w
                        conf, reasons = min(conf, 0.5), ["level1 points from the sum of its rows' weights"]
                rec["level1_points"] = Value(points, cell.text, conf, r.row.page, cell.bbox,
                                             reasons=reasons,
                                             evidence=dict(ev) | ({"repaired": 1.0} if reasons else {}))
            else:
                rec[key] = typed_value(matcher.kind("indicators", key), [cell], r.row.page)
                if key == "level2" and isinstance(rec[key].value, str):
                    rec[key].value, vocab = snap_term(rec[key].value, "level2")
                    rec[key].evidence["vocab"] = vocab
        _drop_level1_label(rec.get("name"))
        name = rec.get("name")
        if (name is None or name.value in (None, "")) and all(
            rec.get(k) is None or rec[k].value is None for k in ("weight", "score")
        ):
            continue
        out.append(rec)
    return out


# A 一级指标 label with its points ("效果目标 (15分)") at the head of a name: the rule between
# the level1 and name cells was lost and the label's line was read into the name.
_POINTS_TAIL_HEAD_RE = re.compile(r"^(?P<head>[0-9]{1,3}\s*分\s*[)）])[\s.,，。·:：、]*(?P<rest>.+)$")
_POINTS_HEAD_RE = re.compile(r"^(?P<head>.{2,14}?分\s*[)）])[\s.,，。·:：、]*(?P<rest>.+)$")


def _drop_level1_label(name: Value | None) -> None:
    """The name without a level1 label read into it (dev heavy d029, d013); repaired, so reviewed."""
    if name is None or not isinstance(name.value, str):
        return
    found = _level1_in_name(name.value)
    if found is None or not found[1]:
        return
    label, name.value = found
    name.reasons.append(f"level1 label {label!r} read into the name dropped")
    name.evidence["repaired"] = 1.0


def _level1_in_name(text: str) -> tuple[str, str] | None:
    """(label, the name without it) where a level1 label was read into a name: whole at its head
    ('效果目标 (15分). 预计产生效果'), or cut by the row rule, its term and bracket inside one name
    ('支持并发访问效果目标（用户数') and its points at the head of the next ('15分) 公众满意度')."""
    m = _POINTS_HEAD_RE.match(text)
    if m is not None:
        label, points = split_level1(m["head"])
        if points is not None and snap_term(clean(label), "level1")[1] > 0:
            return label, m["rest"].strip()
    m = _POINTS_TAIL_HEAD_RE.match(text)
    if m is not None:
        return m["head"], m["rest"].strip()
    for term in sorted(indicator_terms().get("level1", ()), key=len, reverse=True):
        if len(term) < 4:
            continue
        i = text.find(term + "（")
        i = i if i >= 0 else text.find(term + "(")
        if i > 0 and i + len(term) + 1 < len(text):
            return term, text[:i] + text[i + len(term) + 1 :]
    return None


def infer_missing_weights(indicators: list[dict[str, Value]], total_weight: Value | None) -> int:
    """Weights left unread (a lone thin '4' on a 1-bit or TIFF scan) from the form's arithmetic.

    A 一级指标's points are the sum of its rows' weights, and the table's weights sum to its
    printed total. A group whose points were read and in which one weight alone is blank
    gets the difference; the guesses stand only if then every weight is known and they all
    add up to the printed total (a misread weight elsewhere would break it; d049: 15 for a
    10 whose neighbour 19 was read 14 is refused). Inferred, so at most 0.5 confidence.
    Returns how many weights were filled (dev tiff / bilevel: 5 cells)."""
    if total_weight is None or not isinstance(total_weight.value, (int, float)):
        return 0
    groups: list[list[dict[str, Value]]] = []
    last = None
    for rec in indicators:
        l1 = rec.get("level1")
        key = (l1.raw, l1.bbox, l1.page) if l1 is not None else None
        if groups and key is not None and key == last:
            groups[-1].append(rec)
        else:
            groups.append([rec])
        last = key
    guesses: list[tuple[dict[str, Value], float]] = []
    for g in groups:
        blanks = [r for r in g if "weight" in r and r["weight"].value is None]
        pts = g[0].get("level1_points")
        if len(blanks) != 1 or pts is None or not isinstance(pts.value, (int, float)) or pts.reasons:
            continue
        known = [r["weight"].value for r in g if r is not blanks[0] and "weight" in r]
        if not all(isinstance(v, (int, float)) for v in known):
            continue
        w = float(pts.value) - sum(float(v) for v in known)
        if 1 <= w < float(pts.value) and w == int(w):
            guesses.append((blanks[0], w))
    if not guesses:
        return 0
    chosen = {id(r): w for r, w in guesses}
    weights = [chosen.get(id(r), r["weight"].value if "weight" in r else None) for r in indicators]
    if any(not isinstance(v, (int, float)) for v in weights):
        return 0
    if abs(sum(float(v) for v in weights) - float(total_weight.value)) > 0.01:
        return 0
    for r, w in guesses:
        r["weight"] = _inferred(r["weight"], int(w), "weight from its 一级指标's points less the other weights")
    return len(guesses)


def _inferred(old: Value, value: float | int, reason: str) -> Value:
    """`old`'s place holding a value the form's arithmetic supplied: at most 0.5, repaired."""
    return Value(value, old.raw, min(old.confidence, 0.5), old.page, old.bbox, reasons=[reason],
                 evidence=dict(old.evidence) | {"repaired": 1.0})


# the reason an inferred score carries: the total's own rule then checks nothing (validate skips it)
SCORE_FROM_TOTAL = "score from the printed 总分 less the other scores"


def infer_missing_score(indicators: list[dict[str, Value]], total_score: Value | None,
                        funding_score: Value | None, ocr_pages: set[int]) -> int:
    """The one score left unread (a lone digit on a blurred scan) from the printed total.

    The table's scores and the funding block's score add up to the 总分. Where exactly one row's
    score is blank, on an OCRed page and in a cell not found inkless (a printed blank is the
    form's own: dev d004, d009 and d019 leave a row unscored that their total counts), every
    other one read, and the total read as is (not itself repaired), the blank gets the
    difference if that lies between 0 and the row's weight (a misread score elsewhere makes it
    fall outside more often than not). Inferred, so at most 0.5 confidence, and the total's
    rule, which now holds by construction, is no evidence (validate drops it).
    Returns how many scores were filled (0 or 1)."""
    if total_score is None or not isinstance(total_score.value, (int, float)) or total_score.reasons:
        return 0
    fs = 0.0
    if funding_score is not None:
        if not isinstance(funding_score.value, (int, float)):
            return 0
        fs = float(funding_score.value)
    blanks = [r for r in indicators if "score" in r and r["score"].value is None]
    others = [r["score"].value for r in indicators if "score" in r and r["score"].value is not None]
    if len(blanks) != 1 or len(others) + 1 != len(indicators) or not all(isinstance(v, (int, float)) for v in others):
        return 0
    row = blanks[0]
    if row["score"].evidence.get("blank") or row["score"].page not in ocr_pages:
        return 0  # a cell with no ink, or empty in a text layer: the form's own blank, not a misread
    w = row.get("weight")
    s = round(float(total_score.value) - fs - sum(float(v) for v in others), 2)
    if w is None or not isinstance(w.value, (int, float)) or not 0 <= s <= float(w.value):
        return 0
    row["score"] = _inferred(row["score"], int(s) if s == int(s) else s, SCORE_FROM_TOTAL)
    return 1
