"""Cell-text accuracy: one metric for our pipeline and for peers that return no records.

Peers (img2table, PaddleOCR) return table cells or text lines, not typed records, so
they are scored on *text units*: every cell text (img2table, our grid) or every text
line (PaddleOCR) read on a page. The truth is the typed record truth
(``shared/corpus/dev/truth/<stem>.json``); each non-null value that lives in a table
cell becomes one *truth cell*:

- ``fields`` except ``form_title`` and ``fiscal_year`` (the title sits above the table,
  the year is derived from it), every ``funding`` value, every ``indicators`` value;
- a field read from the funding block's 年度资金总额 row (budget_initial, ...) is the same
  printed cell as that funding row's value: counted once, in the funding row;
- ``level1`` carries its points suffix on the form ("投入与管理 (36分)"): either the
  bare name or name + "(N分)" counts; ``level1_points`` is not a cell of its own;
- a merged cell is one cell on the page though the truth repeats it on each row it
  spans: consecutive indicator rows with the same ``level1`` (same ``level1``+``level2``)
  count once.

Normalisation, the same for every unit and every truth value: Unicode NFKC (full-width ->
half-width), all whitespace removed; a text that is a plain number is canonicalised
("1,234.00" -> "1234", "95%" -> "95", "8.10" -> "8.1"), a plain date
("2020年3月15日", "2020/3/15") -> "2020-03-15", booleans -> 是 / 否.

A truth cell is *matched* when an unused unit read on the form's pages is equal to it
after normalisation; truth text longer than 40 characters (multi-line paragraphs)
matches at character error rate <= 0.02, the rule of the project's scorer
(``shared/eval/score.py``). Each unit matches at most one truth cell (weights "6"
repeated on ten rows need ten units). ``cell_text_accuracy = matched / truth cells``.
Forms are scored only when all their pages were measured: the truth carries pages per
form, not per value.

Line-level engines (PaddleOCR) cannot match a value wrapped over two lines in its cell;
``by_kind`` separates numbers, short and long text so that this shows.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

LONG_TEXT = 40  # characters: longer truth text is scored by CER, as in shared/eval/score.py
MAX_CER = 0.02
SKIP_FIELDS = {"form_title", "fiscal_year"}  # outside the table / derived from the title
# Fields read from the 年度资金总额 row of the 项目资金 block (record-format.md): where the record
# has that block they are the same printed cells as its first funding row, counted there once.
FUNDING_MIRRORS = {
    "budget_initial",
    "budget_current_year",
    "budget_executed",
    "execution_rate",
    "funding_weight",
    "funding_score",
}

_NUM = re.compile(r"^[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?%?$")
_DATE = re.compile(r"^(\d{4})[年/.\-](\d{1,2})[月/.\-](\d{1,2})日?$")
_WS = re.compile(r"\s+")


def canon_number(x: float) -> str:
    """2523747.0 -> '2523747', 65.370 -> '65.37', -0.0 -> '0'."""
    s = f"{x:.6f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def normalise(text: str) -> str:
    """The canonical form of one unit's text (see the module docstring)."""
    s = _WS.sub("", unicodedata.normalize("NFKC", text))
    if _NUM.match(s):
        return canon_number(float(s.rstrip("%").replace(",", "")))
    m = _DATE.match(s)
    if m:
        y, mo, d = (int(g) for g in m.groups())
        if 1 <= mo <= 12 and 1 <= d <= 31:
            return f"{y:04d}-{mo:02d}-{d:02d}"
    return s


def canon_value(v: Any) -> str | None:
    """A typed truth value as canonical text; None for null / empty."""
    if v is None:
        return None
    if isinstance(v, bool):  # before int: bool is an int
        return "是" if v else "否"
    if isinstance(v, int | float):
        return canon_number(float(v))
    s = normalise(str(v))
    return s or None


@dataclass
class TruthCell:
    key: str  # e.g. "fields.budget_executed", "indicators.weight"
    accept: list[str]  # canonical texts any of which matches
    kind: str = field(init=False)  # number / text_short / text_long

    def __post_init__(self) -> None:
        first = self.accept[0]
        if (
            _NUM.match(first)
            or first in ("是", "否")
            or _DATE.match(first)
            or re.match(r"^\d{4}-\d\d-\d\d$", first)
        ):
            self.kind = "number"
        elif len(first) > LONG_TEXT:
            self.kind = "text_long"
        else:
            self.kind = "text_short"


def truth_cells(record: dict[str, Any]) -> list[TruthCell]:
    """The table cells one truth record says are on its pages."""
    out: list[TruthCell] = []
    funding = record.get("funding") or []
    first_row = {canon_value(v) for v in funding[0].values()} if funding else set()
    for k, v in (record.get("fields") or {}).items():
        c = canon_value(v)
        if k in SKIP_FIELDS or c is None:
            continue
        if k in FUNDING_MIRRORS and c in first_row:
            continue  # the same printed cell as the funding block's total row
        out.append(TruthCell(f"fields.{k}", [c]))
    for row in record.get("funding") or []:
        for k, v in row.items():
            c = canon_value(v)
            if c is not None:
                out.append(TruthCell(f"funding.{k}", [c]))
    prev_l1: object = object()
    prev_l2: object = object()
    for row in record.get("indicators") or []:
        l1, l2 = row.get("level1"), row.get("level2")
        for k, v in row.items():
            if k == "level1_points":
                continue
            c = canon_value(v)
            if c is None:
                continue
            if k == "level1":
                if l1 == prev_l1:
                    continue  # merged cell: counted on its first row only
                accept = [c]
                pts = row.get("level1_points")
                if pts is not None:
                    accept.append(f"{c}({canon_number(float(pts))}分)")
                out.append(TruthCell("indicators.level1", accept))
            elif k == "level2":
                if (l1, l2) == (prev_l1, prev_l2):
                    continue
                out.append(TruthCell("indicators.level2", [c]))
            else:
                out.append(TruthCell(f"indicators.{k}", [c]))
        prev_l1, prev_l2 = l1, l2
    return out


def _cer(ref: str, hyp: str) -> float:
    try:
        from rapidfuzz.distance import Levenshtein

        d = Levenshtein.distance(ref, hyp)
    except ImportError:  # pure fallback: the metric must not need the pipeline's venv
        prev = list(range(len(hyp) + 1))
        for i, a in enumerate(ref, 1):
            cur = [i]
            for j, b in enumerate(hyp, 1):
                cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a != b)))
            prev = cur
        d = prev[-1]
    return d / max(1, len(ref))


def matches(cell: TruthCell, unit: str) -> bool:
    """Does one normalised unit text count as this truth cell?"""
    if unit in cell.accept:
        return True
    if cell.kind != "text_long":
        return False
    ref = cell.accept[0]
    if abs(len(unit) - len(ref)) > MAX_CER * len(ref):  # cheap bound before the edit distance
        return False
    return _cer(ref, unit) <= MAX_CER


def score_form(cells: list[TruthCell], units: Iterable[str]) -> list[bool]:
    """Match truth cells to units one-to-one (greedy: exact equality first, then CER)."""
    pool: dict[str, int] = {}
    for u in units:
        n = normalise(u)
        if n:
            pool[n] = pool.get(n, 0) + 1
    hit = [False] * len(cells)
    for i, c in enumerate(cells):  # exact pass: most cells, and it must not lose units to near-misses
        for a in c.accept:
            if pool.get(a, 0) > 0:
                pool[a] -= 1
                hit[i] = True
                break
    for i, c in enumerate(cells):
        if hit[i] or c.kind != "text_long":
            continue
        for u, n in pool.items():
            if n > 0 and matches(c, u):
                pool[u] -= 1
                hit[i] = True
                break
    return hit


def score(truth: dict[str, list[dict[str, Any]]], units: dict[tuple[str, int], list[str]]) -> dict[str, Any]:
    """Cell-text accuracy over every truth form whose pages all have units.

    truth: file name -> its truth records; units: (file name, 1-based page) -> unit texts.
    """
    by_kind: dict[str, list[int]] = {}
    n_forms = matched = total = 0
    for file, records in sorted(truth.items()):
        for rec in records:
            pages = (rec.get("source") or {}).get("pages") or []
            if not pages or any((file, p) not in units for p in pages):
                continue
            n_forms += 1
            cells = truth_cells(rec)
            hits = score_form(cells, [u for p in pages for u in units[(file, p)]])
            for c, h in zip(cells, hits, strict=True):
                k = by_kind.setdefault(c.kind, [0, 0])
                k[0] += h
                k[1] += 1
            matched += sum(hits)
            total += len(cells)
    return {
        "cell_text_accuracy": round(matched / total, 4) if total else None,
        "truth_cells": total,
        "matched": matched,
        "forms": n_forms,
        "by_kind": {
            k: {"matched": m, "cells": n, "accuracy": round(m / n, 4)}
            for k, (m, n) in sorted(by_kind.items())
        },
    }
