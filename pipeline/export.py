"""Export: records to JSON files (atomically), and overlay pictures of what was read."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .errors import OutputError
from .types import FormRecord, Grid, PageResult


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, then rename: a crash leaves old or new, never half."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise OutputError(path.parent, f"output folder not writable ({e.strerror or e})") from e
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):  # disk full, target is a folder, ...: the old file is untouched
            raise OutputError(path, f"cannot write ({e.strerror or e})") from e
        raise


def ensure_writable_dir(path: Path) -> None:
    """Create the output folder and prove a file can be written there (raises OSError), before any work.

    Checked by writing, not by permission bits: those say nothing for root or on read-only mounts.
    """
    path.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".scanforms-probe.", suffix=".tmp", dir=path)
    os.close(fd)
    os.unlink(tmp)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def record_file(out_dir: Path, input_path: Path) -> Path:
    """`<out>/<input name>.json` (the name keeps its suffix: a.pdf -> a.pdf.json would be ugly)."""
    return out_dir / f"{input_path.stem}.json"


def write_records(out_dir: Path, input_path: Path, records: list[FormRecord]) -> Path:
    path = record_file(out_dir, input_path)
    data = [r.to_json() for r in records]
    atomic_write_text(path, json.dumps(data, ensure_ascii=False, indent=1))
    return path


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> None:
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))


def confidence_colour(conf: float) -> tuple[int, int, int]:
    """BGR: red below 0.5, through amber, to green at 1.0."""
    c = float(min(1.0, max(0.0, conf)))
    if c < 0.5:
        return (0, 0, 220)
    t = (c - 0.5) / 0.5
    return (0, int(80 + 140 * t), int(220 * (1 - t)))


def overlay_image(page: PageResult) -> np.ndarray:
    """The deskewed page with the detected grid, each cell tinted by its OCR confidence."""
    import cv2

    img = page.prepared.image
    base = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR) if img.ndim == 2 else img.copy()
    tint = base.copy()
    for g in page.grids:
        for c in g.cells:
            x0, y0, x1, y1 = c.bbox
            if c.text:
                cv2.rectangle(tint, (x0, y0), (x1, y1), confidence_colour(c.confidence), -1)
    out = cv2.addWeighted(tint, 0.28, base, 0.72, 0)
    for g in page.grids:
        for c in g.cells:
            x0, y0, x1, y1 = c.bbox
            cv2.rectangle(out, (x0, y0), (x1, y1), (200, 90, 0), 2)
    for t in page.free_lines:
        x0, y0, x1, y1 = t.bbox
        cv2.rectangle(out, (x0, y0), (x1, y1), (160, 160, 160), 1)
    return out


def write_overlay(out_dir: Path, input_path: Path, page: PageResult) -> Path:
    import cv2

    path = out_dir / "overlays" / f"{input_path.stem}-p{page.page_no}.png"
    ok, buf = cv2.imencode(".png", overlay_image(page))
    if not ok:
        raise OutputError(path, "could not encode overlay PNG")
    atomic_write_bytes(path, buf.tobytes())
    return path


def table_json(grid: Grid) -> dict[str, Any]:
    """A reconstructed table, 0-based row/col, for tables that are not (recognized) forms."""
    return {
        "rows": grid.n_rows,
        "cols": grid.n_cols,
        "cells": [
            {
                "row": c.row,
                "col": c.col,
                "row_span": c.row_span,
                "col_span": c.col_span,
                "text": c.text,
                "confidence": round(float(c.confidence), 4),
                "bbox": list(c.bbox),
            }
            for c in sorted(grid.cells, key=lambda c: (c.row, c.col))
        ],
    }


def table_html(grid: Grid) -> str:
    """The table as HTML with rowspan/colspan, for a person to open in a browser."""
    from html import escape

    rows = []
    for r in range(grid.n_rows):
        tds = []
        for c in grid.cells_in_row(r):
            span = ""
            if c.row_span > 1:
                span += f' rowspan="{c.row_span}"'
            if c.col_span > 1:
                span += f' colspan="{c.col_span}"'
            title = f' title="confidence {c.confidence:.2f}"'
            tds.append(f"<td{span}{title}>{escape(c.text).replace(chr(10), '<br>')}</td>")
        rows.append("<tr>" + "".join(tds) + "</tr>")
    return (
        '<!doctype html><meta charset="utf-8"><style>table{border-collapse:collapse}'
        "td{border:1px solid #444;padding:2px 6px;vertical-align:top}</style>\n<table>\n"
        + "\n".join(rows)
        + "\n</table>\n"
    )


def write_tables(out_dir: Path, input_path: Path, page: PageResult) -> list[Path]:
    """`<out>/tables/<input>-p<page>-t<k>.json` and `.html` for every grid on the page."""
    written = []
    for k, g in enumerate(page.grids, 1):
        base = out_dir / "tables" / f"{input_path.stem}-p{page.page_no}-t{k}"
        atomic_write_text(base.with_suffix(".json"), json.dumps(table_json(g), ensure_ascii=False, indent=1))
        atomic_write_text(base.with_suffix(".html"), table_html(g))
        written += [base.with_suffix(".json"), base.with_suffix(".html")]
    return written
