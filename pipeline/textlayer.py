"""Page kinds and the PDF text layer.

Each page is one of:
- `vector`: a born-digital page (no page-covering image) with a healthy text
  layer: its text is exact, so it is read from the layer, not OCRed;
- `garbled`: a layer that is wrong (GBK read as Latin-1, shifted code points,
  OCR junk, text that does not match the image): ignored, the image is OCRed;
- `image`: no text layer (or a scanned page whose layer we do not need): OCRed.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass

import numpy as np

from .celltext import finish_cell
from .types import BBox, Cell, Grid, TextLine

_KANA = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff]")
_LATIN1 = re.compile(r"[\u00c0-\u00ff]")
_PRIVATE = re.compile(r"[\ue000-\uf8ff]")
# Words every one of these forms prints; a healthy layer holds several of them.
_FORM_WORDS = ("项目", "预算", "指标", "绩效", "自评", "执行", "合计", "名称", "单位", "目标", "评分", "权重", "得分")


@dataclass
class LayerStats:
    chars: int
    bad: int  # characters a healthy Chinese form would not hold
    form_words: int

    @property
    def bad_ratio(self) -> float:
        return self.bad / max(1, self.chars)


def _is_bad_char(ch: str) -> bool:
    if ch.isspace() or ch.isascii():
        return False
    if _KANA.match(ch) or _LATIN1.match(ch) or _PRIVATE.match(ch):
        return True
    if unicodedata.category(ch).startswith("C"):
        return True
    try:
        ch.encode("gb2312")  # the 6763 common characters plus CJK punctuation
    except UnicodeEncodeError:
        return unicodedata.normalize("NFKC", ch).isascii() is False  # full-width forms are fine
    return False


def layer_stats(text: str) -> LayerStats:
    # each distinct character judged once: a page repeats a few hundred characters ~1000 times
    counts = Counter(text)
    chars = sum(n for c, n in counts.items() if not c.isspace())
    bad = sum(n for c, n in counts.items() if not c.isspace() and _is_bad_char(c))
    words = sum(w in text for w in _FORM_WORDS)
    return LayerStats(chars=chars, bad=bad, form_words=words)


def classify(text: str | None, has_page_image: bool) -> tuple[str, str]:
    """(kind, reason) from the layer's text and whether a scan image covers the page."""
    if not text or not text.strip():
        return "image", "no text layer"
    st = layer_stats(text)
    if st.chars < 20:
        return ("image", f"text layer nearly empty ({st.chars} chars)") if has_page_image else (
            "vector", f"born-digital page with little text ({st.chars} chars)")
    if st.bad_ratio > 0.01:
        return "garbled", f"{st.bad_ratio:.0%} of the layer's {st.chars} chars are mojibake or rare code points"
    if st.form_words < 2 and st.chars > 60:
        return "garbled", f"layer of {st.chars} chars holds almost none of the forms' words"
    if has_page_image:
        # a scan with an OCR layer that looks healthy: confirmed against our own OCR later
        return "image", f"scan with a plausible text layer ({st.chars} chars); page OCRed"
    return "vector", f"born-digital page, healthy text layer ({st.chars} chars, {st.bad} odd)"


def layer_text(layer: list[TextLine] | None) -> str:
    return "".join(t.text for t in layer or [])


def _line_groups(chars: list[TextLine]) -> list[list[TextLine]]:
    """Characters grouped into lines by vertical overlap, each sorted left to right."""
    lines: list[list[TextLine]] = []
    y0 = y1 = 0  # vertical extent of the last line so far (kept, not recomputed per character)
    for ch in sorted(chars, key=lambda c: ((c.bbox[1] + c.bbox[3]) / 2, c.bbox[0])):
        cy = (ch.bbox[1] + ch.bbox[3]) / 2
        if lines and y0 - 1 <= cy <= y1 + 1:
            lines[-1].append(ch)
            y0, y1 = min(y0, ch.bbox[1]), max(y1, ch.bbox[3])
            continue
        lines.append([ch])
        y0, y1 = ch.bbox[1], ch.bbox[3]
    return [sorted(line, key=lambda c: c.bbox[0]) for line in lines]


def _merge_line(chars: list[TextLine]) -> TextLine:
    text = ""
    prev: TextLine | None = None
    for c in chars:
        if prev is not None:
            gap = c.bbox[0] - prev.bbox[2]
            h = max(1, prev.bbox[3] - prev.bbox[1])
            if gap > 0.6 * h and not text.endswith(" ") and c.text != " ":
                text += " "  # a visible gap the layer did not encode as a space
        text += c.text
        prev = c
    box: BBox = (
        min(c.bbox[0] for c in chars),
        min(c.bbox[1] for c in chars),
        max(c.bbox[2] for c in chars),
        max(c.bbox[3] for c in chars),
    )
    return TextLine(text=text.strip(), bbox=box, score=1.0)


def read_layer(grids: list[Grid], chars: list[TextLine], unit: float = 1.0) -> tuple[list[Grid], list[TextLine]]:
    """Fill cells from a healthy layer's characters (by centre point); the rest are free lines.

    `unit` is the page's PageScale.unit: the tolerances below are pixels at 200 DPI.
    """
    near_rule, same_rule = 8 * unit, 10 * unit
    cells: list[Cell] = [c for g in grids for c in g.cells]
    per_cell: dict[int, list[TextLine]] = {}
    outside: list[TextLine] = []
    chars = [ch for ch in chars if ch.text.strip()]
    # the first cell holding each character's centre, for all characters at once (a page has
    # ~1000 characters and ~100 cells: a Python loop over the pairs was the stage's cost)
    first = np.full(len(chars), -1)
    if chars and cells:
        cb = np.array([c.bbox for c in cells], dtype=np.float64)
        tb = np.array([ch.bbox for ch in chars], dtype=np.float64)
        cxs = (tb[:, 0] + tb[:, 2]) / 2
        cys = (tb[:, 1] + tb[:, 3]) / 2
        inside = ((cb[None, :, 0] <= cxs[:, None]) & (cxs[:, None] <= cb[None, :, 2])
                  & (cb[None, :, 1] <= cys[:, None]) & (cys[:, None] <= cb[None, :, 3]))
        first = np.where(inside.any(axis=1), inside.argmax(axis=1), -1)
    for k, ch in enumerate(chars):
        cx = (ch.bbox[0] + ch.bbox[2]) / 2
        cy = (ch.bbox[1] + ch.bbox[3]) / 2
        i = int(first[k])
        if i >= 0:
            x0 = cells[i].bbox[0]
            if not ch.text.isalnum() and cx - x0 < near_rule:
                # a mark overflowing the cell on its left (。 after a full line) ends that cell's text
                left = [j for j, o in enumerate(cells) if abs(o.bbox[2] - x0) <= same_rule and o.bbox[1] <= cy <= o.bbox[3]]
                i = left[0] if left else i
            per_cell.setdefault(i, []).append(ch)
        else:
            # a mark set tight against a rule (。 at a full line's end) may sit just past the cell
            near = [i for i, c in enumerate(cells)
                    if c.bbox[0] - near_rule <= cx <= c.bbox[2] + near_rule and c.bbox[1] <= cy <= c.bbox[3]]
            if len(near) >= 1 and not ch.text.isalnum():
                per_cell.setdefault(min(near, key=lambda i: abs(cx - cells[i].bbox[2])), []).append(ch)
            else:
                outside.append(ch)
    for i, c in enumerate(cells):
        c.lines = [_merge_line(g) for g in _line_groups(per_cell.get(i, []))]
        finish_cell(c)
        if c.lines:
            c.confidence = 1.0
    free = [_merge_line(g) for g in _line_groups(outside)]
    return grids, free


def text_similarity(a: str, b: str) -> float:
    """1 - normalized edit distance over the texts without blanks."""
    from rapidfuzz.distance import Levenshtein

    a = re.sub(r"\s+", "", unicodedata.normalize("NFKC", a))
    b = re.sub(r"\s+", "", unicodedata.normalize("NFKC", b))
    if not a and not b:
        return 1.0
    return 1.0 - Levenshtein.distance(a, b) / max(len(a), len(b))
