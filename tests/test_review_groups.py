"""Groups in the review queue, on a real pipeline output: cells that read the same get one
decision; a merged cell is one entry; crops that differ never join; split and undo."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from review_fixtures import fresh_output, jsonl_cell, output_cell, read_queue

from pipeline import export
from pipeline.review.groups import norm_text
from pipeline.review.session import ReviewSession


@pytest.fixture
def out(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fresh_output(tmp_path_factory.getbasetemp(), tmp_path / "out")


def _groups(queue: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    g: dict[str, list[dict[str, Any]]] = {}
    for e in queue:
        g.setdefault(e["group"], []).append(e)
    return g


def _cells(entries: list[dict[str, Any]]) -> list[tuple[dict[str, Any], int | None]]:
    return [(e, r) for e in entries for r in e["rows"]]


def _multi(queue: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A group of two or more entries (over two rows or more, so not one merged cell)."""
    return next(m for m in _groups(queue).values() if len(m) >= 2)


@pytest.mark.slow  # a real pipeline run over whole files
def test_queue_entries_carry_group_and_size(out: Path) -> None:
    queue = read_queue(out)
    groups = _groups(queue)
    assert len(groups) < len(queue)  # the sample repeats readings (weights, 100%, indicator kinds)
    for members in groups.values():
        assert {e["group_size"] for e in members} == {len(members)}
        # one key, one reading (the scorer's normalisation), one value in a group
        assert len({(e["section"], e["key"], norm_text(e["raw"]), json.dumps(e["value"])) for e in members}) == 1
    report = json.loads((out / "run_report.json").read_text(encoding="utf-8"))
    assert (report["review_entries"], report["review_groups"]) == (len(queue), len(groups))
    assert report["review_cells"] == sum(len(e["rows"]) for e in queue)
    md = (out / "run_report.md").read_text(encoding="utf-8")
    assert f"{len(groups)} groups to review" in md


@pytest.mark.slow  # a real pipeline run over whole files
def test_merged_level1_cell_is_one_entry_and_its_decision_lands_on_every_row(out: Path) -> None:
    queue = read_queue(out)
    merged = next(e for e in queue if e["key"] == "level1" and len(e["rows"]) > 1)
    # no other entry for a row it covers
    others = [e for e in queue if e["key"] == "level1" and e["form_index"] == merged["form_index"]
              and e["id"] != merged["id"]]
    assert not set(merged["rows"]) & {r for e in others for r in e["rows"]}
    recs = json.loads((out / "d025.json").read_text(encoding="utf-8"))
    bbox = recs[0]["indicators"][merged["rows"][0]]["level1"]["bbox"]
    assert [recs[0]["indicators"][r]["level1"]["bbox"] for r in merged["rows"]] == [bbox] * len(merged["rows"])
    s = ReviewSession(out, "dora")
    s.split(merged["id"])  # on its own, so only this entry's rows are decided
    o = s.decide(merged["id"], "set", text="产出指标")
    s.close()
    assert o.cells == len(merged["rows"])
    for r in merged["rows"]:
        c = output_cell(out, merged, r)
        assert (c["value"], c["reviewed"]) == ("产出指标", True)


@pytest.mark.slow  # a real pipeline run over whole files
def test_one_decision_for_the_group_each_cell_audited_undo_takes_it_all_back(out: Path) -> None:
    queue = read_queue(out)
    members = _multi(queue)
    before = {(e["id"], r): output_cell(out, e, r) for e, r in _cells(members)}
    s = ReviewSession(out, "erin")
    o = s.decide(members[-1]["id"], "set", text="77" if isinstance(members[0]["value"], (int, float)) else "改正")
    want = o.value
    assert o.cells == len(before) >= 2
    for e, r in _cells(members):
        for c in (output_cell(out, e, r), jsonl_cell(out, e) if r == e["row"] else output_cell(out, e, r)):
            assert (c["value"], c["reviewed"], c["confidence"]) == (want, True, 1.0)
    trail = s.store.audit()
    assert len(trail) == len(before) and {a["action"] for a in trail} == {"set"}
    assert {(a["row"], a["file"]) for a in trail} == {(r, e["file"]) for e, r in _cells(members)}
    # undo takes back the whole group decision
    u = s.undo()
    assert u is not None and u.cells == len(before)
    for e, r in _cells(members):
        assert output_cell(out, e, r) == before[(e["id"], r)]
    assert s.decisions() == {} and s.undo() is None
    s.close()


@pytest.mark.slow  # a real pipeline run over whole files
def test_a_split_cell_is_decided_on_its_own(out: Path) -> None:
    queue = read_queue(out)
    members = _multi(queue)
    odd, rest = members[0], members[1:]
    s = ReviewSession(out, "finn")
    s.split(odd["id"])
    assert s.item(odd["id"]).group != s.item(rest[0]["id"]).group
    assert s.item(rest[0]["id"]).group_size == len(rest)
    s.decide(rest[0]["id"], "accept")
    assert not output_cell(out, odd).get("reviewed")
    for e, r in _cells(rest):
        assert output_cell(out, e, r)["reviewed"] is True
    s.decide(odd["id"], "set", text="")
    assert output_cell(out, odd)["value"] is None
    # the split is kept in the decisions file: a new session sees it
    s.close()
    s = ReviewSession(out)
    assert s.item(odd["id"]).group.startswith("split:")
    s.close()
    con = sqlite3.connect(out / "review" / "decisions.sqlite")
    assert con.execute("SELECT count(*) FROM splits").fetchone()[0] == 1


def _fair_readings(out: Path) -> None:
    """Every reading fairly but not wholly sure (OCR 0.95): only the crops can join them."""
    for part in (out / "review" / "parts").glob("*.jsonl"):
        entries = [json.loads(line) for line in part.read_text(encoding="utf-8").splitlines() if line.strip()]
        export.write_jsonl(part, [{**e, "ocr_min": 0.95} for e in entries])


@pytest.mark.slow  # a real pipeline run over whole files
def test_crops_that_differ_never_join(out: Path) -> None:
    """Same key, same reading, same value, but one crop shows other ink: it leaves the group."""
    _fair_readings(out)
    export.combine_review_queue(out)
    queue = read_queue(out)
    members = _multi([e for e in queue if len(norm_text(e["raw"])) < 8])  # short: the crops decide
    # another cell's crop with different text under the first member's crop name
    other = next(e for e in queue if e["group"] != members[0]["group"] and e["crop"]
                 and norm_text(e["raw"]) != norm_text(members[0]["raw"]) and len(norm_text(e["raw"])) > 3)
    review = out / "review"
    shutil.copyfile(review / other["crop"], review / members[0]["crop"])
    _fair_readings(out)
    export.combine_review_queue(out)
    after = {e["id"]: e for e in read_queue(out)}
    assert after[members[0]["id"]]["group"] != after[members[1]["id"]]["group"]
    assert after[members[0]["id"]]["group_size"] == 1
    # and put back, it rejoins (the check is on the crops, nothing else changed)
    copy = fresh_output(out.parent, out.parent / "again")
    _fair_readings(copy)
    export.combine_review_queue(copy)
    again = {e["id"]: e for e in read_queue(copy)}
    assert again[members[0]["id"]]["group"] == again[members[1]["id"]]["group"]


@pytest.mark.slow  # a real pipeline run over whole files
def test_reviewed_cells_become_calibration_data_and_terms(out: Path, tmp_path: Path) -> None:
    """Accepted cells are right, corrected ones wrong, with the features the pipeline saw."""
    from pipeline import calibrate, confidence
    from pipeline.cli import main

    queue = read_queue(out)
    s = ReviewSession(out, "gus")
    level1 = next(e for e in queue if e["key"] == "level1")
    s.split(level1["id"])
    s.decide(level1["id"], "set", text="新型一级指标")  # no such term in the vocabulary
    number = next(e for e in queue if e["group_size"] == 1 and len(e["rows"]) == 1
                  and isinstance(e["value"], (int, float)) and not isinstance(e["value"], bool))
    s.decide(number["id"], "set", text=str(number["value"] + 7))
    accepted = [e for e in queue if e["group_size"] == 1 and len(e["rows"]) == 1
                and e["id"] != number["id"] and e["value"] is not None][:5]
    for e in accepted:
        s.decide(e["id"], "accept")
    s.close()
    X, y, files = calibrate.review_set(out)
    assert len(X) == len(level1["rows"]) + 1 + len(accepted) and len(X[0]) == len(confidence.FEATURES)
    assert sorted(y) == [0.0] * (len(level1["rows"]) + 1) + [1.0] * len(accepted)
    # the features are those of the record before review: the corrected number's own
    # evidence, not a reviewed cell's (whose OCR evidence would be gone)
    feats = calibrate.load_features(out)
    key = (number["file"], number["form_index"], number["section"], number["row"], number["key"])
    assert key in feats
    assert main(["calibrate", "--reviews", str(out), "--dry-run"]) == 0
    terms = tmp_path / "terms.yaml"
    assert main(["review", "--out", str(out), "--export-terms", str(terms)]) == 0
    import yaml

    data = yaml.safe_load(terms.read_text(encoding="utf-8"))
    assert data == {"level1": ["新型一级指标"]}


def _print(text: str, dx: int, dy: int, noise: float, seed: int, font: int = 0) -> Any:
    """A cell crop as the queue writer cuts it: the cell's rules 12 px in, grey print, grain."""
    import cv2
    import numpy as np

    img = np.full((70, 110), 245, np.uint8)
    cv2.rectangle(img, (12, 12), (97, 57), 40, 2)
    cv2.putText(img, text, (40 + dx, 42 + dy), font, 0.7 if font == 0 else 1.1, 60, 1, cv2.LINE_AA)
    img = cv2.GaussianBlur(img, (3, 3), 0)
    grain = np.random.default_rng(seed).normal(0, noise, img.shape)
    return np.clip(img.astype(float) + grain, 0, 255).astype(np.uint8)


@pytest.mark.parametrize(("a", "b", "same"), [
    ("10", "10", True), ("95%", "95%", True), ("5", "5", True),
    ("10", "18", False), ("95%", "96%", False), ("100", "108", False), ("12", "17", False), ("5", "6", False),
])
def test_crop_check_tells_one_glyph_apart(a: str, b: str, same: bool) -> None:
    """Two prints, shifted and with other grain: the same text matches, one glyph changed does not."""
    from pipeline.review.groups import crop_signature, crops_match

    sa, sb = crop_signature(_print(a, 0, 0, 8, 1)), crop_signature(_print(b, 3, -2, 12, 2))
    assert sa is not None and sb is not None
    assert crops_match(sa, sb) is same


def _entry(i: int, raw: str, crop: str, ocr_min: float | None, **kw: Any) -> dict[str, Any]:
    return {"id": f"e{i}", "file": f"f{i}.pdf", "sha256": f"{i:064d}", "form_index": 0, "section": "indicators",
            "row": 3, "key": "weight", "value": kw.pop("value", raw or None), "raw": raw, "confidence": 0.5,
            "page": 1, "bbox": [100, 100, 185, 145], "crop": crop, "ocr_min": ocr_min, **kw}


def test_which_readings_join(tmp_path: Path) -> None:
    """OCR-sure readings join whatever the font; unsure ones only by their print; a blank
    reading joins blanks that show nothing; a cell twice a row's height joins nothing."""
    import cv2

    from pipeline.review.groups import assign_groups

    crops = tmp_path / "crops"
    crops.mkdir()
    for name, text, seed in (("a", "10", 1), ("b", "10", 2), ("c", "18", 3), ("d", "", 4), ("e", "", 5), ("f", "7", 6)):
        cv2.imwrite(str(crops / f"{name}.jpg"), _print(text, 0, 0, 6, seed))
    cv2.imwrite(str(crops / "g.jpg"), _print("18", -8, 6, 6, 7, font=cv2.FONT_HERSHEY_SCRIPT_SIMPLEX))  # another hand
    entries = [
        _entry(0, "10", "crops/a.jpg", 0.95), _entry(1, "10", "crops/b.jpg", 0.95),  # one print: join
        _entry(2, "10", "crops/c.jpg", 0.95),  # reads 10, shows 18, unsure: alone
        _entry(3, "18", "crops/c.jpg", 0.995), _entry(4, "18", "crops/g.jpg", 0.995),  # both sure: join
        _entry(5, "", "crops/d.jpg", None), _entry(6, "", "crops/e.jpg", None),  # blank, nothing shown: join
        _entry(7, "", "crops/f.jpg", None),  # read blank, shows a 7: alone
        _entry(8, "18", "crops/c.jpg", 0.995, bbox=[100, 100, 185, 190]),  # twice as tall: alone
    ]
    from pipeline.review.groups import crop_signature, crops_match

    sig = {n: crop_signature(cv2.imread(str(crops / f"{n}.jpg"), cv2.IMREAD_GRAYSCALE)) for n in "cg"}
    assert not crops_match(sig["c"], sig["g"])  # the prints differ: the OCR profile joins 3 and 4
    assign_groups(entries, tmp_path)
    g = [e["group"] for e in entries]
    assert g[0] == g[1] != g[2] and len({g[2], g[3], g[5], g[7], g[8]}) == 5
    assert g[3] == g[4] and g[5] == g[6]
    assert [e["group_size"] for e in entries] == [2, 2, 1, 2, 2, 2, 2, 1, 1]


def test_a_blank_on_a_page_read_badly_joins_no_other(tmp_path: Path) -> None:
    """On a page whose cells mostly read unsure, a blank cell may be one the grid misplaced (its
    value in the cell beside it): decided on its own, however empty its crop looks."""
    import cv2

    from pipeline.review.groups import BLANK_PAGE_QUALITY, assign_groups

    (tmp_path / "crops").mkdir()
    for name, seed in (("d", 4), ("e", 5), ("h", 8)):
        cv2.imwrite(str(tmp_path / "crops" / f"{name}.jpg"), _print("", 0, 0, 6, seed))
    entries = [
        _entry(0, "", "crops/d.jpg", None, page_quality=0.99), _entry(1, "", "crops/e.jpg", None),  # read well / unknown
        _entry(2, "", "crops/h.jpg", None, page_quality=BLANK_PAGE_QUALITY - 0.2),  # a photo read badly
    ]
    assign_groups(entries, tmp_path)
    assert [e["group_size"] for e in entries] == [2, 2, 1]


def test_a_row_that_borrowed_a_cells_value_is_not_in_its_span() -> None:
    """A label carried over a page break lands on rows outside the cell: those are decided
    on their own; a span whose text is no vocabulary term is a merge across a lost rule."""
    from pipeline.review.groups import merge_spanning, reading_key, row_in_cell

    box = [360, 2127, 533, 2301]
    assert row_in_cell(1, box, [(1, box), (1, [541, 2206, 795, 2250])])
    assert not row_in_cell(1, box, [(1, box), (2, [542, 377, 786, 403])])  # the next page
    base = {"file": "x.pdf", "sha256": "s", "form_index": 0, "section": "indicators", "key": "level1", "page": 1,
            "bbox": box, "crop": "crops/x.jpg"}
    rows = [{**base, "id": f"r{r}", "row": r, "raw": "效果目标(20分)", "in_cell": r < 3} for r in range(5)]
    merged = merge_spanning(rows)
    assert [e["rows"] for e in merged] == [[0, 1, 2], [3], [4]]
    assert [reading_key(e) is None for e in merged] == [False, True, True]
    mixed = [{**base, "id": f"m{r}", "row": r, "raw": "可持续影响指标服务对象满意度指标"} for r in range(2)]
    assert [(e["rows"], e.get("shared_cell")) for e in merge_spanning(mixed)] == [([0], True), ([1], True)]
