"""Vector-route benchmark: seconds per born-digital page, all in, by stage.

    .venv/bin/python bench/vector.py [FILES or FOLDERS ...] [--reps N] [--variant NAME ...] [--json OUT]

Runs each file through `process.process_file` and `process.export_file`
(records only: no overlays, no review crops) and charges every page its own
stages (render, preprocess, grid, text layer) plus its file's file-level
stages (assemble, normalize, validate, confidence, export) divided by the
file's pages. Prints median and p90 s/page and the mean per stage, for each
grid variant, repetitions interleaved so that load on a shared machine hits
all variants alike. Variants: `pdf` (rules from the PDF's vector graphics, the
pipeline's default), `camelot` (camelot's lattice, the former route),
`image` (our OpenCV grid on the page render).
A script, not a test: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.camelot_grid import grids_from_pdf  # noqa: E402
from pipeline import ingest, process  # noqa: E402

PAGE_STAGES = ("render", "preprocess", "grid", "text_layer", "ocr")
FILE_STAGES = ("assemble", "normalize", "validate", "confidence", "export")


def pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))]


def _camelot_grids(page: object) -> list:
    scale = page.dpi / 72.0  # type: ignore[attr-defined]
    return grids_from_pdf(str(page.source), page.page_no, scale, page.image.shape[0] / scale)  # type: ignore[attr-defined]


VARIANTS = {
    "pdf": None,  # the pipeline as it is
    "camelot": _camelot_grids,
    "image": lambda page: [],  # no vector grid: read_page falls back to find_grids on the render
}


def run_file(path: Path, out: Path) -> list[dict[str, float]]:
    """Per-page stage seconds for one file (file-level stages shared out over its pages)."""
    per_page: list[dict[str, float]] = []
    orig = process.read_page

    def read_page(page, engine, timings, *rest):  # type: ignore[no-untyped-def]
        before = dict(timings)
        t0 = time.perf_counter()
        res = orig(page, engine, timings, *rest)
        row = {k: timings.get(k, 0.0) - before.get(k, 0.0) for k in PAGE_STAGES}
        row["_read"] = time.perf_counter() - t0
        per_page.append(row)
        return res

    process.read_page = read_page
    try:
        opts = process.Options(review_queue=False)
        t = time.perf_counter()
        res = process.process_file(path, opts)
        total = time.perf_counter() - t
        t = time.perf_counter()
        process.export_file(res, out, opts)
        export_s = time.perf_counter() - t
    finally:
        process.read_page = orig
    n = len(per_page)
    # render is timed by process_file around the page iterator: split it evenly (it is per page)
    render = res.timings.get("render", 0.0)
    shared = {k: res.timings.get(k, 0.0) for k in FILE_STAGES if k != "export"}
    shared["export"] = export_s
    for row in per_page:
        row["render"] = render / n
        for k, v in shared.items():
            row[k] = v / n
        row["other"] = max(0.0, (total + export_s) / n - sum(row[k] for k in PAGE_STAGES + FILE_STAGES))
        row["total"] = sum(row[k] for k in (*PAGE_STAGES, *FILE_STAGES, "other"))
        del row["_read"]
    return per_page


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("inputs", nargs="*", type=Path)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--variant", action="append", choices=sorted(VARIANTS), help="default: all")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    files = ingest.find_inputs(args.inputs or [REPO.parent / "shared" / "corpus" / "dev"])
    variants = args.variant or list(VARIANTS)
    rows: dict[str, list[dict[str, float]]] = defaultdict(list)
    cpu: dict[str, float] = defaultdict(float)  # process CPU seconds: less sensitive to a loaded machine
    orig = getattr(process, "vector_grids", None)  # (absent before the vector route: bench the old tree too)
    with tempfile.TemporaryDirectory() as tmp:
        for f in files:  # warm-up: imports, lexicon, first-call costs
            run_file(f, Path(tmp))
            break
        for rep in range(args.reps):
            for v in variants:
                if VARIANTS[v] is not None:
                    process.vector_grids = VARIANTS[v]
                try:
                    c0 = time.process_time()
                    for f in files:
                        rows[v] += run_file(f, Path(tmp) / f"{v}{rep}")
                    cpu[v] += time.process_time() - c0
                finally:
                    process.vector_grids = orig
    report = {}
    for v in variants:
        tot = [r["total"] for r in rows[v]]
        report[v] = {
            "pages": len(tot),
            "median_s": round(statistics.median(tot), 4),
            "p90_s": round(pct(tot, 0.9), 4),
            "cpu_s_per_page": round(cpu[v] / max(1, len(tot)), 4),
            "stages_mean_s": {k: round(statistics.mean(r[k] for r in rows[v]), 4)
                              for k in (*PAGE_STAGES, *FILE_STAGES, "other")},
        }
    if "pdf" in report:
        for v in variants:
            report[v]["median_over_pdf"] = round(report[v]["median_s"] / report["pdf"]["median_s"], 2)
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
