"""The review app's API on a real pipeline output: decisions, outputs, undo, security."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from review_fixtures import SAMPLE, fresh_output, jsonl_cell, output_cell, read_queue

from pipeline.review import labelstudio
from pipeline.review.app import create_app
from pipeline.review.session import ReviewSession

pytestmark = pytest.mark.slow  # the fixture runs the pipeline (CLI, Prefect) in a subprocess

BASE_URL = "http://127.0.0.1:8765"
JSON = {"content-type": "application/json"}


@pytest.fixture
def out(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fresh_output(tmp_path_factory.getbasetemp(), tmp_path / "out")


@pytest.fixture
def client(out: Path) -> TestClient:
    return TestClient(create_app(out, reviewer="alice"), base_url=BASE_URL)


def _entry(out: Path, pred: Any = None) -> dict[str, Any]:
    queue = read_queue(out)
    return next(e for e in queue if pred is None or pred(e))


def _post(client: TestClient, url: str, body: dict[str, Any] | None = None, **headers: str) -> Any:
    return client.post(url, content=json.dumps(body or {}), headers={**JSON, **headers})


def test_page_lists_queue_lowest_confidence_first(client: TestClient, out: Path) -> None:
    queue = read_queue(out)
    assert queue, "the sample must give a queue to review"
    r = client.get("/")
    assert r.status_code == 200
    html = r.text
    first = min(queue, key=lambda e: e["confidence"])
    # the first open item is shown: its crop, row crop, key, label, raw text, reasons, count left
    assert f'data-id="{first["id"]}"' in html
    assert f'/files/review/{first["crop"]}' in html and f'/files/review/{first["row_crop"]}' in html
    assert first["key"] in html
    if first["label"]:
        assert first["label"] in html
    assert first["raw"] in html
    for reason in first["reasons"]:
        assert reason in html
    groups = len({e["group"] for e in queue})  # the reviewer walks groups: one decision each
    assert f"<b>{groups}</b> left of {groups}" in html
    # the list is in confidence order
    confs = [e["confidence"] for e in client.get("/api/queue").json()["items"]]
    assert confs == sorted(confs)
    # the crop is served
    img = client.get(f"/files/review/{first['crop']}")
    assert img.status_code == 200 and img.content[:3] == b"\xff\xd8\xff"  # a JPEG


def test_set_value_is_stored_audited_and_written(client: TestClient, out: Path) -> None:
    e = _entry(out, lambda e: e["key"] == "level1_points")
    before = output_cell(out, e)
    r = _post(client, "/api/decisions", {"id": e["id"], "action": "set", "text": "35"})
    assert r.status_code == 200, r.text
    groups = {q["group"] for q in read_queue(out)}
    assert r.json()["value"] == 35 and r.json()["left"] == len(groups) - 1
    # SQLite in WAL mode, with the decision and an audit row for each cell of the entry's group
    db = out / "review" / "decisions.sqlite"
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    cells = sum(len(q["rows"]) for q in read_queue(out) if q["group"] == e["group"])
    rows = con.execute("SELECT value, reviewer FROM decisions WHERE key = ?", (e["key"],)).fetchall()
    assert [(json.loads(v), w) for v, w in rows] == [(35, "alice")] * cells and r.json()["cells"] == cells
    trail = con.execute("SELECT old_value, new_value, reviewer, at, batch FROM audit").fetchall()
    assert len(trail) == cells and len({t[4] for t in trail}) == 1  # one batch: undone together
    (old, new, who, at, _b) = trail[0]
    assert (json.loads(old), json.loads(new), who) == (before["value"], 35, "alice") and at
    # the record file and records.jsonl carry the corrected cell
    for cell in (output_cell(out, e), jsonl_cell(out, e)):
        assert cell["value"] == 35 and cell["confidence"] == 1.0
        assert cell["reviewed"] is True and cell["needs_review"] is False
        assert cell["raw"] == before["raw"] and cell["bbox"] == before["bbox"]
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp"))


def _text_field(e: dict) -> bool:
    """A queued header field whose value is free text (which fields get flagged depends on the model)."""
    from pipeline.lexicon import get_matcher

    return e["section"] == "fields" and get_matcher().kind("fields", e["key"]) == "text"


def test_typed_values_are_parsed_and_bad_ones_refused(client: TestClient, out: Path) -> None:
    e = _entry(out, lambda e: e["key"] == "level1_points")
    r = _post(client, "/api/decisions", {"id": e["id"], "action": "set", "text": "thirty"})
    assert r.status_code == 422 and "number" in r.json()["error"]
    assert not output_cell(out, e).get("reviewed")
    r = _post(client, "/api/decisions", {"id": e["id"], "action": "set", "text": ""})
    assert r.status_code == 200 and output_cell(out, e)["value"] is None  # empty means "nothing on the form"
    t = _entry(out, _text_field)
    r = _post(client, "/api/decisions", {"id": t["id"], "action": "set", "text": "  校对后的文字  "})
    assert r.status_code == 200 and output_cell(out, t)["value"] == "校对后的文字"


def test_accept_pick_and_undo(client: TestClient, out: Path) -> None:
    e = _entry(out, lambda e: e["alternatives"])
    original = output_cell(out, e)
    assert _post(client, "/api/decisions", {"id": e["id"], "action": "accept"}).status_code == 200
    accepted = output_cell(out, e)
    assert accepted["value"] == original["value"] and accepted["confidence"] == 1.0 and accepted["reviewed"]
    r = _post(client, "/api/decisions", {"id": e["id"], "action": "pick", "index": 0})
    assert r.status_code == 200 and output_cell(out, e)["value"] == e["alternatives"][0]["value"]
    assert _post(client, "/api/decisions", {"id": e["id"], "action": "pick", "index": 5}).status_code == 422
    # undo twice: back to the accepted value, then to the pipeline's own cell
    r = _post(client, "/api/undo")
    assert r.status_code == 200 and r.json()["id"] == e["id"]
    assert output_cell(out, e)["value"] == original["value"] and output_cell(out, e)["reviewed"]
    assert _post(client, "/api/undo").status_code == 200
    assert output_cell(out, e) == original and jsonl_cell(out, e) == original
    assert _post(client, "/api/undo").status_code == 409  # nothing left to undo
    n = sum(len(q["rows"]) for q in read_queue(out) if q["group"] == e["group"])
    actions = [(a["action"], a["undone"]) for a in client.get("/api/audit").json()]
    assert actions == [("accept", True)] * n + [("pick", True)] * n + [("undo", False)] * 2 * n
    assert client.get("/api/queue").json()["left"] == len(read_queue(out))


@pytest.mark.parametrize(
    "path",
    [
        "/files/../review_fixtures.py",
        "/files/..%2f..%2fetc%2fpasswd",
        "/files/%2e%2e/%2e%2e/etc/passwd",
        "/files/review/../../secret.txt",
        "/files//etc/passwd",
        "/files/%2Fetc%2Fpasswd",
        "/files/review/link-out.txt",
        "/files/review",
        "/static/..%2fapp.py",
        "/static/../store.py",
    ],
)
def test_nothing_outside_the_output_folder_is_served(client: TestClient, out: Path, path: str) -> None:
    (out.parent / "secret.txt").write_text("secret", encoding="utf-8")
    (out / "review" / "link-out.txt").symlink_to(out.parent / "secret.txt")
    r = client.get(path)
    assert r.status_code == 404, (path, r.status_code)
    assert "secret" not in r.text and "root:" not in r.text and "import" not in r.text


def test_files_inside_are_served(client: TestClient, out: Path) -> None:
    r = client.get(f"/files/{SAMPLE.stem}.json")
    assert r.status_code == 200 and r.json()[0]["source"]["file"] == SAMPLE.name


def test_cross_origin_writes_are_refused(client: TestClient, out: Path) -> None:
    e = _entry(out)
    body = {"id": e["id"], "action": "set", "text": "1"}
    assert _post(client, "/api/decisions", body, origin="http://evil.example").status_code == 403
    assert _post(client, "/api/decisions", body, **{"sec-fetch-site": "cross-site"}).status_code == 403
    # a plain HTML form can post cross-site without a preflight: not JSON, refused
    r = client.post("/api/decisions", data={"id": e["id"], "action": "accept"})
    assert r.status_code == 415
    assert not (out / "review" / "decisions.sqlite").exists() or not sqlite3.connect(
        out / "review" / "decisions.sqlite").execute("SELECT count(*) FROM decisions").fetchone()[0]
    # same origin passes
    assert _post(client, "/api/decisions", body, origin=BASE_URL, **{"sec-fetch-site": "same-origin"}).status_code == 200
    # DNS rebinding: a foreign Host name is not answered on loopback
    assert client.get("/", headers={"host": "evil.example:8765"}).status_code == 400


def test_token_required_off_loopback(out: Path) -> None:
    app = create_app(out, token="s3cret", loopback_only=False)
    c = TestClient(app, base_url="http://192.0.2.10:8765")
    assert c.get("/").status_code == 401
    assert c.get("/api/queue").status_code == 401
    assert c.get("/", headers={"authorization": "Bearer wrong"}).status_code == 401
    assert c.get("/api/queue", headers={"authorization": "Bearer s3cret"}).status_code == 200
    r = c.get("/?token=s3cret")  # the link printed at start: sets a cookie for the page's own requests
    assert r.status_code == 200 and "scanforms_review_token" in r.headers["set-cookie"]
    assert c.get("/api/queue").status_code == 200  # now by cookie


def test_review_cli_refuses_no_output(tmp_path: Path) -> None:
    from pipeline.cli import main

    assert main(["review", "--out", str(tmp_path / "nope")]) == 1


def test_labelstudio_round_trip(out: Path, tmp_path: Path) -> None:
    from pipeline.cli import main

    tasks_path = tmp_path / "ls" / "tasks.json"
    assert main(["review", "--out", str(out), "--export-labelstudio", str(tasks_path)]) == 0
    tasks = json.loads(tasks_path.read_text(encoding="utf-8"))
    queue = read_queue(out)
    groups = {e["group"] for e in queue}
    assert len(tasks) == len(groups) < len(queue)  # one task per group
    t = tasks[0]
    assert t["data"]["item_id"] == queue[0]["id"] and t["data"]["image"].endswith(queue[0]["crop"])
    pred = t["predictions"][0]["result"][0]
    assert pred["type"] == "textarea" and pred["from_name"] == "value" and pred["to_name"] == "image"
    assert "<TextArea name=\"value\" toName=\"image\"" in tasks_path.with_suffix(".xml").read_text(encoding="utf-8")
    # what Label Studio exports after two annotators: the latest annotation wins, cancelled ones don't count
    target = next(tk for tk in tasks if tk["data"]["key"] == "level1_points")
    exported = [
        {**target, "id": 7, "annotations": [
            {"id": 1, "completed_by": {"email": "bob@example.org"}, "updated_at": "2026-01-02T10:00:00Z",
             "result": [{"from_name": "value", "to_name": "image", "type": "textarea", "value": {"text": ["31"]}}]},
            {"id": 2, "completed_by": 3, "updated_at": "2026-01-02T11:00:00Z", "was_cancelled": False,
             "result": [{"from_name": "value", "to_name": "image", "type": "textarea", "value": {"text": ["32"]}}]},
            {"id": 3, "completed_by": 4, "updated_at": "2026-01-03T11:00:00Z", "was_cancelled": True,
             "result": [{"from_name": "value", "to_name": "image", "type": "textarea", "value": {"text": ["99"]}}]},
        ]},
        {**tasks[-1], "id": 8, "annotations": []},
    ]
    ls_export = tmp_path / "ls" / "export.json"
    ls_export.write_text(json.dumps(exported), encoding="utf-8")
    assert main(["review", "--out", str(out), "--import-labelstudio", str(ls_export)]) == 0
    entry = next(e for e in queue if e["id"] == target["data"]["item_id"])
    members = [e for e in queue if e["group"] == entry["group"]]
    for m in members:  # the task's answer lands on every cell of its group
        cell = output_cell(out, m)
        assert cell["value"] == 32 and cell["reviewed"] is True and cell["confidence"] == 1.0
    s = ReviewSession(out)
    ds = s.decisions().values()
    assert len(ds) == sum(len(m["rows"]) for m in members) and {d.reviewer for d in ds} == {"labelstudio:3"}
    # decided groups leave the next export
    assert len(labelstudio.export_tasks(s)) == len(groups) - 1
    s.close()


def test_decision_survives_rerun(out: Path) -> None:
    """The pipeline re-applies the decisions file when it writes the same input again."""
    from review_fixtures import run_pipeline

    e = _entry(out, _text_field)
    s = ReviewSession(out, "carol")
    s.decide(e["id"], "set", text="人工校对")
    s.close()
    mtime = os.stat(out / f"{SAMPLE.stem}.json").st_mtime_ns
    run_pipeline(SAMPLE, out)
    assert os.stat(out / f"{SAMPLE.stem}.json").st_mtime_ns != mtime  # really rewritten
    for cell in (output_cell(out, e), jsonl_cell(out, e)):
        assert cell["value"] == "人工校对" and cell["reviewed"] is True and cell["confidence"] == 1.0


def test_no_output_no_decision(client: TestClient, out: Path) -> None:
    """A decision is stored only when there is an output to carry it (no half-made decisions)."""
    e = _entry(out)
    (out / f"{SAMPLE.stem}.json").unlink()
    r = _post(client, "/api/decisions", {"id": e["id"], "action": "accept"})
    assert r.status_code == 422 and "run the pipeline" in r.json()["error"]
    con = sqlite3.connect(out / "review" / "decisions.sqlite")
    assert con.execute("SELECT count(*) FROM decisions").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM audit").fetchone()[0] == 0
    assert _post(client, "/api/decisions", {"id": "nope", "action": "accept"}).status_code == 422


def test_concurrent_decisions_lose_nothing(client: TestClient, out: Path) -> None:
    """Requests run in a thread pool: every decision reaches SQLite and the rewritten outputs."""
    from concurrent.futures import ThreadPoolExecutor

    queue = read_queue(out)
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda e: _post(client, "/api/decisions", {"id": e["id"], "action": "accept"}).status_code,
                              queue))
    assert codes == [200] * len(queue)
    assert client.get("/api/queue").json()["left"] == 0
    for e in queue:
        assert output_cell(out, e)["reviewed"] is True and jsonl_cell(out, e)["reviewed"] is True
