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

import json
import os
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from . import export, ingest, naming
from .errors import ExitCode, ScanformsError
from .options import Options, pipeline_version, reading_version
from .process import FileOutcome

MANIFEST_NAME = naming.MANIFEST_NAME
# Failures that depend only on the file's bytes: an unchanged file fails the same way again,
# so a re-run skips it (and reports it again). Anything else (internal error, timeout) is retried.
DETERMINISTIC_EXIT_CODES = {int(ExitCode.input_file), int(ExitCode.no_form)}
# Errors worth a retry inside the same run: the file may read fine a moment later (network
# share hiccup, memory pressure from a neighbour), unlike a corrupt file or a pipeline bug.
TRANSIENT_CAUSES: tuple[type[BaseException], ...] = (OSError, MemoryError, TimeoutError)
_PERMANENT_OS_ERRORS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)


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


def entry_for(
    path: Path, sha256: str, version: str, outcome: FileOutcome, out_dir: Path, output_key: str
) -> dict[str, Any]:
    """The manifest line for one processed file (plain JSON)."""
    entry: dict[str, Any] = {
        "path": str(path.resolve()),
        "sha256": sha256,
        "pipeline": version,
        "status": "ok" if outcome.error is None else "failed",
        "output_key": output_key,  # kept by every later run (naming.output_keys), failed or not
        "output": export.record_file(out_dir, output_key).name if outcome.error is None else None,
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


def failed_entry(
    path: Path, sha256: str, version: str, reason: str, output_key: str, seconds: float = 0.0
) -> dict[str, Any]:
    """A file whose task died (timeout, retries exhausted): retried on the next run."""
    err = ScanformsError(path, reason)
    return entry_for(path, sha256, version, FileOutcome([], 0, seconds, err), path.parent, output_key)


def duplicate_entry(path: Path, sha256: str, version: str, same_as: Path) -> dict[str, Any]:
    """An input with the same bytes as another (`same_as`), which is processed instead: no outputs."""
    return {
        "path": str(path.resolve()), "sha256": sha256, "pipeline": version, "status": "duplicate",
        "duplicate_of": str(same_as.resolve()), "output_key": None, "output": None, "forms": 0, "pages": 0,
        "warnings": [], "seconds": 0.0, "error": None,
    }


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
    # skipped files whose archive outputs (--pdf/--xlsx) differ from what this run asks: made from
    # their per-file outputs (write_derived), no page read again
    derive: list[Path] = field(default_factory=list)
    new: int = 0
    changed: int = 0
    keys: dict[Path, str] = field(default_factory=dict)  # output key of every input but the duplicates
    duplicates: dict[Path, Path] = field(default_factory=dict)  # same bytes as the value, processed instead
    migrated: list[Path] = field(default_factory=list)  # 0.3.0 outputs adopted under their name, not redone
    relaid: list[tuple[Path, str]] = field(default_factory=list)  # 0.3.0 outputs redone under a new key: why
    shas: dict[Path, str] = field(default_factory=dict)


def plan_run(inputs: list[Path], out_dir: Path, opts: Options, force: bool = False) -> Plan:
    """Split the inputs into work to do and files whose outputs are already current.

    Also decides every input's output key (naming.output_keys, keeping the keys the
    manifest holds), and sets aside inputs whose bytes another input already has (one of
    them is processed: the one with current outputs, else the first). Writes nothing:
    `record_plan` does, once the plan is carried out.
    """
    version = pipeline_version(opts)
    manifest = Manifest(out_dir)
    plan = Plan(version=version, todo=[], skipped=[], removed=[])
    shas: dict[Path, str] = {}
    by_sha: dict[str, list[Path]] = {}
    for path in inputs:
        try:
            shas[path] = ingest.file_sha256(path)
        except OSError:
            shas[path] = ""  # unreadable: run_one reports why
        if shas[path]:
            by_sha.setdefault(shas[path], []).append(path)
    recorded, old_layout = _recorded_keys(inputs, manifest, out_dir)
    for sha, same in by_sha.items():
        if len(same) > 1:  # keep one whose outputs stand, so that none is processed again
            done = [p for p in same if str(p.resolve()) in recorded
                    and _still_current(manifest.get(p) or {}, sha, version, out_dir)]
            keep = (done or same)[0]
            plan.duplicates |= {p: keep for p in same if p != keep}
    unique = [p for p in inputs if p not in plan.duplicates]
    plan.keys = naming.output_keys(unique, recorded)
    old_layout = {p: old for p, old in old_layout.items() if p not in plan.duplicates}
    for path, old in old_layout.items():
        e = manifest.get(path) or {}
        if old and plan.keys[path] == old:
            if not force and _still_current(e, shas[path], version, out_dir):
                plan.migrated.append(path)  # else processed again anyway, under the same name
        else:
            plan.relaid.append((path, _why_relaid(e, out_dir, plan.keys[path])))
    migrated = set(plan.migrated)
    current = set()
    for path in inputs:
        current.add(str(path.resolve()))
        if path in plan.duplicates:
            continue
        sha = shas[path]
        e = manifest.get(path)
        if e is None:
            plan.new += 1
        elif e.get("sha256") != sha or e.get("pipeline") != version:
            plan.changed += 1
        same_key = e is not None and (e.get("output_key") == plan.keys[path] or path in migrated)
        if not force and sha and same_key and _still_current(e or {}, sha, version, out_dir):
            plan.skipped.append(path)
        elif not force and sha and same_key and _derivable(e or {}, sha, version, out_dir, plan.keys[path]):
            plan.skipped.append(path)
            plan.derive.append(path)
        else:
            plan.todo.append((path, sha))
    plan.shas = shas
    plan.removed = sorted(k for k in manifest.entries if k not in current)
    return plan


def _recorded_keys(
    inputs: list[Path], manifest: Manifest, out_dir: Path
) -> tuple[dict[str, str], dict[Path, str]]:
    """Keys the manifest gives the inputs (resolved path -> key), and the 0.3.0 entries among them.

    0.3.0 wrote no key and named outputs by the stem, so of two inputs called a.pdf the later
    one overwrote the earlier's a.json: only the entry whose content hash that file holds
    claims the name (its old stem; "" for none). A failure (no records; maybe tables) claims
    its stem too, unless a successful entry claims it."""
    recorded: dict[str, str] = {}
    old_layout: dict[Path, str] = {}
    for path in inputs:
        e = manifest.get(path)
        if e is None:
            continue
        if e.get("output_key"):
            recorded[str(path.resolve())] = e["output_key"]
        elif "output_key" not in e and e.get("status") in ("ok", "failed"):
            old_layout[path] = _old_output_stem(e, out_dir) if e.get("status") == "ok" else ""
    ok_claims = {k.casefold() for k in old_layout.values() if k}
    for path in old_layout:
        e = manifest.get(path) or {}
        if e.get("status") == "failed" and path.stem.casefold() not in ok_claims:
            old_layout[path] = path.stem
        if old_layout[path]:
            recorded[str(path.resolve())] = old_layout[path]
    return recorded, old_layout


def _why_relaid(e: dict[str, Any], out_dir: Path, key: str) -> str:
    if e.get("status") != "ok":
        return f"its outputs were named {Path(e.get('path', '')).stem}, now {key}"
    if not (out_dir / str(e.get("output") or "")).is_file():
        return f"its output {e.get('output')} is missing"
    return "its output had been overwritten by another input of the same name (0.3.0 named outputs by stem)"


def _old_output_stem(e: dict[str, Any], out_dir: Path) -> str:
    out = out_dir / str(e.get("output") or "")
    try:
        records = json.loads(out.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    shas = {(r.get("source") or {}).get("sha256") for r in records if isinstance(r, dict)}
    return out.stem if shas == {e.get("sha256")} else ""


def record_plan(out_dir: Path, plan: Plan) -> None:
    """What the plan settled without processing, into the manifest (and the migrated outputs).

    Duplicates get their line (no outputs, `duplicate_of`). 0.3.0 outputs kept under their
    name get `output_key` in their records and review part, and in their manifest line."""
    manifest = Manifest(out_dir)
    for path in plan.migrated:
        e = manifest.get(path) or {}
        key = plan.keys[path]
        records_file = export.record_file(out_dir, key)
        if e.get("status") == "ok":
            records = json.loads(records_file.read_text(encoding="utf-8"))
            for r in records:
                r.setdefault("source", {})["output_key"] = key
            export.atomic_write_text(records_file, json.dumps(records, ensure_ascii=False, indent=1))
        part = export.review_part_file(out_dir, key)
        if part.exists():
            entries = [json.loads(line) for line in part.read_text(encoding="utf-8").splitlines() if line.strip()]
            export.write_jsonl(part, [en | {"output_key": key} for en in entries])
        manifest.record(e | {"output_key": key})
    for path, same_as in plan.duplicates.items():
        dup = duplicate_entry(path, plan.shas.get(path, ""), plan.version, same_as)
        if manifest.get(path) != dup:
            manifest.record(dup)


def _still_current(e: dict[str, Any], sha: str, version: str, out_dir: Path) -> bool:
    if e.get("sha256") != sha or e.get("pipeline") != version:
        return False
    if e.get("status") == "ok":
        return bool(e.get("output")) and (out_dir / e["output"]).exists()
    return (e.get("error") or {}).get("exit_code") in DETERMINISTIC_EXIT_CODES


def _derivable(e: dict[str, Any], sha: str, version: str, out_dir: Path, output_key: str) -> bool:
    """Read with this run's reading settings, only its archive outputs differ, and what they are
    made from is there."""
    from . import archive

    if e.get("sha256") != sha or reading_version(str(e.get("pipeline"))) != reading_version(version):
        return False
    if e.get("status") != "ok":
        return (e.get("error") or {}).get("exit_code") in DETERMINISTIC_EXIT_CODES
    return archive.can_write(out_dir, output_key)


def write_derived(out_dir: Path, plan: Plan, opts: Options, manifest: Manifest) -> list[Path]:
    """The archive outputs of the plan's skipped files that lack them, from their per-file outputs;
    their manifest lines then carry this run's version."""
    from . import archive

    written: list[Path] = []
    for path in plan.derive:
        e = manifest.get(path)
        if e is None:
            continue
        if e.get("status") == "ok":
            written += archive.write_outputs(out_dir, path, plan.keys[path], opts.pdf, opts.xlsx)
        manifest.record({**e, "pipeline": plan.version})
    return written


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
    migrated: list[str] = field(default_factory=list)  # 0.3.0 outputs given their key, not processed
    relaid: list[dict[str, str]] = field(default_factory=list)  # {"file", "reason"}: 0.3.0 outputs redone
    started: float = field(default_factory=time.perf_counter)

    @classmethod
    def of(cls, plan: Plan) -> RunInfo:
        return cls(
            skipped=len(plan.skipped), removed=plan.removed, new=plan.new, changed=plan.changed,
            migrated=[str(p) for p in plan.migrated],
            relaid=[{"file": str(p), "reason": why} for p, why in plan.relaid],
        )


def iter_current_records(out_dir: Path, inputs: list[Path], manifest: Manifest) -> Iterator[dict[str, Any]]:
    for path in inputs:
        e = manifest.get(path)
        if e is None or e.get("status") != "ok" or not e.get("output"):
            continue
        f = out_dir / e["output"]
        if f.exists():
            for rec in json.loads(f.read_text(encoding="utf-8")):
                rec.setdefault("source", {}).setdefault("output_key", e.get("output_key") or f.stem)
                yield rec


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
        key=lambda r: (r["source"]["file"], r["source"]["output_key"], r["source"]["form_index"]),
    )
    export.write_jsonl(out_dir / "records.jsonl", records)
    keys = [k for k in (output_key_of(manifest, p) for p in inputs) if k]
    export.combine_review_queue(out_dir, keys)
    frames.write_tables(out_dir, records)
    report = build_report(inputs, records, manifest, run)
    queue = export.review_queue_counts(out_dir)
    report["review_entries"], report["review_groups"] = queue["entries"], queue["groups"]
    export.atomic_write_text(out_dir / "run_report.json", json.dumps(report, ensure_ascii=False, indent=1))
    export.atomic_write_text(out_dir / "run_report.md", report_markdown(report))
    manifest.compact(inputs)
    return report


def output_key_of(manifest: Manifest, path: Path) -> str | None:
    e = manifest.get(path) or {}
    return e.get("output_key")


def count_review_cells(rec: dict[str, Any], empty: bool | None = None) -> int:
    """Cells of a record sent to review; with `empty`, only those whose value is (or is not) empty.

    The scorer counts a cell only where the form or the record holds something: a queued empty
    cell that is blank on the form is a click a reviewer spends that no accuracy figure sees."""
    cells = list(rec.get("fields", {}).values())
    for section in ("funding", "indicators"):
        for row in rec.get(section, []):
            cells += list(row.values())
    return sum(1 for c in cells if isinstance(c, dict) and c.get("needs_review")
               and (empty is None or (c.get("value") in (None, "")) == empty))


RUN_KEYS = ("seconds", "processed", "skipped", "new", "changed", "removed", "migrated", "relaid")  # differ between equal runs


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
    keys: dict[str, str] = {}
    duplicates: list[dict[str, str]] = []
    pages = 0
    for path in inputs:
        e = manifest.get(path)
        if e is None:
            continue
        if e.get("output_key"):
            keys[str(path)] = e["output_key"]
        pages += int(e.get("pages") or 0)
        warnings += e.get("warnings") or []
        if e.get("status") == "duplicate":
            duplicates.append({"file": str(path), "same_as": str(e.get("duplicate_of"))})
        elif e.get("status") != "ok":
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
        "review_cells_empty": sum(count_review_cells(r, empty=True) for r in records),
        "failures": failures,
        "warnings": warnings,
        # the name each input's outputs are written under (<key>.json, ...): see naming.output_keys
        "output_keys": keys,
        # inputs with the same bytes as another, which was processed instead: no outputs of their own
        "duplicates": duplicates,
        "pipeline": manifest.get(inputs[0])["pipeline"] if inputs and manifest.get(inputs[0]) else None,
        # this run only (a re-run and a full run differ here, nowhere else)
        "processed": run.processed,
        "skipped": run.skipped,
        "new": run.new,
        "changed": run.changed,
        "removed": run.removed,
        "migrated": run.migrated,
        "relaid": run.relaid,
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
        f"- cells sent to review: {report['review_cells']} ({report.get('review_cells_empty', 0)} of them empty)"
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
    renamed = {f: k for f, k in report.get("output_keys", {}).items() if k != Path(f).stem}
    if renamed or report.get("duplicates"):
        lines += ["## Output names", "", "Outputs are named `<output key>.json` etc.; these inputs' keys are not",
                  "their file's stem (another input has the same name), or they have no outputs of their own:", "",
                  "| input | output key |", "|---|---|"]
        lines += [f"| {f} | {k} |" for f, k in renamed.items()]
        lines += [f"| {d['file']} | none: same bytes as {d['same_as']}, processed once |"
                  for d in report.get("duplicates", [])]
        lines.append("")
    lines += [
        RUN_SECTION,
        "",
        f"- processed: {report['processed']} (new {report['new']}, changed or retried {report['changed']})",
        f"- skipped (unchanged): {report['skipped']}",
        f"- removed since the last run: {len(report['removed'])}",
        *[f"  - {p}" for p in report["removed"]],
        *([f"- outputs of an older version kept, given their output key: {len(report['migrated'])}"]
          if report.get("migrated") else []),
        *[f"  - {p}" for p in report.get("migrated", [])],
        *([f"- outputs of an older version processed again: {len(report['relaid'])}"]
          if report.get("relaid") else []),
        *[f"  - {r['file']}: {r['reason']}" for r in report.get("relaid", [])],
        f"- seconds: {report['seconds']}",
        "",
    ]
    return "\n".join(lines)


def exit_code(report: dict[str, Any]) -> int:
    """The CLI's exit status: the worst failure's code (as before the flows), 0 if none."""
    codes = [int(f.get("exit_code", ExitCode.other_error)) for f in report["failures"]]
    return max(codes) if codes else int(ExitCode.ok)
