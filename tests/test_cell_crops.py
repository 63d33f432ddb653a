"""Lines of a cell from its own ink (pipeline.inklines): no OCR involved."""

from __future__ import annotations

import cv2
import numpy as np

from pipeline import inklines


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
    mask = inklines.cell_ink(page, bbox, glyph)
    assert mask is not None
    bands, ambiguous = inklines.line_bands(mask, glyph)
    assert not ambiguous
    assert len(bands) == 2
    for band in bands:
        assert band[1] - band[0] <= inklines.TALL_RUN * glyph


def test_rules_and_isolated_specks_are_not_text() -> None:
    page, bbox = _cell_page(["Budget"], specks=True)
    mask = inklines.cell_ink(page, bbox, 22.0)
    assert mask is not None
    bands, _ = inklines.line_bands(mask, 22.0)
    assert len(bands) == 1
    pieces = inklines.line_pieces(mask, bands[0], 22.0)
    assert len(pieces) == 1
    x0, _, x1, _ = pieces[0]
    assert x1 - x0 < 200  # the word only: the specks off to the right were dropped


def test_empty_cell_gives_no_lines() -> None:
    page, bbox = _cell_page([])
    assert inklines.cell_ink(page, bbox, 22.0) is None


def test_ink_lines_in_page_pixels() -> None:
    page, bbox = _cell_page(["Budget 2,523,747.00", "executed 65.37%"])
    boxes = inklines.ink_lines(page, bbox, 22.0)
    assert boxes is not None and len(boxes) >= 2
    ys = sorted({(b[1] + b[3]) // 2 for b in boxes})
    assert ys[0] < 100 < ys[-1]  # first line's baseline at y 100, the second at 145
    for x0, y0, x1, y1 in boxes:
        assert bbox[0] <= x0 < x1 <= bbox[2] and bbox[1] <= y0 < y1 <= bbox[3]
        assert page[y0:y1, x0:x1].any()
    assert inklines.ink_lines(*_cell_page([]), 22.0) == []
