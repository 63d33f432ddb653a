"""Calibrate: fit the confidence model on a corpus with ground truth.

    scanforms run ../shared/corpus/dev --out /tmp/cal --features -j 2
    scanforms calibrate --truth ../shared/corpus/dev/truth --pred /tmp/cal

Each scored cell (see `evaluate`) is joined to the features the run wrote for
it (`confidence.features`); boosted shallow trees are fitted on all of them, and the isotonic map on top of
it is fitted on out-of-fold scores (folds by file), so that the map corrects
the trees' optimism rather than memorising it. Given the corpus manifest, the whole fit is also repeated with each variant (photo, bilevel,
…) and each layout family left out, and the left-out cells scored: how the model does on a
kind of page it has never seen. The default review threshold is the lowest that keeps the
accepted-error rate of those held-out-condition scores (and of the out-of-fold ones) under the
target. Everything goes to `models/calibration.json`.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np

from . import confidence, evaluate
from .confidence.model import Tree, _FlatTrees, cap
from .export import atomic_write_text
from .options import CALIBRATION_TARGET_ERROR, CONDITION_TARGET_ERROR
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
) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """(X, y, file of each row, file of each cell the scorer counts with no prediction to join): the
    scored cells of `pred_dir` against `truth_dir`, plus the reviewed cells of each folder in `reviews`."""
    X, y, files = [], [], []
    unjoined: list[str] = []
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
            unjoined.append(c.file)  # a truth row nothing was predicted for: no confidence, always reviewed
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
    return choose_condition_threshold(p, y, np.full(len(p), "all"), target_error)


def choose_condition_threshold(p: np.ndarray, y: np.ndarray, groups: np.ndarray, target_error: float) -> float:
    """The lowest threshold at which every group's accepted cells (p ≥ it; NaN scores and cells
    of no group left out) are wrong at most `target_error` of the time."""
    ok = ~np.isnan(p) & (groups != "")
    p, y, groups = p[ok], y[ok], groups[ok]
    thresholds = np.unique(np.round(p, 4))  # the candidates
    worst = np.zeros(len(thresholds))
    for g in np.unique(groups):
        order = np.argsort(p[groups == g])
        ps, wrong = p[groups == g][order], (1 - y[groups == g])[order]
        first = np.searchsorted(ps, thresholds, side="left")  # the first cell accepted at each
        accepted = len(ps) - first
        wrong_from = np.concatenate([np.cumsum(wrong[::-1])[::-1], [0.0]])  # wrong cells from each on
        worst = np.maximum(worst, np.where(accepted > 0, wrong_from[first] / np.maximum(accepted, 1), 0.0))
    fine = thresholds[worst <= target_error]
    return float(fine.min()) if len(fine) else 1.0


def fit(
    X: np.ndarray, y: np.ndarray, files: list[str], target_error: float = CALIBRATION_TARGET_ERROR, folds: int = FOLDS
) -> tuple[confidence.Calibration, np.ndarray]:
    """The model, and the out-of-fold calibrated scores it was judged by."""
    uniq = sorted(set(files))
    fold_of = {f: i % folds for i, f in enumerate(uniq)}
    fold = np.array([fold_of[f] for f in files])
    raw_oof = np.zeros(len(y))
    for k in range(folds):
        tr, te = fold != k, fold == k
        if not te.any() or len(set(y[tr])) < 2:
            continue
        base, trees = fit_trees(X[tr], y[tr])
        raw_oof[te] = confidence.Calibration(base, trees).raw(X[te].tolist())
    iso_x, iso_y = fit_isotonic(raw_oof, y)
    base, trees = fit_trees(X, y)
    oof = _capped(np.interp(raw_oof, iso_x, iso_y), X)
    model = confidence.Calibration(base, trees, list(confidence.FEATURES), iso_x, iso_y,
                                   choose_threshold(oof, y, target_error))
    return model, oof


# --- held-out conditions -------------------------------------------------------------------------


def load_conditions(manifest: Path) -> dict[str, dict[str, str]]:
    """file -> {"variant": …, "family": …} from the corpus manifest (a file of forms of two
    layout families, 'A+B', is its own family group: it cannot be held out with either alone)."""
    import csv

    with manifest.open(encoding="utf-8", newline="") as f:
        return {row["file"]: {"variant": row.get("variant") or "?", "family": row.get("family") or "?"}
                for row in csv.DictReader(f)}


def held_out_scores(
    X: np.ndarray, y: np.ndarray, files: list[str], group_of: dict[str, str], target_error: float,
    inner_folds: int = 3,
) -> np.ndarray:
    """Each cell scored by a model fitted without its whole group (a variant, a layout family):
    trees and isotonic map alike, as if that condition had never been seen. Cells of files with
    no group (reviewed cells, files missing from the manifest) are never held out."""
    groups = np.array([group_of.get(f, "") for f in files])
    p = np.full(len(y), np.nan)
    for g in sorted(set(groups) - {""}):
        te = groups == g
        tr = ~te
        if len(set(y[tr].tolist())) < 2:
            continue
        model, _ = fit(X[tr], y[tr], [f for f, t in zip(files, tr, strict=True) if t], target_error, inner_folds)
        p[te] = predict_rows(model, X[te])
    return p


def _capped(p: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Scores with the model's evidence caps applied (confidence.model.CAPS), as the pipeline does."""
    return np.array([cap(dict(zip(confidence.FEATURES, row, strict=True)), float(v))
                     for v, row in zip(p, X.tolist(), strict=True)])


def predict_rows(model: confidence.Calibration, X: np.ndarray) -> np.ndarray:
    """The model's calibrated, capped probabilities for feature rows in FEATURES order."""
    raw = model.raw(X.tolist())
    return _capped(np.interp(raw, model.iso_x, model.iso_y) if model.iso_x else raw, X)


def condition_table(
    p: np.ndarray, y: np.ndarray, files: list[str], group_of: dict[str, str], thr: float,
    unjoined: dict[str, int] | None = None,
) -> dict[str, dict[str, float]]:
    """Per group at threshold `thr`: cells, wrong cells, review rate, accepted-error rate and the
    share of wrong cells flagged (as score.py counts them; a cell with no prediction is reviewed)."""
    groups = np.array([group_of.get(f, "") for f in files])
    out: dict[str, dict[str, float]] = {}
    for g in sorted(set(groups) - {""}):
        m = (groups == g) & ~np.isnan(p)
        extra = (unjoined or {}).get(g, 0)
        pg, yg = p[m], y[m]
        acc = pg >= thr
        wrong = yg < 0.5
        out[g] = {
            "cells": int(m.sum()) + extra,
            "wrong": int(wrong.sum()) + extra,
            "review_rate": round(1 - acc.sum() / max(1, len(pg) + extra), 4),
            "accepted_error_rate": round(float(wrong[acc].mean()) if acc.any() else 0.0, 5),
            "errors_flagged": round(float((~acc[wrong]).sum() + extra) / (wrong.sum() + extra), 4)
            if wrong.sum() + extra else 1.0,
        }
    return out


def format_table(title: str, table: dict[str, dict[str, float]]) -> str:
    """A condition table as aligned text, one row per held-out condition in name order."""
    cols = ["cells", "wrong", "review_rate", "accepted_error_rate", "errors_flagged"]
    lines = [title, "held out    " + "".join(f"{c:>21}" for c in cols)]
    for g, row in table.items():
        lines.append(f"{g:<12}" + "".join(f"{row[c]:>21}" for c in cols))
    return "\n".join(lines)


def fit_folder(
    truth_dir: Path | None,
    pred_dir: Path | None,
    save: Path | None,
    target_error: float = CALIBRATION_TARGET_ERROR,
    reviews: list[Path] | tuple[Path, ...] = (),
    manifest: Path | None = None,
) -> dict[str, Any]:
    """Fit, judge and (unless `save` is None) save the model. With a corpus manifest (by default
    the truth folder's parent's manifest.csv), the model is also judged on conditions it has not
    seen: each variant and each layout family held out in turn, and the default threshold is
    chosen on those held-out-condition scores (in-sample and 5-fold scores flatter: a new kind of
    page is what a real archive brings)."""
    X, y, files, unjoined_files = training_set(truth_dir, pred_dir, reviews)
    unjoined = len(unjoined_files)
    if len(set(y.tolist())) < 2:
        raise ValueError("the training cells are all right or all wrong: nothing to fit")
    model, oof = fit(X, y, files, target_error)
    if manifest is None and truth_dir is not None and (truth_dir.parent / "manifest.csv").exists():
        manifest = truth_dir.parent / "manifest.csv"
    held: dict[str, Any] = {}
    if manifest is not None:
        cond = load_conditions(manifest)
        for name in ("variant", "family"):
            group_of = {f: c[name] for f, c in cond.items()}
            p = held_out_scores(X, y, files, group_of, target_error)
            held[name] = (group_of, p)
        # the threshold a new condition needs: chosen on cells scored by models that never saw
        # their variant (cells of no variant, e.g. reviewed ones, by their 5-fold score)
        p_var = held["variant"][1]
        pooled = np.where(np.isnan(p_var), oof, p_var)
        model.threshold = max(model.threshold, choose_threshold(pooled, y, target_error))
        # and no variant held out over CONDITION_TARGET_ERROR (a new kind of page is one condition)
        variants = np.array([held["variant"][0].get(f, "") for f in files])
        model.threshold = max(model.threshold, choose_condition_threshold(
            p_var, y, variants, max(target_error, CONDITION_TARGET_ERROR)))
    fitted = predict_rows(model, X)
    report: dict[str, Any] = {
        "cells": int(len(y)),
        "reviewed_cells": sum(f.startswith("review:") for f in files),
        "cells_without_prediction": unjoined,
        "accuracy": round(float(y.mean()), 4),
        "threshold": model.threshold,
        "cross_validated": {"ece": round(_ece(oof, y), 4), **_at_threshold(oof, y, model.threshold, unjoined)},
        "fitted": {"ece": round(_ece(fitted, y), 4), **_at_threshold(fitted, y, model.threshold, unjoined)},
        "target_error": target_error,
    }
    for name, (group_of, p) in held.items():
        missing: dict[str, int] = {}
        for f in unjoined_files:
            if f in group_of:
                missing[group_of[f]] = missing.get(group_of[f], 0) + 1
        ok = ~np.isnan(p)
        report[f"held_out_{name}"] = {
            "ece": round(_ece(p[ok], y[ok]), 4) if ok.any() else None,
            **_at_threshold(p[ok], y[ok], model.threshold, sum(missing.values())),
            "by_condition": condition_table(p, y, files, group_of, model.threshold, missing),
        }
        report[f"fitted_by_{name}"] = condition_table(fitted, y, files, group_of, model.threshold, missing)
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


# --- fitting the trees and the isotonic map ----------------------------------------------------


def _grow_tree(
    X: np.ndarray, binned: np.ndarray, edges: list[np.ndarray], g: np.ndarray, h: np.ndarray,
    lr: float, lam: float, depth: int, min_hess: float,
) -> Tree:
    """One Newton-step tree on gradients g and hessians h: the split of best gain at each node."""
    nodes: Tree = []

    def build(idx: np.ndarray, level: int) -> int:
        G, H = float(g[idx].sum()), float(h[idx].sum())
        k = len(nodes)
        nodes.append({"v": round(lr * G / (H + lam), 6)})
        if level == depth or len(idx) < 20:
            return k
        best_gain, best_j, best_b = 0.0, -1, -1
        for j, e in enumerate(edges):
            nb = len(e) + 1
            if nb < 2:
                continue
            gl = np.cumsum(np.bincount(binned[idx, j], g[idx], nb))[:-1]
            hl = np.cumsum(np.bincount(binned[idx, j], h[idx], nb))[:-1]
            ok = (hl >= min_hess) & (H - hl >= min_hess)
            if not ok.any():
                continue
            gain = np.where(ok, gl**2 / (hl + lam) + (G - gl) ** 2 / (H - hl + lam) - G * G / (H + lam), -1.0)
            b = int(np.argmax(gain))
            if gain[b] > best_gain:
                best_gain, best_j, best_b = float(gain[b]), j, b
        if best_j < 0:
            return k
        thr = float(edges[best_j][best_b])
        go_left = X[idx, best_j] < thr
        if go_left.all() or not go_left.any():
            return k
        nodes[k].update({"f": best_j, "t": round(thr, 6)})
        nodes[k]["l"] = build(idx[go_left], level + 1)
        nodes[k]["r"] = build(idx[~go_left], level + 1)
        return k

    build(np.arange(len(X)), 0)
    return nodes


def fit_trees(
    X: np.ndarray, y: np.ndarray, rounds: int = 100, lr: float = 0.1, depth: int = 2, lam: float = 1.0,
    min_hess: float = 3.0, n_bins: int = 32,
) -> tuple[float, list[Tree]]:
    """Gradient-boosted trees for log loss (Newton steps), split points from per-feature quantiles."""
    d = X.shape[1]
    edges = [np.unique(np.quantile(X[:, j], np.linspace(0, 1, n_bins + 1)[1:-1])) for j in range(d)]
    binned = np.stack([np.searchsorted(e, X[:, j], side="right") for j, e in enumerate(edges)], 1)
    mean = float(np.clip(y.mean(), 1e-4, 1 - 1e-4))
    base = float(np.log(mean / (1 - mean)))
    F = np.full(len(X), base)
    trees: list[Tree] = []
    for _ in range(rounds):
        p = 1 / (1 + np.exp(-F))
        tree = _grow_tree(X, binned, edges, y - p, p * (1 - p) + 1e-9, lr, lam, depth, min_hess)
        trees.append(tree)
        F += _FlatTrees([tree]).leaf_values(X)[:, 0]
    return base, trees


def fit_isotonic(p: np.ndarray, y: np.ndarray, n_knots: int = 200) -> tuple[list[float], list[float]]:
    """Pool-adjacent-violators on (score, outcome), reduced to a few knots for np.interp."""
    order = np.argsort(p)
    ps, ys = p[order], y[order].astype(float)
    blocks: list[list[float]] = []  # [sum_y, count, min_p, max_p]
    for pi, yi in zip(ps, ys, strict=True):
        blocks.append([yi, 1.0, pi, pi])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] >= blocks[-1][0] / blocks[-1][1]:
            s, c, lo, hi = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += c
            blocks[-1][3] = hi
    xs, vs = [], []
    for s, c, lo, hi in blocks:
        xs.append((lo + hi) / 2)
        vs.append(s / c)
    if len(xs) > n_knots:  # keep the map small; np.interp between knots is monotone too
        idx = np.unique(np.linspace(0, len(xs) - 1, n_knots).round().astype(int))
        xs, vs = [xs[i] for i in idx], [vs[i] for i in idx]
    return [round(float(a), 6) for a in xs], [round(float(b), 6) for b in vs]
