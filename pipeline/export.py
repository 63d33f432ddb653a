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
from .types import FormRecord, Grid, PageResult, Value


def _file_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_FILE_MODE = _file_mode()


def atomic_write_bytes(path: Path, data: bytes, durable: bool = True) -> None:
    """Write to a temp file in the same folder, then rename: a crash leaves old or new, never half.

    `durable` also flushes the data to disk before the rename (records, queue, manifest); pictures
    made again by any re-run (review crops) skip that: dozens of fsyncs a page cost more than the OCR saves.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise OutputError(path.parent, f"output folder not writable ({e.strerror or e})") from e
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.chmod(tmp, _FILE_MODE)  # mkstemp makes 0600 files: outputs are for the whole team to read
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


def record_file(out_dir: Path, output_key: str) -> Path:
    """`<out>/<output key>.json`: the input's stem unless another input shares it (naming.output_keys)."""
    return out_dir / f"{output_key}.json"


def write_records(out_dir: Path, output_key: str, records: list[FormRecord]) -> Path:
    path = record_file(out_dir, output_key)
    data = [r.to_json() for r in records]
    atomic_write_text(path, json.dumps(data, ensure_ascii=False, indent=1))
    return path


def write_layout(out_dir: Path, input_path: Path, output_key: str, pages: list[PageResult]) -> Path:
    """`layout/<output key>.json`: pages, geometry, cells and free lines as read (pipeline.layout)."""
    from .layout import file_layout, layout_file

    path = layout_file(out_dir, output_key)
    import cv2

    data = file_layout(input_path.name, pages)
    for lp, page in zip(data["pages"], pages, strict=True):
        if "sheet" in lp:  # unwarped: the page as OCR saw it is what the archive PDF shows
            name = f"{output_key}-p{page.page_no}.jpg"
            ok, jpeg = cv2.imencode(".jpg", page.prepared.image, [cv2.IMWRITE_JPEG_QUALITY, 75])
            if ok:
                atomic_write_bytes(path.parent / name, jpeg.tobytes(), durable=False)
                lp["image"] = name
    atomic_write_text(path, json.dumps(data, ensure_ascii=False))
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


def overlay_image(page: PageResult, values: list[Value] | None = None) -> np.ndarray:
    """The deskewed page with the detected grid, each cell tinted by its confidence.

    With `values` (the records' cells on this page) the tint is their calibrated confidence and
    cells sent to review get a red frame; otherwise (tables that are no form) the OCR score.
    """
    import cv2

    img = page.prepared.image
    base = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR) if img.ndim == 2 else img.copy()
    tint = base.copy()
    if values is None:
        for g in page.grids:
            for c in g.cells:
                if c.text:
                    cv2.rectangle(tint, c.bbox[:2], c.bbox[2:], confidence_colour(c.confidence), -1)
    else:
        for v in values:
            if v.bbox:
                cv2.rectangle(tint, v.bbox[:2], v.bbox[2:], confidence_colour(v.confidence), -1)
    out = cv2.addWeighted(tint, 0.28, base, 0.72, 0)
    for g in page.grids:
        for c in g.cells:
            x0, y0, x1, y1 = c.bbox
            cv2.rectangle(out, (x0, y0), (x1, y1), (200, 90, 0), 2)
    for t in page.free_lines:
        x0, y0, x1, y1 = t.bbox
        cv2.rectangle(out, (x0, y0), (x1, y1), (160, 160, 160), 1)
    for v in values or []:
        if v.bbox and v.needs_review:
            cv2.rectangle(out, (v.bbox[0] + 3, v.bbox[1] + 3), (v.bbox[2] - 3, v.bbox[3] - 3), (0, 0, 230), 3)
    return out


def write_overlay(out_dir: Path, output_key: str, page: PageResult, values: list[Value] | None = None) -> Path:
    import cv2

    path = out_dir / "overlays" / f"{output_key}-p{page.page_no}.png"
    ok, buf = cv2.imencode(".png", overlay_image(page, values))
    if not ok:
        raise OutputError(path, "could not encode overlay PNG")
    atomic_write_bytes(path, buf.tobytes(), durable=False)  # a picture any re-run makes again
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


def write_tables(out_dir: Path, output_key: str, page: PageResult) -> list[Path]:
    """`<out>/tables/<output key>-p<page>-t<k>.json` and `.html` for every grid on the page."""
    written = []
    for k, g in enumerate(page.grids, 1):
        base = out_dir / "tables" / f"{output_key}-p{page.page_no}-t{k}"
        atomic_write_text(base.with_suffix(".json"), json.dumps(table_json(g), ensure_ascii=False, indent=1))
        atomic_write_text(base.with_suffix(".html"), table_html(g))
        written += [base.with_suffix(".json"), base.with_suffix(".html")]
    return written


# --- review queue ------------------------------------------------------------------------------

REVIEW_DIR = "review"


def _crop_jpeg(image: np.ndarray, box: tuple[int, int, int, int], mark: tuple[int, int, int, int] | None = None) -> bytes:
    """A crop of the page (clamped to it), with the cell outlined when `mark` is given.

    JPEG, not PNG: a scan's grain defeats PNG's compression, and encoding a hundred row-wide
    PNG crops took longer than OCRing the page (7 ms each against < 1 ms)."""
    import cv2

    h, w = image.shape[:2]
    x0, y0, x1, y1 = max(0, box[0]), max(0, box[1]), min(w, box[2]), min(h, box[3])
    crop = image[y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)]
    crop = cv2.cvtColor(crop, cv2.COLOR_GRAY2BGR) if crop.ndim == 2 else crop.copy()
    if mark is not None:
        cv2.rectangle(crop, (mark[0] - x0, mark[1] - y0), (mark[2] - x0, mark[3] - y0), (0, 0, 220), 2)
    ok, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise OutputError(None, "could not encode a review crop")
    return buf.tobytes()


def review_entries(
    input_path: Path, output_key: str, records: list[FormRecord], page_quality: dict[int, float] | None = None
) -> list[dict[str, Any]]:
    """One queue entry per cell flagged for review (needs_review), in the format the review app reads.

    `page_quality`: each page's median cell score (confidence.PageContext.quality)."""
    from .confidence import iter_cells
    from .review.groups import merge_spanning, row_in_cell

    out = []
    for rec in records:
        sha = str(rec.extra_source.get("sha256", ""))
        for section, row, key, v, _kind, cells in iter_cells(rec):
            if not v.needs_review:
                continue
            rid = "-" if row is None else str(row)
            in_cell = cells is None or not v.bbox or row_in_cell(v.page, v.bbox, [(c.page, c.bbox) for c in cells.values()])
            out.append({
                "id": f"{sha[:12]}:{rec.form_index}:{section}:{rid}:{key}",
                "file": input_path.name,
                "output_key": output_key,  # where the review app finds the file's records: <output_key>.json
                "sha256": sha,
                "form_index": rec.form_index,
                "section": section,
                "row": row,
                "rows": [row],
                "key": key,
                "label": v.label,
                "value": v.value,
                "raw": v.raw,
                "confidence": round(float(v.confidence), 4),
                "reasons": list(v.reasons),
                "alternatives": list(v.alternatives),
                "page": v.page,
                "bbox": list(v.bbox) if v.bbox else None,
                "crop": None,
                "row_crop": None,
                # the crop's own OCR score profile: its least sure character (groups trust a
                # reading every character of which is sure)
                "ocr_min": round(float(v.evidence["ocr_min"]), 4) if "ocr_min" in v.evidence else None,
                "in_cell": in_cell,  # False: the row borrowed this value from a cell it is not in
                # how well the page read as a whole (groups trust a blank only on a page read well)
                "page_quality": round(page_quality[v.page], 4) if page_quality and v.page in page_quality else None,
            })
    # a merged cell (一级/二级指标) is repeated down the rows it spans: one entry, whose
    # decision lands on every row it covers
    return merge_spanning(out)


def review_part_file(out_dir: Path, output_key: str) -> Path:
    return out_dir / REVIEW_DIR / "parts" / f"{output_key}.jsonl"


def write_review_part(
    out_dir: Path, input_path: Path, output_key: str, records: list[FormRecord], pages: list[PageResult]
) -> list[Path]:
    """This file's share of the review queue, `review/parts/<output key>.jsonl`, with crops of each cell and row."""
    from .confidence import PageContext

    quality = {p.page_no: PageContext.of(p).quality for p in pages}
    entries = review_entries(input_path, output_key, records, quality)
    by_page = {p.page_no: p for p in pages}
    base = out_dir / REVIEW_DIR
    written = []
    for e in entries:
        page = by_page.get(e["page"] or 0)
        if page is None or not e["bbox"]:
            continue
        x0, y0, x1, y1 = e["bbox"]
        name = f"{output_key}-f{e['form_index']}-{e['section']}-{e['row'] if e['row'] is not None else 'x'}-{e['key']}"
        img = page.prepared.image
        cell_path = base / "crops" / f"{name}.jpg"
        atomic_write_bytes(cell_path, _crop_jpeg(img, (x0 - 12, y0 - 12, x1 + 12, y1 + 12)), durable=False)
        # the row around it: the table's width (or the page's), the cell's height plus a margin
        grid = next((g for g in page.grids if g.bbox[1] <= y0 <= g.bbox[3]), None)
        gx0, gx1 = (grid.bbox[0], grid.bbox[2]) if grid else (0, img.shape[1])
        row_path = base / "crops" / f"{name}-row.jpg"
        atomic_write_bytes(row_path, _crop_jpeg(img, (gx0 - 8, y0 - 30, gx1 + 8, y1 + 30), (x0, y0, x1, y1)),
                           durable=False)
        e["crop"] = f"crops/{cell_path.name}"
        e["row_crop"] = f"crops/{row_path.name}"
        written += [cell_path, row_path]
    part = review_part_file(out_dir, output_key)
    write_jsonl(part, entries)
    return written + [part]


def combine_review_queue(out_dir: Path, output_keys: Iterable[str] | None = None) -> Path:
    """`review/queue.jsonl`: every file's entries (of `output_keys`, or all parts), least confident first,
    each with its `group` (entries across the folder that read the same, see review.groups)."""
    from .review.groups import assign_groups, merge_spanning

    parts_dir = out_dir / REVIEW_DIR / "parts"
    wanted = set(output_keys) if output_keys is not None else None
    entries: list[dict[str, Any]] = []
    for part in sorted(parts_dir.glob("*.jsonl")) if parts_dir.exists() else []:
        if wanted is not None and part.stem not in wanted:
            continue
        entries += [json.loads(line) for line in part.read_text(encoding="utf-8").splitlines() if line.strip()]
    entries.sort(key=lambda e: (e["confidence"], e["file"], e.get("output_key") or "", e["form_index"], e["section"],
                                e["row"] or 0, e["key"]))
    entries = merge_spanning(entries)
    assign_groups(entries, out_dir / REVIEW_DIR)
    path = out_dir / REVIEW_DIR / "queue.jsonl"
    write_jsonl(path, entries)
    return path


def review_queue_counts(out_dir: Path) -> dict[str, int]:
    """Cells to review (a merged cell counts each row it covers), queue entries, and groups:
    the decisions a reviewer needs."""
    from .review.groups import cells_of

    path = out_dir / REVIEW_DIR / "queue.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    entries = [json.loads(line) for line in lines if line.strip()]
    return {"cells": sum(cells_of(e) for e in entries), "entries": len(entries),
            "groups": len({e.get("group", e["id"]) for e in entries})}


def write_features(out_dir: Path, input_path: Path, output_key: str, rows: list[dict[str, Any]]) -> Path:
    """The confidence model's inputs per cell, `features/<output key>.jsonl`, for `scanforms calibrate`."""
    path = out_dir / "features" / f"{output_key}.jsonl"
    write_jsonl(path, [{"file": input_path.name, **r} for r in rows])
    return path
