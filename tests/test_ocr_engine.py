"""The RapidOCR adapter's recognition: every crop is read as it would be alone.

Runs the real engine (no cache): what is checked is the adapter's own setting. At
RapidOCR's batching a crop is padded to the widest crop of its batch, so its reading
depends on what else is on the page (and the padding costs time).
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from pipeline import engines, grid, ingest, ocr, preprocess
from pipeline.engines import RapidOcrEngine

pytestmark = pytest.mark.slow  # the real engine, no cache (≈ 25 s)

REPO = Path(__file__).resolve().parents[1]
SCAN = REPO / "data" / "raw" / "d025.pdf"  # a clean scan we ship


@pytest.fixture(scope="module")
def engine() -> RapidOcrEngine:
    return RapidOcrEngine()


@pytest.fixture(scope="module")
def crops(engine: RapidOcrEngine) -> list[np.ndarray]:
    page = next(ingest.iter_pages(SCAN))
    prepared = preprocess.prepare(page, engine)
    img = prepared.image
    boxes = ocr.detect_lines(img, engine)
    return [ocr._margin(img[y0:y1, x0:x1]) for x0, y0, x1, y1 in boxes[:60]]


def test_crops_read_as_alone(engine: RapidOcrEngine, crops: list[np.ndarray]) -> None:
    widths = [c.shape[1] / c.shape[0] for c in crops]
    assert max(widths) > 3 * min(widths), "the crops should mix short values and long lines"
    together = engine.recognize(crops)
    alone = [engine.recognize([c])[0] for c in crops]
    assert [t[:2] for t in together] == [a[:2] for a in alone]
    assert sum(bool(t[0]) for t in together) >= 0.9 * len(crops)


def test_width_batches_read_as_alone(crops: list[np.ndarray]) -> None:
    width = RapidOcrEngine(batching="width")
    assert width.rec_setup != RapidOcrEngine().rec_setup
    # the small model's readings carry their runner-ups: how many is in the key
    assert f"alts{engines.CANDIDATES}" in width.rec_setup
    alone = [width.recognize([c])[0] for c in crops]
    together = width.recognize(crops)
    assert [t[0] for t in together] == [a[0] for a in alone]
    assert all(abs(t[1] - a[1]) < 1e-3 for t, a in zip(together, alone, strict=True))


def test_scores_per_character(engine: RapidOcrEngine, crops: list[np.ndarray]) -> None:
    for text, score, chars, *_ in engine.recognize(crops[:20]):
        if text:
            assert chars is not None and len(chars) == len(text)
            assert 0.0 < score <= 1.0


def test_cache_key_follows_recognition_setup(engine: RapidOcrEngine, tmp_path: Path) -> None:
    crop = [np.full((40, 100), 255, np.uint8)]
    cached = engines.CachedEngine(engine, tmp_path)
    cached.recognize(crop)
    assert (cached.hits, cached.misses) == (0, 1)
    cached.recognize(crop)
    assert (cached.hits, cached.misses) == (1, 1)
    setup = engine.rec_setup
    engine.rec_setup = "other"
    try:
        cached.recognize(crop)
        assert cached.misses == 2  # a changed setup reads again instead of taking old results
    finally:
        engine.rec_setup = setup  # the module-scoped engine is shared


@pytest.fixture(scope="module")
def tiny() -> RapidOcrEngine:
    return RapidOcrEngine(model="tiny")


def test_the_tiny_recogniser_ships_in_a_wheel(tiny: RapidOcrEngine) -> None:
    model, keys = engines.tiny_rec_files()
    assert model.stat().st_size < 8_000_000 and keys.read_text(encoding="utf-8").count("\n") > 6000
    assert tiny.name != RapidOcrEngine().name  # its own cache entries


def test_the_cascade_keeps_only_what_the_tiny_model_is_sure_of(
    engine: RapidOcrEngine, tiny: RapidOcrEngine, crops: list[np.ndarray]
) -> None:
    blank = np.full((40, 120), 255, np.uint8)  # nothing to read: the small model has the last word
    cascade = engines.CascadeEngine(tiny, engine)
    got = cascade.recognize([*crops, blank])
    small = engine.recognize([*crops, blank])
    kept = [i for i, r in enumerate(got) if r.model == "tiny"]
    assert 0.2 * len(crops) < len(kept) < len(crops)  # both tiers read some of a real page
    assert got[-1].model == "small"
    wide = [i for i, c in enumerate(crops) if engines.WidthBuckets().padded(c) >= engines.CASCADE_MAX_W]
    assert wide and all(got[i].model == "small" for i in wide)  # long lines: the small model alone
    assert (cascade.n_first, cascade.n_second) == (len(kept), len(got) - len(kept))
    for i, r in enumerate(got):
        if r.model == "tiny":
            assert r.text.strip() and min(r.char_scores or [r.score]) >= engines.CASCADE_MIN_CHAR
        else:
            assert r == small[i]  # read again by the small model, exactly as it reads alone
    same = sum(got[i].text.replace(" ", "") == small[i].text.replace(" ", "") for i in kept)
    assert same >= 0.9 * len(kept), "the tiny model's sure readings mostly agree with the small model's"


def test_a_cascade_that_trusts_nothing_is_the_small_model(
    engine: RapidOcrEngine, tiny: RapidOcrEngine, crops: list[np.ndarray]
) -> None:
    strict = engines.CascadeEngine(tiny, engine, min_char=1.01)
    assert strict.recognize(crops[:10]) == engine.recognize(crops[:10])
    assert strict.rec_setup != engines.CascadeEngine(tiny, engine).rec_setup  # the threshold is in the key


def test_each_effort_goes_to_its_tier_and_has_its_own_cache_entry(
    engine: RapidOcrEngine, tiny: RapidOcrEngine, crops: list[np.ndarray], tmp_path: Path
) -> None:
    cascade = engines.CascadeEngine(tiny, engine)
    wide = [c for c in crops if engines.WidthBuckets().padded(c) >= engines.CASCADE_MAX_W][:2]
    some = [*crops[:4], *wide]
    assert all(r.model == "tiny" for r in cascade.recognize(some, effort="quick"))  # wide ones too
    assert all(r.model == "small" for r in cascade.recognize(some, effort="careful"))
    cached = engines.CachedEngine(cascade, tmp_path)
    for effort in engines.EFFORTS:
        cached.recognize(some, effort=effort)
    assert (cached.hits, cached.misses) == (0, 4)  # four setups, four entries
    quick = cached.recognize(some, effort="quick")
    assert cached.hits == 1 and all(r.model == "tiny" for r in quick)
    # candidates: the small model's careful reading, with runner-ups for every character,
    # kept through the cache
    careful = cascade.recognize(some, effort="careful")
    both = (cascade.recognize(some, effort="candidates"), cached.recognize(some, effort="candidates"))
    assert [r.tail for r in both[0]] == [r.tail for r in both[1]]  # the mark seen after the text, too
    for fresh in both:
        assert [r.text for r in fresh] == [r.text for r in careful]
        assert all(r.alts is not None and len(r.alts) == len(r.text) for r in fresh)
        assert all(all(p <= s for _ch, p in a) for r in fresh for a, s in zip(r.alts, r.char_scores, strict=True))
    # the small model's every reading carries them (the second look takes them from the first
    # reading); the tiny model's never
    assert [(r.alts, r.tail) for r in careful] == [(r.alts, r.tail) for r in both[0]]
    normal = cascade.recognize(some)
    assert all((r.alts is None) == (r.model == "tiny") for r in normal)
    assert all(r.alts is None for r in quick)


def test_the_second_look_takes_runner_ups_from_the_first_reading(engine: RapidOcrEngine) -> None:
    """A line the small model read is not read again for its runner-ups: the page reads the same,
    with fewer crops."""
    page = next(ingest.iter_pages(REPO / "data" / "raw" / "d030.pdf"))  # a heavy scan: doubtful lines
    prepared = preprocess.prepare(page, engine)
    grids = grid.find_grids(prepared.binary, prepared.scale)

    class Counting:
        def __init__(self) -> None:
            self.name, self.crops = engine.name, {e: 0 for e in engines.EFFORTS}

        def detect(self, image: np.ndarray) -> list[engines.Quad]:
            return engine.detect(image)

        def recognize(self, crops: list[np.ndarray], effort: engines.Effort = "normal") -> list[engines.Reading]:
            self.crops[effort] += len(crops)
            return engine.recognize(crops, effort=effort)

    texts, counts = [], []
    try:
        for keep in (False, True):
            engine.runner_ups = keep
            counting = Counting()
            got, _free = ocr.read_page(prepared.image, copy.deepcopy(grids), counting, prepared.binary, prepared.scale)
            texts.append([c.text for g in got for c in g.cells])
            counts.append(counting.crops)
    finally:
        engine.runner_ups = True
    assert texts[0] == texts[1]
    assert counts[0]["candidates"] > 0 and counts[1]["candidates"] < counts[0]["candidates"]
    assert counts[0]["normal"] == counts[1]["normal"]
