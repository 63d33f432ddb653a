"""Confidence, the features: what the model reads of each cell.

The evidence each stage leaves on a value (`Value.evidence`: OCR character scores, label-match
score, type parse, the forms' arithmetic holding or failing, a repaired reading), what the text
itself says (characters that fit in no dictionary word, a term of the closed vocabulary or not),
what the same document's other forms read under the same key, and what is known of the cell's
page and row: one row of FEATURES per cell. Also the way cells are walked and addressed
(`iter_cells`) and their evidence saved beside the records and read back (`--features`).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from ..types import FormRecord, PageResult, Value

FEATURES = [
    "bias",
    "vector",
    "garbled",
    "ocr_min",
    "ocr_mean",
    "ocr_low",
    "ocr_sumlog",
    "ocr_experr",
    "long_experr",
    "label",
    "label_weak",
    "empty",
    "unparsed",
    "rules_ok",
    "rules_failed",
    "repaired",
    "number",
    "long_text",
    "log_chars",
    "multi_line",
    "page_q",
    "page_low",
    "row_min",
    "row_failed",
    "funding",
    "indicator",
    "derived",
    "looks_label",
    "dup_field",
    "end_odd",
    "numeric_text",
    "lone_frac",
    "lone_n",
    "vocab",
    "off_vocab",
    "agree",
    "blank",
    "ink_empty",
    "empty_unseen",
    "empty_required",
    "unbalanced",
    "soft_one",
    "ink_out",
    "ink_gap",
    "tiny",
    "form_low",
    "form_oov",
    "form_failed",
]


REQUIRED_INDICATOR_KEYS = frozenset({"level1", "name", "weight"})
# A page whose cells' median character score is under this is soft print throughout. On the dev
# corpus a figure read as a lone 1 was right on every page above it (17 cells, pages at 0.977 or
# more) and wrong 3 times in 5 below it (photo d044 at 0.41: 7 read 1 twice, 1-bit d049 at 0.75:
# 19 read 1, accepted at 0.96-0.999)
SOFT_PAGE = 0.9
_OPEN, _CLOSE = "(（[［【", ")）]］】"


def unbalanced(text: str) -> bool:
    """Whether a text's brackets fail to pair up: a bracket closed that was never opened, or one
    left open. A cell is a whole text: none of the dev truth's 6,510 strings has one (long ones
    cut at 60 characters included), while 4 of 4 short OCRed cells that did were misread (a ）
    dropped, 良好(80分以上, accepted at 0.993; a speck read as ）)."""
    depth = 0
    for ch in text:
        if ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            if depth == 0:
                return True
            depth -= 1
    return depth != 0


def _logit(p: float, eps: float = 1e-4) -> float:
    p = min(1 - eps, max(eps, float(p)))
    return math.log(p / (1 - p))


@dataclass
class PageContext:
    """What is known of a page as a whole: how it was read and how well."""

    kind: str = "image"
    dpi: int = 200
    quality: float = 1.0  # median OCR score of the page's non-empty cells
    low_frac: float = 0.0  # share of those cells under 0.9
    skew: float = 0.0  # |skew| removed, degrees: a page fed in askew was seldom scanned with care

    @classmethod
    def of(cls, page: PageResult) -> PageContext:
        confs = [c.confidence for g in page.grids for c in g.cells if c.text]
        return cls(
            kind=page.kind,
            dpi=page.prepared.page.dpi,
            quality=float(np.median(confs)) if confs else 1.0,
            low_frac=float(np.mean([c < 0.9 for c in confs])) if confs else 0.0,
            skew=round(abs(float(page.prepared.skew_deg)), 3),
        )


def _norm(text: str) -> str:
    return re.sub(r"\s+", "", text or "")


@dataclass
class RecordContext:
    """What a cell's neighbours in the same record say about it."""

    # how often each header-field text occurs: one text under two labels is a misplaced cell
    field_texts: Counter[str] = field(default_factory=Counter)
    # per indicator text column, the share of its cells ending in 。: a cell against its column's habit
    # lost (or gained) its last mark
    end_share: dict[str, float] = field(default_factory=dict)
    # (key, text) -> how many other readings of that very text under that key: in the document's
    # other forms (one office's forms repeat their template's wording) and in other cells of this
    # form's column; two independent readings of a blurred line rarely agree by chance
    elsewhere: Counter[tuple[str, str]] = field(default_factory=Counter)

    @classmethod
    def of(cls, rec: FormRecord, peers: Iterable[FormRecord] = ()) -> RecordContext:
        texts = Counter(_norm(str(v.value)) for v in rec.fields.values() if isinstance(v.value, str) and v.value)
        cols: dict[str, list[bool]] = {}
        for row in rec.indicators:
            for key, v in row.items():
                if isinstance(v.value, str) and len(v.value) > 6:
                    cols.setdefault(key, []).append(v.value.rstrip().endswith("。"))
        elsewhere: Counter[tuple[str, str]] = Counter()
        for other in peers:
            if other is not rec:
                elsewhere.update(_texts_by_key(other))
        # other cells of this form reading the same text in the same column (a rule repeated row
        # after row); a merged level1/level2 cell repeated down its rows is one reading, not several
        boxes: dict[tuple[str, str], set] = {}
        for row in rec.indicators:
            for key, v in row.items():
                if key not in ("level1", "level1_points", "level2") and isinstance(v.value, str) \
                        and len(_norm(v.value)) >= 4:
                    boxes.setdefault((key, _norm(v.value)), set()).add((v.page, v.bbox))
        elsewhere.update({k: len(b) - 1 for k, b in boxes.items() if len(b) > 1})
        return cls(texts, {k: sum(e) / len(e) for k, e in cols.items() if len(e) >= 3}, elsewhere)


_LOW_OCR = _logit(0.9)


def add_form_features(xs: list[dict[str, float]], also: Iterable[dict[str, float]] = ()) -> None:
    """Form-level quality on every cell of one form (in place): the share of its read cells with a
    character under 0.9, of its longer texts with characters that fit no word, of its cells in a
    failing arithmetic rule. A bad page lowers all its cells, including those whose own scores
    look fine: evidence that does not hang on which files the model was fitted on."""
    read = [x for x in xs if not x["empty"] and not x["derived"] and not x["vector"]]
    texts = [x for x in read if x["log_chars"] >= math.log1p(4) and not x["number"]]
    form = {
        "form_low": sum(x["ocr_min"] < _LOW_OCR for x in read) / len(read) if read else 0.0,
        "form_oov": sum(x.get("lone_n", 0.0) > 0 for x in texts) / len(texts) if texts else 0.0,
        "form_failed": sum(x["rules_failed"] > 0 for x in xs) / len(xs) if xs else 0.0,
    }
    for x in [*xs, *also]:  # `also`: rows of values counted once in xs (a value under two keys)
        x.update({k: round(v, 4) for k, v in form.items()})


def _texts_by_key(rec: FormRecord) -> set[tuple[str, str]]:
    """The (key, text) pairs a form reads, texts of four characters or more (short ones repeat anyway)."""
    out = set()
    for _section, _i, key, v, _kind, _row in iter_cells(rec):
        if isinstance(v.value, str) and len(_norm(v.value)) >= 4:
            out.add((key, _norm(v.value)))
    return out


def cell_features(
    v: Value,
    kind: str,
    section: str,
    page: PageContext,
    row: dict[str, Value] | None = None,
    rctx: RecordContext | None = None,
    key: str = "",
) -> dict[str, float]:
    """The model's inputs for one cell (names as in FEATURES)."""
    ev = v.evidence
    derived = "ocr_min" not in ev  # a stage that read no cells of its own (title, level1 split, funding label)
    ocr_min = ev.get("ocr_min", ev.get("conf0", v.confidence))
    n_chars = ev.get("n_chars", float(len(v.raw or "")))
    x = {
        "bias": 1.0,
        "vector": 1.0 if page.kind == "vector" else 0.0,
        "garbled": 1.0 if page.kind == "garbled" else 0.0,
        "ocr_min": _logit(ocr_min),
        "ocr_mean": _logit(ev.get("ocr_mean", ocr_min)),
        "ocr_low": ev.get("ocr_low", 0.0),
        "ocr_sumlog": max(-20.0, ev.get("ocr_sumlog", math.log(max(1e-3, ocr_min)))),
        "ocr_experr": 10 * ev.get("ocr_experr", 1 - ocr_min),
        "long_experr": 10 * ev.get("ocr_experr", 1 - ocr_min) if kind == "text" and n_chars > 40 else 0.0,
        "label": ev.get("label", 1.0),
        "label_weak": 1.0 if ev.get("label", 1.0) < 0.9 else 0.0,
        "empty": 1.0 if v.value is None or v.value == "" else 0.0,
        "unparsed": 1.0 - ev.get("parsed", 1.0),
        "rules_ok": min(ev.get("rules_ok", 0.0), 3.0),
        "rules_failed": min(ev.get("rules_failed", 0.0), 3.0),
        "repaired": ev.get("repaired", 0.0),
        "number": 1.0 if kind in ("number", "int", "money", "percent") else 0.0,
        "long_text": 1.0 if kind == "text" and n_chars > 40 else 0.0,
        "log_chars": math.log1p(n_chars),
        "multi_line": 1.0 if ev.get("n_lines", 1.0) > 1 else 0.0,
        "page_q": _logit(page.quality),
        "page_low": page.low_frac,
        # the skew removed is kept as evidence but not fed to the model: the dev corpus's skews are
        # drawn per file, and the fitted trees split on it more than on anything (53 of 262 splits)
        # to tell files apart, not pages
        "row_min": 0.0,
        "row_failed": 0.0,
        "funding": 1.0 if section == "funding" else 0.0,
        "indicator": 1.0 if section == "indicators" else 0.0,
        "derived": 1.0 if derived else 0.0,
        "looks_label": 0.0,
        "dup_field": 0.0,
        "end_odd": 0.0,
        "numeric_text": 0.0,
        "agree": 0.0,
        # whether an empty cell is blank is visible: no ink inside it (OCR's second look), or ink
        # that nothing read
        "blank": ev.get("blank", 0.0),
        "ink_empty": ev.get("unread_ink", 0.0),
        # a born-digital page's layer is exact: a cell with no text there is empty (189 of 189 on
        # the dev corpus); an OCRed cell no look found blank may have lost its lines (13 of 35)
        "empty_unseen": 0.0 if page.kind == "vector" else ev.get("unseen", 0.0),
        # every scored indicator has a 一级指标, a name and a weight (none empty in the dev truth's
        # 1,319 rows): an empty one was lost (a merged cell's piece, a column run together)
        "empty_required": 1.0 if section == "indicators" and key in REQUIRED_INDICATOR_KEYS
        and (v.value is None or v.value == "") else 0.0,
        # brackets that do not pair up, read on a page that was OCRed (a layer's text is as printed)
        "unbalanced": 1.0 if page.kind != "vector" and isinstance(v.value, str) and unbalanced(v.value) else 0.0,
        # a lone 1 read on soft print: the stem a thin 4 or 7, or a 19's 1 alone, leaves
        "soft_one": 1.0 if kind != "text" and page.kind != "vector" and page.quality < SOFT_PAGE
        and (v.raw or "").strip() == "1" else 0.0,
        "ink_out": min(ev.get("ink_out", 0.0), 5.0),
        "ink_gap": min(3.0, max(-3.0, ev.get("ink_gap", 0.0))),
        # share of the characters the cascade's tiny recogniser read (engines.CascadeEngine)
        "tiny": ev.get("tiny", 0.0),
        "form_low": 0.0,
        "form_oov": 0.0,
        "form_failed": 0.0,
    }
    text = v.value if kind == "text" and isinstance(v.value, str) else ""
    if text and len(text) <= 12 and section != "funding":
        from ..lexicon import get_matcher

        # a value that reads as a label ('分值', '二级指标') was taken from the wrong cell; indicator
        # names may share a header field's words (预算执行率), so there only column headers count
        m = get_matcher()
        x["looks_label"] = 1.0 if (m.is_label_like(text) if section == "fields" else m.match(text, "indicators")) else 0.0
    if text and rctx is not None:
        x["dup_field"] = 1.0 if section == "fields" and rctx.field_texts[_norm(text)] > 1 else 0.0
        share = rctx.end_share.get(key) if section == "indicators" else None
        if share is not None and len(text) > 6:
            ends = text.rstrip().endswith("。")
            x["end_odd"] = 1.0 if (share >= 0.5 and not ends) or (share < 0.5 and ends) else 0.0
    x["numeric_text"] = 1.0 if text and re.fullmatch(r"[\d.%]+", text) else 0.0
    if text:
        from ..lexicon import lone_chars

        x["lone_n"], x["lone_frac"] = lone_chars(text)
    if text and rctx is not None and len(_norm(text)) >= 4:
        x["agree"] = float(min(rctx.elsewhere[(key, _norm(text))], 3))
    # level1/level2 come from a closed vocabulary: a term read is strong evidence, a snapped
    # one weaker, a reading that is none of them (a merged name, a lost rule) suspect
    x["vocab"] = ev.get("vocab", 0.0)
    x["off_vocab"] = 1.0 if text and key in ("level1", "level2") and ev.get("vocab", 0.0) == 0.0 else 0.0
    if row:
        mins = [c.evidence.get("ocr_min", c.evidence.get("conf0", c.confidence)) for c in row.values()]
        x["row_min"] = _logit(min(mins)) - x["ocr_min"] if mins else 0.0
        x["row_failed"] = 1.0 if any(c.evidence.get("rules_failed") for c in row.values()) else 0.0
    return x


def iter_cells(rec: FormRecord) -> Iterator[tuple[str, int | None, str, Value, str, dict[str, Value] | None]]:
    """(section, row index or None, key, value, row) for every cell of a record, once each."""
    from ..lexicon import get_matcher

    m = get_matcher()
    for key, v in rec.fields.items():
        yield "fields", None, key, v, m.kind("fields", key), None
    for i, row in enumerate(rec.funding):
        for key, v in row.items():
            yield "funding", i, key, v, m.kind("funding", key), row
    for i, row in enumerate(rec.indicators):
        for key, v in row.items():
            yield "indicators", i, key, v, m.kind("indicators", key), row


def record_evidence(rec: FormRecord, pages: dict[int, PageContext]) -> list[dict[str, Any]]:
    """Each cell's evidence and page context, addressed as the scorer addresses cells.

    Saved beside the records by `scanforms run --features`, so that `scanforms calibrate` can rebuild
    the features from records + evidence without running the pipeline again when the features change.
    """
    out = []
    for section, i, key, v, _kind, _row in iter_cells(rec):
        v.evidence.setdefault("conf0", v.confidence)  # the stages' own score, before calibration
        ctx = pages.get(v.page or 0) or PageContext()
        out.append({"form_index": rec.form_index, "section": section, "row": i, "key": key,
                    "evidence": dict(v.evidence), "page": asdict(ctx)})
    return out


def record_from_json(data: dict[str, Any], evidence: dict[tuple, dict[str, Any]]) -> tuple[FormRecord, dict[int, PageContext]]:
    """A written record turned back into Values carrying their saved evidence (see record_evidence)."""
    src = data["source"]
    fi = int(src.get("form_index", 0))
    pages: dict[int, PageContext] = {}

    def val(section: str, row: int | None, key: str, cell: Any) -> Value:
        cell = cell if isinstance(cell, dict) and "value" in cell else {"value": cell}
        saved = evidence.get((section, fi, row, key)) or {}
        bbox = cell.get("bbox")
        v = Value(cell.get("value"), cell.get("raw") or "", float(cell.get("confidence") or 0.0), cell.get("page"),
                  tuple(bbox) if bbox else None, list(cell.get("reasons") or []),  # type: ignore[arg-type]
                  evidence=dict(saved.get("evidence") or {}))
        if saved.get("page") and v.page is not None:
            known = {f.name for f in fields(PageContext)}  # evidence saved by another version may hold more
            pages[v.page] = PageContext(**{k: x for k, x in saved["page"].items() if k in known})
        return v

    rec = FormRecord(file=str(src.get("file", "")), form_index=fi, pages=list(src.get("pages") or []))
    rec.fields = {k: val("fields", None, k, c) for k, c in (data.get("fields") or {}).items()}
    rec.funding = [{k: val("funding", i, k, c) for k, c in r.items()} for i, r in enumerate(data.get("funding") or [])]
    rec.indicators = [{k: val("indicators", i, k, c) for k, c in r.items()}
                      for i, r in enumerate(data.get("indicators") or [])]
    return rec, pages


def record_features(
    rec: FormRecord, pages: dict[int, PageContext], peers: Iterable[FormRecord] = ()
) -> list[dict[str, Any]]:
    """Feature rows for the calibration set, addressed as the scorer addresses cells."""
    out = []
    rctx = RecordContext.of(rec, peers)
    seen: set[int] = set()
    once, again = [], []  # as score_record counts them: a value shared by two keys once
    for section, i, key, v, kind, row in iter_cells(rec):
        ctx = pages.get(v.page or 0) or PageContext()
        x = cell_features(v, kind, section, ctx, row, rctx, key)
        (again if id(v) in seen else once).append(x)
        seen.add(id(v))
        out.append({"form_index": rec.form_index, "section": section, "row": i, "key": key, "x": x})
    add_form_features(once, again)
    return out
