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

from .engines import OcrEngine, crop_quad
from .measure import glyph_height_of, glyph_or_default, scale_of_ink
from .types import PageImage, PreparedPage

MAX_SKEW = 12.0  # degrees searched either side of level (scans are within ±10°)
COARSE_SIDE = 500  # long side of the page copy for the coarse skew search (~0.1°)
FINE_SIDE = 1400  # ... for the finer search on pages without rulings
ORIENT_SIDE = 1200  # ... for the text-direction test (body text ≈ 15 px high)
MIN_SKEW = 0.02  # below this a rotation only blurs the page (clean vector renders)
OCR_LONG_SIDE = 1000  # orientation check: detection on a copy this size
OCR_FIRST_LINES = 2  # read first; enough when their vote is decisive
OCR_DECISIVE = 0.25  # mean-score margin (upright vs turned) that settles it
OCR_LINES = 5  # widest lines read both ways round (scores differ by ~0.3+: a few lines suffice)


# --- pixels -----------------------------------------------------------------------------------


def to_grey(image: np.ndarray) -> np.ndarray:
    """uint8 grey page. Colour pages take the brightest channel per pixel, and a red seal's
    strokes the paper around them.

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
    b, g, r = cv2.split(np.ascontiguousarray(img))
    grey = cv2.max(cv2.max(b, g), r)
    # a red seal is pale in the brightest channel, not gone (R 200-230 on white): its ring is
    # then a curve of faint ink that line finding takes for a rule and its lettering OCR reads
    # as 口. Light red well clear of the other two channels is paper; ink under a seal is dark in
    # red too (dark red where the seal is laid over it) and stays. Blue or green fills (a
    # header's white-on-blue) are left to the light-text inversion
    redness = cv2.subtract(r, cv2.max(b, g))
    if int(redness.max()) <= RED_SEAL[0]:
        return grey
    # red as strokes of its own: a colour scan's fringes along black text are red too, a pixel
    # wide (realscans 05: 0.6 % of the page; lifting them thinned 编三个组 to 编)
    red = ((redness > RED_SEAL[0]) & (r > RED_LIGHT[0])).astype(np.uint8)
    square = np.ones((3, 3), np.uint8)
    seal = cv2.dilate(cv2.morphologyEx(red, cv2.MORPH_OPEN, square), square)
    if not seal.any():
        return grey
    # ... and away from dark ink: the edges of characters the seal lies over are light red too,
    # and lifting them thins the characters (dev d030: 年度资金总额 read as 总颗)
    seal[cv2.dilate((grey < INK_UNDER_SEAL).astype(np.uint8), square) > 0] = 0
    lift = np.clip((redness.astype(np.float32) - RED_SEAL[0]) / (RED_SEAL[1] - RED_SEAL[0]), 0.0, 1.0)
    lift *= np.clip((r.astype(np.float32) - RED_LIGHT[0]) / (RED_LIGHT[1] - RED_LIGHT[0]), 0.0, 1.0) * seal
    # to the paper around it, not to white: on a grey scan a white ring is an edge of its own
    k = max(3, int(min(grey.shape) * SEAL_PAPER) | 1)
    paper = cv2.dilate(grey, np.ones((k, k), np.uint8))
    return (grey + (paper.astype(np.float32) - grey) * lift).astype(np.uint8)


# redness (R less the brighter of G and B): from the first no lift, from the second all the way to
# paper. A printed seal's red is 80-170 over the other channels; a warm paper tint or a brown
# stain 10-30
RED_SEAL = (40.0, 80.0)
# ... and only where the red channel is light: a seal on paper is 200-230 there, text the seal
# is laid over 0-120
RED_LIGHT = (150.0, 190.0)
INK_UNDER_SEAL = 128  # the brightest channel under this is ink, seal or not
SEAL_PAPER = 0.012  # of the page's short side (19 px at 200 DPI): wider than a seal's stroke


SHEET_SIDE = 800  # long side of the copy the sheet outline is found on
SHEET_AREA = (0.25, 0.95)  # share of the frame a photographed sheet covers (a scan: all of it)
SHEET_CONTRAST = 0.8  # the background around it at most this bright, relative to the sheet


def find_sheet(image: np.ndarray) -> list[tuple[float, float]] | None:
    """Corners (tl, tr, br, bl) of a photographed sheet lying on a darker background, or None.
    `image` in colour or already grey (`to_grey`).

    A phone photo of a form shows the sheet as a bright quadrilateral on a desk, its rules
    converging: the grid's lattice assumes parallel rules, so the sheet is mapped back onto a
    rectangle first. Found as the largest bright region (Otsu on a small grey copy), its hull
    reduced to four corners; a scan (the paper fills the frame) or a sheet without a darker
    surround has none.
    """
    grey = to_grey(image)
    h, w = grey.shape
    f = max(1.0, max(h, w) / SHEET_SIDE)
    small = cv2.resize(grey, (max(1, int(w / f)), max(1, int(h / f))), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (5, 5), 0)
    _, bright = cv2.threshold(small, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    bright = cv2.morphologyEx(bright, cv2.MORPH_CLOSE, np.ones((15, 15), np.uint8))  # the print
    contours, _ = cv2.findContours(bright, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    hull = cv2.convexHull(max(contours, key=cv2.contourArea))
    share = cv2.contourArea(hull) / float(small.shape[0] * small.shape[1])
    if not SHEET_AREA[0] <= share <= SHEET_AREA[1]:
        return None
    quad = None
    for eps in (0.01, 0.02, 0.03, 0.05):
        q = cv2.approxPolyDP(hull, eps * cv2.arcLength(hull, True), True)
        if len(q) == 4:
            quad = q.reshape(4, 2).astype(np.float32)
            break
    if quad is None or not cv2.isContourConvex(quad.reshape(4, 1, 2)):
        return None
    inside = np.zeros(small.shape, np.uint8)
    cv2.fillConvexPoly(inside, quad.astype(np.int32), 1)
    if float(small[inside == 0].mean()) > SHEET_CONTRAST * float(small[inside > 0].mean()):
        return None
    s, d = quad.sum(axis=1), np.diff(quad, axis=1).ravel()  # tl: min x+y, br: max, tr: min y-x, bl: max
    ordered = quad[[int(np.argmin(s)), int(np.argmin(d)), int(np.argmax(s)), int(np.argmax(d))]] * f
    if len({tuple(p) for p in ordered.tolist()}) < 4:
        return None
    return [(float(x), float(y)) for x, y in ordered]


def unwarp(image: np.ndarray, sheet: list[tuple[float, float]]) -> np.ndarray:
    """The sheet mapped onto an upright rectangle as long as its longer opposite edges."""
    tl, tr, br, bl = (np.array(p, np.float32) for p in sheet)
    width = int(round(max(np.linalg.norm(tr - tl), np.linalg.norm(br - bl))))
    height = int(round(max(np.linalg.norm(bl - tl), np.linalg.norm(br - tr))))
    dst = np.array([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]], np.float32)
    m = cv2.getPerspectiveTransform(np.array([tl, tr, br, bl]), dst)
    border = (255, 255, 255) if image.ndim == 3 else 255
    # cubic: the far side of the sheet is enlarged, and linear blurs the already soft glyphs
    # (dev photo 207 -> 196 wrong cells; d041/d045/d046 better, none worse). Enlarging the
    # sheet as well (to 1654 px wide, or 1.15x) moved d044 anywhere from 99 to 131 wrong:
    # chance on one blurred file, not a trend, so not kept
    return cv2.warpPerspective(image, m, (width, height), flags=cv2.INTER_CUBIC, borderValue=border)


def clear_sheet_edges(binary: np.ndarray, photo_shape: tuple[int, ...]) -> np.ndarray:
    """The binary of an unwarped sheet without ink along its edges.

    The corners are found on a copy SHEET_SIDE px long, to a pixel or two of it: a sliver of
    desk may line the unwarped sheet's edges, and beside a table printed near the edge it joins
    the grid as an extra row and column. Two of the copy's pixels (plus one) along each edge
    are cleared. Only in the binary the grid is found on: the grey OCR reads and the skew
    measured before are left as they are (painting them moved the dev photos' skews by up to
    0.07 deg and their readings with them: 149 -> 162 wrong cells)."""
    edge = int(np.ceil(2 * max(1.0, max(photo_shape[:2]) / SHEET_SIDE))) + 1
    out = binary.copy()
    out[:edge], out[-edge:], out[:, :edge], out[:, -edge:] = 0, 0, 0, 0
    return out


RULE_BEND_MIN = 0.3  # glyph heights a rule must bend or lean before a photographed page is remapped


def _rule_centres(binary: np.ndarray, horizontal: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    """Centre lines (position along, position across) of the long rules of a binary page."""
    h, w = binary.shape
    long_side = w if horizontal else h
    n = max(15, long_side // 25)  # longer than any stroke of text
    runs = cv2.morphologyEx(binary, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (n, 1) if horizontal else (1, n)))
    chain = cv2.dilate(runs, cv2.getStructuringElement(cv2.MORPH_RECT, (n, 3) if horizontal else (3, n)))
    k, labels, stats, _ = cv2.connectedComponentsWithStats(chain, connectivity=8)
    out = []
    for i in range(1, k):
        x, y, bw, bh = (int(v) for v in stats[i, :4])
        if (bw if horizontal else bh) < long_side / 8:
            continue
        ys, xs = np.nonzero((labels[y : y + bh, x : x + bw] == i) & (runs[y : y + bh, x : x + bw] > 0))
        a, b = (xs + x, ys + y) if horizontal else (ys + y, xs + x)
        count = np.bincount(a)
        along = np.nonzero(count)[0]
        if len(along) >= 50:
            out.append((along[::4].astype(float), (np.bincount(a, weights=b)[along] / count[along])[::4]))
    return out


def _bend_terms(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """A rule's displacement across itself: smooth in both coordinates, zero along the middle."""
    return np.stack([u, u * u, u**3, u * v, u * v * v, u * u * v], axis=-1)


def _fit_bend(rules: list[tuple[np.ndarray, np.ndarray]], n_along: int, n_across: int) -> tuple[np.ndarray, float] | None:
    """Least squares over every rule at once: across = offset of its rule + bend(along, across).

    One low-order field for the page (a perspective left over from an inexact sheet outline,
    a curl of the paper) rather than each rule's own curve: neighbouring rules of different
    sections would otherwise pull the page apart between them (smearing the text there).
    Returns the bend's coefficients and the largest displacement it makes on a rule.
    """
    if len(rules) < 3:
        return None
    terms = [_bend_terms(a / n_along - 0.5, b / n_across - 0.5) * n_across for a, b in rules]
    across = np.concatenate([b for _, b in rules])
    which = np.concatenate([np.full(len(a), i) for i, (a, _) in enumerate(rules)])
    offsets = np.zeros((len(across), len(rules)))
    offsets[np.arange(len(across)), which] = 1.0
    design = np.hstack([np.concatenate(terms), offsets])
    keep = np.ones(len(across), bool)
    for _ in range(2):  # once more without the points far off (a tick, a blot on a rule)
        sol = np.linalg.lstsq(design[keep], across[keep], rcond=None)[0]
        res = across - design @ sol
        keep = np.abs(res) < max(3.0, 3 * float(np.std(res[keep])))
    coef = sol[:6]
    return coef, float(np.abs(np.concatenate(terms) @ coef).max())


def straighten(grey: np.ndarray, flat: np.ndarray, binary: np.ndarray, glyph: float) -> tuple[np.ndarray, np.ndarray] | None:
    """The grey and line-finding pages remapped so that bent or converging rules run straight
    (None where every rule is within RULE_BEND_MIN glyphs of straight and square).

    Rules are found on a half-size copy; the field is fitted in full-size pixels.
    """
    h, w = binary.shape
    half = cv2.resize(binary, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)
    half = ((half > 64) * 255).astype(np.uint8)
    fits = []
    for horizontal, n_along, n_across in ((True, w, h), (False, h, w)):
        rules = [(a * 2, b * 2) for a, b in _rule_centres(half, horizontal)]
        fits.append(_fit_bend(rules, n_along, n_across))
    if max((f[1] for f in fits if f is not None), default=0.0) < RULE_BEND_MIN * glyph:
        return None
    step = 16  # the field is smooth: computed on a coarse grid, interpolated
    gx, gy = np.arange(0, w + step, step, dtype=float), np.arange(0, h + step, step, dtype=float)
    shift = []
    for f, along, across, n_along, n_across, transpose in (
        (fits[0], gx, gy, w, h, False), (fits[1], gy, gx, h, w, True)
    ):
        if f is None:
            shift.append(np.zeros((h, w), np.float32))
            continue
        u, v = np.meshgrid(along / n_along - 0.5, across / n_across - 0.5)
        d = (_bend_terms(u, v) @ f[0]) * n_across
        d = d.T if transpose else d
        shift.append(cv2.resize(d.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR))
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    map_x, map_y = xs + shift[1], ys + shift[0]
    return (
        cv2.remap(grey, map_x, map_y, cv2.INTER_LINEAR, borderValue=255),
        cv2.remap(flat, map_x, map_y, cv2.INTER_LINEAR, borderValue=255),
    )


def _darkest_channel(image: np.ndarray) -> np.ndarray:
    """Per pixel the darkest channel: a coloured fill is dark in it, white text is not
    (cv2.min: numpy's min over the channel axis costs ≈ 0.14 s on a 200-DPI page)."""
    if image.ndim == 2:
        return image
    b, g, r = cv2.split(np.ascontiguousarray(image[:, :, :3]))
    return cv2.min(cv2.min(b, g), r)


def light_text_regions(image: np.ndarray) -> np.ndarray | None:
    """Mask of filled regions whose text is lighter than the fill (white on a blue header cell,
    a negative scan), or None where the page has none.

    Such text vanishes from the max-channel grey (blue fill 245, white text 255) and from any
    page whose ink is taken to be darker than its paper. A candidate is a patch whose median
    (over ≈ 2 glyphs at 200 DPI, so text lines on paper never count; median edges stay where
    the fill's are) is well below the paper, with its small holes (large text) filled. It is
    light text when the patch holds thin strokes back near the paper's brightness (2-45 % of
    it), no light blobs, and little ink darker than the fill: a photo's desk or a shadow band
    has no such strokes, and a dark fill with black text has dark ink in it.
    """
    m = _darkest_channel(image)
    h, w = m.shape
    f = 4
    small = cv2.resize(m, (max(1, w // f), max(1, h // f)), interpolation=cv2.INTER_AREA)
    k = max(5, int(round(15 * _ink_scale(m.shape))) | 1)
    med = cv2.medianBlur(small, k)
    paper = float(np.percentile(small, 90))
    cand = (med < 0.6 * paper).astype(np.uint8)
    # holes of a patch up to a few windows across are its text; a desk's hole is the sheet
    contours, hier = cv2.findContours(cand, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hier is not None:
        holes = [c for c, hh in zip(contours, hier[0], strict=True) if hh[3] >= 0 and cv2.contourArea(c) < (4 * k) ** 2]
        cv2.drawContours(cand, holes, -1, 1, thickness=cv2.FILLED)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(cand, connectivity=4)
    stroke = np.ones((max(9, (k * f // 3) | 1),) * 2, np.uint8)  # wider than a stroke
    out: np.ndarray | None = None
    for i in range(1, n):
        if stats[i, cv2.CC_STAT_AREA] < k * k:
            continue
        sx, sy, sw, sh = (int(v) for v in stats[i, :4])
        x0, y0, x1, y1 = sx * f, sy * f, min(w, (sx + sw) * f), min(h, (sy + sh) * f)
        comp = (labels[sy : sy + sh, sx : sx + sw] == i).astype(np.uint8)
        inside = cv2.resize(comp, (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST) > 0
        roi = m[y0:y1, x0:x1]
        core = cv2.erode(inside.astype(np.uint8), np.ones((2 * f + 1,) * 2, np.uint8)) > 0  # off its rules
        vals = roi[core]
        if vals.size == 0:
            continue
        fill = float(np.median(vals))
        bright = core & (roi > fill + 0.5 * (paper - fill))
        light = float(bright.sum()) / vals.size
        if not 0.02 < light < 0.45:
            continue
        # text is strokes: an opening wider than a stroke leaves none of it, while paper the
        # patch took in stays; and the fill is solid, where dense dark text (a bold title whose
        # median is dark) is strokes itself, its paper the light between them
        near = (core & (np.abs(roi.astype(np.int16) - int(fill)) < 40)).astype(np.uint8)
        solid = float(cv2.morphologyEx(near, cv2.MORPH_OPEN, stroke).sum()) / vals.size
        blobs = float(cv2.morphologyEx(bright.astype(np.uint8), cv2.MORPH_OPEN, stroke).sum()) / vals.size
        if blobs < 0.25 * light and solid > 0.5:
            if out is None:
                out = np.zeros((h, w), bool)
            out[y0:y1, x0:x1] |= inside
    return out


def invert_light_text(grey: np.ndarray, image: np.ndarray) -> np.ndarray:
    """The grey page with light-on-dark regions turned dark-on-light (see `light_text_regions`).

    Inside them the darkest channel is inverted: a blue fill's (66, 165, 245) minimum is dark,
    its white text's is not, so the text comes out dark on a lighter fill, which background
    normalisation then whitens.
    """
    mask = light_text_regions(image)
    if mask is None:
        return grey
    m = _darkest_channel(image)
    out = grey.copy()
    out[mask] = 255 - m[mask]
    return out


def _ink_scale(shape: tuple[int, ...]) -> float:
    """Page size in units of a 200-DPI A4 short side (1654 px), for size-relative kernels."""
    return max(0.3, min(shape[:2]) / 1654.0)


def normalize_background(grey: np.ndarray, keep_edges: bool = False) -> np.ndarray:
    """White paper, dark ink: divide by a smooth estimate of the paper brightness.

    The paper is estimated on a quarter-size copy: a max filter wider than any
    stroke removes the ink, a blur smooths it; dividing removes shadow bands,
    gradients and grey paper while faint ink keeps its contrast to the paper.

    `keep_edges` (for the line-finding binary): a min filter of the same size
    (a closing) instead of the blur puts the sharp edges of shadow bands and of
    grey paper back where they are; the blur leaves a dark stripe along such an
    edge, which line finding takes for a rule. OCR reads the blurred version:
    the recognizer is tuned on it, and the blocky closing changes what it reads
    (except on dusty, blurred heavy scans: see `prepare`).
    """
    h, w = grey.shape
    f = 4
    small = cv2.resize(grey, (max(1, w // f), max(1, h // f)), interpolation=cv2.INTER_AREA)
    k = max(5, int(round(9 * _ink_scale(grey.shape))) | 1)  # ≈ 36 px at 200 DPI: wider than strokes
    se = cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))
    bg = cv2.dilate(small, se)
    bg = cv2.erode(bg, se) if keep_edges else cv2.GaussianBlur(bg, (0, 0), k / 2)
    bg = cv2.resize(np.maximum(bg, 1), (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.divide(grey, bg, scale=255.0)  # saturates at 255


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
    if img.ndim == 2:
        vals = np.unique(img[:: max(1, img.shape[0] // 64), :: max(1, img.shape[1] // 64)])
        if np.isin(vals, (0, 255)).all() and img.mean() < 128:
            return img  # already binary with ink = 255 (ink is the minority)
    return binarize(normalize_background(to_grey(img)))


def _small(binary: np.ndarray, side: int) -> np.ndarray:
    """Float ink-density copy with long side `side` (area averaging keeps thin rules)."""
    h, w = binary.shape
    s = min(1.0, side / max(h, w))
    if s < 1:
        binary = cv2.resize(binary, (max(1, int(w * s)), max(1, int(h * s))), interpolation=cv2.INTER_AREA)
    return binary.astype(np.float32) / 255.0


def _profile_scores(small: np.ndarray, angles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row- and column-profile sharpness (sum of squared sums) after turning ccw by each angle.

    The canvas grows with the rotation so every angle sums the same pixels.
    """
    rows, cols = np.empty(len(angles)), np.empty(len(angles))
    for i, a in enumerate(angles):
        rot = rotate_bound(small, float(a), fill=0)
        rows[i] = float(np.square(rot.sum(axis=1, dtype=np.float64)).sum())
        cols[i] = float(np.square(rot.sum(axis=0, dtype=np.float64)).sum())
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


def _profile_skew(small: np.ndarray, both: bool = True, start: float | None = None) -> float:
    """Skew (ccw positive) from the sharpest profiles, coarse to fine.

    `both` scores rows and columns together: rulings and text run both ways
    on a form, so the angle is found whether or not the page lies on its side.
    """
    def score(a: np.ndarray) -> np.ndarray:
        r, c = _profile_scores(small, a)
        return r + c if both else r

    if start is None:
        a = np.arange(-MAX_SKEW, MAX_SKEW + 1e-6, 0.5)
        best = float(a[int(np.argmax(score(a)))])
        steps: tuple[float, ...] = (0.1,)
    else:
        best = -start
        steps = (0.1, 0.03)
    for step in steps:
        a = best + np.arange(-4, 5) * step
        best = _refine_peak(a, score(a))
    return -best  # turning the page ccw by `best` levels it, so it leans by -best


def _rule_skew(binary: np.ndarray) -> tuple[float, float] | None:
    """(skew, total rule length) from long horizontal rulings of a nearly level binary page.

    Each ruling is found by a wide horizontal opening and gets a least-squares
    line through its pixels; the length-weighted median of their angles is
    robust to text blobs and a few broken rules.
    """
    h, w = binary.shape
    klen = max(15, w // 30)
    kern = cv2.getStructuringElement(cv2.MORPH_RECT, (klen, 1))
    lines = cv2.morphologyEx(binary, cv2.MORPH_OPEN, kern)
    # close small gaps (faded or broken rules) so a ruling stays one component
    lines = cv2.morphologyEx(lines, cv2.MORPH_CLOSE, kern)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(lines, connectivity=8)
    min_len = max(40, w // 8)
    angles: list[float] = []
    weights: list[float] = []
    for i in range(1, n):
        x, y, bw, bh, _area = stats[i]
        if bw < min_len or bh > max(8, bw * 0.08):
            continue
        ys, xs = np.nonzero(labels[y : y + bh, x : x + bw] == i)
        xm = xs - xs.mean()
        den = float((xm * xm).sum())
        if den <= 0:
            continue
        slope = float((xm * (ys - ys.mean())).sum() / den)
        angles.append(-float(np.degrees(np.arctan(slope))))  # y grows downwards: rising to the right = ccw
        weights.append(float(bw))
    if not angles:
        return None
    order = np.argsort(angles)
    a = np.asarray(angles)[order]
    wts = np.asarray(weights)[order]
    cum = np.cumsum(wts)
    med = float(a[int(np.searchsorted(cum, cum[-1] / 2.0))])
    return med, float(cum[-1])


def _coarse_skew(binary: np.ndarray) -> float:
    """Skew to ~0.1° from row+column profiles of a small copy (any 90° turn of the page)."""
    return _profile_skew(_small(binary, COARSE_SIDE))


def _fine_skew(binary: np.ndarray, coarse: float) -> float:
    """Refine `coarse` on an upright binary: fit the long rulings, else finer row profiles."""
    levelled = deskew(binary, coarse, fill=0)
    fine = _rule_skew(levelled)
    if fine is not None and fine[1] >= 0.5 * binary.shape[1] and abs(fine[0]) <= 1.0:
        return coarse + fine[0]
    return _profile_skew(_small(binary, FINE_SIDE), both=False, start=coarse)


# --- orientation ------------------------------------------------------------------------------


def _levelled_text(binary: np.ndarray, coarse: float) -> np.ndarray:
    """Small levelled copy of the page's ink without rulings or speckles (ink = 255)."""
    s = _small(binary, ORIENT_SIDE)
    lv = (deskew(s, coarse, fill=0) > 0.3).astype(np.uint8) * 255
    k = max(lv.shape) // 25
    rules = cv2.morphologyEx(lv, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (k, 1)))
    rules |= cv2.morphologyEx(lv, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (1, k)))
    text = cv2.subtract(lv, cv2.dilate(rules, np.ones((3, 3), np.uint8)))
    return cv2.morphologyEx(text, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))


def _line_blobs(text: np.ndarray, k: int, vertical: bool = False) -> np.ndarray:
    """Stats (x, y, w, h, area) of long line blobs after closing the text along one direction."""
    kern = cv2.getStructuringElement(cv2.MORPH_RECT, (1, k) if vertical else (k, 1))
    _, _, st, _ = cv2.connectedComponentsWithStats(cv2.morphologyEx(text, cv2.MORPH_CLOSE, kern))
    st = st[1:]
    along, across = (st[:, 3], st[:, 2]) if vertical else (st[:, 2], st[:, 3])
    return st[(along > 4 * across) & (across >= 5)]


def _text_runs_vertically(text: np.ndarray) -> bool:
    """Whether text lines run vertically (page turned 90° or 270°).

    A short closing along the text direction joins characters into long line
    blobs while the same closing across it leaves lines apart (line gaps
    exceed character gaps): compare the area of long blobs both ways.
    """
    horiz = vert = 0.0
    for k in (5, 7):  # ≈ 0.3 / 0.45 em of body text on an A4 page at ORIENT_SIDE
        horiz += float(_line_blobs(text, k)[:, 4].sum())
        vert += float(_line_blobs(text, k, vertical=True)[:, 4].sum())
    return vert > horiz


def _line_crops(grey: np.ndarray, text: np.ndarray, coarse: float) -> list[np.ndarray]:
    """Up to OCR_LINES text-line crops of an upright-or-upside-down page, from line blobs.

    Crops come from the page levelled by `coarse`, at full resolution, cut to
    about ten characters: enough to tell right way up from upside down,
    and recognition cost grows with crop width.
    """
    st = _line_blobs(text, 7)
    if len(st) == 0:
        return []
    med_h = float(np.median(st[:, 3]))
    st = st[(st[:, 3] >= 0.7 * med_h) & (st[:, 3] <= 1.6 * med_h)]
    st = st[np.argsort(-st[:, 2])][:OCR_LINES]
    lg = deskew(grey, coarse)
    fy, fx = lg.shape[0] / text.shape[0], lg.shape[1] / text.shape[1]
    crops = []
    for x, y, w, h, _ in st:
        pad = 0.3 * h
        x0, y0 = int(max(0, (x - pad) * fx)), int(max(0, (y - pad) * fy))
        y1 = int(min(lg.shape[0], (y + h + pad) * fy))
        x1 = int(min(lg.shape[1], (x + w + pad) * fx, x0 + 10 * (y1 - y0)))
        if x1 - x0 > 8 and y1 - y0 > 8:
            crops.append(lg[y0:y1, x0:x1])
    return crops


def _detected_crops(grey: np.ndarray, engine: OcrEngine) -> list[np.ndarray]:
    """Line crops from the engine's detector (costlier; for pages with few line blobs)."""
    h, w = grey.shape
    s = min(1.0, OCR_LONG_SIDE / max(h, w))
    small = cv2.resize(grey, (int(w * s), int(h * s)), interpolation=cv2.INTER_AREA) if s < 1 else grey
    quads = [np.asarray(q, dtype=np.float32) for q in engine.detect(small)]

    def width(q: np.ndarray) -> float:
        return float(np.linalg.norm(q[0] - q[1]))

    crops = []
    for q in sorted(quads, key=width, reverse=True)[:OCR_LINES]:
        c = crop_quad(grey, q / s)
        if c.size:
            crops.append(c[:, : 10 * c.shape[0]])
    return crops


def _ocr_votes(crops: list[np.ndarray], engine: OcrEngine) -> tuple[float, float]:
    """Mean OCR score of the crops read as they are, and turned 180°."""
    if not crops:
        return 0.0, 0.0
    flipped = [np.ascontiguousarray(np.rot90(c, 2)) for c in crops]
    # one model for both sides, the engine's cheapest: on the 155 dev pages that vote, the PP-OCRv6
    # tiny recogniser decided every one as the small one does (smallest margin 0.09 against
    # 0.56) at about a fifth of its cost (~0.08 s a scanned page)
    res = engine.recognize(crops + flipped, effort="quick")
    n = len(crops)
    return float(np.mean([r[1] for r in res[:n]])), float(np.mean([r[1] for r in res[n:]]))


def _upside_down_heuristic(binary: np.ndarray, coarse: float) -> bool:
    """Without OCR: is a page with horizontal text upside down?

    Forms fill pages from the top: a page's content starts just under the top
    margin and may end anywhere, so a much wider band of empty paper above the
    content than below it suggests the page is upside down.
    """
    s = _small(binary, ORIENT_SIDE)
    lv = (deskew(s, coarse, fill=0) > 0.3).astype(np.uint8)
    lv = cv2.morphologyEx(lv, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))  # speckles
    rows = np.nonzero(lv.sum(axis=1) > 0.05 * lv.shape[1])[0]  # rows with real content
    if len(rows) == 0:
        return False
    top, bottom = rows[0], lv.shape[0] - 1 - rows[-1]
    return bool(top > 2 * bottom + 0.1 * lv.shape[0])


def _orientation(grey: np.ndarray, binary: np.ndarray, coarse: float, engine: OcrEngine | None) -> int:
    text = _levelled_text(binary, coarse)
    first = 90 if _text_runs_vertically(text) else 0  # candidates: first, first + 180
    if engine is None:
        return first + 180 if _upside_down_heuristic(turn(binary, first), coarse) else first
    g = turn(grey, first)
    crops = _line_crops(g, turn(text, first), coarse)
    if len(crops) < 3:
        crops = _detected_crops(g, engine)
    # the two widest lines first: their scores differ by ~0.3+ either way round on nearly every
    # page, so the rest are read only when those two leave it open
    up, down = _ocr_votes(crops[:OCR_FIRST_LINES], engine)
    if abs(up - down) < OCR_DECISIVE and len(crops) > OCR_FIRST_LINES:
        up, down = _ocr_votes(crops, engine)
    return first if up >= down else first + 180


# --- a photographed sheet's soft print --------------------------------------------------------

SHARPEN_SIGMA = 0.16  # of the glyph height: the blur an unsharp mask takes away (≈ 3 px at 200 DPI)
SHARPEN_AMOUNT = 0.6


def sharpen(grey: np.ndarray, glyph: float) -> np.ndarray:
    """The page with its strokes' edges steepened (an unsharp mask at a sixth of the glyph height).

    A phone photo's print is soft twice over: the lens and JPEG blur it, and mapping the sheet
    onto a rectangle enlarges its far side. The recogniser confuses such glyphs (合同 as 合间,
    严格 as 产格). Measured on the dev photos (d041-d046, 944 cells): 196 wrong cells unsharpened,
    149 at sigma 0.16 glyph / amount 0.6, 155-159 at 0.1/0.8 and 0.2/0.5, 155-189 with more
    (amount 1.0-1.5, sigma 0.1-0.26); no file worse by more than one cell. Scans are not
    sharpened: on heavy scans the grain sharpens too (12 files: 296 -> 304 wrong), on clean and
    low-DPI ones it changes nothing (d025, d061, d062, d064: 14 -> 14). Stretching the ink to
    black as well read far worse (149 -> 245).
    """
    g = grey.astype(np.float32)
    soft = cv2.GaussianBlur(g, (0, 0), SHARPEN_SIGMA * glyph)
    return np.clip(g + SHARPEN_AMOUNT * (g - soft), 0, 255).astype(np.uint8)


# --- specks ----------------------------------------------------------------------------------

SPECK_DARK = 100  # grey level under which a pixel is solid ink (blurred print stays above it)
SPECK_SHARP = 0.4  # share of a blob's pixels that are that dark: a sharp dot, not blurred print
SPECK_DENSITY = 8.0  # sharp isolated dots per megapixel from which a page counts as specked
TEXT_SHARP_MAX = 0.35  # ... and only while its print is blurred (median glyph sharpness below this)


def find_specks(grey: np.ndarray) -> np.ndarray | None:
    """Mask of the speckle dots of a page, or None when the page is not measured to be specked.

    Dust and grain dots on heavy scans are small, solid and sharp-edged, while
    the print under them is blurred; each dot read inside a text line becomes
    a stray ·。、: in the OCR text. A page counts as specked when it has many
    sharp dots with paper all round (not punctuation beside a character) and
    its print is blurred (on a crisp or bilevel page a sharp dot may be a real
    full stop or decimal point, so nothing is taken there).
    """
    loose = (grey < 200).astype(np.uint8)
    n, lab, st, _ = cv2.connectedComponentsWithStats(loose, connectivity=8)
    if n <= 1:
        return None
    g = glyph_height_of(st, grey.shape)  # of the loose ink: kernels below scale with the print
    if g is None:
        return None
    dark = np.bincount(lab[grey < SPECK_DARK], minlength=n).astype(np.float64)
    sharp = dark / np.maximum(1, st[:, 4])
    size = np.maximum(st[:, 2], st[:, 3])
    small = (size <= 0.4 * g) & (st[:, 4] >= 4)
    small[0] = False
    glyphs = (st[:, 3] >= 0.5 * g) & (st[:, 3] <= 1.5 * g)
    glyphs[0] = False
    if glyphs.sum() < 20 or float(np.median(sharp[glyphs])) >= TEXT_SHARP_MAX:
        return None  # crisp print: sharp small marks may be punctuation
    dots = small & (sharp >= SPECK_SHARP)
    if not dots.any():
        return None
    # isolated: no other ink within half a glyph
    r = max(2, int(0.5 * g))
    others = (lab > 0) & ~dots[lab]
    near = cv2.dilate(others.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_RECT, (2 * r + 1, 2 * r + 1)))
    touched = np.bincount(lab[near > 0], minlength=n) > 0
    iso = dots & ~touched
    if iso.sum() / (grey.size / 1e6) < SPECK_DENSITY:
        return None
    return dots[lab]


def _paint_specks(grey: np.ndarray, mask: np.ndarray) -> np.ndarray:
    grown = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0  # the blurred rim too
    out = grey.copy()
    out[grown] = 255
    return out


# --- the stage --------------------------------------------------------------------------------


def prepare(
    page: PageImage, engine: OcrEngine | None = None, timings: dict[str, float] | None = None
) -> PreparedPage:
    """Upright, deskewed, background-normalised grey page and its ink = 255 binary.

    `timings` (if given) gets the seconds of orientation + deskew as "orient_deskew"
    and the rest (background, binarize, specks) as "preprocess".
    """
    import time

    t0 = time.perf_counter()
    page_grey = to_grey(page.image)  # once: a seal's strokes are looked for in it (to_grey)
    sheet = find_sheet(page_grey)
    image = unwarp(page.image, sheet) if sheet is not None else page.image
    raw = to_grey(image) if sheet is not None else page_grey
    # OCR reads light text on a dark fill turned dark; lines are found on the page as it is (the
    # fill's own edges and the light gaps between filled cells are its rules)
    # a 1-bit page is read as it is: on dev bilevel/TIFF pages (d049, d055: 35 + 34 wrong cells)
    # despeckling (46 + 41), a 2x2 (42 + 38) or 2x1 dilation (42 + 38) before deskew, and a blur
    # to grey after it (d049: 43 for 36) all read worse: the broken strokes' fragments help OCR
    grey = normalize_background(invert_light_text(raw, image))  # what OCR reads
    flat = normalize_background(raw, keep_edges=True)  # what lines are found on
    binary = binarize(flat)
    t1 = time.perf_counter()
    coarse = _coarse_skew(binary)  # a 90° turn keeps the skew angle, so measure it once
    rotation = _orientation(grey, binary, coarse, engine)
    grey, flat = turn(grey, rotation), turn(flat, rotation)
    binary = turn(binary, rotation)
    skew = _fine_skew(binary, coarse)
    if abs(skew) >= MIN_SKEW:
        grey, flat = deskew(grey, skew, fill=255), deskew(flat, skew, fill=255)
    else:
        skew = 0.0
    t2 = time.perf_counter()
    if timings is not None:
        timings["orient_deskew"] = timings.get("orient_deskew", 0.0) + (t2 - t1)
    specks = find_specks(grey)
    if specks is not None:
        # a dusty, blurred scan (heavy): its shadow bands have sharp edges too, and OCR
        # reads the page better without the stripes the blurred paper estimate leaves there
        flat = _paint_specks(flat, specks)
        grey = flat
    if specks is not None or abs(skew) >= MIN_SKEW:
        binary = binarize(flat)  # thresholding the rotated grey beats interpolating a binary
    if sheet is not None:
        # a photographed sheet: what its outline's perspective left, and the paper's curl.
        # Scans are flat (every dev scan's rules within 0.1 glyph of straight): not looked at
        straight = straighten(grey, flat, binary, glyph_or_default(binary))
        if straight is not None:
            grey, flat = straight
            binary = binarize(flat)
    scale = scale_of_ink(binary, page.dpi)
    if sheet is not None:
        grey = sharpen(grey, scale.glyph)
        binary = clear_sheet_edges(binary, page.image.shape)
    if timings is not None:
        timings["preprocess"] = timings.get("preprocess", 0.0) + (time.perf_counter() - t2) + (t1 - t0)
    return PreparedPage(page=page, image=grey, binary=binary, rotation=rotation, skew_deg=float(skew),
                        scale=scale, sheet=sheet)

