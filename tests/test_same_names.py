"""Inputs of the same name in different folders, and of the same bytes under two names.

`scanforms run` as a user runs it (a subprocess, the real Prefect flow in its ephemeral
mode, OCR from a copy of tests/ocr_cache) over

    in/x/a.pdf   (data/raw/d025.pdf)
    in/y/a.pdf   (data/raw/d030.pdf)
    in/z/b.pdf   (d025.pdf's bytes again)

0.3.0 wrote one a.json for both a.pdf (the second's form twice in records.jsonl, the
first's nowhere) and processed d025 twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from pipeline.review.session import ReviewSession

REPO = Path(__file__).resolve().parents[1]
RAW = REPO / "data" / "raw"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run(src: Path, out: Path, cache: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    # review threshold 1.0: every cell is queued, so both files surely have cells to decide
    env = os.environ | {"SCANFORMS_OCR_CACHE": str(cache), "PYTHONPATH": str(REPO)}
    p = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "run", str(src), "--out", str(out), "-q",
         "--review-threshold", "1.0", *extra],
        env=env, capture_output=True, text=True, timeout=600, cwd=REPO,
    )
    assert p.returncode == 0, p.stderr
    return p


def _report(out: Path) -> dict[str, Any]:
    return json.loads((out / "run_report.json").read_text(encoding="utf-8"))


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dst = tmp_path_factory.mktemp("ocr") / "cache"
    shutil.copytree(REPO / "tests" / "ocr_cache", dst)
    return dst


@pytest.fixture(scope="module")
def same_names(tmp_path_factory: pytest.TempPathFactory, cache: Path) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("same-names")
    src = tmp / "in"
    for rel, raw in (("x/a.pdf", "d025.pdf"), ("y/a.pdf", "d030.pdf"), ("z/b.pdf", "d025.pdf")):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(RAW / raw, src / rel)
    out = tmp / "out"
    _run(src, out, cache)
    return src, out


def test_two_inputs_of_one_name_get_two_outputs(same_names: tuple[Path, Path]) -> None:
    src, out = same_names
    sha_x, sha_y = _sha(src / "x/a.pdf"), _sha(src / "y/a.pdf")
    assert not (out / "a.json").exists()
    for key, sha in (("x__a", sha_x), ("y__a", sha_y)):
        recs = json.loads((out / f"{key}.json").read_text(encoding="utf-8"))
        assert [(r["source"]["file"], r["source"]["sha256"], r["source"]["output_key"]) for r in recs] == [
            ("a.pdf", sha, key)]

    combined = _jsonl(out / "records.jsonl")
    assert sorted((r["source"]["output_key"], r["source"]["sha256"]) for r in combined) == [
        ("x__a", sha_x), ("y__a", sha_y)]
    forms = pd.read_parquet(out / "records.parquet")
    assert sorted(zip(forms.output_key, forms.sha256, strict=True)) == [("x__a", sha_x), ("y__a", sha_y)]
    assert list(forms.file) == ["a.pdf", "a.pdf"]
    assert forms.loc[forms.output_key == "x__a", "project_name"].item() == "健康教育宣传专项"  # d025's project
    ind = pd.read_parquet(out / "indicators.parquet")
    assert set(ind.output_key) == {"x__a", "y__a"}
    assert pd.read_csv(out / "records.csv", encoding="utf-8-sig").output_key.tolist() == forms.output_key.tolist()

    # the review queue: each file's part, its crops, and entries that say where the records are
    queue = _jsonl(out / "review" / "queue.jsonl")
    assert {(e["output_key"], e["sha256"]) for e in queue} == {("x__a", sha_x), ("y__a", sha_y)}
    for e in [e for e in queue if e["crop"]][:20]:
        assert e["crop"].startswith(f"crops/{e['output_key']}-") and (out / "review" / e["crop"]).exists()
    parts = {p.stem: _jsonl(p) for p in (out / "review" / "parts").glob("*.jsonl")}
    assert {k: {e["sha256"] for e in v} for k, v in parts.items()} == {"x__a": {sha_x}, "y__a": {sha_y}}

    report = _report(out)
    assert report["output_keys"] == {str(src / "x/a.pdf"): "x__a", str(src / "y/a.pdf"): "y__a"}
    md = (out / "run_report.md").read_text(encoding="utf-8")
    assert f"| {src / 'x/a.pdf'} | x__a |" in md and f"| {src / 'y/a.pdf'} | y__a |" in md


def test_identical_bytes_are_listed_and_processed_once(same_names: tuple[Path, Path]) -> None:
    src, out = same_names
    report = _report(out)
    # the first in input order is processed; the other is listed with the file it equals
    assert report["duplicates"] == [{"file": str(src / "z/b.pdf"), "same_as": str(src / "x/a.pdf")}]
    assert (report["inputs"], report["processed"], report["forms"], report["failures"]) == (3, 2, 2, [])
    assert not (out / "b.json").exists()
    manifest = {e["path"]: e for e in _jsonl(out / "manifest.jsonl")}
    dup = manifest[str((src / "z/b.pdf").resolve())]
    assert (dup["status"], dup["duplicate_of"], dup["output_key"]) == ("duplicate", str((src / "x/a.pdf").resolve()), None)
    assert "same bytes as" in (out / "run_report.md").read_text(encoding="utf-8")


def _field_item(session: ReviewSession, sha: str, key: str = "project_name"):
    return next(it for it in session.items() if it.sha256 == sha and it.section == "fields" and it.key == key)


def _project_name(out: Path, output_key: str) -> Any:
    (rec,) = json.loads((out / f"{output_key}.json").read_text(encoding="utf-8"))
    return rec["fields"]["project_name"]


def test_each_review_decision_lands_on_its_own_file(
    same_names: tuple[Path, Path], cache: Path, tmp_path: Path
) -> None:
    src, base = same_names
    out = tmp_path / "out"
    shutil.copytree(base, out)
    sha_x, sha_y = _sha(src / "x/a.pdf"), _sha(src / "y/a.pdf")
    original_y = _project_name(out, "y__a")["value"]
    session = ReviewSession(out, reviewer="tester")
    try:
        session.decide(_field_item(session, sha_x).id, "set", "甲项目")
        session.decide(_field_item(session, sha_y).id, "set", "乙项目")
        assert _project_name(out, "x__a")["value"] == "甲项目"
        assert _project_name(out, "y__a")["value"] == "乙项目"
        by_key = {r["source"]["output_key"]: r for r in _jsonl(out / "records.jsonl")}
        assert by_key["x__a"]["fields"]["project_name"]["value"] == "甲项目"
        assert by_key["y__a"]["fields"]["project_name"]["value"] == "乙项目"
        # undo takes back y's decision, in y's file only (the store knows the cell by content hash)
        session.undo()
        assert _project_name(out, "y__a")["value"] == original_y
        assert _project_name(out, "x__a")["value"] == "甲项目"
        session.decide(_field_item(session, sha_y).id, "set", "乙项目")
    finally:
        session.close()

    _run(src, out, cache, "--force")  # both processed again: the decisions are re-applied by hash
    assert (_project_name(out, "x__a")["value"], _project_name(out, "x__a")["reviewed"]) == ("甲项目", True)
    assert (_project_name(out, "y__a")["value"], _project_name(out, "y__a")["reviewed"]) == ("乙项目", True)
    forms = pd.read_parquet(out / "records.parquet").set_index("output_key")
    assert forms.loc["x__a", "project_name"] == "甲项目" and forms.loc["y__a", "project_name"] == "乙项目"


def _old_layout(new_out: Path, src: Path, old: Path) -> None:
    """What 0.3.0 wrote for in/x/a.pdf + in/y/a.pdf (checked against a real 0.3.0 run): one
    a.json holding y's records (written last), two manifest lines both naming a.json, no
    output keys anywhere, y's review part and crops under `a`."""
    old.mkdir()
    recs = json.loads((new_out / "y__a.json").read_text(encoding="utf-8"))
    for r in recs:
        del r["source"]["output_key"]
    (old / "a.json").write_text(json.dumps(recs, ensure_ascii=False, indent=1), encoding="utf-8")
    (old / "records.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs * 2),
                                       encoding="utf-8")
    (old / "review" / "crops").mkdir(parents=True)
    (old / "review" / "parts").mkdir()
    part = []
    for e in _jsonl(new_out / "review" / "parts" / "y__a.jsonl"):
        del e["output_key"]
        for k in ("crop", "row_crop"):
            if e[k]:
                name = e[k].replace("crops/y__a-", "crops/a-")
                shutil.copy(new_out / "review" / e[k], old / "review" / name)
                e[k] = name
        part.append(e)
    (old / "review" / "parts" / "a.jsonl").write_text(
        "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in part), encoding="utf-8")
    lines = []
    for e in _jsonl(new_out / "manifest.jsonl"):
        rel = Path(e["path"]).relative_to(Path(e["path"]).parents[2])
        if str(rel) in ("in/x/a.pdf", "in/y/a.pdf"):
            del e["output_key"]
            e["path"], e["output"] = str((src / rel.relative_to("in")).resolve()), "a.json"
            lines.append(json.dumps(e, ensure_ascii=False))
    assert len(lines) == 2
    (old / "manifest.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_rerun_over_a_0_3_0_output_folder(same_names: tuple[Path, Path], cache: Path, tmp_path: Path) -> None:
    """The input whose records a.json holds keeps them under `a` (migrated, not processed); the
    one 0.3.0 overwrote is processed again as x__a; the report says which is which."""
    base_src, new_out = same_names
    src = tmp_path / "in"
    for rel in ("x/a.pdf", "y/a.pdf"):
        (src / rel).parent.mkdir(parents=True)
        shutil.copy(base_src / rel, src / rel)
    out = tmp_path / "out"
    _old_layout(new_out, src, out)
    before = json.loads((out / "a.json").read_text(encoding="utf-8"))

    p = _run(src, out, cache)
    report = _report(out)
    assert (report["processed"], report["skipped"]) == (1, 1)
    assert report["migrated"] == [str(src / "y/a.pdf")]
    assert [r["file"] for r in report["relaid"]] == [str(src / "x/a.pdf")]
    assert "overwritten by another input of the same name" in report["relaid"][0]["reason"]
    assert report["output_keys"] == {str(src / "x/a.pdf"): "x__a", str(src / "y/a.pdf"): "a"}
    md = (out / "run_report.md").read_text(encoding="utf-8")
    assert f"  - {src / 'y/a.pdf'}" in md and f"  - {src / 'x/a.pdf'}: its output had been overwritten" in md
    assert "older version" in p.stderr

    after = json.loads((out / "a.json").read_text(encoding="utf-8"))
    assert [r["source"].pop("output_key") for r in after] == ["a"]
    assert after == before  # kept as it was, only the key added
    assert json.loads((out / "x__a.json").read_text(encoding="utf-8"))[0]["source"]["sha256"] == _sha(src / "x/a.pdf")
    combined = _jsonl(out / "records.jsonl")
    assert sorted((r["source"]["output_key"], r["source"]["sha256"]) for r in combined) == sorted(
        [("a", _sha(src / "y/a.pdf")), ("x__a", _sha(src / "x/a.pdf"))])
    assert {e["output_key"] for e in _jsonl(out / "review" / "queue.jsonl")} == {"a", "x__a"}
    assert all(e.get("output_key") for e in _jsonl(out / "manifest.jsonl"))

    _run(src, out, cache)  # from now on an ordinary folder: nothing to migrate, nothing to redo
    again = _report(out)
    assert (again["processed"], again["skipped"], again["migrated"], again["relaid"]) == (0, 2, [], [])
    assert again["output_keys"] == report["output_keys"]
