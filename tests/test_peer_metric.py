"""The cell-text metric of bench/peers.py (bench/cell_metric.py): pure, no peer venvs needed."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "cell_metric", Path(__file__).resolve().parents[1] / "bench" / "cell_metric.py"
)
assert _spec is not None and _spec.loader is not None
cm = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("cell_metric", cm)  # dataclasses look their module up there
_spec.loader.exec_module(cm)


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("1,234.00", "1234"),
        ("2,523,747.00", "2523747"),
        ("95%", "95"),
        ("６５.３７％", "65.37"),  # full-width digits and sign
        ("8.10", "8.1"),
        ("0.0", "0"),
        ("2020年3月15日", "2020-03-15"),
        ("2021/7/16", "2021-07-16"),
        ("投入与管理（\n36分)", "投入与管理(36分)"),
        (" 合作交流 工作\t业务费 ", "合作交流工作业务费"),
        ("12,34", "12,34"),  # not a well-formed number: left as text
        ("2020年13月1日", "2020年13月1日"),
    ],
)
def test_normalise(text: str, want: str) -> None:
    assert cm.normalise(text) == want


def test_canon_value_types() -> None:
    assert cm.canon_value(2523747.0) == "2523747"
    assert cm.canon_value(65.37) == "65.37"
    assert cm.canon_value(100) == "100"
    assert cm.canon_value(True) == "是"
    assert cm.canon_value(False) == "否"
    assert cm.canon_value(None) is None
    assert cm.canon_value("  ") is None


def _record(pages: list[int]) -> dict:
    return {
        "source": {"file": "x.pdf", "form_index": 0, "pages": pages},
        "fields": {
            "form_title": "2019年度财政项目绩效自我评价",
            "fiscal_year": 2019,
            "project_name": "合作交流工作业务费",
            "budget_current_year": 2523747.0,
            "execution_rate": 65.37,
            "is_recurring": True,
            "evaluation_date": "2020-03-15",
        },
        "indicators": [
            {
                "level1": "投入与管理",
                "level1_points": 36,
                "name": "资金使用的合规性",
                "weight": 6,
                "score": 6,
            },
            {"level1": "投入与管理", "level1_points": 36, "name": "绩效目标合理性", "weight": 8, "score": 6},
        ],
    }


def test_truth_cells_skip_title_and_count_merged_once() -> None:
    cells = cm.truth_cells(_record([1]))
    keys = [c.key for c in cells]
    assert "fields.form_title" not in keys and "fields.fiscal_year" not in keys
    assert keys.count("indicators.level1") == 1  # merged over two rows: one cell on the page
    assert "indicators.level1_points" not in keys
    level1 = next(c for c in cells if c.key == "indicators.level1")
    assert level1.accept == ["投入与管理", "投入与管理(36分)"]


def test_score_matches_and_counts_repeats() -> None:
    truth = {"x.pdf": [_record([1, 2])]}
    units_all = [
        "合作交流工作业务费",
        "2,523,747.00",
        "65.37%",
        "是",
        "2020-3-15",
        "投入与管理（\n36分)",
        "资金使用的合规性",
        "绩效目标合理性",
        "6",
        "6",
        "8",
        "6",
        "项目名称",
    ]
    # the form runs over pages 1-2: units of both pages count
    res = cm.score(truth, {("x.pdf", 1): units_all[:5], ("x.pdf", 2): units_all[5:]})
    assert res["truth_cells"] == 12 and res["matched"] == 12 and res["cell_text_accuracy"] == 1.0
    # one "6" fewer: one of the three truth 6s goes unmatched (a unit matches one truth cell only)
    fewer = [u for u in units_all if u != "6"] + ["6", "6"]
    assert cm.score(truth, {("x.pdf", 1): fewer, ("x.pdf", 2): []})["matched"] == 11
    # a misread digit is a miss, not a near match
    wrong = [("2,523,741.00" if u == "2,523,747.00" else u) for u in units_all]
    assert cm.score(truth, {("x.pdf", 1): wrong, ("x.pdf", 2): []})["matched"] == 11
    # a form whose pages were not all measured is not scored
    assert cm.score(truth, {("x.pdf", 1): units_all})["truth_cells"] == 0


def test_long_text_matches_at_small_cer_only() -> None:
    long = "通过设立合作交流工作业务费项目，确保合作交流工作及课题研究项目的顺利开展，为完成市委、市政府布置的年度对口支援与合作交流工作任务提供保障。"
    rec = {"source": {"file": "y.pdf", "pages": [1]}, "fields": {"annual_goal": long}}
    one_typo = long[:10] + "X" + long[11:]
    assert cm.score({"y.pdf": [rec]}, {("y.pdf", 1): [one_typo]})["matched"] == 1
    assert (
        cm.score({"y.pdf": [rec]}, {("y.pdf", 1): [long[:40]]})["matched"] == 0
    )  # a wrapped first line only
    short = {"source": {"file": "z.pdf", "pages": [1]}, "fields": {"project_name": "合作交流工作业务费"}}
    assert (
        cm.score({"z.pdf": [short]}, {("z.pdf", 1): ["合作交流工作业务贵"]})["matched"] == 0
    )  # short text: exact


def test_funding_total_row_fields_counted_once() -> None:
    # budget_initial etc. are read from the funding block's total row: one printed cell, one truth cell
    rec = {
        "source": {"file": "f.pdf", "pages": [1]},
        "fields": {"budget_initial": 380000.0, "execution_rate": 79.94, "budget_prior_year": 5.0},
        "funding": [{"source": "年度资金总额", "budget_initial": 380000.0, "execution_rate": 79.94}],
    }
    keys = [c.key for c in cm.truth_cells(rec)]
    assert "fields.budget_initial" not in keys and "fields.execution_rate" not in keys
    assert "fields.budget_prior_year" in keys  # not a funding-row field
    assert keys.count("funding.budget_initial") == 1
    res = cm.score({"f.pdf": [rec]}, {("f.pdf", 1): ["年度资金总额", "380,000.00", "79.94%", "5"]})
    assert res["matched"] == res["truth_cells"] == 4
