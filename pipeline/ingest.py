"""Ingest: input files -> PageImage, each page rendered once.

PDFs are rendered with pypdfium2 (no system dependencies); PNG / JPEG /
TIFF (multi-page) are read with Pillow. A PDF page's text layer is kept with
character boxes scaled to the render DPI, so later stages can decide whether
to trust it without opening the file again.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .errors import EncryptedPdfError, InputFileError
from .types import PageImage, TextLine

DEFAULT_DPI = 200  # measured: OCR accuracy on the dev scans does not improve above it, time does
PDF_SUFFIXES = {".pdf"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"}
SUPPORTED_SUFFIXES = PDF_SUFFIXES | IMAGE_SUFFIXES
MAX_PIXELS = 80_000_000  # a page above this is scaled down rather than exhausting memory


def find_inputs(paths: list[Path]) -> list[Path]:
    """Input files under the given files/folders (recursive), sorted, supported suffixes only."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in SUPPORTED_SUFFIXES)
        else:
            out.append(p)
    return out


def _sniff(path: Path) -> str:
    """'pdf' or 'image' by content (not by name: archives hold misnamed files)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(16)
    except PermissionError as e:
        raise InputFileError(path, "permission denied") from e
    except OSError as e:
        raise InputFileError(path, f"cannot read: {e.strerror or e}") from e
    if not head:
        raise InputFileError(path, "empty file")
    if head.startswith(b"%PDF") or b"%PDF" in head:
        return "pdf"
    if head.startswith((b"\x89PNG", b"\xff\xd8", b"II*\x00", b"MM\x00*", b"BM")):
        return "image"
    raise InputFileError(path, "not a PDF or image (unrecognized content)")


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
    """Number of pages without rendering them (for progress bars)."""
    try:
        if _sniff(path) == "pdf":
            import pypdfium2 as pdfium

            doc = pdfium.PdfDocument(str(path))
            try:
                return len(doc)
            finally:
                doc.close()
        from PIL import Image

        with Image.open(path) as im:
            return getattr(im, "n_frames", 1)
    except Exception:
        return 1


def _pdf_pages(path: Path, dpi: int) -> Iterator[PageImage]:
    import pypdfium2 as pdfium

    try:
        doc = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as e:
        msg = str(e)
        if "password" in msg.lower():
            raise EncryptedPdfError(path, "encrypted PDF (needs a password)") from e
        raise InputFileError(path, f"corrupt or unreadable PDF ({msg})") from e
    try:
        n = len(doc)
        if n == 0:
            raise InputFileError(path, "PDF has no pages")
        for i in range(n):
            try:
                page = doc[i]
                w_pt, h_pt = page.get_size()
                scale = dpi / 72.0
                if w_pt * h_pt * scale * scale > MAX_PIXELS:
                    scale = (MAX_PIXELS / (w_pt * h_pt)) ** 0.5
                bitmap = page.render(scale=scale, grayscale=False)
                img = bitmap.to_numpy()
                if img.ndim == 3 and img.shape[2] == 4:
                    img = img[:, :, :3]
                img = np.ascontiguousarray(img[:, :, ::-1]) if img.ndim == 3 else img  # RGB -> BGR
                layer = _text_layer(page, scale, h_pt)
                scanned = _has_page_image(page, w_pt, h_pt)
            except pdfium.PdfiumError as e:
                raise InputFileError(path, f"cannot render ({e})", page=i + 1) from e
            yield PageImage(
                source=path, page_no=i + 1, image=img, dpi=round(scale * 72), text_layer=layer, has_page_image=scanned
            )
    finally:
        doc.close()


def _text_layer(page: object, scale: float, h_pt: float) -> list[TextLine] | None:
    """The PDF layer as one TextLine per character (box at the render scale), or None."""
    textpage = page.get_textpage()  # type: ignore[attr-defined]
    try:
        n_chars = textpage.count_chars()
        if n_chars <= 0:
            return None
        chars: list[TextLine] = []
        text = textpage.get_text_range(0, n_chars)
        if len(text) != n_chars:  # pdfium may expand ligatures: fall back to per-char reads
            text = "".join(textpage.get_text_range(i, 1) for i in range(n_chars))
        for i, ch in enumerate(text[:n_chars]):
            if ch in "\r\n" or not ch.strip():
                continue
            # x from the glyph's ink (a full-width 。 sits left in its em box), y from the font
            # box (a “ or 。 stays on its line rather than floating up or down)
            left, _, right, _ = textpage.get_charbox(i)
            _, bottom, _, top = textpage.get_charbox(i, loose=True)
            bbox = (int(left * scale), int((h_pt - top) * scale), int(np.ceil(right * scale)), int(np.ceil((h_pt - bottom) * scale)))
            chars.append(TextLine(text=ch, bbox=bbox, score=1.0))
        return chars or None
    finally:
        textpage.close()


def _has_page_image(page: object, w_pt: float, h_pt: float) -> bool:
    """True when an image object covers most of the page (a scanned page)."""
    import pypdfium2.raw as pdfium_c

    for obj in page.get_objects(max_depth=2):  # type: ignore[attr-defined]
        if obj.type != pdfium_c.FPDF_PAGEOBJ_IMAGE:
            continue
        left, bottom, right, top = obj.get_bounds()
        if (right - left) * (top - bottom) >= 0.5 * w_pt * h_pt:
            return True
    return False


def _image_pages(path: Path, dpi: int) -> Iterator[PageImage]:
    from PIL import Image, ImageOps, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = None  # we cap the size ourselves below, with a clear message
    try:
        im = Image.open(path)
    except UnidentifiedImageError as e:
        raise InputFileError(path, "not a readable image") from e
    except OSError as e:
        raise InputFileError(path, f"cannot open image ({e})") from e
    with im:
        n = getattr(im, "n_frames", 1)
        for i in range(n):
            try:
                im.seek(i)
                frame = ImageOps.exif_transpose(im) if i == 0 else im.copy()
                src_dpi = frame.info.get("dpi", (dpi, dpi))[0] or dpi
                frame = _to_8bit(frame)
                if frame.width * frame.height > MAX_PIXELS:
                    f = (MAX_PIXELS / (frame.width * frame.height)) ** 0.5
                    frame = frame.resize((int(frame.width * f), int(frame.height * f)))
                    src_dpi = src_dpi * f
                arr = np.asarray(frame)
            except (OSError, ValueError) as e:
                raise InputFileError(path, f"cannot decode image ({e})", page=i + 1) from e
            img = np.ascontiguousarray(arr[:, :, ::-1]) if arr.ndim == 3 else arr
            yield PageImage(source=path, page_no=i + 1, image=img, dpi=int(round(float(src_dpi))))


def _to_8bit(frame: object) -> object:
    """Any PIL mode (1-bit, palette, CMYK, 16-bit, alpha) -> 8-bit L or RGB."""
    from PIL import Image

    im: Image.Image = frame  # type: ignore[assignment]
    if im.mode in ("L", "RGB"):
        return im
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float64)
        hi = arr.max() or 1.0
        return Image.fromarray((arr / hi * 255).astype(np.uint8), "L")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    if im.mode == "1":
        return im.convert("L")
    return im.convert("RGB")
