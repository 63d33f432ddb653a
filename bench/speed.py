"""Speed benchmark: seconds per page by route (vector / scan / garbled) and by stage, against the floor.

    .venv/bin/python bench/speed.py [FOLDER|FILE ...] [--limit N] [--rounds N]
        [--no-floor] [--peers img2table-rapidocr,img2table-tesseract,paddleocr] [--json OUT] [--out DIR]
    .venv/bin/python bench/speed.py [FOLDER|FILE ...] --workers N   (throughput, RSS per worker)

Runs whole files through the pipeline (`process.process_file` + `process.export_file`
into a temporary folder) with the real engine (no OCR cache), so every stage is
timed: render, preprocess, orientation/deskew, grid, text layer, OCR (layout,
detection, recognition, assignment, second look), assemble, normalize, validate,
confidence, export. Each page is attributed to its route (its page kind: vector,
scan = image, garbled); a file's file-level stages are shared equally among its pages.

The floor: bare `RapidOCR()` with its default settings, det + rec (no cls), called
once on the very page image the pipeline OCRs, per page, in the same run: what no
pipeline built on that OCR can beat by running it whole-page. Every file runs `--rounds`
times (default 3), each page's floor right after it; a page counts with its fastest round
of ours and its fastest of the floor, and each round's own ratios are reported too.

With --peers, each non-vector page image the pipeline OCRs is saved as PNG and
`bench.peers.measure_peers(pages, which, truth_dir)` times the peer tools on them.

Prints median and p90 s/page per route and overall, pages/s, peak RSS, the stage
table and the ratios (vector vs scan speed, ours / floor, ours / peer); --json
writes all figures. A script, not a test: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline import engines, ingest, process  # noqa: E402
from pipeline.errors import NoFormFound, ScanformsError  # noqa: E402

ROUTES = {"vector": "vector", "image": "scan", "garbled": "garbled"}
FILE_STAGES = ("assemble", "normalize", "validate", "confidence", "export")
DEFAULT_CORPUS = REPO.parent / "shared" / "corpus" / "dev"


def pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))]


def summary(vals: list[float]) -> dict[str, float]:
    if not vals:
        return {"pages": 0}
    return {
        "pages": len(vals),
        "s_per_page_median": round(statistics.median(vals), 4),
        "s_per_page_p90": round(pct(vals, 0.9), 4),
        "s_per_page_mean": round(statistics.fmean(vals), 4),
    }


def rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    return round(resource.getrusage(who).ru_maxrss / 1024, 1)  # Linux: kB


class Floor:
    """Bare RapidOCR, default settings, det + rec without the direction classifier."""

    def __init__(self) -> None:
        from rapidocr import RapidOCR

        self.engine = RapidOCR(params={"Global.log_level": "error"})

    def __call__(self, image: Any) -> tuple[float, int]:
        t = time.perf_counter()
        out = self.engine(image, use_det=True, use_cls=False, use_rec=True)
        n = len(out.txts or ()) if out is not None else 0
        return time.perf_counter() - t, n


def _shares(counts: Counter[str]) -> dict[str, float]:
    n = sum(counts.values())
    return {m: round(k / n, 3) for m, k in sorted(counts.items())} if n else {}


def _one_file(f: Path, opts: process.Options, out: Path, engine: engines.OcrEngine | None = None
              ) -> tuple[process.FileResult | None, float, str | None]:
    """process_file + export_file on one file: (result, export seconds, error)."""
    try:
        result = process.process_file(f, opts, engine)
    except ScanformsError as e:
        return None, 0.0, f"{f.name}: {e}"
    t1 = time.perf_counter()
    try:
        process.export_file(result, out, opts)
    except NoFormFound:
        pass
    return result, time.perf_counter() - t1, None


def _page_rows(result: process.FileResult, t_export: float) -> list[dict[str, Any]]:
    """(route, stage seconds) per page; the file-level stages shared equally among its pages."""
    file_stages = {k: result.timings.get(k, 0.0) for k in FILE_STAGES[:-1]}
    file_stages["export"] = t_export
    share = {k: v / max(1, len(result.pages)) for k, v in file_stages.items()}
    rows = []
    for p in result.pages:
        st = dict(p.timings)
        st.update(share)
        models = Counter(t.model for g in p.grids for c in g.cells for t in c.lines if t.model)
        models.update(t.model for t in p.free_lines if t.model)
        rows.append({"page_no": p.page_no, "route": ROUTES.get(p.kind, p.kind), "stages": st,
                     "total": sum(v for k, v in st.items() if not k.startswith("n_")),
                     "lines_by_model": dict(models)})
    return rows


def _worker(f: Path, opts: process.Options, out: Path) -> tuple[str, list[dict[str, Any]], str | None, float]:
    """One file in a worker process (--workers): its page rows and the worker's peak RSS."""
    result, t_export, err = _one_file(f, opts, out)
    rows = _page_rows(result, t_export) if result else []
    return f.name, rows, err, rss_mb()


def run_workers(files: list[Path], opts: process.Options, out: Path, n: int) -> dict[str, Any]:
    """Several documents at once in N processes, each with its share of the cores."""
    from concurrent.futures import ProcessPoolExecutor

    threads = max(1, (os.cpu_count() or 1) // n)
    opts = dataclasses.replace(opts, ocr_threads=threads)
    per_route: dict[str, list[float]] = defaultdict(list)
    rss: list[float] = []
    errors: list[str] = []
    t0 = time.perf_counter()
    with ProcessPoolExecutor(n, initializer=process.init_worker, initargs=(threads,)) as pool:
        for name, rows, err, worker_rss in pool.map(_worker, files, [opts] * len(files), [out] * len(files)):
            if err:
                errors.append(err)
            rss.append(worker_rss)
            for r in rows:
                per_route[r["route"]].append(r["total"])
                print(f"{name} p{r['page_no']} {r['route']:8s} {r['total']:6.3f}s", file=sys.stderr, flush=True)
    wall = time.perf_counter() - t0
    pages = sum(len(v) for v in per_route.values())
    return {
        "workers": n,
        "ocr_threads_per_worker": threads,
        "pages": pages,
        "wall_s": round(wall, 2),
        "pages_per_s": round(pages / wall, 3) if wall else None,
        "routes": {k: summary(v) for k, v in sorted(per_route.items())},
        "peak_rss_mb_per_worker": max(rss) if rss else None,
        "peak_rss_mb_children": rss_mb(resource.RUSAGE_CHILDREN),
        "errors": errors,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("inputs", nargs="*", type=Path, default=[DEFAULT_CORPUS], help="files or folders (default: dev corpus)")
    ap.add_argument("--limit", type=int, default=0, help="at most N files (0: all)")
    ap.add_argument("--dpi", type=int, default=ingest.DEFAULT_DPI)
    ap.add_argument("--no-floor", action="store_true", help="skip timing bare RapidOCR on each OCRed page")
    ap.add_argument("--peers", default="", help="comma-separated peer tools to time on the same pages (bench/peers.py)")
    ap.add_argument("--truth", type=Path, default=DEFAULT_CORPUS / "truth", help="truth folder handed to the peers")
    ap.add_argument("--json", type=Path, help="write the figures here")
    ap.add_argument("--no-warmup", action="store_true", help="time the first file cold (imports, model loads)")
    ap.add_argument("--workers", type=int, default=1,
                    help="N > 1: documents in N processes (cores shared out); throughput and RSS per worker only")
    ap.add_argument("--rounds", type=int, default=3,
                    help="run every file N times; each page counts with its fastest round, ours and the floor's")
    ap.add_argument("--out", type=Path, help="keep the exported records here (for score.py); default: a temp dir")
    ap.add_argument("--rec-batching", default=process.Options.rec_batching, choices=engines.REC_BATCHINGS,
                    help="recognition batching of our engine (Options.rec_batching)")
    ap.add_argument("--recognizer", default=process.Options.recognizer, choices=engines.RECOGNIZERS,
                    help="cascade (tiny model first) or small (Options.recognizer)")
    args = ap.parse_args(argv)

    files = ingest.find_inputs(args.inputs)
    if args.limit:
        files = files[: args.limit]
    # the bench's own environment settings, read here (the pipeline takes them as options): the
    # OCR cache (timings are then cache reads) and the thread count the peers get too
    cache = os.environ.get("SCANFORMS_OCR_CACHE")
    threads = int(os.environ.get("SCANFORMS_OCR_THREADS", 0)) or None
    if args.workers > 1:
        # throughput of several documents at once; the floor and peers need the single-process run
        opts = process.Options(dpi=args.dpi, ocr_cache=Path(cache) if cache else None,
                               rec_batching=args.rec_batching, recognizer=args.recognizer)
        out = args.out or Path(tempfile.mkdtemp(prefix="scanforms-speed-"))
        report = {"files": len(files), "cpu_count": os.cpu_count(),
                  **run_workers(files, opts, out, args.workers)}
        print(json.dumps(report, indent=1, ensure_ascii=False, default=str))
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(report, indent=1, ensure_ascii=False, default=str), encoding="utf-8")
        return 0
    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    opts = process.Options(dpi=args.dpi, review_queue=True, ocr_threads=threads, rec_batching=args.rec_batching,
                           recognizer=args.recognizer)
    t_load = time.perf_counter()
    engine = engines.get_engine(opts.engine, cache, threads, opts.rec_batching, opts.recognizer)
    load_s = time.perf_counter() - t_load
    floor = None if args.no_floor else Floor()
    if cache:
        print("note: SCANFORMS_OCR_CACHE is set: OCR timings are cache reads, not the engine", file=sys.stderr)

    tmp = Path(tempfile.mkdtemp(prefix="scanforms-speed-"))
    if not args.no_warmup and files:
        # lazy imports and model loads (camelot, the label matcher, ONNX sessions) happen on the
        # first file: run it once untimed so they are not charged to its pages
        t_warm = time.perf_counter()
        _one_file(files[0], opts, tmp / "warmup", engine)
        import numpy as np

        # the engine's sessions load on first use (detection, each recogniser): a born-digital
        # first file loads none of them, so load them here as the floor's are, not on the first
        # scanned page (it cost that page ~1 s)
        blank, line = np.full((64, 256), 255, np.uint8), np.full((48, 200), 255, np.uint8)
        line[14:34, 20:180:12] = 0
        engine.detect(blank)
        engine.recognize([line])
        engine.recognize([line], effort="careful")
        if floor is not None:
            floor(blank)
        print(f"warm-up on {files[0].name}: {time.perf_counter() - t_warm:.1f}s (untimed)", file=sys.stderr)
    # best of `--rounds` per page (module docstring): the floor moved by a fifth between runs of
    # the same code and speeds up from its second round on (bench/README)
    best: dict[tuple[str, int], dict[str, Any]] = {}  # (file, page) -> its best round, ours and floor
    peer_pages: list[dict[str, Any]] = []
    errors: list[str] = []
    busy = 0.0  # pipeline seconds only (not the floor's), all rounds
    round_ratios: list[dict[str, float]] = []
    for rnd in range(args.rounds):
        ours_r: list[float] = []
        floor_r: list[float] = []
        for f in files:
            t0 = time.perf_counter()
            result, t_export, err = _one_file(f, opts, args.out or tmp / "out", engine)
            busy += time.perf_counter() - t0
            if result is None:
                if rnd == 0:
                    errors.append(err or f.name)
                continue
            for p, row in zip(result.pages, _page_rows(result, t_export), strict=True):
                route, total = row["route"], row["total"]
                b = best.setdefault((f.name, p.page_no), {"route": route, "floor": None})
                if "total" not in b or total < b["total"]:
                    b.update(total=total, stages=row["stages"], lines_by_model=row["lines_by_model"])
                line = f"{f.name} p{p.page_no} {route:8s} {total:6.3f}s"
                if route != "vector":
                    img = p.prepared.image
                    if floor is not None:
                        fs, n_lines = floor(img)
                        b["floor"] = fs if b["floor"] is None else min(b["floor"], fs)
                        ours_r.append(total)
                        floor_r.append(fs)
                        line += f"  floor {fs:6.3f}s ({n_lines} lines)"
                    if peers and rnd == 0:
                        import cv2

                        png = tmp / "pages" / f"{f.stem}-p{p.page_no}.png"
                        png.parent.mkdir(parents=True, exist_ok=True)
                        cv2.imwrite(str(png), img)
                        peer_pages.append(
                            {"file": f.name, "page_no": p.page_no, "route": route, "png": png, "pdf": f}
                        )
                print(line + (f"  (round {rnd + 1})" if args.rounds > 1 else ""), file=sys.stderr, flush=True)
        if floor_r:
            round_ratios.append({"median": round(statistics.median(ours_r) / statistics.median(floor_r), 3),
                                 "sum": round(sum(ours_r) / sum(floor_r), 3)})
    per_route: dict[str, list[float]] = defaultdict(list)
    lines_by_model: dict[str, Counter[str]] = defaultdict(Counter)  # OCR lines (cell pieces) each model read
    stage_sum: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    floor_route: dict[str, list[float]] = defaultdict(list)
    ours_floored: dict[str, list[float]] = defaultdict(list)  # our s/page on the pages the floor ran on
    for b in best.values():
        route = b["route"]
        per_route[route].append(b["total"])
        lines_by_model[route].update(b["lines_by_model"])
        for k, v in b["stages"].items():
            stage_sum[route][k] += v
        if b["floor"] is not None:
            floor_route[route].append(b["floor"])
            ours_floored[route].append(b["total"])
    n_pages = len(best)
    busy /= max(1, args.rounds)

    all_vals = [v for vals in per_route.values() for v in vals]
    report: dict[str, Any] = {
        "files": len(files),
        "pages": n_pages,
        "cpu_count": os.cpu_count(),
        "engine_load_s": round(load_s, 3),
        "pipeline_s": round(busy, 2),
        "pages_per_s": round(n_pages / busy, 3) if busy else None,
        "overall": summary(all_vals),
        "peak_rss_mb": rss_mb(),
        "rec_batching": opts.rec_batching,
        "recognizer": opts.recognizer,
        # the text lines kept from each recognition model, over every OCRed page (per route below)
        "rec_model_share": _shares(sum(lines_by_model.values(), Counter())),
        "errors": errors,
        "rounds": args.rounds,
    }
    if round_ratios:
        report["ours_over_floor_by_round"] = round_ratios
    routes: dict[str, Any] = {}
    for route, vals in sorted(per_route.items()):
        r = summary(vals)
        r["pages_per_s"] = round(len(vals) / sum(vals), 3) if sum(vals) else None
        r["rec_model_share"] = _shares(lines_by_model[route])
        r["stages_s_per_page"] = {
            k: round(v / len(vals), 4) for k, v in sorted(stage_sum[route].items()) if not k.startswith("n_")
        }
        r["counts_per_page"] = {
            k[2:]: round(v / len(vals), 3) for k, v in sorted(stage_sum[route].items()) if k.startswith("n_")
        }
        if floor_route.get(route):
            r["floor"] = summary(floor_route[route])
            r["ours_over_floor_median"] = round(
                statistics.median(ours_floored[route]) / statistics.median(floor_route[route]), 3
            )
            r["ours_over_floor_sum"] = round(sum(ours_floored[route]) / sum(floor_route[route]), 3)
        routes[route] = r
    report["routes"] = routes
    ocred = [v for k, vals in per_route.items() if k != "vector" for v in vals]
    if per_route.get("vector") and per_route.get("scan"):
        report["scan_over_vector_median"] = round(
            statistics.median(per_route["scan"]) / statistics.median(per_route["vector"]), 2
        )
    if ocred and per_route.get("vector"):
        report["ocr_routes_over_vector_median"] = round(
            statistics.median(ocred) / statistics.median(per_route["vector"]), 2
        )
    floor_all = [v for vals in floor_route.values() for v in vals]
    if floor_all:
        ours_all = [v for vals in ours_floored.values() for v in vals]
        report["floor"] = summary(floor_all)
        report["ours_over_floor_median"] = round(statistics.median(ours_all) / statistics.median(floor_all), 3)
        report["ours_over_floor_sum"] = round(sum(ours_all) / sum(floor_all), 3)

    if peers:
        report["peers"] = run_peers(peer_pages, peers, args.truth, ours_floored or per_route)

    print_table(report)
    print(json.dumps(report, indent=1, ensure_ascii=False, default=str))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1, ensure_ascii=False, default=str), encoding="utf-8")
    return 0


def run_peers(pages: list[dict[str, Any]], which: list[str], truth: Path,
              ours: dict[str, list[float]]) -> dict[str, Any]:
    """Time the peer tools on the same page images (bench/peers.py), and our time over theirs."""
    try:
        from bench.peers import measure_peers
    except ImportError as e:
        print(f"note: peers not measured: bench.peers is not available ({e})", file=sys.stderr)
        return {"error": f"bench.peers not available: {e}"}
    result: dict[str, Any] = measure_peers(pages, which, truth)
    ours_all = [v for k, vals in ours.items() if k != "vector" for v in vals]
    for name in which:
        peer = result.get(name) or {}
        s = peer.get("s_per_page_median") if isinstance(peer, dict) else None
        if s and ours_all:
            ratio = round(statistics.median(ours_all) / s, 3)
            if isinstance(peer, dict):
                peer["ours_over_peer_median"] = ratio
            print(f"ours / {name}: {ratio} (s/page median {statistics.median(ours_all):.3f} vs {s:.3f})")
    return result


def print_table(report: dict[str, Any]) -> None:
    routes = report["routes"]
    names = list(routes)
    print(f"\n{report['pages']} pages, {report['pages_per_s']} pages/s, "
          f"peak RSS {report['peak_rss_mb']} MB, rec batching {report.get('rec_batching')}, "
          f"recognizer {report.get('recognizer')}, lines read by model {report.get('rec_model_share')}")
    print(f"{'':22s}" + "".join(f"{n:>10s}" for n in names))
    rows = ["pages", "s_per_page_median", "s_per_page_p90", "pages_per_s"]
    for row in rows:
        print(f"{row:22s}" + "".join(f"{routes[n].get(row, ''):>10}" for n in names))
    stages = sorted({k for n in names for k in routes[n]["stages_s_per_page"]})
    print("stage s/page")
    for k in stages:
        print(f"  {k:20s}" + "".join(f"{routes[n]['stages_s_per_page'].get(k, 0):>10.4f}" for n in names))
    counts = sorted({k for n in names for k in routes[n]["counts_per_page"]})
    for k in counts:
        print(f"  n {k:18s}" + "".join(f"{routes[n]['counts_per_page'].get(k, 0):>10.3f}" for n in names))
    print(f"{'rec_model_share':22s}" + "".join(
        f"{' '.join(f'{m}:{v}' for m, v in routes[n].get('rec_model_share', {}).items()):>22s}" for n in names))
    for n in names:
        if "floor" in routes[n]:
            print(f"{n}: floor median {routes[n]['floor']['s_per_page_median']} s/page, ours / floor "
                  f"{routes[n]['ours_over_floor_median']} (median), {routes[n]['ours_over_floor_sum']} (sum)")
    for k in ("scan_over_vector_median", "ocr_routes_over_vector_median", "ours_over_floor_median",
              "ours_over_floor_sum"):
        if k in report:
            print(f"{k}: {report[k]}")
    for i, r in enumerate(report.get("ours_over_floor_by_round", ()), 1):
        print(f"round {i}: ours / floor {r['median']} (median), {r['sum']} (sum)")


if __name__ == "__main__":
    sys.exit(main())
