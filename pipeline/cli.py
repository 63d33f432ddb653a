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

from .errors import ExitCode, ScanformsError

DEFAULT_INPUT = Path("data/raw")
DEFAULT_OUT = Path("data/clean")


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cmd_run(args: argparse.Namespace) -> int:
    from . import export, ingest, ocr, process

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
    opts = process.Options(
        dpi=args.dpi, overlays=args.overlays, review_threshold=args.review_threshold, features=args.features
    )
    jobs = max(1, min(args.jobs, len(inputs)))
    total_pages = sum(ingest.count_pages(p) for p in inputs)
    failures: list[ScanformsError] = []
    all_records: list[dict] = []
    warnings: list[dict] = []
    t_start = time.perf_counter()
    state = {"pages": 0}

    def on_page(path: Path, page_no: int) -> None:
        state["pages"] += 1
        if not args.quiet:
            el = time.perf_counter() - t_start
            eta = el / state["pages"] * max(0, total_pages - state["pages"])
            _progress(f"  [{state['pages']}/{total_pages} pages, {el:.0f}s, eta {eta:.0f}s] {path.name} p{page_no}")

    def done(k: int, path: Path, outcome: process.FileOutcome) -> bool:
        """Report one file; False when the batch should stop."""
        warnings.extend(outcome.warnings)
        for w in outcome.warnings:
            _progress(f"  WARNING {Path(w['file']).name}: {w['reason']}")
        if outcome.error is None:
            all_records.extend(outcome.records)
            if not args.quiet:
                _progress(
                    f"[{k}/{len(inputs)}] {path.name}: {len(outcome.records)} form(s), "
                    f"{outcome.n_pages} page(s), {outcome.seconds:.1f}s"
                )
            return True
        failures.append(outcome.error)
        _progress(f"[{k}/{len(inputs)}] ERROR {outcome.error}")
        return bool(args.keep_going)

    if jobs == 1:
        engine = ocr.get_engine(opts.engine)
        for k, path in enumerate(inputs, 1):
            outcome = process.run_one(path, out, opts, engine, on_page=lambda n, p=path: on_page(p, n))
            if not done(k, path, outcome):
                break
    else:
        from concurrent.futures import ProcessPoolExecutor, as_completed

        threads = max(1, (os.cpu_count() or 1) // jobs)  # don't oversubscribe cores
        with ProcessPoolExecutor(jobs, initializer=process.init_worker, initargs=(threads,)) as pool:
            futs = {pool.submit(process.run_one, p, out, opts): p for p in inputs}
            for k, fut in enumerate(as_completed(futs), 1):
                path = futs[fut]
                outcome = fut.result()
                state["pages"] += outcome.n_pages
                if not done(k, path, outcome):
                    for f in futs:
                        f.cancel()
                    break
    all_records.sort(key=lambda r: (r["source"]["file"], r["source"]["form_index"]))
    export.write_jsonl(out / "records.jsonl", all_records)
    queue = export.combine_review_queue(out, [p.stem for p in inputs])
    n_review = sum(1 for _ in queue.open(encoding="utf-8"))
    report = {
        "inputs": len(inputs),
        "records": len(all_records),
        "failures": [{"file": str(f.path), "page": f.page, "reason": f.reason} for f in failures],
        "cells_to_review": n_review,
        "warnings": warnings,
        "seconds": round(time.perf_counter() - t_start, 2),
    }
    export.atomic_write_text(out / "run_report.json", json.dumps(report, ensure_ascii=False, indent=1))
    _progress(
        f"done: {len(inputs) - len(failures)}/{len(inputs)} files, {len(all_records)} forms, "
        f"{len(failures)} failed, {n_review} cells to review, {report['seconds']}s -> {out}"
    )
    if failures:
        return max(int(f.exit_code) for f in failures)
    return ExitCode.ok


def cmd_tables(args: argparse.Namespace) -> int:
    """Every reconstructed table of every page, form or not, as JSON + HTML."""
    import time as _t

    from . import export, ingest, ocr, process

    inputs = ingest.find_inputs(args.inputs)
    engine = ocr.get_engine()
    failures = 0
    for path in inputs:
        t0 = _t.perf_counter()
        try:
            timings: dict[str, float] = {}
            n = 0
            for page in ingest.iter_pages(path, dpi=args.dpi):
                result = process.read_page(page, engine, timings)
                written = export.write_tables(args.out, path, result)
                if args.overlays:
                    export.write_overlay(args.out, path, result)
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
    curve = evaluate.review_curve(cells, steps=20)
    for pt in curve:
        print(f"{pt['threshold']:9.2f}  {pt['review_rate']:11.4f}  {pt['accepted_error_rate']:19.4f}")
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

    report = calibrate.fit_folder(args.truth, args.pred, save=None if args.dry_run else args.save,
                                  target_error=args.target_error)
    print(json.dumps(report, indent=1))
    return ExitCode.ok


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
    r.add_argument("--dpi", type=int, default=200, help="render DPI for PDF pages (default: 200)")
    r.add_argument("--overlays", action="store_true", help="write a PNG per page: grid, cells coloured by confidence")
    r.add_argument(
        "--keep-going",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="go on after a file fails (default: on); exit status is non-zero if any failed",
    )
    r.add_argument("-j", "--jobs", type=int, default=1, help="files processed in parallel processes (default: 1)")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    r.add_argument(
        "--review-threshold",
        type=float,
        default=None,
        help="cells under this calibrated confidence go to the review queue (default: the calibration's, see README)",
    )
    r.add_argument("--features", action="store_true", help="also write the confidence model's inputs (features/)")
    r.set_defaults(func=cmd_run)
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
    c.add_argument("--truth", type=Path, required=True, help="folder of truth <stem>.json files")
    c.add_argument("--pred", type=Path, required=True, help="output folder of `scanforms run --features`")
    c.add_argument("--save", type=Path, default=Path("models/calibration.json"), help="where to save the model")
    c.add_argument("--target-error", type=float, default=0.004,
                   help="accepted-error rate the default review threshold is chosen for (default: 0.004)")
    c.add_argument("--dry-run", action="store_true", help="report the cross-validated figures, save nothing")
    c.set_defaults(func=cmd_calibrate)
    t = sub.add_parser(
        "tables",
        help="write every reconstructed table (form or not) as JSON + HTML",
        description="Write each table as <out>/tables/<input>-p<page>-t<k>.json and .html.",
    )
    t.add_argument("inputs", nargs="+", type=Path, help="files or folders")
    t.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})")
    t.add_argument("--dpi", type=int, default=200, help="render DPI for PDF pages (default: 200)")
    t.add_argument("--overlays", action="store_true", help="also write overlay PNGs")
    t.set_defaults(func=cmd_tables)
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
