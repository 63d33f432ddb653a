"""Label lexicon: schema as data, the saved spaCy pipeline, and noise-tolerant label matching."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import spacy
import yaml

from pipeline import lexicon
from pipeline.lexicon import (
    SCHEMA_PATH,
    SPACY_DIR,
    LabelMatcher,
    Schema,
    build_nlp,
    clean_label,
    get_matcher,
    max_edits,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SPEC = SHARED / "spec" / "record-format.md"
TRUTH = SHARED / "corpus" / "dev" / "truth"


@pytest.fixture(scope="module")
def m() -> LabelMatcher:
    return get_matcher()


# --- schema --------------------------------------------------------------------------------


def test_schema_keys_per_section() -> None:
    s = Schema.load()
    assert set(s.keys) == set(lexicon.SECTIONS)
    assert list(s.keys["funding"]) == [
        "source",
        "budget_initial",
        "budget_annual",
        "executed",
        "weight",
        "execution_rate",
        "score",
    ]
    assert list(s.keys["indicators"]) == [
        "level1",
        "level1_points",
        "level2",
        "name",
        "explanation",
        "scoring_rule",
        "target_value",
        "actual_value",
        "weight",
        "score",
        "remark",
    ]
    assert [s.keys["funding_rows"][k].canonical for k in s.keys["funding_rows"]] == [
        "年度资金总额",
        "其中：当年财政拨款",
        "上年结转资金",
        "其他资金",
    ]


@pytest.mark.skipif(not SPEC.exists(), reason="shared spec not present")
def test_schema_fields_match_spec_table() -> None:
    # every `| key |` row of the spec's Fields table is a fields key with the spec's type
    rows = []
    section = ""
    for line in SPEC.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            section = line
        if section.startswith("## Fields") and line.startswith("| ") and not line.startswith("| key"):
            cols = [c.strip() for c in line.strip("|").split("|")]
            rows.append((cols[0], cols[-1].split()[0]))
    assert len(rows) == 25
    fields = Schema.load().keys["fields"]
    assert [k for k, _ in rows] == list(fields)
    for key, typ in rows:
        assert fields[key].type == typ, key


def test_schema_types_and_section_specific_variants() -> None:
    data = yaml.safe_load(SCHEMA_PATH.read_text(encoding="utf-8"))
    secs = data["sections"]
    assert secs["funding"]["weight"]["labels"] == ["分值"]
    assert secs["funding"]["score"]["labels"] == ["得分"]
    assert "分值" in secs["indicators"]["weight"]["labels"]
    assert "得分" in secs["indicators"]["score"]["labels"]
    assert secs["fields"]["budget_current_year"]["type"] == "money"
    assert secs["fields"]["execution_rate"]["type"] == "percent"
    assert secs["fields"]["evaluation_date"]["type"] == "date"
    assert secs["fields"]["is_recurring"]["type"] == "bool"
    assert secs["fields"]["fiscal_year"]["type"] == "int"
    assert secs["indicators"]["weight"]["type"] == "number"


def test_schema_rejects_unknown_type(tmp_path: Path) -> None:
    p = tmp_path / "s.yaml"
    p.write_text("types: [text]\nsections:\n  fields:\n    x: {type: money, labels: [a]}\n", encoding="utf-8")
    with pytest.raises(ValueError, match="unknown type"):
        Schema.load(p)


def test_kind(m: LabelMatcher) -> None:
    assert m.kind("fields", "budget_current_year") == "money"
    assert m.kind("funding", "execution_rate") == "percent"
    assert m.kind("indicators", "score") == "number"
    assert m.kind("indicators", "name") == "text"
    assert m.kind("fields", "evaluation_date") == "date"


# --- cleaning ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("当年预算数（元）", "当年预算数元"),
        ("当年预算数(元)", "当年预算数元"),
        ("预算执行率（％）", "预算执行率%"),
        ("项目年周 度总目标", "项目年周度总目标"),
        ("偏差原因分析\n及改进措施", "偏差原因分析及改进措施"),
        ("績效等級", "绩效等级"),
        ("—级指标", "一级指标"),
        ("2019年度财政项目绩效自我评价", "财政项目绩效自我评价"),
        ("其中：当年财政拨款", "其中当年财政拨款"),
    ],
)
def test_clean_label(raw: str, want: str) -> None:
    assert clean_label(raw) == want


def test_max_edits_scales_with_length() -> None:
    assert [max_edits(n) for n in (2, 3, 7, 8, 11, 12)] == [0, 1, 1, 2, 2, 3]


# --- matching: exact and cleaned -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("项目名称", "project_name"),
        ("预算单位", "budget_unit"),
        ("主管部门", "competent_department"),
        ("实施单位", "implementing_unit"),
        ("具体实施处(科室)", "implementing_division"),
        ("具体实施处（科室）", "implementing_division"),
        ("具体实施处 (科室)", "implementing_division"),
        ("是否为经常性项目", "is_recurring"),
        ("当年预算数(元)", "budget_current_year"),
        ("当年预算数（元）", "budget_current_year"),
        ("当年预算数 (元)", "budget_current_year"),
        ("上年预算金额(元)", "budget_prior_year"),
        ("上年预算金额 (元)", "budget_prior_year"),
        ("上年预算完成率(%)", "prior_year_completion_rate"),
        ("预算执行数(元)", "budget_executed"),
        ("预算执行数 (元)", "budget_executed"),
        ("预算执行率(%)", "execution_rate"),
        ("预算执行率（%）", "execution_rate"),
        ("项目年度总目标", "annual_goal"),
        ("自评时间", "evaluation_date"),
        ("自 评时间", "evaluation_date"),
        ("绩效等级", "grade"),
        ("绩效 等级", "grade"),
        ("主要绩效", "main_achievements"),
        ("主要问题", "main_problems"),
        ("改进措施", "improvements"),
    ],
)
def test_fields_exact(m: LabelMatcher, text: str, key: str) -> None:
    hit = m.match(text, "fields")
    assert hit is not None and hit.key == key and hit.section == "fields"
    assert hit.score == 1.0


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("一级指标", "level1"),
        ("一级 指标", "level1"),
        ("二级指标", "level2"),
        ("三级 指标", "name"),
        ("指标名称", "name"),
        ("指标解释", "explanation"),
        ("评分规则", "scoring_rule"),
        ("年度 指标值", "target_value"),
        ("实际 完成值", "actual_value"),
        ("权重", "weight"),
        ("分 值", "weight"),
        ("自评分", "score"),
        ("自评得分", "score"),
        ("得 分", "score"),
        ("自评", "score"),
        ("备注", "remark"),
        ("偏差原因分析 及改进措施", "remark"),
    ],
)
def test_indicator_columns(m: LabelMatcher, text: str, key: str) -> None:
    hit = m.match(text, "indicators")
    assert hit is not None and (hit.section, hit.key) == ("indicators", key)


def test_section_specific_variants(m: LabelMatcher) -> None:
    w_f, w_i = m.match("分值", "funding"), m.match("分值", "indicators")
    s_f, s_i = m.match("得分", "funding"), m.match("得分", "indicators")
    assert w_f is not None and (w_f.section, w_f.key, w_f.label) == ("funding", "weight", "分值")
    assert w_i is not None and (w_i.section, w_i.key, w_i.label, w_i.variant) == (
        "indicators",
        "weight",
        "权重",
        "分值",
    )
    assert s_f is not None and (s_f.section, s_f.key) == ("funding", "score")
    assert s_i is not None and (s_i.section, s_i.key, s_i.label) == ("indicators", "score", "自评分")
    # 分值 is no header-grid field label
    assert m.match("分值", "fields") is None


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("年初预算数", "budget_initial"),
        ("全年预算数", "budget_annual"),
        ("全年执行数", "executed"),
        ("执行率", "execution_rate"),
    ],
)
def test_funding_columns(m: LabelMatcher, text: str, key: str) -> None:
    hit = m.match(text, "funding")
    assert hit is not None and hit.key == key


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("年度资金总额", "年度资金总额"),
        ("其中：当年财政拨款", "其中：当年财政拨款"),
        ("其中:当年财政拨款", "其中：当年财政拨款"),
        ("其中: 当年 财政拨款", "其中：当年财政拨款"),
        ("上年结转资金", "上年结转资金"),
        ("其他资金", "其他资金"),
    ],
)
def test_funding_rows_canonical_label(m: LabelMatcher, text: str, label: str) -> None:
    hit = m.match(text, "funding_rows")
    assert hit is not None and hit.label == label


@pytest.mark.parametrize(
    ("text", "key"),
    [("预期目标", "annual_goal"), ("实际完成情况", "goal_achieved"), ("实际 完成情况", "goal_achieved")],
)
def test_goal_columns(m: LabelMatcher, text: str, key: str) -> None:
    hit = m.match(text, "goal")
    assert hit is not None and hit.key == key


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("项目资金 (元)", "funding_block"),
        ("项目资金（元）", "funding_block"),
        ("年度 总体 目标", "goal_block"),
        ("绩效 指标", "indicator_block"),
        ("合计", "total"),
        ("总分", "total"),
        ("说明", "notes"),
        ("2019年度财政项目绩效自我评价", "title"),
        ("财政项目支出绩效自评表", "title"),
        ("2020年度财政项目绩效自评价", "title"),
    ],
)
def test_structural_labels(m: LabelMatcher, text: str, key: str) -> None:
    hit = m.match(text)
    assert hit is not None and hit.section == "structure" and hit.key == key
    # structural labels never come back as a key of a data section
    assert m.match(text, "fields") is None
    assert m.match(text, "indicators") is None


def test_no_section_prefers_header_grid_then_funding(m: LabelMatcher) -> None:
    hit = m.match("分值")
    assert hit is not None and hit.section == "funding"
    hit = m.match("自评时间")
    assert hit is not None and hit.section == "fields"


def test_exact_label_of_another_section_is_not_fuzzy_here(m: LabelMatcher) -> None:
    # 预算执行率 is one edit from 执行率's neighbours but is a header-grid label
    assert m.match("预算执行率", "funding") is None
    # 年度总体目标 (the goal block) is not a damaged 项目年度总目标
    assert m.match("年度总体目标", "fields") is None


# --- matching: OCR noise -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "section", "key"),
    [
        ("當年預算數（元）", "fields", "budget_current_year"),  # traditional
        ("績效等級", "fields", "grade"),
        ("項目名稱", "fields", "project_name"),
        ("評分規則", "indicators", "scoring_rule"),
        ("偏差原因分析及改進措施", "indicators", "remark"),
        ("预算执行率（％）", "fields", "execution_rate"),  # full-width %
        ("预算执行率(%", "fields", "execution_rate"),  # lost bracket
        ("上年预算金额(元", "fields", "budget_prior_year"),
        ("—级指标", "indicators", "level1"),  # 一 read as a dash
        ("-级指标", "indicators", "level1"),
        ("2O19年度财政项目绩效自我评价", "structure", "title"),  # O for 0 in the year
        ("自评时间：", "fields", "evaluation_date"),  # stray colon
        ("| 绩效等级 |", "fields", "grade"),
    ],
)
def test_noise_exact_after_cleaning(m: LabelMatcher, text: str, section: str, key: str) -> None:
    hit = m.match(text, section)
    assert hit is not None and hit.key == key
    assert hit.score == 1.0


@pytest.mark.parametrize(
    ("text", "section", "key"),
    [
        ("项目年周 度总目标", "fields", "annual_goal"),  # seed 004: a stray character inside
        ("政项目绩效自评价 1", "structure", "title"),  # seed 004: first char lost, stray '1'
        ("效等级", "fields", "grade"),  # seed 004 pieces
        ("评时间", "fields", "evaluation_date"),
        ("要问题", "fields", "main_problems"),
        ("进措施", "fields", "improvements"),
        ("是否为经常性项", "fields", "is_recurring"),
        ("具体实施处(科)", "fields", "implementing_division"),
        ("预算执行数(无)", "fields", "budget_executed"),  # 元 misread
        ("偏差原因分忻及改进措施", "indicators", "remark"),
        ("年度指标直", "indicators", "target_value"),
        ("实际完戍值", "indicators", "actual_value"),
        ("其中：当年财政拔款", "funding_rows", "current_appropriation"),
        ("上年结转资仓", "funding_rows", "carryover"),
        ("年度资金总頟", "funding_rows", "total"),
    ],
)
def test_noise_fuzzy(m: LabelMatcher, text: str, section: str, key: str) -> None:
    hit = m.match(text, section)
    assert hit is not None and hit.key == key
    assert 0.75 <= hit.score < 1.0


def test_fuzzy_join_of_split_label_scores_high(m: LabelMatcher) -> None:
    # normalize joins a label split over two cells and accepts it at >= 0.9
    hit = m.match("项目年周" + "度总目标", "fields")
    assert hit is not None and hit.score >= 0.9
    assert m.match("项目年周", "fields") is None


def test_fuzzy_score_falls_with_damage(m: LabelMatcher) -> None:
    one = m.match("是否为经常性项", "fields")
    two = m.match("是否为经常项", "fields")
    assert one is not None and two is not None
    assert two.score < one.score < 1.0


# --- negatives: values are not labels ------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        # project names and units
        "合作交流工作业务费",
        "上海市政府驻外办事处视频会议系统(运维)",
        "上海市人民政府合作交流办公室",
        "综合秘书处",
        "网上政务科",
        "党建办",
        "机关服务费",
        # indicator values printed next to labels
        "产出指标",
        "产出 指标",
        "时效指标",  # one edit from the structural 绩效指标
        "质量指标",
        "效益 指标",
        "可持续影 响指标",
        "服务对象 满意度指 标",
        "投入与管理 (36分)",
        "产出目标 (34分)",
        "资金使用的合规性",
        "预算执行率偏低。",
        "成本控制在预算内",
        "≥60 次",
        # grades, booleans, numbers, dates
        "优秀",
        "良好",
        "合格",
        "是",
        "否",
        "无",
        "2,523,747.00",
        "65.37%",
        "100",
        "2020-3-15",
        "（ 2022 年度）",
        # one edit from a two-character label (权重 备注 合计 分值): too little to go on
        "权利",
        "备用",
        "合同",
        "分数",
        # pieces too short to say anything
        "分",
        "得",
        "指标",
        "时间",
        "等级",
        "项目年",
        # OCR junk of seed 004
        "が ロ シス ス ロ バ ガ",
        "<b>新州</b>",
        "汉廷以",
        "-",
        "",
        "   ",
    ],
)
def test_values_are_not_labels(m: LabelMatcher, text: str) -> None:
    assert m.match(text) is None
    assert not m.is_label_like(text)
    for section in lexicon.SECTIONS:
        assert m.match(text, section) is None


PARAGRAPHS = [
    "通过设立合作交流工作业务费项目,确保合作交流工作及课题研究项目的顺利开展,为完成市委、市政府布置的年度对口支援与合作交流工作任务提供保障。",
    "视频会议系统使用面还不够广,利用率有待进一步提高,目前主要是驻外办事处使用。",
    "项目立项时,切实充分论证其可行性,提高项目预算编制的前瞻性和科学性。",
    "项目资金使用是否符合相关法律法规、制度和规定,项目资金使用是否规范和安全。",
    "偏差原因：工作精细化程度还有待提高。 改进措施：加强工作细致性，提供全方位精准服务。",
    "说明：1、依据本项目应实现的绩效目标或工作计划，对照已完成的情况，进行绩效自评。",
    "自评时间 2020-3-15 绩效等级 良好 主要绩效 通过差旅费项目的实施",
]


@pytest.mark.parametrize("text", PARAGRAPHS)
def test_paragraphs_are_not_labels(m: LabelMatcher, text: str) -> None:
    assert m.match(text) is None
    assert m.match(text, "fields") is None


def test_ambiguous_damage_is_no_label(m: LabelMatcher) -> None:
    # '级指标' is one edit from 一级指标, 二级指标 and 三级指标 alike
    assert m.match("级指标", "indicators") is None
    # one edit from both 预算执行数(元) and 预算执行率 without the unit
    assert m.match("预算执行x", "fields") is None


@pytest.mark.skipif(not TRUTH.exists(), reason="dev corpus truth not present")
def test_dev_truth_values_are_not_labels(m: LabelMatcher) -> None:
    # every text value of the dev corpus truth, except the indicator named like a label
    allowed = {"预算执行率"}
    bad = []
    for f in sorted(TRUTH.glob("*.json")):
        for rec in json.loads(f.read_text(encoding="utf-8")):
            values = [v for k, v in rec["fields"].items() if k != "form_title"]
            values += [v for row in rec["indicators"] for v in row.values()]
            for v in values:
                if isinstance(v, str) and v not in allowed and m.match(v) is not None:
                    bad.append(v)
    assert bad == []


# --- the spaCy pipeline --------------------------------------------------------------------


def test_saved_pipeline_loads_offline_and_is_current() -> None:
    assert (SPACY_DIR / "config.cfg").exists(), "run: python -m pipeline.lexicon build"
    nlp = spacy.load(SPACY_DIR)
    assert nlp.pipe_names == ["scanforms_label_phrases", "scanforms_typed_values"]
    assert nlp.meta["scanforms_schema_sha256"] == Schema.load().sha256


def test_build_is_reproducible(tmp_path: Path) -> None:
    assert lexicon.main(["build", "--out", str(tmp_path / "a")]) == 0
    assert lexicon.main(["build", "--out", str(tmp_path / "b")]) == 0
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert files_a == files_b and files_a
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    nlp = spacy.load(tmp_path / "a")
    doc = nlp("自评时间")
    whole = [s.label_ for s in doc.spans["labels"] if (s.start, s.end) == (0, len(doc))]
    assert whole == ["fields|evaluation_date|自评时间"]


def test_load_builds_when_missing(tmp_path: Path) -> None:
    out = tmp_path / "spacy_labels"
    nlp = lexicon.load_nlp(out)
    assert (out / "config.cfg").exists()
    assert "scanforms_label_phrases" in nlp.pipe_names


def test_typed_value_entities() -> None:
    nlp = build_nlp()
    doc = nlp(
        "当年预算数(元) 2,523,747.00 预算执行率(%) 65.37% 自评时间 2020-3-15 权重 8 金额 １２３元 2020年6月12日"
    )
    ents = [(e.text, e.label_) for e in doc.ents]
    assert ents == [
        ("2,523,747.00", "MONEY"),
        ("65.37%", "PERCENT"),
        ("2020-3-15", "DATE"),
        ("8", "NUMBER"),
        ("１２３元", "MONEY"),
        ("2020年6月12日", "DATE"),
    ]
    labels = {s.label_.split("|")[1] for s in doc.spans["labels"]}
    assert {"budget_current_year", "execution_rate", "evaluation_date", "weight"} <= labels


def test_matcher_is_cached_and_fast(m: LabelMatcher) -> None:
    import time

    texts = [f"项目名称{i}" for i in range(300)] + ["绩效 等级", "合作交流工作业务费"] * 500
    t = time.perf_counter()
    for t_ in texts:
        m.match(t_, "fields")
    assert time.perf_counter() - t < 2.0
    assert m.match("绩效 等级", "fields") is m.match("绩效 等级", "fields")


def test_unknown_section(m: LabelMatcher) -> None:
    with pytest.raises(ValueError):
        m.match("项目名称", "header")


@pytest.mark.parametrize(("right", "misread"), [
    ("酌情扣分", "的情扣分"),  # 的, the commonest character, standing alone
    ("扣完为止", "和完为止"),  # 和 is 300x commoner than 扣 by jieba's counts
    ("执行的有效性", "执行的有或性"),
    ("项目立项", "项目主项"),
])
def test_text_logprob_prefers_words_to_common_characters(right: str, misread: str) -> None:
    assert lexicon.text_logprob(right) > lexicon.text_logprob(misread)


def test_text_logprob_counts_every_lone_character_alike() -> None:
    # by their own counts 和 would outweigh 扣 wherever either stands alone
    assert lexicon.text_logprob("扣") == lexicon.text_logprob("和") < 0
    assert lexicon.text_logprob("") == 0.0
