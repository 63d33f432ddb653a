"""One frozen Options from the command line to the stages; the pipeline version follows its fields."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pipeline import cli, options
from pipeline.options import Options

PIPELINE = Path(__file__).resolve().parents[1] / "pipeline"


def _run_args(*argv: str) -> Options:
    return options.from_args(cli.build_parser().parse_args(["run", *argv]))


def test_options_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Options().dpi = 300  # type: ignore[misc]


def test_every_flag_reaches_its_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SCANFORMS_OCR_CACHE", raising=False)
    assert _run_args() == Options()
    got = _run_args("--dpi", "300", "--overlays", "--review-threshold", "0.5", "--features", "--pdf", "--xlsx",
                    "--ocr-cache", str(tmp_path), "--ocr-threads", "3", "--rec-batching", "single",
                    "--recognizer", "small")
    assert got == Options(dpi=300, overlays=True, review_threshold=0.5, features=True, pdf=True, xlsx=True,
                          ocr_cache=tmp_path, ocr_threads=3, rec_batching="single", recognizer="small")
    flagged = {f.name for f in dataclasses.fields(Options) if f.metadata["flag"]}
    assert {n for n in flagged if getattr(got, n) == getattr(Options(), n)} == set()  # none left at its default


def test_ocr_cache_env_is_only_the_cli_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCANFORMS_OCR_CACHE", str(tmp_path))
    assert _run_args().ocr_cache == tmp_path
    assert _run_args("--ocr-cache", str(tmp_path / "x")).ocr_cache == tmp_path / "x"
    # no stage reads an option from the environment: only the CLI knows these names
    readers = sorted(p.name for p in PIPELINE.rglob("*.py") if "SCANFORMS_OCR" in p.read_text(encoding="utf-8"))
    assert readers == ["cli.py"]


def test_pipeline_version_lists_the_output_options_only(tmp_path: Path) -> None:
    base = options.pipeline_version(Options())
    reading, archive = base.split(options.ARCHIVE_SEP)
    for f in dataclasses.fields(Options):
        assert (f"; {f.name} " in reading) == (f.metadata["version"] and not f.metadata["archive"]), f.name
        assert (f"{f.name} " in f" {archive}") == f.metadata["archive"], f.name
    changed = {"dpi": 300, "overlays": True, "review_threshold": 0.9, "features": True, "pdf": True, "xlsx": True}
    for name, value in changed.items():
        assert options.pipeline_version(dataclasses.replace(Options(), **{name: value})) != base, name
    # asking for archive outputs changes what is derived from the outputs, not what is read
    pdf = options.pipeline_version(Options(pdf=True))
    assert options.reading_version(pdf) == options.reading_version(base)
    same = Options(ocr_cache=tmp_path, ocr_threads=1)  # how fast a file is read, not what is read
    assert options.pipeline_version(same) == base


def test_model_files_cover_the_loaders() -> None:
    names = {p.name for p in options.model_files()}
    assert {"schema.yaml", "indicator_terms.yaml", "domain_words.txt", "calibration.json", "meta.json"} <= names
    assert {"PP-OCRv6_det_small.onnx", "PP-OCRv6_rec_small.onnx"} <= names  # the engine's models, from its wheel
