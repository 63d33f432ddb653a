"""Text -> cells: lines split at borders, joined by the spec rule, erased rules recovered from text."""

from __future__ import annotations

from pipeline.celltext import (
    CUT_CHAR_SCORE,
    cut_line,
    finish_cell,
    group_visual_lines,
    split_by_text,
    text_across,
)
from pipeline.ocr import _split_at_cells
from pipeline.types import Cell, Grid, TextLine


def test_line_crossing_a_border_is_split() -> None:
    cells = [(0, (0, 0, 200, 50)), (1, (200, 0, 400, 50))]
    pieces = _split_at_cells((20, 10, 380, 40), cells)
    assert [cid for cid, _ in pieces] == [0, 1]
    assert pieces[0][1][2] <= 200 <= pieces[1][1][0]


def test_sliver_over_border_ignored() -> None:
    cells = [(0, (0, 0, 200, 50)), (1, (200, 0, 400, 50))]
    pieces = _split_at_cells((20, 10, 208, 40), cells)  # 8 px past the rule: no character there
    assert [cid for cid, _ in pieces] == [0]


def test_line_read_across_a_lost_rule_is_cut_between_characters() -> None:
    # two cells' texts on one baseline read as one line: 8 characters left of x=240, 12 right
    h = 30
    x0 = 40 - int(0.175 * h)  # the box's padding before the glyphs (celltext.PAD_BEFORE)
    ln = TextLine("项目管理制度的健度是否健全、完善和有效，", (x0, 0, 40 + 20 * 25 + int(0.35 * h), h), 0.99)
    a, b = cut_line(ln, 240)
    assert (a.text, b.text) == ("项目管理制度的健", "度是否健全、完善和有效，")
    assert a.cut and b.cut and a.char_scores and b.char_scores
    assert a.char_scores[-1] == b.char_scores[0] == CUT_CHAR_SCORE and a.char_scores[0] == 0.99
    assert a.bbox[2] == b.bbox[0] and a.bbox[0] == ln.bbox[0] and b.bbox[2] == ln.bbox[2]
    # half-width characters take half the room: "A1" + "项目" cut after "A1"
    a, b = cut_line(TextLine("A1项目", (5, 0, 80, h), 0.99), 30)  # glyphs at x 10-70
    assert (a.text, b.text) == ("A1", "项目")


def test_a_cut_that_would_leave_a_side_empty_is_none() -> None:
    assert cut_line(TextLine("项", (0, 0, 40, 30), 0.99), 20) is None


def test_cell_text_joined_by_spec_rule() -> None:
    c = Cell(0, 0, 1, 1, (0, 0, 500, 200))
    c.lines = [TextLine("项目资金使用是否符合", (5, 5, 300, 35), 0.99), TextLine("规定。", (5, 40, 80, 70), 0.98),
               TextLine("Total", (5, 80, 60, 110), 0.9), TextLine("100", (70, 80, 110, 110), 0.97)]
    finish_cell(c)
    assert c.text == "项目资金使用是否符合规定。 Total 100"
    assert abs(c.confidence - 0.9) < 1e-9
    assert [len(r) for r in group_visual_lines(c.lines)] == [1, 1, 2]


def test_erased_rule_recovered_from_text_layout() -> None:
    # weight and score columns merged by an erased rule: "11" and "10" sit far apart in two bands
    merged = Cell(1, 1, 1, 2, (100, 40, 300, 80))
    merged.lines = [TextLine("11", (130, 50, 160, 72), 0.99), TextLine("10", (230, 50, 260, 72), 0.99)]
    para = Cell(2, 0, 1, 3, (0, 80, 300, 120))  # one paragraph line crossing both rules: stays merged
    para.lines = [TextLine("用以反映和考核项目", (10, 85, 290, 110), 0.99), TextLine("完成", (10, 90, 50, 115), 0.99)]
    g = Grid(row_lines=[0, 40, 80, 120], col_lines=[0, 100, 200, 300],
             cells=[Cell(0, 0, 1, 3, (0, 0, 300, 40)), merged, para])
    assert split_by_text(g) == 1
    texts = sorted((c.col, c.col_span, c.text) for c in g.cells if c.row == 1)
    assert texts == [(1, 1, "11"), (2, 1, "10")]


def test_erased_rule_between_label_and_value_recovered() -> None:
    # 项目名称 | value: the value starts right after the lost rule; the padded line boxes
    # nearly touch, but the glyphs themselves are over a glyph height apart
    h = 36
    merged = Cell(0, 0, 1, 2, (350, 430, 1260, 470))
    merged.lines = [TextLine("项目名称", (384, 431, 501, 431 + h), 0.9),
                    TextLine("审核监督服务信息系统", (525, 431, 830, 431 + h), 0.9)]
    g = Grid(row_lines=[428, 472], col_lines=[348, 534, 1262], cells=[merged])
    assert split_by_text(g) == 1
    assert sorted((c.col, c.text) for c in g.cells) == [(0, "项目名称"), (1, "审核监督服务信息系统")]
    # words of one sentence a space apart stay one cell
    merged2 = Cell(0, 0, 1, 2, (350, 430, 1260, 470))
    merged2.lines = [TextLine("项目名称", (384, 431, 520, 431 + h), 0.9),
                     TextLine("审核监督服务信息系统", (525, 431, 830, 431 + h), 0.9)]
    g2 = Grid(row_lines=[428, 472], col_lines=[348, 534, 1262], cells=[merged2])
    assert split_by_text(g2) == 0


def test_text_split_ignores_lattice_lines_the_text_runs_across() -> None:
    # a stray lattice line (from a rule of another row) runs through the label itself:
    # the split still happens at the lost rule between label and value
    h = 36
    merged = Cell(0, 0, 1, 3, (350, 430, 1260, 470))
    merged.lines = [TextLine("项目名称", (384, 431, 501, 431 + h), 0.9),
                    TextLine("审核监督服务信息系统", (525, 431, 830, 431 + h), 0.9)]
    g = Grid(row_lines=[428, 472], col_lines=[348, 429, 534, 1262], cells=[merged])
    assert split_by_text(g) == 1
    assert sorted((c.col, c.col_span, c.text) for c in g.cells) == [(0, 2, "项目名称"), (2, 1, "审核监督服务信息系统")]


def _lined(bbox: tuple[int, int, int, int], lines: list[tuple[str, tuple[int, int, int, int]]]) -> Cell:
    c = Cell(0, 0, 1, 1, bbox, lines=[TextLine(t, b, 0.99) for t, b in lines])
    finish_cell(c)
    return c


def test_a_value_cut_in_two_by_a_false_rule_reads_line_by_line_across_it() -> None:
    left = _lined((0, 0, 300, 100), [("项目为经常性项目，", (5, 5, 299, 35)), ("施前，能够加强", (5, 40, 299, 70))])
    right = _lined((300, 0, 600, 100), [("以前年度工作经验。建议在后续年度项目实", (301, 6, 595, 36)),
                                        ("排摸调研工作。", (301, 41, 500, 71))])
    assert text_across([left, right]) == "项目为经常性项目，以前年度工作经验。建议在后续年度项目实施前，能够加强排摸调研工作。"
    # stacked cells, and a cell whose text is no longer its lines' (a repair), keep cell order
    below = _lined((0, 100, 300, 200), [("第二段", (5, 105, 200, 135))])
    assert text_across([left, below]) == left.text + below.text
    right.text = "修复"
    assert text_across([left, right]) == left.text + "修复"
