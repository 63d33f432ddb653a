"""Preprocess: orientation, skew (sign and size), background and binary on generated pages."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline import preprocess as pp
from pipeline.engines import OcrEngine
from pipeline.types import PageImage

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
DEV = SHARED / "corpus" / "dev"


# The stage's steps one at a time, as `prepare` chains them (measured here on their own).


def estimate_skew(image: np.ndarray) -> float:
    """Skew of an upright page (grey, colour or ink = 255 binary): coarse search, then refined."""
    binary = pp._as_binary(image)
    return pp._fine_skew(binary, pp._coarse_skew(binary))


def detect_orientation(grey: np.ndarray, engine: OcrEngine | None = None) -> int:
    """Clockwise turn (0/90/180/270) that makes the page upright."""
    binary = pp.binarize(pp.normalize_background(grey))
    return pp._orientation(grey, binary, pp._coarse_skew(binary), engine)


def despeckle(grey: np.ndarray) -> tuple[np.ndarray, int]:
    """The page with its speckle dots painted over, and how many there were."""
    mask = pp.find_specks(grey)
    if mask is None:
        return grey, 0
    return pp._paint_specks(grey, mask), cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)[0] - 1


def _form(w: int = 1000, h: int = 1414, seed: int = 0, rules: bool = True) -> np.ndarray:
    """A white A4-shaped page: title, a ruled table, and rows of 'characters' (ink blocks).

    Content starts near the top and stops above the bottom, like a form page.
    Without `rules` the glyphs are round, so nothing on the page is a long straight line.
    """
    rng = np.random.default_rng(seed)
    img = np.full((h, w), 255, np.uint8)
    x0, x1 = int(0.08 * w), int(0.92 * w)
    cv2.putText(img, "PERFORMANCE SELF EVALUATION 2019", (int(0.2 * w), int(0.06 * h)),
                cv2.FONT_HERSHEY_SIMPLEX, 1.0, 0, 2)
    ys = list(range(int(0.09 * h), int(0.75 * h), 52))
    cols = [x0, x0 + int(0.18 * w), x0 + int(0.5 * w), x1]
    if rules:
        for y in ys:
            cv2.line(img, (x0, y), (x1, y), 0, 2)
        for x in cols:
            cv2.line(img, (x, ys[0]), (x, ys[-1]), 0, 2)
    # text lines: 11 px glyph blocks 2 px apart, lines 12+ px apart (like CJK body text)
    for ya, yb in zip(ys[:-1], ys[1:], strict=True):
        for ca, cb in zip(cols[:-1], cols[1:], strict=True):
            for ty in range(ya + 9, yb - 16, 22):
                n = int(rng.integers(3, max(4, (cb - ca - 16) // 13)))
                for k in range(n):
                    gx = ca + 8 + 13 * k
                    if rules:
                        cv2.rectangle(img, (gx, ty), (gx + 10, ty + 10), 0, 1)
                        cv2.line(img, (gx + 2, ty + 5), (gx + 8, ty + 5), 0, 1)
                    else:
                        cv2.circle(img, (gx + 5, ty + 5), 4, 0, 2)
    return img


@pytest.fixture(scope="module")
def form() -> np.ndarray:
    return _form()


# --- skew ---


def test_skew_sign_convention() -> None:
    """A rule rising to the right (screen y falls with x) is a counter-clockwise, positive skew."""
    img = np.full((800, 1000), 255, np.uint8)
    for y in range(200, 700, 60):
        cv2.line(img, (100, y), (900, y - int(800 * np.tan(np.radians(3)))), 0, 2)
    assert estimate_skew(img) == pytest.approx(3.0, abs=0.1)


@pytest.mark.parametrize("angle", [-7.0, -2.5, 0.3, 4.0, 9.0])
def test_estimate_skew_within_a_tenth(form: np.ndarray, angle: float) -> None:
    skewed = pp.rotate_bound(form, angle)
    assert estimate_skew(skewed) == pytest.approx(angle, abs=0.1)


def test_estimate_skew_accepts_binary(form: np.ndarray) -> None:
    binary = pp.binarize(pp.normalize_background(pp.rotate_bound(form, -4.0)))
    assert estimate_skew(binary) == pytest.approx(-4.0, abs=0.1)


def test_skew_without_rulings() -> None:
    """Text lines alone (no straight lines at all) still give the angle, through the profiles."""
    img = _form(rules=False)
    for angle in (-3.0, 2.0):
        assert estimate_skew(pp.rotate_bound(img, angle)) == pytest.approx(angle, abs=0.15)


def test_rotate_bound_keeps_every_pixel() -> None:
    img = np.full((300, 200), 255, np.uint8)
    img[:4, :4] = img[-4:, -4:] = img[:4, -4:] = img[-4:, :4] = 0  # ink in the corners
    out = pp.rotate_bound(img, 30.0)
    assert out.shape == (int(np.ceil(300 * 0.866 + 200 * 0.5)), int(np.ceil(300 * 0.5 + 200 * 0.866)))
    assert (out < 128).sum() == pytest.approx(64, rel=0.3)


def test_deskew_levels_the_page(form: np.ndarray) -> None:
    level = pp.deskew(pp.rotate_bound(form, 5.0), 5.0)
    assert abs(estimate_skew(level)) < 0.1
    # canvas grows by the rotation only, filled with white paper
    assert level.shape[0] < form.shape[0] * 1.25 and level.shape[1] < form.shape[1] * 1.25
    assert level[0, 0] == 255 and level[-1, -1] == 255


def test_tiny_skew_is_not_applied(form: np.ndarray) -> None:
    assert pp.deskew(form, 0.001) is form


# --- pixels ---


def test_to_grey_pales_coloured_seal() -> None:
    img = np.full((100, 100, 3), 255, np.uint8)
    img[10:20, 10:90] = (0, 0, 0)  # black ink
    cv2.circle(img, (50, 60), 25, (40, 40, 220), 4)  # red seal (BGR)
    g = pp.to_grey(img)
    assert g.shape == (100, 100) and g.dtype == np.uint8
    assert g[15, 50] < 30
    assert g[60, 25:27].min() > 200  # the seal ring is near paper white


def test_to_grey_takes_a_printed_seal_to_paper_but_not_the_ink_under_it_or_fringes() -> None:
    # a seal's red (R 214, G 94, B 101: 75 % red ink on white) is pale in the brightest channel,
    # and its ring then reads as a rule: it goes to the paper around it. Text the seal lies over
    # is dark red and stays ink, as do the one-pixel red fringes a colour scan leaves along black
    # strokes. A page-sized image: the paper is looked for a stroke's width around
    img = np.full((800, 800, 3), 235, np.uint8)  # grey paper
    img[10:20, 10:110] = (0, 0, 0)  # black ink
    img[9, 10:110] = (120, 120, 200)  # its fringe: red, a pixel high
    cv2.circle(img, (60, 70), 35, (101, 94, 214), 5)  # the seal's ring (BGR)
    img[66:74, 20:100] = (25, 20, 100)  # text under the seal, dark red
    g = pp.to_grey(img)
    assert g[70, 25] < 110 and g[70, 50] < 110  # text under the ring and inside it stays ink
    ring = np.r_[g[104:107, 55:65].ravel(), g[33:38, 55:65].ravel()]
    assert ring.min() >= 225 and ring.max() <= 235  # the ring is paper, as grey as the rest
    assert g[15, 50] < 30
    assert g[9, 50] == 200  # the fringe is left as it was (the brightest channel)


def test_normalize_background_removes_shadow_band(form: np.ndarray) -> None:
    shade = np.linspace(0.45, 1.0, form.shape[1], dtype=np.float32)[None, :]
    dim = (form.astype(np.float32) * 0.85 * shade).astype(np.uint8)  # grey paper + gradient
    out = pp.normalize_background(dim)
    paper = out[form == 255]
    assert np.percentile(paper, 5) > 235
    assert np.median(out[form == 0]) < 80  # ink stays dark


def test_normalize_background_sharp_shadow_edge_is_no_rule(form: np.ndarray) -> None:
    """A shadow with a sharp edge (a darker paper rectangle) leaves no line for grid to find."""
    dim = form.copy()
    dim[200:, 150:] = (dim[200:, 150:].astype(np.float32) * 0.84).astype(np.uint8)
    b = pp.binarize(pp.normalize_background(dim, keep_edges=True))
    # beside the table (x 30..80 lies left of it) the edge at x=150 is outside: look at the
    # stretch of the edge that runs through blank paper above and below the table
    below = b[int(0.78 * form.shape[0]):, 140:160]
    assert below.mean() < 0.02 * 255
    left_edge = b[1100:1300, 140:160]
    assert left_edge.mean() < 0.02 * 255


def _blurred_page_with_dots(seed: int = 3, blur: float = 1.6) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Blurred grey print (like a 150-DPI heavy scan) with sharp black dust dots on paper and text."""
    rng = np.random.default_rng(seed)
    page = cv2.GaussianBlur(_form(seed=seed), (0, 0), blur)
    page = np.clip(page.astype(np.int16) + 90, 0, 255).astype(np.uint8)  # print fades to grey
    page = np.where(page < 250, page, 255).astype(np.uint8)
    dots = [(int(rng.integers(20, page.shape[1] - 20)), int(rng.integers(20, page.shape[0] - 20)))
            for _ in range(60)]
    for x, y in dots:
        cv2.circle(page, (x, y), 2, 0, -1)
    return page, dots


def test_despeckle_removes_sharp_dots_on_blurred_page() -> None:
    page, dots = _blurred_page_with_dots()
    out, n = despeckle(page)
    assert n >= 40  # dots that fell on print are part of a glyph blob, not specks
    isolated = [(x, y) for x, y in dots if page[y - 8:y + 9, x - 8:x + 9].min() == 0
                and (page[y - 8:y + 9, x - 8:x + 9] < 200).sum() <= 25]
    assert isolated and all(out[y, x] > 200 for x, y in isolated)
    print_mask = cv2.GaussianBlur(_form(seed=3), (0, 0), 1.6) < 128
    assert (out[print_mask] == page[print_mask]).mean() > 0.99  # the print itself is untouched


def test_despeckle_leaves_crisp_pages_alone(form: np.ndarray) -> None:
    """On a crisp page a sharp small mark may be a full stop or a decimal point: keep all."""
    page = form.copy()
    rng = np.random.default_rng(5)
    for _ in range(60):
        cv2.circle(page, (int(rng.integers(20, 980)), int(rng.integers(20, 1390))), 2, 0, -1)
    out, n = despeckle(page)
    assert n == 0 and np.array_equal(out, page)
    clean = cv2.GaussianBlur(_form(seed=3), (0, 0), 1.6)
    assert despeckle(clean)[1] == 0  # blurred but without dust: nothing to take


def test_binarize_ink_is_255(form: np.ndarray) -> None:
    b = pp.binarize(pp.normalize_background(form))
    assert set(np.unique(b)) <= {0, 255}
    ink = form < 128
    assert (b[ink] == 255).mean() > 0.9
    assert (b[~ink] == 0).mean() > 0.97


# --- orientation and the whole stage ---


@pytest.mark.parametrize("turned", [0, 90, 180, 270])
def test_text_direction_family(form: np.ndarray, turned: int) -> None:
    """Geometry tells lines running across from lines running down, whatever the skew."""
    img = pp.rotate_bound(np.ascontiguousarray(np.rot90(form, turned // 90)), 3.0)
    rot = detect_orientation(img)
    assert rot % 180 == turned % 180


def test_prepare_upside_down_without_engine(form: np.ndarray) -> None:
    """Without OCR the margins decide: content hangs from the top of an upright form."""
    img = pp.rotate_bound(np.ascontiguousarray(np.rot90(form, 2)), -2.0)
    page = PageImage(source=Path("x.png"), page_no=1, image=cv2.cvtColor(img, cv2.COLOR_GRAY2BGR), dpi=120)
    prep = pp.prepare(page)
    assert prep.rotation == 180
    assert prep.skew_deg == pytest.approx(-2.0, abs=0.1)
    assert prep.image.shape == prep.binary.shape and prep.image.ndim == 2
    assert abs(estimate_skew(prep.binary)) < 0.1


def test_prepare_level_page_untouched(form: np.ndarray) -> None:
    page = PageImage(source=Path("x.png"), page_no=1, image=form, dpi=120)
    prep = pp.prepare(page)
    assert prep.rotation == 0 and prep.skew_deg == 0.0
    assert prep.image.shape == form.shape
    assert prep.binary[form < 128].mean() > 200


@pytest.mark.slow  # the real engine, no cache
def test_prepare_rotated_scan_with_engine() -> None:
    """A real page scanned turned 270° comes out upright and level (OCR picks 270 over 90)."""
    f = DEV / "d035.pdf"
    if not f.exists():
        pytest.skip("dev corpus not available")
    pdfium = pytest.importorskip("pypdfium2")
    from pipeline.engines import get_engine

    doc = pdfium.PdfDocument(str(f))
    try:
        img = doc[0].render(scale=150 / 72).to_numpy()[:, :, :3][:, :, ::-1].copy()
    finally:
        doc.close()
    prep = pp.prepare(PageImage(source=f, page_no=1, image=img, dpi=150), get_engine())
    assert prep.rotation == 270
    assert prep.image.shape[0] > prep.image.shape[1]  # portrait again
    assert prep.skew_deg == pytest.approx(-0.63, abs=0.1)



def test_glyph_height_of_a_dusty_page_with_little_print_is_the_print_s() -> None:
    # a form's last page on a dusty scan: four short lines of 20-px characters (two pieces each,
    # like 明 or 好) and 300 dust dots of 4-5 px. Counted, the dots outnumber the pieces and the
    # count's percentile measures a dot; weighted by ink, the print
    from pipeline.measure import glyph_height

    rng = np.random.default_rng(2)
    ink = np.zeros((1400, 1000), np.uint8)
    for row in range(4):
        y = 200 + 60 * row
        for k in range(10):
            x = 100 + 26 * k
            ink[y : y + 20, x : x + 9] = 255
            ink[y + 2 : y + 18, x + 12 : x + 20] = 255
    for _ in range(300):
        x, y = int(rng.integers(400, 980)), int(rng.integers(500, 1380))
        s = int(rng.integers(4, 6))
        ink[y : y + s, x : x + s] = 255
    assert glyph_height(ink) == 20
    clean = ink.copy()
    clean[480:] = 0
    assert glyph_height(clean) == 20  # no dust: as before
