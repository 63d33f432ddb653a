"""Groups in the review queue: cells that read the same, so one decision settles them all.

Two queue entries are in one group when
- they share section, key, typed value and raw reading after the scorer's normalisation
  (NFKC, whitespace removed: `eval/score.py`'s `norm_text`), and
- their crops hold that text: both readings OCR-sure (every character scored >= OCR_SURE;
  on the dev corpus no two different truths read alike at that level, the worst wrong
  pair scored 0.976), or LONG_READING+ characters both scored >= OCR_FAIR, or else (both
  scored >= OCR_FAIR, or from a text layer) their prints look alike: each crop's print
  (the cell's rulings, cut-off rule stubs and scan specks taken out, the ink cut to its
  box) scaled to 24 px high and one width, aligned at the best shift of up to 2 px,
  correlates at CROP_MATCH as a whole and at GLYPH_MATCH in every glyph-wide window (one
  changed glyph of a long reading, 10 / 18 or 95% / 96%, barely moves the whole's figure
  but sinks its window's), with ink boxes' aspect ratios within ASPECT_TOLERANCE, and
- whichever way, the cells' per-row heights agree within ROW_HEIGHT_TOLERANCE.
Complete linkage: a cell joins a group only if it matches every member, so a chain of
near matches never joins two prints.

An empty reading groups only with empty readings whose crops show no print at all (faint
text the OCR missed is no blank); an entry without a crop, or a `shared_cell`, never
groups. A merged cell repeated down its rows is one entry (`rows` lists the rows it
covers; see merge_spanning).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..evaluate import norm_text  # the scorer's normalisation: NFKC, whitespace removed

INK_DARKER = 25  # grey levels under the paper that are ink
BLANK_DARKER = 18  # ... when looking for any print at all in a cell read as blank
# a blank joins others only on a page whose median cell score is this high: on a page read this
# badly a blank cell may hold a value the grid put in the wrong cell (dev photo d044 p2, 0.28:
# eight blank score cells of which four had scores beside them; every other dev page >= 0.53)
BLANK_PAGE_QUALITY = 0.5
OCR_SURE = 0.99  # every character at this OCR score or more: the reading is the crop's text
ROW_HEIGHT_TOLERANCE = 1.6  # per-row heights of two cells may differ by this factor
LONG_READING = 8  # characters: two different texts of this length do not read the same (see _joins)
OCR_FAIR = 0.9  # under this, a reading joins no group by its print alone
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
    if not e.get("crop") or e.get("shared_cell"):
        return None
    raw = norm_text(e.get("raw") or "")
    return (str(e["section"]), str(e["key"]), raw, json.dumps(e.get("value"), ensure_ascii=False, sort_keys=True))


def ocr_sure(e: dict[str, Any]) -> bool:
    """Every character of the reading recognised at OCR_SURE or more (the crop's own OCR
    score profile; a cell read from a text layer has none, and joins by its print)."""
    m = e.get("ocr_min")
    return m is not None and float(m) >= OCR_SURE


def _read_well(e: dict[str, Any]) -> bool:
    """The entry's page read well enough for its blank to be trusted (unknown: an older queue part)."""
    q = e.get("page_quality")
    return q is None or float(q) >= BLANK_PAGE_QUALITY


def blank_crop(image: np.ndarray) -> bool:
    """No print in the cell at all, looked for harder than for a signature: a reading of
    nothing groups only with readings of nothing that show nothing (faint text the OCR missed
    is no blank)."""
    return crop_signature(image, BLANK_DARKER) is None


def crop_signature(image: np.ndarray, darker: float = INK_DARKER) -> tuple[np.ndarray, float] | None:
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
    dark = cv2.GaussianBlur(g, (3, 3), 0) < paper - darker  # blurred: grain is no ink
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


def _clean_term(raw: str, key: str) -> bool:
    """Is a 一级/二级指标 cell's reading exactly a vocabulary term (points suffix aside)?"""
    from ..lexicon import indicator_terms
    from ..values import nfkc, split_level1

    name = split_level1(raw)[0] if key.startswith("level1") else raw
    term_key = "level1" if key.startswith("level1") else "level2"
    return norm_text(nfkc(name)) in indicator_terms().get(term_key, frozenset())


def row_in_cell(page: int | None, bbox: Any, row_cells: Any) -> bool:
    """Does a row lie in a (merged) cell: is some other cell of the row, `(page, bbox)` each,
    on the cell's page with its middle inside the cell's height? A row that borrowed the
    value of a cell it is not in (a label carried over a page break, a blank piece that took
    its neighbour's label) is not part of that cell's span."""
    others = [(p, b) for p, b in row_cells if b and tuple(b) != tuple(bbox)]
    if not others:
        return True
    return any(p == page and bbox[1] <= (b[1] + b[3]) / 2 <= bbox[3] for p, b in others)


def merge_spanning(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per cell: a merged cell (一级/二级指标) the records repeat down the rows it
    spans, queued once per row, becomes one entry whose `rows` are all of them.

    Only when its reading is a vocabulary term: a cell whose text runs two labels together
    (可持续影响指标服务对象满意度指标) or carries other text is a merge across a rule the grid
    missed, and its rows differ (measured on the dev corpus: every span whose rows' truths
    differ read as no term). Such rows stay one entry each, marked `shared_cell`, and
    never group: each is decided on its own. The queue writer calls this per file; the
    combiner again, for parts an older version wrote."""
    out: list[dict[str, Any]] = []
    spans: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for e in entries:
        e.setdefault("rows", [e.get("row")])
        if e.get("row") is not None and e.get("bbox") and len(e["rows"]) == 1:
            span = (e["file"], e.get("output_key"), e["sha256"], e["form_index"], e["section"], e["key"],
                    e.get("page"), tuple(e["bbox"]), e.get("raw"))
            spans.setdefault(span, []).append(e)
    for e in entries:
        span = None
        if e.get("row") is not None and e.get("bbox") and len(e["rows"]) == 1:
            span = (e["file"], e.get("output_key"), e["sha256"], e["form_index"], e["section"], e["key"],
                    e.get("page"), tuple(e["bbox"]), e.get("raw"))
        same = [x for x in spans.get(span, [e]) if x.get("in_cell", True)] if span is not None else [e]
        if not e.get("in_cell", True):
            e["shared_cell"] = True  # a borrowed value: decided on its own
            out.append(e)
        elif len(same) == 1:
            out.append(e)
        elif _clean_term(str(e.get("raw") or ""), str(e["key"])):
            if same[0] is e:
                e["rows"] = sorted({r for x in same for r in x["rows"]})
                out.append(e)
        else:
            e["shared_cell"] = True
            out.append(e)
    return out


def _row_heights_agree(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Cells of one shape: a cell as tall as two printed rows (the grid lost a rule, so its
    row holds what truth has in two) is not like one a row high, whatever it reads."""
    ha = (a["bbox"][3] - a["bbox"][1]) / max(1, len(a.get("rows") or [None]))
    hb = (b["bbox"][3] - b["bbox"][1]) / max(1, len(b.get("rows") or [None]))
    return max(ha, hb) <= ROW_HEIGHT_TOLERANCE * max(1, min(ha, hb))


def _joins(a: dict[str, Any], b: dict[str, Any], sa: Any, sb: Any) -> bool:
    """Two entries of one reading hold the same text: both readings OCR-sure, or one print
    that the OCR read without much doubt (a blurred 5 read as 3 looks like a blurred 3)."""
    if not _row_heights_agree(a, b):
        return False
    if ocr_sure(a) and ocr_sure(b):
        return True
    fair = all(e.get("ocr_min") is None or float(e["ocr_min"]) >= OCR_FAIR for e in (a, b))
    if fair and len(norm_text(a.get("raw") or "")) >= LONG_READING and all(e.get("ocr_min") is not None for e in (a, b)):
        return True  # two prints of one long text in other fonts or wrapped otherwise
    return fair and crops_match(sa, sb)


def assign_groups(entries: list[dict[str, Any]], review_dir: Path) -> None:
    """Set `group` and `group_size` on every entry (in place), in the entries' order.

    A group's id is stable across re-runs of unchanged inputs: its first member's id."""
    buckets: dict[tuple[str, str, str, str], list[int]] = {}
    for i, e in enumerate(entries):
        k = reading_key(e)
        if k is not None:
            buckets.setdefault(k, []).append(i)
    group_of: dict[int, str] = {}
    for k, members in buckets.items():
        if len(members) == 1:
            continue
        clusters: list[list[int]] = []
        if not k[2]:  # read as blank: those whose crops show nothing are one group
            import cv2

            imgs = {i: cv2.imread(str(review_dir / str(entries[i]["crop"])), cv2.IMREAD_GRAYSCALE) for i in members}
            clusters = [[i for i in members if imgs[i] is not None and blank_crop(imgs[i]) and _read_well(entries[i])]]
        else:
            sigs = {i: _load_signature(review_dir, str(entries[i]["crop"])) for i in members}
            for i in members:
                if sigs[i] is None:
                    continue
                for c in clusters:
                    if all(_joins(entries[i], entries[j], sigs[i], sigs[j]) for j in c):
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
