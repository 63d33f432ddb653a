"""Evaluate: records against ground truth, by the rules of the record-format spec.

Cells are compared as the spec's scorer compares them (text after NFKC with
blanks removed, exact up to 40 characters and CER ≤ 0.02 beyond; numbers
within 0.005; indicator rows aligned in order by name). The result feeds
`scanforms eval` (accuracy, ECE, the review-rate / accepted-error curve, a
reliability diagram) and `scanforms calibrate` (the confidence model's
training set).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rapidfuzz.distance import Levenshtein

SHORT_TEXT = 40
LONG_TEXT_CER = 0.02
NUM_TOL = 0.005
_NUMBER_KINDS = ("number", "int", "money", "percent")


@dataclass
class ScoredCell:
    file: str
    form_index: int
    section: str
    row: int | None  # index of the predicted row (None: fields, or a truth row nothing matched)
    key: str
    correct: bool
    confidence: float | None
    needs_review: bool | None
    truth: Any
    pred: Any


def norm_text(v: Any) -> str:
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", str(v)))


def _unwrap(v: Any) -> tuple[Any, float | None, bool | None]:
    if isinstance(v, dict) and "value" in v:
        c = v.get("confidence")
        return v.get("value"), (float(c) if c is not None else None), v.get("needs_review")
    return v, None, None


def _is_null(v: Any) -> bool:
    return v is None or (isinstance(v, str) and norm_text(v) in ("", "-"))


def _number(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        return float(v)
    try:
        return float(norm_text(v).replace(",", "").rstrip("%").replace("元", ""))
    except ValueError:
        return None


def _date(v: Any) -> str:
    s = norm_text(v)
    m = re.match(r"(\d{4})[-/年.](\d{1,2})[-/月.](\d{1,2})", s)
    if not m:
        return s
    try:
        return dt.date(*map(int, m.groups())).isoformat()
    except ValueError:
        return s


def _bool(v: Any) -> Any:
    if isinstance(v, bool):
        return v
    s = norm_text(v).lower()
    return {"是": True, "true": True, "否": False, "false": False}.get(s, s)


def same(kind: str, truth: Any, pred: Any) -> bool:
    """Is `pred` exactly right for `truth`, by the spec's rules for this value type."""
    if _is_null(truth):
        return _is_null(pred)
    if _is_null(pred):
        return False
    if kind in _NUMBER_KINDS:
        a, b = _number(truth), _number(pred)
        return a is not None and b is not None and abs(a - b) <= NUM_TOL
    if kind == "date":
        return _date(truth) == _date(pred)
    if kind == "bool":
        return _bool(truth) == _bool(pred)
    t, p = norm_text(truth), norm_text(pred)
    if len(t) <= SHORT_TEXT:
        return t == p
    return Levenshtein.distance(t, p) / len(t) <= LONG_TEXT_CER


def _similarity(a: Any, b: Any) -> float:
    a, b = norm_text(_unwrap(a)[0] or ""), norm_text(_unwrap(b)[0] or "")
    if not a and not b:
        return 1.0
    if not a or not b:
        return 0.0
    return 1.0 - Levenshtein.distance(a, b) / max(len(a), len(b))


def align_rows(truth_rows: list[dict], pred_rows: list[dict]) -> list[tuple[int | None, int | None]]:
    """Order-preserving alignment of indicator rows by name similarity (≥ 0.5 to pair)."""
    n, m = len(truth_rows), len(pred_rows)
    sim = [[_similarity(t.get("name"), p.get("name")) for p in pred_rows] for t in truth_rows]
    best = [[0.0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            take = best[i + 1][j + 1] + sim[i][j] if sim[i][j] >= 0.5 else -1.0
            best[i][j] = max(best[i + 1][j], best[i][j + 1], take)
    pairs: list[tuple[int | None, int | None]] = []
    i = j = 0
    while i < n and j < m:
        if sim[i][j] >= 0.5 and best[i][j] == best[i + 1][j + 1] + sim[i][j]:
            pairs.append((i, j))
            i, j = i + 1, j + 1
        elif best[i][j] == best[i + 1][j]:
            pairs.append((i, None))
            i += 1
        else:
            pairs.append((None, j))
            j += 1
    return pairs + [(k, None) for k in range(i, n)] + [(None, k) for k in range(j, m)]


def _types() -> dict[str, dict[str, str]]:
    from .lexicon import get_matcher

    m = get_matcher()
    return {s: {k: m.kind(s, k) for k in m.keys(s)} for s in ("fields", "funding", "indicators")}


def score_form(truth: dict, pred: dict | None, types: dict[str, dict[str, str]] | None = None) -> list[ScoredCell]:
    types = types or _types()
    pred = pred or {}
    src = truth.get("source") or {}
    file, idx = Path(str(src.get("file", ""))).name, int(src.get("form_index", 0) or 0)
    out: list[ScoredCell] = []

    def add(section: str, row: int | None, t: dict | None, p: dict | None) -> None:
        t, p = t or {}, p or {}
        for key, kind in types[section].items():
            tv = t.get(key)
            pv, conf, review = _unwrap(p.get(key))
            if _is_null(tv) and _is_null(pv):
                continue  # nothing on the form, nothing claimed: not scored
            out.append(ScoredCell(file, idx, section, row, key, same(kind, tv, pv), conf, review, tv, pv))

    add("fields", None, truth.get("fields"), pred.get("fields"))
    tf, pf = truth.get("funding") or [], pred.get("funding") or []
    for k in range(max(len(tf), len(pf))):
        add("funding", k if k < len(pf) else None, tf[k] if k < len(tf) else None, pf[k] if k < len(pf) else None)
    ti, pi = truth.get("indicators") or [], pred.get("indicators") or []
    for i, j in align_rows(ti, pi):
        add("indicators", j, ti[i] if i is not None else None, pi[j] if j is not None else None)
    return out


def load_records(folder: Path) -> dict[tuple[str, int], dict]:
    """Records of every `<stem>.json` in a folder (the per-file outputs; not records.jsonl)."""
    recs: dict[tuple[str, int], dict] = {}
    for f in sorted(folder.glob("*.json")):
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        for r in data if isinstance(data, list) else [data]:
            if isinstance(r, dict) and "source" in r:
                s = r["source"]
                recs[(Path(str(s.get("file", ""))).name, int(s.get("form_index", 0) or 0))] = r
    return recs


def score_folder(truth_dir: Path, pred_dir: Path) -> tuple[list[ScoredCell], int, int]:
    """Every scored cell, the number of truth forms, and how many have no prediction."""
    truths, preds = load_records(truth_dir), load_records(pred_dir)
    types = _types()
    cells: list[ScoredCell] = []
    for key, t in truths.items():
        cells += score_form(t, preds.get(key), types)
    return cells, len(truths), sum(k not in preds for k in truths)


def _accepted(c: ScoredCell, threshold: float) -> bool:
    if c.needs_review is not None:
        return not c.needs_review
    return c.confidence is not None and c.confidence >= threshold


def ece(cells: list[ScoredCell], bins: int = 10) -> float | None:
    scored = [(c.confidence, c.correct) for c in cells if c.confidence is not None]
    if not scored:
        return None
    buckets: dict[int, list[tuple[float, bool]]] = defaultdict(list)
    for conf, ok in scored:
        buckets[min(int(conf * bins), bins - 1)].append((conf, ok))
    return sum(
        abs(sum(c for c, _ in b) / len(b) - sum(o for _, o in b) / len(b)) * len(b) / len(scored)
        for b in buckets.values()
    )


def summarize(cells: list[ScoredCell], threshold: float = 0.9) -> dict[str, Any]:
    n = len(cells)
    if not n:
        return {"cells": 0}
    acc = [c for c in cells if _accepted(c, threshold)]
    return {
        "cells": n,
        "accuracy": sum(c.correct for c in cells) / n,
        "review_rate": 1 - len(acc) / n,
        "accepted_error_rate": sum(not c.correct for c in acc) / len(acc) if acc else None,
        "ece": ece(cells),
    }


CURVE_THRESHOLDS = [k / 10 for k in range(9)] + [0.9 + k / 100 for k in range(10)] + [0.995, 0.999]


def review_curve(cells: list[ScoredCell], thresholds: list[float] = CURVE_THRESHOLDS) -> list[dict[str, float]]:
    """Review rate against accepted error as the threshold moves (cells without confidence reviewed).

    Finer steps above 0.9, where a calibrated model's thresholds live."""
    n = len(cells)
    out = []
    for thr in thresholds:
        acc = [c for c in cells if c.confidence is not None and c.confidence >= thr]
        out.append({
            "threshold": thr,
            "review_rate": 1 - len(acc) / n if n else 0.0,
            "accepted_error_rate": sum(not c.correct for c in acc) / len(acc) if acc else 0.0,
        })
    return out


def reliability_png(cells: list[ScoredCell], path: Path, bins: int = 10) -> None:
    """A reliability diagram: accuracy per confidence bin against the diagonal, bar width ~ count."""
    import cv2
    import numpy as np

    from .export import atomic_write_bytes

    size, pad = 480, 50
    img = np.full((size + 2 * pad, size + 2 * pad, 3), 255, np.uint8)

    def pt(x: float, y: float) -> tuple[int, int]:
        return int(pad + x * size), int(pad + (1 - y) * size)

    cv2.rectangle(img, pt(0, 1), pt(1, 0), (0, 0, 0), 1)
    for k in range(1, 10):
        cv2.line(img, pt(k / 10, 0), pt(k / 10, 1), (235, 235, 235), 1)
        cv2.line(img, pt(0, k / 10), pt(1, k / 10), (235, 235, 235), 1)
    cv2.line(img, pt(0, 0), pt(1, 1), (150, 150, 150), 1, cv2.LINE_AA)
    buckets: dict[int, list[ScoredCell]] = defaultdict(list)
    for c in cells:
        if c.confidence is not None:
            buckets[min(int(c.confidence * bins), bins - 1)].append(c)
    total = sum(len(b) for b in buckets.values()) or 1
    for b, cs in sorted(buckets.items()):
        acc = sum(c.correct for c in cs) / len(cs)
        share = len(cs) / total
        x0, x1 = b / bins, (b + 1) / bins
        cv2.rectangle(img, pt(x0 + 0.005, acc), pt(x1 - 0.005, 0), (200, 140, 60), -1)
        # the share of cells in the bin, as a thin dark bar at the bottom
        cv2.rectangle(img, pt(x0 + 0.02, max(0.01, share) * 0.25), pt(x1 - 0.02, 0), (60, 60, 60), -1)
    e = ece(cells)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(img, f"reliability  ECE={e:.4f}" if e is not None else "reliability", (pad, 30), font, 0.6,
                (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "confidence", (pad + size // 2 - 45, size + pad + 35), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "accuracy", (5, pad - 8), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    ok, buf = cv2.imencode(".png", img)
    if ok:
        atomic_write_bytes(path, buf.tobytes())
