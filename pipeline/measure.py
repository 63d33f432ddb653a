"""How big things are on a page: its `PageScale`, measured once and handed to every stage.

Below every stage that sizes something by the page (preprocess, grid, ocr, textlayer,
normalize). Two measures: the pixel density (pixel constants are tuned at 200 DPI and
are multiples of `PageScale.unit`), and the typical glyph height, which says how big the
print is whatever the DPI (kernels and gaps that must be long relative to the text).
"""

from __future__ import annotations

import numpy as np

from .types import PageScale, TextLine

SPECKED_GLYPH = 0.6  # count-measured glyph under this share of the ink-weighted one: dots counted
REF_SIDE = 1654.0  # short side of an A4 page at 200 DPI: the size grid's constants are tuned at


def page_unit(shape: tuple[int, ...]) -> float:
    """Page size in units of a 200-DPI A4 short side; grid's kernels scale with it."""
    return max(0.2, min(shape[:2]) / REF_SIDE)


def glyph_height(ink: np.ndarray) -> float | None:
    """Typical glyph height (px) of a uint8 ink mask (nonzero = ink): the 75th percentile of the
    heights of character-sized components (not specks, not rules or whole tables); None
    where fewer than 20 such components leave it unmeasured.

    Kernels must be long relative to the text, and a crop of a table (or a page in small
    print) has text much larger or smaller than the page size suggests.
    """
    import cv2

    _, _, st, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    return glyph_height_of(st, ink.shape)


def glyph_height_of(st: np.ndarray, shape: tuple[int, ...]) -> float | None:
    """`glyph_height` from the component stats (cv2.connectedComponentsWithStats) of an ink mask."""
    h, w, area = st[1:, 3], st[1:, 2], st[1:, 4]
    lim = min(shape[:2]) / 15.0
    ok = (h >= 4) & (w >= 2) & (h < lim) & (w < lim)
    if ok.sum() < 20:
        return None
    by_count = float(np.percentile(h[ok], 75))
    # A dusty page with little print (a form's last page, heavy scans) has more dust dots than
    # character pieces, and the count's percentile lands on the dots (dev d029 p2: 7 px for
    # 20-px print, and the line under the first went unseen; d011 p4: 9 for 22). Weighted by
    # ink, the dots hardly count: where the two disagree that much, the ink's measure is taken.
    hs, ink = h[ok], area[ok].astype(np.float64)
    order = np.argsort(hs, kind="stable")
    by_ink = float(hs[order][np.searchsorted(np.cumsum(ink[order]) / ink.sum(), 0.75)])
    return by_ink if by_count < SPECKED_GLYPH * by_ink else by_count


def glyph_or_default(binary: np.ndarray) -> float:
    """`glyph_height` of a page's binary, or 20 px per page unit where it has too little print."""
    g = glyph_height(binary)
    return 20.0 * page_unit(binary.shape) if g is None else g


def scale_of_ink(binary: np.ndarray, dpi: float) -> PageScale:
    """The scale of a page from its binary (ink = 255): scans, and born-digital pages read by image."""
    return PageScale(unit=dpi / PageScale.REF_DPI, glyph=glyph_or_default(binary))


def scale_of_layer(layer: list[TextLine] | None, shape: tuple[int, ...], dpi: float) -> PageScale:
    """The scale of a born-digital page from its text layer: the 75th percentile of its
    characters' heights (20 px per page unit when it has fewer than five)."""
    heights = [t.bbox[3] - t.bbox[1] for t in layer or [] if t.text.strip()]
    glyph = float(np.percentile(heights, 75)) if len(heights) >= 5 else 20.0 * page_unit(shape)
    return PageScale(unit=dpi / PageScale.REF_DPI, glyph=glyph)
