"""Ingest: every supported input kind renders to pages; bad input gets a clear, typed error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline import ingest
from pipeline.errors import EncryptedPdfError, InputFileError

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
DEV = SHARED / "corpus" / "dev"


def _page(w: int = 400, h: int = 560) -> np.ndarray:
    img = np.full((h, w), 255, np.uint8)
    img[100:102, 50:350] = 0
    return img


def test_png_and_dpi(tmp_path: Path) -> None:
    f = tmp_path / "a.png"
    Image.fromarray(_page()).save(f, dpi=(150, 150))
    pages = list(ingest.iter_pages(f))
    assert len(pages) == 1
    assert pages[0].page_no == 1 and pages[0].dpi == 150
    assert pages[0].image.shape == (560, 400)


@pytest.mark.parametrize("mode", ["1", "P", "CMYK", "I;16", "RGBA", "LA"])
def test_image_modes_become_8bit(tmp_path: Path, mode: str) -> None:
    base = Image.fromarray(_page())
    im = base.convert(mode) if mode != "I;16" else Image.fromarray(_page().astype(np.uint16) * 257)
    suffix = ".tif" if mode in ("CMYK", "I;16", "1") else ".png"
    f = tmp_path / f"a{suffix}"
    im.save(f)
    (page,) = list(ingest.iter_pages(f))
    assert page.image.dtype == np.uint8
    grey = page.image if page.image.ndim == 2 else page.image.mean(axis=2)
    assert grey[101, 200] < 60 and grey[300, 200] > 200  # the rule is dark, the paper light


def test_multipage_tiff(tmp_path: Path) -> None:
    f = tmp_path / "m.tif"
    frames = [Image.fromarray(_page()).convert("1") for _ in range(3)]
    frames[0].save(f, save_all=True, append_images=frames[1:], compression="group4")
    pages = list(ingest.iter_pages(f))
    assert [p.page_no for p in pages] == [1, 2, 3]


def test_phone_jpeg_with_gain_map_frame_is_one_page(tmp_path: Path) -> None:
    # an iPhone JPEG is an MPO: the photo, then its HDR gain map (smaller, another picture)
    f = tmp_path / "IMG_0001.jpg"
    photo = Image.fromarray(_page()).convert("RGB")
    gain_map = Image.new("RGB", (200, 280), (90, 90, 90))
    photo.save(f, format="MPO", save_all=True, append_images=[gain_map])
    with Image.open(f) as im:
        assert im.format == "MPO" and im.n_frames == 2  # the file really has the second frame
    pages = list(ingest.iter_pages(f))
    assert [p.page_no for p in pages] == [1]
    assert pages[0].image.shape[:2] == (560, 400)
    assert ingest.count_pages(f) == 1


def test_exif_rotation_applied(tmp_path: Path) -> None:
    f = tmp_path / "r.jpg"
    im = Image.fromarray(_page(400, 200)).convert("RGB")
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 CW on display
    im.save(f, exif=exif)
    (page,) = list(ingest.iter_pages(f))
    assert page.image.shape[:2] == (400, 200)


@pytest.mark.parametrize(
    "content,reason",
    [
        (b"", "empty file"),
        (b"hello, this is not a pdf at all", "not a PDF or image"),
        (b"%PDF-1.4\n1 0 obj garbage", "truncated PDF"),
        (b"%PDF-1.4\n" + bytes(range(256)) * 8 + b"\n%%EOF\n", "corrupt or unreadable PDF"),
        (b"<!DOCTYPE html><html><body>502 Bad Gateway</body></html>", "HTML/XML page"),
        (b"PK\x03\x04\x14\x00\x06\x00" + b"\x00" * 40, "ZIP archive"),
        (b"GIF89a\x01\x00\x01\x00" + b"\x00" * 20, "GIF image: format not supported"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 20, "WebP/AVIF/HEIC image: format not supported"),
        ("会议纪要\n请见附件。\n".encode() * 10, "a text file"),
        (bytes(range(256)), "unrecognized content"),
    ],
)
def test_bad_bytes_named_error(tmp_path: Path, content: bytes, reason: str) -> None:
    f = tmp_path / "bad.pdf"
    f.write_bytes(content)
    with pytest.raises(InputFileError) as ei:
        list(ingest.iter_pages(f))
    assert reason in str(ei.value)
    assert "bad.pdf" in str(ei.value)


def test_find_inputs_recursive(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    for name in ["a.pdf", "sub/b.PNG", "sub/c.txt", "d.tif"]:
        (tmp_path / name).write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in ingest.find_inputs([tmp_path])]
    assert found == ["a.pdf", "d.tif", "sub/b.PNG"]


@pytest.mark.skipif(not DEV.exists(), reason="shared dev corpus not present")
def test_pdf_render_and_text_layer() -> None:
    pages = list(ingest.iter_pages(DEV / "d001.pdf", dpi=100))
    assert len(pages) == 4
    p = pages[0]
    assert p.dpi == 100 and p.image.ndim == 3
    assert abs(p.image.shape[1] - 595 * 100 / 72) < 2  # A4 width at 100 DPI
    text = "".join(t.text for t in p.text_layer or [])
    assert "项目名称" in text
    scanned = next(ingest.iter_pages(DEV / "d006.pdf", dpi=100))
    assert scanned.text_layer is None


# --- bad input: every case names the file, the page where there is one, and the reason ---------

RAW = Path(__file__).resolve().parents[1] / "data" / "raw"


def _minimal_pdf(media_box: str = "0 0 595 842", n_pages: int = 1) -> bytes:
    return load_bench().minimal_pdf(media_box, n_pages)


def load_bench() -> object:
    """bench/bad_inputs.py as a module (its file builders are shared with the tests)."""
    import importlib.util
    import sys

    if "bad_inputs" not in sys.modules:
        spec = importlib.util.spec_from_file_location("bad_inputs", RAW.parents[1] / "bench" / "bad_inputs.py")
        assert spec and spec.loader
        mod = importlib.util.module_from_spec(spec)
        sys.modules["bad_inputs"] = mod  # dataclasses look their module up there
        spec.loader.exec_module(mod)
    return sys.modules["bad_inputs"]


def _encrypted(src: Path, user_password: str) -> bytes:
    import io

    from pypdf import PdfWriter

    w = PdfWriter(clone_from=str(src))
    w.encrypt(user_password=user_password, owner_password="owner", algorithm="RC4-128")
    buf = io.BytesIO()
    w.write(buf)
    return buf.getvalue()


def _error(f: Path, dpi: int = 50) -> InputFileError:
    with pytest.raises(InputFileError) as ei:
        list(ingest.iter_pages(f, dpi=dpi))
    assert f.name in str(ei.value)
    return ei.value


def test_zero_page_pdf(tmp_path: Path) -> None:
    f = tmp_path / "zero.pdf"
    f.write_bytes(_minimal_pdf(n_pages=0))
    assert _error(f).reason == "PDF has no pages"


def test_truncated_pdf(tmp_path: Path) -> None:
    f = tmp_path / "cut.pdf"
    data = (RAW / "d030.pdf").read_bytes()
    f.write_bytes(data[: len(data) * 2 // 3])
    assert _error(f).reason.startswith("truncated PDF")


def test_encrypted_pdf_with_password_is_reported(tmp_path: Path) -> None:
    f = tmp_path / "locked.pdf"
    f.write_bytes(_encrypted(RAW / "d030.pdf", "secret"))
    e = _error(f)
    assert isinstance(e, EncryptedPdfError) and "encrypted PDF" in e.reason


def test_encrypted_pdf_with_empty_user_password_opens(tmp_path: Path) -> None:
    f = tmp_path / "owner_only.pdf"
    f.write_bytes(_encrypted(RAW / "d030.pdf", ""))
    plain = next(ingest.iter_pages(RAW / "d030.pdf", dpi=50))
    (page,) = list(ingest.iter_pages(f, dpi=50))
    assert page.image.shape == plain.image.shape
    assert np.abs(page.image.astype(int) - plain.image.astype(int)).mean() < 1  # the same page, decrypted


def test_absurd_pdf_page_size_refused_with_page(tmp_path: Path) -> None:
    f = tmp_path / "poster.pdf"
    f.write_bytes(_minimal_pdf("0 0 14400 14400"))  # 200 x 200 in: below MIN_DPI within the cap
    e = _error(f, dpi=200)
    assert e.page == 1 and "page too large" in e.reason and "DPI minimum" in e.reason


def test_page_without_area(tmp_path: Path) -> None:
    f = tmp_path / "dot.pdf"
    f.write_bytes(_minimal_pdf("0 0 0.5 0.5"))
    e = _error(f)
    assert e.page == 1 and "no area" in e.reason


def test_large_pdf_page_rendered_at_capped_dpi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest, "MAX_PIXELS", 1_000_000)
    f = tmp_path / "a4.pdf"
    f.write_bytes(_minimal_pdf("0 0 595 842"))
    (page,) = list(ingest.iter_pages(f, dpi=200))  # A4 at 200 DPI is 3.9 MP
    h, w = page.image.shape[:2]
    assert w * h <= 1_000_000 and page.dpi < 200
    assert abs(w - 595 * page.dpi / 72) < 3
    assert page.warnings and "instead of 200" in page.warnings[0] and "capped" in page.warnings[0]


def test_large_image_scaled_with_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest, "MAX_PIXELS", 50_000)
    f = tmp_path / "big.png"
    Image.fromarray(_page()).save(f, dpi=(300, 300))  # 224,000 px
    (page,) = list(ingest.iter_pages(f))
    h, w = page.image.shape[:2]
    assert w * h <= 50_000 and page.dpi < 300
    assert "400 x 560" in page.warnings[0] and "scaled" in page.warnings[0]


def test_normal_image_has_no_warning(tmp_path: Path) -> None:
    f = tmp_path / "a.png"
    Image.fromarray(_page()).save(f)
    assert next(ingest.iter_pages(f)).warnings == []


def test_decompression_bomb_is_a_clean_error(tmp_path: Path) -> None:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    f = tmp_path / "bomb.png"  # 40000 x 40000 claimed in ~100 bytes: Pillow's DecompressionBombError
    ihdr = struct.pack(">IIBBBBB", 40_000, 40_000, 8, 0, 0, 0, 0)
    f.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 99)))
    assert _error(f).reason == "image too large: 1,600 MP claimed, over the limit (decompression-bomb guard); refused"
    assert ingest.count_pages(f) == 1  # the progress count does not blow up either


def test_image_above_refuse_limit_refused_before_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest, "REFUSE_PIXELS", 100_000)  # below Pillow's own bomb limit: our check
    f = tmp_path / "m.tif"
    frames = [Image.fromarray(_page(200, 200)), Image.fromarray(_page(400, 560))]
    frames[0].save(f, save_all=True, append_images=frames[1:])
    e = _error(f)
    assert e.page == 2 and "image too large: 400 x 560 px" in e.reason


def test_bad_second_tiff_page_names_the_page(tmp_path: Path) -> None:
    f = tmp_path / "two.tif"
    frames = [Image.fromarray(_page()), Image.fromarray(_page())]
    frames[0].save(f, save_all=True, append_images=frames[1:])
    f.write_bytes(f.read_bytes()[:-5000])
    pages = ingest.iter_pages(f)
    assert next(pages).page_no == 1
    with pytest.raises(InputFileError) as ei:
        next(pages)
    assert ei.value.page == 2 and "cannot decode TIFF" in ei.value.reason


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_image(tmp_path: Path, fmt: str) -> None:
    f = tmp_path / f"cut.{fmt.lower()}"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 300), np.uint8)).save(f, format=fmt)
    f.write_bytes(f.read_bytes()[:2000])
    e = _error(f)
    assert fmt in e.reason and e.page == 1


@pytest.mark.parametrize("mode", ["F", "I", "P-transparent"])
def test_more_image_modes(tmp_path: Path, mode: str) -> None:
    base = _page()
    if mode == "F":
        im = Image.fromarray(base.astype(np.float32) / 255.0)
    elif mode == "I":
        im = Image.fromarray(base.astype(np.int32) * 1000)
    else:
        im = Image.fromarray(base).convert("P")
    f = tmp_path / ("a.tif" if mode in ("F", "I") else "a.png")
    im.save(f, **({"transparency": im.getpixel((0, 0))} if mode.startswith("P") else {}))
    (page,) = list(ingest.iter_pages(f))
    grey = page.image if page.image.ndim == 2 else page.image.mean(axis=2)
    assert page.image.dtype == np.uint8 and grey[101, 200] < 60 and grey[300, 200] > 200


def _unprivileged() -> object:
    """Context: drop to `nobody` for the block when root (permission bits do not stop root)."""
    import contextlib
    import os

    @contextlib.contextmanager
    def ctx():  # type: ignore[no-untyped-def]
        if os.geteuid() != 0:
            yield
            return
        os.setegid(65534)
        os.seteuid(65534)
        try:
            yield
        finally:
            os.seteuid(0)
            os.setegid(0)

    return ctx()


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A temp folder others may enter (pytest's tmp_path sits in a folder private to its user)."""
    import shutil
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="scanforms-test-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_unreadable_file(public_dir: Path) -> None:
    tmp_path = public_dir
    f = tmp_path / "locked.pdf"
    f.write_bytes((RAW / "d030.pdf").read_bytes())
    f.chmod(0)
    with _unprivileged():  # type: ignore[attr-defined]
        e = _error(f)
        assert ingest.count_pages(f) == 1
    assert e.reason == "cannot read: permission denied"


def test_dangling_link_and_folder_are_listed_and_reported(tmp_path: Path) -> None:
    (tmp_path / "gone.pdf").symlink_to(tmp_path / "missing.pdf")
    (tmp_path / "folder.pdf").mkdir()
    found = ingest.find_inputs([tmp_path])
    assert [p.name for p in found] == ["gone.pdf"]  # the link is not silently skipped
    assert _error(tmp_path / "gone.pdf").reason == "cannot read: broken symbolic link"
    assert _error(tmp_path / "folder.pdf").reason == "is a folder, not a file"


def test_large_rotated_jpeg_decoded_small_and_upright(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest, "MAX_PIXELS", 50_000)
    f = tmp_path / "photo.jpg"
    im = Image.fromarray(_page(560, 400)).convert("RGB")  # landscape as stored
    exif = im.getexif()
    exif[0x0112] = 6  # shown turned 90° clockwise: portrait
    im.save(f, exif=exif, dpi=(300, 300))
    (page,) = list(ingest.iter_pages(f))
    h, w = page.image.shape[:2]
    assert h > w and w * h <= 50_000
    assert abs(page.dpi - 300 * w / 400) <= 2  # the DPI follows the scaling (draft, then resize)
    assert "560 x 400" in page.warnings[0]


def test_unlistable_folder_is_reported(public_dir: Path) -> None:
    tmp_path = public_dir
    (tmp_path / "a.pdf").write_bytes(b"%PDF-1.4")
    shut = tmp_path / "private"
    shut.mkdir()
    (shut / "b.pdf").write_bytes(b"%PDF-1.4")
    shut.chmod(0)
    try:
        with _unprivileged():  # type: ignore[attr-defined]
            found = ingest.find_inputs([tmp_path])
            assert found == [tmp_path / "a.pdf", shut]  # the folder stands in for what it hides
            e = _error(shut)
    finally:
        shut.chmod(0o755)
    assert e.reason == "cannot list folder: permission denied"

