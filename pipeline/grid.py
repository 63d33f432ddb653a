"""Grid: ruled tables on an upright binary page -> lattice + merged cells.

Stages (each a function, so tests can check one stage at a time):

1. `find_rules`: directional morphological opening keeps horizontal and
   vertical strokes much longer than a character; components that look like
   text (ink close above and below along most of their length) or that are too
   short to close a cell are dropped. Output: `Rule` segments.
2. `group_tables`: rules that touch (after a small dilation that bridges
   faded gaps) form one table region; rules floating inside another table's
   box join it; regions without a 2x2 lattice go.
3. `build_lattice`: per table, rule positions clustered along y (horizontal)
   and x (vertical) -> `Lattice` (positions + thickness); an outer border that
   is missing is put back where the other rules end.
4. `separators` + `merge_cells`: a separator between two neighbouring
   lattice cells exists when enough of that stretch of rule is inked, after
   holes that end in open space (damage, not a merged cell) are filled; cells
   joined across missing separators become one merged cell (joins are only
   taken when the result is a rectangle), and lattice lines that no longer
   separate anything are dropped.

Sizes are relative to the page's short side (`unit` = 1.0 for a 200-DPI A4
page, 1654 px), so 150-300 DPI pages behave the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from .celltext import cut_cell
from .measure import glyph_or_default, page_unit
from .types import BBox, Cell, Grid, PageScale

H_KERNEL = 40  # px at REF_SIDE: horizontal opening length (and >= 2 glyph heights, see _kernels)
V_KERNEL = 18  # px: vertical opening; short, since a separator may close a ~30 px row only
LONG_V = 60  # px: a vertical longer than this is a rule on its own; shorter ones must bridge two rules
BRIDGE = 3  # px: holes up to this long inside a rule are closed before opening
CLUSTER_TOL = 7  # px: segments this close across are the same rule (skew 0.15° drifts ~4 px/1600 px)
COVER_MIN = 0.5  # fraction of a cell edge that must be inked for a separator to exist
ISOLATED_H = 10.0  # glyph heights: a horizontal touching no vertical must be this long to count
ANCHOR = 100  # px: an ink run this long is rule, whatever it touches
TEXT_SIDE_MAX = 0.5  # a "rule" with ink right beside it along more than this fraction is text
MAX_EXACT_RULES = 2000  # above this many vector rules, group_rules' pairwise test gives way to a mask


@dataclass
class Rule:
    """One ruling segment: `pos` across the rule, [start, end] along it, in page pixels."""

    horizontal: bool
    pos: float
    start: int
    end: int
    thickness: float
    # extent across the rule (bounding box): wider than `thickness` when the rule is slightly skewed
    lo: int = 0
    hi: int = 0
    # what damage left of a rule inside one cell edge (`_remnants`): rule, however short
    remnant: bool = False

    @property
    def length(self) -> int:
        return self.end - self.start


@dataclass
class Lattice:
    """Rule positions of one table: R+1 row lines, C+1 column lines, and their thicknesses."""

    row_lines: list[int]
    col_lines: list[int]
    row_thick: list[float] = field(default_factory=list)
    col_thick: list[float] = field(default_factory=list)

    @property
    def n_rows(self) -> int:
        return len(self.row_lines) - 1

    @property
    def n_cols(self) -> int:
        return len(self.col_lines) - 1


def _px(v: float, unit: float, lo: int = 1) -> int:
    return max(lo, int(round(v * unit)))


# --- stage 1: rules --------------------------------------------------------------------------


def _line_mask(binary: np.ndarray, horizontal: bool, length: int, bridge: int) -> np.ndarray:
    """Strokes at least `length` long in one direction; holes up to `bridge` px closed first."""
    if horizontal:
        bk = cv2.getStructuringElement(cv2.MORPH_RECT, (bridge, 1))
        ok = cv2.getStructuringElement(cv2.MORPH_RECT, (length, 1))
    else:
        bk = cv2.getStructuringElement(cv2.MORPH_RECT, (1, bridge))
        ok = cv2.getStructuringElement(cv2.MORPH_RECT, (1, length))
    m = cv2.morphologyEx(binary, cv2.MORPH_CLOSE, bk) if bridge > 1 else binary
    return cv2.morphologyEx(m, cv2.MORPH_OPEN, ok)


def _side_ink(binary: np.ndarray, horizontal: bool, pos0: int, pos1: int, a: int, b: int, gap: int,
              band: int) -> float:
    """Largest fraction, over the two sides, of positions along a segment with ink just beside it.

    A ruling has paper on both sides (cell padding) except where rules cross;
    strokes of neighbouring glyphs that line up have the rest of the glyphs
    right above or below them.
    """
    if horizontal:
        h = binary.shape[0]
        above = binary[max(0, pos0 - gap - band):max(0, pos0 - gap), a:b]
        below = binary[min(h, pos1 + gap):min(h, pos1 + gap + band), a:b]
        if above.size == 0 or below.size == 0:
            return 0.0
        return max(float((above.max(axis=0) > 0).mean()), float((below.max(axis=0) > 0).mean()))
    else:
        w = binary.shape[1]
        left = binary[a:b, max(0, pos0 - gap - band):max(0, pos0 - gap)]
        right = binary[a:b, min(w, pos1 + gap):min(w, pos1 + gap + band)]
        if left.size == 0 or right.size == 0:
            return 0.0
        return max(float((left.max(axis=1) > 0).mean()), float((right.max(axis=1) > 0).mean()))
    return 0.0


def _curved(labels: np.ndarray, i: int, horizontal: bool, x: int, y: int, w: int, h: int,
            thick: float) -> bool:
    """Does component i bow: its middle off the straight line through its two ends?

    A slightly skewed rule is straight; an arc of a seal ring long enough to
    survive the opening bows by L^2/8r (several px).
    """
    comp = labels[y:y + h, x:x + w] == i
    if not horizontal:
        comp = comp.T
    n = comp.shape[1]
    rows = np.arange(comp.shape[0], dtype=np.float64)

    def centre(a: int, b: int) -> float | None:
        cnt = comp[:, a:b].sum(axis=1).astype(np.float64)
        return float((cnt * rows).sum() / cnt.sum()) if cnt.sum() else None

    k = max(2, n // 10)
    c0, c1, cm = centre(0, k), centre(n - k, n), centre(n // 2 - k // 2, n // 2 + k // 2 + 1)
    if c0 is None or c1 is None or cm is None:
        return False
    return abs(cm - (c0 + c1) / 2.0) > max(2.0, 0.6 * thick)


def _segments(mask: np.ndarray, binary: np.ndarray, horizontal: bool, unit: float,
              min_len: int, glyph: float) -> list[Rule]:
    """Connected components of a line mask -> Rule segments, text-like ones dropped.

    A filled bar is thicker than 12 px at the page's size and than half a glyph: a photo of
    a table alone (a small page, large print: unit 0.36, glyph 31 px) has 5 px rules, which
    the page size alone (4 px) took for bars, leaving no grid."""
    bx, by, bw, bh = cv2.boundingRect(mask)  # label only the inked window: masks are sparse
    out: list[Rule] = []
    if bw == 0 or bh == 0:
        return out
    n, sub, stats, _ = cv2.connectedComponentsWithStats(mask[by:by + bh, bx:bx + bw], connectivity=8)
    labels = np.zeros(mask.shape, np.int32)
    labels[by:by + bh, bx:bx + bw] = sub
    gap, band = _px(2, unit), _px(5, unit, 2)
    for i in range(1, n):
        x, y, w, h, area = (int(v) for v in stats[i])
        x, y = x + bx, y + by
        length, across = (w, h) if horizontal else (h, w)
        if length < min_len:
            continue
        thick = area / max(1, length)
        if thick > max(_px(12, unit, 4), 0.5 * glyph):  # a filled bar (stamp, shadow band), not a ruling
            continue
        if horizontal:
            pos = y + (h - 1) / 2.0
            side = _side_ink(binary, True, y, y + h, x, x + w, gap, band)
            start, end = x, x + w
        else:
            pos = x + (w - 1) / 2.0
            side = _side_ink(binary, False, x, x + w, y, y + h, gap, band)
            start, end = y, y + h
        if side > TEXT_SIDE_MAX:
            continue
        if across > thick + 2 and _curved(labels, i, horizontal, x, y, w, h, thick):
            continue  # an arc (seal ring), not a straight rule
        lo, hi = (y, y + h - 1) if horizontal else (x, x + w - 1)
        out.append(Rule(horizontal, pos, start, end, thick, lo, hi))
    return out


def _kernels(binary: np.ndarray, glyph: float | None) -> tuple[int, int, int]:
    """(horizontal opening, vertical opening, long vertical) lengths for this page."""
    unit = page_unit(binary.shape)
    g = glyph_or_default(binary) if glyph is None else glyph
    hk = max(_px(H_KERNEL, unit, 10), int(round(2.0 * g)))
    vk = max(_px(V_KERNEL, unit, 8), int(round(1.0 * g)))
    long_v = max(_px(LONG_V, unit, 15), int(round(2.5 * g)))
    return hk, vk, long_v


def _touches(r: Rule, others: list[Rule], tol: int) -> bool:
    """Does any perpendicular rule meet or cross `r` (within tol)?"""
    for o in others:
        if o.start - tol <= r.pos <= o.end + tol and r.start - tol <= o.pos <= r.end + tol:
            return True
    return False


def find_rules(binary: np.ndarray, glyph: float | None = None) -> tuple[list[Rule], list[Rule]]:
    """Horizontal and vertical ruling segments of an ink = 255 page.

    Short verticals (a separator inside one short row) are kept only when both
    ends meet a horizontal rule: a glyph stroke of that length does not.
    `glyph` is the text height in px (measured when not given).
    """
    unit = page_unit(binary.shape)
    bin8 = (binary > 0).astype(np.uint8) * 255
    bridge = _px(BRIDGE, unit)
    hk, vk, long_v = _kernels(bin8, glyph)
    hmask = _line_mask(bin8, True, hk, bridge)
    vmask = _line_mask(bin8, False, vk, bridge)
    g = glyph_or_default(bin8) if glyph is None else glyph
    hs = _segments(hmask, bin8, True, unit, hk, g)
    vs = _segments(vmask, bin8, False, unit, vk, g)
    tol = _px(CLUSTER_TOL, unit, 3)
    # a horizontal meeting no long vertical must be long itself: aligned glyph strokes
    # (一二三 in a monospaced line) make runs a few glyphs long, table rules meet verticals
    long_vs = [v for v in vs if v.length >= long_v]
    hs = [h for h in hs if h.length >= ISOLATED_H * g or _touches(h, long_vs, tol)]
    keep: list[Rule] = []
    near = tol // 2 + bridge + 2  # a faded junction may leave a small gap; glyphs keep a padding
    for v in vs:
        if v.length >= long_v:
            keep.append(v)
            continue
        top = bot = False
        for hr in hs:
            # touching: reaching into the rule's band, not a stroke stopping short of it
            if hr.start - tol <= v.pos <= hr.end + tol:
                top = top or hr.lo - near <= v.start <= hr.hi + near
                bot = bot or hr.lo - near <= v.end <= hr.hi + near
        if top and bot:
            keep.append(v)
    # pieces of a rule broken by holes into bits shorter than the kernels: kept where they
    # continue an accepted rule on its own line (glyphs keep clear of rules by the cell padding)
    # only from rules that meet a crossing rule: a run of aligned glyph strokes must not grow
    # Seeds: rules meeting a crossing rule. (Stubs left at a junction by erasure are not
    # seeds: bold glyph strokes touching a cell border look the same.)
    short = max(6, int(round(0.4 * g)))
    shape = (bin8.shape[0], bin8.shape[1])
    reach = 2 * hk
    # only pieces on the line of a rule, or beside a vertical, are worth a look (speed)
    near_h = cv2.dilate(_draw(hs, shape), cv2.getStructuringElement(cv2.MORPH_RECT, (2 * reach + 1, 3)))
    near_v = cv2.dilate(_draw(keep, shape), cv2.getStructuringElement(cv2.MORPH_RECT, (2 * hk + 1, 1)))
    h_mask = cv2.bitwise_and(_line_mask(bin8, True, short, bridge), cv2.bitwise_or(near_h, near_v))
    v_near = cv2.dilate(_draw(keep, shape), cv2.getStructuringElement(cv2.MORPH_RECT, (3, 2 * reach + 1)))
    v_mask = cv2.bitwise_and(_line_mask(bin8, False, short, bridge), v_near)
    h_short = _segments(h_mask, bin8, True, unit, short, g)
    v_short = _segments(v_mask, bin8, False, unit, short, g)
    h_seed = [h for h in hs if _touches(h, keep, tol)]
    v_seed = [v for v in keep if _touches(v, hs, tol)]
    h_more = _extend(h_seed, h_short, reach, keep)
    v_more = _extend(v_seed, v_short, reach, hs)
    hs = hs + [r for r in h_more if r not in hs]
    keep = keep + [r for r in v_more if r not in keep]
    hs = hs + _remnants([h for h in h_short if h not in hs], hs, keep, g, near)
    keep = keep + _remnants([v for v in vs if v not in keep], keep, hs, g, near)
    return _trim_glyph_tails(hs, keep, bin8, g), _trim_glyph_tails(keep, hs, bin8, g)


REMNANT = 1.5  # glyphs: a straight run this long on a rule's line is no glyph stroke


def _remnants(pieces: list[Rule], rules: list[Rule], across: list[Rule], glyph: float, near: int) -> list[Rule]:
    """What damage left of a rule inside one cell edge: pieces on an accepted rule's line.

    A rule erased along most of a cell's edge leaves a stub at one junction, which touches
    nothing at its other end and lies past a crossing rule from the rest of its line, so
    neither test above keeps it (dev d060: the weight column's rule kept only its last 45 px
    in the bottom row, and 5 and the scoring rule became one cell). A piece is kept where it
    is REMNANT glyphs long (longer than any stroke), on the line of a rule (centre inside its
    width, no thicker) and meeting a crossing rule at one end."""
    out = []
    for p in pieces:
        if p.length < REMNANT * glyph:
            continue
        line = [r for r in rules if _on_line(p, r)]
        if not line or any(p.start < r.end and r.start < p.end for r in line):
            continue  # on no rule's line, or a piece of a rule already there
        ends = [o for o in across if o.start - near <= p.pos <= o.end + near]
        if any(o.lo - near <= p.start <= o.hi + near or o.lo - near <= p.end <= o.hi + near for o in ends):
            out.append(replace(p, remnant=True))
    return out


GLYPH_TAIL = 0.3  # glyphs: the most a glyph touching a junction adds to a rule's end


def _trim_glyph_tails(rules: list[Rule], across: list[Rule], bin8: np.ndarray, glyph: float) -> list[Rule]:
    """Rule ends that overshoot a crossing rule by a glyph's stroke, cut back to that rule.

    Text that overflows its merged cell (影响力目标（15分） over two rows) may touch the
    junction of the rule it runs across: the closing bracket's foot lies on the rule's line,
    and the opened mask carries the rule on past the crossing rule by those pixels (5 px at
    135 DPI, dev d061), enough for `separators` to take the rule's real end there for damage
    and cut the merged cell. An overshoot counts as a glyph's only where ink lies beside it
    (above or below a horizontal rule): a rule's own overshoot at a table's corner has paper
    on both sides, and a rule erased up to near a junction has no overshoot at all."""
    tail = max(3, int(round(GLYPH_TAIL * glyph)))
    side = max(2, int(round(0.1 * glyph)))
    out = []
    for r in rules:
        start, end = r.start, r.end
        for c in across:
            if not (c.start - side <= r.pos <= c.end + side):
                continue
            if 0 < c.lo - start <= tail and _ink_beside(bin8, r, start, c.lo, side):
                start = c.lo
            if 0 < end - c.hi <= tail and _ink_beside(bin8, r, c.hi + 1, end, side):
                end = c.hi + 1
        out.append(r if (start, end) == (r.start, r.end) else replace(r, start=start, end=end))
    return out


def _ink_beside(bin8: np.ndarray, r: Rule, a: int, b: int, side: int) -> bool:
    """Whether ink lies just beside rule `r` (across it, on either side) between a and b along it."""
    if b <= a:
        return False
    if r.horizontal:
        above = bin8[max(0, r.lo - side):max(0, r.lo), a:b]
        below = bin8[r.hi + 1:r.hi + 1 + side, a:b]
    else:
        above = bin8[a:b, max(0, r.lo - side):max(0, r.lo)]
        below = bin8[a:b, r.hi + 1:r.hi + 1 + side]
    return bool(above.any() or below.any())


def _on_line(p: Rule, r: Rule) -> bool:
    """Whether piece `p` lies on rule `r`'s line: its centre inside r's width, p no thicker."""
    return r.lo - 1 <= p.pos <= r.hi + 1 and p.hi - p.lo <= r.hi - r.lo + 2


def _extend(rules: list[Rule], pieces: list[Rule], reach: int, across: list[Rule]) -> list[Rule]:
    """Add pieces collinear with a rule (centre inside its width, no thicker) within `reach` along it.

    Never across a crossing rule: beyond a junction a rule may really stop (merged cell).
    """
    out = list(rules)
    have = {(r.start, int(r.pos)) for r in rules}
    todo = [p for p in pieces if (p.start, int(p.pos)) not in have]

    def blocked(p: Rule, r: Rule) -> bool:
        a, b = (r.end, p.start) if p.start >= r.end else (p.end, r.start)
        # a rule running through a crossing ends a few px past its centre line
        return any(a - o.thickness - 4 <= o.pos <= b + o.thickness + 4 and o.start - 3 <= p.pos <= o.end + 3
                   for o in across)

    def joins(p: Rule, r: Rule) -> bool:
        return (_on_line(p, r) and p.start - reach <= r.end and r.start - reach <= p.end
                and not (p.start >= r.start and p.end <= r.end) and not blocked(p, r))

    changed = True
    while changed and todo:
        changed = False
        rest: list[Rule] = []
        for p in todo:
            if any(joins(p, r) for r in out):
                out.append(p)
                changed = True
            else:
                rest.append(p)
        todo = rest
    return out


# --- stage 2: tables -------------------------------------------------------------------------


def _draw(rules: list[Rule], shape: tuple[int, int], grow: int = 0) -> np.ndarray:
    m = np.zeros(shape, np.uint8)
    for r in rules:
        lo, hi = (r.lo, r.hi) if r.hi >= r.lo else (int(r.pos), int(r.pos))
        if r.horizontal:
            cv2.rectangle(m, (r.start - grow, lo - grow), (r.end - 1 + grow, hi + grow), 255, -1)
        else:
            cv2.rectangle(m, (lo - grow, r.start - grow), (hi + grow, r.end - 1 + grow), 255, -1)
    return m


def group_tables(hs: list[Rule], vs: list[Rule], shape: tuple[int, int]) -> list[tuple[list[Rule], list[Rule]]]:
    """Rules that touch (within a faded-gap tolerance) -> one group per table, top to bottom."""
    unit = page_unit(shape)
    grow = _px(CLUSTER_TOL, unit, 3)
    m = _draw(hs + vs, shape, grow)
    n, labels = cv2.connectedComponents(m, connectivity=8)
    groups: dict[int, tuple[list[Rule], list[Rule]]] = {}
    for r in hs + vs:
        p = int(round(r.pos))
        mid = (r.start + r.end) // 2
        y, x = (p, mid) if r.horizontal else (mid, p)
        y = min(max(y, 0), shape[0] - 1)
        x = min(max(x, 0), shape[1] - 1)
        lab = int(labels[y, x])
        g = groups.setdefault(lab, ([], []))
        (g[0] if r.horizontal else g[1]).append(r)
    del n
    return _join_nested(list(groups.values()))


def _join_nested(groups: list[tuple[list[Rule], list[Rule]]]) -> list[tuple[list[Rule], list[Rule]]]:
    """Groups whose boxes overlap become one; groups without both directions go; top to bottom."""
    # rules cut off by erased stretches float inside the frame of their table: join them to it
    items = [(g[0] + g[1], list(_span_box(g[0] + g[1]))) for g in groups]
    merged = True
    while merged:
        merged = False
        for i in range(len(items)):
            for j in range(i + 1, len(items)):
                a, b = items[i][1], items[j][1]
                if a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]:
                    box = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]
                    items[i] = (items[i][0] + items[j][0], box)
                    del items[j]
                    merged = True
                    break
            if merged:
                break
    out = [([r for r in rs if r.horizontal], [r for r in rs if not r.horizontal]) for rs, _ in items]
    out = [g for g in out if len(g[0]) >= 1 and len(g[1]) >= 1]
    out.sort(key=lambda g: min(r.pos for r in g[0]))
    return out


def group_rules(hs: list[Rule], vs: list[Rule], grow: int) -> list[tuple[list[Rule], list[Rule]]]:
    """`group_tables` for exact rules: components of the graph of rule boxes (grown) that touch.

    The same grouping as drawing the grown rules and labelling the mask
    (8-connected: boxes one pixel apart touch), without the page-sized image.
    """
    rules = hs + vs
    if not rules:
        return []
    box = np.array([(r.start, r.lo, r.end - 1, r.hi) if r.horizontal else (r.lo, r.start, r.hi, r.end - 1)
                    for r in rules], dtype=np.int64)
    box[:, :2] -= grow
    box[:, 2:] += grow
    x0, y0, x1, y1 = box[:, 0], box[:, 1], box[:, 2], box[:, 3]
    touch = ((x0[:, None] <= x1[None, :] + 1) & (x0[None, :] <= x1[:, None] + 1)
             & (y0[:, None] <= y1[None, :] + 1) & (y0[None, :] <= y1[:, None] + 1))
    label = [-1] * len(rules)
    groups: list[tuple[list[Rule], list[Rule]]] = []
    for i in range(len(rules)):
        if label[i] >= 0:
            continue
        label[i] = len(groups)
        todo, members = [i], []
        while todo:
            j = todo.pop()
            members.append(rules[j])
            for k in np.flatnonzero(touch[j]):
                if label[k] < 0:
                    label[k] = label[i]
                    todo.append(int(k))
        groups.append(([r for r in members if r.horizontal], [r for r in members if not r.horizontal]))
    return _join_nested(groups)


def _span_box(rules: list[Rule]) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) around a set of rules."""
    xs = [v for r in rules for v in ((r.start, r.end) if r.horizontal else (r.lo, r.hi))]
    ys = [v for r in rules for v in ((r.lo, r.hi) if r.horizontal else (r.start, r.end))]
    return min(xs), min(ys), max(xs), max(ys)


# --- stage 3: lattice ------------------------------------------------------------------------


def _cluster(rules: list[Rule], tol: int) -> list[tuple[float, float, int, int, int]]:
    """Rules at about the same position -> (pos, thickness, start, end, total length)."""
    out: list[tuple[float, float, int, int, int]] = []
    group: list[Rule] = []

    def flush() -> None:
        if not group:
            return
        wsum = float(sum(r.length for r in group))
        pos = sum(r.pos * r.length for r in group) / wsum
        th = sum(r.thickness * r.length for r in group) / wsum
        out.append((pos, th, min(r.start for r in group), max(r.end for r in group), int(wsum)))

    for r in sorted(rules, key=lambda r: r.pos):
        # compare with the group's last member: a skewed rule drifts a few px end to end
        if group and r.pos - group[-1].pos > tol:
            flush()
            group = []
        group.append(r)
    flush()
    return out


def _outer(lines: list[tuple[float, float, int, int, int]], other: list[tuple[float, float, int, int, int]],
           min_gap: int) -> list[tuple[float, float, int, int, int]]:
    """Put back a missing outer border where most crossing rules run past the outermost line."""
    if not lines or len(other) < 2:
        return lines
    lines = sorted(lines)
    starts = sorted(o[2] for o in other)
    ends = sorted(o[3] for o in other)
    th = float(np.median([ln[1] for ln in lines]))
    lo = float(np.median(starts))
    hi = float(np.median(ends))
    if lines[0][0] - lo > min_gap:
        lines.insert(0, (lo, th, 0, 0, 0))
    if hi - lines[-1][0] > min_gap:
        lines.append((hi, th, 0, 0, 0))
    return lines


def _join_close(lines: list[tuple[float, float, int, int, int]],
                min_gap: float) -> list[tuple[float, float, int, int, int]]:
    """Lines closer than `min_gap` are one rule (a double or bent line): no text fits between them."""
    out: list[tuple[float, float, int, int, int]] = []
    for ln in lines:
        if out and ln[0] - out[-1][0] < min_gap:
            a = out[-1]
            wa, wb = max(1, a[4]), max(1, ln[4])
            out[-1] = ((a[0] * wa + ln[0] * wb) / (wa + wb), max(a[1], ln[1]), min(a[2], ln[2]),
                       max(a[3], ln[3]), a[4] + ln[4])
        else:
            out.append(ln)
    return out


def build_lattice(hs: list[Rule], vs: list[Rule], shape: tuple[int, int],
                  glyph: float | None = None) -> Lattice | None:
    """Row and column rule positions of one table (None without at least a 1x1 lattice)."""
    unit = page_unit(shape)
    tol = _px(CLUSTER_TOL, unit, 3)
    g = 20.0 * unit if glyph is None else glyph
    min_cell = max(2.0 * tol, 0.6 * g)
    rows = _join_close(_cluster(hs, tol), min_cell)
    cols = _join_close(_cluster(vs, tol), min_cell)
    if not rows or not cols:
        return None
    # lines outside the other direction's extent belong to nothing here (title underline, shadow)
    y_lo = min(c[2] for c in cols) - 2 * tol
    y_hi = max(c[3] for c in cols) + 2 * tol
    x_lo = min(r[2] for r in rows) - 2 * tol
    x_hi = max(r[3] for r in rows) + 2 * tol
    rows = [r for r in rows if y_lo <= r[0] <= y_hi]
    cols = [c for c in cols if x_lo <= c[0] <= x_hi]
    min_gap = _px(15, unit, 5)
    rows = _outer(rows, cols, min_gap)
    cols = _outer(cols, rows, min_gap)
    if len(rows) < 2 or len(cols) < 2:
        return None
    return Lattice(
        row_lines=[int(round(r[0])) for r in rows],
        col_lines=[int(round(c[0])) for c in cols],
        row_thick=[r[1] for r in rows],
        col_thick=[c[1] for c in cols],
    )


# --- stage 4: cells --------------------------------------------------------------------------


def _fill_damage(prof: np.ndarray, origin: int, crossings: list[int], jt: int, anchor: int,
                 anchors: np.ndarray | None = None) -> np.ndarray:
    """Fill the holes of a rule's ink profile that damage made, not cell merging.

    A rule that really stops (a merged cell) stops at a crossing rule; a hole
    whose end lies in open space is erased or faded ink, so it is filled from
    that end back to the nearest crossing rule inside it (or wholly, without
    one); the same from a run's open end to the table's edge. Only long ink
    runs (>= `anchor`) count as rule: a glyph stroke touching a border or a
    seal arc on an open edge does not.
    """
    out = prof.copy()
    n = len(prof)
    xs = np.asarray(crossings) - origin

    def near(i: int) -> bool:
        return bool(np.abs(xs - i).min() <= jt)

    d = np.diff(np.concatenate(([0], prof.astype(np.int8), [0])))
    runs = list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1), strict=True))
    # a glyph stroke touching a border is short; a run holding one of `_anchors` is rule however short
    anchored = [b - a >= anchor or (anchors is not None and bool(anchors[a:b].any())) for a, b in runs]
    # holes between runs, and from the first / last run to the table's edge
    holes: list[tuple[int, int, int | None, int | None]] = [(0, int(runs[0][0]), None, 0)] if runs else []
    holes += [(int(runs[k][1]), int(runs[k + 1][0]), k, k + 1) for k in range(len(runs) - 1)]
    holes += [(int(runs[-1][1]), n, len(runs) - 1, None)] if runs else []
    for g0, g1, left, right in holes:
        if g1 <= g0:
            continue
        inner = xs[(xs > g0 + jt) & (xs < g1 - jt)]
        if left is not None and anchored[left] and not near(g0):
            out[g0:int(inner[0]) if inner.size else g1] = True
        if right is not None and anchored[right] and not near(g1):
            out[int(inner[-1]) if inner.size else g0:g1] = True
    return out


def _profile(mask: np.ndarray, horizontal: bool, pos: int, a: int, b: int, band: int) -> np.ndarray:
    """Along a rule at `pos` from a to b: is there rule ink within ±band across?"""
    if horizontal:
        strip = mask[max(0, pos - band):pos + band + 1, a:b]
        return strip.max(axis=0) > 0 if strip.size else np.zeros(max(0, b - a), bool)
    strip = mask[a:b, max(0, pos - band):pos + band + 1]
    return strip.max(axis=1) > 0 if strip.size else np.zeros(max(0, b - a), bool)


def _edge_cover(filled: np.ndarray, a: int, b: int) -> float:
    """Inked fraction of profile[a:b] (damage holes filled)."""
    if b - a < 3:  # edge shorter than the margins: judge its middle rather than call it missing
        mid = (a + b) // 2
        a, b = max(0, mid - 1), mid + 2
    f = filled[a:b]
    return float(f.mean()) if f.size else 0.0


def _edge_covers(filled: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`_edge_cover` for many edges of one profile at once (prefix sums: the same values, vectorised)."""
    n = len(filled)
    short = b - a < 3
    mid = (a + b) // 2
    a = np.where(short, np.maximum(0, mid - 1), a)
    b = np.where(short, mid + 2, b)
    # as Python slicing reads them (a negative end counts from the back)
    a = np.where(a < 0, np.maximum(a + n, 0), np.minimum(a, n))
    b = np.where(b < 0, np.maximum(b + n, 0), np.minimum(b, n))
    cs = np.concatenate(([0], np.cumsum(filled, dtype=np.int64)))
    size = b - a
    return np.where(size > 0, (cs[b] - cs[a]) / np.maximum(size, 1), 0.0)


def separators(lat: Lattice, hmask: np.ndarray, vmask: np.ndarray, unit: float,
               h_anchors: np.ndarray | None = None, v_anchors: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """Inked fraction of every inner cell edge, damage holes bridged (see `_fill_damage`).

    `h_anchors` / `v_anchors`: masks of the `_anchors`, runs that count as rule however short.
    Returns (below, right): below[r, c] for the edge under lattice cell (r, c)
    (shape (R-1, C)), right[r, c] for the edge right of it (shape (R, C-1)).
    The ends of each edge (where crossing rules sit) are left out.
    """
    R, C = lat.n_rows, lat.n_cols
    rl, cl = lat.row_lines, lat.col_lines
    span_y = rl[-1] - rl[0]
    span_x = cl[-1] - cl[0]
    # band: line thickness + the drift a residual 0.15-0.2° skew causes across the table
    band_h = _px(3, unit, 2) + int(0.0035 * span_x)
    band_v = _px(3, unit, 2) + int(0.0035 * span_y)
    # how near a crossing rule's centre a rule that really ends there stops: half its width,
    # blur, and the residual-skew drift of the crossing rule's position
    jt_h = int(np.ceil(max(lat.col_thick) / 2)) + _px(3, unit, 2) + int(0.0015 * span_y)
    jt_v = int(np.ceil(max(lat.row_thick) / 2)) + _px(3, unit, 2) + int(0.0015 * span_x)
    anchor = _px(ANCHOR, unit, 20)
    below = np.zeros((max(0, R - 1), C))
    right = np.zeros((R, max(0, C - 1)))
    # how far from the crossing point the touching rule's ink may stop: generous, since damage
    # often takes the junction itself (a hole there must not turn a real end into "damage")
    reach_h = band_h + int(max(lat.row_thick)) + _px(H_KERNEL, unit)
    reach_v = band_v + int(max(lat.col_thick)) + _px(H_KERNEL, unit)
    # each edge's stretch along its rule, the crossing rules' widths and bands left out
    col_a = np.array([cl[c] + int(lat.col_thick[c]) + band_v - cl[0] for c in range(C)], dtype=np.int64)
    col_b = np.array([cl[c + 1] - int(lat.col_thick[c + 1]) - band_v - cl[0] for c in range(C)], dtype=np.int64)
    row_a = np.array([rl[r] + int(lat.row_thick[r]) + band_h - rl[0] for r in range(R)], dtype=np.int64)
    row_b = np.array([rl[r + 1] - int(lat.row_thick[r + 1]) - band_h - rl[0] for r in range(R)], dtype=np.int64)
    for r in range(1, R):
        raw = _profile(hmask, True, rl[r], cl[0], cl[-1], band_h)
        # only crossings where a vertical really meets this rule can end it (not every lattice x)
        real = [x for x in cl if vmask[max(0, rl[r] - reach_h):rl[r] + reach_h + 1,
                                       max(0, x - band_v):x + band_v + 1].any()]
        sure = _profile(h_anchors, True, rl[r], cl[0], cl[-1], band_h) if h_anchors is not None else None
        filled = _fill_damage(raw, cl[0], real or cl, jt_h, anchor, sure)
        below[r - 1, :] = _edge_covers(filled, col_a, col_b)
    for c in range(1, C):
        raw = _profile(vmask, False, cl[c], rl[0], rl[-1], band_v)
        real = [y for y in rl if hmask[max(0, y - band_h):y + band_h + 1,
                                       max(0, cl[c] - reach_v):cl[c] + reach_v + 1].any()]
        sure = _profile(v_anchors, False, cl[c], rl[0], rl[-1], band_v) if v_anchors is not None else None
        filled = _fill_damage(raw, rl[0], real or rl, jt_v, anchor, sure)
        right[:, c - 1] = _edge_covers(filled, row_a, row_b)
    return below, right


def _find(parent: list[int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def merge_cells(below: np.ndarray, right: np.ndarray, n_rows: int, n_cols: int,
                cover_min: float = COVER_MIN) -> list[tuple[int, int, int, int]]:
    """Lattice cells joined across missing separators -> (row, col, row_span, col_span), sorted.

    Regions only ever join into rectangles: missing separators are taken most
    certain (least ink) first, and a join whose result would not be a
    rectangle waits for a later pass (it may become one) or is refused, so a
    rule erased by damage costs one wrong merge, not a cascade through the table.
    """
    R, C = n_rows, n_cols
    parent = list(range(R * C))
    box = {i: [i // C, i % C, i // C, i % C] for i in range(R * C)}  # r0, c0, r1, c1 per root
    size = dict.fromkeys(range(R * C), 1)
    edges: list[tuple[float, int, int]] = []
    for r in range(R - 1):
        for c in range(C):
            if below[r, c] < cover_min:
                edges.append((float(below[r, c]), r * C + c, (r + 1) * C + c))
    for r in range(R):
        for c in range(C - 1):
            if right[r, c] < cover_min:
                edges.append((float(right[r, c]), r * C + c, r * C + c + 1))
    edges.sort()
    pending = edges
    while pending:
        left: list[tuple[float, int, int]] = []
        for e in pending:
            ra, rb = _find(parent, e[1]), _find(parent, e[2])
            if ra == rb:
                continue
            ba, bb = box[ra], box[rb]
            u = [min(ba[0], bb[0]), min(ba[1], bb[1]), max(ba[2], bb[2]), max(ba[3], bb[3])]
            if (u[2] - u[0] + 1) * (u[3] - u[1] + 1) != size[ra] + size[rb]:
                left.append(e)  # not a rectangle (yet)
                continue
            root, other = min(ra, rb), max(ra, rb)
            parent[other] = root
            box[root], size[root] = u, size[ra] + size[rb]
        if len(left) == len(pending):
            break
        pending = left
    spans = []
    for i in range(R * C):
        if _find(parent, i) == i:
            r0, c0, r1, c1 = box[i]
            spans.append((r0, c0, r1 - r0 + 1, c1 - c0 + 1))
    return sorted(spans)


def _prune(lat: Lattice, spans: list[tuple[int, int, int, int]]) -> tuple[Lattice, list[tuple[int, int, int, int]]]:
    """Drop inner lattice lines that no cell edge uses (noise, a stroke inside one cell)."""
    used_r = {0, lat.n_rows} | {s[0] for s in spans} | {s[0] + s[2] for s in spans}
    used_c = {0, lat.n_cols} | {s[1] for s in spans} | {s[1] + s[3] for s in spans}
    rmap = {old: new for new, old in enumerate(sorted(used_r))}
    cmap = {old: new for new, old in enumerate(sorted(used_c))}
    new_lat = Lattice(
        row_lines=[lat.row_lines[i] for i in sorted(used_r)],
        col_lines=[lat.col_lines[i] for i in sorted(used_c)],
        row_thick=[lat.row_thick[i] for i in sorted(used_r)],
        col_thick=[lat.col_thick[i] for i in sorted(used_c)],
    )
    new_spans = [
        (rmap[r], cmap[c], rmap[r + rs] - rmap[r], cmap[c + cs] - cmap[c]) for r, c, rs, cs in spans
    ]
    return new_lat, sorted(new_spans)


def cell_bbox(lat: Lattice, row: int, col: int, row_span: int, col_span: int) -> BBox:
    """Inner box of a (merged) cell: between the inside edges of its four rules."""
    def half(t: float) -> int:
        return int(np.ceil(t / 2.0))

    x0 = lat.col_lines[col] + half(lat.col_thick[col])
    x1 = lat.col_lines[col + col_span] - half(lat.col_thick[col + col_span])
    y0 = lat.row_lines[row] + half(lat.row_thick[row])
    y1 = lat.row_lines[row + row_span] - half(lat.row_thick[row + row_span])
    return (x0, y0, max(x0 + 1, x1), max(y0 + 1, y1))


def _anchors(rules: list[Rule], glyph: float | None) -> list[Rule]:
    """Rules that anchor a damage hole's end however short (`_fill_damage`): remnants, and pieces
    REMNANT glyphs long as thick as the page's rules, half their median or more (dev d030: 62 px
    of an erased row rule, 5 px thick like the rest, kept 上年结转资金 and 其他资金 apart). A
    seal's pale arc left on a rule's line is a pixel thick (bench/unseen.py's seal: it cut a row)."""
    if not rules:
        return []
    thick = float(np.median([r.thickness for r in rules]))
    return [r for r in rules if r.remnant or (glyph is not None and r.length >= REMNANT * glyph
                                              and r.thickness >= 0.5 * thick)]


def grid_from_rules(hs: list[Rule], vs: list[Rule], shape: tuple[int, int],
                    glyph: float | None = None) -> Grid | None:
    """One table's rules -> Grid (lattice, merged cells with inner boxes), or None."""
    lat = build_lattice(hs, vs, shape, glyph)
    if lat is None:
        return None
    unit = page_unit(shape)
    below, right = separators(lat, _draw(hs, shape), _draw(vs, shape), unit,
                              _draw(_anchors(hs, glyph), shape), _draw(_anchors(vs, glyph), shape))
    spans = merge_cells(below, right, lat.n_rows, lat.n_cols)
    lat, spans = _prune(lat, spans)
    cells = [Cell(row=r, col=c, row_span=rs, col_span=cs, bbox=cell_bbox(lat, r, c, rs, cs))
             for r, c, rs, cs in spans]
    return Grid(row_lines=lat.row_lines, col_lines=lat.col_lines, cells=cells)


def find_grids(binary: np.ndarray, scale: PageScale | None = None, min_cells: int = 2) -> list[Grid]:
    """Every ruled table on an upright page (ink = 255), top to bottom.

    `scale` is the page's (its glyph height sizes the kernels); measured here when not given.
    """
    shape = (int(binary.shape[0]), int(binary.shape[1]))
    bin8 = (binary > 0).astype(np.uint8) * 255
    glyph = glyph_or_default(bin8) if scale is None else scale.glyph
    hs, vs = find_rules(bin8, glyph)
    grids: list[Grid] = []
    for ghs, gvs in group_tables(hs, vs, shape):
        g = grid_from_rules(ghs, gvs, shape, glyph)
        if g is None or len(g.cells) < min_cells:
            continue
        x0, y0, x1, y1 = g.bbox
        if y1 - y0 < 1.5 * glyph or x1 - x0 < 3 * glyph:
            continue  # strokes of a few glyphs, not a table a cell of text could sit in
        split_by_whitespace(g, bin8, glyph)
        grids.append(g)
    grids.sort(key=lambda g: g.row_lines[0])
    return grids


def _white_channel(ink: np.ndarray, axis: int, at: int, half: int, stub: int = 0) -> bool:
    """No ink in a band `half` px either side of `at` across the region (axis 0: a column band).

    Ink within `stub` px of `at` is allowed when it is a thin run along the lost
    rule (its remains: a faded rule is often erased only in part), not a glyph:
    the flanks beside it must be clean.
    """
    band = ink[:, max(0, at - half) : at + half + 1] if axis == 0 else ink[max(0, at - half) : at + half + 1, :]
    if band.size == 0:
        return False
    if int(band.sum()) == 0:
        return True
    if stub <= 0:
        return False
    lo, hi = at - max(0, at - half) - stub, at - max(0, at - half) + stub + 1
    flanks = np.concatenate([band[:, :max(0, lo)], band[:, hi:]], axis=1) if axis == 0 else \
        np.concatenate([band[:max(0, lo), :], band[hi:, :]], axis=0)
    return int(flanks.sum()) == 0


def _has_glyph(ink: np.ndarray, glyph: float) -> bool:
    """Some ink blob the size of a character part (specks of grain and dust are not)."""
    if int(ink.sum()) < 20:
        return False
    _, _, st, _ = cv2.connectedComponentsWithStats(ink.astype(np.uint8), connectivity=8)
    return bool((np.maximum(st[1:, 2], st[1:, 3]) >= 0.4 * glyph).any())


def split_by_whitespace(grid: Grid, binary: np.ndarray, glyph: float) -> int:
    """Split merged cells where the text itself shows the lost rule.

    A rule erased along its whole length (heavy or damaged scans) reads as a
    merged cell. If at an inner lattice line the cell has ink on both sides and
    a clean white channel through its whole height (or width) along that line,
    wider than text spacing, the cell is two cells. Returns how many splits.
    """
    n = 0
    changed = True
    while changed:
        changed = False
        for c in list(grid.cells):
            x0, y0, x1, y1 = c.bbox
            m = 3  # keep off the cell's own rules
            roi = binary[y0 + m : y1 - m, x0 + m : x1 - m] > 0
            if roi.size == 0:
                continue
            for axis, span in ((0, c.col_span), (1, c.row_span)):
                if span <= 1:
                    continue
                base = c.col if axis == 0 else c.row
                lines = grid.col_lines if axis == 0 else grid.row_lines
                origin = x0 + m if axis == 0 else y0 + m
                half = int(1.0 * glyph)  # a channel two glyphs wide: wider than any word spacing
                stub = max(3, int(round(0.2 * glyph)))  # rule remains: its width plus skew drift
                for k in range(1, span):
                    at = lines[base + k] - origin
                    size = roi.shape[1] if axis == 0 else roi.shape[0]
                    if not (half < at < size - half):
                        continue
                    if not _white_channel(roi, axis, at, half, stub):
                        continue
                    # ink on both sides, not counting the rule's remains at the line
                    if axis == 0:
                        before, after = roi[:, : max(0, at - stub)], roi[:, at + stub + 1 :]
                    else:
                        before, after = roi[: max(0, at - stub), :], roi[at + stub + 1 :, :]
                    if not (_has_glyph(before, glyph) and _has_glyph(after, glyph)):
                        continue
                    cut = lines[base + k]
                    a = cut_cell(c, axis, base, k, c.bbox[axis], cut)
                    b = cut_cell(c, axis, base + k, span - k, cut, c.bbox[axis + 2])
                    grid.cells.remove(c)
                    grid.cells += [a, b]
                    n += 1
                    changed = True
                    break
                if changed:
                    break
            if changed:
                break
    grid.cells.sort(key=lambda c: (c.row, c.col))
    return n


# --- born-digital pages: the PDF's own vector rules -------------------------------------------


def _merge_collinear(lines: list[tuple[float, float, float, float]], tol: float) -> list[Rule]:
    """(pos, start, end, thickness) pieces of one direction -> Rules, overlapping collinear ones joined.

    Cell-by-cell rectangles draw every inner edge twice; pieces on one line
    that touch (within `tol`) are one rule.
    """
    out: list[Rule] = []
    group: list[tuple[float, float, float, float]] = []

    def flush() -> None:
        if not group:
            return
        ps = sorted(g[0] for g in group)
        pos = ps[len(ps) // 2]
        runs: list[list[float]] = []
        for _, a, b, t in sorted(group, key=lambda g: g[1]):
            if runs and a <= runs[-1][1] + tol:
                runs[-1][1] = max(runs[-1][1], b)
                runs[-1][2] = max(runs[-1][2], t)
            else:
                runs.append([a, b, t])
        for a, b, t in runs:
            half = t / 2.0
            out.append(Rule(horizontal=True, pos=pos, start=int(np.floor(a)), end=int(np.ceil(b)), thickness=t,
                            lo=int(np.floor(pos - half + 0.5)), hi=int(np.floor(pos + half - 0.5))))

    for ln in sorted(lines):
        # against the group's first piece, not its last: hatching (lines 1 px apart) is not one rule
        if group and ln[0] - group[0][0] > tol:
            flush()
            group = []
        group.append(ln)
    flush()
    return out


def grids_from_lines(lines: list, shape: tuple[int, int], glyph: float | None = None,
                     min_cells: int = 2) -> list[Grid]:
    """Tables from a born-digital page's vector rules (`vector.VLine`s in render pixels), top to bottom.

    The rules are exact, so there is nothing to find: they go straight to
    `group_tables` / `grid_from_rules` (lattice, separators, merged cells).
    `glyph` is the text height in px (the text layer's), for the minimum cell size.
    """
    shape = (int(shape[0]), int(shape[1]))
    h, w = shape
    tol = 1.0  # px: the same rule drawn twice lands within rounding of itself
    hs = _merge_collinear([(ln.pos, max(0.0, ln.start), min(float(w), ln.end), ln.thickness)
                           for ln in lines if ln.horizontal and 0 <= ln.pos < h], tol)
    vs = [Rule(False, r.pos, r.start, r.end, r.thickness, r.lo, r.hi) for r in _merge_collinear(
        [(ln.pos, max(0.0, ln.start), min(float(h), ln.end), ln.thickness)
         for ln in lines if not ln.horizontal and 0 <= ln.pos < w], tol)]
    g = 20.0 * page_unit(shape) if glyph is None else glyph
    # a rule shorter than a glyph bounds no cell of text (a tick, a dash, a glyph-like mark)
    hs = [r for r in hs if r.length >= g]
    vs = [r for r in vs if r.length >= g]
    if len(hs) + len(vs) > MAX_EXACT_RULES:  # a vector drawing, not a form: group on a mask
        groups = group_tables(hs, vs, shape)
    else:
        groups = group_rules(hs, vs, _px(CLUSTER_TOL, page_unit(shape), 3))
    grids: list[Grid] = []
    for ghs, gvs in groups:
        grd = grid_from_rules(ghs, gvs, shape, g)
        if grd is None or len(grd.cells) < min_cells:
            continue
        x0, y0, x1, y1 = grd.bbox
        if y1 - y0 < 1.5 * g or x1 - x0 < 3 * g:
            continue  # an underline or a box too small for a cell of text: not a table
        grids.append(grd)
    grids.sort(key=lambda grd: grd.row_lines[0])
    return grids
