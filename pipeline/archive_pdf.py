"""The archive PDF: each scanned page upright and straight, with an invisible, cell-aware text layer.

`<out>/pdf/<key>.pdf`, one page per input page, same page size:

- born-digital (vector) pages are copied unchanged (their own text is right);
- every other page keeps its original content (the scan's image stream as it was: no
  re-encoding, no growth) drawn through one `cm` that turns and deskews it exactly as
  `preprocess` did; any old text layer is removed (a garbled page's mojibake);
- then an invisible text layer (render mode 3): each grid cell's text in the cell's
  box, in reading order cell by cell, the cell holding a record value carrying the
  value's final text (a reviewer's correction included); free lines (titles, notes)
  where they were read.

The text uses a glyphless embedded TrueType font (built here with fontTools: one
empty glyph) as a CIDFontType2 with Identity-H codes equal to the Unicode code points
and a ToUnicode CMap saying so: the scheme OCRmyPDF uses for its text layer (its
"GlyphLessFont"), which pdftotext, pypdf and viewers' search all map back to Unicode.

Image inputs (PNG, JPEG, TIFF) are first wrapped losslessly by img2pdf (JPEG bytes
kept, PNG/TIFF data Flate or CCITT as they were).

After a review decision the PDF is rebuilt from the previous archive PDF (already
upright): its text layer is dropped and written again from the records. No OCR, no input.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .layout import iter_record_cells, layout_file, value_text
from .vector import user_to_pixels

PDF_DIR = "pdf"
FONT_NAME = "/ScanformsText"
MIN_SKEW = 0.02  # preprocess.MIN_SKEW: below it the page was not rotated
_TEXT_OPS = {"Tc", "Tw", "Tz", "TL", "Tf", "Tr", "Ts"}  # text state: only meaningful with text


def pdf_file(out_dir: Path, output_key: str) -> Path:
    return out_dir / PDF_DIR / f"{output_key}.pdf"


# --- geometry ------------------------------------------------------------------------------------

Matrix = tuple[float, float, float, float, float, float]  # PDF order: x' = a x + c y + e, y' = b x + d y + f


def _mul(m: Matrix, n: Matrix) -> Matrix:
    """m then n."""
    a, b, c, d, e, f = m
    A, B, C, D, E, F = n
    return (a * A + b * C, a * B + b * D, c * A + d * C, c * B + d * D, e * A + f * C + E, e * B + f * D + F)


def _turn(rotation: int, w: float, h: float) -> Matrix:
    """preprocess.turn: clockwise by `rotation` degrees, as pixel coordinates of a w x h image."""
    k = (rotation // 90) % 4
    if k == 1:
        return (0.0, 1.0, -1.0, 0.0, h, 0.0)  # (x, y) -> (h - y, x)
    if k == 2:
        return (-1.0, 0.0, 0.0, -1.0, w, h)
    if k == 3:
        return (0.0, -1.0, 1.0, 0.0, 0.0, w)  # (x, y) -> (y, w - x)
    return (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)


def _deskew(skew_deg: float, w: float, h: float, size: tuple[int, int]) -> Matrix:
    """preprocess.rotate_bound(-skew): rotation about the centre onto the grown canvas `size`."""
    if abs(skew_deg) < MIN_SKEW:
        return (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)
    t = math.radians(-skew_deg)  # cv2.getRotationMatrix2D: positive angle turns counter-clockwise on screen
    a, b = math.cos(t), math.sin(t)
    cx, cy = w / 2.0, h / 2.0
    nw, nh = size
    # cv2's [[a, b, (1-a)cx - b cy], [-b, a, b cx + (1-a) cy]] plus the canvas shift
    e = (1 - a) * cx - b * cy + nw / 2.0 - cx
    f = b * cx + (1 - a) * cy + nh / 2.0 - cy
    return (a, -b, b, a, e, f)


class PageMap:
    """Where a layout page's deskewed pixels land on the archive page, and the page's size."""

    def __init__(self, lp: dict[str, Any], scale: float, size_pt: tuple[float, float] | None = None) -> None:
        w0, h0 = lp["render_size"]
        self.upright = (h0, w0) if (lp["rotation"] // 90) % 2 else (w0, h0)
        nw, nh = lp["size"]
        self.scale = scale  # pixels per point
        # the grown canvas is centred on the page: the page keeps its size, the corners the
        # deskew pushed out fall off (paper margin)
        self.offset = ((nw - self.upright[0]) / 2.0, (nh - self.upright[1]) / 2.0)
        # the page's own size where known: the render's pixel count is rounded
        self.width, self.height = size_pt or (self.upright[0] / scale, self.upright[1] / scale)

    def pixels_to_user(self) -> Matrix:
        s = 1.0 / self.scale
        return (s, 0.0, 0.0, -s, -self.offset[0] * s, self.height + self.offset[1] * s)

    def box(self, bbox: Iterable[float]) -> tuple[float, float, float, float]:
        """A pixel bbox (x0, y0, x1, y1, y down) as user-space (x0, y0, x1, y1, y up)."""
        x0, y0, x1, y1 = bbox
        s = 1.0 / self.scale
        ox, oy = self.offset
        return ((x0 - ox) * s, self.height - (y1 - oy) * s, (x1 - ox) * s, self.height - (y0 - oy) * s)


def content_matrix(lp: dict[str, Any], cropbox: list[float], rotate: int) -> tuple[Matrix, PageMap]:
    """The `cm` that draws the input page's content upright and deskewed on the archive page."""
    w0, h0 = lp["render_size"]
    cb_w = float(cropbox[2]) - float(cropbox[0])
    cb_h = float(cropbox[3]) - float(cropbox[1])
    scale = w0 / (cb_h if rotate % 180 else cb_w)
    shown = (cb_h, cb_w) if rotate % 180 else (cb_w, cb_h)
    pm = PageMap(lp, scale, shown[::-1] if (lp["rotation"] // 90) % 2 else shown)
    left, bottom, right, top = (float(v) for v in cropbox[:4])
    m = user_to_pixels((left, bottom, right, top), rotate, scale)
    m = _mul(m, _turn(lp["rotation"], w0, h0))
    uw, uh = pm.upright
    m = _mul(m, _deskew(lp["skew_deg"], uw, uh, tuple(lp["size"])))
    m = _mul(m, pm.pixels_to_user())
    return m, pm


# --- what the text layer says --------------------------------------------------------------------


def _centre_in(bbox: list[int], cell: list[int]) -> bool:
    cx, cy = (bbox[0] + bbox[2]) / 2.0, (bbox[1] + bbox[3]) / 2.0
    return cell[0] <= cx <= cell[2] and cell[1] <= cy <= cell[3]


def _squash(s: str) -> str:
    return re.sub(r"\s+", "", s)


def page_texts(lp: dict[str, Any], records: list[dict[str, Any]]) -> list[tuple[str, list[int]]]:
    """(text, pixel bbox) to place on one page, in reading order: free lines above the first grid,
    each grid's cells row by row, then the other free lines and any value placed in no cell.

    A cell that holds record values says what they say now: the text as read where every value's
    text is in it (a 一级指标 cell "投入与管理 (36分)" holds two values), else the values' texts."""
    page_no = lp["page"]
    values: list[tuple[list[int], str]] = []
    seen: set[tuple[tuple[int, ...], str]] = set()
    for rec in records:
        for _s, _r, _k, c in iter_record_cells(rec):
            text = value_text(c)
            if c.get("page") != page_no or not c.get("bbox") or not text:
                continue
            key = (tuple(c["bbox"]), text)
            if key not in seen:  # merged cells repeat their value down the rows
                seen.add(key)
                values.append((list(c["bbox"]), text))
    placed: set[int] = set()
    out: list[tuple[str, list[int]]] = []
    grids = sorted(lp["grids"], key=lambda g: g["row_lines"][0])
    top = grids[0]["row_lines"][0] if grids else math.inf
    free = sorted(lp["free_lines"], key=lambda t: (t["bbox"][1], t["bbox"][0]))

    def free_line(t: dict[str, Any]) -> None:
        # a free line carrying a value (the title's year, a unit line): the value's text if it changed
        mine = [i for i, (b, _) in enumerate(values) if i not in placed and _centre_in(b, t["bbox"])]
        text = t["text"]
        if mine and not all(_squash(values[i][1]) in _squash(text) for i in mine):
            text = " ".join(values[i][1] for i in mine)
        placed.update(mine)
        out.append((text, t["bbox"]))

    for t in free:
        if t["bbox"][3] <= top:
            free_line(t)
    for g in grids:
        for cell in sorted(g["cells"], key=lambda c: (c["row"], c["col"])):
            mine = [i for i, (b, _) in enumerate(values) if i not in placed and _centre_in(b, cell["bbox"])]
            placed.update(mine)
            text = cell["text"]
            if mine and not all(_squash(values[i][1]) in _squash(text) for i in mine):
                out.append((" ".join(values[i][1] for i in mine), cell["bbox"]))
            elif cell.get("lines") and text.strip():
                out.append((text.replace("\n", ""), _one_line_box([ln["bbox"] for ln in cell["lines"]])))
            elif text.strip():
                out.append((text.replace("\n", " "), cell["bbox"]))
    for t in free:
        if t["bbox"][3] > top:
            free_line(t)
    out += [(text, b) for i, (b, text) in enumerate(values) if i not in placed]
    return out


def _one_line_box(boxes: list[list[int]]) -> list[int]:
    """The read lines' extent as one line of their height, centred on them.

    A cell's text is set as one run, not line by line: pdftotext and pypdf then read it in one
    piece, where separate lines interleave with the label beside them (measured on d025's
    项目年度总目标: its three lines came out around the label)."""
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x1, y1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
    h = sorted(b[3] - b[1] for b in boxes)[len(boxes) // 2]
    mid = (y0 + y1) / 2.0
    return [x0, round(mid - h / 2.0), x1, round(mid + h / 2.0)]


# --- the font --------------------------------------------------------------------------------------

_FONT_PROGRAM: bytes | None = None


def glyphless_font() -> bytes:
    """A TrueType font of one empty glyph, 1 em wide: text set in it is there but shows nothing."""
    global _FONT_PROGRAM
    if _FONT_PROGRAM is None:
        from fontTools.fontBuilder import FontBuilder
        from fontTools.pens.ttGlyphPen import TTGlyphPen

        fb = FontBuilder(1000, isTTF=True)
        fb.setupGlyphOrder([".notdef", "blank"])
        fb.setupCharacterMap({0x20: "blank"})
        empty = TTGlyphPen(None).glyph()
        fb.setupGlyf({".notdef": empty, "blank": TTGlyphPen(None).glyph()})
        fb.setupHorizontalMetrics({".notdef": (1000, 0), "blank": (1000, 0)})
        fb.setupHorizontalHeader(ascent=880, descent=-120)
        fb.setupNameTable({"familyName": "ScanformsGlyphless", "styleName": "Regular"})
        fb.setupOS2(sTypoAscender=880, sTypoDescender=-120, usWinAscent=880, usWinDescent=120)
        fb.setupPost()
        buf = io.BytesIO()
        fb.save(buf)
        _FONT_PROGRAM = buf.getvalue()
    return _FONT_PROGRAM


def _to_unicode_cmap() -> bytes:
    """CID = the character's UTF-16 code unit for all of the BMP outside the surrogates."""
    ranges = [f"<{hi:02X}00> <{hi:02X}FF> <{hi:02X}00>" for hi in range(256) if not 0xD8 <= hi <= 0xDF]
    blocks = []
    for i in range(0, len(ranges), 100):
        chunk = ranges[i:i + 100]
        blocks.append(f"{len(chunk)} beginbfrange\n" + "\n".join(chunk) + "\nendbfrange")
    return (
        "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n"
        "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
        "/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n"
        "1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n"
        + "\n".join(blocks)
        + "\nendcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n"
    ).encode("ascii")


def _font(pdf: Any) -> Any:
    """The Type0 font object (indirect, one per document)."""
    import zlib

    import pikepdf
    from pikepdf import Array, Dictionary, Name

    program = glyphless_font()
    font_file = pikepdf.Stream(pdf, zlib.compress(program))
    font_file.Filter = Name.FlateDecode
    font_file.Length1 = len(program)
    descriptor = pdf.make_indirect(Dictionary(
        Type=Name.FontDescriptor, FontName=Name("/ScanformsGlyphless"), Flags=5,
        FontBBox=Array([0, -120, 1000, 880]), ItalicAngle=0, Ascent=880, Descent=-120, CapHeight=880,
        StemV=80, FontFile2=font_file,
    ))
    cid_to_gid = pikepdf.Stream(pdf, zlib.compress(b"\x00\x01" * 65536))  # every CID shows the blank glyph
    cid_to_gid.Filter = Name.FlateDecode
    cid_font = pdf.make_indirect(Dictionary(
        Type=Name.Font, Subtype=Name.CIDFontType2, BaseFont=Name("/ScanformsGlyphless"),
        CIDSystemInfo=Dictionary(Registry="Adobe", Ordering="Identity", Supplement=0),
        FontDescriptor=descriptor, DW=1000, CIDToGIDMap=cid_to_gid,
    ))
    to_unicode = pikepdf.Stream(pdf, zlib.compress(_to_unicode_cmap()))
    to_unicode.Filter = Name.FlateDecode
    return pdf.make_indirect(Dictionary(
        Type=Name.Font, Subtype=Name.Type0, BaseFont=Name("/ScanformsGlyphless"), Encoding=Name("/Identity-H"),
        DescendantFonts=Array([cid_font]), ToUnicode=to_unicode,
    ))


def _encode(text: str) -> bytes:
    # Identity-H: two bytes a character, the code point itself (beyond the BMP: U+FFFD, rare on forms)
    return b"".join((ord(ch) if ord(ch) <= 0xFFFF and not 0xD800 <= ord(ch) <= 0xDFFF else 0xFFFD)
                    .to_bytes(2, "big") for ch in text)


def text_layer(items: list[tuple[str, list[int]]], pm: PageMap) -> bytes:
    """Content stream: each text stretched over its box (Tz), invisible (3 Tr), one BT block."""
    ops = ["BT", "3 Tr"]
    for text, bbox in items:
        # a space only between two Latin letters or digits: pdftotext files the two halves of
        # "投入与管理 (36分)" apart (its reading order), while the run without it stays one word
        text = re.sub(r"\s+", " ", text).strip()
        text = re.sub(r"(?<![A-Za-z0-9]) | (?![A-Za-z0-9])", "", text)
        if not text:
            continue
        x0, y0, x1, y1 = pm.box(bbox)
        h = y1 - y0
        w = x1 - x0
        if h <= 0.5 or w <= 0.5:
            continue
        # a glyph as tall as the box allows, smaller where a long text fills a tall cell on one line
        size = min(0.8 * h, max(w / len(text), 0.3 * h))
        stretch = 100.0 * w / (len(text) * size)
        base = y0 + (h - size) / 2.0 + 0.12 * size
        ops.append(f"{FONT_NAME} {size:.2f} Tf {stretch:.2f} Tz 1 0 0 1 {x0:.2f} {base:.2f} Tm "
                   f"<{_encode(text).hex()}> Tj")
    ops.append("ET")
    return ("\n".join(ops) + "\n").encode("ascii")


# --- the page --------------------------------------------------------------------------------------


def _inherited(page: Any, key: str) -> Any:
    node = page.obj
    for _ in range(64):
        if key in node:
            return node[key]
        if "/Parent" not in node:
            return None
        node = node.Parent
    return None


def _without_text(page: Any) -> bytes:
    """The page's content with every text object and text-state operator dropped."""
    import pikepdf

    kept = []
    in_text = False
    for operands, op in pikepdf.parse_content_stream(page):
        name = str(op)
        if name == "BT":
            in_text = True
        elif name == "ET":
            in_text = False
        elif not in_text and name not in _TEXT_OPS:
            kept.append((operands, op))
    return pikepdf.unparse_content_stream(kept)


def _set_size(page: Any, pm: PageMap) -> None:
    """The archive page's size: a media box of its own, no crop or rotation left to apply."""
    from pikepdf import Array

    page.obj.MediaBox = Array([0, 0, round(pm.width, 4), round(pm.height, 4)])
    for key in ("/CropBox", "/TrimBox", "/BleedBox", "/ArtBox", "/Rotate"):
        if key in page.obj:
            del page.obj[key]


def _as_drawn(lp: dict[str, Any]) -> dict[str, Any]:
    """A layout page as the archive page draws it: an unwarped photo is drawn as OCR saw it."""
    return {**lp, "render_size": lp["size"], "rotation": 0, "skew_deg": 0.0} if lp.get("image") else lp


def _unwarped_page(pdf: Any, page: Any, lp: dict[str, Any], records: list[dict[str, Any]], font: Any,
                   jpeg: bytes) -> None:
    """A photographed sheet's page: the unwarped page image (a perspective is no cm), then our text."""
    from pikepdf import Dictionary, Name, Stream

    w, h = lp["size"]
    scale = float(lp["dpi"]) / 72.0
    pm = PageMap(_as_drawn(lp), scale)
    image = Stream(pdf, jpeg, Type=Name.XObject, Subtype=Name.Image, Width=w, Height=h,
                   ColorSpace=Name.DeviceGray, BitsPerComponent=8, Filter=Name.DCTDecode)
    content = (f"q {pm.width:.4f} 0 0 {pm.height:.4f} 0 0 cm /Sheet Do Q\n").encode("ascii")
    page.obj.Contents = pdf.make_stream(content + text_layer(page_texts(lp, records), pm))
    page.obj.Resources = Dictionary(XObject=Dictionary(Sheet=image), Font=Dictionary({FONT_NAME: font}))
    _set_size(page, pm)


def _rewrite_page(pdf: Any, page: Any, lp: dict[str, Any], records: list[dict[str, Any]], font: Any,
                  upright: bool) -> None:
    """Replace one non-vector page's content: its old content (text dropped) upright, then our text."""
    from pikepdf import Dictionary

    box = _inherited(page, "/CropBox") or _inherited(page, "/MediaBox")
    cropbox = [float(v) for v in box]
    rotate = int(_inherited(page, "/Rotate") or 0)
    lp = _as_drawn(lp) if upright else lp
    if upright:  # a previous archive page: already turned and deskewed
        w0, h0 = lp["render_size"]
        up_w = h0 if (lp["rotation"] // 90) % 2 else w0
        pm = PageMap(lp, up_w / (cropbox[2] - cropbox[0]), (cropbox[2] - cropbox[0], cropbox[3] - cropbox[1]))
        m: Matrix = (1.0, 0.0, 0.0, 1.0, -cropbox[0], -cropbox[1])
    else:
        m, pm = content_matrix(lp, cropbox, rotate)
    body = _without_text(page)
    identity = all(abs(a - b) < 1e-9 for a, b in zip(m, (1.0, 0.0, 0.0, 1.0, 0.0, 0.0), strict=True))
    head = b"q\n" if identity else ("q\n" + " ".join(f"{v:.6f}" for v in m) + " cm\n").encode("ascii")
    content = head + body + b"\nQ\n" + text_layer(page_texts(lp, records), pm)
    page.obj.Contents = pdf.make_stream(content)
    # a copy: resources may be inherited or shared with a born-digital page that keeps its fonts
    old = _inherited(page, "/Resources")
    res = Dictionary({k: v for k, v in old.items() if k != "/Font"}) if old is not None else Dictionary()
    res.Font = Dictionary({FONT_NAME: font})  # the old fonts drew only the text we dropped
    page.obj.Resources = res
    _set_size(page, pm)


def _open_source(input_path: Path, layout: dict[str, Any]) -> Any:
    """The input as a pikepdf document: the PDF itself, or its images wrapped losslessly by img2pdf."""
    import pikepdf

    with open(input_path, "rb") as fh:
        head = fh.read(1024)
    if b"%PDF-" in head:
        return pikepdf.open(input_path)
    import img2pdf

    # the pipeline's DPI per page, so points match the render's pixels (the layout's scale)
    dpis = [p["dpi"] for p in layout["pages"]] or [200]
    try:
        data = img2pdf.convert(str(input_path), layout_fun=img2pdf.get_fixed_dpi_layout_fun((dpis[0], dpis[0])),
                               rotation=img2pdf.Rotation.ifvalid)
    except Exception:  # a mode img2pdf will not take (16-bit, CMYK TIFF): lossless PNG frames instead
        from PIL import Image, ImageSequence

        frames = []
        with Image.open(input_path) as im:
            for fr in ImageSequence.Iterator(im):
                b = io.BytesIO()
                fr.convert("RGB" if fr.mode not in ("1", "L", "RGB") else fr.mode).save(b, "PNG")
                frames.append(b.getvalue())
        data = img2pdf.convert(frames, layout_fun=img2pdf.get_fixed_dpi_layout_fun((dpis[0], dpis[0])))
    return pikepdf.open(io.BytesIO(data))


def build_pdf(source: Any, layout: dict[str, Any], records: list[dict[str, Any]], upright: bool,
              images: dict[int, bytes] | None = None) -> bytes:
    """The archive PDF from `source` (the input, or with `upright` a previous archive PDF).

    `images`: the unwarped page images (JPEG) of photographed sheets, by page number."""
    import pikepdf

    font = _font(source)
    pages = {p["page"]: p for p in layout["pages"]}
    for i, page in enumerate(source.pages):
        lp = pages.get(i + 1)
        if lp is None or lp["kind"] == "vector":
            continue  # born-digital: its own text layer is right; copied as it is
        if not upright and images and lp["page"] in images:
            _unwarped_page(source, page, lp, records, font, images[lp["page"]])
        else:
            _rewrite_page(source, page, lp, records, font, upright)
    buf = io.BytesIO()
    source.save(buf, object_stream_mode=pikepdf.ObjectStreamMode.generate, compress_streams=True)
    return buf.getvalue()


def write_pdf(
    out_dir: Path, input_path: Path, output_key: str, layout: dict[str, Any], records: list[dict[str, Any]]
) -> Path:
    """`<out>/pdf/<key>.pdf` from the input file, its layout and its records."""
    from .export import atomic_write_bytes

    path = pdf_file(out_dir, output_key)
    images = {lp["page"]: (layout_file(out_dir, output_key).parent / lp["image"]).read_bytes()
              for lp in layout["pages"] if lp.get("image")}
    with _open_source(input_path, layout) as src:
        data = build_pdf(src, layout, records, upright=False, images=images)
    atomic_write_bytes(path, data)
    return path


def rewrite_pdf(out_dir: Path, output_key: str, layout: dict[str, Any], records: list[dict[str, Any]]) -> Path | None:
    """After a review decision: the archive PDF again from the previous one, with a new text layer.

    None if there is no previous one (the file was run without --pdf)."""
    import pikepdf

    from .export import atomic_write_bytes

    path = pdf_file(out_dir, output_key)
    if not path.exists():
        return None
    with pikepdf.open(io.BytesIO(path.read_bytes())) as src:
        data = build_pdf(src, layout, records, upright=True)
    atomic_write_bytes(path, data)
    return path
