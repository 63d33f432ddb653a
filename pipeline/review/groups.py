"""Groups in the review queue: cells that read the same, so one decision settles them all.

Two queue entries are in one group when
- they share section, key, typed value and raw reading after the scorer's normalisation
  (NFKC, whitespace removed: `eval/score.py`'s `norm_text`), and
- their crops look alike: each crop's print (the cell's rulings, cut-off rule stubs and scan
  specks taken out, the ink cut to its box) scaled to 24 px high and one width, aligned at
  the best shift of up to 2 px, correlates with every other member's at CROP_MATCH as a
  whole and at GLYPH_MATCH in every glyph-wide window (one changed glyph of a long reading,
  10 / 18 or 95% / 96%, barely moves the whole's figure but sinks its window's), and the
  ink boxes' aspect ratios agree within ASPECT_TOLERANCE. Complete linkage: a cell joins a
  group only if it matches all of it, so a chain of near matches never joins two prints.

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
RULE_SHARE = 0.6  # a row or column of the crop this dark is a ruling
RULE_WIDTH = 6  # pixels: a ruling is at most this thick at 200 DPI
DOT_SIZE = 8  # pixels: a blot this small both ways is a speck (a digit is 15-25 px tall at 200 DPI)
SPECK_AREA = 4  # pixels: a blot this small is no print
SPECK_SHARE = 0.15  # nor one under this share of the crop's largest blot (scan specks beside a glyph)
SIG_H, SIG_W_MAX = 24, 480  # two crops' ink is compared scaled to 24 px high, as wide as their shape
SHIFT = 2  # pixels either way the two may be offset
BLANK_INK = 0.03  # mean ink of a window under which it is paper
CROP_MATCH = 0.8  # correlation of two crops' ink, as a whole, to be called the same print
GLYPH_MATCH = 0.75  # and in every glyph-wide window
ASPECT_TOLERANCE = 0.25  # ink-box width/height ratios may differ by this factor


def reading_key(e: dict[str, Any]) -> tuple[str, str, str, str] | None:
    """What must be equal for two entries to group; None: this entry never groups."""
    raw = norm_text(e.get("raw") or "")
    if not raw or not e.get("crop"):
        return None
    return (str(e["section"]), str(e["key"]), raw, json.dumps(e.get("value"), ensure_ascii=False, sort_keys=True))


def crop_signature(image: np.ndarray) -> tuple[np.ndarray, float] | None:
    """The crop's text ink, cut to its box (0 paper .. 1 darkest), and the box's aspect ratio
    (width / height); None when the crop holds no ink.

    The cell's rulings (the crop reaches past the cell box, by more or less than its margin
    as the grid found it) and scan specks are not the text: lines as long as half the crop
    are taken out first, then every blot much smaller than the largest. The ink threshold
    sits just under the paper, not Otsu's: faint print beside a few black specks would
    otherwise be paper."""
    import cv2

    g = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if g.shape[0] > 2 * CROP_MARGIN + 8 and g.shape[1] > 2 * CROP_MARGIN + 8:
        g = g[CROP_MARGIN:-CROP_MARGIN, CROP_MARGIN:-CROP_MARGIN]  # the cell box (rules at or near its edge)
    h, w = g.shape
    paper = float(np.percentile(g, 75))
    dark = cv2.GaussianBlur(g, (3, 3), 0) < paper - 25  # blurred: grain is no ink
    ink = dark.astype(np.uint8) * 255
    # rulings: rows / columns mostly dark (a faint rule breaks up at this threshold, so a
    # run-length test would miss it), and a pixel either side
    rule_rows = np.flatnonzero(dark.mean(axis=1) >= RULE_SHARE)
    rule_cols = np.flatnonzero(dark.mean(axis=0) >= RULE_SHARE)
    for d in (-1, 0, 1):
        ink[np.clip(rule_rows + d, 0, h - 1), :] = 0
        ink[:, np.clip(rule_cols + d, 0, w - 1)] = 0
    n, lab, stats, _c = cv2.connectedComponentsWithStats(ink, connectivity=8)
    if n <= 1:
        return None
    st = stats[1:]
    areas = st[:, cv2.CC_STAT_AREA]
    x0s, y0s = st[:, cv2.CC_STAT_LEFT], st[:, cv2.CC_STAT_TOP]
    x1s, y1s = x0s + st[:, cv2.CC_STAT_WIDTH], y0s + st[:, cv2.CC_STAT_HEIGHT]
    # a stub of a ruling where rules cross, cut off at the box's edge: thin, touching it
    edge = (x0s == 0) | (y0s == 0) | (x1s == w) | (y1s == h)
    stub = edge & (np.minimum(st[:, cv2.CC_STAT_WIDTH], st[:, cv2.CC_STAT_HEIGHT]) <= RULE_WIDTH)
    # a scan speck (or a full stop, dropped alike from every crop of the same text): a small dot
    dot = (st[:, cv2.CC_STAT_WIDTH] <= DOT_SIZE) & (st[:, cv2.CC_STAT_HEIGHT] <= DOT_SIZE)
    areas = np.where(stub | dot, 0, areas)
    keep = np.zeros(n, bool)
    keep[1:] = areas >= max(SPECK_AREA, SPECK_SHARE * areas.max())
    mask = keep[lab]
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    # the print's darkness, not just its shape: 0 paper .. 1 darkest ink of the box
    box = np.where(mask[y0:y1, x0:x1], paper - g[y0:y1, x0:x1].astype(np.float32), 0.0)
    box /= max(1.0, float(box.max()))
    return box, float((x1 - x0) / max(1, y1 - y0))


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    d = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum()) / d if d > 1e-9 else 0.0


def crop_similarity(a: tuple[np.ndarray, float], b: tuple[np.ndarray, float]) -> tuple[float, float, float]:
    """How alike two crops' ink is, both scaled to SIG_H high and one width and aligned at the
    best shift of a pixel or two: (normalised cross-correlation of the whole, its lowest over
    glyph-wide windows that hold ink, ratio of the ink boxes' aspect ratios, >= 1).

    The windows are for one glyph that differs in a long reading (10 / 18, 95% / 96%), which
    moves the whole's correlation little."""
    import cv2

    w = int(min(SIG_W_MAX, max(4, round(SIG_H * (a[1] + b[1]) / 2))))
    pa = cv2.resize(a[0], (w, SIG_H), interpolation=cv2.INTER_AREA)
    pb = cv2.copyMakeBorder(cv2.resize(b[0], (w, SIG_H), interpolation=cv2.INTER_AREA),
                            SHIFT, SHIFT, SHIFT, SHIFT, cv2.BORDER_CONSTANT, value=0.0)
    res = cv2.matchTemplate(pb, pa, cv2.TM_CCOEFF_NORMED)
    _lo, whole, _l, (dx, dy) = cv2.minMaxLoc(res)
    pb = pb[dy:dy + SIG_H, dx:dx + w]
    win = SIG_H // 2
    local = 1.0
    for x in range(0, max(1, w - win + 1), max(1, win // 2)):
        wa, wb = pa[:, x:x + win], pb[:, x:x + win]
        if max(float(wa.mean()), float(wb.mean())) < BLANK_INK:
            continue  # paper in both: a space between glyphs
        local = min(local, _ncc(wa, wb))
    return float(whole), local, max(a[1], b[1]) / min(a[1], b[1])


def crops_match(a: tuple[np.ndarray, float], b: tuple[np.ndarray, float]) -> bool:
    """Same print: ink boxes of about one shape, ink that correlates at CROP_MATCH or more as
    a whole and at GLYPH_MATCH or more in every glyph-wide window."""
    whole, local, aspect = crop_similarity(a, b)
    return aspect <= 1 + ASPECT_TOLERANCE and whole >= CROP_MATCH and local >= GLYPH_MATCH


def _load_signature(review_dir: Path, crop: str) -> tuple[np.ndarray, float] | None:
    import cv2

    img = cv2.imread(str(review_dir / crop), cv2.IMREAD_GRAYSCALE)
    return None if img is None else crop_signature(img)


def merge_spanning(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per cell: a merged cell (一级/二级指标) the records repeat down the rows it
    spans, queued once per row, becomes one entry whose `rows` are all of them. The queue
    writer already does this per file; here for parts an older version wrote."""
    out: list[dict[str, Any]] = []
    seen: dict[tuple[Any, ...], dict[str, Any]] = {}
    for e in entries:
        e.setdefault("rows", [e.get("row")])
        span = None
        if e.get("row") is not None and e.get("bbox"):
            span = (e["file"], e["sha256"], e["form_index"], e["section"], e["key"], e.get("page"),
                    tuple(e["bbox"]), e.get("raw"))
        if span is not None and span in seen:
            first = seen[span]
            first["rows"] = sorted(set(first["rows"]) | set(e["rows"]))
            continue
        if span is not None:
            seen[span] = e
        out.append(e)
    return out


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
