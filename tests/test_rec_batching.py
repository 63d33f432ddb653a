"""Width-bucketed recognition batches (engines.WidthBuckets): no crop is padded past what it
gets alone, so batching changes the input of none (no engine run here: the grouping only)."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline import engines
from pipeline.engines import REC_MIN_W, WidthBuckets
from pipeline.options import Options


def _crop(h: int, w: int) -> np.ndarray:
    return np.full((h, w), 255, np.uint8)


def test_short_crops_share_a_batch_and_wide_ones_keep_their_width() -> None:
    # at 48 px high: 100, 200 and 320 px fit the 320-px minimum; 480 and 960 px do not
    crops = [_crop(48, 960), _crop(48, 100), _crop(24, 240), _crop(48, 200), _crop(48, 480), _crop(48, 320)]
    groups = WidthBuckets().groups(crops)
    b = WidthBuckets()
    padded = [b.padded(c) for c in crops]
    assert padded == [960, REC_MIN_W, 480, REC_MIN_W, 480, REC_MIN_W]
    assert sorted(i for g in groups for i in g) == list(range(len(crops)))
    for g in groups:  # one padded width per batch: each crop padded as when alone
        assert len({padded[i] for i in g}) == 1
    assert {1, 3, 5} in [set(g) for g in groups]
    assert {2, 4} in [set(g) for g in groups]  # same width at 48 px high, though not the same size
    assert [0] in groups


def test_batches_are_capped() -> None:
    groups = WidthBuckets(max_batch=4).groups([_crop(48, 100)] * 10)
    assert [len(g) for g in groups] == [4, 4, 2]


def test_batching_is_an_option_and_a_cache_key() -> None:
    assert Options().rec_batching in engines.REC_BATCHINGS
    assert "rec_batching" in dict(Options().version_items())
    a = engines._engine_key("rapidocr", None, None, "width")
    assert a != engines._engine_key("rapidocr", None, None, "single")
    with pytest.raises(ValueError):
        engines._engine_key("rapidocr", None, None, "widest")
