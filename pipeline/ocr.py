"""OCR: reading a page. Text lines detected once per page, split at the cell borders they
cross, recognized one crop per run; cells with ink but no line looked at again.

The engines this reads through are in `engines`; joining a cell's lines into its text and
splitting cells a lost rule merged are in `celltext`.
"""

from __future__ import annotations

import re
import time
import unicodedata

import numpy as np

from .celltext import PAD_AFTER, PAD_BEFORE, finish_cell, reading_order, split_by_text
from .engines import OcrEngine, Quad, Reading
from .measure import glyph_or_default
from .types import Cell, Grid, PageScale, TextLine
from .values import SPECKS

# --- reading a page: detection once, lines split at cell borders, batched recognition ---

DET_LONG_SIDE = 1280  # detection on a downscaled page finds the same lines at a fraction of the cost
CELL_INSET = 1  # px kept off the ruling lines so rules are not read as 1 / | / 一
# Pixel sizes below are at 200 DPI: on a page they are multiples of its PageScale.unit
# (`unit` arguments; 1.0 for a 200-DPI render, where every size is the number written).


INK_PAD = 4  # px around a cell's ink box (second look)


def _ipx(v: float, unit: float) -> int:
    """`v` px at 200 DPI as a whole number of this page's pixels (at least 1)."""
    return max(1, int(round(v * unit)))


def _quad_bbox(q: Quad) -> tuple[int, int, int, int]:
    xs, ys = q[:, 0], q[:, 1]
    return int(xs.min()), int(ys.min()), int(np.ceil(xs.max())), int(np.ceil(ys.max()))


def detect_lines(image: np.ndarray, engine: OcrEngine, unit: float = 1.0) -> list[tuple[int, int, int, int]]:
    """Axis-aligned text-line boxes on the (deskewed) page at full resolution."""
    import cv2

    h, w = image.shape[:2]
    s = min(1.0, DET_LONG_SIDE / max(h, w))
    small = cv2.resize(image, (int(w * s), int(h * s)), interpolation=cv2.INTER_AREA) if s < 1 else image
    boxes = []
    for q in engine.detect(small):
        x0, y0, x1, y1 = _quad_bbox(q / s)
        # detection boxes hug the glyphs and drop small trailing marks (，。、): pad sideways
        x0, x1 = int(x0 - PAD_BEFORE * (y1 - y0)), int(x1 + PAD_AFTER * (y1 - y0))
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
        if x1 - x0 >= 4 * unit and y1 - y0 >= 4 * unit:
            boxes.append((x0, y0, x1, y1))
    return boxes


def _pad(crop: np.ndarray, v: int, left: int, right: int) -> np.ndarray:
    """`crop` with white margins: `v` px above and below, `left` and `right` px beside."""
    import cv2

    fill = 255 if crop.ndim == 2 else (255, 255, 255)
    return cv2.copyMakeBorder(crop, v, v, left, right, cv2.BORDER_CONSTANT, value=fill)


def _margin(crop: np.ndarray, unit: float = 1.0) -> np.ndarray:
    """White margins around a line crop: without room after it the recognizer drops a
    trailing 。 or 、 (measured on heavy scans: '…实现程度' vs '…实现程度。')."""
    h = crop.shape[0]
    return _pad(crop, _ipx(2, unit), h // 2, h)


def _line_crop(image: np.ndarray, box: tuple[int, int, int, int], unit: float = 1.0) -> np.ndarray:
    """A line piece as the first reading sees it (a recheck reads the very same pixels)."""
    x0, y0, x1, y1 = box
    return _margin(image[y0:y1, x0:x1], unit)


def _take(line: TextLine, r: Reading) -> None:
    """A line's reading replaced by another one."""
    line.text, line.score, line.char_scores, line.model = r.text.strip(), r.score, r.char_scores, r.model


def _split_at_cells(
    box: tuple[int, int, int, int], cells: list[tuple[int, tuple[int, int, int, int]]], unit: float = 1.0
) -> list[tuple[int, tuple[int, int, int, int]]]:
    """Pieces of a line box inside each cell it overlaps: (cell id, clipped box)."""
    inset = _ipx(CELL_INSET, unit)
    x0, y0, x1, y1 = box
    area = max(1, (x1 - x0) * (y1 - y0))
    pieces = []
    for cid, (cx0, cy0, cx1, cy1) in cells:
        ix0, iy0, ix1, iy1 = max(x0, cx0 + inset), max(y0, cy0 + inset), min(x1, cx1 - inset), min(y1, cy1 - inset)
        if ix1 - ix0 < max(3 * unit, 0.6 * (y1 - y0)) or iy1 - iy0 < 3 * unit:
            continue  # a sliver over a border holds no whole character
        # a piece must hold a real share of the line's height (not a descender grazing the next row)
        if (iy1 - iy0) < 0.45 * (y1 - y0):
            continue
        pieces.append((cid, (ix0, iy0, ix1, iy1)))
    if not pieces:
        return []
    covered = sum((b[2] - b[0]) * (b[3] - b[1]) for _, b in pieces)
    if covered < 0.2 * area:
        return []
    return pieces


def _short_mark(stats: np.ndarray, roi_shape: tuple[int, ...], glyph: float) -> bool:
    """A lone 一 or - : a bar as wide as half a glyph and a stroke thick, clear of the cell's
    edges (a remnant of a rule lies along one), which the height test of `_ink_box` drops."""
    x, y, w, h = (int(v) for v in stats[:4])
    clear = x > 0 and y > 0 and x + w < roi_shape[1] and y + h < roi_shape[0]
    return clear and w >= 0.5 * glyph and 2 <= h <= 0.35 * glyph and w <= 2.5 * glyph


def _ink_box(
    binary: np.ndarray, bbox: tuple[int, int, int, int], unit: float = 1.0, glyph: float | None = None
) -> tuple[int, int, int, int] | None:
    """Tight box around the real ink inside a cell (speckles and border remnants ignored).

    With `glyph`, a lone short mark (一, -) counts as ink too, and its box is made a glyph tall,
    so that the recogniser sees the bar at the scale of text."""
    import cv2

    inset = _ipx(CELL_INSET, unit)
    x0, y0, x1, y1 = bbox
    m = max(_ipx(4, unit), inset + _ipx(3, unit))
    x0, y0, x1, y1 = x0 + m, y0 + m, x1 - m, y1 - m
    if x1 - x0 < 6 * unit or y1 - y0 < 6 * unit:
        return None
    roi = binary[y0:y1, x0:x1]
    n, labels, stats, _ = cv2.connectedComponentsWithStats((roi > 0).astype(np.uint8), connectivity=8)
    keep = [i for i in range(1, n)
            if stats[i, cv2.CC_STAT_AREA] >= 25 * unit * unit and stats[i, cv2.CC_STAT_HEIGHT] >= 8 * unit]
    if not keep and glyph:
        bars = [i for i in range(1, n) if _short_mark(stats[i], roi.shape, glyph)]
        if len(bars) == 1:
            bx, by, bw, bh = (int(v) for v in stats[bars[0], :4])
            cy, half = y0 + by + bh // 2, int(round(0.6 * glyph))
            return (
                max(bbox[0] + inset, x0 + bx - half),
                max(bbox[1] + inset, cy - half),
                min(bbox[2] - inset, x0 + bx + bw + half),
                min(bbox[3] - inset, cy + half),
            )
    if not keep:
        return None
    # strokes of one text block lie close together; specks lie apart: keep the inkiest cluster
    mask = np.isin(labels, keep).astype(np.uint8)
    m2 = cv2.dilate(mask, np.ones((_ipx(9, unit), _ipx(15, unit)), np.uint8))
    k, lab2, st2, _ = cv2.connectedComponentsWithStats(m2, connectivity=8)
    if k <= 1:
        return None
    ink = [int(mask[lab2 == j].sum()) for j in range(1, k)]
    j = 1 + int(np.argmax(ink))
    take = lab2 == j
    if glyph:
        # a figure apart from its unit ('0 次', bilevel d051: 次 alone was read): clusters beside
        # the inkiest, in its band, holding a character-tall piece, are the same text
        y_lo, y_hi = int(st2[j, 1]), int(st2[j, 1] + st2[j, 3])
        tall = np.isin(labels, [q for q in keep if stats[q, cv2.CC_STAT_HEIGHT] >= 0.5 * glyph])
        for i in range(1, k):
            yi0, yi1 = int(st2[i, 1]), int(st2[i, 1] + st2[i, 3])
            overlap = min(y_hi, yi1) - max(y_lo, yi0)
            if i != j and overlap >= 0.5 * min(y_hi - y_lo, yi1 - yi0) and (tall & (lab2 == i)).any():
                take |= lab2 == i
    ys, xs = np.nonzero(mask * take)
    xs0, xs1, ys0, ys1 = int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1
    pad = _ipx(INK_PAD, unit)
    return (
        max(bbox[0] + inset, x0 + xs0 - pad),
        max(bbox[1] + inset, y0 + ys0 - pad),
        min(bbox[2] - inset, x0 + xs1 + pad),
        min(bbox[3] - inset, y0 + ys1 + pad),
    )


def _lone_number(text: str, score: float, box: tuple[int, int, int, int], glyph: float, unit: float = 1.0) -> bool:
    """A blurred lone digit scores low (a faded '5' at 0.54) but so do dust specks read as
    '+', '$' or '.': the digit is told apart by its size, as tall as the page's print."""
    ink_h = (box[3] - box[1]) - 2 * _ipx(INK_PAD, unit)  # _ink_box pads each side
    return score >= 0.45 and text.strip().isdigit() and ink_h >= 0.6 * glyph


INK_OUT_MAX = 9  # blobs counted at most (`Cell.ink_out`)


def ink_outside_lines(binary: np.ndarray, c: Cell, scale: PageScale) -> list[tuple[int, int, int, int]]:
    """The character-sized blobs of ink inside cell `c` that lie outside every read line's box,
    as page boxes (x0, y0, x1, y1); how many is `Cell.ink_out` (at most INK_OUT_MAX).

    A reading that ends a character early ('合理性' for 合理性。, '长效机制健' for 长效机制健全) or
    misses a wrapped line scores as well as a whole one: the ink it left behind is what shows it.
    Rule remnants along the cell's edges (long and thin) and specks do not count; a blob counts
    from a quarter of the page's glyph height (a '。' is about that tall)."""
    import cv2

    m = max(_ipx(4, scale.unit), _ipx(CELL_INSET, scale.unit) + _ipx(3, scale.unit))
    x0, y0, x1, y1 = c.bbox[0] + m, c.bbox[1] + m, c.bbox[2] - m, c.bbox[3] - m
    if x1 - x0 < scale.glyph or y1 - y0 < 0.5 * scale.glyph:
        return []
    roi = (binary[y0:y1, x0:x1] > 0).astype(np.uint8)
    pad = int(round(0.2 * scale.glyph))  # a detection box sits tight on its strokes
    for t in c.lines:
        bx0, by0, bx1, by1 = t.bbox
        roi[max(0, by0 - y0 - pad) : max(0, by1 - y0 + pad), max(0, bx0 - x0 - pad) : max(0, bx1 - x0 + pad)] = 0
    n, _lab, st, _ = cv2.connectedComponentsWithStats(roi, connectivity=8)
    g = scale.glyph
    blobs = []
    for i in range(1, n):
        x, y, w, h = (int(v) for v in st[i, :4])
        big = max(w, h)
        if big < 0.25 * g or big > 3 * g or st[i, cv2.CC_STAT_AREA] < 0.02 * g * g:
            continue  # a speck, or a rule / stamp, not a character
        if min(w, h) < 0.12 * g and big > 1.5 * g:
            continue  # a thin remnant of a rule
        blobs.append((x0 + x, y0 + y, x0 + x + w, y0 + y + h))
    return blobs


def missed_line(image: np.ndarray, c: Cell, blobs: list[tuple[int, int, int, int]], engine: OcrEngine,
                scale: PageScale) -> bool:
    """Read the ink a cell's lines leave out (`blobs`, from `_blobs_outside_lines`), where it lies
    in one band below or above them: a short wrapped line the detector did not box (heavy d029:
    机制。 under 考察是否…交流; bilevel d049: 分。). The reading joins the cell's lines when the
    recogniser is fairly sure of it."""
    from .lexicon import is_cjk

    g = scale.glyph
    if not any(b[3] - b[1] >= 0.5 * g for b in blobs):
        return False  # dots and strokes only: no character (dust reads as • and 。)
    bx0, by0 = min(b[0] for b in blobs), min(b[1] for b in blobs)
    bx1, by1 = max(b[2] for b in blobs), max(b[3] for b in blobs)
    if by1 - by0 > MISSED_LINE_H * g or any(t.bbox[1] < (by0 + by1) / 2 < t.bbox[3] for t in c.lines):
        return False  # more than a line's height, or beside a line (ink a reading left out)
    e = max(1, round(g / 4))
    box = (max(c.bbox[0], bx0 - e), max(c.bbox[1], by0 - e), min(c.bbox[2], bx1 + e), min(c.bbox[3], by1 + e))
    (r,) = engine.recognize([_line_crop(image, box, scale.unit)], effort="careful")
    text = r.text.strip()
    if r.score < MISSED_LINE_MIN or not any(is_cjk(ch) for ch in text):
        return False  # a missed line holds a character, read fairly surely
    c.lines.append(TextLine(text=text, bbox=box, score=r.score, char_scores=r.char_scores, model=r.model))
    finish_cell(c)
    return True


def text_width(text: str) -> float:
    """A text's width in characters: a Chinese character or full-width mark (。，：) is one, a
    digit, Latin letter or half-width mark half of one. (Finer widths, digits 0.6, marks 0.3,
    ≥ ① “ as one, fit d030's number cells better but held out by variant the confidence model
    then reviewed more at the same accepted error: 0.162 against 0.153 at 0.6 %, 0.347 against
    0.323 at 0.4 %.)"""
    import unicodedata

    return sum(1.0 if unicodedata.east_asian_width(ch) in "WF" else 0.5 for ch in text if not ch.isspace())


_FULL_IN_CJK = frozenset("()①②③④⑤⑥⑦⑧⑨⑩“”·")  # half-width by `text_width`


def _set_width(text: str) -> float:
    """`text_width` as Chinese fonts set a line: brackets, circled numbers, quotes and the middle
    dot a comma is misread as are one character wide whichever form the recogniser names
    ('；(1分)②' prints as ；（1分）②). What `ink_gaps` reads again by: on the dev corpus, 492
    lines instead of 1,038 (d013: 18 of 37), every record scoring the same (score.py)."""
    return text_width(text) + 0.5 * sum(ch in _FULL_IN_CJK for ch in text)


def line_ink_extent(binary: np.ndarray, box: tuple[int, int, int, int], glyph: float) -> int:
    """Width in px from the first to the last character-sized stroke inside a line's box.

    The box's top 15% and bottom 10% are left out (a neighbouring line's strokes reach into
    padded boxes; a 。 sits low in its character's square but above that band); specks and thin
    rule remnants on the box's left and right edges do not count."""
    import cv2

    x0, y0, x1, y1 = box
    h = y1 - y0
    roi = (binary[y0 + int(0.15 * h) : y1 - int(0.1 * h), x0:x1] > 0).astype(np.uint8)
    if roi.size == 0:
        return 0
    n, _lab, st, _ = cv2.connectedComponentsWithStats(roi, connectivity=8)
    lo, hi = None, None
    for i in range(1, n):
        x, _y, w, hh, area = (int(v) for v in st[i, :5])
        if max(w, hh) < 0.15 * glyph and area < 0.02 * glyph * glyph:
            continue  # a speck
        if w < 0.12 * glyph and (x == 0 or x + w >= roi.shape[1]):
            continue  # a remnant of a vertical rule along the box's edge
        lo = x if lo is None else min(lo, x)
        hi = x + w if hi is None else max(hi, x + w)
    return 0 if lo is None or hi is None else hi - lo


def _ink_ends_in_a_mark(binary: np.ndarray, box: tuple[int, int, int, int], glyph: float) -> bool:
    """Whether a line's last piece of ink is a mark of its own: under half a glyph each way, in
    the line's lower half, clear of every other piece's columns (a 。 after the last character;
    the dots of 点 or 心 lie under or beside their character's other strokes)."""
    import cv2

    x0, y0, x1, y1 = box
    roi = (binary[y0:y1, x0:x1] > 0).astype(np.uint8)
    if roi.size == 0:
        return False
    n, _lab, st, _ = cv2.connectedComponentsWithStats(roi, connectivity=8)
    pieces = [tuple(int(v) for v in st[i, :5]) for i in range(1, n)]
    pieces = [p for p in pieces if max(p[2], p[3]) >= 0.12 * glyph]  # not a speck
    # nor the foot of the line above or the head of the line below, which a box taken a few
    # pixels tall may hold at its edge (d055: a stroke above 安全's line ran on past its 。)
    rim = 0.3 * roi.shape[0]
    pieces = [p for p in pieces if not (p[1] == 0 and p[3] <= rim)
              and not (p[1] + p[3] == roi.shape[0] and p[1] >= roi.shape[0] - rim)]
    if len(pieces) < 2:
        return False
    last = max(pieces, key=lambda p: p[0] + p[2])
    x, y, w, h, _a = last
    if max(w, h) > 0.5 * glyph or y + h / 2 < roi.shape[0] / 2:
        return False
    return all(p is last or p[0] + p[2] <= x for p in pieces)


# Marks a cell's text ends in: where the recogniser saw one after its last character (a `tail`
# of its own, at TAIL_MIN or more) on a line whose ink runs past its reading, the cell ends in 。
_END_MARKS = frozenset("。.，,、：:；;…·")
TAIL_MIN = 0.05
# The ink gap of a cell whose last line's ink ends in a mark its reading lacks (a dropped 。),
# for the confidence model: with it, the variant held out needs threshold 0.9758 (review 0.167
# at accepted error 0.0029) where without it 0.9914 (review 0.254): missing full stops read at
# 0.99 were what kept the held-out curve over 0.003
UNREAD_MARK_GAP = 1.0
# a line whose ink runs into its cell's right rule (`marks_at_rule`): rows of ink wider than the
# rule it takes, how far past the rule its crop is read again, and the least the recogniser must
# give a mark there. On the dev corpus's scans, such lines had lost ， 、 or 。 at 0.98-0.99
# (d025, d028, d061); read past the rule with the rule painted out, six of seven name it.
MARK_AT_RULE_ROWS = 2
MARK_NEAR = 0.6  # glyphs: a line whose ink stops this near the rule is measured there (a hung mark)
MARK_SIZE = 0.2  # glyphs of rows over which the rule, wider by only its tolerance, holds a mark
MARK_SEEN = 0.25  # ... a mark's height: one that reads as nothing is still a sentence's 。
MARK_REACH = 0.7
MARK_GAP = 0.08
RULE_MARK_MIN = 0.5
RULE_MARK_MID = 0.5  # the score of a mark guessed from what the rule leaves of it
SENTENCE_LEN = 12
MISSED_LINE_H = 1.6  # glyphs: the most a missed line's ink may span from top to bottom
MISSED_LINE_MIN = 0.85  # the least score a missed line's reading needs to join its cell
REREAD_GAP = 0.6  # characters of unread ink on a line that earn it a second reading
TINY_GAP = 0.4  # ... that send a line the cascade's tiny recogniser read to the full model
# a tiny-model line with a character that fits no word goes to the full model unless every
# character scored this (of 1,376 such lines on the dev corpus, 38 read otherwise by the full
# model; under 0.99: 297 lines, 15 of those)
TINY_LONE_MIN = 0.99


def _is_subsequence(short: str, long: str) -> bool:
    it = iter(long)
    return all(ch in it for ch in short)


SECOND_READINGS = 2  # crops `_second_readings` makes of a line
# A line's own band must be at most this share of its box for the band alone to be read again.
# The two lines it mended on the dev corpus (d032, d051) had 0.55 and 0.52; on seven heavy and
# bilevel files 118 doubtful lines have a second band, at 0.39-0.86 of their box: this keeps
# 38 of them (0.67: 76; no limit: all), and the whole corpus scores the same at each
OWN_BAND_MAX = 0.6


def _second_readings(crop: np.ndarray) -> list[np.ndarray]:
    """Two other preparations of a line crop for the recogniser. Measured on lines whose
    reading dropped a character inside its box (heavy scans: 长效机制健 for 长效机制健全, 生 for
    生率): read at 0.7x both came back whole, with a quarter line of white above and below one of
    them; 1.5x, a wider right margin, Otsu binarisation and a 3x3 blur each lost one or both.
    On the dev corpus the 0.7x crop alone read 2 cells fewer right (a bilevel and a tiff one)
    for half the cost (the two cost 0.26 s a scanned page, ~13 crops). With the cascade
    (2026-12-03), the padded crop alone (40% of the pair's pixels at the recogniser's height)
    read the same overall but tiff -1, heavy -1, photo +1 cell; the 0.7x one alone bilevel -1,
    tiff -1: both kept. Of 1,055 dev lines read again, 72 took a second reading."""
    import cv2

    h = crop.shape[0]
    small = cv2.resize(crop, None, fx=0.7, fy=0.7, interpolation=cv2.INTER_AREA)
    return [_pad(small, 2, int(0.35 * h), int(0.7 * h)), _pad(crop, h // 4, h // 2, h)]


def _adds_a_character(first: str, second: str) -> bool:
    """Whether `second` holds more letters, digits or CJK characters than `first`."""
    def count(s: str) -> int:
        return sum(ch.isalnum() for ch in s)

    return count(second) > count(first)


def _own_band(binary: np.ndarray, box: tuple[int, int, int, int], glyph: float) -> tuple[int, int] | None:
    """The rows (y0, y1) of the line's own print inside its box, when strokes of a neighbouring
    line reach into the box as well; None when the box holds one band of ink.

    A detection box can be twice a line's height and take in the foot of the line above (scan
    d051: 理性。 under 考察项目…, read 理; d032: 生率 read 生), and the recogniser then reads the
    line short. Bands are runs of inked rows, joined across gaps under a sixth of a glyph; a band
    touching the box's top or bottom edge is a neighbour's cut-off print unless none is left."""
    x0, y0, x1, y1 = box
    rows = (binary[y0:y1, x0:x1] > 0).sum(axis=1)
    bands: list[list[int]] = []
    for i in np.nonzero(rows)[0]:
        if bands and i - bands[-1][1] <= max(1.0, glyph / 6):
            bands[-1][1] = int(i) + 1
        else:
            bands.append([int(i), int(i) + 1])
    if len(bands) < 2:
        return None
    inner = [b for b in bands if b[0] > 0 and b[1] < len(rows)] or bands
    best = max(inner, key=lambda b: int(rows[b[0] : b[1]].sum()))
    if best[1] - best[0] > OWN_BAND_MAX * (y1 - y0):
        return None  # the box is the line's own, give or take a speck: nothing to cut away
    return y0 + best[0], y0 + best[1]


def _lone_chars(text: str) -> float:
    from .lexicon import lone_chars

    return lone_chars(text)[0]


def ink_gaps(image: np.ndarray, binary: np.ndarray, cells: list[Cell], engine: OcrEngine, scale: PageScale,
             candidates: dict[tuple[int, int, int, int], Reading] | None = None) -> int:
    """Set each read cell's `ink_gap`: on its worst line, the ink's extent in characters (at the
    page's own character pitch) less the width of the text read there; read a line again where
    that gap is a character or most of one.

    A recogniser that drops a line's last character ('长效机制健' for 长效机制健全, '生' for 生率,
    '合理性' for 合理性。) scores it as high as a whole reading, and the ink it skipped lies
    inside the line's box (so `ink_outside_lines` misses it). The pitch is the page's median of
    extent / text width over lines of three characters or more: measured on the page, so fonts,
    letter spacing and resolution need no constant. A second reading (`_second_readings`) is kept
    when it holds the first as a subsequence and fits the ink better by half a character; the
    gap left then stays the cell's evidence. Returns how many lines were read again."""
    measured: list[tuple[Cell, TextLine, float, float]] = []  # (cell, line, extent px, text width)
    for c in cells:
        for t in c.lines:
            tw = text_width(t.text)
            if tw > 0:
                measured.append((c, t, float(line_ink_extent(binary, t.bbox, scale.glyph)), tw))
    ratios = [e / tw for _c, _t, e, tw in measured if tw >= 3 and e > 0]
    pitch = float(np.median(ratios)) if len(ratios) >= 5 else None
    changed: set[int] = set()
    # The cascade's tiny recogniser drops a character at a line's end as surely as it reads the
    # rest (合计 as 计, 0次 as 次, 委员会 as 委会) and misreads one into no word (淫贯性 for 连贯性):
    # where its reading leaves ink unread or holds a character that fits no word, the full model
    # reads the line's own crop again, and its reading replaces the tiny one.
    recheck = [(c, t) for c, t, e, tw in measured if t.model == "tiny" and (
        (pitch is not None and e / pitch - tw >= TINY_GAP)
        or (min(t.char_scores or [t.score]) < TINY_LONE_MIN and _lone_chars(t.text) > 0))]
    if recheck:
        crops = [_line_crop(image, t.bbox, scale.unit) for _c, t in recheck]
        for (c, t), r in zip(recheck, engine.recognize(crops, effort="careful"), strict=True):
            if candidates is not None and r.alts is not None:
                candidates[t.bbox] = r  # the same crop: what a candidates read would give
            if r.text.strip():
                _take(t, r)
                changed.add(id(c))
        measured = [(c, t, e, text_width(t.text)) for c, t, e, _tw in measured]
    if pitch is None:
        for c in cells:
            if id(c) in changed:
                finish_cell(c)
        return len(recheck)
    doubtful = [(c, t, e, tw) for c, t, e, tw in measured
                if e / pitch - _set_width(t.text) >= REREAD_GAP and min(t.bbox[2] - t.bbox[0], t.bbox[3] - t.bbox[1]) >= 4]
    gaps = {id(t): e / pitch - tw for _c, t, e, tw in measured}
    if doubtful:
        crops, spans = [], []
        for _c, t, _e, _tw in doubtful:
            x0, y0, x1, y1 = t.bbox
            start = len(crops)
            crops += _second_readings(image[y0:y1, x0:x1])
            band = _own_band(binary, t.bbox, scale.glyph)
            if band is not None:  # the line's own rows alone, a quarter glyph of paper around
                m = max(2, round(scale.glyph / 4))
                crops.append(_line_crop(image, (x0, max(0, band[0] - m), x1, band[1] + m), scale.unit))
            spans.append((start, len(crops)))
        results = engine.recognize(crops, effort="careful")
        for (c, t, e, _tw), (a, b) in zip(doubtful, spans, strict=True):
            best = None
            for j, r in enumerate(results[a:b]):
                text = r.text.strip()
                gap = e / pitch - text_width(text)
                if j >= SECOND_READINGS and not _adds_a_character(t.text, text):
                    continue  # the band crop, tight above and below, reads a speck as ，or 。
                if (text != t.text and _is_subsequence(t.text, text) and abs(gap) <= gaps[id(t)] - 0.5
                        and (best is None or abs(gap) < abs(best[1]))):
                    best = (r._replace(text=text), gap)
            if best is not None:
                _take(t, best[0])
                gaps[id(t)] = best[1]
                changed.add(id(c))
    # last lines with no mark at their end, and whether their ink ends in one (looked at once:
    # for a sentence's 。 here, for the ink gap below)
    open_ends = {id(t): _ink_ends_in_a_mark(binary, t.bbox, scale.glyph) for c, t, _e, _tw in measured
                 if _ends_its_cell(c, t) and t.text and t.text[-1] not in _END_MARKS}
    ends = [(c, t, open_ends[id(t)]) for c, t, _e, _tw in measured if id(t) in open_ends
            and (open_ends[id(t)] or gaps[id(t)] >= REREAD_GAP) and _is_sentence("".join(o.text for o in c.lines))]
    if ends:
        readings = _read_candidates(image, [t.bbox for _c, t, _m in ends], engine, scale, candidates)
        for (c, t, mark), r in zip(ends, readings, strict=True):
            # where the ink ends in a mark of its own, any mark the recogniser names there is it
            # (a 1-bit 。 read as “ or ：); otherwise it must name one a text may end in
            seen = r.tail is not None and (r.tail[0] in _END_MARKS or (mark and unicodedata.category(r.tail[0])[0] == "P"))
            # the same line read (a look-alike apart: 規 for 规) up to the same last character
            same = len(r.text.strip()) == len(t.text) and r.text.strip()[-1:] == t.text[-1:]
            if same and seen and r.tail[1] >= TAIL_MIN:
                _append_mark(t, "。", r.tail[1])
                gaps[id(t)] -= 1.0
                changed.add(id(c))
    at_rule, n_at_rule = _read_marks_at_rule(image, binary, cells, [t for _c, t, _e, _tw in measured], engine,
                                             scale, changed)
    for c in cells:
        if id(c) in changed:
            finish_cell(c)
    worst: dict[int, float] = {}
    for c, t, _e, _tw in measured:
        gap = gaps[id(t)]
        if (open_ends.get(id(t)) and t.text[-1] not in _END_MARKS) or id(t) in at_rule:
            gap = max(gap, UNREAD_MARK_GAP)  # a mark after the last character read: unread ink
        worst[id(c)] = max(worst.get(id(c), -9.0), gap)
    for c in cells:
        if id(c) in worst:
            c.ink_gap = round(worst[id(c)], 2)
    return len(recheck) + len(doubtful) + len(ends) + n_at_rule


def _read_marks_at_rule(image: np.ndarray, binary: np.ndarray, cells: list[Cell], lines: list[TextLine],
                        engine: OcrEngine, scale: PageScale, changed: set[int]) -> tuple[set[int], int]:
    """Lines that end in a character but whose ink runs into their cell's right rule
    (`marks_at_rule`) read again past the rule with the rule painted out: a mark read there,
    after the same text, joins the line. Returns the ids of the lines still without one or with
    one guessed mid-cell (their ink is unread: evidence for the confidence model) and how many
    were read; cells changed go into `changed`."""
    from .lexicon import is_cjk

    mine = {id(t) for t in lines}
    todo: list[tuple[Cell, TextLine, tuple[int, int], int]] = []  # (cell, line, rule, the mark's rows)
    for c in cells:
        ends = [t for t in c.lines if id(t) in mine and is_cjk(t.text[-1:])]
        if ends:
            rows, rule = _mark_rows_at_rule(binary, c.bbox, [t.bbox for t in ends], scale.glyph)
            todo += [(c, t, rule, n) for t, n in zip(ends, rows, strict=True) if n is not None and rule is not None]
    if not todo:
        return set(), 0
    crops = [c for _c, t, rule, _n in todo for c in _rule_cleared_crops(image, t.bbox, rule, scale.glyph, scale.unit)]
    readings = engine.recognize(crops, effort="careful")
    unread: set[int] = set()
    for k, (c, t, _rule, n_rows) in enumerate(todo):
        # a full stop ends the cell's text only (mid-cell, a speck of the rule read as 。 would
        # end a sentence that goes on: 进一步。加强)
        marks = _RULE_MARKS if _ends_its_cell(c, t) else _RULE_MARKS - {"。"}
        found = [m for r in readings[2 * k:2 * k + 2] if (m := _mark_after(r, t.text, marks)) is not None]
        if not found:
            unread.add(id(t))
            if (_ends_its_cell(c, t) and _is_sentence("".join(o.text for o in c.lines))
                    and n_rows >= MARK_SEEN * scale.glyph):
                # a sentence's last line with a mark's height of ink on the rule after it that
                # reads as nothing (a 。 with its middle under the rule): the full stop, as doubtful
                # as a guess. A speck on the rule is lower (bench/unseen.py's speckle: 9 names
                # and labels took a 。 when any hit did)
                _append_mark(t, "。", RULE_MARK_MID)
                changed.add(id(c))
            continue
        mark, p = max(found, key=lambda m: m[1])
        if _ends_its_cell(c, t):
            if mark in _PAUSE_MARKS:
                mark = "。"  # a cell's text ends in a full stop, never a pause mark
        else:
            # mid-cell, what is left of a mark the rule covers may be a ，or a 。 cut in half: no
            # surer than a coin toss, and the mark's ink counts as unread for the confidence model
            p = min(p, RULE_MARK_MID)
            unread.add(id(t))
        _append_mark(t, mark, p)
        changed.add(id(c))
    return unread, len(todo)


def _mark_after(r: Reading, text: str, marks: frozenset[str]) -> tuple[str, float] | None:
    """The mark `r` reads after `text` (a look-alike apart) and its score, if one of `marks`
    at RULE_MARK_MIN or more."""
    read = r.text.strip()
    mark = _FULL_MARK.get(read[-1:], read[-1:])
    p = r.char_scores[-1] if r.char_scores and len(r.char_scores) == len(read) else r.score
    if len(read) == len(text) + 1 and mark in marks and _same_but_one(read[:-1], text) and p >= RULE_MARK_MIN:
        return mark, p
    return None


_RULE_MARKS = frozenset("。，、：；")
_PAUSE_MARKS = "，、"
_FULL_MARK = {".": "。", ",": "，", ":": "：", ";": "；"}  # marks as Chinese text sets them


def _append_mark(t: TextLine, mark: str, p: float) -> None:
    """A mark the recogniser saw after a line's last character joins the line, as sure as the
    recogniser was of it."""
    t.text += mark
    if t.char_scores is not None and len(t.char_scores) == len(t.text) - 1:
        t.char_scores = [*t.char_scores, p]
    t.score = min(t.score, p)


def _same_but_one(a: str, b: str) -> bool:
    """The same reading of a line but for one look-alike (規 for 规)."""
    return len(a) == len(b) and sum(x != y for x, y in zip(a, b, strict=True)) <= 1


def _right_rule(binary: np.ndarray, cell_box: tuple[int, int, int, int], glyph: float) -> tuple[int, int, np.ndarray] | None:
    """The cell's right rule: its first and last column (its median run across, down the cell)
    and, per row of the cell, how far past them the ink through its core runs (the wider of
    left and right; ink a pixel or two clear of the rule counts as on it: whether a mark touches
    the rule is the binarisation's call). None where no rule runs down the cell's right edge
    (an open table edge)."""
    import cv2

    _cx0, cy0, cx1, cy1 = cell_box
    w = max(4, int(0.4 * glyph))
    a, b = max(0, cx1 - w), min(binary.shape[1], cx1 + w)
    strip = binary[cy0:cy1, a:b] > 0
    if strip.shape[0] < 3 or strip.shape[1] < 3:
        return None
    core = int(np.argmax(strip.mean(axis=0)))
    if strip[:, core].mean() < 0.8:
        return None

    def runs(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        left = np.where(s[:, core], np.cumprod(s[:, :core][:, ::-1], axis=1).sum(axis=1), 0)
        return left, np.where(s[:, core], np.cumprod(s[:, core + 1:], axis=1).sum(axis=1), 0)

    left, right = runs(strip)
    x_lo, x_hi = a + core - int(np.median(left)), a + core + int(np.median(right))
    d = max(1, round(MARK_GAP * glyph))
    left, right = runs(cv2.dilate(strip.astype(np.uint8), np.ones((1, 2 * d + 1), np.uint8)) > 0)
    return x_lo, x_hi, np.maximum(left - np.median(left), right - np.median(right))


def marks_at_rule(binary: np.ndarray, cell_box: tuple[int, int, int, int],
                  lines: list[tuple[int, int, int, int]], glyph: float) -> tuple[list[bool], tuple[int, int] | None]:
    """For each line box of a cell: whether its ink runs into the cell's right rule, where a mark
    after its last character (a ，or 。 set against the rule, or past it) merges with the rule;
    and the rule's columns.

    Such a line's own ink comes within MARK_NEAR glyph of the rule, and in its rows the ink
    through the rule is wider, by a tenth of a glyph (2 px or more), than the rule is down the
    cell on MARK_AT_RULE_ROWS rows or more (a label centred in its cell, or a rule's own
    unevenness on a scan, do neither: none of d007's 13 such lines), or by the rule's tolerance
    on MARK_SIZE glyphs of rows (a mark hung mostly under the rule)."""
    rows, rule = _mark_rows_at_rule(binary, cell_box, lines, glyph)
    return [n is not None for n in rows], rule


def _mark_rows_at_rule(binary: np.ndarray, cell_box: tuple[int, int, int, int],
                       lines: list[tuple[int, int, int, int]], glyph: float
                       ) -> tuple[list[int | None], tuple[int, int] | None]:
    """`marks_at_rule`, with each hit's height: the rows of its line where the rule is wider by
    its tolerance or more (None for a line that is no hit)."""
    _cx0, cy0, cx1, _cy1 = cell_box
    tol, reach = max(2, int(0.1 * glyph)), int(MARK_NEAR * glyph)
    out: list[int | None] = [None] * len(lines)
    bands = [(y0 + int(0.15 * (y1 - y0)), y1 - int(0.1 * (y1 - y0))) for _x0, y0, _x1, y1 in lines]
    # lines whose own ink comes up to the rule (most stop short: the rule is not measured for them)
    near = [k for k, ((x0, _y0, _x1, _y1), (r0, r1)) in enumerate(zip(lines, bands, strict=True))
            if (binary[r0:r1, max(x0, cx1 - reach):cx1] > 0).any()]
    rule = _right_rule(binary, cell_box, glyph) if near else None
    if rule is None:
        return out, None
    x_lo, x_hi, wider = rule
    for k in near:
        r0, r1 = bands[k]
        w = wider[max(0, r0 - cy0):max(0, r1 - cy0)]
        rows = int((w >= tol).sum())
        if int((w > tol).sum()) >= MARK_AT_RULE_ROWS or rows >= MARK_SIZE * glyph:
            out[k] = rows
    return out, (x_lo, x_hi)


def _rule_cleared_crops(image: np.ndarray, box: tuple[int, int, int, int], rule: tuple[int, int],
                        glyph: float, unit: float) -> list[np.ndarray]:
    """A line's crop carried MARK_REACH glyphs past its cell's right rule, the rule's columns
    painted paper: what a mark set on or past the rule looks like without it. Painted as the
    rule's median run finds it and a pixel wider each side: one pixel decides whether the
    recogniser reads the mark (d061: ，beside the rule read only with the run's own columns
    painted, 。 only with its antialiased edge painted too)."""
    x0, y0, _x1, y1 = box
    x1 = min(image.shape[1], rule[1] + 1 + int(MARK_REACH * glyph))
    crops = []
    for m in (0, 1):
        roi = image[y0:y1, x0:x1].copy()
        roi[:, max(0, rule[0] - m - x0):rule[1] + 1 + m - x0] = 255
        crops.append(_line_crop(roi, (0, 0, roi.shape[1], roi.shape[0]), unit))
    return crops


def _read_candidates(image: np.ndarray, boxes: list[tuple[int, int, int, int]], engine: OcrEngine,
                     scale: PageScale, known: dict[tuple[int, int, int, int], Reading] | None) -> list[Reading]:
    """Line crops read with runner-ups (effort "candidates"), each box once a page: `known`
    holds the page's readings so far (a sentence's end checked in `ink_gaps` may be a line
    `word_fixes` reads too: 16 of 73 such lines on the dev corpus)."""
    known = {} if known is None else known
    new = [b for b in dict.fromkeys(boxes) if b not in known]
    if new:
        known.update(zip(new, engine.recognize([_line_crop(image, b, scale.unit) for b in new], effort="candidates"),
                         strict=True))
    return [known[b] for b in boxes]


def _is_sentence(text: str) -> bool:
    """Text a full stop may end: a clause mark inside it, or SENTENCE_LEN characters or more.
    Names, labels and figures are shorter and end bare (dev, without this: eight such cells of
    1-9 characters took a 。 for a speck after them: 产出指标, 优, 100.00, 重大故障发生次数 …)."""
    from .lexicon import is_cjk

    s = re.sub(r"(?<=\d)[,，](?=\d)", "", "".join(text.split()))  # thousands: 41,233 is a figure
    return any(is_cjk(ch) for ch in s) and (len(s) >= SENTENCE_LEN or any(ch in s for ch in "，,、；;"))


def _ends_its_cell(c: Cell, t: TextLine) -> bool:
    """Whether `t` is the last line of its cell's text (the lowest)."""
    return all((o.bbox[1] + o.bbox[3]) <= (t.bbox[1] + t.bbox[3]) for o in c.lines)


def _ink_paper(glyph: float) -> int:
    """Pixels of paper `_ink_crop` leaves around the ink: half a glyph."""
    return max(1, round(glyph / 2))


def _ink_crop(image: np.ndarray, box: tuple[int, int, int, int], glyph: float) -> np.ndarray:
    """The ink in and around `box` (a quarter glyph beyond it: a box may cut a faint stroke off)
    with half a glyph of paper around it (the box itself if it holds none). Every dark pixel
    counts: `_ink_box`'s speck filter would drop the fragments of broken strokes this is for."""
    H, W = image.shape[:2]
    e = max(1, round(glyph / 4))
    x0, y0, x1, y1 = max(0, box[0] - e), max(0, box[1] - e), min(W, box[2] + e), min(H, box[3] + e)
    roi = image[y0:y1, x0:x1]
    grey = roi if roi.ndim == 2 else roi.min(axis=2)
    ys, xs = np.nonzero(grey < 128)
    if len(xs) == 0:
        return image[box[1] : box[3], box[0] : box[2]]
    m = _ink_paper(glyph)
    return image[max(0, y0 + ys.min() - m) : min(H, y0 + ys.max() + 1 + m),
                 max(0, x0 + xs.min() - m) : min(W, x0 + xs.max() + 1 + m)]


# A short reading that is no number and no word: a digit's thin strokes broken into a mark
# ('+' for 4, 'じ' for 12, 'S.' for 8. on 1-bit and fax-like pages), or a faint, soft digit
# read as punctuation ('。' for 9 and for 0 on photos and heavy scans). Dashes and ticks are
# what an empty or "none" cell legitimately holds: not second-guessed; and punctuation only
# where its ink stands as tall as half a glyph (dust is read as 。 and • too).
_MARK_READING_RE = re.compile(r"[^\u3400-\u9fff0-9]{1,3}|[.·]?[A-Za-z|!][0-9]{1,2}")
_DASHES_TICKS = frozenset("-—－–一/／\\√✓×xX%")
_PUNCT_SPECKS = frozenset("、，,。.：:；;'\"`" + SPECKS)
_NUMBER_RE = re.compile(r"[0-9]{1,3}(\.[0-9]{1,2})?\.?")


# A lone Chinese character read under this may be a faint figure (a pale 5 read as 车 at 0.79 on
# a heavy scan); the lone characters cells hold (是, 否, 无, 优) read at 0.95-1.0 on the dev
# corpus but for one 否 (0.61), which its ink crop reads as 否 again
LONE_CJK_MAX = 0.9


def _broken_digits(text: str, score: float = 1.0) -> bool:
    """A lone '1', a short reading of marks where a number is likelier (`_MARK_READING_RE`), or a
    lone Chinese character read doubtfully (LONE_CJK_MAX)."""
    from .lexicon import is_cjk

    s = text.strip()
    if len(s) == 1 and is_cjk(s) and s not in _DASHES_TICKS:
        return score < LONE_CJK_MAX
    return s == "1" or (bool(_MARK_READING_RE.fullmatch(s)) and not set(s) <= _DASHES_TICKS)


# A faint figure with a dust speck on it (heavy scans: a pale 0 read as & beside a black dot, a
# pale 11 as ':'): the line's box, inside its cell, with the small dark blobs painted over in
# the paper's grey, stretched from its darkest ink to paper and cropped to what ink is left
# (`_faint_crop`). Only where ink and paper differ by FAINT_CONTRAST grey levels (blank paper
# stretched would make ink of its grain), and only a number read at FAINT_MIN_SCORE is taken
FAINT_CONTRAST = 40
FAINT_MIN_SCORE = 0.9
SPECK_SIDE = 0.5  # glyphs: a dark blob smaller than this either way is painted over


def _faint_crop(image: np.ndarray, box: tuple[int, int, int, int], cell_box: tuple[int, int, int, int],
                glyph: float) -> np.ndarray | None:
    """The faint print of a line box without its dark specks, at full contrast (see FAINT_CONTRAST)."""
    import cv2

    e = max(1, round(glyph / 4))
    x0, y0 = max(cell_box[0] + e, box[0] - e), max(cell_box[1] + e, box[1] - e)
    x1, y1 = min(cell_box[2] - e, box[2] + e), min(cell_box[3] - e, box[3] + e)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    roi = image[y0:y1, x0:x1]
    grey = (roi if roi.ndim == 2 else roi.min(axis=2)).copy()
    paper = float(np.percentile(grey, 75))
    n, lab, st, _ = cv2.connectedComponentsWithStats((grey < 128).astype(np.uint8), connectivity=8)
    small = np.zeros(n, dtype=bool)
    small[1:] = np.maximum(st[1:, 2], st[1:, 3]) < SPECK_SIDE * glyph
    if small.any():  # with their soft rims, an eighth of a glyph around them
        rim = 2 * max(1, round(glyph / 8)) + 1
        grey[cv2.dilate(small[lab].astype(np.uint8), np.ones((rim, rim), np.uint8)) > 0] = int(paper)
    lo = float(np.percentile(grey, 1))
    if paper - lo < FAINT_CONTRAST:
        return None
    out = np.clip((grey.astype(np.float32) - lo) * (255.0 / (paper - lo)), 0, 255).astype(np.uint8)
    ys, xs = np.nonzero(out < 128)
    if len(xs) == 0:
        return None
    m = _ink_paper(glyph)
    out = out[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    out = _pad(out, m, m, m)
    return out if image.ndim == 2 else cv2.cvtColor(out, cv2.COLOR_GRAY2BGR)


def thin_ones(image: np.ndarray, cells: list[Cell], engine: OcrEngine, scale: PageScale) -> int:
    """Read every lone '1', and every short reading of marks (`_broken_digits`), again from the
    crop of its ink. A thin 4 or 7 on a 1-bit or fax-like page keeps only its upright after
    thresholding and reads as 1 (dev tiff/bilevel: 4 -> 1 six times, 7 -> 1 four), or keeps its
    cross and reads as '+'; thickened by an eighth of the glyph height the broken strokes join
    and read again as what they were, while a real 1 stays 1. A faint digit in a padded line
    crop reads as 。 or , and from its ink crop, where it fills the height, as itself (d044,
    d058: 9, 3, 5, 0): marks are read from the ink crop as it is, too. The second reading
    replaces the first when it is a number (for a '1': one other digit), at a character score
    no higher than the first's: two readings that disagree leave the cell doubtful. Returns how
    many lines were read again."""
    import cv2

    g = scale.glyph
    m = _ink_paper(g)
    todo = []  # (cell, line, crops)
    k = max(2, round(g / 8))
    kernel = np.ones((k, k), np.uint8)
    for c in cells:
        for t in c.lines:
            s = t.text.strip()
            if not _broken_digits(s, t.score):
                continue
            ink = _ink_crop(image, t.bbox, g)
            # not for a letter: a real scan's column letter B read 3 at 0.997 from its stretched crop
            faint = ([] if s == "1" or any(ch.isascii() and ch.isalpha() for ch in s)
                     else [f for f in [_faint_crop(image, t.bbox, c.bbox, g)] if f is not None])
            if s == "1":
                todo.append((c, t, [cv2.erode(ink, kernel)], 1))
            elif not set(s) <= _PUNCT_SPECKS:
                todo.append((c, t, [cv2.erode(ink, kernel), ink, *faint], 2))
            elif ink.shape[0] - 2 * m >= 0.5 * g:
                todo.append((c, t, [ink, cv2.erode(ink, kernel), *faint], 2))
            elif faint:
                todo.append((c, t, faint, 0))
    if not todo:
        return 0
    readings = iter(engine.recognize([crop for _c, _t, crops, _n in todo for crop in crops], effort="careful"))
    for c, t, crops, n_plain in todo:
        for j, r in enumerate([next(readings) for _ in crops]):
            text = r.text.strip()
            if t.text.strip() == "1":
                ok = len(text) == 1 and text.isdigit() and text != "1"
            else:  # a lone upright thickened reads 1 whatever it was (a scratch read as T: d030)
                ok = bool(_NUMBER_RE.fullmatch(text)) and text.rstrip(".") != "1"
                ok = ok and (j < n_plain or r.score >= FAINT_MIN_SCORE)
            if ok and t.text.strip() != text:
                score = min(r.score, t.score)
                _take(t, r._replace(text=text, score=score, char_scores=[score] * len(text)))
                finish_cell(c)
                break
    return len(todo)


# A 1-bit page whose strokes run this thick for its glyphs (twice the median ridge of its ink's
# distance transform / glyph height) may have filled its figures' counters: dev bilevel and tiff
# pages measure 0.07-0.11 but for two bold ones (0.14-0.17, read well); bench/unseen.py's thick
# copies 0.15-0.17, where 6, 5, 3 and 0 read as 8 at 0.96-1.0
THICK_STROKE = 0.14
_FIGURE_RE = re.compile(r"[0-9][0-9,.]*%?")


def _stroke_ratio(crops: list[np.ndarray], glyph: float) -> float:
    """Stroke width of the dark ink of `crops` over the page's glyph height (see THICK_STROKE)."""
    import cv2

    ridges = []
    for crop in crops:
        ink = (crop < 128).astype(np.uint8)
        dt = cv2.distanceTransform(ink, cv2.DIST_L2, 3)
        ridges.append(dt[(dt >= cv2.dilate(dt, np.ones((3, 3), np.uint8))) & (ink > 0)])
    ridge = np.concatenate(ridges) if ridges else np.zeros(0)
    return 2.0 * float(np.median(ridge)) / glyph if ridge.size else 0.0


def thick_eights(image: np.ndarray, cells: list[Cell], engine: OcrEngine, scale: PageScale) -> int:
    """On a 1-bit page printed thick (THICK_STROKE), figures with an 8 read again from their ink
    thinned by a pixel: a 6, 9, 5, 3 or 0 whose counter the thickness filled reads as 8, and
    thinned reads as itself, while a real 8 stays 8. A reading that differs only where the first
    had an 8 replaces it, at the lower of the two scores. Returns how many lines were read again."""
    import cv2

    todo = [(c, t) for c in cells for t in c.lines if "8" in t.text and _FIGURE_RE.fullmatch(t.text.strip())]
    if not todo:
        return 0
    inks = [_ink_crop(image, t.bbox, scale.glyph) for _c, t in todo]
    # measured on the figures themselves: the whole page's distance transform cost 37 ms
    if _stroke_ratio([i if i.ndim == 2 else i.min(axis=2) for i in inks], scale.glyph) < THICK_STROKE:
        return 0
    crops = [cv2.dilate(ink, np.ones((2, 2), np.uint8)) for ink in inks]
    for (c, t), r in zip(todo, engine.recognize(crops, effort="careful"), strict=True):
        first, text = t.text.strip(), r.text.strip()
        if (len(text) == len(first) and text != first and _FIGURE_RE.fullmatch(text)
                and all(a == b or a == "8" for a, b in zip(first, text, strict=True))):
            score = min(r.score, t.score)
            _take(t, r._replace(text=text, score=score, char_scores=[score] * len(text)))
            finish_cell(c)
    return len(todo)


# Word fixes (`word_fixes`), measured on the whole dev corpus: overall 0.9496 -> 0.9544 (heavy
# 0.8635 -> 0.8787, photo 0.8396 -> 0.8592, tiff and bilevel +1 cell each, no file worse).
# Under 0.99 instead of 0.95 (2026-12-07, second session, the runner-up reads batched): +4
# cells (bilevel 0.9699 -> 0.9710, heavy +3, no file worse) for d013's 4 runner-up reads
# becoming 8 (+0.15 s a page; scans such as d007 have none). A runner-up down to 0.001: the
# same cells as 0.01. Not kept: two adjacent doubtful characters replaced together
# (效果日都 for 效果目标; photo d044 85 -> 107 wrong), and doubtful common characters standing
# alone (的情 for 酌情) second-guessed too (+1 cell, two files worse)
FIX_MAX_SCORE = 0.99  # a character read at this score or more is not second-guessed
FIX_MIN_ALT = 0.01  # the least probability a runner-up needs to replace it
# The runner-up must join a word of the dictionary (jieba's count at least this). A common
# character standing alone is not counted lone either (二标 -> 一标 made no word and lost a
# header). Long compounds have small counts (系统故障 3, 长效机制 3): at least 50 read 10 dev
# cells fewer right, and nothing more
FIX_MIN_WORD = 1


def word_fixes(image: np.ndarray, cells: list[Cell], engine: OcrEngine, scale: PageScale,
               candidates: dict[tuple[int, int, int, int], Reading] | None = None) -> int:
    """Doubtful characters that fit no word replaced by the recogniser's runner-up that does.

    On soft print the recogniser's first choice is often a look-alike that makes no word with
    its neighbours (放障 for 故障, 执行车 for 执行率, 资科 for 资料) while its second or third
    choice at that place is the printed one. Lines holding a character under FIX_MAX_SCORE that
    the dictionary segmenter leaves alone (`lexicon.lone_positions`) are read again with their
    runner-ups; at each such place the likeliest runner-up that joins a word, leaving fewer lone
    characters in the line, replaces it. Its score stays the first reading's: the place stays as
    doubtful as it was read. Returns how many lines were read again."""
    from .lexicon import is_cjk, lone_positions, word_count_at

    todo = []  # (cell, line, its doubtful lone places)
    for c in cells:
        for t in c.lines:
            if t.char_scores and len(t.char_scores) == len(t.text):
                doubtful = [i for i in lone_positions(t.text) if t.char_scores[i] < FIX_MAX_SCORE]
                if doubtful:
                    todo.append((c, t, doubtful))
    if not todo:
        return 0
    readings = _read_candidates(image, [t.bbox for _c, t, _d in todo], engine, scale, candidates)
    for (c, t, doubtful), r in zip(todo, readings, strict=True):
        alts = _aligned_alts(t.text, r)
        if alts is None:
            continue
        text, changed = t.text, False
        for i in doubtful:
            lone = lone_positions(text)  # an earlier replacement may have joined this one to a word
            if i not in lone:
                continue
            for ch, p in sorted(alts[i], key=lambda a: -a[1]):
                if p < FIX_MIN_ALT or not is_cjk(ch):
                    continue
                new = text[:i] + ch + text[i + 1:]
                now = lone_positions(new)
                if i not in now and len(now) < len(lone) and word_count_at(new, i) >= FIX_MIN_WORD:
                    text, changed = new, True
                    break
        if changed:
            t.text = text
            finish_cell(c)
    return len(todo)


# Context fixes (`context_fixes`): a doubtful character's reading weighed against its runner-ups
# by how the whole clause then reads (the dictionary's word model) and what the recogniser gave
# each, in log units; a new clause must beat the read one by CONTEXT_MARGIN. Retuned once the
# lines earlier stages edit were weighed too (`_aligned_alts`; dev 0.9713 there): runner-ups down
# to 0.001 (from 0.01) +4 cells, a margin of 1 (from 2) +2 more, no variant worse (margin 0.5 the
# same count, weight 0.7 lost a header and its column on d054, 1.3 one cell fewer)
CONTEXT_WEIGHT = 1.0  # the recogniser's log-probabilities against the word model's
CONTEXT_MARGIN = 1.0
CONTEXT_MIN_ALT = 0.001  # the least probability a runner-up needs to be weighed
CONTEXT_MAX_COMBOS = 256
_CLAUSE_RE = re.compile(r"[\u3400-\u9fff]+")  # a clause: a run of Chinese characters
_CLAUSE_END_RE = re.compile(r"[\u3400-\u9fff]+$")


def _clause_fix(clause: str, scores: list[float], alts: list[list[tuple[str, float]]],
                before: str = "", after: str = "") -> str:
    """The likeliest reading of one clause of Chinese characters given each place's runner-ups
    (`before` and `after`: the clause's continuation on the cell's lines above and below)."""
    import itertools
    import math

    from .lexicon import is_cjk, text_logprob

    places = []
    for i, ch in enumerate(clause):
        if scores[i] >= FIX_MAX_SCORE:
            continue
        opts = [(ch, scores[i])] + [(a, p) for a, p in alts[i] if p >= CONTEXT_MIN_ALT and is_cjk(a)]
        if len(opts) > 1:
            places.append((i, opts))
    if not places:
        return clause
    while math.prod(len(o) for _i, o in places) > CONTEXT_MAX_COMBOS:
        k = max(range(len(places)), key=lambda j: len(places[j][1]))
        places[k] = (places[k][0], places[k][1][:-1])

    def score(chars: tuple[tuple[str, float], ...]) -> tuple[float, str]:
        text = list(clause)
        rec = 0.0
        for (i, _o), (ch, p) in zip(places, chars, strict=True):
            text[i] = ch
            rec += math.log(max(p, 1e-6))
        new = "".join(text)
        return text_logprob(before + new + after) + CONTEXT_WEIGHT * rec, new

    first, _ = score(tuple(o[0] for _i, o in places))
    best, text = max(score(combo) for combo in itertools.product(*(o for _i, o in places)))
    return text if best >= first + CONTEXT_MARGIN else clause


def _aligned_alts(text: str, r: Reading) -> list[list[tuple[str, float]]] | None:
    """Runner-ups for each character of a line's `text` from its reading with candidates `r`,
    which the stages before may have edited since (`word_fixes`' replacements, marks added or
    dropped): each character the two share in place takes r's runner-ups there, a character
    put in place of one of r's takes r's (r's own among them) and a character r lacks none.
    Requiring r's text unchanged left 94 of 97 doubtful lines of two heavy dev pages unread."""
    import difflib

    if r.alts is None or len(r.alts) != len(r.text):
        return None
    out: list[list[tuple[str, float]]] = [[] for _ in text]
    ops = difflib.SequenceMatcher(None, r.text, text, autojunk=False).get_opcodes()
    for op, i0, i1, j0, j1 in ops:
        if op == "equal":
            for k in range(i1 - i0):
                out[j0 + k] = r.alts[i0 + k]
        elif op == "replace" and i1 - i0 == j1 - j0:
            for k in range(i1 - i0):
                own = r.char_scores[i0 + k] if r.char_scores and len(r.char_scores) == len(r.text) else r.score
                opts = [(r.text[i0 + k], own), *r.alts[i0 + k]]
                out[j0 + k] = [(ch, p) for ch, p in opts if ch != text[j0 + k]]
    return out


def context_fixes(image: np.ndarray, cells: list[Cell], engine: OcrEngine, scale: PageScale,
                  candidates: dict[tuple[int, int, int, int], Reading] | None = None) -> int:
    """Doubtful characters replaced where a runner-up makes the clause read far likelier.

    `word_fixes` takes a runner-up only for a character that fits no word; a misread that does
    fit one (的情扣分 for 酌情扣分: 的 is the commonest character there is; 如定为点 for 扣完为止,
    where 定为 is a word) is left. Here every clause holding characters under FIX_MAX_SCORE is
    read as each mix of its places' readings and runner-ups, scored by the dictionary's word
    model plus the recogniser's log-probability of each choice, and the best taken where it
    beats the clause as read by CONTEXT_MARGIN. Scores stay the first reading's. Returns how
    many lines were read again."""
    from .lexicon import is_cjk

    known = {} if candidates is None else candidates
    todo = []
    for c in cells:
        for t in c.lines:
            # a line the tiny model kept scored 0.97 or more throughout: not read again for this
            # (scan pages d007 + d025: 16 reads, about 0.08 s a page, for no cell)
            if t.model == "tiny" and t.bbox not in known:
                continue
            if t.char_scores and len(t.char_scores) == len(t.text) and any(
                    s < FIX_MAX_SCORE and is_cjk(ch) for ch, s in zip(t.text, t.char_scores, strict=True)):
                todo.append((c, t))
    if not todo:
        return 0
    readings = _read_candidates(image, [t.bbox for _c, t in todo], engine, scale, known)
    for (c, t), r in zip(todo, readings, strict=True):
        alts = _aligned_alts(t.text, r)
        if alts is None:
            continue
        assert t.char_scores is not None
        ordered = reading_order(c.lines)
        k = ordered.index(t)
        # a clause may run on from the line before or on to the line after
        up = _CLAUSE_END_RE.search(ordered[k - 1].text) if k > 0 else None
        down = _CLAUSE_RE.match(ordered[k + 1].text) if k + 1 < len(ordered) else None
        text = t.text
        for m in _CLAUSE_RE.finditer(t.text):
            a, b = m.span()
            before = up.group(0) if up and a == 0 else ""
            after = down.group(0) if down and b == len(t.text) else ""
            if b - a + len(before) + len(after) < 2:
                continue
            new = _clause_fix(t.text[a:b], t.char_scores[a:b], alts[a:b], before, after)
            text = text[:a] + new + text[b:]
        if text != t.text:
            t.text = text
            finish_cell(c)
    return len(todo)


# A speck between two characters is the pause mark the recogniser's runner-ups there give this
# or more, and twice any other
SPECK_PAUSE_MIN = 0.08
SPECK_PAUSE_LEAD = 2.0


_PAUSE_SPLIT_RE = re.compile(f"[，,、。.；;：:（）()“”\\s{SPECKS}]")
ITEM_MAX = 4  # characters: the longest items 、 lists


def _between_items(text: str, i: int) -> bool:
    """Whether the mark at `i` stands between two short items (高并发、大容量): 、 lists words, ，
    joins clauses. On the dev truth and the seeds, a pause mark between two Chinese characters
    with at most ITEM_MAX characters on each side up to the next mark is 、 134 times and ，3;
    otherwise ，1,439 times and 、483."""
    before = _PAUSE_SPLIT_RE.split(text[:i])[-1]
    after = _PAUSE_SPLIT_RE.split(text[i + 1 :])[0]
    return 0 < len(before) <= ITEM_MAX and 0 < len(after) <= ITEM_MAX


# A colon before a clause's points is read as the 、 ... ；(1分) the forms print where the
# recogniser's runner-up gives ；at least 1/POINTS_SEMICOLON_ODDS of the colon's score. On the
# dev truth and the seeds, 716 such places print ；and 36 ：(one template, d005/d010/d015/d020);
# 5 keeps every colon of that template read on the dev corpus (its runner-ups: 0.002-0.03 of
# scores 0.49-0.99; the semicolons read as colons: 0.05-0.5 of 0.3-0.92)
POINTS_SEMICOLON_ODDS = 10.0
# A doubtful 。 between two Chinese characters is a pause mark where the runner-ups give ，and 、
# together at least 1/STOP_PAUSE_ODDS of its score. Between two characters, the dev truth and the
# seeds print ，or 、 5,541 times and 。 325: 4 is well short of those odds (on seven heavy and
# photo files it kept every full stop read at 0.6 or more and took 8 of 11 pause marks back)
STOP_PAUSE_ODDS = 4.0
# A doubtful ，between two short items (`_between_items`) is 、 where the runner-ups give 、 at
# least 1/ITEM_PAUSE_ODDS of its score: there the forms print 、 134 times to ，3 (dev truth and
# seeds), and soft print reads 、 as ，(完善性，有效性，连贯性)
ITEM_PAUSE_ODDS = 20.0
_COLON_BEFORE_POINTS_RE = re.compile(r"[:：](?=\s*[（(]\s*\d+\s*分)")
# A '>' or '<' before a figure is the ≥ / ≤ the forms set their targets with where the runner-ups
# give it at least 1/COMPARE_ODDS of the mark's score. The dev truth prints ≥ before a figure 63
# times and > never, the seeds 7 and 0; on soft print the recogniser reads ≥ as > (8 dev cells,
# ≥ at 0.03-0.42 against > at 0.56-0.96; the tiny model reads some at 0.98-0.99, so every such
# line is read again). Where ≥ is printed the runner-up > scores 0.006-0.42 (it stays ≥)
COMPARE_ODDS = 10.0
_STRICT_BEFORE_FIGURE_RE = re.compile(r"[>＞<＜](?=\s*\d)")
_OR_EQUAL = {">": "≥", "<": "≤"}


def mark_fixes(image: np.ndarray, cells: list[Cell], engine: OcrEngine, scale: PageScale,
               candidates: dict[tuple[int, int, int, int], Reading] | None = None) -> int:
    """Marks the recogniser confuses, put right from its runner-ups and the forms' typesetting.

    - A speck (·, •) read between two Chinese characters of a sentence is a pause mark: ，, or
      、 between short items, or the mark the runner-ups clearly give. On soft low-resolution
      print the recogniser reads commas as middle dots (150-DPI heavy scans: 渠道·广泛听取,
      完善性·有效性·连贯性), which the speck filter then dropped; these forms set no middle dot
      between two characters. A line's last speck counts where another line of its cell follows.
    - A doubtful colon before a clause's points ('计划：（1分）') is the ；that ends the forms'
      list items, where the runner-up gives ；a fair share of the colon's score
      (POINTS_SEMICOLON_ODDS).
    - A doubtful 。 between two characters is a pause mark where the runner-ups give one a fair
      share of its score (STOP_PAUSE_ODDS): 依据充分。是否符合 for 依据充分，是否符合.
    - A '>' or '<' before a figure is ≥ / ≤ where the runner-ups give that a fair share of its
      score (COMPARE_ODDS): the forms set targets as ≥95%, and soft print loses the bar below.

    A mark keeps the score of what was read there. Returns how many lines were read again."""
    from .lexicon import is_cjk

    todo = []  # (cell, line, speck places, places of doubtful colons and full stops)
    for c in cells:
        sentence = _is_sentence("".join(o.text for o in c.lines))  # a label's dot is a speck (效益指·标)
        ordered = reading_order(c.lines)
        for k, t in enumerate(ordered):
            # a line's last mark counts where the cell's next line goes on (落实。 | 人员配置合理)
            joined = t.text + (ordered[k + 1].text if k + 1 < len(ordered) else "")
            specks = [i for i in range(1, len(t.text)) if sentence and t.text[i] in SPECKS
                      and is_cjk(joined[i - 1]) and i + 1 < len(joined) and is_cjk(joined[i + 1])]
            scores = t.char_scores if t.char_scores is not None and len(t.char_scores) == len(t.text) else None
            colons = [m.start() for m in _COLON_BEFORE_POINTS_RE.finditer(t.text)
                      if scores is not None and scores[m.start()] < FIX_MAX_SCORE]
            stops = [i for i in range(1, len(t.text)) if t.text[i] in "。，," and scores is not None
                     and scores[i] < FIX_MAX_SCORE and i + 1 < len(joined) and is_cjk(joined[i - 1])
                     and is_cjk(joined[i + 1]) and (t.text[i] == "。" or _between_items(joined, i))]
            compares = bool(_STRICT_BEFORE_FIGURE_RE.search(t.text))
            if specks or colons or stops or compares:
                todo.append((c, t, specks, colons + stops))
    if not todo:
        return 0
    readings = _read_candidates(image, [t.bbox for _c, t, _s, _k in todo], engine, scale, candidates)
    for (c, t, specks, doubtful), r in zip(todo, readings, strict=True):
        read = t.text
        _or_equal(t, r)
        lead = len(r.text) - len(r.text.lstrip())
        # by place: `word_fixes` may have replaced a character of the line since, never a mark
        alts = (r.alts if r.alts is not None and len(r.text.strip()) == len(t.text) and len(r.alts) == len(r.text)
                else None)
        chars = list(t.text)
        for i in specks:
            p = _mark_odds(alts[lead + i] if alts is not None else [], "，、。")
            chars[i] = _pause_mark(p, t.text, i, SPECK_PAUSE_MIN)
        for i in doubtful if alts is not None and t.char_scores is not None else ():
            if chars[i] == "。":
                p = _mark_odds(alts[lead + i], _PAUSE_MARKS)
                if STOP_PAUSE_ODDS * (p["，"] + p["、"]) >= t.char_scores[i]:
                    chars[i] = _pause_mark(p, t.text, i, 0.0)
            elif chars[i] in "，,":  # between two short items (`_between_items`)
                if ITEM_PAUSE_ODDS * _mark_odds(alts[lead + i], "、")["、"] >= t.char_scores[i]:
                    chars[i] = "、"
            elif POINTS_SEMICOLON_ODDS * _mark_odds(alts[lead + i], "；")["；"] >= t.char_scores[i]:
                chars[i] = "；"
        t.text = "".join(chars)
        if t.text != read:
            finish_cell(c)
    return len(todo)


def _or_equal(t: TextLine, r: Reading) -> None:
    """Each '>' / '<' before a figure of `t` made ≥ / ≤ where the reading with runner-ups `r` of
    its crop (paired with it by order: the two readings may differ in blanks) gives that at least
    1/COMPARE_ODDS of the mark's score; the place keeps the lower of the two readings' scores."""
    if r.alts is None or r.char_scores is None or len(r.alts) != len(r.text) or len(r.char_scores) != len(r.text):
        return
    mine = [m.start() for m in _STRICT_BEFORE_FIGURE_RE.finditer(t.text)]
    theirs = [m.start() for m in _STRICT_BEFORE_FIGURE_RE.finditer(r.text)]
    if not mine or len(mine) != len(theirs):
        return
    chars = list(t.text)
    scores = t.char_scores if t.char_scores is not None and len(t.char_scores) == len(t.text) else None
    for i, j in zip(mine, theirs, strict=True):
        strict = unicodedata.normalize("NFKC", r.text[j])
        wider = _OR_EQUAL[strict]
        if COMPARE_ODDS * _mark_odds(r.alts[j], wider)[wider] >= r.char_scores[j]:
            chars[i] = wider
            if scores is not None:
                scores[i] = min(scores[i], r.char_scores[j])
    t.text = "".join(chars)


def _pause_mark(p: dict[str, float], text: str, i: int, least: float) -> str:
    """The pause mark at `text[i]`: the one the runner-ups give (`p`) at `least` or more and
    SPECK_PAUSE_LEAD times any other, else 、 between two short items and ，elsewhere."""
    first, second = sorted(p.values(), reverse=True)[:2]
    if first >= least and first >= SPECK_PAUSE_LEAD * second:
        return max(p, key=lambda m: p[m])
    return "、" if _between_items(text, i) else "，"


def _mark_odds(alts: list[tuple[str, float]], marks: str) -> dict[str, float]:
    """The runner-ups' probability of each of `marks` (ASCII forms counted as full-width ones)."""
    p = dict.fromkeys(marks, 0.0)
    for ch, q in alts:
        ch = unicodedata.normalize("NFKC", ch)
        ch = _FULL_MARK.get(ch, ch)
        if ch in p:
            p[ch] += q
    return p


def _faint_figures(image: np.ndarray, unread: list[tuple[Cell, tuple[int, int, int, int], Reading]],
                   engine: OcrEngine, scale: PageScale) -> int:
    """Cells whose ink read as nothing, read again from their faint print (`_faint_crop`): a
    number read at FAINT_MIN_SCORE is taken at a score of at most 0.5 (the first reading's where
    that is higher), so that the cell stays doubtful."""
    todo = [(c, b, r, f) for c, b, r in unread if (f := _faint_crop(image, b, c.bbox, scale.glyph)) is not None]
    if not todo:
        return 0
    for (c, b, first, _f), r in zip(todo, engine.recognize([f for *_x, f in todo], effort="careful"), strict=True):
        text = r.text.strip()
        if _NUMBER_RE.fullmatch(text) and r.score >= FAINT_MIN_SCORE:
            score = min(r.score, max(first.score, 0.5))
            c.lines.append(TextLine(text=text, bbox=b, score=score, char_scores=[score] * len(text), model=r.model))
            c.unread_ink = False
            finish_cell(c)
    return len(todo)


def second_look(image: np.ndarray, binary: np.ndarray, cells: list[Cell], engine: OcrEngine, scale: PageScale,
                known: dict[tuple[int, int, int, int], Reading] | None = None) -> int:
    """Cells with ink but no detected line (a lone digit, faint text): recognize the ink box.
    Cells without ink are marked blank; cells with lines get a line the detector missed read
    (`missed_line`), the ink their lines leave out (`ink_outside_lines`) and the ink their
    readings leave unread (`ink_gaps`, which reads such lines again), on the same binary in
    the same pass. Then every lone '1' and every short reading of marks is read again
    thickened (`thin_ones`), a thick page's figures with an 8 thinned (`thick_eights`),
    doubtful characters that fit no word take the recogniser's runner-up that does
    (`word_fixes`), and doubtful clauses the mix of runner-ups that reads likeliest
    (`context_fixes`).

    Returns how many cells and lines were looked at again (counted in the page's timings).
    """
    todo = []
    # line box -> its reading with runner-ups: `known` (the first reading's, where it has them) and
    # what the second look reads
    candidates: dict[tuple[int, int, int, int], Reading] = dict(known or {})
    n_again = ink_gaps(image, binary, cells, engine, scale, candidates)
    for c in cells:
        if c.lines:
            blobs = ink_outside_lines(binary, c, scale)
            if missed_line(image, c, blobs, engine, scale):
                n_again += 1
                blobs = ink_outside_lines(binary, c, scale)  # the new line covers its ink
            c.ink_out = min(len(blobs), INK_OUT_MAX)
            continue
        box = _ink_box(binary, c.bbox, scale.unit, scale.glyph)
        if box is None:
            c.blank = True
            continue
        bh = box[3] - box[1]
        if bh > scale.px(80):  # several lines of text: not a lone mark; leave it to detection
            c.unread_ink = True
            continue
        todo.append((c, box))
    if todo:
        results = engine.recognize([image[b[1] : b[3], b[0] : b[2]] for _, b in todo], effort="careful")
        unread = []
        for (c, b), r in zip(todo, results, strict=True):
            if r.text.strip() and (r.score >= 0.6 or _lone_number(r.text, r.score, b, scale.glyph, scale.unit)):
                c.lines.append(TextLine(text=r.text.strip(), bbox=b, score=r.score, char_scores=r.char_scores,
                                        model=r.model))
                finish_cell(c)
            else:
                c.unread_ink = True
                unread.append((c, b, r))
        n_again += _faint_figures(image, unread, engine, scale)
    n_again += thin_ones(image, cells, engine, scale)
    n_again += thick_eights(image, cells, engine, scale)
    n_again += word_fixes(image, cells, engine, scale, candidates)
    n_again += context_fixes(image, cells, engine, scale, candidates)
    n_again += mark_fixes(image, cells, engine, scale, candidates)
    return n_again + len(todo)


def read_page(
    image: np.ndarray,
    grids: list[Grid],
    engine: OcrEngine,
    binary: np.ndarray | None = None,
    scale: PageScale | None = None,
    timings: dict[str, float] | None = None,
) -> tuple[list[Grid], list[TextLine]]:
    """OCR a prepared page once and fill each grid cell's text.

    Returns (grids, free_lines): cells get `lines`, `text`, `confidence`;
    lines outside every grid come back as free lines (titles, notes).
    `scale` is the page's (measured from `binary` when not given).
    `timings` (if given) gets ocr_detect / ocr_recognize / ocr_second_look
    seconds and the n_second_look count (keys starting n_ are counts).
    """
    tm = timings if timings is not None else {}
    t = time.perf_counter()
    unit = scale.unit if scale is not None else 1.0
    boxes = detect_lines(image, engine, unit)
    t = _tick(tm, "ocr_detect", t)
    cell_list = []  # (id, bbox) over all grids
    cell_ref = []
    for g in grids:
        for c in g.cells:
            cell_list.append((len(cell_ref), c.bbox))
            cell_ref.append(c)

    crops: list[np.ndarray] = []
    targets: list[tuple[int | None, tuple[int, int, int, int]]] = []
    all_pieces: list[tuple[int | None, tuple[int, int, int, int]]] = []
    for box in boxes:
        pieces = _split_at_cells(box, cell_list, unit) if cell_list else []
        if not pieces:
            # outside the grids (or grazing them): read it whole as a free line
            inside = any(_contains(c.bbox, box, 2 * unit) for c in cell_ref)
            if inside:
                continue
            pieces = [(None, box)]
        all_pieces += pieces
    if binary is not None and scale is not None:
        all_pieces = [(cid, p) for cid, b in all_pieces for p in _line_bands(binary, b, scale.glyph)]
    for cid, b in all_pieces:
        x0, y0, x1, y1 = b
        if image[y0:y1, x0:x1].size == 0:
            continue
        crops.append(_line_crop(image, b, unit))
        targets.append((cid, b))

    t = _tick(tm, "ocr_layout", t)
    results = engine.recognize(crops)
    _tick(tm, "ocr_recognize", t)
    return _finish_page(image, grids, cell_ref, targets, results, engine, binary, scale, tm)


# A detected line box is 1.1-1.8 glyphs tall on the dev corpus; split by its ink only past
# TWO_LINES, and only into bands as tall as BAND_MIN (text, not a stroke or a speck)
TWO_LINES = 2.4
BAND_MIN = 0.6


def _line_bands(binary: np.ndarray, box: tuple[int, int, int, int], glyph: float) -> list[tuple[int, int, int, int]]:
    """A detected box as tall as two lines, split into the lines its ink shows (d054's header
    cell 二级 | 指标 came back as one box, read 二标); any other box as it is."""
    from .inklines import EDGE_INSET, cell_ink, line_bands

    x0, y0, x1, y1 = box
    if y1 - y0 <= TWO_LINES * glyph:
        return [box]
    mask = cell_ink(binary, box, glyph)
    if mask is None:
        return [box]
    bands, ambiguous = line_bands(mask, glyph)  # ink rows, top to bottom
    if ambiguous or len(bands) < 2 or any(b - a < BAND_MIN * glyph for a, b in bands):
        return [box]
    pad = max(1, int(0.15 * glyph))
    ox, oy = x0 + EDGE_INSET, y0 + EDGE_INSET
    out = []
    for a, b in bands:
        cols = np.flatnonzero(mask[a:b].any(axis=0))
        out.append((max(x0, ox + int(cols[0]) - pad), max(y0, oy + a - pad),
                    min(x1, ox + int(cols[-1]) + 1 + pad), min(y1, oy + b + pad)))
    return out


def _tick(timings: dict[str, float], key: str, t0: float) -> float:
    t1 = time.perf_counter()
    timings[key] = timings.get(key, 0.0) + (t1 - t0)
    return t1


def _finish_page(
    image: np.ndarray,
    grids: list[Grid],
    cell_ref: list[Cell],
    targets: list[tuple[int | None, tuple[int, int, int, int]]],
    results: list[Reading],
    engine: OcrEngine,
    binary: np.ndarray | None,
    scale: PageScale | None,
    tm: dict[str, float],
) -> tuple[list[Grid], list[TextLine]]:
    """Recognized pieces into their cells (or free lines); cell text, splits, second looks."""
    t = time.perf_counter()
    free: list[TextLine] = []
    for (cid, b), r in zip(targets, results, strict=False):
        text = r.text.strip()
        if not text:
            continue
        line = TextLine(text=text, bbox=b, score=r.score, char_scores=r.char_scores, model=r.model)
        if cid is None:
            free.append(line)
        else:
            cell_ref[cid].lines.append(line)
    for c in cell_ref:
        finish_cell(c)
    for g in grids:
        split_by_text(g)
    t = _tick(tm, "ocr_assign", t)
    if binary is not None:
        if scale is None:
            scale = PageScale(unit=1.0, glyph=glyph_or_default(binary))
        # readings made with runner-ups (the full model's) are what a line's candidates read
        # would give again: the same crop, `_line_crop` of the same box
        known = {b: r for (_cid, b), r in zip(targets, results, strict=False) if r.alts is not None}
        n = second_look(image, binary, [c for g in grids for c in g.cells], engine, scale, known)
        tm["n_second_look"] = tm.get("n_second_look", 0.0) + n
        _tick(tm, "ocr_second_look", t)
    free.sort(key=lambda t: (t.bbox[1], t.bbox[0]))
    return grids, free


def _contains(outer: tuple[int, int, int, int], inner: tuple[int, int, int, int], tol: float = 2) -> bool:
    return (outer[0] <= inner[0] + tol and outer[1] <= inner[1] + tol
            and outer[2] >= inner[2] - tol and outer[3] >= inner[3] - tol)
