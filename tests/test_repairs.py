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
