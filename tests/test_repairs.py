"""Repairs OCR makes on a heavy scan, through the whole page reading (data/raw/d030.pdf).

d030 is a blurred 150-DPI print with rules erased in places: its lone digits are missed
by text detection (`ocr.second_look` reads them from their ink), and the rule between
项目名称 and its value, and inside the 权重 column, is gone (`celltext.split_by_text`
splits the merged cells the text shows apart). Each test fails with its repair off.
OCR results come from tests/ocr_cache, as in test_golden_forms.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline import engines, process
from pipeline.types import FormRecord

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / "tests" / "ocr_cache"


@pytest.fixture(scope="module")
def d030() -> process.FileResult:
    engine = engines.CachedEngine(engines.RapidOcrEngine(), CACHE)
    return process.process_file(REPO / "data" / "raw" / "d030.pdf", engine=engine)


def _indicator(rec: FormRecord, name: str) -> dict:
    return next(i for i in rec.indicators if i["name"].value == name)


def test_second_look_reads_lone_digits(d030: process.FileResult) -> None:
    (rec,) = d030.records
    row = _indicator(rec, "差错率")
    assert (row["weight"].value, row["score"].value) == (5, 5)
    assert _indicator(rec, "任务完成及时性")["weight"].value == 5
    (page,) = d030.pages
    assert page.timings["n_second_look"] > 0


def test_split_by_text_recovers_lost_rules(d030: process.FileResult) -> None:
    (rec,) = d030.records
    # 项目名称 | value merged: the value is its own field again, its box right of the lost rule
    name = rec.fields["project_name"]
    assert name.value and name.bbox is not None and name.bbox[0] > 500
    assert name.label == "项目名称"
    # two 权重 cells merged down the column read "10 100" without the split
    assert rec.fields["total_weight"].value == 100
    assert rec.fields["annual_goal"].value and rec.fields["goal_achieved"].value


# one-line cells of d030 that read whole: the repairs below are tried on copies of them cut short
_WHOLE = ("上海市闵行区人民政府古美路街道办事处", "年度资金总额")


def _read_cells(d030: process.FileResult) -> list:
    (page,) = d030.pages
    return [c for g in page.grids for c in g.cells if c.lines]


def test_the_ink_of_a_whole_reading_is_as_wide_as_its_text(d030: process.FileResult) -> None:
    # the page's own pitch turns ink extent into characters: a whole reading leaves none over
    gaps = [c.ink_gap for c in _read_cells(d030)]
    assert len(gaps) > 50
    assert sum(abs(g) < 0.5 for g in gaps) / len(gaps) >= 0.8


def test_a_reading_short_of_its_ink_is_read_again(d030: process.FileResult, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline import ocr
    from pipeline.types import Cell, TextLine

    (page,) = d030.pages
    prep = page.prepared
    assert prep.binary is not None and prep.scale is not None
    cells = _read_cells(d030)
    # a one-line cell read whole (named: which cells qualify moves with every change to the page)
    whole = next(c for c in cells if c.text == _WHOLE[0])
    assert len(whole.lines) == 1 and abs(whole.ink_gap) < 0.2
    text = whole.text

    def short_copy() -> tuple[list[Cell], Cell]:
        (ln,) = whole.lines
        short = Cell(whole.row, whole.col, whole.row_span, whole.col_span, whole.bbox, text=text[:-1],
                     lines=[TextLine(text=text[:-1], bbox=ln.bbox, score=ln.score)])
        others = [Cell(c.row, c.col, c.row_span, c.col_span, c.bbox, text=c.text,
                       lines=[TextLine(t.text, t.bbox, t.score) for t in c.lines]) for c in cells if c is not whole]
        return [*others, short], short

    engine = engines.CachedEngine(engines.RapidOcrEngine(), CACHE)
    # without a second reading the dropped character is evidence: a character of ink unread
    monkeypatch.setattr(ocr, "REREAD_GAP", 99.0)
    copy, short = short_copy()
    ocr.ink_gaps(prep.image, prep.binary, copy, engine, prep.scale)  # (sentences' ends are still checked)
    assert short.text == text[:-1] and short.ink_gap >= 0.6
    # with it, the line is read again from other crops and comes back whole
    monkeypatch.setattr(ocr, "REREAD_GAP", 0.6)
    copy, short = short_copy()
    assert ocr.ink_gaps(prep.image, prep.binary, copy, engine, prep.scale) >= 1
    assert short.text == text and abs(short.ink_gap) < 0.5


def test_a_tiny_reading_in_doubt_goes_to_the_full_model(d030: process.FileResult) -> None:
    """The cascade's tiny recogniser is sure of readings that drop a character at the end or
    misread one into no word: those lines are read again, as they were cropped, by the small model."""
    from pipeline import ocr
    from pipeline.lexicon import lone_chars
    from pipeline.types import Cell, TextLine

    (page,) = d030.pages
    prep = page.prepared
    assert prep.binary is not None and prep.scale is not None
    cells = _read_cells(d030)
    short_one, odd_one = (next(c for c in cells if c.text == t) for t in _WHOLE)
    assert all(len(c.lines) == 1 and abs(c.ink_gap) < 0.2 for c in (short_one, odd_one))
    odd = odd_one.text[:2] + "淫" + odd_one.text[3:]
    assert lone_chars(odd)[0] > 0 and lone_chars(odd_one.text)[0] == 0

    def tiny_copy(cell: Cell, text: str, score: float) -> Cell:
        (ln,) = cell.lines
        return Cell(cell.row, cell.col, cell.row_span, cell.col_span, cell.bbox, text=text,
                    lines=[TextLine(text, ln.bbox, score, [score] * len(text), model="tiny")])

    def page_copy(score: float) -> tuple[list[Cell], Cell, Cell]:
        short = tiny_copy(short_one, short_one.text[:-1], score)
        misread = tiny_copy(odd_one, odd, score)
        others = [Cell(c.row, c.col, c.row_span, c.col_span, c.bbox, text=c.text,
                       lines=[TextLine(t.text, t.bbox, t.score) for t in c.lines])
                  for c in cells if c is not short_one and c is not odd_one]
        return [*others, short, misread], short, misread

    engine = engines.CachedEngine(engines.RapidOcrEngine(), CACHE)
    copy, short, misread = page_copy(0.98)
    assert ocr.ink_gaps(prep.image, prep.binary, copy, engine, prep.scale) >= 2
    assert (short.text, short.lines[0].model) == (short_one.text, "small")
    assert (misread.text, misread.lines[0].model) == (odd_one.text, "small")
    # a small-model line is not read again for a character that fits no word; nor a tiny one
    # whose every character scored past TINY_LONE_MIN
    copy, short, misread = page_copy(0.999)
    misread.lines[0].model = "small"
    ocr.ink_gaps(prep.image, prep.binary, copy, engine, prep.scale)
    assert misread.text == odd and short.text == short_one.text
    copy, short, misread = page_copy(0.999)
    ocr.ink_gaps(prep.image, prep.binary, copy, engine, prep.scale)
    assert misread.text == odd and misread.lines[0].model == "tiny"
