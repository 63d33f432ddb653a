"""Validation: the forms' arithmetic flags cells, repairs only unambiguous misreads."""

from __future__ import annotations

from pipeline.types import FormRecord, Value
from pipeline.validate import alternative_readings, check, validate


def V(value: object, raw: str | None = None) -> Value:  # noqa: N802
    return Value(value=value, raw=raw if raw is not None else str(value), confidence=0.99, page=1, bbox=(0, 0, 1, 1))


def _record(scores: list[tuple[int, int]], total: tuple[int, int], rate: Value | None = None) -> FormRecord:
    rec = FormRecord(file="x.pdf", form_index=0, pages=[1])
    rec.fields = {
        "budget_current_year": V(490000.0, "490,000.00"),
        "budget_executed": V(490000.0, "490,000.00"),
        "execution_rate": rate or V(100.0, "100.00%"),
        "total_weight": V(total[0]),
        "total_score": V(total[1]),
        "grade": V("优秀"),
    }
    rec.indicators = [{"name": V(f"指标{i}"), "weight": V(w), "score": V(s)} for i, (w, s) in enumerate(scores)]
    return rec


def test_consistent_form_passes() -> None:
    rec = _record([(60, 58), (40, 40)], (100, 98))
    assert all(r.ok for r in check(rec))
    validate(rec)
    assert rec.fields["total_score"].confidence == 0.99 and not rec.fields["total_score"].reasons


def test_inconsistent_form_comes_out_as_written_and_flagged() -> None:
    # the form itself prints a score above its weight and a total that is not the sum
    rec = _record([(8, 9), (92, 80)], (100, 90))
    validate(rec)
    bad = rec.indicators[0]["score"]
    assert bad.value == 9  # never overwritten: cleanly printed
    assert bad.confidence < 0.99 and any("score<=weight" in r for r in bad.reasons)
    assert rec.fields["total_score"].value == 90
    assert any("total_score" in r for r in rec.fields["total_score"].reasons)
    assert rec.extra_source["validation"]["failed"]


def test_misread_rate_repaired_when_only_one_reading_fits() -> None:
    rec = _record([(60, 60), (40, 40)], (100, 100), rate=V(1000.0, "10 00.00%"))
    validate(rec)
    cell = rec.fields["execution_rate"]
    assert cell.value == 100.0
    assert any("only reading" in r for r in cell.reasons)


def test_grade_must_match_total() -> None:
    rec = _record([(60, 40), (40, 30)], (100, 70))  # 70 is 合格, not 优秀
    assert any(r.name == "grade" and not r.ok for r in check(rec))


def test_alternative_readings() -> None:
    assert 225000.0 in alternative_readings("225.000.00")
    assert 100.0 in alternative_readings("10 00.00%")
    assert 100.0 in alternative_readings("100. 00")


def _level1_record(weights: list[int], points: int) -> FormRecord:
    rec = FormRecord(file="x.pdf", form_index=0, pages=[1])
    rec.indicators = [{"name": V(f"指标{i}"), "level1": V("影响力目标"), "level1_points": V(points),
                       "weight": V(w), "score": V(min(w, 3))} for i, w in enumerate(weights)]
    return rec


def test_one_weight_above_its_level1_points_is_the_misread_and_goes_to_review() -> None:
    from pipeline.confidence.scoring import score_record

    # the 合计 row's 100 read into the last row's weight: 3 + 4 + 4 fit in 15 points, 100 cannot
    rec = _level1_record([3, 4, 4, 100], 15)
    failed = [r for r in validate(rec) if not r.ok]
    assert [r.name for r in failed if r.blames] == ["weight<=level1_points"]
    for ind in rec.indicators:
        ind["level1_points"].evidence["parsed"] = 0.0  # the points doubtful too (capped at 0.3) ...
    score_record(rec, {}, threshold=0.5, failed_rules=failed)
    assert all(i["level1_points"].needs_review for i in rec.indicators)
    # ... and still the weight is to blame, the only one of the level1's flagged by the rules
    assert rec.indicators[3]["weight"].needs_review
    assert rec.indicators[3]["weight"].confidence >= 0.5  # flagged by the rule, not by its score


def test_several_weights_above_the_points_blame_the_points() -> None:
    rec = _level1_record([18, 6, 10], 3)  # 34分 read as 3
    assert not any(r.blames for r in check(rec))


def _two_level1_record(points: Value, weights: tuple[list[int], list[int]] = ([6, 8, 4], [2, 3, 18, 11])) -> FormRecord:
    """投入与管理 (18分) and 产出目标 (34分, read as `points`), total weight printed 52."""
    rec = FormRecord(file="x.pdf", form_index=0, pages=[1])
    rec.fields = {"total_weight": V(52)}
    first, second = weights
    rec.indicators = [{"name": V(f"甲{i}"), "level1": V("投入与管理"), "level1_points": V(18), "weight": V(w)}
                      for i, w in enumerate(first)]
    pts = [points] + [Value(points.value, points.raw, points.confidence, 1, (0, 0, 1, 1),
                            evidence=dict(points.evidence)) for _ in second[1:]]
    rec.indicators += [{"name": V(f"乙{i}"), "level1": V("产出目标"), "level1_points": p, "weight": V(w)}
                       for i, (w, p) in enumerate(zip(second, pts, strict=True))]
    return rec


def test_misread_level1_points_repaired_from_weights_that_add_up_to_the_total() -> None:
    rec = _two_level1_record(V(3.1, "产出目标（3.1 分）"))  # 34 read as 3.1 (dev d055, a 1-bit TIFF)
    failed = [r for r in validate(rec) if not r.ok]
    assert not failed
    for ind in rec.indicators[3:]:
        cell = ind["level1_points"]
        assert cell.value == 34 and cell.confidence <= 0.5 and cell.evidence["repaired"] == 1.0
        assert cell.alternatives[0]["value"] == 3.1  # what was read, one key press away
    assert all(ind["level1_points"].value == 18 for ind in rec.indicators[:3])


def test_level1_points_kept_where_the_weights_are_not_sure_or_the_print_is_clean() -> None:
    # the weights miss the total (a weight misread, or the form's own slip): nothing to go on
    rec = _two_level1_record(V(3.1, "产出目标（3.1 分）"), weights=([6, 8, 4], [2, 3, 18, 10]))
    validate(rec)
    assert rec.indicators[3]["level1_points"].value == 3.1
    # a whole number read cleanly (every character sure) is what the form prints
    rec = _two_level1_record(V(31, "产出目标（31分）"))
    rec.indicators[3]["level1_points"].evidence["ocr_min"] = 0.99
    validate(rec)
    assert rec.indicators[3]["level1_points"].value == 31
    # the same number read with a doubtful character is repaired
    rec = _two_level1_record(V(31, "产出目标（31分）"))
    for ind in rec.indicators[3:]:
        ind["level1_points"].evidence["ocr_min"] = 0.6
    validate(rec)
    assert all(ind["level1_points"].value == 34 for ind in rec.indicators[3:])


def test_a_lone_one_is_the_thin_four_or_seven_the_arithmetic_asks_for() -> None:
    # a score 4 read as its stem '1' on a 1-bit TIFF (dev d055): 合计 94 wants 90 + 4
    rec = _record([(5, 1), (95, 90)], (100, 94))
    validate(rec)
    cell = rec.indicators[0]["score"]
    assert cell.value == 4 and cell.evidence["repaired"] == 1.0
    assert cell.alternatives == [{"value": 1, "why": "as read: '1'"}]
    # two lone ones, either of which could be the 4: a person picks, nothing is changed
    rec = _record([(5, 1), (5, 1), (90, 89)], (100, 94))
    validate(rec)
    assert [i["score"].value for i in rec.indicators] == [1, 1, 89]
    # a 4 would break its row (score above weight 2): the form's own slip stays as printed
    rec = _record([(2, 1), (98, 90)], (100, 94))
    validate(rec)
    assert rec.indicators[0]["score"].value == 1
