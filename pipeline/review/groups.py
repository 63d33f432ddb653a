"""Groups in the review queue: cells that read the same, so one decision settles them all.

Two queue entries are in one group when
- they share section, key, typed value and raw reading after the scorer's normalisation
  (NFKC, whitespace removed: `eval/score.py`'s `norm_text`), and
- their crops look alike: each crop's ink, cut to its bounding box and scaled to a small
  fixed grid, correlates with every other member's at `CROP_MATCH` or more, and the ink
  boxes' aspect ratios agree within `ASPECT_TOLERANCE` (complete linkage: a cell joins a
  group only if it matches all of it, so a chain of near matches never joins two
  different prints).

An empty reading never groups (a blank read says nothing about what is printed), nor
does an entry without a crop. Entries are the pipeline's queue entries: a merged cell
repeated down its rows is already one entry there (`rows` lists the rows it covers).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..evaluate import norm_text  # the scorer's normalisation: NFKC, whitespace removed

CROP_MARGIN = 12  # export._crop_jpeg's margin round the cell box
RULE_TRIM = 5  # a few more pixels, for the cell's own rulings
SIG_H, SIG_W = 12, 48  # the grid the ink is scaled to
CROP_MATCH = 0.80  # correlation of two crops' ink, scaled, to be called the same print
ASPECT_TOLERANCE = 0.25  # ink-box width/height ratios may differ by this factor


def reading_key(e: dict[str, Any]) -> tuple[str, str, str, str] | None:
    """What must be equal for two entries to group; None: this entry never groups."""
    raw = norm_text(e.get("raw") or "")
    if not raw or not e.get("crop"):
        return None
    return (str(e["section"]), str(e["key"]), raw, json.dumps(e.get("value"), ensure_ascii=False, sort_keys=True))


def crop_signature(image: np.ndarray) -> tuple[np.ndarray, float] | None:
    """The crop's ink scaled to SIG_H x SIG_W (zero mean, unit norm) and its aspect ratio;
    None when the crop holds no ink."""
    import cv2

    g = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    m = CROP_MARGIN + RULE_TRIM
    if g.shape[0] > 2 * m + 4 and g.shape[1] > 2 * m + 4:
        g = g[m:-m, m:-m]
    _t, ink = cv2.threshold(g, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    # specks of noise are no text: keep only components of a few pixels or more
    n, lab, stats, _c = cv2.connectedComponentsWithStats(ink, connectivity=8)
    keep = np.zeros(n, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= 4
    ink = np.where(keep[lab], 255, 0).astype(np.uint8)
    ys, xs = np.nonzero(ink)
    if len(xs) == 0:
        return None
    box = ink[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    aspect = box.shape[1] / max(1, box.shape[0])
    small = cv2.resize(box.astype(np.float32), (SIG_W, SIG_H), interpolation=cv2.INTER_AREA)
    small -= small.mean()
    norm = float(np.linalg.norm(small))
    if norm == 0:
        return None
    return small / norm, aspect


def crops_match(a: tuple[np.ndarray, float], b: tuple[np.ndarray, float]) -> bool:
    if max(a[1], b[1]) > (1 + ASPECT_TOLERANCE) * min(a[1], b[1]):
        return False
    return float((a[0] * b[0]).sum()) >= CROP_MATCH


def _load_signature(review_dir: Path, crop: str) -> tuple[np.ndarray, float] | None:
    import cv2

    img = cv2.imread(str(review_dir / crop), cv2.IMREAD_GRAYSCALE)
    return None if img is None else crop_signature(img)


def assign_groups(entries: list[dict[str, Any]], review_dir: Path) -> None:
    """Set `group` and `group_size` on every entry (in place), in the entries' order.

    A group's id is stable across re-runs of unchanged inputs: its first member's id."""
    buckets: dict[tuple[str, str, str, str], list[int]] = {}
    for i, e in enumerate(entries):
        k = reading_key(e)
        if k is not None:
            buckets.setdefault(k, []).append(i)
    group_of: dict[int, str] = {}
    for members in buckets.values():
        if len(members) == 1:
            continue
        sigs = {i: _load_signature(review_dir, str(entries[i]["crop"])) for i in members}
        clusters: list[list[int]] = []
        for i in members:
            if sigs[i] is None:
                continue
            for c in clusters:
                if all(crops_match(sigs[i], sigs[j]) for j in c):  # type: ignore[arg-type]
                    c.append(i)
                    break
            else:
                clusters.append([i])
        for c in clusters:
            if len(c) > 1:
                gid = "g-" + hashlib.sha1(str(entries[c[0]]["id"]).encode()).hexdigest()[:12]
                for i in c:
                    group_of[i] = gid
    sizes: dict[str, int] = {}
    for i, e in enumerate(entries):
        e["group"] = group_of.get(i, "g-" + hashlib.sha1(str(e["id"]).encode()).hexdigest()[:12])
        sizes[e["group"]] = sizes.get(e["group"], 0) + 1
    for e in entries:
        e["group_size"] = sizes[e["group"]]


def cells_of(e: dict[str, Any]) -> int:
    """How many record cells an entry stands for (a merged cell: the rows it covers)."""
    return len(e.get("rows") or [e.get("row")])
