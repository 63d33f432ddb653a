"""Test-wide settings that must be in place before anything imports Prefect, and the OCR cache's guard.

Prefect reads its settings when imported, so they are set here, at collection:
a throw-away PREFECT_HOME (never the user's ~/.prefect database), no telemetry
(offline machines log name-resolution errors), and no inherited server URL (tests
start their own server where they need one).

OCR in the tests comes from tests/ocr_cache (results by image hash). A miss runs the real engine
(seconds per page, where a hit costs milliseconds) and writes a new entry: the suite would be
slow, and a changed page image would pass unnoticed. So a test during which tests/ocr_cache
gained an entry fails (`ocr_engine`, in-process runs, and CLI runs given SCANFORMS_OCR_CACHE
alike); tests that run on a copy of the cache check the copy with `new_cache_entries`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_PREFECT_HOME = tempfile.mkdtemp(prefix="scanforms-test-prefect-")
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "180"  # first start migrates; CI is slow
os.environ.pop("PREFECT_API_URL", None)
os.environ.pop("PREFECT_PROFILES_PATH", None)

OCR_CACHE = Path(__file__).resolve().parent / "ocr_cache"
REWARM = (
    "the page images changed (or a test reads a new one). If that is intended, keep the new entries "
    "(git add tests/ocr_cache) and regenerate the goldens: python -m tests.goldens regenerate"
)


def cache_entries(cache: Path) -> set[str]:
    return {p.name for p in cache.glob("*/*.json")}


def new_cache_entries(cache: Path, before: set[str] | None = None) -> str | None:
    """Why a run on `cache` (a copy of tests/ocr_cache) missed it, or None if it did not."""
    new = cache_entries(cache) - (cache_entries(OCR_CACHE) if before is None else before)
    if not new:
        return None
    return f"OCR cache miss: {len(new)} new entr{'y' if len(new) == 1 else 'ies'} in {cache}: {REWARM}"


@pytest.fixture(scope="session")
def ocr_engine() -> Any:
    """The tests' OCR engine: the pipeline's default (the cascade, width batches) behind the cache
    in tests/ocr_cache."""
    from pipeline import engines
    from pipeline.options import Options

    o = Options()
    return engines.CachedEngine(engines.make_engine(None, o.rec_batching, o.recognizer), OCR_CACHE)


@pytest.fixture(autouse=True)
def _no_ocr_cache_miss() -> Iterator[None]:
    before = cache_entries(OCR_CACHE)
    yield
    why = new_cache_entries(OCR_CACHE, before)
    if why:
        pytest.fail(why, pytrace=False)


def pytest_sessionfinish(session: object, exitstatus: int) -> None:
    shutil.rmtree(_PREFECT_HOME, ignore_errors=True)
