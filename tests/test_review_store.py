"""The decisions file on its own: keys, audit trail, undo, re-applying to fresh records."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from pipeline.review.store import CellKey, DecisionStore, apply_decisions, db_path
from pipeline.types import FormRecord, Value

SHA = "ab" * 32


def _record(sha: str = SHA, form_index: int = 0) -> FormRecord:
    return FormRecord(
        file="x.pdf", form_index=form_index, pages=[1],
        fields={"budget_executed": Value(2523747.0, "2,523,747.00", 0.41, 1, (1, 2, 3, 4), ["sum off"],
                                         needs_review=True)},
        indicators=[{"weight": Value(8, "8", 0.5, 1, (5, 6, 7, 8))}, {"weight": Value(6, "6", 0.99, 1, None)}],
        extra_source={"sha256": sha},
    )


def test_cell_key_checks_its_shape() -> None:
    with pytest.raises(ValueError):
        CellKey(SHA, 0, "fields", 3, "budget_executed")
    with pytest.raises(ValueError):
        CellKey(SHA, 0, "indicators", None, "weight")
    with pytest.raises(ValueError):
        CellKey(SHA, 0, "goal", None, "x")


def test_decisions_are_reapplied_by_content_hash_form_row_and_key(tmp_path: Path) -> None:
    with DecisionStore(db_path(tmp_path)) as s:
        assert s.journal_mode() == "wal"
        s.decide(CellKey(SHA, 0, "fields", None, "budget_executed"), 2523746.0, "ann", file="x.pdf", current=None)
        s.decide(CellKey(SHA, 0, "indicators", 1, "weight"), 7, "ann", file="x.pdf", current=None)
        s.decide(CellKey(SHA, 0, "indicators", 5, "weight"), 1, "ann", file="x.pdf", current=None)  # row gone
        s.decide(CellKey(SHA, 1, "fields", None, "budget_executed"), 1.0, "ann", file="x.pdf", current=None)
        s.decide(CellKey("cd" * 32, 0, "fields", None, "budget_executed"), 2.0, "ann", file="x.pdf", current=None)
    rec = _record()
    assert apply_decisions([rec], tmp_path) == 2
    v = rec.fields["budget_executed"]
    assert (v.value, v.confidence, v.reviewed, v.needs_review, v.raw) == (2523746.0, 1.0, True, False, "2,523,747.00")
    assert v.to_json()["reviewed"] is True
    assert rec.indicators[1]["weight"].value == 7 and rec.indicators[1]["weight"].reviewed
    assert rec.indicators[0]["weight"].value == 8 and "reviewed" not in rec.indicators[0]["weight"].to_json()
    # another file with the same name but other content is untouched
    other = _record(sha="ef" * 32)
    assert apply_decisions([other], tmp_path) == 0 and other.fields["budget_executed"].value == 2523747.0
    # no decisions file: nothing happens, nothing is created
    assert apply_decisions([_record()], tmp_path / "elsewhere") == 0
    assert not (tmp_path / "elsewhere").exists()


def test_audit_and_undo(tmp_path: Path) -> None:
    key = CellKey(SHA, 0, "indicators", 0, "weight")
    orig = {"value": 8, "confidence": 0.5, "raw": "8", "page": 1, "bbox": [5, 6, 7, 8]}
    with DecisionStore(db_path(tmp_path)) as s:
        s.decide(key, 9, "ann", file="x.pdf", current=orig)
        s.decide(key, 10, "bob", file="x.pdf", current={**orig, "value": 9}, action="set")
        trail = s.audit(key)
        assert [(a["old_value"], a["new_value"], a["reviewer"]) for a in trail] == [(8, 9, "ann"), (9, 10, "bob")]
        assert all(a["at"] for a in trail)
        d = s.get(key)
        assert d is not None and d.value == 10 and d.original == orig  # the pipeline's cell, kept for undo
        assert s.undo("ann") is not None  # ann's own last decision: the cell holds bob's
        # bob's undo: nothing of his left after this one; ann's 9 was undone, so back to the pipeline
        u = s.undo("bob")
        assert u is not None and u.decision is None and u.original == orig
        assert s.get(key) is None and s.undo() is None
        assert [a["action"] for a in s.audit(key)] == ["set", "set", "undo", "undo"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_review_command_serves_on_loopback(tmp_path: Path) -> None:
    """`scanforms review` starts the app; with no queue the page says what to do."""
    port = _free_port()
    p = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "review", "--out", str(tmp_path), "--port",
                          str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         cwd=Path(__file__).resolve().parents[1], env=dict(os.environ))
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                    html = r.read().decode()
                break
            except OSError:
                if p.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(p.stdout.read() if p.stdout else "no output") from None
                time.sleep(0.2)
        assert "Nothing to review" in html and "queue.jsonl" in html
        assert (tmp_path / "review" / "decisions.sqlite").exists()
    finally:
        p.send_signal(signal.SIGINT)
        p.wait(15)
