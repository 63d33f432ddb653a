"""The cell-crop road's layout (ocr_mode "cells"): lines from a cell's ink, no OCR involved."""

from __future__ import annotations

import cv2
import numpy as np

from pipeline import ocr
from pipeline.types import Cell, Grid


def _cell_page(lines: list[str], specks: bool = False) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A binary page (ink = 255) with one ruled cell holding `lines` of text."""
    page = np.zeros((400, 600), np.uint8)
    x0, y0, x1, y1 = 50, 50, 550, 90 + 45 * len(lines)
    cv2.rectangle(page, (x0, y0), (x1, y1), 255, 2)
    for i, text in enumerate(lines):
        cv2.putText(page, text, (70, 100 + 45 * i), cv2.FONT_HERSHEY_SIMPLEX, 1.0, 255, 2)
    if specks:
        for x, y in ((480, 70), (300, 62), (520, 110)):
            cv2.circle(page, (x, y), 3, 255, -1)
    return page, (x0 + 2, y0 + 2, x1 - 2, y1 - 2)


def test_lines_from_projection() -> None:
    page, bbox = _cell_page(["Budget 2,523,747.00", "executed 65.37%"])
    glyph = 22.0
    mask = ocr._cell_ink(page, bbox, glyph)
    assert mask is not None
    bands, ambiguous = ocr._line_bands(mask, glyph)
    assert not ambiguous
    assert len(bands) == 2
    for band in bands:
        assert band[1] - band[0] <= ocr.TALL_RUN * glyph


def test_rules_and_isolated_specks_are_not_text() -> None:
    page, bbox = _cell_page(["Budget"], specks=True)
    mask = ocr._cell_ink(page, bbox, 22.0)
    assert mask is not None
    bands, _ = ocr._line_bands(mask, 22.0)
    assert len(bands) == 1
    pieces = ocr._line_pieces(mask, bands[0], 22.0)
    assert len(pieces) == 1
    x0, _, x1, _ = pieces[0]
    assert x1 - x0 < 200  # the word only: the specks off to the right were dropped


def test_empty_cell_gives_no_lines() -> None:
    page, bbox = _cell_page([])
    assert ocr._cell_ink(page, bbox, 22.0) is None


def test_cells_mode_reads_each_cell_once() -> None:
    """Without detection: every line crop goes to one recognize call, text lands in its cell."""
    page, bbox = _cell_page(["Budget amount total", "executed by the unit"])  # enough glyphs to size them

    class Fake:
        name = "fake"
        calls: list[int] = []

        def detect(self, image: np.ndarray) -> list[np.ndarray]:
            raise AssertionError("no detection needed for clean single-column lines")

        def recognize(self, crops: list[np.ndarray]) -> list[tuple[str, float, list[float] | None]]:
            self.calls.append(len(crops))
            return [("word", 0.99, None) for _ in crops]

    grey = 255 - page
    g = Grid(row_lines=[50, bbox[3] + 2], col_lines=[50, 550], cells=[Cell(0, 0, 1, 1, bbox)])
    eng = Fake()
    tm: dict[str, float] = {}
    grids, free = ocr.read_page(grey, [g], eng, page, mode="cells", timings=tm)
    assert eng.calls == [2]
    assert grids[0].cells[0].text == "word word"
    assert free == []
    assert tm["n_detect_regions"] == 0
