"""Normalize on hand-built grids: labels -> keys, blocks, spans repeated, page-break stitching."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.assemble import split_forms
from pipeline.celltext import finish_cell
from pipeline.normalize import build_records
from pipeline.types import Cell, FormRecord, Grid, PageImage, PageResult, PreparedPage, TextLine, Value

W = 1000  # table width in px; columns are given in tenths of it


def _grid(rows: list[list[tuple[str, int, int, int]]], top: int = 100, row_h: int = 40) -> Grid:
    """rows: per lattice row, cells as (text, col in tenths, col_span in tenths, row_span)."""
    cells = []
    for r, row in enumerate(rows):
        for text, c, cs, rs in row:
            bbox = (c * 100, top + r * row_h, (c + cs) * 100, top + (r + rs) * row_h)
            cells.append(Cell(r, c, rs, cs, bbox, text=text, confidence=0.99))
    return Grid(row_lines=[top + i * row_h for i in range(len(rows) + 1)], col_lines=list(range(0, W + 1, 100)), cells=cells)


def _page(n: int, grid: Grid, title: str | None = None) -> PageResult:
    img = np.full((1400, W), 255, np.uint8)
    prepared = PreparedPage(PageImage(Path("x.pdf"), n, img, 200), img, img, 0, 0.0)
    free = [TextLine(title, (300, 30, 700, 70), 0.99)] if title else []
    return PageResult(prepared=prepared, grids=[grid], free_lines=free)


def test_family_a_like_form_over_two_pages() -> None:
    p1 = _grid([
        [("项目名称", 0, 2, 1), ("合作交流工作业务费", 2, 3, 1), ("预算单位", 5, 2, 1), ("上海市人民政府合作交流办公室", 7, 3, 1)],
        [("当年预算数(元)", 0, 2, 1), ("2,523,747.00", 2, 3, 1), ("预算执行率(%)", 5, 2, 1), ("65.37%", 7, 3, 1)],
        [("自评时间", 0, 2, 1), ("2020-3-15", 2, 8, 1)],
        [("绩效 等级", 0, 2, 1), ("良好", 2, 8, 1)],
        [("一级指标", 0, 2, 1), ("指标名称", 2, 2, 1), ("指标解释", 4, 3, 1), ("权重", 7, 1, 1), ("自评分", 8, 1, 1), ("备注", 9, 1, 1)],
        [("投入与管理 (36分)", 0, 2, 2), ("资金使用的合规性", 2, 2, 1), ("项目资金使用是否合规", 4, 3, 1), ("6", 7, 1, 1), ("6", 8, 1, 1), ("", 9, 1, 1)],
        [("预算执行率", 2, 2, 1), ("反映项目预算执行的进度", 4, 3, 1), ("8", 7, 1, 1), ("0", 8, 1, 1), ("", 9, 1, 1)],
        [("", 0, 2, 1), ("项目计划完成情况", 2, 2, 1), ("项目计划的实际完成情况", 4, 3, 1), ("11", 7, 1, 1), ("9", 8, 1, 1), ("", 9, 1, 1)],
    ])
    # page 2: the indicator table goes on without a header; the merged level1 cell was cut by
    # the page break and its label printed on this side only
    p2 = _grid([
        [("产出目标 (34分)", 0, 2, 2), ("课题转化成果率", 2, 2, 1), ("课题成果是否运用到工作中", 4, 3, 1), ("12", 7, 1, 1), ("11", 8, 1, 1), ("", 9, 1, 1)],
        [("用户满意度", 2, 2, 1), ("用户的体验", 4, 3, 1), ("11", 7, 1, 1), ("10", 8, 1, 1), ("好", 9, 1, 1)],
        [("合计", 0, 2, 1), ("", 2, 5, 1), ("100", 7, 1, 1), ("88", 8, 1, 1), ("", 9, 1, 1)],
        [("说明：1、依据本项目应实现的绩效目标", 0, 10, 1)],
    ])
    pages = [_page(1, p1, "2019年度财政项目绩效自我评价"), _page(2, p2)]
    forms = split_forms(pages)
    assert len(forms) == 1 and forms[0].page_numbers == [1, 2]
    (rec,) = build_records(forms, "x.pdf")
    f = {k: v.value for k, v in rec.fields.items()}
    assert f["form_title"] == "2019年度财政项目绩效自我评价" and f["fiscal_year"] == 2019
    assert f["project_name"] == "合作交流工作业务费"
    assert f["budget_unit"] == "上海市人民政府合作交流办公室"
    assert f["budget_current_year"] == 2523747.0 and f["execution_rate"] == 65.37
    assert f["evaluation_date"] == "2020-03-15" and f["grade"] == "良好"
    assert (f["total_weight"], f["total_score"]) == (100, 88)
    names = [i["name"].value for i in rec.indicators]
    assert names == ["资金使用的合规性", "预算执行率", "项目计划完成情况", "课题转化成果率", "用户满意度"]
    level1 = [i["level1"].value for i in rec.indicators]
    assert level1 == ["投入与管理", "投入与管理", "产出目标", "产出目标", "产出目标"]
    assert [i["level1_points"].value for i in rec.indicators] == [36, 36, 34, 34, 34]
    assert [i["score"].value for i in rec.indicators] == [6, 0, 9, 11, 10]
    assert rec.indicators[4]["remark"].value == "好" and rec.indicators[0]["remark"].value is None


def test_label_cut_by_a_page_break_is_carried_past_a_blank_piece_above_it() -> None:
    # 投入与管理's merged cell runs to the foot of page 1 and on over the break; a false rule near
    # the foot cut a blank piece off it. The blank piece at the top of page 2 is still 投入与管理
    # (not 产出目标, printed below it on page 2)
    p1 = _grid([
        [("项目名称", 0, 2, 1), ("合作交流工作业务费", 2, 8, 1)],
        [("一级指标", 0, 2, 1), ("指标名称", 2, 4, 1), ("权重", 6, 2, 1), ("自评分", 8, 2, 1)],
        [("投入与管理 (30分)", 0, 2, 1), ("资金使用的合规性", 2, 4, 1), ("10", 6, 2, 1), ("10", 8, 2, 1)],
        [("", 0, 2, 1), ("预算执行率", 2, 4, 1), ("10", 6, 2, 1), ("8", 8, 2, 1)],
    ])
    p2 = _grid([
        [("", 0, 2, 1), ("项目计划完成情况", 2, 4, 1), ("10", 6, 2, 1), ("9", 8, 2, 1)],
        [("产出目标 (10分)", 0, 2, 1), ("课题转化成果率", 2, 4, 1), ("10", 6, 2, 1), ("10", 8, 2, 1)],
    ])
    (rec,) = build_records(split_forms([_page(1, p1, "2019年度财政项目绩效自我评价"), _page(2, p2)]), "x.pdf")
    assert [r["level1"].value for r in rec.indicators] == ["投入与管理"] * 3 + ["产出目标"]
    assert [r["level1_points"].value for r in rec.indicators] == [30, 30, 30, 10]


def test_family_b_like_funding_and_goal_blocks() -> None:
    g = _grid([
        [("项目名称", 0, 2, 1), ("机关服务费", 2, 8, 1)],
        [("主管部门", 0, 2, 1), ("上海市人民政府合作交流办公室", 2, 4, 1), ("实施单位", 6, 1, 1), ("驻昆明办事处", 7, 3, 1)],
        [("项目资金 (元)", 0, 1, 3), ("", 1, 2, 1), ("年初预算数", 3, 1, 1), ("全年预算数", 4, 1, 1), ("全年执行数", 5, 1, 1),
         ("分值", 6, 1, 1), ("执行率", 7, 1, 1), ("得分", 8, 2, 1)],
        [("年度资金总额", 1, 2, 1), ("175,000", 3, 1, 1), ("175,000", 4, 1, 1), ("172,492.71", 5, 1, 1),
         ("10", 6, 1, 1), ("98.57%", 7, 1, 1), ("9.86", 8, 2, 1)],
        [("上年结转资金", 1, 2, 1), ("-", 3, 1, 1), ("-", 4, 1, 1), ("-", 5, 1, 1), ("-", 6, 1, 1), ("-", 7, 1, 1), ("-", 8, 2, 1)],
        [("年度总体目标", 0, 1, 2), ("预期目标", 1, 5, 1), ("实际完成情况", 6, 4, 1)],
        [("保障公务用车正常运行。", 1, 5, 1), ("有力保障了公务活动。", 6, 4, 1)],
        [("绩效指标", 0, 1, 3), ("一级指标", 1, 1, 1), ("二级指标", 2, 1, 1), ("三级指标", 3, 2, 1), ("年度指标值", 5, 1, 1),
         ("实际完成值", 6, 1, 1), ("分值", 7, 1, 1), ("得分", 8, 1, 1), ("偏差原因分析及改进措施", 9, 1, 1)],
        [("产出指标", 1, 1, 2), ("数量指标", 2, 1, 2), ("任务完成率", 3, 2, 1), ("100%", 5, 1, 1), ("100%", 6, 1, 1),
         ("10", 7, 1, 1), ("10", 8, 1, 1), ("", 9, 1, 1)],
        [("接待团组数量", 3, 2, 1), ("≥60 批", 5, 1, 1), ("68 批", 6, 1, 1), ("10", 7, 1, 1), ("10", 8, 1, 1), ("", 9, 1, 1)],
        [("总分", 0, 7, 1), ("100", 7, 1, 1), ("98.86", 8, 1, 1), ("", 9, 1, 1)],
    ])
    page = _page(1, g, "财政项目支出绩效自评表")
    page.free_lines.append(TextLine("（ 2022 年度）", (400, 75, 600, 95), 0.99))
    (rec,) = build_records(split_forms([page]), "x.pdf")
    f = {k: v.value for k, v in rec.fields.items()}
    assert f["fiscal_year"] == 2022 and f["form_title"] == "财政项目支出绩效自评表"
    assert f["competent_department"] == "上海市人民政府合作交流办公室" and f["implementing_unit"] == "驻昆明办事处"
    assert (f["budget_initial"], f["budget_current_year"], f["budget_executed"]) == (175000.0, 175000.0, 172492.71)
    assert (f["execution_rate"], f["funding_weight"], f["funding_score"]) == (98.57, 10, 9.86)
    assert [r["source"].value for r in rec.funding] == ["年度资金总额", "上年结转资金"]
    assert all(v.value is None for k, v in rec.funding[1].items() if k != "source")
    assert f["annual_goal"] == "保障公务用车正常运行。" and f["goal_achieved"] == "有力保障了公务活动。"
    assert [(i["level1"].value, i["level2"].value, i["name"].value) for i in rec.indicators] == [
        ("产出指标", "数量指标", "任务完成率"), ("产出指标", "数量指标", "接待团组数量")]
    assert rec.indicators[1]["target_value"].value == "≥60 批"
    assert (f["total_weight"], f["total_score"]) == (100, 98.86)


def _goal_table(lines: list[TextLine]) -> Grid:
    """A header, then a 年度总体目标 block whose two text cells lost the rule between them
    (x 100-600 | 600-1000), holding `lines`."""
    g = _grid([
        [("项目名称", 0, 2, 1), ("机关服务费", 2, 8, 1)],
        [("主管部门", 0, 2, 1), ("上海市人民政府合作交流办公室", 2, 4, 1), ("实施单位", 6, 1, 1), ("驻昆明办事处", 7, 3, 1)],
        [("年度总体目标", 0, 1, 2), ("预期目标", 1, 5, 1), ("实际完成情况", 6, 4, 1)],
        [("", 1, 9, 1)],
        [("一级指标", 0, 2, 1), ("指标名称", 2, 4, 1), ("权重", 6, 2, 1), ("自评分", 8, 2, 1)],
        [("投入与管理 (10分)", 0, 2, 1), ("资金使用", 2, 4, 1), ("10", 6, 2, 1), ("9", 8, 2, 1)],
    ])
    cell = next(c for c in g.cells if c.row == 3 and c.col == 1)
    cell.lines = lines
    finish_cell(cell)
    return g


def test_goal_cell_over_both_columns_split_by_its_lines() -> None:
    g = _goal_table([TextLine("保障公务用车正常运行。", (110, 225, 420, 250), 0.99),
                     TextLine("有力保障了公务活动。", (610, 225, 900, 250), 0.99)])
    (rec,) = build_records(split_forms([_page(1, g, "财政项目支出绩效自评表")]), "x.pdf")
    assert rec.fields["annual_goal"].value == "保障公务用车正常运行。"
    assert rec.fields["goal_achieved"].value == "有力保障了公务活动。"


def test_goal_cell_over_both_columns_not_split_goes_to_review() -> None:
    # a line runs from one column deep into the other: a goal row's text need not follow its
    # header's columns, so it is not cut; whose text it is stays a guess for a person
    g = _goal_table([TextLine("保障公务用车正常运行，有力保障了公务活动。", (110, 225, 800, 250), 0.99)])
    (rec,) = build_records(split_forms([_page(1, g, "财政项目支出绩效自评表")]), "x.pdf")
    (v,) = [rec.fields[k] for k in ("annual_goal", "goal_achieved") if k in rec.fields]
    assert v.value == "保障公务用车正常运行，有力保障了公务活动。" and v.evidence.get("repaired") == 1.0


def test_a_field_value_that_is_a_label_of_the_form_is_doubtful() -> None:
    # cells shifted by a lost rule: 实施单位's value cell holds the label 分值
    g = _grid([
        [("项目名称", 0, 2, 1), ("机关服务费", 2, 8, 1)],
        [("主管部门", 0, 2, 1), ("上海市人民政府合作交流办公室", 2, 4, 1), ("实施单位", 6, 1, 1), ("分值", 7, 3, 1)],
        [("一级指标", 0, 2, 1), ("指标名称", 2, 4, 1), ("权重", 6, 2, 1), ("自评分", 8, 2, 1)],
        [("投入与管理 (10分)", 0, 2, 1), ("资金使用", 2, 4, 1), ("10", 6, 2, 1), ("9", 8, 2, 1)],
    ])
    (rec,) = build_records(split_forms([_page(1, g, "财政项目支出绩效自评表")]), "x.pdf")
    assert rec.fields["implementing_unit"].evidence["label"] < 0.9  # label_weak: capped, reviewed
    assert rec.fields["competent_department"].evidence["label"] == 1.0


def _department_row(first_line_x1: int) -> Grid:
    """A header whose 主管部门 value "上海市人民政府合作交流办公室" a scratch cut in two cells
    (x 200-400 | 400-600); the first piece's line ends at `first_line_x1`."""
    g = _grid([
        [("项目名称", 0, 2, 1), ("机关服务费", 2, 8, 1)],
        [("主管部门", 0, 2, 1), ("上", 2, 2, 1), ("海市人民政府合作交流办公室", 4, 2, 1), ("实施单位", 6, 1, 1),
         ("驻昆明办事处", 7, 3, 1)],
        [("一级指标", 0, 2, 1), ("指标名称", 2, 4, 1), ("权重", 6, 2, 1), ("自评分", 8, 2, 1)],
        [("投入与管理 (10分)", 0, 2, 1), ("资金使用", 2, 4, 1), ("10", 6, 2, 1), ("9", 8, 2, 1)],
    ])
    first = next(c for c in g.cells if c.row == 1 and c.col == 2)
    first.lines = [TextLine("上", (first_line_x1 - 24, 148, first_line_x1, 172), 0.99)]
    rest = next(c for c in g.cells if c.row == 1 and c.col == 4)
    rest.lines = [TextLine("海市人民政府合作交流办公室", (402, 148, 590, 172), 0.99)]
    return g


def test_a_value_cut_in_two_by_a_scratch_taken_for_a_rule_is_joined() -> None:
    # OCR cut the printed line at the false rule: one piece ends at its cell's edge, the other
    # starts at its own
    (rec,) = build_records(split_forms([_page(1, _department_row(398), "财政项目支出绩效自评表")]), "x.pdf")
    assert rec.fields["competent_department"].value == "上海市人民政府合作交流办公室"
    assert rec.fields["implementing_unit"].value == "驻昆明办事处"
    # text clear of the rule is a cell of its own
    (rec,) = build_records(split_forms([_page(1, _department_row(380), "财政项目支出绩效自评表")]), "x.pdf")
    assert rec.fields["competent_department"].value == "上"


def test_ocr_text_simplified_layer_text_kept() -> None:
    from pipeline.normalize.cellvalue import typed_value

    ocr_cell = Cell(0, 0, 1, 1, (0, 0, 10, 10), text="考察運維項目", confidence=0.9)
    layer_cell = Cell(0, 0, 1, 1, (0, 0, 10, 10), text="考察運維項目", confidence=1.0)
    assert typed_value("text", [ocr_cell], 1).value == "考察运维项目"
    assert typed_value("text", [layer_cell], 1).value == "考察運維項目"  # a text layer is taken as printed


def test_cell_across_two_named_columns_split_by_its_lines() -> None:
    # the rule between 指标名称 and 指标解释 was lost: one cell holds both texts
    g = _grid([
        [("一级指标", 0, 2, 1), ("指标名称", 2, 2, 1), ("指标解释", 4, 3, 1), ("权重", 7, 1, 1), ("自评分", 8, 1, 1), ("备注", 9, 1, 1)],
        [("投入与管理 (10分)", 0, 2, 1), ("", 2, 5, 1), ("10", 7, 1, 1), ("9", 8, 1, 1), ("", 9, 1, 1)],
    ])
    merged = next(c for c in g.cells if c.row == 1 and c.col == 2)
    merged.lines = [TextLine("项目设立的规范性", (210, 145, 390, 170), 0.99),
                    TextLine("项目的申请是否合规", (410, 145, 690, 170), 0.99)]
    merged.text = "项目设立的规范性项目的申请是否合规"
    (rec,) = build_records(split_forms([_page(1, g, "2019年度财政项目绩效自我评价")]), "x.pdf")
    ind = rec.indicators[0]
    assert ind["name"].value == "项目设立的规范性" and ind["explanation"].value == "项目的申请是否合规"


def test_cell_across_two_named_columns_with_all_its_lines_in_one() -> None:
    # the rule between 自评分 and 备注 was lost and the remark is blank: the score is the
    # score's alone, the remark blank, not "9" copied into both
    g = _grid([
        [("一级指标", 0, 2, 1), ("指标名称", 2, 2, 1), ("指标解释", 4, 3, 1), ("权重", 7, 1, 1), ("自评分", 8, 1, 1), ("备注", 9, 1, 1)],
        [("投入与管理 (10分)", 0, 2, 1), ("项目设立的规范性", 2, 2, 1), ("项目的申请是否合规", 4, 3, 1), ("10", 7, 1, 1),
         ("9", 8, 2, 1)],
    ])
    merged = next(c for c in g.cells if c.row == 1 and c.col == 8)
    merged.lines = [TextLine("9", (840, 145, 860, 170), 0.99)]
    (rec,) = build_records(split_forms([_page(1, g, "2019年度财政项目绩效自我评价")]), "x.pdf")
    ind = rec.indicators[0]
    assert ind["score"].value == 9 and ind["remark"].value is None


def test_line_read_across_two_named_columns_is_cut_and_sent_to_review() -> None:
    # the rule between 指标名称 (x 200-400) and 指标解释 (400-700) lost, and OCR read the two
    # texts on one baseline as one line; the next line's box only reaches over the boundary
    g = _grid([
        [("一级指标", 0, 2, 1), ("指标名称", 2, 2, 1), ("指标解释", 4, 3, 1), ("权重", 7, 1, 1), ("自评分", 8, 1, 1), ("备注", 9, 1, 1)],
        [("投入与管理 (10分)", 0, 2, 1), ("", 2, 5, 1), ("10", 7, 1, 1), ("9", 8, 1, 1), ("", 9, 1, 1)],
    ])
    merged = next(c for c in g.cells if c.row == 1 and c.col == 2)
    h = 24
    merged.lines = [TextLine("项目设立的规范项目的申请是否合规", (210 - 4, 145, 210 + 7 * 25 + 30 + 9 * 25 + 8, 145 + h), 0.99),
                    TextLine("性", (210, 175, 240, 175 + h), 0.99),
                    TextLine("并且及时", (385, 175, 520, 175 + h), 0.99)]
    (rec,) = build_records(split_forms([_page(1, g, "2019年度财政项目绩效自我评价")]), "x.pdf")
    ind = rec.indicators[0]
    assert ind["name"].value == "项目设立的规范性"
    assert ind["explanation"].value == "项目的申请是否合规并且及时"
    # which characters were whose is an estimate: both pieces go to a person
    assert ind["name"].evidence.get("repaired") == 1.0 and ind["explanation"].evidence.get("repaired") == 1.0


def test_damaged_indicator_header_read_from_its_sure_cells() -> None:
    # blurred small print: 一级指标 / 权重 / 评分规则 misread beyond a label match,
    # but 指标名称, 指标解释 and 备注 make the row the header
    g = _grid([
        [("项目名称", 0, 2, 1), ("某项目", 2, 8, 1)],
        [("一组指春", 0, 2, 1), ("稳标名称", 2, 2, 1), ("模标解释", 4, 2, 1), ("评分说到", 6, 1, 1),
         ("教重", 7, 1, 1), ("成0分", 8, 1, 1), ("备注", 9, 1, 1)],
        [("投入与管理 (10分)", 0, 2, 1), ("资金使用的合规性", 2, 2, 1), ("项目资金使用是否合规", 4, 2, 1),
         ("合规得分", 6, 1, 1), ("10", 7, 1, 1), ("9", 8, 1, 1), ("", 9, 1, 1)],
    ])
    (rec,) = build_records(split_forms([_page(1, g, "2019年度财政项目绩效自我评价")]), "x.pdf")
    assert len(rec.indicators) == 1
    ind = rec.indicators[0]
    assert ind["level1"].value == "投入与管理" and ind["name"].value == "资金使用的合规性"
    assert ind["weight"].value == 10 and ind["scoring_rule"].value == "合规得分"
    assert ind["score"].value == 9  # 成0分 is near no label: the last number column left


def test_last_number_column_of_a_damaged_header_by_elimination() -> None:
    # 权重 read 教童 (two edits of two characters): every other cell is known, so it is the weight
    g = _grid([
        [("项目名称", 0, 2, 1), ("某项目", 2, 8, 1)],
        [("一级指标", 0, 2, 1), ("指标名称", 2, 2, 1), ("指标解释", 4, 2, 1), ("评分规则", 6, 1, 1),
         ("教童", 7, 1, 1), ("自评分", 8, 1, 1), ("备注", 9, 1, 1)],
        [("投入与管理 (10分)", 0, 2, 1), ("资金使用的合规性", 2, 2, 1), ("项目资金使用是否合规", 4, 2, 1),
         ("合规得分", 6, 1, 1), ("10", 7, 1, 1), ("9", 8, 1, 1), ("", 9, 1, 1)],
    ])
    (rec,) = build_records(split_forms([_page(1, g, "2019年度财政项目绩效自我评价")]), "x.pdf")
    ind = rec.indicators[0]
    assert ind["weight"].value == 10 and ind["score"].value == 9


def test_an_unread_leftmost_header_cell_is_the_level1_column() -> None:
    # the header row of dev d014 as one reading of it came out: '一数段春' is 3 edits from 一级指标
    # and 牧童 two from 分值, but the leftmost column left of 指标名称 can only be the 一级指标, and
    # then 牧童 is the one number column left. A two-character leftmost cell (序号) is not
    def header(first: str) -> list:
        return build_records(split_forms([_page(1, _grid([
            [("项目名称", 0, 2, 1), ("某项目", 2, 8, 1)],
            [(first, 0, 2, 1), ("得标名称", 2, 2, 1), ("模标解释", 4, 2, 1), ("牧童", 6, 1, 1),
             ("评分说则,", 7, 1, 1), ("简评分", 8, 1, 1), ("备注", 9, 1, 1)],
            [("投入与管理 (36分)", 0, 2, 1), ("资金使用的合规性", 2, 2, 1), ("项目资金使用是否合规", 4, 2, 1),
             ("5", 6, 1, 1), ("合规得分", 7, 1, 1), ("5", 8, 1, 1), ("", 9, 1, 1)],
        ]), "2019年度财政项目绩效自我评价")]), "x.pdf")

    (rec,) = header("一数段春")
    ind = rec.indicators[0]
    assert ind["level1"].value == "投入与管理" and ind["level1_points"].value == 36
    assert ind["weight"].value == 5 and ind["score"].value == 5 and ind["name"].value == "资金使用的合规性"
    (rec,) = header("序号")
    assert "level1" not in rec.indicators[0] and "weight" not in rec.indicators[0]


def test_a_value_cell_run_down_past_its_label_is_split_between_the_labels() -> None:
    # dev heavy d029: the rule under 优秀 lost in the value column only, so 绩效等级 and 主要绩效
    # had one value cell; each label takes the lines in its own row. A label spanning the value's
    # rows whole keeps all of it

    def form(grade_rows: int) -> object:
        rows = [[("项目名称", 0, 2, 1), ("某项目", 2, 8, 1)], [("绩效等级", 0, 2, grade_rows), ("", 2, 8, 2)]]
        rows.append([] if grade_rows == 2 else [("主要绩效", 0, 2, 1)])
        g = _grid(rows)
        v = next(c for c in g.cells if c.row == 1 and c.col == 2)
        v.lines = [TextLine("优秀", (210, 145, 300, 175), 0.99, [0.99, 0.99]),
                   TextLine("多个集体获得先进奖项。", (210, 185, 700, 215), 0.98, [0.98] * 11)]
        finish_cell(v)
        (rec,) = build_records(split_forms([_page(1, g, "2019年度财政项目绩效自我评价")]), "x.pdf")
        return rec

    rec = form(1)
    assert rec.fields["grade"].value == "优秀" and rec.fields["grade"].evidence["repaired"] == 1.0
    assert rec.fields["main_achievements"].value == "多个集体获得先进奖项。"
    assert rec.fields["main_achievements"].bbox[1] == 180  # its own row's band
    rec = form(2)
    assert rec.fields["grade"].value == "优秀多个集体获得先进奖项。" and "main_achievements" not in rec.fields


def test_a_value_read_into_its_label_cell_is_split_off() -> None:
    # dev heavy d011: the rule between 是否为经常性项目 and its 是 lost, one cell read as two lines
    # (a label read with its value on one line is cut where the label ends). A unit after a label
    # is no value: 当年预算数(元) stays empty

    def fields(recurring: list[TextLine]) -> dict:
        g = _grid([
            [("项目名称", 0, 2, 1), ("某项目", 2, 3, 1), ("", 5, 5, 1)],
            [("当年预算数(元)", 0, 5, 1), ("预算单位某某中心", 5, 5, 1)],
        ])
        cell = next(c for c in g.cells if c.row == 0 and c.col == 5)
        cell.lines = recurring
        finish_cell(cell)
        budget = next(c for c in g.cells if c.row == 1 and c.col == 0)
        budget.lines = [TextLine("当年预算数(元)", (10, 145, 300, 175), 0.99)]
        finish_cell(budget)
        (rec,) = build_records(split_forms([_page(1, g, "2019年度财政项目绩效自我评价")]), "x.pdf")
        return rec.fields

    f = fields([TextLine("是否为经常性项目", (510, 105, 800, 135), 0.99), TextLine("是", (800, 105, 840, 135), 0.97)])
    assert f["is_recurring"].value is True and f["is_recurring"].evidence["repaired"] == 1.0
    assert f["budget_current_year"].value is None
    f = fields([TextLine("是否为经常性项目否", (510, 105, 840, 135), 0.98, [0.99] * 8 + [0.9])])
    assert f["is_recurring"].value is False and f["is_recurring"].bbox[0] > 780


def test_a_header_cell_run_down_into_the_first_row_is_no_value() -> None:
    # dev heavy d015: the rule under 备注 lost in its column, so the header cell spans the first
    # indicator row, whose remark was read as '备注' (and accepted at 0.93)
    g = _grid([
        [("项目名称", 0, 2, 1), ("某项目", 2, 8, 1)],
        [("一级指标", 0, 2, 1), ("指标名称", 2, 2, 1), ("指标解释", 4, 2, 1), ("权重", 6, 1, 1),
         ("自评分", 7, 1, 1), ("备注", 9, 1, 2)],
        [("投入与管理 (10分)", 0, 2, 1), ("资金使用的合规性", 2, 2, 1), ("项目资金使用是否合规", 4, 2, 1),
         ("10", 6, 1, 1), ("9", 7, 1, 1)],
    ])
    (rec,) = build_records(split_forms([_page(1, g, "2019年度财政项目绩效自我评价")]), "x.pdf")
    ind = rec.indicators[0]
    assert ind["name"].value == "资金使用的合规性" and ind["weight"].value == 10
    assert ind.get("remark") is None or ind["remark"].value is None


def test_two_sure_header_cells_are_not_enough() -> None:
    # a row with only two label-like cells is no indicator header, however near the others are
    g = _grid([
        [("项目名称", 0, 2, 1), ("某项目", 2, 8, 1)],
        [("一组指春", 0, 2, 1), ("稳标名称", 2, 2, 1), ("模标解释", 4, 3, 1), ("教重", 7, 1, 1), ("成0分", 8, 2, 1)],
        [("投入与管理 (10分)", 0, 2, 1), ("资金使用的合规性", 2, 2, 1), ("合规", 4, 3, 1), ("10", 7, 1, 1), ("9", 8, 2, 1)],
    ])
    (rec,) = build_records(split_forms([_page(1, g, "2019年度财政项目绩效自我评价")]), "x.pdf")
    assert rec.indicators == []


def test_header_cell_tie_broken_by_column_order() -> None:
    # 一级指标 lost its first characters: '指标' is as near 一级指标 as 指标解释, but it sits
    # left of 二级指标, where only level1 can be
    g = _grid([
        [("项目名称", 0, 2, 1), ("某项目", 2, 8, 1)],
        [("指标", 0, 2, 1), ("二级指标", 2, 1, 1), ("三级指标", 3, 3, 1), ("分值", 6, 2, 1), ("得分", 8, 2, 1)],
        [("产出指标", 0, 2, 1), ("数量指标", 2, 1, 1), ("完成课题数量", 3, 3, 1), ("5", 6, 2, 1), ("5", 8, 2, 1)],
    ])
    (rec,) = build_records(split_forms([_page(1, g, "2019年度财政项目绩效自我评价")]), "x.pdf")
    assert rec.indicators[0]["level1"].value == "产出指标"


def _level1_table(level1: list[str], weights: list[str]) -> Grid:
    """An indicator table whose level1 column has one piece per row (a merged cell cut up)."""
    rows: list[list[tuple[str, int, int, int]]] = [
        [("项目名称", 0, 2, 1), ("某项目", 2, 8, 1)],
        [("一级指标", 0, 2, 1), ("指标名称", 2, 4, 1), ("权重", 6, 2, 1), ("自评分", 8, 2, 1)],
    ]
    for i, (l1, w) in enumerate(zip(level1, weights, strict=True)):
        rows.append([(l1, 0, 2, 1), (f"资金使用{i}", 2, 4, 1), (w, 6, 2, 1), (w, 8, 2, 1)])
    return _grid(rows)


def test_blank_level1_piece_goes_where_the_points_add_up() -> None:
    # a scratch taken for a rule cut 投入与管理's merged cell: its upper piece reads blank (or a
    # speck). 投入与管理 (20分) needs that piece's 10 points; 产出目标 (10分) is full already
    g = _level1_table(["★", "投入与管理 (20分)", "产出目标 (10分)"], ["10", "10", "10"])
    (rec,) = build_records(split_forms([_page(1, g, "2019年度财政项目绩效自我评价")]), "x.pdf")
    assert [r["level1"].value for r in rec.indicators] == ["投入与管理", "投入与管理", "产出目标"]
    assert rec.indicators[0]["level1_points"].value == 20


def test_blank_level1_piece_left_blank_when_both_neighbours_fit() -> None:
    # either neighbour has room for the blank piece's 10 points: no guess
    g = _level1_table(["投入与管理 (20分)", "", "产出目标 (20分)"], ["10", "10", "10"])
    (rec,) = build_records(split_forms([_page(1, g, "2019年度财政项目绩效自我评价")]), "x.pdf")
    assert rec.indicators[1]["level1"].value is None


def test_blank_level1_piece_goes_to_the_label_its_level2_is_named_after() -> None:
    # no points printed, so no arithmetic: the blank piece's 二级指标 社会效益指标 is named
    # after 效益指标, not after 产出指标
    rows: list[list[tuple[str, int, int, int]]] = [
        [("项目名称", 0, 2, 1), ("某项目", 2, 8, 1)],
        [("一级指标", 0, 2, 1), ("二级指标", 2, 2, 1), ("指标名称", 4, 2, 1), ("权重", 6, 2, 1), ("自评分", 8, 2, 1)],
    ]
    for i, (l1, l2) in enumerate([("产出指标", "数量指标"), ("", "社会效益指标"), ("效益指标", "可持续影响指标")]):
        rows.append([(l1, 0, 2, 1), (l2, 2, 2, 1), (f"资金使用{i}", 4, 2, 1), ("10", 6, 2, 1), ("10", 8, 2, 1)])
    (rec,) = build_records(split_forms([_page(1, _grid(rows), "2019年度财政项目绩效自我评价")]), "x.pdf")
    assert [r["level1"].value for r in rec.indicators] == ["产出指标", "效益指标", "效益指标"]


def test_total_row_under_an_erased_rule_is_the_total_not_an_indicator() -> None:
    # the rules between the last name cell, the 合计 label and the row's first cell lost: the
    # name cell runs into the total row, and splitting it by its lines gives that row "合计"
    g = _grid([
        [("项目名称", 0, 2, 1), ("某项目", 2, 8, 1)],
        [("一级指标", 0, 2, 1), ("指标名称", 2, 4, 1), ("权重", 6, 2, 1), ("自评分", 8, 2, 1)],
        [("投入与管理 (10分)", 0, 2, 1), ("资金使用 合计", 2, 4, 2), ("10", 6, 2, 1), ("9", 8, 2, 1)],
        [("", 0, 2, 1), ("10", 6, 2, 1), ("9", 8, 2, 1)],
    ])
    name = next(c for c in g.cells if c.row == 2 and c.col == 2)
    name.lines = [TextLine("资金使用", (210, 185, 330, 210), 0.99), TextLine("合计", (210, 225, 270, 250), 0.99)]
    (rec,) = build_records(split_forms([_page(1, g, "2019年度财政项目绩效自我评价")]), "x.pdf")
    assert [i["name"].value for i in rec.indicators] == ["资金使用"]
    assert (rec.fields["total_weight"].value, rec.fields["total_score"].value) == (10, 9)


def test_level1_label_read_into_the_name_is_dropped_from_it() -> None:
    # the rule between 一级指标 and 指标名称 lost: the label's line was read into the name cell
    g = _level1_table(["效果目标 (10分)", "满意度目标 (10分)"], ["10", "10"])
    name = next(c for c in g.cells if c.row == 2 and c.col == 2)
    name.text = "效果目标 (10分). 预计产生效果"
    other = next(c for c in g.cells if c.row == 3 and c.col == 2)
    other.text = "满意度 (按比例) 调查"  # not a label with points: kept as written
    (rec,) = build_records(split_forms([_page(1, g, "2019年度财政项目绩效自我评价")]), "x.pdf")
    first, second = rec.indicators
    assert first["name"].value == "预计产生效果" and first["name"].evidence.get("repaired") == 1.0
    assert second["name"].value == "满意度 (按比例) 调查" and "repaired" not in second["name"].evidence


def test_level1_label_cut_by_the_row_rule_is_dropped_from_both_names() -> None:
    # the label's two lines went to two rows' names: its term and bracket into one, its points
    # at the head of the next (heavy d013)
    g = _level1_table(["效果目标 (15分)", "满意度目标 (10分)"], ["10", "10"])
    first = next(c for c in g.cells if c.row == 2 and c.col == 2)
    first.text = "支持并发访问效果目标（用户数"
    second = next(c for c in g.cells if c.row == 3 and c.col == 2)
    second.text = "15分) 公众满意度"
    (rec,) = build_records(split_forms([_page(1, g, "2019年度财政项目绩效自我评价")]), "x.pdf")
    assert [r["name"].value for r in rec.indicators] == ["支持并发访问用户数", "公众满意度"]
    assert all(r["name"].evidence.get("repaired") == 1.0 for r in rec.indicators)


def test_level_terms_snap_one_misread_character() -> None:
    from pipeline.lexicon import snap_term

    assert snap_term("户出目标", "level1") == ("产出目标", 0.5)
    assert snap_term("产出目标", "level1") == ("产出目标", 1.0)
    assert snap_term("项目完成率", "level1") == ("项目完成率", 0.0)  # no term near: kept as read
    assert snap_term("社会效益指示", "level2") == ("社会效益指标", 0.5)
    assert snap_term("效益", "level1") == ("效益", 1.0)
    assert snap_term("效果", "level1") == ("效果", 0.0)  # too short to snap: one of two characters


def test_value_cell_over_two_indicator_rows_split_by_its_lines() -> None:
    # the rule between two rows' 权重 cells was lost: one cell holds "6" in the first row's band
    # and "8" in the second's; only level1/level2 legitimately span indicator rows
    g = _grid([
        [("一级指标", 0, 2, 1), ("指标名称", 2, 2, 1), ("指标解释", 4, 3, 1), ("权重", 7, 1, 1), ("自评分", 8, 1, 1), ("备注", 9, 1, 1)],
        [("投入与管理 (14分)", 0, 2, 2), ("资金使用的合规性", 2, 2, 1), ("项目资金使用是否合规", 4, 3, 1), ("6 8", 7, 1, 2),
         ("6", 8, 1, 1), ("", 9, 1, 1)],
        [("预算执行率", 2, 2, 1), ("反映项目预算执行的进度", 4, 3, 1), ("7", 8, 1, 1), ("", 9, 1, 1)],
    ])
    weight = next(c for c in g.cells if c.col == 7 and c.row == 1)
    weight.lines = [TextLine("6", (740, 150, 760, 172), 0.99), TextLine("8", (740, 190, 760, 212), 0.99)]
    (rec,) = build_records(split_forms([_page(1, g, "2019年度财政项目绩效自我评价")]), "x.pdf")
    assert [i["weight"].value for i in rec.indicators] == [6, 8]
    assert [i["weight"].bbox for i in rec.indicators] == [(700, 140, 800, 180), (700, 180, 800, 220)]
    assert [i["level1"].value for i in rec.indicators] == ["投入与管理", "投入与管理"]  # level1 spans on


def _stretched(grid: Grid, scale: float, shift: int) -> Grid:
    """The grid as a page photographed nearer or further shows it: x scaled and shifted."""
    def x(v: int) -> int:
        return int(round(v * scale + shift))

    cells = [Cell(c.row, c.col, c.row_span, c.col_span, (x(c.bbox[0]), c.bbox[1], x(c.bbox[2]), c.bbox[3]),
                  text=c.text, confidence=c.confidence) for c in grid.cells]
    return Grid(row_lines=grid.row_lines, col_lines=[x(v) for v in grid.col_lines], cells=cells)


def test_continuation_page_at_another_scale_keeps_its_columns() -> None:
    # a photographed form's page 2 was taken nearer: its table 12 % wider than page 1's
    p1 = _grid([
        [("项目名称", 0, 2, 1), ("合作交流工作业务费", 2, 8, 1)],
        [("一级指标", 0, 2, 1), ("指标名称", 2, 2, 1), ("指标解释", 4, 3, 1), ("权重", 7, 1, 1), ("自评分", 8, 1, 1), ("备注", 9, 1, 1)],
        [("投入与管理 (14分)", 0, 2, 2), ("资金使用的合规性", 2, 2, 1), ("项目资金使用是否合规", 4, 3, 1), ("6", 7, 1, 1), ("6", 8, 1, 1), ("", 9, 1, 1)],
        [("预算执行率", 2, 2, 1), ("反映项目预算执行的进度", 4, 3, 1), ("8", 7, 1, 1), ("7", 8, 1, 1), ("", 9, 1, 1)],
    ])
    p2 = _stretched(_grid([
        [("产出目标 (86分)", 0, 2, 3), ("课题转化成果率", 2, 2, 1), ("课题成果是否运用到工作中", 4, 3, 1), ("40", 7, 1, 1), ("35", 8, 1, 1), ("", 9, 1, 1)],
        [("用户满意度", 2, 2, 1), ("用户的体验", 4, 3, 1), ("26", 7, 1, 1), ("20", 8, 1, 1), ("好", 9, 1, 1)],
        [("完成及时率", 2, 2, 1), ("是否按时完成", 4, 3, 1), ("20", 7, 1, 1), ("19", 8, 1, 1), ("", 9, 1, 1)],
        [("合计", 0, 2, 1), ("", 2, 5, 1), ("100", 7, 1, 1), ("87", 8, 1, 1), ("", 9, 1, 1)],
    ]), 1.12, -40)
    forms = split_forms([_page(1, p1, "2019年度财政项目绩效自我评价"), _page(2, p2)])
    (rec,) = build_records(forms, "x.pdf")
    assert [i["weight"].value for i in rec.indicators] == [6, 8, 40, 26, 20]
    assert [i["score"].value for i in rec.indicators] == [6, 7, 35, 20, 19]
    assert [i["remark"].value for i in rec.indicators][3] == "好"
    assert rec.fields["total_score"].value == 87


def test_dust_read_as_marks_in_a_text_cell_is_no_text_and_stays_doubtful() -> None:
    # blank remark cells of a dusty scan: specks read as '$' and '+ ;'. A real remark stays
    rows: list[list[tuple[str, int, int, int]]] = [
        [("项目名称", 0, 2, 1), ("某项目", 2, 8, 1)],
        [("一级指标", 0, 2, 1), ("指标名称", 2, 3, 1), ("权重", 5, 1, 1), ("自评分", 6, 1, 1), ("备注", 7, 3, 1)],
        [("产出指标", 0, 2, 3), ("资金使用0", 2, 3, 1), ("10", 5, 1, 1), ("10", 6, 1, 1), ("$", 7, 3, 1)],
        [("资金使用1", 2, 3, 1), ("10", 5, 1, 1), ("10", 6, 1, 1), ("+ ;", 7, 3, 1)],
        [("资金使用2", 2, 3, 1), ("10", 5, 1, 1), ("9", 6, 1, 1), ("进度偏慢。", 7, 3, 1)],
    ]
    (rec,) = build_records(split_forms([_page(1, _grid(rows), "2019年度财政项目绩效自我评价")]), "x.pdf")
    remarks = [r["remark"] for r in rec.indicators]
    assert [v.value for v in remarks] == [None, None, "进度偏慢。"]
    assert all(v.confidence < 0.5 and v.reasons for v in remarks[:2])


def test_the_one_unread_score_is_the_total_less_the_others() -> None:
    # dev heavy d057/d059: a lone digit unread on a blurred scan; the 总分 and the other scores
    # give it. Not where its cell was found inkless (the form's own blank, d009), not on a
    # born-digital page (a text layer's blank is printed, d004), not past the row's weight
    from pipeline import validate
    from pipeline.normalize.indicators import SCORE_FROM_TOTAL, infer_missing_score

    def rows(blank_ev: dict[str, float], page: int = 1) -> list[dict[str, Value]]:
        out = [{"weight": Value(w, str(w), 0.99, 1), "score": Value(s, str(s), 0.99, 1)} for w, s in ((10, 9), (8, 8))]
        out.append({"weight": Value(6, "6", 0.99, 1), "score": Value(None, "", 0.1, page, evidence=blank_ev)})
        return out

    total = Value(22, "22", 0.99, 1)
    ind = rows({"empty": 1.0, "unseen": 1.0})
    assert infer_missing_score(ind, total, None, {1}) == 1
    assert ind[2]["score"].value == 5 and ind[2]["score"].confidence <= 0.5 and SCORE_FROM_TOTAL in ind[2]["score"].reasons
    rec = FormRecord("x.pdf", 0, [1], fields={"total_score": total}, indicators=ind)
    assert not any(r.name == "total_score" for r in validate.validate(rec))  # it holds by construction: no evidence
    assert infer_missing_score(rows({"empty": 1.0, "blank": 1.0}), total, None, {1}) == 0
    assert infer_missing_score(rows({"empty": 1.0, "unseen": 1.0}, page=2), total, None, {1}) == 0
    assert infer_missing_score(rows({"empty": 1.0, "unseen": 1.0}), Value(30, "30", 0.99, 1), None, {1}) == 0
    assert infer_missing_score(rows({"empty": 1.0}), total, Value(2, "2", 0.99, 1), {1}) == 1  # 22 - 2 - 17
