"""Confidence, the scoring: every cell's calibrated probability and needs_review, in place."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from ..types import FormRecord, Value
from .features import PageContext, RecordContext, add_form_features, cell_features, iter_cells
from .model import Calibration, cap, get_model


def score_record(
    rec: FormRecord,
    pages: dict[int, PageContext],
    model: Calibration | None = None,
    threshold: float | None = None,
    failed_rules: Sequence[Any] | None = None,
    peers: Iterable[FormRecord] = (),
) -> None:
    """Set every cell's calibrated confidence and needs_review (in place).

    `failed_rules` are the rules of the form's arithmetic that fail (validate.RuleResult, or a
    plain list of a rule's cells). Where one of a rule's cells is doubtful, that misread explains
    the failure and goes to review on its own; where all read surely, the form itself is
    inconsistent, and the rule's cells go to a person (for a sum, the cells stating it). A rule
    that names its misread (`blames`) flags it either way.
    `peers` are the other forms of the same document (see RecordContext.elsewhere).
    """
    model = model or get_model()
    thr = model.threshold if threshold is None else threshold
    done: set[int] = set()
    rctx = RecordContext.of(rec, peers)
    todo: list[Value] = []
    xs: list[dict[str, float]] = []
    for section, _i, key, v, kind, row in iter_cells(rec):
        if id(v) in done:  # a value shared by two keys (funding total row → fields)
            continue
        done.add(id(v))
        ctx = pages.get(v.page or 0) or PageContext()
        v.evidence.setdefault("conf0", v.confidence)
        todo.append(v)
        xs.append(cell_features(v, kind, section, ctx, row, rctx, key))
    add_form_features(xs)
    # one model call for the whole form: features read the stages' scores (conf0), never a
    # calibrated one, so predicting after collecting them all gives the same values
    for v, x, p in zip(todo, xs, model.predict_many(xs), strict=True):
        if math.isnan(p):
            p = cap(x, v.confidence)  # no fitted model: the stages' own product of scores
        v.confidence = p
        v.needs_review = bool(p < thr)
    for rule in failed_rules or []:
        sure = [c for c in getattr(rule, "cells", rule) if c is not None]
        if all(not c.needs_review for c in sure) or getattr(rule, "blames", False):
            for c in getattr(rule, "to_flag", sure):
                if c is not None:
                    c.needs_review = True
