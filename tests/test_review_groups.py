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


def test_crops_that_differ_never_join(out: Path) -> None:
    """Same key, same reading, same value, but one crop shows other ink: it leaves the group."""
    queue = read_queue(out)
    members = _multi(queue)
    # another cell's crop with different text under the first member's crop name
    other = next(e for e in queue if e["group"] != members[0]["group"] and e["crop"]
                 and norm_text(e["raw"]) != norm_text(members[0]["raw"]) and len(norm_text(e["raw"])) > 3)
    review = out / "review"
    shutil.copyfile(review / other["crop"], review / members[0]["crop"])
    export.combine_review_queue(out)
    after = {e["id"]: e for e in read_queue(out)}
    assert after[members[0]["id"]]["group"] != after[members[1]["id"]]["group"]
    assert after[members[0]["id"]]["group_size"] == 1
    # and put back, it rejoins (the check is on the crops, nothing else changed)
    copy = fresh_output(out.parent, out.parent / "again")
    export.combine_review_queue(copy)
    again = {e["id"]: e for e in read_queue(copy)}
    assert again[members[0]["id"]]["group"] == again[members[1]["id"]]["group"]


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


def _print(text: str, dx: int, dy: int, noise: float, seed: int) -> Any:
    """A cell crop as the queue writer cuts it: the cell's rules 12 px in, grey print, grain."""
    import cv2
    import numpy as np

    img = np.full((70, 110), 245, np.uint8)
    cv2.rectangle(img, (12, 12), (97, 57), 40, 2)
    cv2.putText(img, text, (40 + dx, 42 + dy), cv2.FONT_HERSHEY_SIMPLEX, 0.7, 60, 1, cv2.LINE_AA)
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
