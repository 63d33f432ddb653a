"""Confidence, the model: boosted shallow trees over the features, then an isotonic map.

Both are fitted on the dev corpus by `scanforms calibrate` (pipeline/calibrate.py) and saved as
data in `models/calibration.json`; here they are loaded and evaluated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .features import FEATURES

MODEL_PATH = Path(__file__).resolve().parents[2] / "models" / "calibration.json"
DEFAULT_THRESHOLD = 0.9  # replaced by the fitted model's own threshold when one is saved

# Evidence that a reading is not to be trusted whatever else the page looks like: the cell's
# probability is capped, below any threshold, so a kind of page the model was never fitted on
# cannot talk it up. Measured on the dev corpus (11,093 cells, run of 2026-12-02): a value that
# does not parse as its type is right 0 of 59 times; a 一级/二级指标 reading that is none of the
# closed vocabulary's terms, on a page that was OCRed, 6 of 50; a label matched weakly 4 of 11; an
# empty value from a cell with ink that nothing read is not known to be blank. The trees seldom
# split on such rare flags (too few cells carry them to pay for a split), so they are rules. A
# value the form's arithmetic supplied (a blank weight, unread points, a reading chosen because
# it makes the sums hold) was inferred, not read: a person confirms it. A text whose brackets do
# not pair up (features.unbalanced) lost or gained one. A lone 1 on soft print (features.SOFT_PAGE)
# may be what is left of a 4, a 7 or a 19.
CAPS: dict[str, float] = {"unparsed": 0.3, "off_vocab": 0.5, "label_weak": 0.5, "ink_empty": 0.5, "empty_unseen": 0.5,
                          "empty_required": 0.5, "repaired": 0.5, "unbalanced": 0.5, "soft_one": 0.5}


# ... and evidence that a cell is empty for sure: no ink inside it (`blank`). On the dev corpus
# (run of 2026-12-07, null truths counted too) such cells were empty 1,209 times of 1,210; the
# scorer leaves empty-and-empty cells out, so the fitted model never sees one right and would
# send every blank 备注 to review. Not for an indicator's figures: a scored indicator's weight
# and score are filled in (blank 3 times of 1,319), and a 1-bit page's thin 2 can break into
# specks the ink test drops (bilevel d049); the funding block's blank figures are sure (262 of 262).
BLANK_SURE = 0.995


def cap(x: dict[str, float], p: float) -> float:
    """`p` raised for a blank text cell (BLANK_SURE), then capped by the evidence in feature row `x`
    (see CAPS)."""
    if x.get("blank", 0.0) > 0 and x.get("empty", 0.0) > 0 and not (x.get("number", 0.0) and x.get("indicator", 0.0)):
        p = max(p, BLANK_SURE)
    for k, m in CAPS.items():
        if x.get(k, 0.0) > 0 and not (k == "off_vocab" and x.get("vector", 0.0) > 0):
            p = min(p, m)
    return p


Tree = list[dict[str, Any]]  # nodes: {"v": leaf value} or {"f": feature, "t": threshold, "l": k, "r": k, "v": ...}


def tree_value(tree: Tree, x: list[float]) -> float:
    k = 0
    while "f" in tree[k]:
        node = tree[k]
        k = node["l"] if x[node["f"]] < node["t"] else node["r"]
    return float(tree[k]["v"])


class _FlatTrees:
    """A list of trees as flat node arrays, for walking every tree for many rows at once."""

    def __init__(self, trees: list[Tree]) -> None:
        feat, thr, left, right, val, roots = [], [], [], [], [], []
        for tree in trees:
            off = len(feat)
            roots.append(off)
            for node in tree:
                leaf = "f" not in node
                feat.append(0 if leaf else int(node["f"]))
                thr.append(0.0 if leaf else float(node["t"]))
                # a leaf points at itself: extra steps leave it where it is
                left.append(len(feat) - 1 if leaf else off + int(node["l"]))
                right.append(len(feat) - 1 if leaf else off + int(node["r"]))
                val.append(float(node.get("v", 0.0)))
        self.feat = np.array(feat, dtype=np.int64)
        self.thr = np.array(thr, dtype=np.float64)
        self.left = np.array(left, dtype=np.int64)
        self.right = np.array(right, dtype=np.int64)
        self.val = np.array(val, dtype=np.float64)
        self.roots = np.array(roots, dtype=np.int64)
        self.depth = max((_depth(t) for t in trees), default=0)

    def leaf_values(self, x: np.ndarray) -> np.ndarray:
        """(rows, trees) leaf values for feature rows x (rows, features)."""
        nodes = np.broadcast_to(self.roots, (x.shape[0], len(self.roots))).copy()
        r = np.arange(x.shape[0])[:, None]
        for _ in range(self.depth):
            go_left = x[r, self.feat[nodes]] < self.thr[nodes]
            nodes = np.where(go_left, self.left[nodes], self.right[nodes])
        return self.val[nodes]


def _depth(tree: Tree, k: int = 0) -> int:
    node = tree[k]
    if "f" not in node:
        return 0
    return 1 + max(_depth(tree, node["l"]), _depth(tree, node["r"]))


_FLAT: dict[int, tuple[list[Tree], _FlatTrees]] = {}


def _flat_trees(trees: list[Tree]) -> _FlatTrees:
    """The flat form of a model's trees, made once per trees list (models are loaded once)."""
    hit = _FLAT.get(id(trees))
    if hit is None or hit[0] is not trees or len(hit[1].roots) != len(trees):
        hit = (trees, _FlatTrees(trees))
        if len(_FLAT) >= 8:  # calibration fits many models: keep the cache small
            _FLAT.clear()
        _FLAT[id(trees)] = hit
    return hit[1]


@dataclass
class Calibration:
    """Boosted shallow trees over FEATURES (log-odds), then an isotonic map of their probability.

    Trees rather than one linear score because the same OCR score means different things on a
    clean scan and on a blurred, specked one: the model has to condition on the page.
    """

    base: float = 0.0
    trees: list[Tree] = field(default_factory=list)
    features: list[str] = field(default_factory=lambda: list(FEATURES))
    iso_x: list[float] = field(default_factory=list)
    iso_y: list[float] = field(default_factory=list)
    threshold: float = DEFAULT_THRESHOLD
    meta: dict[str, Any] = field(default_factory=dict)

    def raw(self, rows: list[list[float]]) -> np.ndarray:
        """Uncalibrated probabilities for feature rows in `self.features` order."""
        if not rows or not self.trees:
            z = np.array([self.base + sum(tree_value(t, r) for t in self.trees) for r in rows])
        else:
            # all trees walked at once (a cell's ~100 trees one node at a time were a visible share
            # of a born-digital page); leaf values summed in tree order, as the plain loop does
            leaves = _flat_trees(self.trees).leaf_values(np.asarray(rows, dtype=np.float64))
            z = np.array([self.base + sum(vals) for vals in leaves.tolist()])
        return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))

    def predict_many(self, xs: list[dict[str, float]]) -> list[float]:
        """`predict` for many feature dicts at once (one walk of the trees for all of them)."""
        if not self.trees:
            return [float("nan")] * len(xs)
        if not xs:
            return []
        p = self.raw([[x.get(k, 0.0) for k in self.features] for x in xs])
        if self.iso_x:
            p = np.interp(p, self.iso_x, self.iso_y)
        return [cap(x, float(v)) for x, v in zip(xs, p, strict=True)]

    def predict(self, x: dict[str, float]) -> float:
        if not self.trees:
            return float("nan")
        p = float(self.raw([[x.get(k, 0.0) for k in self.features]])[0])
        if self.iso_x:
            p = float(np.interp(p, self.iso_x, self.iso_y))
        return cap(x, p)

    def to_json(self) -> dict[str, Any]:
        return {
            "features": self.features,
            "base": self.base,
            "trees": self.trees,
            "isotonic": {"x": self.iso_x, "y": self.iso_y},
            "threshold": self.threshold,
            "meta": self.meta,
        }

    @classmethod
    def load(cls, path: Path = MODEL_PATH) -> Calibration:
        if not path.exists():
            return cls()
        d = json.loads(path.read_text(encoding="utf-8"))
        iso = d.get("isotonic") or {}
        return cls(float(d.get("base", 0.0)), d.get("trees", []), d.get("features", list(FEATURES)),
                   iso.get("x", []), iso.get("y", []), d.get("threshold", DEFAULT_THRESHOLD), d.get("meta", {}))


_MODEL: Calibration | None = None


def get_model() -> Calibration:
    global _MODEL
    if _MODEL is None:
        _MODEL = Calibration.load()
    return _MODEL
