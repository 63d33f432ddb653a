"""Plain data types passed between the pipeline's stages.

ingest -> PageImage -> preprocess -> PreparedPage -> grid -> Grid (of Cell)
-> ocr -> TextLine -> assemble -> FormPages -> normalize -> FormRecord
-> validate / confidence -> export.

Coordinates are pixels of the page image at the pipeline's DPI, after
orientation and deskew (the image OCR saw), as (x0, y0, x1, y1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

BBox = tuple[int, int, int, int]


@dataclass
class TextLine:
    """One line of text as read by OCR (or taken from a PDF text layer)."""

    text: str
    bbox: BBox
    score: float
    # Per-character scores where the engine gives them (same length as text).
    char_scores: list[float] | None = None
    # the recogniser that read it ("small", "tiny"); "" for text-layer text
    model: str = ""
    # a piece of a line read across a lost rule, cut where the rule was (celltext.cut_line):
    # where its characters end is an estimate
    cut: bool = False


@dataclass
class PageImage:
    """One rendered page of an input file."""

    source: Path
    page_no: int  # 1-based
    image: np.ndarray  # uint8, grey (H, W) or BGR (H, W, 3)
    dpi: int
    # Text layer of a PDF page, if it has one: one TextLine per character, bbox at this DPI.
    text_layer: list[TextLine] | None = None
    # An image covers most of the page (a scan), as opposed to a born-digital page.
    has_page_image: bool = True
    # What ingest had to change to read the page (e.g. scaled down to the pixel cap), for the run report.
    warnings: list[str] = field(default_factory=list)
    # Resolution of the scanned image itself (None: born-digital, 0: unknown); a quality signal.
    scan_dpi: float | None = None
    # A born-digital PDF page's ruling lines from its vector graphics (`vector.VLine`s in pixels of
    # `image`); None where they were not read (images, scanned pages).
    vector_lines: list[Any] | None = None


@dataclass(frozen=True)
class PageScale:
    """How big things are on one page (see `pipeline.measure`), measured once per page."""

    REF_DPI: ClassVar[float] = 200.0  # the resolution the pipeline's pixel constants are tuned at

    unit: float  # pixels of this page per pixel at 200 DPI (1.0 for a 200-DPI render)
    glyph: float  # typical glyph height, px

    def px(self, v: float) -> float:
        """`v` pixels at 200 DPI, in this page's pixels."""
        return v * self.unit


@dataclass
class PreparedPage:
    """A page turned upright and deskewed, with a binary copy for line finding."""

    page: PageImage
    image: np.ndarray  # upright, deskewed grey uint8: what OCR sees
    # same size, ink = 255, background = 0; None on a born-digital page whose grid came from the
    # PDF's own rules (nothing there reads pixels)
    binary: np.ndarray | None
    rotation: int  # clockwise degrees applied to turn the page upright: 0/90/180/270
    skew_deg: float  # skew angle that was removed (degrees, counter-clockwise positive)
    # the page's scale, measured once (from the binary, or a born-digital page's text layer)
    scale: PageScale | None = None
    # a photographed sheet's corners (tl, tr, br, bl) in the page image, mapped by a perspective
    # warp onto the upright rectangle that `image` starts from; None where the page was not warped
    sheet: list[tuple[float, float]] | None = None


@dataclass
class Cell:
    """One (possibly merged) cell of a grid."""

    row: int  # 0-based index of the first lattice row it covers
    col: int  # 0-based index of the first lattice column it covers
    row_span: int
    col_span: int
    bbox: BBox
    text: str = ""
    confidence: float = 0.0
    lines: list[TextLine] = field(default_factory=list)
    # ink inside the cell that no accepted reading accounts for (found by OCR's second look):
    # an empty value from such a cell is unread, not blank
    unread_ink: bool = False
    # looked at and found without ink (no stroke bigger than a speck, no short mark): an empty
    # value from such a cell is blank on the form, not a reading that failed
    blank: bool = False
    # character-sized blobs of ink inside the cell that no read line's box covers: a last
    # character or a wrapped second line lost by detection (the reading is short of the cell)
    ink_out: int = 0
    # how many characters' width of ink the cell's worst line holds beyond what its text needs
    # (ink extent / the page's character pitch - the text's width in characters): +1 where a
    # reading dropped a character that sits inside its line's box; 0 on vector pages
    ink_gap: float = 0.0

    @property
    def row_end(self) -> int:
        return self.row + self.row_span

    @property
    def col_end(self) -> int:
        return self.col + self.col_span


@dataclass
class Grid:
    """A ruled table: lattice line positions and the merged cells on them."""

    row_lines: list[int]  # y of each horizontal rule, top to bottom (R + 1 values)
    col_lines: list[int]  # x of each vertical rule, left to right (C + 1 values)
    cells: list[Cell]

    @property
    def n_rows(self) -> int:
        return len(self.row_lines) - 1

    @property
    def n_cols(self) -> int:
        return len(self.col_lines) - 1

    @property
    def bbox(self) -> BBox:
        return (self.col_lines[0], self.row_lines[0], self.col_lines[-1], self.row_lines[-1])

    def cells_in_row(self, row: int) -> list[Cell]:
        """Cells whose first lattice row is `row`, left to right."""
        return sorted((c for c in self.cells if c.row == row), key=lambda c: c.col)


@dataclass
class PageResult:
    """Everything read off one page: its grids with cell text, and text outside them."""

    prepared: PreparedPage
    grids: list[Grid]
    free_lines: list[TextLine]  # OCR lines outside every grid (titles, notes)
    kind: str = "image"  # page kind: vector / garbled / image
    kind_reason: str = ""
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def page_no(self) -> int:
        return self.prepared.page.page_no


@dataclass
class Value:
    """A normalized value with where it came from: becomes a cell in the output."""

    value: Any
    raw: str
    confidence: float
    page: int | None = None
    bbox: BBox | None = None
    reasons: list[str] = field(default_factory=list)
    reviewed: bool = False  # a person decided this value (pipeline.review)
    needs_review: bool | None = None
    # The form's own label for this value, where one was read (header fields).
    label: str | None = None
    # What the confidence model reads (OCR scores, parse, validation...): not exported.
    evidence: dict[str, float] = field(default_factory=dict)
    # Other readings worth a reviewer's key press: [{"value": ..., "why": "..."}].
    alternatives: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "value": self.value,
            "confidence": round(float(self.confidence), 4),
            "raw": self.raw,
            "page": self.page,
            "bbox": list(self.bbox) if self.bbox else None,
        }
        if self.needs_review is not None:
            out["needs_review"] = self.needs_review
        if self.reasons:
            out["reasons"] = list(self.reasons)
        if self.reviewed:
            out["reviewed"] = True
        return out


@dataclass
class FormRecord:
    """One extracted form: the unit of output."""

    file: str
    form_index: int
    pages: list[int]
    fields: dict[str, Value] = field(default_factory=dict)
    funding: list[dict[str, Value]] = field(default_factory=list)
    indicators: list[dict[str, Value]] = field(default_factory=list)
    extra_source: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": {
                "file": self.file,
                "form_index": self.form_index,
                "pages": self.pages,
                **self.extra_source,
            },
            "fields": {k: v.to_json() for k, v in self.fields.items()},
            "funding": [{k: v.to_json() for k, v in row.items()} for row in self.funding],
            "indicators": [{k: v.to_json() for k, v in row.items()} for row in self.indicators],
        }
