"""Validate: the forms' own arithmetic as evidence about each cell.

A failed rule lowers the confidence of the cells involved and says why
(`reasons`). Where exactly one alternative reading of a misread number makes
the failed rules hold ("10 00.00%" -> 100.00), it is proposed as the value,
with its evidence. A value is never changed when its raw text reads cleanly:
real forms hold real inconsistencies, and those come out as written, flagged.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .normalize.indicators import SCORE_FROM_TOTAL
from .types import FormRecord, Value

TOL = 0.011  # forms round to 2 decimals
GRADES = [(90.0, ("优", "优秀")), (75.0, ("良好", "良")), (60.0, ("合格",)), (0.0, ("不合格",))]
PENALTY = 0.5  # confidence factor for a cell in a failed rule (before calibration)


@dataclass
class RuleResult:
    name: str
    ok: bool
    cells: list[Value]
    detail: str
    # for a sum rule, the cells that state the sum (合计, a level1's points): where the form itself
    # doesn't add up, the stated sum is what a person checks, not each of its addends
    stated: list[Value] = field(default_factory=list)
    # the rule itself names the misread (`to_flag`): flagged even where another of its cells is
    # doubtful (a weight above its level1's points is wrong whatever the points read)
    blames: bool = False

    @property
    def to_flag(self) -> list[Value]:
        return self.stated or self.cells


def _num(v: Value | None) -> float | None:
    if v is None or v.value is None or isinstance(v.value, bool):
        return None
    try:
        return float(v.value)
    except (TypeError, ValueError):
        return None


def _close(a: float, b: float, tol: float = TOL) -> bool:
    return abs(a - b) <= tol + 1e-9


def alternative_readings(raw: str) -> list[float]:
    """Other numbers an OCR'd numeric string could stand for (blanks, dots for commas)."""
    s = re.sub(r"[%％元\s]", "", raw or "")
    s = s.replace("，", ",").replace("。", ".")
    out: set[float] = set()
    digits = re.sub(r"[^0-9.,]", "", s)
    if not digits:
        return []
    # dots used as thousands separators: keep only the last as the decimal point
    if digits.count(".") > 1:
        head, _, tail = digits.rpartition(".")
        cand = head.replace(".", "").replace(",", "") + "." + tail
        out.add(float(cand))
    plain = digits.replace(",", "")
    if plain.count(".") <= 1 and plain.strip("."):
        out.add(float(plain))
        # a blank read as an extra digit group: "10 00.00" -> 100.00 or 1000.00
        parts = re.split(r"\s+", raw.strip().rstrip("%％"))
        if len(parts) > 1:
            for k in range(len(parts)):
                cand = "".join(parts[:k] + parts[k + 1 :]).replace(",", "")
                try:
                    out.add(float(cand))
                except ValueError:
                    pass
            joined = "".join(parts).replace(",", "")
            # drop a doubled digit at the blank ("10 00.00" = "100.00" with a stray 0)
            for i in range(1, len(joined)):
                cand = joined[:i] + joined[i + 1 :]
                try:
                    out.add(float(cand))
                except ValueError:
                    pass
    return sorted(out)


def _grade_ok(grade: str, total: float) -> bool:
    g = re.sub(r"\s+", "", grade)
    for floor, names in GRADES:
        if total >= floor - 1e-9:
            return g in names
    return False


def check(rec: FormRecord) -> list[RuleResult]:
    """Every rule that applies to this record, with the cells it involves."""
    f = rec.fields
    results: list[RuleResult] = []

    budget, executed, rate = f.get("budget_current_year"), f.get("budget_executed"), f.get("execution_rate")
    b, e, r = _num(budget), _num(executed), _num(rate)
    if b and e is not None and r is not None:
        want = e / b * 100
        results.append(RuleResult("execution_rate", _close(r, want, 0.011), [budget, executed, rate],  # type: ignore[list-item]
                                  f"执行率 {r} vs executed/budget×100 = {want:.2f}"))

    weights = [_num(i.get("weight")) for i in rec.indicators]
    scores = [_num(i.get("score")) for i in rec.indicators]
    for ind, w, s in zip(rec.indicators, weights, scores, strict=True):
        if w is not None and s is not None:
            results.append(RuleResult("score<=weight", s <= w + 1e-9, [ind["score"], ind["weight"]],
                                      f"score {s} above weight {w}" if s > w else "ok"))

    fw, fs = _num(f.get("funding_weight")), _num(f.get("funding_score"))
    tw, ts = f.get("total_weight"), f.get("total_score")
    if tw is not None and _num(tw) is not None and weights and all(w is not None for w in weights):
        want = sum(weights) + (fw or 0)  # type: ignore[arg-type]
        cells = [tw] + [i["weight"] for i in rec.indicators]
        results.append(RuleResult("total_weight", _close(_num(tw), want), cells,  # type: ignore[arg-type]
                                  f"合计 weight {_num(tw)} vs sum {want:g}", [tw]))
    inferred = any(SCORE_FROM_TOTAL in i["score"].reasons for i in rec.indicators if i.get("score") is not None)
    if ts is not None and _num(ts) is not None and scores and all(s is not None for s in scores) and not inferred:
        want = sum(scores) + (fs or 0)  # type: ignore[arg-type]
        cells = [ts] + [i["score"] for i in rec.indicators]
        results.append(RuleResult("total_score", _close(_num(ts), want), cells,  # type: ignore[arg-type]
                                  f"合计 score {_num(ts)} vs sum {want:g}", [ts]))

    groups: dict[str, list[int]] = {}
    for k, ind in enumerate(rec.indicators):
        l1 = ind.get("level1")
        if l1 is not None and l1.value and _num(ind.get("level1_points")) is not None:
            groups.setdefault(str(l1.value), []).append(k)
    for name, idx in groups.items():
        pts = _num(rec.indicators[idx[0]]["level1_points"])
        over = [k for k in idx if pts is not None and weights[k] is not None and weights[k] > pts + TOL]  # type: ignore[operator]
        rest = [weights[k] for k in idx if k not in over]
        if pts is not None and len(over) == 1 and all(w is not None for w in rest) and sum(rest) <= pts + TOL:  # type: ignore[arg-type]
            # one weight above its whole level1's points while the others fit in them (a 合计 row's
            # 100 taken into the last row's weight cell under an erased rule, dev heavy d011):
            # that weight is the misread. Several above: the points are (d055: 34分 read 3.1).
            k = over[0]
            w_cell, p_cell = rec.indicators[k]["weight"], rec.indicators[k]["level1_points"]
            results.append(RuleResult("weight<=level1_points", False, [w_cell, p_cell],
                                      f"weight {weights[k]:g} above {name}'s {pts:g} points", [w_cell],
                                      blames=True))
        ws = [weights[k] for k in idx]
        if pts is not None and all(w is not None for w in ws):
            cells = [rec.indicators[k]["level1_points"] for k in idx] + [rec.indicators[k]["weight"] for k in idx]
            results.append(RuleResult("level1_points", _close(pts, sum(ws)), cells,  # type: ignore[arg-type]
                                      f"{name} ({pts:g}分) vs weights {sum(ws):g}",  # type: ignore[arg-type]
                                      [rec.indicators[k]["level1_points"] for k in idx]))

    grade, total = f.get("grade"), _num(ts)
    if grade is not None and grade.value and total is not None:
        results.append(RuleResult("grade", _grade_ok(str(grade.value), total), [grade, ts],  # type: ignore[list-item]
                                  f"grade {grade.value} vs total {total:g}"))

    date, year = f.get("evaluation_date"), _num(f.get("fiscal_year"))
    if date is not None and date.value and year:
        y = int(str(date.value)[:4])
        results.append(RuleResult("evaluation_date", int(year) <= y <= int(year) + 2, [date],
                                  f"evaluated {date.value} for fiscal year {int(year)}"))

    for row in rec.funding:
        ann, ex, rt = _num(row.get("budget_annual")), _num(row.get("executed")), _num(row.get("execution_rate"))
        if ann and ex is not None and rt is not None:
            want = ex / ann * 100
            results.append(RuleResult("funding_rate", _close(rt, want, 0.011),
                                      [row["budget_annual"], row["executed"], row["execution_rate"]],
                                      f"funding 执行率 {rt} vs {want:.2f}"))
        wt, sc = _num(row.get("weight")), _num(row.get("score"))
        if wt is not None and sc is not None and rt is not None:
            want = min(wt, rt / 100 * wt)
            results.append(RuleResult("funding_score", _close(sc, want, 0.011), [row["score"], row["weight"]],
                                      f"funding 得分 {sc} vs rate×weight {want:.2f}"))
    return results


def _helps(cell: Value, value: Any, n_failed: int, recheck: Callable[[], list[RuleResult]]) -> bool:
    """Whether `cell` read as `value` makes fewer of the form's rules fail and every rule of its
    own hold (the cell is left as it was)."""
    original = cell.value
    cell.value = value
    try:
        results = recheck()
    finally:
        cell.value = original
    return len([r for r in results if not r.ok]) < n_failed and all(
        r.ok for r in results if any(c is cell for c in r.cells))


def _repaired(cell: Value, value: Any, reason: str) -> None:
    """`cell` set to `value` from the form's arithmetic, what was read kept as an alternative."""
    cell.alternatives.append({"value": cell.value, "why": f"as read: {cell.raw!r}"})
    cell.reasons.append(reason)
    cell.value = value
    cell.evidence["repaired"] = 1.0


def _try_repairs(rec: FormRecord, failed: list[RuleResult], recheck: Callable[[], list[RuleResult]]) -> None:
    """Propose the single alternative reading of a doubtful numeric cell that makes all rules hold."""
    n_failed = len(failed)
    doubtful = {id(c): c for r in failed for c in r.cells if c is not None and c.raw}
    for cell in doubtful.values():
        raw = cell.raw
        clean_read = re.fullmatch(r"\s*-?[\d,]*\.?\d+\s*%?\s*", raw) is not None and " " not in raw.strip()
        if clean_read and raw.count(".") <= 1:
            continue  # cleanly printed: a mismatch is the form's own, not a misread
        original = cell.value
        good = []
        for alt in alternative_readings(raw):
            if original is not None and _close(float(alt), float(original), 1e-9):
                continue
            value = int(alt) if float(alt).is_integer() and not isinstance(original, float) else alt
            if _helps(cell, value, n_failed, recheck):
                good.append(value)
        if len(good) == 1:
            _repaired(cell, good[0], f"read {raw!r} as {good[0]}: the only reading that satisfies the form's arithmetic")
        else:  # several readings would do: a person picks
            cell.alternatives += [{"value": g, "why": "makes the form's arithmetic hold"} for g in good]
    _try_thin_ones(list(doubtful.values()), n_failed, recheck)


# A lone '1' may be a 4 or a 7 whose thin strokes the print or its 1-bit threshold lost, leaving
# the stem (dev d055 a score 4, d040 a weight 4, both read '1' at 0.99+ on 1-bit TIFFs)
THIN_ONE_AS = (4, 7)


def _try_thin_ones(cells: list[Value], n_failed: int, recheck: Callable[[], list[RuleResult]]) -> None:
    """A lone '1' in a failing rule read as the 4 or 7 it may be, where exactly one such change
    among all of them makes fewer rules fail and every rule of its cell hold (two would leave a
    person to pick: none is made). Its reading is kept as an alternative."""
    fixes = [(cell, alt) for cell in cells if (cell.raw or "").strip() == "1" and cell.value == 1
             for alt in THIN_ONE_AS if _helps(cell, alt, n_failed, recheck)]
    if len(fixes) == 1:
        cell, alt = fixes[0]
        _repaired(cell, alt, f"read '1' as {alt}: a thin {alt} read as its stem, the only change that makes the "
                  "form's arithmetic hold")


# A 一级指标's points read at a character score under this are doubtful (see _repair_points)
POINTS_DOUBT = 0.95


def _repair_points(results: list[RuleResult]) -> bool:
    """A 一级指标's points misread, put right from its rows' weights (34分 read 3.1 on a 1-bit
    TIFF, dev d055; no reading of '3.1' gives 34, so `_try_repairs` cannot).

    Only where the weights are sure: every one read, adding up to the printed 合计, and every
    other 一级指标's points agreeing with its own; then the one group that disagrees has its
    points misread, not a weight (a misread weight would break the total). And only where the
    points read are doubtful, not whole while the weights are, or read at a character score
    under POINTS_DOUBT: a clean print that disagrees is the form's own. At most 0.5 confidence
    (inferred), with the reading kept as an alternative. Returns whether it repaired."""
    by_name: dict[str, list[RuleResult]] = {}
    for r in results:
        by_name.setdefault(r.name, []).append(r)
    totals, points = by_name.get("total_weight", []), by_name.get("level1_points", [])
    bad = [r for r in points if not r.ok]
    if len(totals) != 1 or not totals[0].ok or len(bad) != 1 or len(points) < 2:
        return False
    cells = [c for c in bad[0].cells if c is not None]
    pts = [c for c in bad[0].stated if c is not None]
    weights = [c for c in cells if all(c is not p for p in pts)]
    ws = [_num(c) for c in weights]
    if not pts or not weights or any(w is None for w in ws):
        return False
    want = sum(w for w in ws if w is not None)
    read = _num(pts[0])
    whole = all(float(w).is_integer() for w in ws if w is not None)
    doubtful = (read is not None and whole and not float(read).is_integer()) or any(
        float(c.evidence.get("ocr_min", 1.0)) < POINTS_DOUBT for c in pts)
    if not doubtful or want <= 0:
        return False
    value = int(want) if whole else want
    for c in pts:
        _repaired(c, value, f"points {value:g} from the rows' weights (they add up to the 合计): read {c.raw!r}")
        c.confidence = min(c.confidence, 0.5)
    return True


def validate(rec: FormRecord) -> list[RuleResult]:
    """Apply the rules: repair unambiguous misreads, then flag the cells of rules still failing."""
    results = check(rec)
    failed = [r for r in results if not r.ok]
    if failed:
        _try_repairs(rec, failed, lambda: check(rec))
        results = check(rec)
        if _repair_points(results):
            results = check(rec)
    for r in results:
        for c in r.cells:
            if c is not None:  # the confidence model weighs arithmetic that holds as much as what fails
                key = "rules_ok" if r.ok else "rules_failed"
                c.evidence[key] = c.evidence.get(key, 0.0) + 1.0
        if r.ok:
            continue
        for c in r.cells:
            if c is None:
                continue
            c.confidence *= PENALTY
            if r.detail not in c.reasons:
                c.reasons.append(f"{r.name}: {r.detail}")
    rec.extra_source["validation"] = {
        "rules": len(results),
        "failed": [f"{r.name}: {r.detail}" for r in results if not r.ok],
    }
    return results
