"""Golden tests: whole files through the pipeline, asserting specific values per family.

OCR results are cached by image hash in tests/ocr_cache (as OCRmyPDF caches
Tesseract output), so the suite stays fast; a changed page image misses the
cache and runs the real engine.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline import engines, process
from pipeline.types import FormRecord

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data" / "raw"  # the sample scans we ship (copies of dev corpus files)


@pytest.fixture(scope="module")
def engine(ocr_engine: engines.OcrEngine) -> engines.OcrEngine:
    return ocr_engine  # tests/ocr_cache; a miss fails the test (conftest)


def _run(name: str, engine: engines.OcrEngine) -> list[FormRecord]:
    return process.process_file(DATA / name, engine=engine).records


def _v(rec: FormRecord, key: str) -> object:
    return rec.fields[key].value if key in rec.fields else None


def test_family_a_scan(engine: engines.OcrEngine) -> None:
    (rec,) = _run("d025.pdf", engine)
    assert rec.pages == [1]
    assert _v(rec, "form_title") == "2023年度财政项目绩效自我评价"
    assert _v(rec, "fiscal_year") == 2023
    assert _v(rec, "project_name") == "健康教育宣传专项"
    assert _v(rec, "budget_unit") == "上海市闵行区人民政府江川路街道办事处"
    assert _v(rec, "is_recurring") is True
    assert _v(rec, "budget_current_year") == 3209412.66
    assert _v(rec, "budget_prior_year") == 1886000.0
    assert _v(rec, "execution_rate") == 100.0
    assert _v(rec, "evaluation_date") == "2024-05-04"
    assert _v(rec, "grade") == "优"
    assert (_v(rec, "total_weight"), _v(rec, "total_score")) == (100, 94.5)
    assert len(rec.indicators) == 14
    first, last = rec.indicators[0], rec.indicators[-1]
    assert (first["level1"].value, first["level1_points"].value, first["name"].value) == ("投入与管理", 36, "绩效目标合理性")
    assert (last["level1"].value, last["name"].value, last["weight"].value, last["score"].value) == (
        "影响力目标", "长效管理制度建设", 2, 2)


def test_family_b_scan_two_pages(engine: engines.OcrEngine) -> None:
    (rec,) = _run("d026.pdf", engine)
    assert rec.pages == [1, 2]
    assert _v(rec, "form_title") == "财政项目支出绩效自评表"
    assert _v(rec, "fiscal_year") == 2019
    assert _v(rec, "competent_department") == "上海市人民政府办公厅"
    assert _v(rec, "implementing_unit") == "上海市人民政府驻乌鲁木齐办事处"
    assert (_v(rec, "budget_initial"), _v(rec, "budget_current_year"), _v(rec, "budget_executed")) == (
        104500.0, 118500.0, 118500.0)
    assert (_v(rec, "funding_weight"), _v(rec, "funding_score")) == (10, 10)
    assert [r["source"].value for r in rec.funding] == ["年度资金总额", "其中：当年财政拨款", "上年结转资金", "其他资金"]
    assert rec.funding[2]["budget_initial"].value is None  # a dash on the form
    assert len(rec.indicators) == 15
    first, last = rec.indicators[0], rec.indicators[-1]
    assert (first["level1"].value, first["level2"].value, first["name"].value) == ("产出指标", "数量指标", "开展培训次数")
    assert first["level1_points"].value is None
    assert last["level1"].value == "满意度指标" and last["name"].value == "服务对象投诉和批评次数"
    assert (_v(rec, "total_weight"), _v(rec, "total_score")) == (100, 92)


def test_family_d_scan_stitched(engine: engines.OcrEngine) -> None:
    (rec,) = _run("d028.pdf", engine)
    assert rec.pages == [1, 2]
    assert _v(rec, "form_title") == "2020年度财政项目绩效自评价"
    assert _v(rec, "budget_executed") == 123212.32
    assert _v(rec, "execution_rate") == 76.48
    assert _v(rec, "grade") == "优秀"
    assert len(rec.indicators) == 15  # the indicator table continues on page 2 without a header
    assert {i["level1"].value for i in rec.indicators} >= {"投入与管理", "影响力目标"}
    last = rec.indicators[-1]
    assert (last["name"].value, last["weight"].value, last["score"].value) == ("受益人群满意度", 2, 1)
    assert last["remark"].value == "部分工作未按计划完成。"
    assert (_v(rec, "total_weight"), _v(rec, "total_score")) == (100, 90.5)


def test_every_value_has_confidence_and_place(engine: engines.OcrEngine) -> None:
    (rec,) = _run("d025.pdf", engine)
    data = rec.to_json()
    cells = list(data["fields"].values()) + [v for row in data["indicators"] for v in row.values()]
    assert cells
    for c in cells:
        assert 0.0 <= c["confidence"] <= 1.0
        assert c["page"] == 1 and len(c["bbox"]) == 4


SHARED_DEV = REPO.parent / "shared" / "corpus" / "dev"


@pytest.mark.skipif(not SHARED_DEV.exists(), reason="shared dev corpus not present")
def test_file_mixing_page_kinds(engine: engines.OcrEngine, tmp_path: Path) -> None:
    """A born-digital form followed by a scanned one: each page takes its own route."""
    import pypdfium2 as pdfium

    mixed = pdfium.PdfDocument.new()
    for name in ("d021.pdf", "d025.pdf"):  # clean family A (1 page), scan family A (1 page)
        src = pdfium.PdfDocument(str(SHARED_DEV / name))
        mixed.import_pages(src)
    path = tmp_path / "mixed.pdf"
    mixed.save(str(path))
    recs = process.process_file(path, engine=engine).records
    assert [r.extra_source["page_kinds"] for r in recs] == [{"1": "vector"}, {"2": "image"}]
    assert recs[1].fields["project_name"].value == "健康教育宣传专项"
    assert recs[0].fields["project_name"].value and recs[0].fields["project_name"].confidence >= 0.995  # layer text
