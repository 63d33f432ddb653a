"""Confidence: one calibrated probability per cell that its value is exactly right.

The evidence each stage leaves on a value (`Value.evidence`: OCR character
scores, label-match score, type parse, the forms' arithmetic holding or
failing, a repaired reading) plus what is known of its page (page kind, how
well the whole page read, skew) and its row goes
through boosted shallow trees, then an isotonic map, both fitted on the dev corpus by `scanforms calibrate`
and saved as data in `models/calibration.json`. A cell whose calibrated
confidence is under the threshold, or that takes part in a rule of the form's
arithmetic that fails, gets `needs_review: true`.

- `features`: a cell's evidence and context -> one row of FEATURES (and the saved evidence read back);
- `model`: the trees and the isotonic map, loaded from models/calibration.json and evaluated;
- `scoring`: every cell of a record scored in one model call, needs_review set.

Fitting the model is `pipeline.calibrate`.
"""

from .features import (
    FEATURES,
    PageContext,
    RecordContext,
    add_form_features,
    cell_features,
    iter_cells,
    record_evidence,
    record_features,
    record_from_json,
)
from .model import DEFAULT_THRESHOLD, MODEL_PATH, Calibration, Tree, get_model, tree_value
from .scoring import score_record

__all__ = [
    "DEFAULT_THRESHOLD",
    "FEATURES",
    "MODEL_PATH",
    "Calibration",
    "PageContext",
    "RecordContext",
    "Tree",
    "add_form_features",
    "cell_features",
    "get_model",
    "iter_cells",
    "record_evidence",
    "record_features",
    "record_from_json",
    "score_record",
    "tree_value",
]
