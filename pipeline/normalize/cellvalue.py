"""Value typing: the cells read for one key -> a typed `Value` with the evidence it rests on."""

from __future__ import annotations

import math
import re

from ..celltext import text_across
from ..lexicon import to_simplified
from ..types import BBox, Cell, Value
from ..values import SPECKS, parse_value, repair_enumeration, repair_punctuation, strip_specks

_DASHES = {"-", "—", "–", "－", "/"}


# what specks and dust are read as, alone in a cell: no text is only these
_NOISE_MARKS = frozenset(SPECKS + ".,，、。:;；：'`_~$+*#&^|\\¥")


def clean(text: str) -> str:
    """The text without any blank (OCR spaces fall anywhere in Chinese print)."""
    return re.sub(r"\s+", "", text or "")


def typed_value(kind: str, cells: list[Cell], page: int, label_score: float = 1.0) -> Value:
    """The cells' joined text parsed as `kind` (schema type), scored by OCR and label match."""
    raw = text_across(cells)
    bbox = union([c.bbox for c in cells]) if cells else None
    ocr_conf = min((c.confidence for c in cells if c.text), default=1.0)
    evidence = cell_evidence(cells, label_score)
    if clean(raw) in _DASHES or not clean(raw):
        if not raw and any(c.unread_ink for c in cells):
            return Value(value=None, raw=raw, confidence=0.0, page=page, bbox=bbox,
                         reasons=["ink in the cell, nothing read"],
                         evidence=evidence | {"empty": 1.0, "parsed": 1.0, "unread_ink": 1.0})
        blank = 1.0 if not raw and cells and all(c.blank for c in cells) else 0.0
        # a cell nothing was read from that no look found blank either (its lines went to a
        # neighbour's column, a rule lost between them): not known to be empty
        unseen = 1.0 if not raw and cells and not blank else 0.0
        return Value(value=None, raw=raw, confidence=ocr_conf * label_score, page=page, bbox=bbox,
                     evidence=evidence | {"empty": 1.0, "parsed": 1.0, "blank": blank, "unseen": unseen})
    if kind == "text":
        raw_clean = strip_specks(raw)
        if set(clean(raw)) <= _NOISE_MARKS:
            # dust read as marks ('$', '+', ';' alone in a remark cell): nothing written there,
            # or ink nothing read; as doubtful as unread ink (heavy dev: 5 blank cells)
            return Value(value=None, raw=raw, confidence=0.0, page=page, bbox=bbox,
                         reasons=["only marks read: dust, or ink nothing read"],
                         evidence=evidence | {"empty": 1.0, "parsed": 1.0, "unread_ink": 1.0})
        raw = raw_clean if raw_clean else raw
        if ocr_conf < 1.0:  # read by OCR (a text layer is taken as printed)
            raw = repair_punctuation(repair_enumeration(to_simplified(raw)))
    val, ok = parse_value(kind, raw)
    conf = ocr_conf * label_score * (1.0 if ok else 0.3)
    reasons = [] if ok else [f"could not parse as {kind}"]
    evidence |= {"empty": 0.0, "parsed": 1.0 if ok else 0.0}
    return Value(value=val, raw=raw, confidence=conf, page=page, bbox=bbox, reasons=reasons, evidence=evidence)


def cell_evidence(cells: list[Cell], label_score: float = 1.0) -> dict[str, float]:
    """OCR evidence for a value read from these cells: character scores and how much was read."""
    scores: list[float] = []
    n_lines = 0
    n_tiny = 0  # characters the tiny recogniser read (its scores mean something else than small's)
    for c in cells:
        for t in c.lines:
            n_lines += 1
            got = t.char_scores if t.char_scores else [t.score] * max(1, len(t.text))
            scores += got
            n_tiny += len(got) if t.model == "tiny" else 0
    n_chars = sum(len(c.text.replace(" ", "")) for c in cells)
    # Σ log p is how likely an exact read is (short text must match exactly); Σ (1 - p) / n is the
    # expected character error rate (long text may have 2 % of its characters wrong).
    clipped = [min(1.0, max(1e-3, s)) for s in scores]
    # text cut from a line read across a lost rule: which characters are whose is a guess
    cut = {"repaired": 1.0} if any(t.cut for c in cells for t in c.lines) else {}
    return cut | {
        "ocr_sumlog": float(sum(math.log(s) for s in clipped)),
        "ocr_experr": float(sum(1 - s for s in clipped) / len(clipped)) if clipped else 0.0,
        "ocr_min": min(scores) if scores else 1.0,
        "ocr_mean": sum(scores) / len(scores) if scores else 1.0,
        "ocr_low": sum(s < 0.9 for s in scores) / len(scores) if scores else 0.0,
        "n_chars": float(n_chars),
        "n_lines": float(n_lines),
        "ink_out": float(sum(c.ink_out for c in cells)),
        "ink_gap": max((c.ink_gap for c in cells if c.lines), default=0.0),
        "tiny": n_tiny / len(scores) if scores else 0.0,
        "label": float(label_score),
    }


def union(boxes: list[BBox]) -> BBox:
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))
