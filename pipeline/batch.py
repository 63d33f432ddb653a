"""Batch runs over many files: the run manifest, incremental planning, and the end-of-run outputs.

Orchestration-free on purpose: `flows/digitize.py` (Prefect) drives it, and the
same functions work from a plain loop. A run is

    plan_run()   hash every input, compare with the manifest -> what to (re)process
    (per file)   process.run_one(), then Manifest.record()     -> crash-safe progress
    finish_run() combined records.jsonl, analyst tables, run report, from the
                 per-file outputs of *all* current inputs (skipped ones included),
                 so a re-run's combined outputs equal a full run's.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from . import export, ingest
from .errors import ExitCode, ScanformsError
from .process import FileOutcome, Options

MANIFEST_NAME = "manifest.jsonl"
# Failures that depend only on the file's bytes: an unchanged file fails the same way again,
# so a re-run skips it (and reports it again). Anything else (internal error, timeout) is retried.
DETERMINISTIC_EXIT_CODES = {int(ExitCode.input_file), int(ExitCode.no_form)}
# Errors worth a retry inside the same run: the file may read fine a moment later (network
# share hiccup, memory pressure from a neighbour), unlike a corrupt file or a pipeline bug.
TRANSIENT_CAUSES: tuple[type[BaseException], ...] = (OSError, MemoryError, TimeoutError)
_PERMANENT_OS_ERRORS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)


def pipeline_version(opts: Options) -> str:
    """What, besides a file's bytes, decides its output: code version, lexicon, options.

    A change in any of them makes every file "changed" for the manifest.
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version("scanforms")
    except PackageNotFoundError:  # running from a source tree that was never installed
        ver = "0+unknown"
    h = hashlib.sha256()
    models = Path(__file__).resolve().parent.parent / "models"
    for name in ("schema.yaml", "indicator_terms.yaml", "domain_words.txt", "calibration.json"):
        if (models / name).exists():
            h.update((models / name).read_bytes())
    return (
        f"scanforms {ver}; models {h.hexdigest()[:12]}; dpi {opts.dpi}; engine {opts.engine}; "
        f"overlays {int(opts.overlays)}; review threshold {opts.review_threshold}; features {int(opts.features)}; "
        f"ocr {opts.ocr_mode}"
    )


def is_transient(error: ScanformsError) -> bool:
    """True if the error's cause chain holds an I/O or memory error that may pass on a retry."""
    if int(error.exit_code) in DETERMINISTIC_EXIT_CODES and not isinstance(error.__cause__, MemoryError):
        return False  # a damaged or unreadable file reads the same way on a retry
    exc: BaseException | None = error
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, TRANSIENT_CAUSES) and not isinstance(exc, _PERMANENT_OS_ERRORS):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def entry_for(path: Path, sha256: str, version: str, outcome: FileOutcome, out_dir: Path) -> dict[str, Any]:
    """The manifest line for one processed file (plain JSON)."""
    entry: dict[str, Any] = {
        "path": str(path.resolve()),
        "sha256": sha256,
        "pipeline": version,
        "status": "ok" if outcome.error is None else "failed",
        "output": export.record_file(out_dir, path).name if outcome.error is None else None,
        "forms": len(outcome.records),
        "pages": outcome.n_pages,
        "warnings": list(outcome.warnings),
        "seconds": round(outcome.seconds, 3),
        "error": None,
    }
    if outcome.error is not None:
        entry["error"] = error_json(outcome.error)
    return entry


def error_json(err: ScanformsError) -> dict[str, Any]:
    return {"page": err.page, "reason": err.reason, "exit_code": int(err.exit_code), "type": type(err).__name__}


def failed_entry(path: Path, sha256: str, version: str, reason: str, seconds: float = 0.0) -> dict[str, Any]:
    """A file whose task died (timeout, retries exhausted): retried on the next run."""
    err = ScanformsError(path, reason)
    return entry_for(path, sha256, version, FileOutcome([], 0, seconds, err), path.parent)


class Manifest:
    """`<out>/manifest.jsonl`: one line per input file, keyed by path, checked by content hash + pipeline.

    During a run each finished file appends its line (flushed and fsynced), so a
    crash loses at most the files in flight; a torn last line is ignored on read.
    At the end of a run the file is compacted: rewritten atomically with one
    line per current input. Appending (rather than rewriting the whole manifest
    per file) keeps a 10,000-file archive from costing O(n²) writes.
    """

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / MANIFEST_NAME
        self.entries: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    e = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a crash
                if isinstance(e, dict) and "path" in e:
                    self.entries[e["path"]] = e

    def get(self, path: Path) -> dict[str, Any] | None:
        return self.entries.get(str(path.resolve()))

    def record(self, entry: dict[str, Any]) -> None:
        self.entries[entry["path"]] = entry
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def compact(self, keep: Iterable[Path]) -> None:
        keys = [str(p.resolve()) for p in keep]
        self.entries = {k: self.entries[k] for k in keys if k in self.entries}
        lines = [json.dumps(e, ensure_ascii=False) for e in self.entries.values()]
        export.atomic_write_text(self.path, "".join(line + "\n" for line in lines))


@dataclass
class Plan:
    version: str
    todo: list[tuple[Path, str]]  # (file, sha256): new, changed, or failed for a reason worth retrying
    skipped: list[Path]  # unchanged since a finished run: their outputs stand
    removed: list[str]  # in the manifest, no longer among the inputs
    new: int = 0
    changed: int = 0


def plan_run(inputs: list[Path], out_dir: Path, opts: Options, force: bool = False) -> Plan:
    """Split the inputs into work to do and files whose outputs are already current."""
    version = pipeline_version(opts)
    manifest = Manifest(out_dir)
    plan = Plan(version=version, todo=[], skipped=[], removed=[])
    current = set()
    for path in inputs:
        current.add(str(path.resolve()))
        try:
            sha = ingest.file_sha256(path)
        except OSError:
            sha = ""  # unreadable: run_one reports why
        e = manifest.get(path)
        if e is None:
            plan.new += 1
        elif e.get("sha256") != sha or e.get("pipeline") != version:
            plan.changed += 1
        if not force and sha and e is not None and _still_current(e, sha, version, out_dir):
            plan.skipped.append(path)
        else:
            plan.todo.append((path, sha))
    plan.removed = sorted(k for k in manifest.entries if k not in current)
    return plan


def _still_current(e: dict[str, Any], sha: str, version: str, out_dir: Path) -> bool:
    if e.get("sha256") != sha or e.get("pipeline") != version:
        return False
    if e.get("status") == "ok":
        return bool(e.get("output")) and (out_dir / e["output"]).exists()
    return (e.get("error") or {}).get("exit_code") in DETERMINISTIC_EXIT_CODES


class RunListener(Protocol):
    """Progress hooks (the CLI's progress bar); called in the process that runs the flow."""

    def started(self, total_docs: int, skipped: int, pages_to_do: int) -> None: ...

    def page_done(self, path: Path, page_no: int) -> None: ...

    def doc_done(self, path: Path, entry: dict[str, Any]) -> None: ...


@dataclass
class RunInfo:
    """What this run did, as opposed to what the outputs hold (the report keeps them apart)."""

    processed: int = 0
    skipped: int = 0
    removed: list[str] = field(default_factory=list)
    new: int = 0
    changed: int = 0
    started: float = field(default_factory=time.perf_counter)


def iter_current_records(out_dir: Path, inputs: list[Path], manifest: Manifest) -> Iterator[dict[str, Any]]:
    for path in inputs:
        e = manifest.get(path)
        if e is None or e.get("status") != "ok" or not e.get("output"):
            continue
        f = out_dir / e["output"]
        if f.exists():
            yield from json.loads(f.read_text(encoding="utf-8"))


def finish_run(out_dir: Path, inputs: list[Path], run: RunInfo | None = None) -> dict[str, Any]:
    """Combine the run-level outputs from the per-file outputs of every current input.

    The one place where a run's combined outputs are made: records.jsonl,
    records/indicators tables (parquet + CSV), run_report.json/.md, and the
    compacted manifest. Skipped files contribute exactly like processed ones.
    """
    from . import frames

    run = run or RunInfo()
    manifest = Manifest(out_dir)
    records = sorted(
        iter_current_records(out_dir, inputs, manifest),
        key=lambda r: (r["source"]["file"], r["source"]["form_index"]),
    )
    export.write_jsonl(out_dir / "records.jsonl", records)
    export.combine_review_queue(out_dir, [p.stem for p in inputs])
    frames.write_tables(out_dir, records)
    report = build_report(inputs, records, manifest, run)
    queue = export.review_queue_counts(out_dir)
    report["review_entries"], report["review_groups"] = queue["entries"], queue["groups"]
    export.atomic_write_text(out_dir / "run_report.json", json.dumps(report, ensure_ascii=False, indent=1))
    export.atomic_write_text(out_dir / "run_report.md", report_markdown(report))
    manifest.compact(inputs)
    return report


def count_review_cells(rec: dict[str, Any]) -> int:
    cells = list(rec.get("fields", {}).values())
    for section in ("funding", "indicators"):
        for row in rec.get(section, []):
            cells += list(row.values())
    return sum(1 for c in cells if isinstance(c, dict) and c.get("needs_review"))


RUN_KEYS = ("seconds", "processed", "skipped", "new", "changed", "removed")  # differ between equal runs


def build_report(
    inputs: list[Path], records: list[dict[str, Any]], manifest: Manifest, run: RunInfo
) -> dict[str, Any]:
    kinds: Counter[str] = Counter()
    form_pages = 0
    for r in records:
        for k in (r["source"].get("page_kinds") or {}).values():
            kinds[k] += 1
            form_pages += 1
    failures = []
    warnings: list[dict[str, Any]] = []
    pages = 0
    for path in inputs:
        e = manifest.get(path)
        if e is None:
            continue
        pages += int(e.get("pages") or 0)
        warnings += e.get("warnings") or []
        if e.get("status") != "ok":
            err = e.get("error") or {}
            failures.append(
                {
                    "file": str(path),
                    "page": err.get("page"),
                    "reason": err.get("reason", "unknown"),
                    "exit_code": err.get("exit_code", int(ExitCode.other_error)),
                }
            )
    return {
        "inputs": len(inputs),
        "records": len(records),
        "forms": len(records),
        "pages": pages,
        "page_kinds": dict(sorted(kinds.items())),
        "pages_outside_forms": max(0, pages - form_pages),
        "review_cells": sum(count_review_cells(r) for r in records),
        "failures": failures,
        "warnings": warnings,
        "pipeline": manifest.get(inputs[0])["pipeline"] if inputs and manifest.get(inputs[0]) else None,
        # this run only (a re-run and a full run differ here, nowhere else)
        "processed": run.processed,
        "skipped": run.skipped,
        "new": run.new,
        "changed": run.changed,
        "removed": run.removed,
        "seconds": round(time.perf_counter() - run.started, 2),
    }


RUN_SECTION = "## This run"


def report_markdown(report: dict[str, Any]) -> str:
    lines = [
        "# scanforms run report",
        "",
        f"- inputs: {report['inputs']}",
        f"- forms: {report['forms']}",
        f"- pages: {report['pages']} ({report['pages_outside_forms']} outside any form)",
        f"- cells sent to review: {report['review_cells']}"
        + (f" ({report['review_entries']} queue entries, {report['review_groups']} groups to review: "
           "one decision each)" if "review_groups" in report else ""),
        f"- failures: {len(report['failures'])}",
        f"- pipeline: {report['pipeline']}",
        "",
        "## Pages per kind (pages of forms)",
        "",
        "| kind | pages |",
        "|---|---|",
        *[f"| {k} | {n} |" for k, n in report["page_kinds"].items()],
        "",
    ]
    if report["failures"]:
        lines += ["## Failures", "", "| file | page | reason |", "|---|---|---|"]
        for f in report["failures"]:
            reason = str(f["reason"]).replace("|", "\\|")
            lines.append(f"| {f['file']} | {f['page'] if f['page'] is not None else ''} | {reason} |")
        lines.append("")
    lines += [
        RUN_SECTION,
        "",
        f"- processed: {report['processed']} (new {report['new']}, changed or retried {report['changed']})",
        f"- skipped (unchanged): {report['skipped']}",
        f"- removed since the last run: {len(report['removed'])}",
        *[f"  - {p}" for p in report["removed"]],
        f"- seconds: {report['seconds']}",
        "",
    ]
    return "\n".join(lines)


def exit_code(report: dict[str, Any]) -> int:
    """The CLI's exit status: the worst failure's code (as before the flows), 0 if none."""
    codes = [int(f.get("exit_code", ExitCode.other_error)) for f in report["failures"]]
    return max(codes) if codes else int(ExitCode.ok)
