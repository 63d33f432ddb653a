"""Speed benchmark: seconds per page by route (vector / garbled / image) and by stage.

    .venv/bin/python bench/speed.py [FOLDER ...] [--limit N] [--floor] [--json OUT]

Runs each page through the pipeline's page stages (render, preprocess, grid,
OCR or text layer) with the real engine (no cache), then prints median and p90
seconds per page per route, the per-stage breakdown, and the ratio of the
vector route to the scan route. With --floor it also times bare RapidOCR
(whole-page det + rec) on the same page images: the cost no OCR pipeline avoids.
A script, not a test: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline import ingest, ocr, process  # noqa: E402


def pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("inputs", nargs="*", type=Path, default=[REPO.parent / "shared" / "corpus" / "dev"])
    ap.add_argument("--limit", type=int, default=0, help="at most N files (0: all)")
    ap.add_argument("--floor", action="store_true", help="also time bare RapidOCR det+rec per scanned page")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args(argv)

    files = ingest.find_inputs(args.inputs)
    if args.limit:
        files = files[: args.limit]
    engine = ocr.RapidOcrEngine()
    per_route: dict[str, list[float]] = defaultdict(list)
    stages: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    floor: list[float] = []
    n_pages = 0
    t_all = time.perf_counter()
    for f in files:
        t = time.perf_counter()
        for page in ingest.iter_pages(f):
            timings: dict[str, float] = {"render": time.perf_counter() - t}
            t0 = time.perf_counter()
            result = process.read_page(page, engine, timings)
            total = timings["render"] + (time.perf_counter() - t0)
            per_route[result.kind].append(total)
            for k, v in timings.items():
                stages[result.kind][k] += v
            n_pages += 1
            if args.floor and result.kind != "vector":
                img = result.prepared.image
                t1 = time.perf_counter()
                quads = engine.detect(img)
                engine.recognize([ocr.crop_quad(img, q) for q in quads])
                floor.append(time.perf_counter() - t1)
            print(f"{f.name} p{page.page_no} {result.kind:8s} {total:6.2f}s", file=sys.stderr, flush=True)
            t = time.perf_counter()
    wall = time.perf_counter() - t_all
    report: dict[str, object] = {"pages": n_pages, "wall_s": round(wall, 2), "pages_per_s": round(n_pages / wall, 3)}
    routes = {}
    for kind, vals in sorted(per_route.items()):
        routes[kind] = {
            "pages": len(vals),
            "median_s": round(statistics.median(vals), 3),
            "p90_s": round(pct(vals, 0.9), 3),
            "stages_s_per_page": {k: round(v / len(vals), 3) for k, v in stages[kind].items()},
        }
    report["routes"] = routes
    scan = [v for k, vals in per_route.items() if k != "vector" for v in vals]
    if per_route.get("vector") and scan:
        report["scan_over_vector"] = round(statistics.median(scan) / statistics.median(per_route["vector"]), 1)
    if floor:
        report["floor_median_s"] = round(statistics.median(floor), 3)
        report["scan_over_floor"] = round(statistics.median(scan) / statistics.median(floor), 2)
    report["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(report, indent=1, ensure_ascii=False))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
