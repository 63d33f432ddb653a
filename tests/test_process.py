"""pipeline.process: one file through every stage, errors as data."""

from __future__ import annotations

import time
from pathlib import Path

from pipeline import batch, process
from pipeline.errors import DocumentTimeout, ExitCode

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "raw" / "d025.pdf"


def test_a_document_past_its_deadline_fails_with_that_reason_and_writes_nothing(tmp_path: Path) -> None:
    """The time limit is the pipeline's own check between pages and stages (not an exception
    injected into the thread): the file fails as data, is retried on the next run, and leaves
    no output behind."""
    outcome = process.run_one(SAMPLE, tmp_path, process.Options(), deadline=process.Deadline.after(0.0))
    assert outcome.n_pages == 0  # stopped after the first page's render, before it was read
    assert isinstance(outcome.error, DocumentTimeout)
    assert outcome.error.reason == "timed out after 0 s" and outcome.error.exit_code == ExitCode.other_error
    assert not batch.is_transient(outcome.error)  # not retried within the run: it would time out again
    entry = batch.entry_for(SAMPLE, "x", "v", outcome, tmp_path, "d025")
    assert entry["status"] == "failed" and entry["error"]["exit_code"] not in batch.DETERMINISTIC_EXIT_CODES
    assert list(tmp_path.iterdir()) == []


def test_a_deadline_not_reached_changes_nothing() -> None:
    d = process.Deadline.after(60.0)
    d.check(SAMPLE)  # no exception
    assert d.limit_s == 60.0 and d.at > time.monotonic()
