"""Command line: `scanforms run`, a thin layer over pipeline.process.

Imports of the heavy stages happen inside the commands so `--help` is instant.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from . import options
from .errors import ExitCode, ScanformsError

DEFAULT_INPUT = Path("data/raw")
DEFAULT_OUT = Path("data/clean")


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class _ProgressBar:
    """rich progress bars of documents and pages, fed by the flow's listener hooks."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("{task.description:<9}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[note]}"),
            console=Console(stderr=True),
            # no redirection: Dask pickles the task context, and a redirected sys.stderr (a proxy
            # holding the console and its lock) does not pickle
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self.docs = self.progress.add_task("documents", total=None, note="")
        self.pages = self.progress.add_task("pages", total=None, note="")
        self.seen: dict[Path, int] = {}  # pages reported per document (a retry re-reports them)

    def __enter__(self) -> _ProgressBar:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def started(self, total_docs: int, skipped: int, pages_to_do: int) -> None:
        note = f"{skipped} unchanged, skipped" if skipped else ""
        self.progress.update(self.docs, total=total_docs, completed=skipped, note=note)
        self.progress.update(self.pages, total=pages_to_do)

    def page_done(self, path: Path, page_no: int) -> None:
        key = Path(path).resolve()  # the page hook and the end-of-document event may spell it apart
        if page_no > self.seen.get(key, 0):
            self.progress.advance(self.pages, page_no - self.seen.get(key, 0))
            self.seen[key] = page_no
            self.progress.update(self.pages, note=f"{path.name} p{page_no}")

    def doc_done(self, path: Path, entry: dict) -> None:
        # pages of documents run elsewhere (Dask workers) are counted here, when they end
        self.page_done(path, int(entry.get("pages") or 0))
        self.progress.advance(self.docs)
        if entry["status"] != "ok":
            self.progress.console.print(f"ERROR {path.name}: {(entry.get('error') or {}).get('reason')}")


def _prefect_defaults() -> None:
    """Before Prefect is imported: no telemetry from offline machines, and our own progress bar
    instead of Prefect's per-task log lines (a user's explicit settings win)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    # Dask's scheduler/nanny INFO lines (startup, shutdown) would bury the progress bar
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    # the temporary server's first start on a fresh PREFECT_HOME migrates its database: on a busy
    # 2-core machine that outlasts Prefect's 20 s default
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


def cmd_run(args: argparse.Namespace) -> int:
    from . import batch, export, ingest

    inputs = ingest.find_inputs(args.inputs or [DEFAULT_INPUT])
    if not inputs:
        _progress(f"scanforms: no input files found under {', '.join(map(str, args.inputs or [DEFAULT_INPUT]))}")
        return ExitCode.bad_args
    out: Path = args.out
    try:
        export.ensure_writable_dir(out)
    except OSError as e:
        _progress(f"scanforms: output folder {out} is not writable ({e.strerror or e})")
        return ExitCode.output_file
    if args.workers is not None and args.workers < 1:
        _progress("scanforms: --workers must be at least 1")
        return ExitCode.bad_args
    _prefect_defaults()
    from flows.digitize import run_digitize

    opts = options.from_args(args)  # the one Options of this run, passed whole to the flow
    kwargs = dict(
        jobs=args.jobs,
        timeout_s=args.timeout,
        force=args.force,
        dask_address=args.dask_address,
        workers=args.workers,
        keep_going=args.keep_going,
    )
    t0 = time.perf_counter()
    try:
        if args.quiet:
            report = run_digitize(inputs, out, opts, **kwargs)
        else:
            with _ProgressBar() as bar:
                report = run_digitize(inputs, out, opts, listener=bar, **kwargs)
    except ScanformsError as e:  # e.g. the output folder filled up while combining
        _progress(f"scanforms: {e}")
        return int(e.exit_code)
    failures = report["failures"]
    for f in failures if args.quiet else []:
        _progress(f"ERROR {Path(f['file']).name}: {f['reason']}")
    for w in report.get("warnings", []):
        _progress(f"  WARNING {Path(w['file']).name}: {w['reason']}")
    _progress(
        f"done: {report['inputs'] - len(failures)}/{report['inputs']} files "
        f"({report['processed']} processed, {report['skipped']} unchanged), {report['forms']} forms, "
        f"{len(failures)} failed, {report['review_cells']} cells to review "
        f"({report.get('review_cells_empty', 0)} empty; {report.get('review_groups', 0)} groups), "
        f"{time.perf_counter() - t0:.1f}s -> {out}"
    )
    if report["removed"]:
        _progress(f"  {len(report['removed'])} file(s) gone since the last run: see {out / 'run_report.md'}")
    renamed = sum(1 for f, k in report["output_keys"].items() if k != Path(f).stem)
    if renamed:
        _progress(f"  {renamed} file(s) share a name with another input: outputs named by their folders, "
                  f"see {out / 'run_report.md'}")
    if report["duplicates"]:
        _progress(f"  {len(report['duplicates'])} file(s) with the same bytes as another input, processed once: "
                  f"see {out / 'run_report.md'}")
    if report["migrated"] or report["relaid"]:
        _progress(f"  outputs of an older version: {len(report['migrated'])} kept under their name, "
                  f"{len(report['relaid'])} processed again (see {out / 'run_report.md'})")
    return batch.exit_code(report)


def cmd_tables(args: argparse.Namespace) -> int:
    """Every reconstructed table of every page, form or not, as JSON + HTML."""
    import time as _t

    from . import engines, export, ingest, naming, process

    inputs = ingest.find_inputs(args.inputs)
    keys = naming.output_keys(inputs)  # no manifest here: names decided by this command's inputs alone
    opts = options.from_args(args)
    engine = engines.LazyEngine(
        opts.engine, cache_dir=opts.ocr_cache, threads=opts.ocr_threads, batching=opts.rec_batching,
        recognizer=opts.recognizer,
    )
    failures = 0
    for path in inputs:
        t0 = _t.perf_counter()
        try:
            timings: dict[str, float] = {}
            n = 0
            for page in ingest.iter_pages(path, dpi=opts.dpi):
                result = process.read_page(page, engine, timings)
                written = export.write_tables(args.out, keys[path], result)
                if opts.overlays:
                    export.write_overlay(args.out, keys[path], result)
                n += len(written) // 2
                cells = [len(g.cells) for g in result.grids]
                _progress(f"{path.name} p{page.page_no}: {len(result.grids)} table(s), cells {cells}")
            _progress(f"{path.name}: {n} table(s) in {_t.perf_counter() - t0:.1f}s -> {args.out / 'tables'}")
        except ScanformsError as e:
            failures += 1
            _progress(f"ERROR {e}")
    return ExitCode.input_file if failures else ExitCode.ok


def cmd_eval(args: argparse.Namespace) -> int:
    """Accuracy, calibration (ECE), the review curve and a reliability diagram for a prediction folder."""
    from . import evaluate

    cells, n_forms, missing = evaluate.score_folder(args.truth, args.pred)
    if not cells:
        _progress(f"scanforms: nothing to score (truth {args.truth}, predictions {args.pred})")
        return ExitCode.bad_args
    s = evaluate.summarize(cells, args.threshold)
    print(f"forms {n_forms}, missing {missing}, cells {s['cells']}")
    print(f"accuracy {s['accuracy']:.4f}  ECE {s['ece']:.4f}  review_rate {s['review_rate']:.4f}  "
          f"accepted_error_rate {s['accepted_error_rate'] or 0:.4f}  (needs_review, else confidence ≥ {args.threshold})")
    print("threshold  review_rate  accepted_error_rate")
    curve = evaluate.review_curve(cells)
    for pt in curve:
        print(f"{pt['threshold']:9.3f}  {pt['review_rate']:11.4f}  {pt['accepted_error_rate']:19.4f}")
    png = args.plot or args.pred / "reliability.png"
    evaluate.reliability_png(cells, png)
    print(f"reliability diagram -> {png}")
    if args.json:
        from .export import atomic_write_text

        atomic_write_text(args.json, json.dumps({"summary": s, "curve": curve, "forms_missing": missing}, indent=1))
    return ExitCode.ok


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Fit the confidence model on a prediction folder written with --features, against truth."""
    from . import calibrate

    if (args.truth is None) != (args.pred is None) or (args.truth is None and not args.reviews):
        print("scanforms calibrate: give --truth and --pred, or --reviews, or both", file=sys.stderr)
        return ExitCode.bad_args
    try:
        report = calibrate.fit_folder(args.truth, args.pred, save=None if args.dry_run else args.save,
                                      target_error=args.target_error, reviews=args.reviews or (),
                                      manifest=args.manifest)
    except (ValueError, OSError, KeyError) as e:
        print(f"scanforms calibrate: {e}", file=sys.stderr)
        return ExitCode.bad_args
    for name in ("variant", "family"):
        held = report.get(f"held_out_{name}")
        if held:
            print(calibrate.format_table(
                f"each {name} held out (fitted without it), threshold {report['threshold']}: "
                f"overall review {held['review_rate']}, accepted error {held['accepted_error_rate']}",
                held["by_condition"]))
            print(calibrate.format_table(f"in-sample by {name} (the saved model)", report[f"fitted_by_{name}"]))
            print()
    print(json.dumps(report, indent=1))
    return ExitCode.ok


def _env_defaults() -> dict[str, object]:
    """Defaults a test harness may set from outside: SCANFORMS_OCR_CACHE for --ocr-cache (subprocess
    runs of the CLI share the tests' warm cache). Read here only; below the CLI options come from
    the Options object."""
    cache = os.environ.get("SCANFORMS_OCR_CACHE")
    return {"ocr_cache": Path(cache)} if cache else {}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="scanforms",
        description="Scanned Chinese fiscal performance self-evaluation forms -> typed JSON records "
        "with a confidence on every cell.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="extract form records from PDFs / images", description="Extract form records.")
    r.add_argument("inputs", nargs="*", type=Path, help=f"files or folders (default: {DEFAULT_INPUT})")
    r.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})")
    options.add_arguments(r)  # --dpi, --overlays, --review-threshold, --features, --pdf, --xlsx, --ocr-cache, ...
    r.add_argument(
        "--keep-going",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="go on after a file fails (default: on); exit status is non-zero if any failed",
    )
    r.add_argument("-j", "--jobs", type=int, default=1, help="documents processed at once, in threads (default: 1)")
    r.add_argument("--timeout", type=float, default=900.0, help="seconds one document may take (default: 900)")
    r.add_argument("--force", action="store_true", help="reprocess every file, changed or not")
    r.add_argument(
        "--dask-address", metavar="tcp://HOST:PORT", help="run the documents on this Dask scheduler's workers"
    )
    r.add_argument("--workers", type=int, help="run on a local Dask cluster of N worker processes")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    r.set_defaults(func=cmd_run, **_env_defaults())
    e = sub.add_parser(
        "eval",
        help="score records against ground truth: accuracy, ECE, review curve, reliability diagram",
        description="Score a prediction folder against a truth folder (record-format spec rules).",
    )
    e.add_argument("--truth", type=Path, required=True, help="folder of truth <stem>.json files")
    e.add_argument("--pred", type=Path, default=DEFAULT_OUT, help=f"folder of records (default: {DEFAULT_OUT})")
    e.add_argument("--threshold", type=float, default=0.9, help="accept cells without needs_review at this confidence")
    e.add_argument("--plot", type=Path, help="reliability diagram PNG (default: <pred>/reliability.png)")
    e.add_argument("--json", type=Path, help="also write the figures as JSON here")
    e.set_defaults(func=cmd_eval)
    c = sub.add_parser(
        "calibrate",
        help="fit the confidence model (models/calibration.json) on records written with --features",
        description="Fit the confidence model (boosted trees + isotonic map) from `scanforms run --features` output and truth.",
    )
    c.add_argument("--truth", type=Path, help="folder of truth <stem>.json files")
    c.add_argument("--pred", type=Path, help="output folder of `scanforms run --features`")
    c.add_argument("--reviews", type=Path, action="append", metavar="OUT",
                   help="also learn from the cells reviewed in this output folder (of `scanforms run --features`): "
                   "accepted values as right, corrected ones as wrong; repeatable")
    c.add_argument("--save", type=Path, default=Path("models/calibration.json"), help="where to save the model")
    c.add_argument("--target-error", type=float, default=options.CALIBRATION_TARGET_ERROR,
                   help="accepted-error rate of the held-out-variant scores the default review threshold is "
                        f"chosen for (default: {options.CALIBRATION_TARGET_ERROR})")
    c.add_argument("--manifest", type=Path,
                   help="corpus manifest.csv (file, variant, family): each variant and family is held out in turn "
                   "and the threshold chosen on those held-out scores (default: manifest.csv beside --truth)")
    c.add_argument("--dry-run", action="store_true", help="report the cross-validated figures, save nothing")
    c.set_defaults(func=cmd_calibrate)
    t = sub.add_parser(
        "tables",
        help="write every reconstructed table (form or not) as JSON + HTML",
        description="Write each table as <out>/tables/<input>-p<page>-t<k>.json and .html.",
    )
    t.add_argument("inputs", nargs="+", type=Path, help="files or folders")
    t.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})")
    options.add_arguments(t, only=("dpi", "overlays", "ocr_cache", "ocr_threads"))
    t.set_defaults(func=cmd_tables, **_env_defaults())
    from .review.command import add_parser as add_review_parser

    add_review_parser(sub, DEFAULT_OUT)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        _progress("scanforms: interrupted")
        return 130
    except ScanformsError as e:  # e.g. the output folder became unwritable mid-run
        _progress(f"scanforms: {e}")
        return int(e.exit_code)
    except Exception as e:  # no traceback for the user; SCANFORMS_DEBUG=1 shows it
        if os.environ.get("SCANFORMS_DEBUG"):
            raise
        _progress(f"scanforms: internal error: {type(e).__name__}: {e} (SCANFORMS_DEBUG=1 for a traceback)")
        return ExitCode.other_error


if __name__ == "__main__":
    sys.exit(main())
