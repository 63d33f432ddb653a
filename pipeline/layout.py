"""A file's page layout as read: what the archive writers (PDF, xlsx) are made from.

`<out>/layout/<key>.json`, written with every record file, holds per page its
kind, the geometry that turned the rendered page upright and straight (render size,
DPI, rotation, exact skew, deskewed canvas size) and every grid cell and free text
line with its text and bbox (pixels of the deskewed page). With the records and the
input file this is enough to write the archive PDF and the spreadsheet again, after a
review decision or on a re-run that asks for them, without reading the pages again.

Below export and the writers; only the standard library and `types`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .types import PageResult

LAYOUT_DIR = "layout"
LAYOUT_VERSION = 1


def layout_file(out_dir: Path, output_key: str) -> Path:
    return out_dir / LAYOUT_DIR / f"{output_key}.json"


def page_layout(page: PageResult) -> dict[str, Any]:
    """One page as plain JSON (the cell lines' boxes too: the PDF places each read line where it was)."""
    prep = page.prepared
    h0, w0 = prep.page.image.shape[:2]
    h, w = prep.image.shape[:2]
    return {
        "page": page.page_no,
        "kind": page.kind,
        "dpi": prep.page.dpi,
        "render_size": [int(w0), int(h0)],
        "rotation": int(prep.rotation),
        "skew_deg": float(prep.skew_deg),
        "size": [int(w), int(h)],
        "grids": [
            {
                "row_lines": [int(y) for y in g.row_lines],
                "col_lines": [int(x) for x in g.col_lines],
                "cells": [
                    {
                        "row": c.row,
                        "col": c.col,
                        "row_span": c.row_span,
                        "col_span": c.col_span,
                        "bbox": [int(v) for v in c.bbox],
                        "text": c.text,
                        "lines": [{"text": t.text, "bbox": [int(v) for v in t.bbox]} for t in c.lines],
                    }
                    for c in sorted(g.cells, key=lambda c: (c.row, c.col))
                ],
            }
            for g in page.grids
        ],
        "free_lines": [{"text": t.text, "bbox": [int(v) for v in t.bbox]} for t in page.free_lines],
        # a photographed sheet: its corners in the render; the archive PDF shows the unwarped page
        # (`image`, set by export.write_layout), as no cm can undo a perspective
        **({"sheet": [[float(x), float(y)] for x, y in prep.sheet]} if prep.sheet is not None else {}),
    }


def file_layout(input_name: str, pages: list[PageResult]) -> dict[str, Any]:
    return {"version": LAYOUT_VERSION, "file": input_name, "pages": [page_layout(p) for p in pages]}


def read_layout(out_dir: Path, output_key: str) -> dict[str, Any] | None:
    path = layout_file(out_dir, output_key)
    if not path.exists():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if data.get("version") == LAYOUT_VERSION else None


def iter_record_cells(rec: dict[str, Any]) -> Iterator[tuple[str, int | None, str, dict[str, Any]]]:
    """(section, row or None, key, cell) for every cell of a record in its JSON form."""
    for key, c in (rec.get("fields") or {}).items():
        if isinstance(c, dict):
            yield "fields", None, key, c
    for section in ("funding", "indicators"):
        for i, row in enumerate(rec.get(section) or []):
            for key, c in row.items():
                if isinstance(c, dict):
                    yield section, i, key, c


def value_text(cell: dict[str, Any]) -> str:
    """A record cell's final value as text: as printed (`raw`) where the value is what was read,
    else the value itself (a reviewer's correction, a repaired number); "" for no value."""
    value = cell.get("value")
    if value is None:
        return ""
    raw = str(cell.get("raw") or "")
    if not cell.get("reviewed") and raw and _agrees(value, raw):
        return raw
    return display_value(value)


def display_value(value: Any) -> str:
    if value is True:
        return "是"
    if value is False:
        return "否"
    if isinstance(value, float) and value.is_integer():
        return f"{value:.2f}" if abs(value) >= 1000 else str(int(value))
    return str(value)


def _agrees(value: Any, raw: str) -> bool:
    """Does `raw` print `value`? (numbers: one of the numbers in raw, commas and spaces inside dropped)."""
    import re

    if isinstance(value, bool):
        return raw.strip() in (("是", "√", "✓", "Y", "y") if value else ("否", "×", "N", "n"))
    if isinstance(value, (int, float)):
        flat = re.sub(r"(?<=\d)[,\s](?=\d)", "", raw)
        return any(abs(float(n) - float(value)) < 1e-6 for n in re.findall(r"\d+(?:\.\d+)?", flat))
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        from .values import parse_value

        return parse_value("date", raw)[0] == value  # 2023年4月1日 prints 2023-04-01
    return str(value) in raw
