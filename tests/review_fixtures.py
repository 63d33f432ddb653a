"""Test fixtures for the review app: a real pipeline output with a review queue.

The pipeline is run for real (the CLI in a subprocess, OCR from tests/ocr_cache); its
`review/queue.jsonl` and crops are what the app reviews.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "raw" / "d025.pdf"  # a one-page scan we ship
CACHE = REPO / "tests" / "ocr_cache"


def run_pipeline(inp: Path, out: Path) -> subprocess.CompletedProcess[str]:
    """`scanforms run INPUT --out OUT`, as a user runs it (a fresh process, the OCR cache on).

    --force: a re-run must really process the file again (an unchanged file is otherwise skipped),
    or re-applying the decisions would go untested. A review threshold over 1 queues every cell
    (a clean scan's numbers are otherwise accepted, and which ones are depends on the OCR and
    the confidence model), so the tests have numbers and text to edit whatever those read; at
    1.0 the cells the model is certain of (1.0) stayed out, and with the model of 2026-12-07's
    second session that was every number two files share.
    --features: the reviewed cells are training data (`scanforms calibrate --reviews`).
    """
    env = dict(os.environ, SCANFORMS_OCR_CACHE=str(CACHE))
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "run", str(inp), "--out", str(out), "-q", "--force", "--features",
         "--review-threshold", "1.01"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=True,
    )


def read_queue(out: Path) -> list[dict[str, Any]]:
    lines = (out / "review" / "queue.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def output_cell(out: Path, entry: dict[str, Any], row: int | None = None) -> dict[str, Any]:
    """The entry's cell (at `row`, for a merged cell's other rows) as it stands in `<out>/<output key>.json`."""
    recs = json.loads((out / f"{entry['output_key']}.json").read_text(encoding="utf-8"))
    (rec,) = [r for r in recs if r["source"]["form_index"] == entry["form_index"]]
    if entry["section"] == "fields":
        return rec["fields"][entry["key"]]
    return rec[entry["section"]][entry["row"] if row is None else row][entry["key"]]


def jsonl_cell(out: Path, entry: dict[str, Any]) -> dict[str, Any]:
    """The same cell in `<out>/records.jsonl`."""
    for line in (out / "records.jsonl").read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        if rec["source"]["file"] == entry["file"] and rec["source"]["form_index"] == entry["form_index"]:
            if entry["section"] == "fields":
                return rec["fields"][entry["key"]]
            return rec[entry["section"]][entry["row"]][entry["key"]]
    raise KeyError(entry["id"])


# a proposal for one cell, so the fixture queue exercises picking (the queue writer
# proposes readings that make the form's arithmetic hold)
PROPOSALS = {("indicators", 9, "level1_points"): [{"value": 16, "why": "second reading of the digits"},
                                                   {"value": None, "why": "cell left blank"}]}

_BASE: dict[str, Path] = {}


def base_output(tmp_root: Path) -> Path:
    """The pipeline's output for SAMPLE with its queue, made once per test session."""
    if "out" not in _BASE:
        out = tmp_root / "review-base"
        run_pipeline(SAMPLE, out)
        queue_path = out / "review" / "queue.jsonl"
        entries = read_queue(out)
        if not any(e["alternatives"] for e in entries):
            # the sample is read cleanly enough that no cell gets one: add ours, so the
            # tests exercise picking a proposal
            for e in entries:
                e["alternatives"] = PROPOSALS.get((e["section"], e["row"], e["key"]), [])
            queue_path.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries),
                                  encoding="utf-8")
        _BASE["out"] = out
    return _BASE["out"]


def fresh_output(tmp_root: Path, dest: Path) -> Path:
    """A private copy of the base output (tests write decisions into it)."""
    import shutil

    shutil.copytree(base_output(tmp_root), dest)
    return dest
