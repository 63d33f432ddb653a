"""Preprocess: a rendered page -> upright, deskewed, evenly lit grey page plus a binary copy.

Steps (`prepare`): grey -> background normalisation (divide by a smooth
paper estimate: shadow bands, grey paper and uneven light go, ink stays) ->
binary (adaptive threshold, ink = 255) -> orientation (text-line direction
from projection profiles picks 0/180 vs 90/270; OCR scores on a few line
crops pick between the two) -> skew (coarse projection-profile search, then
a line fit on the long horizontal rulings) -> rotate the grey page and
binarize it again.

Conventions: `rotation` is the clockwise turn (degrees) applied to make the
page upright; `skew_deg` is the page's skew as seen on screen,
counter-clockwise positive, which `deskew` removes.
"""

from __future__ import annotations

import cv2
import numpy as np

from .ocr import OcrEngine, crop_quad
from .types import PageImage, PreparedPage

MAX_SKEW = 12.0  # degrees searched either side of level (scans are within ±10°)
PROFILE_SIDE = 900  # long side of the page copy used for the profile searches
MIN_SKEW = 0.02  # below this a rotation only blurs the page (clean vector renders)
OCR_LONG_SIDE = 1000  # orientation check: detection on a copy this size
OCR_LINES = 8  # widest lines read in each candidate orientation


# --- pixels -----------------------------------------------------------------------------------


def to_grey(image: np.ndarray) -> np.ndarray:
    """uint8 grey page. Colour pages take the brightest channel per pixel.

    The max channel keeps black/grey ink dark but turns red or blue seals and
    coloured stains pale, so they neither hide text from OCR nor look like ink.
    """
    img = image
    if img.dtype != np.uint8:
        img = cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if img.ndim == 2:
        return np.ascontiguousarray(img)
    if img.shape[2] == 4:
        img = img[:, :, :3]
    if img.shape[2] == 1:
        return np.ascontiguousarray(img[:, :, 0])
    return np.ascontiguousarray(img.max(axis=2))


def _ink_scale(shape: tuple[int, ...]) -> float:
    """Page size in units of a 200-DPI A4 short side (1654 px), for size-relative kernels."""
    return max(0.3, min(shape[:2]) / 1654.0)


def normalize_background(grey: np.ndarray) -> np.ndarray:
    """White paper, dark ink: divide by a smooth estimate of the paper brightness.

    The paper is estimated on a quarter-size copy: a max filter wider than any
    stroke removes the ink, a blur smooths it; dividing removes shadow bands,
    gradients and grey paper while faint ink keeps its contrast to the paper.
    """
    h, w = grey.shape
    f = 4
    small = cv2.resize(grey, (max(1, w // f), max(1, h // f)), interpolation=cv2.INTER_AREA)
    k = max(5, int(round(9 * _ink_scale(grey.shape))) | 1)  # ≈ 36 px at 200 DPI: wider than strokes
    bg = cv2.dilate(small, cv2.getStructuringElement(cv2.MORPH_RECT, (k, k)))
    bg = cv2.GaussianBlur(bg, (0, 0), k / 2)
    bg = cv2.resize(bg, (w, h), interpolation=cv2.INTER_LINEAR)
    bg = np.maximum(bg, 1).astype(np.float32)
    out = grey.astype(np.float32) * (255.0 / bg)
    return np.clip(out, 0, 255).astype(np.uint8)


def binarize(grey: np.ndarray) -> np.ndarray:
    """Ink = 255 binary for line finding: adaptive threshold on the normalised page.

    A local-mean threshold keeps faded rulings that a global one loses; the
    global bound (< 235) keeps paper noise near white from becoming ink.
    """
    s = _ink_scale(grey.shape)
    block = max(11, int(round(31 * s)) | 1)
    local = cv2.adaptiveThreshold(grey, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV, block, 12)
    dark = (grey < 235).astype(np.uint8) * 255
    return cv2.bitwise_and(local, dark)


def rotate_bound(image: np.ndarray, angle_deg: float, fill: int = 255) -> np.ndarray:
    """Rotate counter-clockwise (as seen on screen) by `angle_deg`, canvas grown to keep every pixel."""
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle_deg, 1.0)
    c, s = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(np.ceil(h * s + w * c)), int(np.ceil(h * c + w * s))
    m[0, 2] += nw / 2.0 - w / 2.0
    m[1, 2] += nh / 2.0 - h / 2.0
    border = (fill,) * (image.shape[2] if image.ndim == 3 else 1)
    return cv2.warpAffine(
        image, m, (nw, nh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=border
    )


def deskew(image: np.ndarray, skew_deg: float, fill: int = 255) -> np.ndarray:
    """Remove a counter-clockwise skew of `skew_deg` degrees (turns the page clockwise by it)."""
    if abs(skew_deg) < MIN_SKEW:
        return image
    return rotate_bound(image, -skew_deg, fill)


def turn(image: np.ndarray, rotation: int) -> np.ndarray:
    """Turn clockwise by a multiple of 90° (exact, no interpolation)."""
    k = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(image, -k)) if k else image


# --- skew -------------------------------------------------------------------------------------


def _as_binary(img: np.ndarray) -> np.ndarray:
    """Ink = 255 binary of a grey page, or the image itself if it already is one (ink = 255)."""
    vals = np.unique(img[:: max(1, img.shape[0] // 64), :: max(1, img.shape[1] // 64)])
    if np.isin(vals, (0, 255)).all() and img.mean() < 128:
        return img  # already binary with ink = 255 (ink is the minority)
    return binarize(normalize_background(to_grey(img)))


def _small(binary: np.ndarray, side: int = PROFILE_SIDE) -> np.ndarray:
    """Float ink-density copy with long side `side` (area averaging keeps thin rules)."""
    h, w = binary.shape
    s = min(1.0, side / max(h, w))
    if s < 1:
        binary = cv2.resize(binary, (max(1, int(w * s)), max(1, int(h * s))), interpolation=cv2.INTER_AREA)
    return binary.astype(np.float32) / 255.0


def _profile_scores(small: np.ndarray, angles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row- and column-profile sharpness (sum of squared sums) after rotating by each angle.

    Rotating a centred disc-safe square keeps the set of pixels the same for
    every angle, so scores compare across angles and between rows and columns.
    """
    h, w = small.shape
    side = min(h, w)
    r = side / 2.0
    cy, cx = h / 2.0, w / 2.0
    rows, cols = np.empty(len(angles)), np.empty(len(angles))
    yy, xx = np.mgrid[0:side, 0:side]
    disc = ((yy - r + 0.5) ** 2 + (xx - r + 0.5) ** 2 <= r * r).astype(np.float32)
    for i, a in enumerate(angles):
        m = cv2.getRotationMatrix2D((cx, cy), float(a), 1.0)
        m[0, 2] -= cx - r
        m[1, 2] -= cy - r
        rot = cv2.warpAffine(small, m, (side, side), flags=cv2.INTER_LINEAR, borderValue=0) * disc
        rows[i] = float(np.square(rot.sum(axis=1)).sum())
        cols[i] = float(np.square(rot.sum(axis=0)).sum())
    return rows, cols


def _refine_peak(angles: np.ndarray, scores: np.ndarray) -> float:
    """Angle of the best score, refined by a parabola through it and its neighbours."""
    i = int(np.argmax(scores))
    if 0 < i < len(scores) - 1:
        y0, y1, y2 = scores[i - 1], scores[i], scores[i + 1]
        d = y0 - 2 * y1 + y2
        if d < 0:
            return float(angles[i] + 0.5 * (y0 - y2) / d * (angles[1] - angles[0]))
    return float(angles[i])


def _profile_skew(small: np.ndarray, columns: bool = False) -> float:
    """Skew (ccw positive) from the sharpest row (or column) profile, coarse-to-fine."""
    img = small.T.copy() if columns else small
    a = np.arange(-MAX_SKEW, MAX_SKEW + 1e-6, 0.5)
    rows, _ = _profile_scores(img, a)
    best = float(a[int(np.argmax(rows))])
    for step in (0.1, 0.02):
        a = best + np.arange(-5, 6) * step
        rows, _ = _profile_scores(img, a)
        best = _refine_peak(a, rows)
    # rotating the page by +a (ccw) levels it, so the page was skewed by -a;
    # a transposed page mirrors the angle
    return best if columns else -best


def _rule_skew(binary: np.ndarray) -> tuple[float, float] | None:
    """(skew, total rule length) from long horizontal rulings of a nearly level binary page.

    Each ruling is found by a wide horizontal opening and gets a least-squares
    line through its pixels; the length-weighted median of their angles is
    robust to text blobs and a few broken rules.
    """
    h, w = binary.shape
    klen = max(15, w // 30)
    lines = cv2.morphologyEx(binary, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (klen, 1)))
    # close small gaps (faded or broken rules) so a ruling stays one component
    lines = cv2.morphologyEx(lines, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (klen, 1)))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(lines, connectivity=8)
    min_len = max(40, w // 8)
    angles: list[float] = []
    weights: list[float] = []
    for i in range(1, n):
        x, y, bw, bh, area = stats[i]
        if bw < min_len or bh > max(8, bw * 0.08):
            continue
        sub = labels[y : y + bh, x : x + bw] == i
        ys, xs = np.nonzero(sub)
        xs = xs.astype(np.float64)
        ys = ys.astype(np.float64)
        xm = xs - xs.mean()
        den = float((xm * xm).sum())
        if den <= 0:
            continue
        slope = float((xm * (ys - ys.mean())).sum() / den)
        angles.append(-np.degrees(np.arctan(slope)))  # y grows downwards: rising to the right = ccw
        weights.append(float(bw))
    if not angles:
        return None
    order = np.argsort(angles)
    a = np.asarray(angles)[order]
    wts = np.asarray(weights)[order]
    cum = np.cumsum(wts)
    med = float(a[int(np.searchsorted(cum, cum[-1] / 2.0))])
    return med, float(cum[-1])


def estimate_skew(image: np.ndarray, columns: bool = False) -> float:
    """Skew of a page in degrees, counter-clockwise positive, within ±MAX_SKEW.

    Accepts a grey/colour page or an ink = 255 binary. A projection-profile
    search gives the angle to ~0.1°; a line fit on the long rulings of the
    page turned level by that angle refines it. Without rulings the profile
    angle stands. `columns=True` measures a page whose text runs vertically.
    """
    binary = _as_binary(image)
    if columns:
        binary = np.ascontiguousarray(binary.T)
    coarse = _profile_skew(_small(binary))
    levelled = deskew(binary, coarse, fill=0)
    fine = _rule_skew(levelled)
    if fine is None or fine[1] < 0.5 * binary.shape[1] or abs(fine[0]) > 1.0:
        skew = coarse
    else:
        skew = coarse + fine[0]
    return -skew if columns else skew


# --- orientation ------------------------------------------------------------------------------


def _text_runs_vertically(binary: np.ndarray) -> bool:
    """Whether text lines and rules run vertically (page turned 90° or 270°).

    Compares the sharpest row profile with the sharpest column profile over
    the skew range on the same centred disc of the page: horizontal text
    lines and rulings make the row profile peaky.
    """
    small = _small(binary, 600)
    a = np.arange(-MAX_SKEW, MAX_SKEW + 1e-6, 1.0)
    rows, cols = _profile_scores(small, a)
    return float(cols.max()) > float(rows.max())


def _ocr_score(grey: np.ndarray, engine: OcrEngine) -> tuple[float, float]:
    """Mean OCR score of the widest lines read as they are, and turned 180°."""
    h, w = grey.shape
    s = min(1.0, OCR_LONG_SIDE / max(h, w))
    small = cv2.resize(grey, (int(w * s), int(h * s)), interpolation=cv2.INTER_AREA) if s < 1 else grey
    quads = engine.detect(small)
    if not quads:
        return 0.0, 0.0

    def width(q: np.ndarray) -> float:
        return float(max(np.linalg.norm(q[0] - q[1]), np.linalg.norm(q[1] - q[2])))

    quads = sorted(quads, key=width, reverse=True)[:OCR_LINES]
    crops = [crop_quad(grey, np.asarray(q, dtype=np.float32) / s) for q in quads]
    crops = [c for c in crops if c.size]
    if not crops:
        return 0.0, 0.0
    flipped = [np.ascontiguousarray(np.rot90(c, 2)) for c in crops]
    res = engine.recognize(crops + flipped)
    n = len(crops)
    up = float(np.mean([r[1] for r in res[:n]]))
    down = float(np.mean([r[1] for r in res[n:]]))
    return up, down


def _upside_down_heuristic(binary: np.ndarray) -> bool:
    """Without OCR: is a level page upside down? Uses where punctuation sits in text lines.

    Chinese punctuation (，。、) and the dots of numbers are small blobs in the
    lower half of a text line; turned 180° they sit in the upper half.
    """
    h, w = binary.shape
    s = _ink_scale(binary.shape)
    # drop rulings so that they neither join text blobs nor count as lines
    k = max(15, int(60 * s))
    rules = cv2.morphologyEx(binary, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (k, 1)))
    rules |= cv2.morphologyEx(binary, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (1, k)))
    text = cv2.subtract(binary, cv2.dilate(rules, np.ones((3, 3), np.uint8)))
    n, _, stats, _ = cv2.connectedComponentsWithStats(text, connectivity=8)
    if n < 50:
        return False
    # text lines: characters smeared horizontally into line blobs
    kx = max(5, int(25 * s))
    lines = cv2.dilate(text, cv2.getStructuringElement(cv2.MORPH_RECT, (kx, 1)))
    ln, llabels, lstats, _ = cv2.connectedComponentsWithStats(lines, connectivity=8)
    lo = max(2, int(2 * s))
    hi = max(4, int(8 * s))
    char_min = max(10, int(18 * s))
    below = above = 0
    for i in range(1, n):
        x, y, bw, bh, area = stats[i]
        if not (lo <= bw <= hi and lo <= bh <= hi):
            continue
        cy, cx = y + bh // 2, x + bw // 2
        lab = llabels[cy, cx]
        if lab == 0:
            continue
        lx, ly, lw, lh, _ = lstats[lab]
        if lh < char_min or lh > 3 * char_min or lw < 3 * lh:
            continue  # not a single text line
        rel = (cy - ly) / lh
        if rel > 0.65:
            below += 1
        elif rel < 0.35:
            above += 1
    return above > below * 1.2 and above >= 5


def detect_orientation(grey: np.ndarray, engine: OcrEngine | None = None, binary: np.ndarray | None = None) -> int:
    """Clockwise turn (0/90/180/270) that makes the page upright.

    Geometry (profile direction) settles 0/180 vs 90/270; the OCR engine (if
    given) reads the widest lines both ways round and the better mean score
    wins; without an engine punctuation placement decides.
    """
    if binary is None:
        binary = binarize(normalize_background(grey))
    vertical = _text_runs_vertically(binary)
    first = 90 if vertical else 0  # the two candidates are `first` and `first + 180`
    g = turn(grey, first)
    if engine is not None:
        up, down = _ocr_score(g, engine)
        return first if up >= down else first + 180
    b = turn(binary, first)
    return first + 180 if _upside_down_heuristic(b) else first


# --- the stage --------------------------------------------------------------------------------


def prepare(page: PageImage, engine: OcrEngine | None = None) -> PreparedPage:
    """Upright, deskewed, background-normalised grey page and its ink = 255 binary."""
    grey = normalize_background(to_grey(page.image))
    binary = binarize(grey)
    rotation = detect_orientation(grey, engine, binary)
    grey = turn(grey, rotation)
    binary = turn(binary, rotation)
    skew = estimate_skew(binary)
    if abs(skew) >= MIN_SKEW:
        grey = deskew(grey, skew, fill=255)
        binary = binarize(grey)  # thresholding the rotated grey beats interpolating a binary
    else:
        skew = 0.0
    return PreparedPage(page=page, image=grey, binary=binary, rotation=rotation, skew_deg=float(skew))
