"""Ingest: input files -> PageImage, each page rendered once.

PDFs are rendered with pypdfium2 (no system dependencies); PNG / JPEG /
TIFF (multi-page) are read with Pillow. A PDF page's text layer is kept with
character boxes scaled to the render DPI, so later stages can decide whether
to trust it without opening the file again.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from . import vector
from .errors import EncryptedPdfError, InputFileError
from .types import PageImage, TextLine

# pdfium is not thread-safe and `scanforms run -j N` reads documents in threads: every call
# into it (open, render, text layer, vector rules, close) holds this lock
PDFIUM_LOCK = threading.RLock()

DEFAULT_DPI = 200  # measured: OCR accuracy on the dev scans does not improve above it, time does
PDF_SUFFIXES = {".pdf"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"}
SUPPORTED_SUFFIXES = PDF_SUFFIXES | IMAGE_SUFFIXES
MAX_PIXELS = 80_000_000  # a page above this is scaled down (with a warning) rather than exhausting memory
# An image whose header claims more than this is refused before decoding: a decompression bomb
# (a few KB of PNG can claim 10 GB of pixels). Same bound as Pillow's DecompressionBombError.
REFUSE_PIXELS = 178_956_970
MIN_DPI = 50  # a page so large that the pixel cap leaves less than this is refused: nothing would be legible


def find_inputs(paths: list[Path]) -> list[Path]:
    """Input files under the given files/folders (recursive), sorted, supported suffixes only.

    A folder that cannot be listed and a dangling link are returned too, so that they are
    reported as unreadable rather than silently missed.
    """
    out: list[Path] = []
    unlisted: list[Path] = []
    for p in paths:
        if not os.path.isdir(p):  # (False, not an error, where p cannot even be looked at)
            out.append(p)
            continue
        found: list[Path] = []
        unlisted.clear()
        for root, _dirs, files in os.walk(p, onerror=lambda e: unlisted.append(Path(e.filename))):
            for name in files:
                f = Path(root) / name
                if f.suffix.lower() in SUPPORTED_SUFFIXES and (f.is_file() or (f.is_symlink() and not f.exists())):
                    found.append(f)
        out += sorted(found) + sorted(unlisted)
    return out


# Content that archives hold under a .pdf/.png name, with what to tell the user.
_NOT_INPUT = [
    (b"PK\x03\x04", "a ZIP archive (an Office document?), not a PDF or image"),
    (b"GIF8", "a GIF image: format not supported (convert to PNG or TIFF)"),
    (b"\xd0\xcf\x11\xe0", "an old Office document (OLE2), not a PDF or image"),
    (b"{\\rtf", "an RTF document, not a PDF or image"),
]


def _sniff(path: Path) -> str:
    """'pdf' or 'image' by content (not by name: archives hold misnamed files)."""
    if os.path.isdir(path):
        try:
            next(path.iterdir(), None)
        except OSError as e:
            raise InputFileError(path, f"cannot list folder: {(e.strerror or str(e)).lower()}") from e
        raise InputFileError(path, "is a folder, not a file")
    try:
        with path.open("rb") as fh:
            head = fh.read(1024)
    except PermissionError as e:
        raise InputFileError(path, "cannot read: permission denied") from e
    except IsADirectoryError as e:
        raise InputFileError(path, "is a folder, not a file") from e
    except FileNotFoundError as e:
        what = "broken symbolic link" if path.is_symlink() else "no such file"
        raise InputFileError(path, f"cannot read: {what}") from e
    except OSError as e:
        raise InputFileError(path, f"cannot read: {e.strerror or e}") from e
    if not head:
        raise InputFileError(path, "empty file (0 bytes)")
    if b"%PDF-" in head:  # the spec lets the header sit anywhere in the first 1024 bytes
        return "pdf"
    if head.startswith((b"\x89PNG", b"\xff\xd8", b"II*\x00", b"MM\x00*", b"BM")):
        return "image"
    if (head[:4] == b"RIFF" and head[8:12] == b"WEBP") or head[4:12] in (b"ftypavif", b"ftypheic"):
        raise InputFileError(path, "a WebP/AVIF/HEIC image: format not supported (convert to PNG or TIFF)")
    for magic, reason in _NOT_INPUT:
        if head.startswith(magic):
            raise InputFileError(path, reason)
    low = head.lstrip().lower()
    if low.startswith((b"<!doctype html", b"<html", b"<?xml", b"<head")):
        # typically a download that saved the server's error or login page
        raise InputFileError(path, "an HTML/XML page (a failed download?), not a PDF or image")
    if all(32 <= c < 127 or c in (9, 10, 13) for c in head[:256]) or _is_utf8_text(head):
        raise InputFileError(path, "a text file, not a PDF or image")
    raise InputFileError(path, "not a PDF or image (unrecognized content)")


def _is_utf8_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        try:  # the cut at 1024 bytes may split a character
            text = head[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return False
    return all(ch.isprintable() or ch in "\t\r\n" for ch in text)


def iter_pages(path: Path, dpi: int = DEFAULT_DPI) -> Iterator[PageImage]:
    """Render every page of one input file once."""
    kind = _sniff(path)
    if kind == "pdf":
        yield from _pdf_pages(path, dpi)
    else:
        yield from _image_pages(path, dpi)


def file_sha256(path: Path) -> str:
    """Content hash of an input file: the key for re-runs and review decisions (names change, bytes don't)."""
    import hashlib

    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def count_pages(path: Path) -> int:
    """Number of pages without rendering them (for progress bars); 1 when it can't tell."""
    import warnings

    try:
        if _sniff(path) == "pdf":
            import pypdfium2 as pdfium

            with PDFIUM_LOCK:
                doc = pdfium.PdfDocument(str(path))
                try:
                    return len(doc)
                finally:
                    doc.close()
        from PIL import Image

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # bomb / corrupt-EXIF warnings: iter_pages reports them
            with Image.open(path) as im:
                return page_frames(im)
    except Exception:
        return 1


def page_frames(im: object) -> int:
    """How many of an image file's frames are pages.

    A multi-page TIFF is one page a frame. Other formats' extra frames are not pages: a phone's
    JPEG carries its HDR gain map or depth map as a second MPO frame (every iPhone photo read as
    two pages before), and an animated GIF/PNG/WebP is one picture.
    """
    n = int(getattr(im, "n_frames", 1) or 1)
    return n if getattr(im, "format", None) == "TIFF" else 1


def _pdf_open_error(path: Path, err: Exception) -> InputFileError:
    """Say why pdfium refused a PDF (its own codes mislead: a zero-page PDF reads as a password error)."""
    msg = str(err).replace("Failed to load document ", "").strip(" .()")
    try:
        data = path.read_bytes()
    except OSError as e:
        return InputFileError(path, f"cannot read: {e.strerror or e}")
    if "password" in msg.lower() and b"/Encrypt" in data:
        return EncryptedPdfError(path, "encrypted PDF (needs a password; an empty one did not open it)")
    if b"%%EOF" not in data[-2048:]:
        return InputFileError(path, f"truncated PDF: no end-of-file marker, an incomplete download? ({msg})")
    if _pages_by_parser(path) == 0:
        return InputFileError(path, "PDF has no pages")
    return InputFileError(path, f"corrupt or unreadable PDF ({msg})")


def _pages_by_parser(path: Path) -> int | None:
    """Page count by a second, pure-Python parser (playa, camelot's); None if it finds no page tree."""
    import logging

    log = logging.getLogger("playa")
    level = log.level
    log.setLevel(logging.CRITICAL)  # it logs every repair attempt on a damaged file to stderr
    try:
        import playa

        with playa.open(path) as doc:
            return len(doc.pages) if "Pages" in doc.catalog else None
    except Exception:
        return None
    finally:
        log.setLevel(level)


def _capped_scale(path: Path, page_no: int, w_pt: float, h_pt: float, dpi: int) -> tuple[float, str | None]:
    """Render scale within MAX_PIXELS, and the warning to report when it had to be lowered."""
    if not (w_pt > 1 and h_pt > 1):  # NaN-safe
        raise InputFileError(path, f"page has no area ({w_pt:g} x {h_pt:g} pt)", page=page_no)
    scale = dpi / 72.0
    want = w_pt * h_pt * scale * scale
    if want <= MAX_PIXELS:
        return scale, None
    # the largest scale whose rendered size, each side rounded up, stays within the cap
    a, b = w_pt * h_pt, w_pt + h_pt
    scale = (-b + (b * b + 4 * a * (MAX_PIXELS - 1)) ** 0.5) / (2 * a)
    size = f"{w_pt / 72:.0f} x {h_pt / 72:.0f} in"
    if scale * 72 < MIN_DPI:
        raise InputFileError(
            path,
            f"page too large ({size}): {want / 1e6:,.0f} MP at {dpi} DPI; the {MAX_PIXELS / 1e6:.0f} MP cap "
            f"would leave {scale * 72:.1f} DPI, below the {MIN_DPI} DPI minimum",
            page=page_no,
        )
    return scale, (
        f"page {page_no} ({size}) rendered at {scale * 72:.0f} DPI instead of {dpi} "
        f"(capped at {MAX_PIXELS / 1e6:.0f} MP)"
    )


def _pdf_pages(path: Path, dpi: int) -> Iterator[PageImage]:
    import pypdfium2 as pdfium

    try:
        with PDFIUM_LOCK:
            doc = pdfium.PdfDocument(str(path))  # no password given: pdfium tries the empty user password
    except pdfium.PdfiumError as e:
        raise _pdf_open_error(path, e) from e
    except OSError as e:
        raise InputFileError(path, f"cannot read: {e.strerror or e}") from e
    try:
        n = len(doc)
        if n == 0:
            raise InputFileError(path, "PDF has no pages")
        for i in range(n):
            PDFIUM_LOCK.acquire()
            try:
                page = doc[i]
                w_pt, h_pt = page.get_size()
                scale, warning = _capped_scale(path, i + 1, w_pt, h_pt, dpi)
                bitmap = page.render(scale=scale, grayscale=False)
                img = bitmap.to_numpy()
                # pdfium renders BGR(x) already: no channel flip. The array is a view of pdfium's
                # buffer: copy it out (dropping an x channel) and free the bitmap here, under the lock
                img = np.ascontiguousarray(img[:, :, :3]) if img.ndim == 3 and img.shape[2] == 4 else img.copy()
                bitmap.close()
                to_px = vector.page_to_pixels(page, scale)
                layer = _text_layer(page, to_px)
                scan_dpi = _page_image_dpi(page, w_pt, h_pt)
                # born-digital: the table's rules are read here, while the page is open (exact, ~ms)
                lines = vector.page_lines(page, to_px) if scan_dpi is None else None
                page.close()  # here, under the lock: not by a finalizer in whichever thread
            except InputFileError:
                raise
            except MemoryError as e:
                raise InputFileError(path, "out of memory rendering the page", page=i + 1) from e
            except Exception as e:  # pdfium errors and whatever a damaged page trips in it
                raise InputFileError(path, f"cannot render ({type(e).__name__}: {e})", page=i + 1) from e
            finally:
                PDFIUM_LOCK.release()
            yield PageImage(
                source=path,
                page_no=i + 1,
                image=img,
                dpi=round(scale * 72),
                text_layer=layer,
                has_page_image=scan_dpi is not None,
                scan_dpi=scan_dpi,
                warnings=[warning] if warning else [],
                vector_lines=lines,
            )
    finally:
        with PDFIUM_LOCK:
            doc.close()


def _text_layer(page: object, to_px: vector.Affine) -> list[TextLine] | None:
    """The PDF layer as one TextLine per character (box in render pixels), or None.

    pdfium's raw calls, not the wrapper's: two boxes for each of ~1000
    characters a page made the wrapper's overhead a visible share of a vector page.
    """
    import ctypes

    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    textpage = page.get_textpage()  # type: ignore[attr-defined]
    try:
        n_chars = textpage.count_chars()
        if n_chars <= 0:
            return None
        chars: list[TextLine] = []
        text = textpage.get_text_range(0, n_chars)
        if len(text) != n_chars:  # pdfium may expand ligatures: fall back to per-char reads
            text = "".join(textpage.get_text_range(i, 1) for i in range(n_chars))
        raw = textpage.raw
        lft, rgt, bot, top = ctypes.c_double(), ctypes.c_double(), ctypes.c_double(), ctypes.c_double()
        loose = pdfium_c.FS_RECTF()
        plain = to_px[1] == 0.0 and to_px[2] == 0.0 and to_px[0] > 0 and to_px[3] < 0  # no rotation
        for i, ch in enumerate(text[:n_chars]):
            if ch in "\r\n" or not ch.strip():
                continue
            # x from the glyph's ink (a full-width 。 sits left in its em box), y from the font
            # box (a “ or 。 stays on its line rather than floating up or down)
            if not (pdfium_c.FPDFText_GetCharBox(raw, i, lft, rgt, bot, top)
                    and pdfium_c.FPDFText_GetLooseCharBox(raw, i, loose)):
                raise pdfium.PdfiumError("Failed to get charbox.")
            if plain:
                sx, sy, ex, ey = to_px[0], to_px[3], to_px[4], to_px[5]
                bbox = (int(lft.value * sx + ex), int(loose.top * sy + ey),
                        int(np.ceil(rgt.value * sx + ex)), int(np.ceil(loose.bottom * sy + ey)))
            else:  # a /Rotate page: along the line from the ink box, across it from the font box
                x0, y0, x1, y1 = vector.box_to_pixels(to_px, lft.value, loose.bottom, rgt.value, loose.top)
                bbox = (int(x0), int(y0), int(np.ceil(x1)), int(np.ceil(y1)))
            chars.append(TextLine(text=ch, bbox=bbox, score=1.0))
        return chars or None
    finally:
        textpage.close()


def _page_image_dpi(page: object, w_pt: float, h_pt: float) -> float | None:
    """The resolution of an image covering most of the page (a scanned page), or None (born-digital).

    Raw pdfium calls over the page's objects (forms entered two levels deep), as
    `page.get_objects(max_depth=2)` would walk them without wrapping each object.
    """
    import pypdfium2.raw as pdfium_c

    def walk(objs: list[object], depth: int) -> float | None:
        for o in objs:
            t = pdfium_c.FPDFPageObj_GetType(o)
            if t == pdfium_c.FPDF_PAGEOBJ_IMAGE:
                dpi = _image_dpi(o, w_pt, h_pt)
                if dpi is not None:
                    return dpi
            elif t == pdfium_c.FPDF_PAGEOBJ_FORM and depth < 2:
                inner = [pdfium_c.FPDFFormObj_GetObject(o, i) for i in range(pdfium_c.FPDFFormObj_CountObjects(o))]
                dpi = walk(inner, depth + 1)
                if dpi is not None:
                    return dpi
        return None

    raw = page.raw  # type: ignore[attr-defined]
    return walk([pdfium_c.FPDFPage_GetObject(raw, i) for i in range(pdfium_c.FPDFPage_CountObjects(raw))], 0)


def _image_dpi(obj: object, w_pt: float, h_pt: float) -> float | None:
    """The resolution of an image object if it covers at least half the page, else None."""
    import ctypes

    import pypdfium2.raw as pdfium_c

    left, bottom, right, top = ctypes.c_float(), ctypes.c_float(), ctypes.c_float(), ctypes.c_float()
    if not pdfium_c.FPDFPageObj_GetBounds(obj, left, bottom, right, top):
        return None
    w, h = right.value - left.value, top.value - bottom.value
    if w * h < 0.5 * w_pt * h_pt:
        return None
    px_w, px_h = ctypes.c_uint(), ctypes.c_uint()
    if not pdfium_c.FPDFImageObj_GetImagePixelSize(obj, px_w, px_h):
        return 0.0  # a damaged image object: a scan all the same, resolution unknown
    side = max(w, h) / 72.0
    return round(max(px_w.value, px_h.value) / side, 1) if side > 0 else 0.0


def _image_pages(path: Path, dpi: int) -> Iterator[PageImage]:
    import warnings

    from PIL import Image, UnidentifiedImageError

    # Pillow warns on odd files (corrupt EXIF, large images); what matters is raised or reported below
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            im = Image.open(path)
        except Image.DecompressionBombError as e:  # Pillow's own guard, on the header's claimed size
            import re

            m = re.search(r"\((\d+) pixels\)", str(e))
            claimed = f"{int(m.group(1)) / 1e6:,.0f} MP claimed, " if m else ""
            raise InputFileError(
                path, f"image too large: {claimed}over the limit (decompression-bomb guard); refused"
            ) from e
        except UnidentifiedImageError as e:
            raise InputFileError(path, "not a readable image (damaged header)") from e
        except OSError as e:
            raise InputFileError(path, f"cannot open image ({e})") from e
        with im:
            fmt = im.format or "image"
            try:
                n = page_frames(im)
            except Exception as e:  # a damaged multi-page TIFF fails while counting its frames
                raise InputFileError(path, f"damaged {fmt}: cannot count its pages ({type(e).__name__}: {e})") from e
            for i in range(n):
                try:
                    im.seek(i)
                    page, src_dpi, warning = _decode_frame(path, im, i + 1, dpi)
                except InputFileError:
                    raise
                except MemoryError as e:
                    raise InputFileError(path, f"out of memory decoding the {fmt}", page=i + 1) from e
                except Exception as e:  # Pillow raises OSError, SyntaxError, ValueError, struct.error ...
                    raise InputFileError(
                        path, f"cannot decode {fmt} ({type(e).__name__}: {e})", page=i + 1
                    ) from e
                yield PageImage(
                    source=path, page_no=i + 1, image=page, dpi=src_dpi, warnings=[warning] if warning else [],
                    scan_dpi=float(src_dpi),
                )


def _decode_frame(path: Path, im: object, page_no: int, dpi: int) -> tuple[np.ndarray, int, str | None]:
    """One frame as a uint8 grey/BGR array within MAX_PIXELS, its DPI, and a warning if it was scaled."""
    from PIL import Image, ImageOps

    frame: Image.Image = im  # type: ignore[assignment]
    w, h = frame.size
    if w < 1 or h < 1:
        raise InputFileError(path, f"image has no pixels ({w} x {h})", page=page_no)
    if w * h > REFUSE_PIXELS:  # checked on the header, before a byte is decoded
        raise InputFileError(
            path,
            f"image too large: {w} x {h} px ({w * h / 1e6:,.0f} MP) is above the {REFUSE_PIXELS / 1e6:.0f} MP "
            "limit (decompression-bomb guard); refused",
            page=page_no,
        )
    try:
        src_dpi = float(frame.info.get("dpi", (dpi, dpi))[0] or dpi)
    except (TypeError, ValueError, IndexError):
        src_dpi = float(dpi)
    if not 10 <= src_dpi <= 5000:  # a nonsense resolution tag: assume the render DPI
        src_dpi = float(dpi)
    f = min(1.0, (MAX_PIXELS / (w * h)) ** 0.5)
    if f < 1.0 and frame.format == "JPEG":
        frame.draft(frame.mode, (int(w * f) + 1, int(h * f) + 1))  # JPEG decodes at 1/2, 1/4, 1/8 directly
        src_dpi *= frame.size[0] / w
    frame = ImageOps.exif_transpose(frame) if page_no == 1 else frame.copy()
    frame = _to_8bit(frame)  # type: ignore[assignment]
    warning = None
    if frame.width * frame.height > MAX_PIXELS:
        f = (MAX_PIXELS / (frame.width * frame.height)) ** 0.5
        frame = frame.resize((max(1, int(frame.width * f)), max(1, int(frame.height * f))))
        src_dpi *= f
    if (frame.width, frame.height) not in ((w, h), (h, w)):
        warning = (
            f"page {page_no}: image {w} x {h} px scaled to {frame.width} x {frame.height} "
            f"(capped at {MAX_PIXELS / 1e6:.0f} MP)"
        )
    arr = np.asarray(frame)
    img = np.ascontiguousarray(arr[:, :, ::-1]) if arr.ndim == 3 else arr
    return img, int(round(src_dpi)), warning


def _to_8bit(frame: object) -> object:
    """Any PIL mode (1-bit, palette, CMYK, 16-bit, alpha) -> 8-bit L or RGB."""
    from PIL import Image

    im: Image.Image = frame  # type: ignore[assignment]
    if im.mode in ("L", "RGB"):
        return im
    if im.mode.startswith("I") or im.mode == "F":  # 16/32-bit grey, float
        arr = np.nan_to_num(np.asarray(im, dtype=np.float64))
        arr -= min(0.0, float(arr.min()))
        hi = float(arr.max()) or 1.0
        return Image.fromarray((arr / hi * 255).astype(np.uint8), "L")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    if im.mode == "1":
        return im.convert("L")
    return im.convert("RGB")
