"""Calibrate: fit the confidence model on a corpus with ground truth.

    scanforms run ../shared/corpus/dev --out /tmp/cal --features -j 2
    scanforms calibrate --truth ../shared/corpus/dev/truth --pred /tmp/cal

Each scored cell (see `evaluate`) is joined to the features the run wrote for
it; boosted shallow trees are fitted on all of them, and the isotonic map on top of
it is fitted on out-of-fold scores (folds by file), so that the map corrects
the trees' optimism rather than memorising it. The default review
threshold is the lowest that keeps the out-of-fold accepted-error rate under
the target. Everything goes to `models/calibration.json`.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np

from . import confidence, evaluate
from .export import atomic_write_text
from .types import FormRecord

FOLDS = 5


def load_features(pred_dir: Path, records: dict[tuple[str, int], dict] | None = None) -> dict[tuple, dict[str, float]]:
    """Features of every cell of a `--features` run, rebuilt from its records (or `records`, those
    records as they were before review) and saved evidence."""
    evidence: dict[str, dict[tuple, dict]] = {}
    for f in sorted((pred_dir / "features").glob("*.jsonl")):
        for line in f.read_text(encoding="utf-8").splitlines():
            if line.strip():
                r = json.loads(line)
                evidence.setdefault(r["file"], {})[(r["section"], r["form_index"], r["row"], r["key"])] = r
    by_file: dict[str, list[tuple[FormRecord, dict[int, confidence.PageContext]]]] = {}
    for (file, _fi), data in (evaluate.load_records(pred_dir) if records is None else records).items():
        if file in evidence:
            by_file.setdefault(file, []).append(confidence.record_from_json(data, evidence[file]))
    out = {}
    for file, recs in by_file.items():
        forms = [rec for rec, _ in recs]  # a form's features read the document's other forms
        for rec, pages in recs:
            for row in confidence.record_features(rec, pages, forms):
                out[(file, rec.form_index, row["section"], row["row"], row["key"])] = row["x"]
    return out


def review_set(out_dir: Path) -> tuple[list[list[float]], list[float], list[str]]:
    """The reviewed cells of an output folder as labelled cells: (features, 1 if the reviewer
    accepted the pipeline's value, 0 if they corrected it, file of each row).

    A reviewer's decision is the truth for its cell. The features are those of the record as
    the pipeline wrote it: every decided cell is put back to its original (kept in the
    decisions file) before they are rebuilt, so the model learns from what it saw."""
    from .review.store import DecisionStore, db_path, set_cell

    if not db_path(out_dir).exists():
        raise ValueError(f"{out_dir}: no review decisions (review/decisions.sqlite)")
    with DecisionStore(db_path(out_dir)) as store:
        decisions = list(store.all().values())
    records = evaluate.load_records(out_dir)
    original: list[tuple[str, Any, Any, Any]] = []  # (file, cell address, decided value, pipeline's value)
    for d in decisions:
        rec = records.get((Path(d.file).name, d.cell.form_index))
        if rec is None or d.original is None:
            continue  # the file's output is gone, or a decision from before originals were kept
        set_cell(rec, d.cell.section, d.cell.row, d.cell.key, d.original)
        original.append((Path(d.file).name, d.cell, d.value, d.original.get("value")))
    feats = load_features(out_dir, records)
    types = evaluate._types()
    X, y, files = [], [], []
    for file, cell, value, pipeline_value in original:
        if evaluate._is_null(value) and evaluate._is_null(pipeline_value):
            continue  # nothing on the form, nothing claimed: the scorer does not count it either
        x = feats.get((file, cell.form_index, cell.section, cell.row, cell.key))
        if x is None:
            continue
        X.append([x.get(k, 0.0) for k in confidence.FEATURES])
        y.append(1.0 if evaluate.same(types[cell.section].get(cell.key, "text"), value, pipeline_value) else 0.0)
        files.append(f"review:{out_dir.name}/{file}")  # its own fold group, apart from a truth file of that name
    if not X:
        raise ValueError(f"no reviewed cell joined: was {out_dir} written with `scanforms run --features`?")
    return X, y, files


def training_set(
    truth_dir: Path | None, pred_dir: Path | None, reviews: list[Path] | tuple[Path, ...] = ()
) -> tuple[np.ndarray, np.ndarray, list[str], int]:
    """(X, y, file of each row, cells the scorer counts with no prediction to join): the scored
    cells of `pred_dir` against `truth_dir`, plus the reviewed cells of each folder in `reviews`."""
    X, y, files, unjoined = [], [], [], 0
    for out_dir in reviews:
        rx, ry, rf = review_set(out_dir)
        X += rx
        y += ry
        files += rf
    if truth_dir is None or pred_dir is None:
        return np.array(X), np.array(y), files, unjoined
    cells, _n, _missing = evaluate.score_folder(truth_dir, pred_dir)
    feats = load_features(pred_dir)
    for c in cells:
        x = feats.get((c.file, c.form_index, c.section, c.row, c.key))
        if x is None:
            unjoined += 1  # a truth row nothing was predicted for: no confidence, always reviewed
            continue
        X.append([x.get(k, 0.0) for k in confidence.FEATURES])
        y.append(1.0 if c.correct else 0.0)
        files.append(c.file)
    if not X:
        raise ValueError(f"no features joined: was {pred_dir} written with `scanforms run --features`?")
    return np.array(X), np.array(y), files, unjoined


def _ece(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    b = np.minimum((p * bins).astype(int), bins - 1)
    return float(sum(abs(p[b == k].mean() - y[b == k].mean()) * (b == k).sum() for k in range(bins) if (b == k).any())
                 / len(p))


def _at_threshold(p: np.ndarray, y: np.ndarray, thr: float, n_extra: int) -> dict[str, float]:
    acc = p >= thr
    n = len(p) + n_extra
    return {
        "review_rate": round(1 - acc.sum() / n, 4),
        "accepted_error_rate": round(float((1 - y[acc]).sum() / acc.sum()) if acc.any() else 0.0, 5),
    }


def choose_threshold(p: np.ndarray, y: np.ndarray, target_error: float) -> float:
    """The lowest threshold whose accepted cells (p ≥ it) are wrong at most `target_error` of the time."""
    values = np.unique(np.round(p, 4))[::-1]  # candidate thresholds, high to low
    best = 1.0
    for thr in values:
        acc = p >= thr
        if acc.any() and (1 - y[acc]).mean() <= target_error:
            best = float(thr)
    return best


def fit(X: np.ndarray, y: np.ndarray, files: list[str], target_error: float = 0.004) -> tuple[confidence.Calibration, np.ndarray]:
    """The model, and the out-of-fold calibrated scores it was judged by."""
    uniq = sorted(set(files))
    fold_of = {f: i % FOLDS for i, f in enumerate(uniq)}
    folds = np.array([fold_of[f] for f in files])
    raw_oof = np.zeros(len(y))
    for k in range(FOLDS):
        tr, te = folds != k, folds == k
        if not te.any() or len(set(y[tr])) < 2:
            continue
        base, trees = confidence.fit_trees(X[tr], y[tr])
        raw_oof[te] = confidence.Calibration(base, trees).raw(X[te].tolist())
    iso_x, iso_y = confidence.fit_isotonic(raw_oof, y)
    base, trees = confidence.fit_trees(X, y)
    oof = np.interp(raw_oof, iso_x, iso_y)
    model = confidence.Calibration(base, trees, list(confidence.FEATURES), iso_x, iso_y,
                                   choose_threshold(oof, y, target_error))
    return model, oof


def fit_folder(
    truth_dir: Path | None,
    pred_dir: Path | None,
    save: Path | None,
    target_error: float = 0.004,
    reviews: list[Path] | tuple[Path, ...] = (),
) -> dict[str, Any]:
    X, y, files, unjoined = training_set(truth_dir, pred_dir, reviews)
    if len(set(y.tolist())) < 2:
        raise ValueError("the training cells are all right or all wrong: nothing to fit")
    model, oof = fit(X, y, files, target_error)
    fitted = np.array([model.predict(dict(zip(confidence.FEATURES, row, strict=True))) for row in X])
    report = {
        "cells": int(len(y)),
        "reviewed_cells": sum(f.startswith("review:") for f in files),
        "cells_without_prediction": unjoined,
        "accuracy": round(float(y.mean()), 4),
        "threshold": model.threshold,
        "cross_validated": {"ece": round(_ece(oof, y), 4), **_at_threshold(oof, y, model.threshold, unjoined)},
        "fitted": {"ece": round(_ece(fitted, y), 4), **_at_threshold(fitted, y, model.threshold, unjoined)},
        "target_error": target_error,
    }
    model.meta = {
        "fitted_on": str(truth_dir),
        "date": dt.date.today().isoformat(),
        "command": f"scanforms calibrate --truth {truth_dir} --pred {pred_dir} --target-error {target_error}"
        + "".join(f" --reviews {r}" for r in reviews),
        "report": report,
    }
    if save is not None:
        atomic_write_text(save, json.dumps(model.to_json(), ensure_ascii=False, indent=1) + "\n")
        report["saved"] = str(save)
    return report
