"""Typed values (spec "Types"): clean inputs from the seeds and their OCR-damaged variants."""

from __future__ import annotations

import pytest

from pipeline.values import (
    fiscal_year_from_title,
    join_lines,
    parse_bool,
    parse_date,
    parse_int,
    parse_money,
    parse_number,
    parse_percent,
    parse_value,
    split_level1,
)


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("2,523,747.00", 2523747.0),
        ("636,500", 636500.0),  # spec: money keeps yuan as a float
        ("506,745.04", 506745.04),
        ("151,881.2", 151881.2),
        ("0.00", 0.0),
        ("306,600", 306600.0),
        ("2,523 ,747.0 0", 2523747.0),  # blanks inside the number
        ("225.000.00", 225000.0),  # seed 004: commas read as dots
        ("１２３，４５６．７８", 123456.78),  # full-width digits and '，'
        ("2,3OO,OOO.OO", 2300000.0),  # O read for 0
        ("l,649,758.00", 1649758.0),  # l read for 1
        ("98,800.00元", 98800.0),
        ("63.65万元", 636500.0),
        ("-1,000.50", -1000.5),
        ("2,515,100,00", 2515100.0),  # the point read as a comma: a last group of two is cents
        ("320,660,12", 320660.12),
        ("2,791,900 00", 2791900.0),  # ... or as a blank
        ("63.65 万 元", 636500.0),
    ],
)
def test_parse_money(raw: str, want: float) -> None:
    got = parse_money(raw)
    assert got == pytest.approx(want, abs=0.001)
    assert isinstance(got, float)


@pytest.mark.parametrize("raw", ["", "abc", "上海市", "12a3", "1.2.3", "≥60 次", "2020-3-15"])
def test_parse_money_rejects(raw: str) -> None:
    assert parse_money(raw) is None


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("65.37%", 65.37),
        ("100.00%", 100.0),
        ("80.88%", 80.88),
        ("100%", 100.0),
        ("0.00", 0.0),  # seed 003 上年预算完成率 printed without the sign
        ("８０．８８％", 80.88),
        ("99.9 0 %", 99.9),
        ("98.57 %", 98.57),
        ("1OO.OO%", 100.0),
    ],
)
def test_parse_percent(raw: str, want: float) -> None:
    assert parse_percent(raw) == pytest.approx(want)


@pytest.mark.parametrize("raw", ["%", "百分之十", "≥95%", "abc%"])
def test_parse_percent_rejects(raw: str) -> None:
    assert parse_percent(raw) is None


@pytest.mark.parametrize(
    ("raw", "want", "typ"),
    [
        ("100.00", 100, int),
        ("8.09", 8.09, float),
        ("98.09", 98.09, float),
        ("100. 00", 100, int),  # seed 004 total score
        ("100.0 0", 100, int),  # wrapped in its cell
        ("1 00", 100, int),
        ("1 5", 15, int),  # a blank the recogniser put between two digits
        ("97.00", 97, int),
        ("6", 6, int),
        ("１０", 10, int),
        ("l0", 10, int),
        ("1O", 10, int),
        ("0", 0, int),
        ("7.5", 7.5, float),
        ("O", 0, int),  # a lone digit read as its look-alike letter
        ("s", 5, int),
    ],
)
def test_parse_number(raw: str, want: float, typ: type) -> None:
    got = parse_number(raw)
    assert got == want
    assert type(got) is typ


@pytest.mark.parametrize("raw", ["", "分", "满分", "十", "≥60", "10%x", "10 10", "100 98.86", "10 9.5"])
def test_parse_number_rejects(raw: str) -> None:
    # '10 10': a weight and a score read together across a lost rule, not the number 1010
    assert parse_number(raw) is None


def test_parse_int() -> None:
    assert parse_int("2019") == 2019
    assert parse_int("7.5") is None


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("2020年6月12日", "2020-06-12"),
        ("2021/7/16", "2021-07-16"),
        ("2020-3-15", "2020-03-15"),
        ("2021-06-09", "2021-06-09"),
        ("2020. 3. 20", "2020-03-20"),
        ("２０２０年６月１２日", "2020-06-12"),
        ("2020 年 6 月 12 日", "2020-06-12"),
        ("2O2O-3-15", "2020-03-15"),
        ("2020年6月12", "2020-06-12"),
        ("2022~7-5", "2022-07-05"),  # a dash read as a tilde
        ("2021—7—16", "2021-07-16"),
    ],
)
def test_parse_date(raw: str, want: str) -> None:
    assert parse_date(raw) == want


@pytest.mark.parametrize("raw", ["", "2020-13-01", "2020-2-30", "六月", "2020年", "12/06"])
def test_parse_date_rejects(raw: str) -> None:
    assert parse_date(raw) is None


@pytest.mark.parametrize(
    ("raw", "want"), [("是", True), ("否", False), (" 是 ", True), ("", None), ("-", None)]
)
def test_parse_bool(raw: str, want: bool | None) -> None:
    assert parse_bool(raw) is want


@pytest.mark.parametrize(
    ("lines", "want"),
    [
        (["完成项目预期规模及要", "求"], "完成项目预期规模及要求"),
        (["项目总目标：", "充分运用"], "项目总目标：充分运用"),
        (["系统故障维修及时", "平均小于2个小时"], "系统故障维修及时平均小于2个小时"),
        (["平均小于2", "个小时"], "平均小于2 个小时"),
        (["Online", "系统"], "Online 系统"),
        (["  长效机制 ", "", "  健全  "], "长效机制健全"),
        (["100%", "完成"], "100% 完成"),
        ([], ""),
        (["", "  "], ""),
    ],
)
def test_join_lines(lines: list[str], want: str) -> None:
    assert join_lines(lines) == want


@pytest.mark.parametrize(
    ("raw", "name", "points"),
    [
        ("投入与管理 (36分)", "投入与管理", 36),
        ("投入与管理(36分)", "投入与管理", 36),
        ("投入与 管理 (36分)", "投入与管理", 36),  # seed 003 wrap
        ("项目完成 率 (14分)", "项目完成率", 14),
        ("效果目标 （15分）", "效果目标", 15),
        ("影响力目标 (1 5 分)", "影响力目标", 15),
        ("产出目标 (34分", "产出目标", 34),  # closing bracket lost
        ("产出指标", "产出指标", None),
        ("满意度 指标", "满意度指标", None),
        ("产出目标 (0.4.(\\)", "产出目标", None),  # seed 004 damage
        ("投入与管理 (12.5分)", "投入与管理", 12.5),
        ("投入与管理 (369)", "投入与管理", 36),  # 分 read as 9 (photo)
        ("效果目标（ 159)", "效果目标", 15),
        ("效果目标 (19)", "效果目标", 19),  # two figures: 19 points, or 1 and 分; left as read
    ],
)
def test_split_level1(raw: str, name: str, points: float | None) -> None:
    assert split_level1(raw) == (name, points)


@pytest.mark.parametrize(
    ("title", "year"),
    [
        ("2019年度财政项目绩效自我评价", 2019),
        ("（ 2022 年度）", 2022),
        ("2020年度财政项目绩效自评表", 2020),
        ("2 0 2 3 年度财政项目绩效自评价", 2023),
        ("2O19年度财政项目绩效自我评价", 2019),
        ("财政项目支出绩效自评表", None),
        ("政项目绩效自评价 1", None),
        ("1000年度", None),
    ],
)
def test_fiscal_year_from_title(title: str, year: int | None) -> None:
    assert fiscal_year_from_title(title) == year


@pytest.mark.parametrize(
    ("kind", "raw", "want"),
    [
        ("money", "2,523,747.00", (2523747.0, True)),
        ("money", "-", (None, True)),
        ("money", "－", (None, True)),
        ("money", "一", (None, True)),  # a dash read as the CJK 一
        ("money", "", (None, True)),
        ("money", "  ", (None, True)),
        ("money", "上海市", (None, False)),
        ("percent", "65.37%", (65.37, True)),
        ("percent", "-", (None, True)),
        ("number", "100.00", (100, True)),
        ("number", "x", (None, False)),
        ("date", "2020年6月12日", ("2020-06-12", True)),
        ("date", "明年", (None, False)),
        ("bool", "是", (True, True)),
        ("bool", "否", (False, True)),
        ("bool", "", (None, True)),
        ("bool", "也许", (None, False)),
        ("int", "2019", (2019, True)),
        ("text", "  良好 ", ("良好", True)),
        ("text", "-", (None, True)),
        ("text", "一", ("一", True)),
    ],
)
def test_parse_value(kind: str, raw: str, want: tuple[object, bool]) -> None:
    assert parse_value(kind, raw) == want


def test_parse_value_none_and_unknown_kind() -> None:
    assert parse_value("money", None) == (None, True)
    with pytest.raises(ValueError):
        parse_value("currency", "1")


def test_unpaired_quotes_from_stains_dropped() -> None:
    from pipeline.values import drop_unpaired_quotes

    assert drop_unpaired_quotes("服务对象满“意度指标") == "服务对象满意度指标"
    assert drop_unpaired_quotes("“三公”经费和“一网通办”") == "“三公”经费和“一网通办”"
    assert drop_unpaired_quotes("a”b") == "ab"


def test_circled_list_markers_read_as_digits_are_restored() -> None:
    from pipeline.values import repair_enumeration

    assert repair_enumeration("1是否随同报送（1分）2绩效目标是否匹配；（2分）3是") == "①是否随同报送（1分）②绩效目标是否匹配；（2分）③是"
    assert repair_enumeration("①是否已制定办法：(1分)2项目资金管理") == "①是否已制定办法：(1分)②项目资金管理"
    # figures are no markers: inside a clause, or out of sequence
    assert repair_enumeration("全部完成得5分,部分完成酌情扣分") == "全部完成得5分,部分完成酌情扣分"
    assert repair_enumeration("2项目资金") == "2项目资金"
    assert repair_enumeration("1项目；3项目") == "1项目；3项目"
    assert repair_enumeration("1是否；2是否；3是否；1项目") == "①是否；②是否；③是否；1项目"
