"""Pages unlike the dev corpus's grey scans: light text on a coloured fill, lone short marks.

The pictures are drawn here (OpenCV's own stroke font, no font files), so what is checked
is the stage's handling, not one corpus file. OCR comes from tests/ocr_cache.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline import engines, preprocess, process
from pipeline.types import Cell, Grid, PageImage

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / "tests" / "ocr_cache"
BLUE = (245, 165, 66)  # BGR: the header fill of a web-style table (white text on it)
W, H, X0 = 380, 110, 60  # cell width, height, margin (px)


@pytest.fixture(scope="module")
def engine() -> engines.OcrEngine:
    return engines.CachedEngine(engines.RapidOcrEngine(), CACHE)


def _text(img: np.ndarray, s: str, org: tuple[int, int], colour: tuple[int, int, int]) -> None:
    cv2.putText(img, s, org, cv2.FONT_HERSHEY_SIMPLEX, 1.4, colour, 3, cv2.LINE_AA)


def _table(cols: int, rows: int, w: int = W, h: int = H, x0: int = X0, y0: int = X0) -> np.ndarray:
    """A ruled table about the size of a 200-DPI page's."""
    img = np.full((y0 * 2 + rows * h, x0 * 2 + cols * w, 3), 255, np.uint8)
    for r in range(rows + 1):
        cv2.line(img, (x0, y0 + r * h), (x0 + cols * w, y0 + r * h), (0, 0, 0), 2)
    for c in range(cols + 1):
        cv2.line(img, (x0 + c * w, y0), (x0 + c * w, y0 + rows * h), (0, 0, 0), 2)
    return img


def _cell_texts(img: np.ndarray, engine: engines.OcrEngine) -> dict[tuple[int, int], str]:
    page = PageImage(source=Path("drawn.png"), page_no=1, image=img, dpi=200, scan_dpi=200.0)
    result = process.read_page(page, engine, {})
    (g,) = result.grids
    return {(c.row, c.col): c.text for c in g.cells}


def test_light_text_regions_only_where_text_is_lighter_than_its_fill() -> None:
    img = np.full((900, 1200, 3), 255, np.uint8)
    img[:, :80] = img[:, -80:] = (40, 60, 90)  # a dark desk beside the sheet, no text on it
    img[100:300, 150:600] = BLUE
    _text(img, "2023 4187", (180, 220), (255, 255, 255))  # white on blue
    img[500:700, 150:600] = (110, 110, 110)
    _text(img, "2023 4187", (180, 620), (0, 0, 0))  # black on dark grey: not inverted
    mask = preprocess.light_text_regions(img)
    assert mask is not None
    assert mask[120:280, 170:580].mean() > 0.95  # the blue fill, its text included
    assert not mask[520:680, 170:580].any()
    assert not mask[:, :80].any() and not mask[:, -80:].any()
    plain = np.full((900, 1200, 3), 255, np.uint8)
    _text(plain, "2023 4187", (180, 220), (0, 0, 0))
    assert preprocess.light_text_regions(plain) is None


def _at(r: int, c: int) -> tuple[int, int]:
    """Where a cell's text starts."""
    return X0 + c * W + 60, X0 + r * H + 70


def test_white_text_on_a_blue_header_cell_is_read(engine: engines.OcrEngine) -> None:
    img = _table(cols=2, rows=2)
    img[X0 + 2 : X0 + H - 1, X0 + 2 : X0 + W - 1] = BLUE  # the header cell's fill, inside its rules
    _text(img, "2023", _at(0, 0), (255, 255, 255))
    for (r, c), v in {(0, 1): "4187", (1, 0): "3506", (1, 1): "7129"}.items():
        _text(img, v, _at(r, c), (0, 0, 0))
    texts = _cell_texts(img, engine)
    assert texts == {(0, 0): "2023", (0, 1): "4187", (1, 0): "3506", (1, 1): "7129"}


def _around_the_middle(values: list[str]) -> np.ndarray:
    """A 3 x 3 table with `values` in every cell but the middle one."""
    img = _table(cols=3, rows=3)
    cells = [(r, c) for r in range(3) for c in range(3) if (r, c) != (1, 1)]
    for (r, c), v in zip(cells, values, strict=True):
        _text(img, v, _at(r, c), (0, 0, 0))
    return img


def test_a_lone_dash_in_a_cell_is_text(engine: engines.OcrEngine) -> None:
    img = _around_the_middle(["2023", "4187", "3506", "7129", "8841", "5260", "6612", "1904"])
    x, y = _at(1, 1)
    cv2.line(img, (x + 40, y - 15), (x + 80, y - 15), (0, 0, 0), 4)  # 一 alone in the middle cell
    texts = _cell_texts(img, engine)
    assert texts[(1, 1)] in ("一", "-", "—", "－")
    assert texts[(0, 0)] == "2023" and texts[(2, 2)] == "1904"


def test_a_thin_four_read_as_one_is_read_again_thickened(engine: engines.OcrEngine) -> None:
    # a score cell of a fax-like TIFF page (dev d055, glyph 17 px): thresholding left the 4's
    # upright and little of its diagonal, and the recogniser read it as 1
    from pipeline import ocr
    from pipeline.types import PageScale, TextLine

    img = cv2.imread(str(REPO / "tests" / "fixtures" / "thin_four_cell.png"), cv2.IMREAD_GRAYSCALE)
    scale = PageScale(unit=1.0, glyph=17.0)
    thin = Cell(0, 0, 1, 1, (0, 0, img.shape[1], img.shape[0]))
    thin.lines = [TextLine("1", (56, 85, 72, 106), 0.9)]
    # a real one (OpenCV's stroke font, bold), which thickening leaves a one
    one = np.full((120, 120), 255, np.uint8)
    cv2.putText(one, "1", (48, 75), cv2.FONT_HERSHEY_SIMPLEX, 1.0, 0, 3, cv2.LINE_AA)
    page = np.hstack([img[:120], one])
    bold = Cell(0, 1, 1, 1, (img.shape[1], 0, img.shape[1] + 120, 120))
    bold.lines = [TextLine("1", (img.shape[1] + 40, 45, img.shape[1] + 80, 85), 0.99)]
    assert ocr.thin_ones(page, [thin, bold], engine, scale) == 2
    assert thin.text == "4" and thin.confidence <= 0.9  # two readings disagree: no surer than the first
    assert bold.lines[0].text == "1" and bold.lines[0].score == 0.99


def test_a_thin_four_read_as_a_mark_is_read_again_thickened(engine: engines.OcrEngine) -> None:
    # a weight cell of a 1-bit TIFF page (dev d053, glyph 24 px): the 4 kept its cross and lost
    # its diagonal, and the recogniser read '+'; a dash in the next cell is what a cell holding
    # "none" legitimately shows, and is left alone
    from pipeline import ocr
    from pipeline.types import PageScale, TextLine

    img = cv2.imread(str(REPO / "tests" / "fixtures" / "thin_four_cross_cell.png"), cv2.IMREAD_GRAYSCALE)
    scale = PageScale(unit=1.2, glyph=24.0)
    cross = Cell(0, 0, 1, 1, (0, 0, img.shape[1], img.shape[0]))
    cross.lines = [TextLine("+", (32, 54, 80, 90), 0.5)]
    dash = Cell(0, 1, 1, 1, (img.shape[1], 0, 2 * img.shape[1], img.shape[0]))
    dash.lines = [TextLine("-", (img.shape[1] + 32, 54, img.shape[1] + 80, 90), 0.5)]
    page = np.hstack([img, np.full_like(img, 255)])
    cv2.line(page, (img.shape[1] + 40, 72), (img.shape[1] + 70, 72), 0, 3)
    assert ocr.thin_ones(page, [cross, dash], engine, scale) == 1
    assert cross.text == "4" and cross.lines[0].score <= 0.5
    assert dash.lines[0].text == "-"


def test_a_line_whose_box_takes_in_the_line_above_is_read_again_from_its_own_rows(
    engine: engines.OcrEngine,
) -> None:
    # three rows of a scanned indicator table (dev d032, glyph 20 px): 生率, the end of 故障重复发生率
    # wrapped, has a box twice its height holding the foot of 故障重复发, and was read 生. Read
    # again from its own rows alone it reads whole; the other lines' readings fit their ink
    from pipeline import ocr, preprocess
    from pipeline.types import PageScale, TextLine

    img = cv2.imread(str(REPO / "tests" / "fixtures" / "scan_line_under_a_line.png"), cv2.IMREAD_GRAYSCALE)
    lines = {
        (0, 1): [("系统故障维", (11, 8, 137, 36)), ("修及时", (25, 32, 125, 68))],
        (0, 2): [("及时完成故障维修", (143, 18, 339, 52))],
        (0, 4): [("分。", (526, 33, 586, 66)), ("全部完成得6分，部分完成酌情扣分，未完成不得", (526, 6, 998, 38))],
        (1, 1): [("故障重复发", (7, 74, 137, 113)), ("生", (37, 100, 116, 138))],
        (1, 2): [("情况", (143, 100, 212, 137)), ("察运维项目故障重复发生", (143, 77, 406, 109))],
        (2, 1): [("预计业务量", (7, 168, 137, 209))],
        (2, 2): [("在预算年度内，完成该项信", (143, 145, 414, 179)), ("息系统中所有软硬件运维", (143, 170, 409, 205))],
    }
    cells = []
    for (r, c), ls in lines.items():
        cell = Cell(r, c, 1, 1, (0, 0, 1, 1))
        cell.lines = [TextLine(t, b, 0.99, model="small") for t, b in ls]
        cells.append(cell)
    assert ocr.ink_gaps(img, preprocess.binarize(img), cells, engine, PageScale(unit=1.0, glyph=20.0)) == 1
    assert [t.text for t in cells[3].lines] == ["故障重复发", "生率"]
    assert [t.text for c in cells[4:] for t in c.lines] == [t for ls in list(lines.values())[4:] for t, _b in ls]


def test_a_full_stop_the_recogniser_saw_and_dropped_ends_the_sentence(engine: engines.OcrEngine) -> None:
    # two rows of a 1-bit page (dev d049, glyph 18 px): the recogniser reads 按规定…不得分 without
    # its thin 。, whose ink lies past the reading, though it saw a mark there (0.10). The cell
    # ends in 。, at that score; 信息公斤情况, a name, is no sentence and ends bare
    from pipeline import ocr, preprocess
    from pipeline.types import PageScale, TextLine

    img = cv2.imread(str(REPO / "tests" / "fixtures" / "bilevel_sentence_end.png"), cv2.IMREAD_GRAYSCALE)
    lines = [
        [("长效管理勺维护机", (7, 8, 197, 41)), ("制", (51, 34, 137, 75))],
        [("建立了长效合作交流机制。", (203, 40, 466, 71)), ("考察是否与相关地区和单位", (203, 10, 473, 43))],
        [("分", (597, 38, 651, 75)), ("全部完成得8分、部分完成酌情扣分，未完成不得", (597, 10, 1042, 43))],
        [("信息公斤情况", (26, 96, 187, 136))],
        [("情况", (203, 112, 273, 149)), ("考察项目信息按规定公开的", (203, 84, 471, 117))],
        [("按规定及时公开得满分，未公开不得分", (597, 99, 975, 132))],
    ]
    cells = []
    for i, ls in enumerate(lines):
        cell = Cell(i // 3, i % 3, 1, 1, (0, 0, 1, 1))
        cell.lines = [TextLine(t, b, 0.99, model="small") for t, b in ls]
        cells.append(cell)
    ocr.ink_gaps(img, preprocess.binarize(img), cells, engine, PageScale(unit=1.0, glyph=18.0))
    end = cells[5].lines[0]
    assert end.text == "按规定及时公开得满分，未公开不得分。" and end.score < 0.5
    assert cells[3].lines[0].text == "信息公斤情况"
    assert not ocr._is_sentence("项目计划完成及时性") and ocr._is_sentence("考察项目单位人员配置的合理性")
    assert not ocr._is_sentence("41,233") and ocr._is_sentence("全部完成得3分，部分完成")  # a figure's comma


def test_a_wrapped_line_the_detector_missed_is_read_from_the_ink_left_out(engine: engines.OcrEngine) -> None:
    # a scoring-rule cell of a 1-bit page (dev d049, glyph 18 px): the detector boxed the first
    # line only, and 分。 wrapped under it went unread. Dust alone left out is not read
    from pipeline import ocr, preprocess
    from pipeline.types import PageScale, TextLine

    img = cv2.imread(str(REPO / "tests" / "fixtures" / "bilevel_missed_line.png"), cv2.IMREAD_GRAYSCALE)
    scale = PageScale(unit=1.0, glyph=18.0)

    def cell(page: np.ndarray) -> Cell:
        c = Cell(0, 0, 1, 1, (6, 6, 462, 190))
        c.lines = [TextLine("全部完成得8分，部分完成酌情扣分，未完成不得", (7, 67, 453, 98), 0.99)]
        blobs = ocr.ink_outside_lines(preprocess.binarize(page), c, scale)
        assert ocr.missed_line(page, c, blobs, engine, scale) == (page is img)
        return c

    assert cell(img).text.startswith("全部完成得8分，部分完成酌情扣分，未完成不得分")
    dusty = img.copy()
    dusty[99:140, 7:60] = 255  # the wrapped line gone, three dust dots instead
    for x, y in ((20, 120), (200, 150), (300, 115)):
        cv2.circle(dusty, (x, y), 2, 0, -1)
    assert [t.text for t in cell(dusty).lines] == ["全部完成得8分，部分完成酌情扣分，未完成不得"]


def test_a_faint_digit_read_as_a_full_stop_is_read_from_its_ink(engine: engines.OcrEngine) -> None:
    # a weight cell of a 120-DPI phone photo (dev d044, glyph 19 px): a faint, soft 9 in a padded
    # line crop reads 。; from the crop of its ink it reads 9. A dust dot read 。 stays unread
    from pipeline import ocr
    from pipeline.types import PageScale, TextLine

    img = cv2.imread(str(REPO / "tests" / "fixtures" / "photo_faint_digit_cell.png"), cv2.IMREAD_GRAYSCALE)
    scale = PageScale(unit=1.0, glyph=19.0)
    faint = Cell(0, 0, 1, 1, (0, 0, img.shape[1], img.shape[0]))
    faint.lines = [TextLine("。", (21, 56, 69, 92), 0.6)]
    assert ocr.thin_ones(img, [faint], engine, scale) == 1
    assert faint.text == "9" and faint.lines[0].score <= 0.6
    dust = np.full_like(img, 255)
    cv2.circle(dust, (45, 75), 2, 0, -1)
    dot = Cell(0, 0, 1, 1, (0, 0, img.shape[1], img.shape[0]))
    dot.lines = [TextLine("。", (21, 56, 69, 92), 0.6)]
    assert ocr.thin_ones(dust, [dot], engine, scale) == 0 and dot.lines[0].text == "。"


def test_a_figure_apart_from_its_unit_is_read_with_it(engine: engines.OcrEngine) -> None:
    # a target cell of a 1-bit page (dev d051, glyph 22 px) that detection found no line in:
    # its ink box took the inkiest cluster, 次, and left the 0 a space before it
    from pipeline import ocr, preprocess
    from pipeline.types import PageScale

    img = cv2.imread(str(REPO / "tests" / "fixtures" / "bilevel_figure_and_unit_cell.png"), cv2.IMREAD_GRAYSCALE)
    cell = Cell(0, 0, 1, 1, (8, 7, 190, 88))
    assert ocr.second_look(img, preprocess.binarize(img), [cell], engine, PageScale(unit=1.0, glyph=22.0)) == 1
    assert cell.text.replace(" ", "") == "0次"


def test_a_soft_character_that_fits_no_word_takes_the_runner_up_that_does(engine: engines.OcrEngine) -> None:
    # two cells of a phone photo (dev d043, glyph 19 px): the recogniser read 故障 as 放障 and
    # 满意度 as 清意度, each with the right character its runner-up
    from pipeline import ocr
    from pipeline.types import PageScale, TextLine

    a = cv2.imread(str(REPO / "tests" / "fixtures" / "photo_cell_fault_repair.png"), cv2.IMREAD_GRAYSCALE)
    b = cv2.imread(str(REPO / "tests" / "fixtures" / "photo_cell_satisfaction.png"), cv2.IMREAD_GRAYSCALE)
    h = max(a.shape[0], b.shape[0])
    pad = lambda im: cv2.copyMakeBorder(im, 0, h - im.shape[0], 0, 0, cv2.BORDER_CONSTANT, value=255)  # noqa: E731
    page = np.hstack([pad(a), pad(b)])
    wa = a.shape[1]
    fault = Cell(0, 0, 1, 1, (0, 0, wa, a.shape[0]))
    fault.lines = [TextLine("及时完成放障维修", (1, 9, 193, 50), 0.95,
                            [0.99991, 0.99992, 0.99807, 0.99998, 0.76514, 0.99078, 0.99938, 0.99876])]
    happy = Cell(0, 1, 1, 1, (wa, 0, wa + b.shape[1], b.shape[0]))
    happy.lines = [TextLine("窗口人员清意度", (wa + 1, 7, wa + 170, 44), 0.95,
                            [0.9715, 0.99989, 0.99997, 1.0, 0.74255, 1.0, 0.99798])]
    # the same misreading read surely is left as it is: only doubtful characters are second-guessed
    sure = Cell(0, 2, 1, 1, (0, 0, wa, a.shape[0]))
    sure.lines = [TextLine("及时完成放障维修", (1, 9, 193, 50), 0.99, [0.99] * 8)]
    assert ocr.word_fixes(page, [fault, happy, sure], engine, PageScale(unit=1.0, glyph=19.0)) == 2
    assert (fault.text, happy.text, sure.lines[0].text) == ("及时完成故障维修", "窗口人员满意度", "及时完成放障维修")
    assert fault.confidence < 0.8  # as doubtful as first read


def test_a_misread_that_fits_a_word_takes_the_runner_up_the_clause_reads_better_with(
        engine: engines.OcrEngine) -> None:
    # a scoring-rule cell of a 1-bit page (dev d049, glyph 18 px): 酌情扣分 read as 的情扣分 (的
    # at 0.98, 酌 its runner-up at 0.02), which word_fixes leaves: 的 stands alone in right text
    from pipeline import ocr
    from pipeline.types import PageScale, TextLine

    img = cv2.imread(str(REPO / "tests" / "fixtures" / "bilevel_cell_discretion.png"), cv2.IMREAD_GRAYSCALE)
    box = (1, 5, 445, 36)
    (r,) = engine.recognize([ocr._line_crop(img, box, 1.0)], effort="candidates")
    assert "的情扣分" in r.text and r.char_scores is not None
    cell = Cell(0, 0, 1, 1, (0, 0, img.shape[1], img.shape[0]))
    cell.lines = [TextLine(r.text, box, r.score, list(r.char_scores), "small"),
                  TextLine("分。", (1, 33, 56, 70), 0.99, [0.99, 0.99], "small")]
    # the same text read surely is left as it is
    sure = Cell(0, 1, 1, 1, (0, 0, img.shape[1], img.shape[0]))
    sure.lines = [TextLine(r.text, box, 0.999, [0.999] * len(r.text), "small")]
    scale = PageScale(unit=1.0, glyph=18.0)
    assert ocr.word_fixes(img, [cell], engine, scale) == 1 and "的情扣分" in cell.lines[0].text
    assert ocr.context_fixes(img, [cell, sure], engine, scale) == 1
    assert "部分完成酌情扣分，未完成不得" in cell.text and "的情扣分" in sure.lines[0].text
    assert cell.lines[0].char_scores == r.char_scores  # as doubtful as first read


def test_a_cell_whose_ink_nothing_reads_is_never_confidently_empty(engine: engines.OcrEngine) -> None:
    from pipeline import confidence
    from pipeline.normalize.cellvalue import typed_value
    from pipeline.types import FormRecord

    # values wider than the smudge: orientation is voted on the widest lines
    img = _around_the_middle(["2023.45", "4187.06", "3506.91", "7129.30", "8841.72", "5260.18", "6612.84", "1904.57"])
    x, y = _at(1, 1)
    noise = np.random.default_rng(7).random((40, 80)) < 0.5  # ink no recogniser reads as text
    img[y - 45 : y - 5, x + 20 : x + 100][noise] = 90
    page = PageImage(source=Path("drawn.png"), page_no=1, image=img, dpi=200, scan_dpi=200.0)
    (g,) = process.read_page(page, engine, {}).grids
    cell = next(c for c in g.cells if (c.row, c.col) == (1, 1))
    assert cell.text == "" and cell.unread_ink
    assert not any(c.unread_ink for c in g.cells if c is not cell)
    v = typed_value("text", [cell], page=1)
    assert v.value is None and v.evidence.get("unread_ink") == 1.0
    rec = FormRecord(file="drawn.png", form_index=0, pages=[1], fields={"main_problems": v})
    confidence.score_record(rec, {1: confidence.PageContext()})
    assert v.needs_review and v.confidence <= confidence.get_model().threshold


def _photographed(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sheet photographed from above one corner (its rules converge) on a darker desk,
    and where its corners landed."""
    h, w = img.shape[:2]
    desk = np.full((h + 400, w + 400, 3), (70, 90, 110), np.uint8)
    corners = np.float32([[230, 170], [w + 150, 230], [w + 210, h + 260], [170, h + 200]])
    warp = cv2.getPerspectiveTransform(np.float32([[0, 0], [w, 0], [w, h], [0, h]]), corners)
    return cv2.warpPerspective(img, warp, desk.shape[1::-1], dst=desk, borderMode=cv2.BORDER_TRANSPARENT), corners


def test_a_photographed_sheet_is_unwarped_before_the_grid(engine: engines.OcrEngine) -> None:
    img = _table(cols=3, rows=4)
    values = {(r, c): f"{1000 + 1371 * (3 * r + c) % 8999}" for r in range(4) for c in range(3)}
    for (r, c), v in values.items():
        _text(img, v, _at(r, c), (0, 0, 0))
    photo, corners = _photographed(img)
    sheet = preprocess.find_sheet(photo)
    assert sheet is not None
    assert np.abs(np.float32(sheet) - corners).max() < 12  # found where the sheet lies
    assert preprocess.find_sheet(img) is None  # a scan: the paper fills the frame
    _reads_as_its_table(photo, values, engine)


def _reads_as_its_table(photo: np.ndarray, values: dict[tuple[int, int], str], engine: engines.OcrEngine) -> None:
    """The photographed 4 x 3 table is found as a sheet, with its rows and columns, and read."""
    page = PageImage(source=Path("photo.jpg"), page_no=1, image=photo, dpi=200, scan_dpi=200.0)
    result = process.read_page(page, engine, {})
    assert result.prepared.sheet is not None
    (g,) = result.grids
    assert (g.n_rows, g.n_cols) == (4, 3)
    texts = {(c.row, c.col): c.text for c in g.cells}
    assert sum(texts[k] == v for k, v in values.items()) >= 11  # all, or all but one digit slip


def _soft_photo(shrink: float, blur: float) -> tuple[np.ndarray, dict[tuple[int, int], str]]:
    """A small table photographed on a desk at a fraction of a scan's resolution, blurred and
    saved as a rough JPEG, enlarged back: what a phone gives of a slip filling part of the frame."""
    img = _table(cols=3, rows=4)
    values = {(r, c): f"{1000 + 1371 * (3 * r + c) % 8999}" for r in range(4) for c in range(3)}
    for (r, c), v in values.items():
        _text(img, v, _at(r, c), (0, 0, 0))
    photo, _ = _photographed(img)
    small = cv2.GaussianBlur(cv2.resize(photo, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA), (0, 0), blur)
    small = cv2.imdecode(cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 55])[1], cv2.IMREAD_COLOR)
    return cv2.resize(small, photo.shape[1::-1], interpolation=cv2.INTER_LINEAR), values


@pytest.mark.parametrize(("shrink", "blur"), [(0.4, 1.2), (0.35, 1.0)])
def test_a_soft_photo_of_a_small_table_has_the_tables_rows_and_columns(
    engine: engines.OcrEngine, shrink: float, blur: float
) -> None:
    # (0.4, 1.2): its blurred rules binarise 5 px thick, which the page's small size alone took
    # for filled bars (no grid); (0.35, 1.0): a sliver of desk along the unwarped sheet's edge
    # joined the table as an extra row and column
    _reads_as_its_table(*_soft_photo(shrink, blur), engine)


def test_a_photographed_sheets_soft_print_is_sharpened(monkeypatch: pytest.MonkeyPatch) -> None:
    # a blurred stroke on paper: its edges steepen, the paper stays paper
    img = np.full((60, 200), 255, np.uint8)
    img[25:35, 50:150] = 60
    soft = cv2.GaussianBlur(img, (0, 0), 2.5)
    sharp = preprocess.sharpen(soft, glyph=20.0)
    slope = lambda a: float(np.abs(np.diff(a[:, 100].astype(np.float32))).max())  # noqa: E731
    assert slope(sharp) > 1.2 * slope(soft)
    assert sharp[:10].min() >= 253 and sharp[25:35, 60:140].max() < soft[25:35, 60:140].max()
    # prepare sharpens what OCR reads of a photographed sheet, and nothing of a scan
    photo, _ = _soft_photo(0.4, 1.2)
    scan = cv2.GaussianBlur(_table(cols=3, rows=4), (0, 0), 1.5)
    pages = [PageImage(source=Path(n), page_no=1, image=im, dpi=200, scan_dpi=200.0)
             for n, im in (("slip.jpg", photo), ("scan.png", scan))]
    sharpened = [preprocess.prepare(p).image for p in pages]
    monkeypatch.setattr(preprocess, "sharpen", lambda grey, glyph: grey)
    plain = [preprocess.prepare(p).image for p in pages]
    lap = lambda a: float(cv2.Laplacian(a, cv2.CV_32F).var())  # noqa: E731
    assert lap(sharpened[0]) > 1.2 * lap(plain[0])
    assert np.array_equal(sharpened[1], plain[1])


def test_bent_rules_of_a_photographed_sheet_are_straightened() -> None:
    img = cv2.cvtColor(_table(cols=3, rows=5), cv2.COLOR_BGR2GRAY)
    h, w = img.shape
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    u = xs / w - 0.5
    bent = cv2.remap(img, xs, ys + 60 * u * u - 15, cv2.INTER_LINEAR, borderValue=255)  # the paper's curl
    binary = preprocess.binarize(bent)

    def rule_bow(b: np.ndarray) -> float:  # how far the middle rule's ends sag below its centre
        y_mid = X0 + 3 * H
        col = lambda x: float(np.nonzero(b[y_mid - 40 : y_mid + 40, x])[0].mean())  # noqa: E731
        return abs(col(X0 + 20) - col(w // 2)) + abs(col(w - X0 - 20) - col(w // 2))

    assert rule_bow(binary) > 20
    straight = preprocess.straighten(bent, bent, binary, glyph=20.0)
    assert straight is not None
    assert rule_bow(preprocess.binarize(straight[1])) < 4
    assert preprocess.straighten(img, img, preprocess.binarize(img), glyph=20.0) is None  # flat: untouched


def test_the_archive_pdf_of_a_photographed_sheet_shows_it_unwarped(tmp_path: Path, engine: engines.OcrEngine) -> None:
    import shutil
    import subprocess

    import pikepdf

    from pipeline import archive_pdf, export
    from pipeline.layout import read_layout

    img = _table(cols=3, rows=4)
    for r in range(4):
        for c in range(3):
            _text(img, f"{4000 + 617 * (3 * r + c)}", _at(r, c), (0, 0, 0))
    photo, _ = _photographed(img)
    src = tmp_path / "photo.jpg"
    cv2.imwrite(str(src), photo)
    page = PageImage(source=src, page_no=1, image=photo, dpi=200, scan_dpi=200.0)
    result = process.read_page(page, engine, {})
    export.write_layout(tmp_path, src, "photo", [result])
    layout = read_layout(tmp_path, "photo")
    assert layout is not None and layout["pages"][0]["image"] == "photo-p1.jpg"
    pdf = archive_pdf.write_pdf(tmp_path, src, "photo", layout, records=[])
    with pikepdf.open(pdf) as doc:
        (pg,) = doc.pages
        (im,) = [pikepdf.PdfImage(x) for x in pg.obj.Resources.XObject.values()]
        assert (im.width, im.height) == result.prepared.image.shape[1::-1]  # the unwarped page, not the photo
    if shutil.which("pdftotext"):
        text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
        assert "4000" in text and "4617" in text


# --- 1-bit and TIFF scans: thin strokes lost at the threshold --------------------------------


def _header_table(header0: str) -> Grid:
    """A family-C-like indicator table (no 二级指标 column) whose first header cell reads `header0`."""
    rows = [
        [("项目名称", 0, 2), ("某项目", 2, 8)],
        [(header0, 0, 2), ("指标名称", 2, 2), ("指标解释", 4, 2), ("权重", 6, 1), ("评分规则", 7, 1),
         ("自评得分", 8, 1), ("备注", 9, 1)],
        [("产出目标（50分）", 0, 2), ("服务人次", 2, 2), ("全年完成服务对象的人次", 4, 2), ("19", 6, 1),
         ("完成得满分", 7, 1), ("19", 8, 1), ("", 9, 1)],
    ]
    cells = [Cell(r, c, 1, cs, (c * 100, 100 + r * 40, (c + cs) * 100, 140 + r * 40), text=t, confidence=0.99)
             for r, row in enumerate(rows) for t, c, cs in row]
    return Grid(row_lines=[100 + 40 * i for i in range(4)], col_lines=list(range(0, 1001, 100)), cells=cells)


def _records(g: Grid) -> list:
    from pipeline.assemble import split_forms
    from pipeline.normalize import build_records
    from pipeline.types import PageResult, PreparedPage, TextLine

    img = np.full((400, 1000), 255, np.uint8)
    prepared = PreparedPage(PageImage(Path("x.pdf"), 1, img, 200), img, img, 0, 0.0)
    page = PageResult(prepared=prepared, grids=[g], free_lines=[TextLine("2020年度财政项目绩效自评价", (300, 30, 700, 70), 0.99)])
    return build_records(split_forms([page]), "x.pdf")


def test_a_header_that_lost_the_stroke_of_its_one_is_the_level1_column() -> None:
    # '一级指标' read '级指标' (the 一 a broken thin stroke on a 1-bit scan): as near 一级指标
    # as 二级指标, but the leftmost column can only be the 一级指标
    (rec,) = _records(_header_table("级指标"))
    ind = rec.indicators[0]
    assert ind["level1"].value == "产出目标" and ind["level1_points"].value == 50


def test_a_tied_header_right_of_other_columns_stays_unread() -> None:
    # the same tie in a column with named columns on its left is no level1 (the order rule
    # only settles the leftmost one): the table's level1 comes from nowhere
    g = _header_table("一级指标")
    first = next(c for c in g.cells if c.row == 1 and c.col == 0)
    name = next(c for c in g.cells if c.row == 1 and c.col == 2)
    first.text, name.text = "指标名称", "级指标"
    (rec,) = _records(g)
    assert "level1" not in rec.indicators[0]


def test_dots_between_chinese_characters_are_commas() -> None:
    from pipeline.values import repair_punctuation

    assert repair_punctuation("全部完成得5分.部分完成酌情扣分.未完成不得分。") == "全部完成得5分，部分完成酌情扣分，未完成不得分。"
    assert repair_punctuation("未按计划完成的. 每项扣1分") == "未按计划完成的，每项扣1分"
    assert repair_punctuation("长效机制建设有待于进一步加强：") == "长效机制建设有待于进一步加强。"
    # figures and labels keep theirs
    assert repair_punctuation("执行率95.5%，完成3.2万人次") == "执行率95.5%，完成3.2万人次"
    assert repair_punctuation("偏差原因：无") == "偏差原因：无"
    # a speck between a figure and its unit is no decimal point; an enumeration's dot stays
    assert repair_punctuation("≥4.天") == "≥4天" and repair_punctuation("得21.分") == "得21分"
    assert repair_punctuation("1. 一个了解反映诉求") == "1. 一个了解反映诉求"
    # list items are separated by '；': a '：' before ② is one misread; the colon opening a list stays
    assert repair_punctuation("①按计划完成得8分：②未按计划完成") == "①按计划完成得8分；②未按计划完成"
    assert repair_punctuation("评分标准：①按计划完成") == "评分标准：①按计划完成"


def test_an_ocr_text_cell_gets_its_commas_back() -> None:
    from pipeline.normalize.cellvalue import typed_value

    c = Cell(0, 0, 1, 1, (0, 0, 100, 40), text="按完成情况打分.完成得满分(10分)", confidence=0.8)
    assert typed_value("text", [c], 1).value == "按完成情况打分，完成得满分(10分)"
    layer = Cell(0, 0, 1, 1, (0, 0, 100, 40), text="按完成情况打分.完成得满分", confidence=1.0)
    assert typed_value("text", [layer], 1).value == "按完成情况打分.完成得满分"  # a text layer is as printed


# --- damaged 一级指标 cells on heavy scans -----------------------------------------------------


def _level1_grid(pieces: list[tuple[str, int]], weights: list[str], name_col: list[str] | None = None) -> Grid:
    """An indicator table whose level1 column holds `pieces` (text, rows spanned), one
    indicator per row with these weights (score = weight)."""
    rows: list[list[tuple[str, int, int, int]]] = [
        [("项目名称", 0, 2, 1), ("某项目", 2, 8, 1)],
        [("一级指标", 0, 2, 1), ("指标名称", 2, 4, 1), ("权重", 6, 2, 1), ("自评得分", 8, 2, 1)],
    ]
    for i, w in enumerate(weights):
        name = name_col[i] if name_col else f"资金使用{i}"
        rows.append([(name, 2, 4, 1), (w, 6, 2, 1), (w, 8, 2, 1)])
    r = 2
    for text, span in pieces:
        rows[r].insert(0, (text, 0, 2, span))
        r += span
    cells = [Cell(ri, c, rs, cs, (c * 100, 100 + ri * 40, (c + cs) * 100, 100 + (ri + rs) * 40), text=t,
                  confidence=0.9)
             for ri, row in enumerate(rows) for t, c, cs, rs in row]
    return Grid(row_lines=[100 + 40 * i for i in range(len(rows) + 1)], col_lines=list(range(0, 1001, 100)),
                cells=cells)


def _level1s(g: Grid) -> list[tuple[object, object]]:
    (rec,) = _records(g)
    return [(ind["level1"].value, ind["level1_points"].value) for ind in rec.indicators]


def test_a_level1_cut_into_name_and_points_is_one_label() -> None:
    g = _level1_grid([("投入与管理（20分）", 2), ("产出目标", 1), ("（30分）", 2)], ["8", "12", "10", "11", "9"])
    assert _level1s(g) == [("投入与管理", 20)] * 2 + [("产出目标", 30)] * 3
    # the points cut after their figure: '产出目标（30' over '分）'
    g = _level1_grid([("投入与管理（20分）", 2), ("产出目标（30", 2), ("分）", 1)], ["8", "12", "10", "11", "9"])
    assert _level1s(g) == [("投入与管理", 20)] * 2 + [("产出目标", 30)] * 3


def test_split_level1_pieces_are_not_joined_against_the_arithmetic() -> None:
    # the rows under '(10分)' weigh 20 with the name piece's: two labels, not one
    g = _level1_grid([("投入与管理（20分）", 2), ("产出目标", 1), ("（10分）", 2)], ["8", "12", "10", "11", "9"])
    assert _level1s(g)[2] == ("产出目标", None)


def test_a_level1_cell_that_took_in_the_next_columns_lines_keeps_its_term() -> None:
    g = _level1_grid([("投入与管理（20分）", 2), ("支持并发访问用户数效果目标（15分）. 预计产生效果", 2)], ["8", "12", "7", "8"])
    assert _level1s(g)[2:] == [("效果目标", 15)] * 2


def test_unread_level1_points_are_the_sum_of_its_weights() -> None:
    g = _level1_grid([("投入与管理（20分）", 2), ("产出目标（30分）", 2), ("影响力目", 2)], ["8", "12", "10", "20", "7", "8"])
    (rec,) = _records(g)
    last = rec.indicators[-1]
    assert last["level1"].value == "影响力目标" and last["level1_points"].value == 15
    assert last["level1_points"].reasons and last["level1_points"].confidence <= 0.5
    # a table that prints no points gets none inferred
    g = _level1_grid([("投入与管理", 2), ("产出目标", 2), ("影响力目标", 2)], ["8", "12", "10", "20", "7", "8"])
    assert [p for _, p in _level1s(g)] == [None] * 6


def test_a_damaged_term_is_not_cut_down_to_a_short_term_inside_it() -> None:
    from pipeline.normalize.indicators import level1_reading

    assert level1_reading("产出运标（30分）") == ("产出运标", 30)  # snap_term makes it 产出目标, not 产出
    assert level1_reading("社会效益指标") == ("效益指标", None)


def _weights_form(weights: list[str], total: str) -> list[object]:
    g = _level1_grid([("投入与管理（20分）", 2), ("产出目标（30分）", 3)], weights)
    n = len(g.row_lines) - 1
    y = g.row_lines[-1]
    g.cells += [Cell(n, 0, 1, 6, (0, y, 600, y + 40), text="合计", confidence=0.9),
                Cell(n, 6, 1, 2, (600, y, 800, y + 40), text=total, confidence=0.9),
                Cell(n, 8, 1, 2, (800, y, 1000, y + 40), text="", confidence=0.9)]
    g.row_lines.append(y + 40)
    (rec,) = _records(g)
    return [ind["weight"] for ind in rec.indicators]


def test_a_blank_weight_is_its_level1_points_less_the_others() -> None:
    # the lone '4' of a thin 1-bit font read as nothing: 20 - 8 = 12, and 8+12+10+11+9 = 50
    w = _weights_form(["8", "", "10", "11", "9"], "50")
    assert w[1].value == 12 and w[1].confidence <= 0.5 and w[1].reasons


def test_a_blank_weight_is_left_when_the_total_disagrees() -> None:
    # 30 - 10 - 14 = 6, but then the weights add up to 51, not 50: the 12 read 13 says so
    w = _weights_form(["8", "13", "10", "14", ""], "50")
    assert w[4].value is None


def test_commas_read_as_middle_dots_are_pause_marks(engine: engines.OcrEngine) -> None:
    # the last line of a remark cell of a 150-DPI heavy scan (dev d014, glyph 19 px): the
    # recogniser reads each comma and enumeration comma as ·, which the speck filter dropped.
    # 完善性·有效性·连贯性 lists words (its runner-up says 、 too); 熟练度·增强 joins clauses
    from pipeline import ocr
    from pipeline.types import PageScale, TextLine

    img = cv2.imread(str(REPO / "tests" / "fixtures" / "heavy_commas_read_as_dots.png"), cv2.IMREAD_GRAYSCALE)
    read = "程的熟练度·增强相应公共服备配套制度完善性·有效性·连贯性。提件群众凝聚力，维护社会和谱。"
    remark = Cell(0, 0, 1, 1, (0, 0, img.shape[1], img.shape[0]))
    remark.lines = [TextLine(read, (11, 17, 1031, 61), 0.8)]
    label = Cell(0, 1, 1, 1, (0, 0, img.shape[1], img.shape[0]))  # no sentence: a dot in a name is a speck
    label.lines = [TextLine("效益指·标", (11, 17, 1031, 61), 0.8)]
    assert ocr.mark_fixes(img, [remark, label], engine, PageScale(unit=1.0, glyph=19.0)) == 1
    assert remark.lines[0].text == "程的熟练度，增强相应公共服备配套制度完善性、有效性、连贯性。提件群众凝聚力，维护社会和谱。"
    assert label.lines[0].text == "效益指·标"
    assert ocr._between_items("高并发·大容量·高效率运转", 3) and not ocr._between_items("机制成果·深入推进居民区", 4)


def test_doubtful_colons_and_full_stops_take_the_mark_the_runner_ups_make_likely(engine: engines.OcrEngine) -> None:
    # runner-ups as a phone photo's recogniser gave them (dev d043): a colon read at 0.51 before a
    # clause's points with ；at 0.18 is the ；these forms end list items in; 。 read at 0.62 with
    # ，at 0.35 between two clauses is ，. A colon read at 0.49 with ；at 0.03 (d015's forms print
    # '目标：(1分)') and a full stop at 0.62 with pause marks at 0.08 (连贯性。提升) stay
    from pipeline import ocr
    from pipeline.engines import Reading
    from pipeline.types import PageScale, TextLine

    def line(text: str, box: tuple[int, int, int, int], at: int, score: float, alts: list[tuple[str, float]],
             memo: dict[tuple[int, int, int, int], Reading]) -> Cell:
        scores = [0.99] * len(text)
        scores[at] = score
        memo[box] = Reading(text, 0.9, scores, "small", [alts if i == at else [] for i in range(len(text))])
        c = Cell(0, box[1], 1, 1, box)
        c.lines = [TextLine(text, box, 0.9, scores)]
        return c

    memo: dict[tuple[int, int, int, int], Reading] = {}
    cells = [
        line("是否符合年度目标和计划：(1分)③项目是否", (0, 0, 400, 30), 11, 0.51, [(";", 0.10), ("；", 0.08)], memo),
        line("是否符合客观实际，依据充分。是否符合", (0, 40, 400, 70), 13, 0.62, [("，", 0.24), (",", 0.11)], memo),
        line("报送绩效目标：(1分)②绩效目标是否", (0, 80, 400, 110), 6, 0.49, [(":", 0.46), (";", 0.03)], memo),
        line("完善性、有效性、连贯性。提升群众凝聚力", (0, 120, 400, 150), 11, 0.62, [("，", 0.04), ("、", 0.04)], memo),
        # a ，between two short items read at 0.80 with 、 at 0.06 is the 、 such lists take (a photo,
        # d043); one at 0.80 with 、 at 0.01, and one between two clauses, stay
        line("完善性，有效性，连贯性", (0, 160, 400, 190), 3, 0.80, [("、", 0.06), (".", 0.01)], memo),
        line("完善性，有效性，连贯性", (0, 200, 400, 230), 3, 0.80, [("、", 0.01), (".", 0.01)], memo),
        line("用以反映和考核，项目立项的规范", (0, 240, 400, 270), 7, 0.80, [("、", 0.19)], memo),
    ]
    # a line's last mark where the cell's next line goes on (d015: 制度和规定。| 项目资金使用…)
    two = line("法律法规、制度和规定。", (0, 280, 400, 310), 10, 0.71, [("，", 0.27)], memo)
    two.lines.append(TextLine("项目资金使用是否规范", (0, 310, 400, 340), 0.99, [0.99] * 10))
    cells.append(two)
    img = np.full((350, 400), 255, np.uint8)
    assert ocr.mark_fixes(img, cells, engine, PageScale(unit=1.0, glyph=19.0), memo) == 7
    assert two.lines[0].text == "法律法规、制度和规定，"
    cells.pop()
    assert [c.lines[0].text for c in cells] == [
        "是否符合年度目标和计划；(1分)③项目是否", "是否符合客观实际，依据充分，是否符合",
        "报送绩效目标：(1分)②绩效目标是否", "完善性、有效性、连贯性。提升群众凝聚力",
        "完善性、有效性，连贯性", "完善性，有效性，连贯性", "用以反映和考核，项目立项的规范"]


def test_a_greater_than_before_a_figure_is_the_or_equal_the_runner_ups_make_likely(engine: engines.OcrEngine) -> None:
    # runner-ups as the small model gave them on dev scans: > at 0.68 with ≥ at 0.31 (a 120-DPI
    # scan, d064) is the ≥ these forms set targets with, and so is > at 0.83 with ≥ at 0.16 under
    # a first reading of the tiny model that had it at 0.98 with no blank (d012). A > read at 0.96
    # with ≥ at 0.03, a < whose runner-up is not ≤, and a > before no figure stay
    from pipeline import ocr
    from pipeline.engines import Reading
    from pipeline.types import PageScale, TextLine

    memo: dict[tuple[int, int, int, int], Reading] = {}
    cells = []
    for k, (first, second, scores, alts) in enumerate([
        (">90%", ">90%", [0.68, 1.0, 1.0, 0.99], [("≥", 0.31), ("»", 0.0003)]),
        (">320天", ">320 天", [0.83, 1.0, 1.0, 1.0, 0.82, 1.0], [("≥", 0.16), ("»", 0.0006)]),
        (">95%", ">95%", [0.96, 1.0, 1.0, 1.0], [("≥", 0.03), ("→", 0.0005)]),
        ("<5秒", "<5秒", [0.90, 1.0, 1.0], [("(", 0.09)]),
        ("A>B", "A>B", [1.0, 0.6, 1.0], [("≥", 0.4)]),
    ]):
        box = (0, 40 * k, 300, 40 * k + 30)
        memo[box] = Reading(second, 0.9, scores, "small", [alts if i == 0 or second[i] == ">" else []
                                                          for i in range(len(second))])
        c = Cell(k, 0, 1, 1, box)
        c.lines = [TextLine(first, box, 0.98, [0.98] * len(first), model="tiny")]
        cells.append(c)
    img = np.full((200, 300), 255, np.uint8)
    assert ocr.mark_fixes(img, cells, engine, PageScale(unit=1.0, glyph=19.0), memo) == 4
    assert [c.lines[0].text for c in cells] == ["≥90%", "≥320天", ">95%", "<5秒", "A>B"]
    assert cells[0].lines[0].char_scores[0] == 0.68  # as doubtful as the careful reading found it


def test_a_line_whose_ink_ends_in_a_mark_of_its_own() -> None:
    # what sends a sentence's last line to the check for a dropped 。 whatever its ink gap: a
    # small piece in the line's lower half, clear of every other piece's columns. Dots under a
    # character's strokes (点, 热) are part of it
    from pipeline import ocr

    g = 20

    def line(end: str) -> np.ndarray:
        img = np.zeros((30, 140), np.uint8)
        for x in (5, 30, 55):  # three characters
            cv2.rectangle(img, (x, 5), (x + 18, 24), 255, 2)
        if end == "stop":
            cv2.circle(img, (84, 21), 3, 255, 1)
        elif end == "dots":  # 灬 under a fourth character
            cv2.rectangle(img, (80, 5), (98, 16), 255, 2)
            for x in (82, 88, 94):
                cv2.circle(img, (x, 22), 1, 255, -1)
        elif end == "high":  # a small piece high up: a quote, not a full stop
            cv2.circle(img, (84, 8), 3, 255, 1)
        elif end == "foot":  # the 。 under the foot of the line above, which runs on past it
            cv2.circle(img, (84, 21), 3, 255, 1)
            img[0:3, 76:110] = 255
        return img

    box = (0, 0, 140, 30)
    assert ocr._ink_ends_in_a_mark(line("stop"), box, g)
    assert not ocr._ink_ends_in_a_mark(line("none"), box, g)
    assert not ocr._ink_ends_in_a_mark(line("dots"), box, g)
    assert not ocr._ink_ends_in_a_mark(line("high"), box, g)
    # (dev d055: a line box a few pixels tall held a stroke of the line above, past the 。)
    assert ocr._ink_ends_in_a_mark(line("foot"), box, g)


def test_a_mark_after_the_last_character_read_is_unread_ink(engine: engines.OcrEngine) -> None:
    # six cells of three drawn characters; one has a 。 after them its reading lacks: its ink gap
    # says a character's worth is unread, for the confidence model, though its ink runs past the
    # reading by less than a character
    from pipeline import ocr, preprocess
    from pipeline.types import PageScale, TextLine

    img = np.full((6 * 40, 200), 255, np.uint8)
    cells = []
    for i in range(6):
        y = i * 40 + 8
        for x in (10, 35, 60):
            cv2.rectangle(img, (x, y), (x + 18, y + 19), 0, 2)
        if i == 2:
            cv2.circle(img, (89, y + 16), 3, 0, 1)
        cell = Cell(i, 0, 1, 1, (0, i * 40, 200, i * 40 + 40))
        cell.lines = [TextLine("一二三", (6, y - 4, 110, y + 24), 0.99)]
        cells.append(cell)
    ocr.ink_gaps(img, preprocess.binarize(img), cells, engine, PageScale(unit=1.0, glyph=20.0))
    assert cells[2].ink_gap >= ocr.UNREAD_MARK_GAP
    assert all(abs(c.ink_gap) < 0.5 for i, c in enumerate(cells) if i != 2)


def test_marks_set_on_the_cells_right_rule_are_read_past_it(engine: engines.OcrEngine) -> None:
    # a 135-DPI scan's explanation cell (dev d061): its second and third lines end in ，and 。
    # set on the cell's right rule, which the line boxes stop at. Read past the rule with the
    # rule painted out, the ，joins its line; the 。 is read or not by a pixel of the crop's
    # width (on the page's own binary it is), and a line whose mark was not read keeps its ink
    # unread: evidence for the confidence model. The first line stops short of the rule
    from pipeline import ocr, preprocess
    from pipeline.types import PageScale, TextLine

    img = cv2.imread(str(REPO / "tests" / "fixtures" / "scan_marks_at_the_rule.png"), cv2.IMREAD_GRAYSCALE)
    binary = preprocess.binarize(img)
    cell = Cell(0, 0, 1, 1, (21, 21, 251, 139))
    boxes = [(22, 25, 250, 64), (22, 63, 250, 96), (22, 93, 250, 132)]
    hits, rule = ocr.marks_at_rule(binary, cell.bbox, boxes, 24.0)
    assert hits == [False, True, True] and rule is not None and 251 <= rule[0] <= rule[1] <= 258
    texts = ["项目达成的工作使", "评价成果得以应用", "政策是否有效覆盖"]
    cell.lines = [TextLine(t, b, 0.99) for t, b in zip(texts, boxes, strict=True)]
    changed: set[int] = set()
    unread, n = ocr._read_marks_at_rule(img, binary, [cell], cell.lines, engine, PageScale(unit=1.0, glyph=24.0),
                                        changed)
    first, second, last = cell.lines
    assert n == 2 and changed == {id(cell)}
    assert first.text == texts[0] and second.text == "评价成果得以应用，"
    # ... but what is left of a mark under the rule may be half a 。: mid-cell it stays a guess
    assert id(second) in unread and second.score <= ocr.RULE_MARK_MID
    assert last.text == "政策是否有效覆盖。" or (last.text == texts[2] and id(last) in unread)
    # a mid-cell line takes no full stop: a speck of the rule read as 。 would end a sentence early
    mid = TextLine("评价成果得以应用", boxes[1], 0.99)
    assert ocr._mark_after(engines.Reading("评价成果得以应用。", 0.9, None), mid.text, ocr._RULE_MARKS - {"。"}) is None
    assert ocr._mark_after(engines.Reading("评价成果得以应甬，", 0.9, None), mid.text, ocr._RULE_MARKS) == ("，", 0.9)


def test_marks_hung_on_the_cells_right_rule_are_found_and_a_cell_ends_in_a_full_stop(
    engine: engines.OcrEngine,
) -> None:
    # a clean form scanned squeezed and soft (dev d022's remark, not a corpus file): ，and 。 hang
    # past the text's margin onto the cell's right rule, as Chinese typesetting hangs them, with
    # most of each mark under the rule. The lines end half a glyph short of the rule, and the rule
    # is wider by only the marks' right edges (2 px, on a quarter glyph of rows). The last line's
    # mark, read as a comma from the half left of it, is the cell's full stop; the second line's
    # mark is a guess between the two and stays doubtful
    from pipeline import ocr, preprocess
    from pipeline.types import PageScale, TextLine

    img = cv2.imread(str(REPO / "tests" / "fixtures" / "scan_marks_hanging_on_the_rule.png"), cv2.IMREAD_GRAYSCALE)
    binary = preprocess.binarize(img)
    glyph = 26.0
    cell = Cell(0, 0, 1, 1, (20, 20, 233, 179))
    boxes = [(21, 28, 232, 66), (21, 59, 232, 106), (21, 99, 232, 137), (21, 132, 232, 175)]
    hits, rule = ocr.marks_at_rule(binary, cell.bbox, boxes, glyph)
    assert hits == [False, True, False, True] and rule is not None
    texts = ["偏差原因：受客观因", "素影响部分工作延后", "改进措施：加强计划", "管理，提前做好安排"]
    cell.lines = [TextLine(t, b, 0.99) for t, b in zip(texts, boxes, strict=True)]
    changed: set[int] = set()
    _unread, n = ocr._read_marks_at_rule(img, binary, [cell], cell.lines, engine,
                                         PageScale(unit=1.0, glyph=glyph), changed)
    assert n == 2 and changed == {id(cell)}
    assert cell.lines[3].text == "管理，提前做好安排。"
    second = cell.lines[1]
    assert second.text[:-1] == texts[1] and second.text[-1] in ocr._RULE_MARKS
    assert second.score <= ocr.RULE_MARK_MID


def test_a_mark_mostly_under_the_rule_is_found_half_a_glyph_past_the_text() -> None:
    # hanging punctuation: the text stops half a glyph short of the rule and the mark sits on
    # it, showing past it by no more than the rule's unevenness (2 px) but on a quarter glyph of
    # rows together; a bump of two rows, or a line that stops a glyph short, is not one
    from pipeline import ocr

    g = 26.0

    def cell(mark_rows: int, end: int) -> np.ndarray:
        b = np.zeros((120, 260), np.uint8)
        b[:, 236:241] = 255  # the rule, 5 px
        for x in range(10, end, 30):  # characters up to `end`
            b[38:62, x:min(x + 24, end)] = 255
        b[50:50 + mark_rows, 241:243] = 255  # what shows of the mark right of the rule
        return b

    box, line = (0, 0, 236, 120), [(1, 30, 235, 70)]
    assert ocr.marks_at_rule(cell(8, 222), box, line, g)[0] == [True]
    assert ocr.marks_at_rule(cell(2, 222), box, line, g)[0] == [False]
    assert ocr.marks_at_rule(cell(8, 205), box, line, g)[0] == [False]


def test_a_sentences_last_mark_on_the_rule_that_reads_as_nothing_is_a_doubtful_full_stop(
    engine: engines.OcrEngine,
) -> None:
    # a 200-DPI scan's explanation cell (dev d028): the 。 after 安全 sits with its middle under
    # the cell's right rule; with the rule painted out the recogniser names nothing there. The
    # mark is seen, so a sentence ends in a full stop, scored as a guess and its ink still
    # counted unread; a label-like text (no clause mark, under SENTENCE_LEN) takes none
    from pipeline import ocr, preprocess
    from pipeline.types import PageScale, TextLine

    img = cv2.imread(str(REPO / "tests" / "fixtures" / "scan_full_stop_under_the_rule.png"), cv2.IMREAD_GRAYSCALE)
    binary = preprocess.binarize(img)
    scale = PageScale(unit=1.0, glyph=23.0)
    boxes = [(21, 72, 333, 106), (21, 103, 333, 136), (21, 135, 333, 169)]
    for texts, stop in ((["项目资金使用是否符合相关", "法律法规、制度和规定，项", "目资金使用是否规范和安全"], True),
                        (["资金", "规定", "安全"], False)):
        cell = Cell(0, 0, 1, 1, (20, 20, 334, 222))
        cell.lines = [TextLine(t, b, 0.99) for t, b in zip(texts, boxes, strict=True)]
        assert ocr.marks_at_rule(binary, cell.bbox, boxes, scale.glyph)[0] == [False, False, True]
        unread, n = ocr._read_marks_at_rule(img, binary, [cell], cell.lines, engine, scale, set())
        last = cell.lines[2]
        assert n == 1 and id(last) in unread
        if stop:
            assert last.text == texts[2] + "。" and last.score <= ocr.RULE_MARK_MID
        else:
            assert last.text == texts[2]


def test_a_thick_figures_filled_counter_is_read_from_its_ink_thinned(engine: engines.OcrEngine) -> None:
    # a 1-bit copy printed thick (bench/unseen.py's thick condition, glyph 25 px): 306,600 with
    # the 6's counter filled read as 308,600 at 0.99. Thinned by a pixel it reads as printed;
    # the same figure in thinner strokes is not read again
    from pipeline import ocr
    from pipeline.types import PageScale, TextLine

    img = cv2.imread(str(REPO / "tests" / "fixtures" / "thick_1bit_figure_cell.png"), cv2.IMREAD_GRAYSCALE)
    scale = PageScale(unit=1.0, glyph=25.0)

    def cell(page: np.ndarray) -> Cell:
        c = Cell(0, 0, 1, 1, (0, 0, page.shape[1], page.shape[0]))
        c.lines = [TextLine("308,600", (16, 18, 145, 57), 0.99, [0.99] * 7, "small")]
        return c

    thick = cell(img)
    assert ocr.thick_eights(img, [thick], engine, scale) == 1
    assert thick.text == "306,600" and thick.lines[0].score <= 0.99
    thinner = cv2.dilate(img, np.ones((3, 3), np.uint8))
    plain = cell(thinner)
    assert ocr.thick_eights(thinner, [plain], engine, scale) == 0 and plain.text == ""


def test_a_clause_runs_on_from_the_line_before_it_in_reading_order(engine: engines.OcrEngine) -> None:
    # a cell's lines are kept in the order they were found, not read: the clause's context is the
    # line above it on the page (…执行的有 | 或性, 或 read at 0.44 with 效 at 0.40: 有效性)
    from pipeline import ocr
    from pipeline.engines import Reading
    from pipeline.types import PageScale, TextLine

    low, top = (0, 40, 300, 70), (0, 0, 300, 30)
    memo = {low: Reading("或性", 0.5, [0.44, 0.999], "small", [[("效", 0.40), ("戴", 0.12)], []])}
    cell = Cell(0, 0, 1, 1, (0, 0, 300, 80))
    cell.lines = [TextLine("或性", low, 0.5, [0.44, 0.999], "small"),
                  TextLine("管理制度健全性和执行的有", top, 0.99, [0.999] * 12, "small")]
    img = np.full((80, 300), 255, np.uint8)
    assert ocr.context_fixes(img, [cell], engine, PageScale(unit=1.0, glyph=19.0), memo) == 1
    assert cell.text == "管理制度健全性和执行的有效性"


def test_a_line_edited_since_its_reading_still_weighs_its_runner_ups(engine: engines.OcrEngine) -> None:
    # the stages before context_fixes edit lines (word_fixes: 完或 -> 完成; a mark added at the end):
    # the reading with runner-ups no longer matches the line's text, which left 94 of 97 doubtful
    # lines of two heavy dev pages unread. Each character r shares in place keeps r's runner-ups
    from pipeline import ocr
    from pipeline.engines import Reading
    from pipeline.types import PageScale, TextLine

    box = (0, 0, 300, 30)
    first = Reading("部分完或的情扣分", 0.6, [0.99, 0.999, 0.96, 0.5, 0.558, 0.998, 0.997, 0.999], "small",
                    [[], [], [("究", 0.03)], [("成", 0.49)], [("酌", 0.432), ("励", 0.003)], [], [], []])
    cell = Cell(0, 0, 1, 1, (0, 0, 300, 40))
    cell.lines = [TextLine("部分完成的情扣分，", box, 0.6, [0.99, 0.999, 0.96, 0.5, 0.558, 0.998, 0.997, 0.999, 0.9],
                           "small")]
    img = np.full((40, 300), 255, np.uint8)
    assert ocr.context_fixes(img, [cell], engine, PageScale(unit=1.0, glyph=19.0), {box: first}) == 1
    assert cell.text == "部分完成酌情扣分，"
    # a place r read otherwise offers r's own character back: 成 (put there at 或's 0.5) against 或
    alts = ocr._aligned_alts("部分完成的情扣分，", first)
    assert alts is not None and alts[3][0] == ("或", 0.5) and alts[8] == []


def test_a_box_detection_made_of_two_lines_is_read_as_two(engine: engines.OcrEngine) -> None:
    # a 1-bit tiff's header cell (dev d054, glyph 28 px): detection boxed 二级 | 指标 as one line,
    # read 二标, and a header misread is a column lost. Split by the ink's own bands, each is read
    from pipeline import ocr

    img = cv2.imread(str(REPO / "tests" / "fixtures" / "two_line_header_cell.png"), cv2.IMREAD_GRAYSCALE)
    binary = cv2.threshold(img, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)[1]
    box = (17, 18, 185, 124)
    bands = ocr._line_bands(binary, box, 28.0)
    assert len(bands) == 2 and all(box[1] <= b[1] < b[3] <= box[3] for b in bands)
    texts = [r.text.strip() for r in engine.recognize([ocr._line_crop(img, b, 1.0) for b in bands])]
    assert texts == ["二级", "指标"]
    # a box one line tall, or two lines' height of one line's ink, stays as it is
    assert ocr._line_bands(binary, bands[0], 28.0) == [bands[0]]
    one = binary.copy()
    one[bands[1][1]:bands[1][3] + 1] = 0
    assert ocr._line_bands(one, box, 28.0) == [box]


def test_a_faint_figure_under_a_dust_speck_is_read_without_the_speck(engine: engines.OcrEngine) -> None:
    # a heavy scan's score cell (dev d011, glyph 19 px): a pale 0 with a black speck above it
    # reads '&', and its ink crop (dark pixels only) holds the speck alone. Painted over and
    # stretched to full contrast, the 0 is read; the speck on clean paper reads no number
    from pipeline import ocr
    from pipeline.types import PageScale, TextLine

    img = cv2.imread(str(REPO / "tests" / "fixtures" / "heavy_faint_zero_with_speck.png"), cv2.IMREAD_GRAYSCALE)
    scale = PageScale(unit=1.0, glyph=19.0)

    def cell(page: np.ndarray) -> Cell:
        c = Cell(0, 0, 1, 1, (10, 10, 110, 60))
        c.lines = [TextLine("&", (41, 13, 89, 49), 0.6, [0.6], "small")]
        return c

    zero = cell(img)
    assert ocr.thin_ones(img, [zero], engine, scale) == 1
    assert zero.text == "0" and zero.lines[0].score <= 0.6
    speck_only = np.where(img < 128, img, 235).astype(np.uint8)
    alone = cell(speck_only)
    assert ocr._faint_crop(speck_only, (41, 13, 89, 49), (10, 10, 110, 60), 19.0) is None
    ocr.thin_ones(speck_only, [alone], engine, scale)
    assert alone.lines[0].text == "&"


def test_a_pale_figure_read_as_a_doubtful_lone_character_is_read_again(engine: engines.OcrEngine) -> None:
    # a heavy scan's weight cell (dev d060, glyph 18 px): a pale 5 read as 车 at 0.79. Its ink
    # crop reads 5; the same reading made surely is a character a cell may hold, left alone
    from pipeline import ocr
    from pipeline.types import PageScale, TextLine

    img = cv2.imread(str(REPO / "tests" / "fixtures" / "heavy_pale_five.png"), cv2.IMREAD_GRAYSCALE)
    scale = PageScale(unit=1.0, glyph=18.0)

    def cell(score: float) -> Cell:
        c = Cell(0, 0, 1, 1, (0, 0, img.shape[1], img.shape[0]))
        c.lines = [TextLine("车", (30, 24, 61, 49), score, [score], "small")]
        return c

    doubtful, sure = cell(0.79), cell(0.99)
    assert ocr.thin_ones(img, [doubtful, sure], engine, scale) == 1
    assert doubtful.text == "5" and sure.lines[0].text == "车"


def test_a_cell_whose_faint_figure_read_as_nothing_is_read_from_its_faint_print(
        engine: engines.OcrEngine) -> None:
    # a heavy scan's score cell (dev d060, glyph 18 px): its ink box read as nothing; the same
    # box at full contrast reads 6, taken as doubtful as a second reading can be
    from pipeline import ocr
    from pipeline.engines import Reading
    from pipeline.types import PageScale

    img = cv2.imread(str(REPO / "tests" / "fixtures" / "heavy_unread_six.png"), cv2.IMREAD_GRAYSCALE)
    c = Cell(0, 0, 1, 1, (10, 10, 108, 86))
    c.unread_ink = True
    box = (30, 26, 70, 61)
    assert ocr._faint_figures(img, [(c, box, Reading("", 0.0, None))], engine, PageScale(unit=1.0, glyph=18.0)) == 1
    assert c.text == "6" and not c.unread_ink and c.lines[0].score <= 0.5
