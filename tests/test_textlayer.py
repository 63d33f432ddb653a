"""Page kinds: vector / garbled / image, per page, against the dev corpus manifest."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from pipeline import ingest, textlayer
from pipeline.types import Cell, Grid, TextLine

DEV = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "dev"

# manifest variant -> the kind every page of such a file must get
KIND_OF_VARIANT = {"clean": "vector", "garbled": "garbled"}


def _expected() -> list[tuple[str, int, str]]:
    rows = []
    with (DEV / "manifest.csv").open(encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            kind = KIND_OF_VARIANT.get(r["variant"], "image")
            rows += [(r["file"], n, kind) for n in range(1, int(r["n_pages"]) + 1)]
    return rows


@pytest.mark.skipif(not DEV.exists(), reason="shared dev corpus not present")
def test_every_dev_page_kind() -> None:
    expected = _expected()
    got = []
    for name in sorted({f for f, _, _ in expected}):
        for page in ingest.iter_pages(DEV / name, dpi=20):  # kinds need the layer, not pixels
            kind, _ = textlayer.classify(textlayer.layer_text(page.text_layer), page.has_page_image)
            got.append((name, page.page_no, kind))
    assert got == expected


@pytest.mark.parametrize(
    "text,scan,kind",
    [
        ("项目名称 合作交流工作业务费 预算单位 上海市人民政府合作交流办公室 一级指标 指标名称 权重 自评分", False, "vector"),
        ("ÏîÄ¿Ãû³Æ ÖÐÑë±£½¡Ô¶³ÌÒ½ÁÆ(ÉÏº£)¼°×ÛºÏ ±£ÕÏÖ¸»ÓÏµÍ³(ÉÏº£ÊÐ¸É²¿±£½¡", True, "garbled"),
        ("2019年颒财政项目绩ア自我戵价 项目名称 合作岄フ工作业务费 预算单位 上チ 市鎓糃政カ合バ交", True, "garbled"),
        ("", True, "image"),
        (None, False, "image"),
    ],
)
def test_classify_examples(text: str | None, scan: bool, kind: str) -> None:
    assert textlayer.classify(text, scan)[0] == kind


def test_read_layer_assigns_chars_to_cells() -> None:
    cells = [Cell(0, 0, 1, 1, (0, 0, 100, 40)), Cell(0, 1, 1, 1, (100, 0, 300, 40))]
    g = Grid(row_lines=[0, 40], col_lines=[0, 100, 300], cells=cells)
    chars = [TextLine(ch, (5 + 20 * i, 10, 22 + 20 * i, 30), 1.0) for i, ch in enumerate("权重")]
    chars += [TextLine(ch, (110 + 12 * i, 10, 121 + 12 * i, 30), 1.0) for i, ch in enumerate("100.00")]
    chars += [TextLine("注", (10, 60, 30, 80), 1.0)]
    _, free = textlayer.read_layer([g], chars)
    assert [c.text for c in cells] == ["权重", "100.00"]
    assert [f.text for f in free] == ["注"]


def test_layer_punctuation_past_a_rule_goes_with_its_line() -> None:
    # a full line's 。 set tight against the rule: its centre falls just inside the next cell
    # (or just past the last one), yet it ends the line on its left
    cells = [Cell(0, 0, 1, 1, (0, 0, 100, 40)), Cell(0, 1, 1, 1, (100, 0, 200, 40))]
    g = Grid(row_lines=[0, 40], col_lines=[0, 100, 200], cells=cells)
    chars = [TextLine(ch, (58 + 20 * i, 10, 78 + 20 * i, 30), 1.0) for i, ch in enumerate("合规")]
    chars += [TextLine("。", (98, 10, 108, 30), 1.0)]  # centre x 103: inside cell 1, 3 px past its rule
    chars += [TextLine(ch, (158 + 20 * i, 10, 178 + 20 * i, 30), 1.0) for i, ch in enumerate("良好")]
    chars += [TextLine("。", (198, 10, 208, 30), 1.0)]  # centre x 203: outside every cell
    _, free = textlayer.read_layer([g], chars)
    assert [c.text for c in cells] == ["合规。", "良好。"]
    assert free == []
