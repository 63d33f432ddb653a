"""One input file through every stage: the pipeline's main path.

ingest -> preprocess -> grid -> ocr -> assemble -> normalize -> export.
The CLI and the flows are thin layers over `process_file`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import (
    assemble,
    confidence,
    engines,
    export,
    grid,
    ingest,
    measure,
    normalize,
    ocr,
    preprocess,
    textlayer,
    validate,
)
from .archive import write_outputs as write_archive_outputs
from .errors import DocumentTimeout, InputFileError, NoFormFound, ScanformsError
from .naming import output_keys
from .options import Options
from .review.store import apply_decisions
from .types import FormRecord, Grid, PageImage, PageResult, PageScale, PreparedPage


@dataclass(frozen=True)
class Deadline:
    """When one document's time is up (a `time.monotonic()` value), checked between its pages and
    stages. Cooperative on purpose: Prefect's task timeout injects an exception into the running
    thread at any instruction, and at a short limit that landed inside Prefect's own task start-up
    and hung the run (CI, --timeout 0.001); a check here fails the document at a known point."""

    at: float
    limit_s: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds, seconds)

    def check(self, path: Path) -> None:
        if time.monotonic() >= self.at:
            raise DocumentTimeout(path, f"timed out after {self.limit_s:g} s")


@dataclass
class FileResult:
    path: Path
    records: list[FormRecord]
    pages: list[PageResult]
    timings: dict[str, float] = field(default_factory=dict)
    features: list[dict] = field(default_factory=list)  # the confidence model's inputs, when asked for
    warnings: list[dict] = field(default_factory=list)  # {"file", "page", "reason"}: read, but not as-is


def _timed(timings: dict[str, float], stage: str, t0: float) -> float:
    t1 = time.perf_counter()
    timings[stage] = timings.get(stage, 0.0) + (t1 - t0)
    return t1


def vector_grids(page: PageImage, scale: PageScale | None = None) -> list[Grid]:
    """Tables of a born-digital page from the PDF's own rules ([] if none: the caller reads the render).

    The rules were read from the page's vector graphics at ingest: exact and
    ~100x cheaper than camelot's lattice, which re-opened the file, re-rendered
    the page and found the lines in the image again.
    """
    if not page.vector_lines:
        return []
    scale = scale or measure.scale_of_layer(page.text_layer, page.image.shape, page.dpi)
    return grid.grids_from_lines(page.vector_lines, page.image.shape[:2], scale.glyph)


def read_page(
    page: PageImage, engine: engines.OcrEngine, timings: dict[str, float]
) -> PageResult:
    """One page through preprocess, grid and text: from the layer (vector) or by OCR.

    Stage seconds are added to `timings` (the file's) and kept per page in the result's
    `timings`; keys starting with n_ are counts (e.g. n_second_look cells).
    """
    pt: dict[str, float] = {}
    t = time.perf_counter()
    kind, reason = textlayer.classify(textlayer.layer_text(page.text_layer), page.has_page_image)
    if kind == "vector":
        # born-digital: upright and straight by construction; the layer's boxes fit the render.
        # No binary yet: only the image fallback of the grid needs one.
        grey = preprocess.to_grey(page.image)
        scale = measure.scale_of_layer(page.text_layer, page.image.shape, page.dpi)
        prepared = PreparedPage(page=page, image=grey, binary=None, rotation=0, skew_deg=0.0, scale=scale)
        t = _timed(pt, "preprocess", t)
    else:
        prepared = preprocess.prepare(page, engine, pt)
        t = time.perf_counter()
    grids = vector_grids(page, prepared.scale) if kind == "vector" else []
    if not grids:
        if prepared.binary is None:  # a born-digital page read by image: its scale is its ink's
            prepared.binary = preprocess.binarize(prepared.image)
            prepared.scale = measure.scale_of_ink(prepared.binary, page.dpi)
        grids = grid.find_grids(prepared.binary, prepared.scale)
    t = _timed(pt, "grid", t)
    if kind == "vector":
        grids, free = textlayer.read_layer(grids, page.text_layer or [], prepared.scale.unit if prepared.scale else 1.0)
        _timed(pt, "text_layer", t)
    else:
        grids, free = ocr.read_page(prepared.image, grids, engine, prepared.binary, prepared.scale, timings=pt)
        if kind == "image" and page.text_layer:
            # the layer looked plausible: check it against what we read before calling it healthy
            ours = " ".join(c.text for g in grids for c in g.cells) + " ".join(f.text for f in free)
            sim = textlayer.text_similarity(ours, textlayer.layer_text(page.text_layer))
            if sim < 0.8:
                kind, reason = "garbled", f"text layer disagrees with the page image (similarity {sim:.2f})"
    for k, v in pt.items():
        timings[k] = timings.get(k, 0.0) + v
    return PageResult(prepared=prepared, grids=grids, free_lines=free, kind=kind, kind_reason=reason, timings=pt)


def read_file(
    path: Path,
    opts: Options,
    engine: engines.OcrEngine,
    timings: dict[str, float],
    on_page: Callable[[int], None] | None = None,
    deadline: Deadline | None = None,
) -> list[PageResult]:
    """ingest, then every page through preprocess, grid and text (`read_page`)."""
    pages: list[PageResult] = []
    t = time.perf_counter()
    for page in ingest.iter_pages(path, dpi=opts.dpi):
        if deadline:
            deadline.check(path)
        t_render = time.perf_counter() - t
        timings["render"] = timings.get("render", 0.0) + t_render
        pages.append(read_page(page, engine, timings))
        pages[-1].timings["render"] = t_render
        if deadline:
            deadline.check(path)
        t = time.perf_counter()
        if on_page:
            on_page(page.page_no)
    return pages


def build_records(
    pages: list[PageResult], name: str, timings: dict[str, float]
) -> tuple[list[FormRecord], list[list[validate.RuleResult]]]:
    """assemble, normalize, validate: the forms' records before confidence, with each one's failed rules."""
    t = time.perf_counter()
    forms = assemble.split_forms(pages)
    t = _timed(timings, "assemble", t)
    records = [r for r in normalize.build_records(forms, name) if _looks_like_form(r)]
    for i, r in enumerate(records):
        r.form_index = i
    t = _timed(timings, "normalize", t)
    failed = [[r for r in validate.validate(rec) if not r.ok] for rec in records]
    _timed(timings, "validate", t)
    return records, failed


def process_file(
    path: Path,
    opts: Options | None = None,
    engine: engines.OcrEngine | None = None,
    on_page: Callable[[int], None] | None = None,
    deadline: Deadline | None = None,
) -> FileResult:
    """Read every page of one file and build its form records (raises ScanformsError)."""
    opts = opts or Options()
    # made on the first page that needs OCR
    engine = engine or engines.LazyEngine(
        opts.engine, cache_dir=opts.ocr_cache, threads=opts.ocr_threads, batching=opts.rec_batching,
        recognizer=opts.recognizer,
    )
    timings: dict[str, float] = {}
    pages = read_file(path, opts, engine, timings, on_page, deadline)
    records, failed = build_records(pages, path.name, timings)
    if deadline:
        deadline.check(path)
    t = time.perf_counter()
    contexts = {p.page_no: confidence.PageContext.of(p) for p in pages}
    features = [row for r in records for row in confidence.record_evidence(r, contexts)] if opts.features else []
    for r, rules in zip(records, failed, strict=True):
        confidence.score_record(r, contexts, threshold=opts.review_threshold, failed_rules=rules, peers=records)
    _timed(timings, "confidence", t)
    by_page = {p.page_no: p for p in pages}
    sha = ingest.file_sha256(path)
    for rec in records:
        rec.extra_source["sha256"] = sha
        rec.extra_source["page_kinds"] = {str(n): by_page[n].kind for n in rec.pages}
        rec.extra_source["page_kind_reasons"] = {str(n): by_page[n].kind_reason for n in rec.pages}
        rec.extra_source["rotation"] = {str(n): by_page[n].prepared.rotation for n in rec.pages}
        rec.extra_source["skew_deg"] = {str(n): round(by_page[n].prepared.skew_deg, 2) for n in rec.pages}
        rec.extra_source["scan_dpi"] = {str(n): by_page[n].prepared.page.scan_dpi for n in rec.pages}
        notes = [w for n in rec.pages for w in by_page[n].prepared.page.warnings]
        if notes:  # e.g. a page scaled down to the pixel cap: its bboxes are at a lower DPI
            rec.extra_source["warnings"] = notes
    warnings = [
        {"file": str(path), "page": p.page_no, "reason": w} for p in pages for w in p.prepared.page.warnings
    ]
    return FileResult(path=path, records=records, pages=pages, timings=timings, warnings=warnings, features=features)


def _looks_like_form(rec: FormRecord) -> bool:
    """A table is taken for a form only if several of the form's labels were found in it."""
    found = [k for k, v in rec.fields.items() if v.value is not None and k not in ("form_title", "fiscal_year")]
    return len(found) >= 2 or len(rec.indicators) >= 2


def export_file(result: FileResult, out_dir: Path, opts: Options, output_key: str | None = None) -> list[Path]:
    """Records, overlays, and every table on a page that belongs to no form (nothing is dropped).

    Every output is named by `output_key` (a batch's naming.output_keys; alone, the file's own key).
    """
    key = output_key or output_keys([result.path])[result.path]
    for rec in result.records:
        rec.extra_source["output_key"] = key
    written: list[Path] = []
    if result.records:
        written.append(export.write_records(out_dir, key, result.records))
        # always (small JSON): the archive outputs are made from it, now or on a later run or review
        written.append(export.write_layout(out_dir, result.path, key, result.pages))
    if opts.review_queue:
        written += export.write_review_part(out_dir, result.path, key, result.records, result.pages)
    if opts.features:
        written.append(export.write_features(out_dir, result.path, key, result.features))
    in_forms = {n for r in result.records for n in r.pages}
    for p in result.pages:
        if p.page_no not in in_forms:
            written += export.write_tables(out_dir, key, p)
    if opts.overlays:
        for p in result.pages:
            on_page = [v for r in result.records for *_, v, _k, _r in confidence.iter_cells(r) if v.page == p.page_no]
            written.append(export.write_overlay(out_dir, key, p, on_page if p.page_no in in_forms else None))
    if not result.records:
        n_tables = sum(len(p.grids) for p in result.pages)
        what = f"{n_tables} table(s) written under tables/" if n_tables else "no ruled table either"
        raise NoFormFound(result.path, f"no form found ({what})")
    return written


@dataclass
class FileOutcome:
    """What a worker sends back: plain data, cheap to pickle."""

    records: list[dict]
    n_pages: int
    seconds: float
    error: ScanformsError | None = None
    warnings: list[dict] = field(default_factory=list)  # {"file", "page", "reason"} for the run report


def init_worker(threads: int) -> None:
    """Per-process setup for parallel runs: OpenCV threads sized to the share of cores (the OCR
    engine's come from `Options.ocr_threads`).

    N worker processes each using every core would oversubscribe the machine N times over.
    """
    import cv2

    cv2.setNumThreads(max(1, threads))


def run_one(
    path: Path,
    out_dir: Path,
    opts: Options,
    engine: engines.OcrEngine | None = None,
    on_page: Callable[[int], None] | None = None,
    output_key: str | None = None,
    deadline: Deadline | None = None,
) -> FileOutcome:
    """Process and export one file under `output_key`; errors come back as data so the batch goes on."""
    t0 = time.perf_counter()
    result: FileResult | None = None
    try:
        result = process_file(path, opts, engine, on_page=on_page, deadline=deadline)
        apply_decisions(result.records, out_dir)  # a reviewer's corrections outlive re-runs
        key = output_key or output_keys([path])[path]
        export_file(result, out_dir, opts, key)
        write_archive_outputs(out_dir, path, key, opts.pdf, opts.xlsx)  # from the files just written
        return FileOutcome(
            [r.to_json() for r in result.records],
            len(result.pages),
            time.perf_counter() - t0,
            warnings=result.warnings,
        )
    except ScanformsError as e:
        err = e
    except MemoryError as e:
        err = InputFileError(path, "out of memory processing this file")
        err.__cause__ = e
    except Exception as e:  # a bug on one file must not stop a night's batch
        err = ScanformsError(path, f"internal error: {type(e).__name__}: {e}")
        err.__cause__ = e  # the flow retries I/O and memory errors (batch.is_transient)
    warnings = result.warnings if result else []
    return FileOutcome([], len(result.pages) if result else 0, time.perf_counter() - t0, err, warnings)

