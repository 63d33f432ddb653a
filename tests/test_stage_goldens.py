"""The shipped sample scans at the stage boundaries (after ocr; after normalize + validate, before
confidence) against tests/golden/stages/, written by `python -m tests.goldens regenerate`."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import goldens
import pytest


@pytest.mark.parametrize("src", goldens.sample_files(), ids=lambda p: p.name)
def test_stage_outputs_match_golden(src: Path, ocr_engine: Any) -> None:
    path = goldens.golden_path(src)
    assert path.exists(), f"no golden for {src.name}: python -m tests.goldens regenerate"
    got = goldens.dumps(goldens.stage_outputs(src, ocr_engine)) + "\n"
    want = path.read_text(encoding="utf-8")
    if got != want:
        diff = difflib.unified_diff(want.splitlines(), got.splitlines(), "golden", "now", n=1, lineterm="")
        shown = "\n".join(list(diff)[:60])
        pytest.fail(f"{src.name} moved at a stage boundary (if intended: python -m tests.goldens regenerate, "
                    f"and read the diff before committing it):\n{shown}", pytrace=False)


def test_goldens_need_nothing_outside_the_repo() -> None:
    assert goldens.sample_files(), "data/raw holds the sample scans"
    for src in goldens.sample_files():
        assert src.resolve().is_relative_to(goldens.REPO) and goldens.golden_path(src).exists()


def test_a_cache_miss_is_caught(ocr_engine: Any, tmp_path: Path) -> None:
    """What the session's guard (conftest) sees when a run reads an image the cache lacks."""
    import shutil

    import numpy as np
    from conftest import OCR_CACHE, new_cache_entries

    from pipeline import engines

    copy = tmp_path / "cache"
    shutil.copytree(OCR_CACHE, copy)
    cached = engines.CachedEngine(ocr_engine.engine, copy)
    crop = np.full((32, 64), 255, np.uint8)
    crop[10:22, 8:56] = 0  # an image no test page has
    cached.recognize([crop])
    assert cached.misses == 1
    why = new_cache_entries(copy)
    assert why is not None and "OCR cache miss: 1 new entry" in why and "python -m tests.goldens" in why
    cached.recognize([crop])
    assert cached.hits == 1 and new_cache_entries(copy) == why  # a hit adds nothing more
