"""One input file through every stage: the pipeline's main path.

ingest -> preprocess -> grid -> ocr -> assemble -> normalize -> export.
The CLI and the flows are thin layers over `process_file`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import assemble, export, grid, ingest, normalize, ocr, preprocess
from .errors import NoFormFound, ScanformsError
from .types import FormRecord, PageResult


@dataclass
class Options:
    dpi: int = ingest.DEFAULT_DPI
    overlays: bool = False
    engine: str = "rapidocr"


@dataclass
class FileResult:
    path: Path
    records: list[FormRecord]
    pages: list[PageResult]
    timings: dict[str, float] = field(default_factory=dict)


def _timed(timings: dict[str, float], stage: str, t0: float) -> float:
    t1 = time.perf_counter()
    timings[stage] = timings.get(stage, 0.0) + (t1 - t0)
    return t1


def read_page(page, engine: ocr.OcrEngine, timings: dict[str, float]) -> PageResult:  # noqa: ANN001
    t = time.perf_counter()
    prepared = preprocess.prepare(page, engine)
    t = _timed(timings, "preprocess", t)
    grids = grid.find_grids(prepared.binary, prepared.image)
    t = _timed(timings, "grid", t)
    grids, free = ocr.read_page(prepared.image, grids, engine)
    _timed(timings, "ocr", t)
    return PageResult(prepared=prepared, grids=grids, free_lines=free)


def process_file(
    path: Path,
    opts: Options | None = None,
    engine: ocr.OcrEngine | None = None,
    on_page: Callable[[int], None] | None = None,
) -> FileResult:
    """Read every page of one file and build its form records (raises ScanformsError)."""
    opts = opts or Options()
    engine = engine or ocr.get_engine(opts.engine)
    timings: dict[str, float] = {}
    pages: list[PageResult] = []
    t = time.perf_counter()
    for page in ingest.iter_pages(path, dpi=opts.dpi):
        t = _timed(timings, "render", t)
        pages.append(read_page(page, engine, timings))
        t = time.perf_counter()
        if on_page:
            on_page(page.page_no)
    t = time.perf_counter()
    forms = assemble.split_forms(pages)
    t = _timed(timings, "assemble", t)
    records = normalize.build_records(forms, path.name)
    _timed(timings, "normalize", t)
    if not records:
        raise NoFormFound(path, "no form found (no ruled table with a form title or header grid)")
    return FileResult(path=path, records=records, pages=pages, timings=timings)


def export_file(result: FileResult, out_dir: Path, opts: Options) -> list[Path]:
    written = [export.write_records(out_dir, result.path, result.records)]
    if opts.overlays:
        written += [export.write_overlay(out_dir, result.path, p) for p in result.pages]
    return written


@dataclass
class FileOutcome:
    """What a worker sends back: plain data, cheap to pickle."""

    records: list[dict]
    n_pages: int
    seconds: float
    error: ScanformsError | None = None


def init_worker(threads: int) -> None:
    """Per-process setup for parallel runs: ONNX threads sized to the share of cores."""
    import os

    os.environ["SCANFORMS_OCR_THREADS"] = str(threads)


def run_one(
    path: Path,
    out_dir: Path,
    opts: Options,
    engine: ocr.OcrEngine | None = None,
    on_page: Callable[[int], None] | None = None,
) -> FileOutcome:
    """Process and export one file; errors come back as data so the batch goes on."""
    t0 = time.perf_counter()
    try:
        result = process_file(path, opts, engine, on_page=on_page)
        export_file(result, out_dir, opts)
        return FileOutcome([r.to_json() for r in result.records], len(result.pages), time.perf_counter() - t0)
    except ScanformsError as e:
        return FileOutcome([], 0, time.perf_counter() - t0, e)
    except Exception as e:  # a bug on one file must not stop a night's batch
        err = ScanformsError(path, f"internal error: {type(e).__name__}: {e}")
        return FileOutcome([], 0, time.perf_counter() - t0, err)
