"""Ruling lines straight from a born-digital PDF page's vector graphics.

A born-digital form draws its table with path objects: stroked lines,
stroked rectangles (often one per cell, so shared edges come twice), or thin
filled rectangles. Their geometry is exact, so the grid needs no image work:
each axis-aligned straight piece becomes a `VLine` in the pixels of the page
render, and `grid.grids_from_lines` builds the lattice and the merged cells
from them with the same machinery the scan route uses.

Coordinates go through the render's own page-to-pixel mapping
(`page_to_pixels`), so /Rotate and a crop box that does not start at (0, 0)
land where the render puts them; the text layer uses the same mapping.
"""

from __future__ import annotations

import ctypes
import math
from collections.abc import Iterator
from dataclasses import dataclass

Affine = tuple[float, float, float, float, float, float]  # x' = a x + c y + e, y' = b x + d y + f

AXIS_TOL_PT = 0.5  # a segment this far off horizontal/vertical (end to end) is still a rule
THIN_FILL_PT = 3.0  # a filled rectangle this thin (or thinner) is a rule, not shading
LIGHT = 235  # a colour with every channel at or above this draws nothing visible on white paper
MAX_DEPTH = 8  # nested form XObjects followed this deep


@dataclass(frozen=True)
class VLine:
    """An axis-aligned rule of the page in render pixels: `pos` across it, [start, end] along it."""

    horizontal: bool
    pos: float
    start: float
    end: float
    thickness: float


def _mul(m: Affine, n: Affine) -> Affine:
    """m then n (row-vector convention, as PDF matrices)."""
    a, b, c, d, e, f = m
    A, B, C, D, E, F = n
    return (a * A + b * C, a * B + b * D, c * A + d * C, c * B + d * D, e * A + f * C + E, e * B + f * D + F)


def _apply(m: Affine, x: float, y: float) -> tuple[float, float]:
    return m[0] * x + m[2] * y + m[4], m[1] * x + m[3] * y + m[5]


def page_to_pixels(page: object, scale: float) -> Affine:
    """The affine map from PDF user space to the pixels of `page.render(scale=scale)`.

    pdfium's display transform: the crop box's corner to (0, 0), y down, then
    the page's /Rotate (clockwise). For an unrotated page whose crop box
    starts at (0, 0) this is x * scale, (height - y) * scale, exactly.
    (Tests check it against pdfium's own FPDF_PageToDevice.)
    """
    left, bottom, right, top = page.get_cropbox()  # type: ignore[attr-defined]
    return user_to_pixels((left, bottom, right, top), int(page.get_rotation()), scale)  # type: ignore[attr-defined]


def user_to_pixels(cropbox: tuple[float, float, float, float], rotate: int, s: float) -> Affine:
    """`page_to_pixels` from a page's crop box and /Rotate (also the archive PDF's map back)."""
    left, bottom, right, top = cropbox
    rot = rotate % 360
    if rot == 90:
        return (0.0, s, s, 0.0, -bottom * s, -left * s)
    if rot == 180:
        return (-s, 0.0, 0.0, s, right * s, -bottom * s)
    if rot == 270:
        return (0.0, -s, -s, 0.0, top * s, right * s)
    return (s, 0.0, 0.0, -s, -left * s, top * s)


def box_to_pixels(to_px: Affine, left: float, bottom: float, right: float, top: float) -> tuple[float, float, float, float]:
    """A user-space box -> (x0, y0, x1, y1) in pixels (min / max over its corners)."""
    xs, ys = [], []
    for x in (left, right):
        for y in (bottom, top):
            px, py = _apply(to_px, x, y)
            xs.append(px)
            ys.append(py)
    return min(xs), min(ys), max(xs), max(ys)


def _matrix(obj: object) -> Affine:
    import pypdfium2.raw as pdfium_c

    m = pdfium_c.FS_MATRIX()
    if not pdfium_c.FPDFPageObj_GetMatrix(obj, m):
        return (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)
    return (m.a, m.b, m.c, m.d, m.e, m.f)


def _objects(page: object) -> Iterator[tuple[object, Affine]]:
    """Every path object on the page, with its matrix to page space (form XObjects entered)."""
    import pypdfium2.raw as pdfium_c

    raw = page.raw  # type: ignore[attr-defined]
    ident: Affine = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)

    def walk(objs: list[object], outer: Affine, depth: int) -> Iterator[tuple[object, Affine]]:
        for o in objs:
            t = pdfium_c.FPDFPageObj_GetType(o)
            if t == pdfium_c.FPDF_PAGEOBJ_PATH:
                yield o, _mul(_matrix(o), outer)
            elif t == pdfium_c.FPDF_PAGEOBJ_FORM and depth < MAX_DEPTH:
                inner = [pdfium_c.FPDFFormObj_GetObject(o, i) for i in range(pdfium_c.FPDFFormObj_CountObjects(o))]
                yield from walk(inner, _mul(_matrix(o), outer), depth + 1)

    top = [pdfium_c.FPDFPage_GetObject(raw, i) for i in range(pdfium_c.FPDFPage_CountObjects(raw))]
    yield from walk(top, ident, 0)


def _visible(obj: object, stroke: bool) -> bool:
    """Is the paint (stroke or fill) dark enough to show on white paper?"""
    import pypdfium2.raw as pdfium_c

    r, g, b, a = ctypes.c_uint(), ctypes.c_uint(), ctypes.c_uint(), ctypes.c_uint()
    get = pdfium_c.FPDFPageObj_GetStrokeColor if stroke else pdfium_c.FPDFPageObj_GetFillColor
    if not get(obj, r, g, b, a):
        return True  # a colour pdfium cannot report (pattern, separation): assume ink
    if a.value == 0:
        return False
    return min(r.value, g.value, b.value) < LIGHT


def _clip_box(obj: object) -> tuple[float, float, float, float] | None:
    """Bounding box (page space) of the object's clip path, or None when it has none."""
    import pypdfium2.raw as pdfium_c

    clip = pdfium_c.FPDFPageObj_GetClipPath(obj)
    if not clip:
        return None
    xs: list[float] = []
    ys: list[float] = []
    x, y = ctypes.c_float(), ctypes.c_float()
    for i in range(pdfium_c.FPDFClipPath_CountPaths(clip)):
        for j in range(pdfium_c.FPDFClipPath_CountPathSegments(clip, i)):
            seg = pdfium_c.FPDFClipPath_GetPathSegment(clip, i, j)
            if seg and pdfium_c.FPDFPathSegment_GetPoint(seg, x, y):
                xs.append(x.value)
                ys.append(y.value)
    if not xs:
        return None  # an empty clip object: nothing clipped
    return min(xs), min(ys), max(xs), max(ys)


def _subpaths(obj: object) -> list[tuple[list[tuple[float, float]], bool, bool]]:
    """The path's subpaths as (points, closed, straight) in the path's own space."""
    import pypdfium2.raw as pdfium_c

    out: list[tuple[list[tuple[float, float]], bool, bool]] = []
    pts: list[tuple[float, float]] = []
    closed = False
    straight = True
    x, y = ctypes.c_float(), ctypes.c_float()
    for i in range(pdfium_c.FPDFPath_CountSegments(obj)):
        seg = pdfium_c.FPDFPath_GetPathSegment(obj, i)
        if not seg or not pdfium_c.FPDFPathSegment_GetPoint(seg, x, y):
            continue
        kind = pdfium_c.FPDFPathSegment_GetType(seg)
        if kind == pdfium_c.FPDF_SEGMENT_MOVETO:
            if pts:
                out.append((pts, closed, straight))
            pts, closed, straight = [(x.value, y.value)], False, True
            continue
        if kind == pdfium_c.FPDF_SEGMENT_BEZIERTO:
            straight = False
            pts.append((math.nan, math.nan))  # a curve breaks the run of straight pieces
        pts.append((x.value, y.value))
        if pdfium_c.FPDFPathSegment_GetClose(seg):
            closed = True
    if pts:
        out.append((pts, closed, straight))
    return out


def _clip_line(ln: VLine, box: tuple[float, float, float, float] | None) -> VLine | None:
    """The part of a rule inside the clip box (pixels), or None."""
    if box is None:
        return ln
    x0, y0, x1, y1 = box
    lo, hi = (y0, y1) if ln.horizontal else (x0, x1)
    a, b = (x0, x1) if ln.horizontal else (y0, y1)
    if not lo - 0.5 <= ln.pos <= hi + 0.5:
        return None
    start, end = max(ln.start, a), min(ln.end, b)
    if end - start < 1.0:
        return None
    return VLine(ln.horizontal, ln.pos, start, end, ln.thickness)


def _piece(p: tuple[float, float], q: tuple[float, float], thick: float) -> VLine | None:
    """A straight piece between two pixel points -> a rule if it runs along an axis."""
    (x0, y0), (x1, y1) = p, q
    if any(math.isnan(v) for v in (x0, y0, x1, y1)):
        return None
    tol = max(1.0, thick)
    if abs(y1 - y0) <= tol and abs(x1 - x0) > abs(y1 - y0):
        return VLine(True, (y0 + y1) / 2.0, min(x0, x1), max(x0, x1), thick)
    if abs(x1 - x0) <= tol and abs(y1 - y0) > abs(x1 - x0):
        return VLine(False, (x0 + x1) / 2.0, min(y0, y1), max(y0, y1), thick)
    return None


def page_lines(page: object, to_px: Affine) -> list[VLine]:
    """Every visible axis-aligned straight rule of a PDF page, in render pixels.

    Stroked pieces give a rule each (width: the stroke's, at least 1 px); a
    filled subpath whose box is at most THIN_FILL_PT thin gives one rule along
    its long side. Curves, invisible paint (white, transparent, `n` paths) and
    fat fills (cell shading) give none. Clip paths cut rules to their box.
    """
    import pypdfium2.raw as pdfium_c

    px_per_pt = math.sqrt(abs(to_px[0] * to_px[3] - to_px[1] * to_px[2]))
    out: list[VLine] = []
    fill_mode, stroke = ctypes.c_int(), ctypes.c_int()
    width = ctypes.c_float()
    for obj, m in _objects(page):
        if not pdfium_c.FPDFPath_GetDrawMode(obj, fill_mode, stroke):
            continue
        do_stroke = bool(stroke.value) and _visible(obj, True)
        do_fill = fill_mode.value != pdfium_c.FPDF_FILLMODE_NONE and _visible(obj, False)
        if not (do_stroke or do_fill):
            continue
        full = _mul(m, to_px)
        clip = _clip_box(obj)
        clip_px = None
        if clip is not None:  # clip paths are kept in page space
            cx = [_apply(to_px, x, y) for x in (clip[0], clip[2]) for y in (clip[1], clip[3])]
            clip_px = (min(p[0] for p in cx), min(p[1] for p in cx), max(p[0] for p in cx), max(p[1] for p in cx))
        pieces: list[VLine] = []
        if do_stroke:
            pdfium_c.FPDFPageObj_GetStrokeWidth(obj, width)
            # the width is in the path's space: scale it as the matrix scales lengths
            lin = math.sqrt(abs(full[0] * full[3] - full[1] * full[2]))
            thick = max(1.0, float(width.value) * lin)
        for pts, closed, straight in _subpaths(obj):
            px = [_apply(full, x, y) if not math.isnan(x) else (math.nan, math.nan) for x, y in pts]
            if do_stroke:
                ring = px + [px[0]] if closed and len(px) > 2 else px
                for p, q in zip(ring, ring[1:], strict=False):
                    ln = _piece(p, q, thick)
                    if ln is not None:
                        pieces.append(ln)
            if do_fill and straight and len(px) >= 3:
                xs = [p[0] for p in px]
                ys = [p[1] for p in px]
                w, h = max(xs) - min(xs), max(ys) - min(ys)
                thin = THIN_FILL_PT * px_per_pt
                # only axis-aligned rectangles: a thin filled triangle or zigzag is no rule
                x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
                box_like = all(min(abs(x - x0), abs(x - x1)) <= 0.5 and min(abs(y - y0), abs(y - y1)) <= 0.5
                               for x, y in px)
                if box_like and min(w, h) <= thin and max(w, h) > 2 * min(w, h):
                    if w >= h:
                        pieces.append(VLine(True, (min(ys) + max(ys)) / 2, min(xs), max(xs), max(1.0, h)))
                    else:
                        pieces.append(VLine(False, (min(xs) + max(xs)) / 2, min(ys), max(ys), max(1.0, w)))
        for ln in pieces:
            kept = _clip_line(ln, clip_px)
            if kept is not None:
                out.append(kept)
    return out
