"""Text lines of a cell from its own ink: horizontal projection, no text detection.

Used where detection boxed several lines as one (`ocr._line_bands`). Reading every cell's
lines from its ink alone (the former `--ocr-mode cells`, detection only where touching lines
leave no clean valley) measured no faster than whole-page detection and read worse.
"""

from __future__ import annotations

import numpy as np

LINE_MERGE = 1.3  # glyph heights: ink runs that fit together in this height are one line (三, 二, 。)
TALL_RUN = 1.7  # glyph heights: a run taller than this holds touching lines
WORD_GAP = 1.5  # glyph heights of blank that split a line into pieces (as detection does)
VALLEY_MAX = 0.15  # a cut between touching lines: row ink at most this share of the run's median row
EDGE_INSET = 2  # px off the cell's inner box: anti-aliased rule edges
SPECK_MAX = 0.6  # glyph heights: a mark smaller than this either way may be a speck ...
SPECK_NEAR = 1.2  # ... and is one with no bigger ink this close beside it on its line (glyph heights):
# full-width punctuation (，。、) sits up to about a glyph from its neighbours


def _runs(on: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of True."""
    d = np.diff(np.concatenate(([0], on.astype(np.int8), [0])))
    return list(zip(np.nonzero(d == 1)[0].tolist(), np.nonzero(d == -1)[0].tolist(), strict=True))


def cell_ink(binary: np.ndarray, bbox: tuple[int, int, int, int], glyph: float) -> np.ndarray | None:
    """Ink mask of a cell's interior (rule remnants along its edges and lone pixels dropped)."""
    import cv2

    x0, y0, x1, y1 = bbox
    roi = binary[y0 + EDGE_INSET : y1 - EDGE_INSET, x0 + EDGE_INSET : x1 - EDGE_INSET]
    if roi.size == 0 or roi.shape[0] < 4 or roi.shape[1] < 4 or not roi.any():
        return None
    n, lab, st, _ = cv2.connectedComponentsWithStats((roi > 0).astype(np.uint8), connectivity=8)
    hh, ww = roi.shape
    x, y, w, h, a = st[:, 0], st[:, 1], st[:, 2], st[:, 3], st[:, 4]
    thin = max(2.0, 0.2 * glyph)
    # a rule that leans into the cell: a thin stroke along an edge, longer than a glyph
    along_h = ((y == 0) | (y + h == hh)) & (h <= thin) & (w > 1.5 * glyph)
    along_v = ((x == 0) | (x + w == ww)) & (w <= thin) & (h > 1.5 * glyph)
    keep = ~(along_h | along_v) & (a >= 3)
    keep[0] = False
    # specks (dust, grain): small marks with no glyph beside them; punctuation and decimal
    # points sit on a line next to its text, so only isolated ones go
    small = keep & (np.maximum(w, h) < SPECK_MAX * glyph)
    if small.any():
        big = (keep & ~small)[lab].astype(np.uint8)
        rx, ry = max(2, int(SPECK_NEAR * glyph)), max(2, int(0.3 * glyph))
        near = cv2.dilate(big, cv2.getStructuringElement(cv2.MORPH_RECT, (2 * rx + 1, 2 * ry + 1))) > 0
        touched = np.zeros(n, dtype=bool)
        touched[np.unique(lab[near])] = True
        keep &= ~small | touched
    if not keep[1:].any():
        return None
    return keep[lab]


def line_bands(mask: np.ndarray, glyph: float) -> tuple[list[tuple[int, int]], bool]:
    """Text-line bands [y0, y1) of a cell's ink by its horizontal projection; and whether
    the projection was ambiguous (touching lines without a clean valley)."""
    prof = mask.sum(axis=1)
    runs = _runs(prof > 0)
    merged: list[list[int]] = []
    for a, b in runs:
        if merged and b - merged[-1][0] <= LINE_MERGE * glyph:
            merged[-1][1] = b  # parts of one line (strokes of 三, a full stop under the line)
        else:
            merged.append([a, b])
    bands: list[tuple[int, int]] = []
    ambiguous = False
    for a, b in merged:
        todo = [(a, b)]
        while todo:
            a, b = todo.pop()
            if b - a <= TALL_RUN * glyph:
                bands.append((a, b))
                continue
            # touching lines: cut at the emptiest row away from the ends
            lo, hi = a + int(0.6 * glyph), b - int(0.6 * glyph)
            if hi <= lo:
                bands.append((a, b))
                continue
            cut = lo + int(np.argmin(prof[lo:hi]))
            if prof[cut] > VALLEY_MAX * float(np.median(prof[a:b])):
                ambiguous = True
                bands.append((a, b))
                continue
            todo += [(cut + 1, b), (a, cut)]
    bands.sort()
    return bands, ambiguous


def line_pieces(mask: np.ndarray, band: tuple[int, int], glyph: float) -> list[tuple[int, int, int, int]]:
    """Tight ink boxes (x0, y0, x1, y1) of one line band, split at wide blanks."""
    a, b = band
    cols = _runs(mask[a:b].any(axis=0))
    groups: list[list[int]] = []
    for c0, c1 in cols:
        if groups and c0 - groups[-1][1] < WORD_GAP * glyph:
            groups[-1][1] = c1
        else:
            groups.append([c0, c1])
    out = []
    for c0, c1 in groups:
        rows = np.nonzero(mask[a:b, c0:c1].any(axis=1))[0]
        out.append((c0, a + int(rows[0]), c1, a + int(rows[-1]) + 1))
    return out


def ink_lines(binary: np.ndarray, bbox: tuple[int, int, int, int], glyph: float) -> list[tuple[int, int, int, int]] | None:
    """Tight ink boxes of a cell's text lines in page pixels, top to bottom, each split at wide
    blanks; [] for an empty cell, None where touching lines leave no clean valley (detect there)."""
    mask = cell_ink(binary, bbox, glyph)
    if mask is None:
        return []
    bands, ambiguous = line_bands(mask, glyph)
    if ambiguous:
        return None
    ox, oy = bbox[0] + EDGE_INSET, bbox[1] + EDGE_INSET
    return [(ox + x0, oy + y0, ox + x1, oy + y1) for band in bands for x0, y0, x1, y1 in line_pieces(mask, band, glyph)]
