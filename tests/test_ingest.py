"""Ingest: every supported input kind renders to pages; bad input gets a clear, typed error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline import ingest
from pipeline.errors import InputFileError

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
        (b"%PDF-1.4\n1 0 obj garbage", "corrupt or unreadable PDF"),
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
