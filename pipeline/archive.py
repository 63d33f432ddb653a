"""The archive outputs of one file (pdf/<key>.pdf, xlsx/<key>.xlsx, named by the output key), made from its per-file outputs.

Made from `<key>.json` (the records, reviewed corrections included) and
`layout/<key>.json` (pipeline.layout), never from the pages themselves: the same call
serves a file just processed, a file a re-run skips (`--pdf`/`--xlsx` asked for later),
and a review decision (`refresh_after_review`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .export import record_file
from .layout import read_layout


def _records(out_dir: Path, output_key: str) -> list[dict[str, Any]] | None:
    path = record_file(out_dir, output_key)
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def can_write(out_dir: Path, output_key: str) -> bool:
    """Are the per-file outputs the archive outputs are made from there (records and layout)?"""
    return record_file(out_dir, output_key).exists() and read_layout(out_dir, output_key) is not None


def write_outputs(out_dir: Path, input_path: Path, output_key: str, pdf: bool, xlsx: bool) -> list[Path]:
    """The asked-for archive outputs of one input from its per-file outputs ([] if there are none)."""
    if not (pdf or xlsx):
        return []
    records = _records(out_dir, output_key)
    layout = read_layout(out_dir, output_key)
    if records is None or layout is None:
        return []
    written = []
    if pdf:
        from .archive_pdf import write_pdf

        written.append(write_pdf(out_dir, input_path, output_key, layout, records))
    if xlsx:
        from .spreadsheet import write_xlsx

        written.append(write_xlsx(out_dir, output_key, layout, records))
    return written


def refresh_after_review(out_dir: Path, output_key: str) -> list[Path]:
    """A decision changed `<output key>.json`: the archive outputs that exist follow it.

    The PDF is rebuilt from the previous archive PDF (its pages are already upright: only the
    text layer is written again), so neither OCR nor the input file is needed."""
    from .archive_pdf import pdf_file, rewrite_pdf
    from .spreadsheet import write_xlsx, xlsx_file

    records = _records(out_dir, output_key)
    layout = read_layout(out_dir, output_key)
    if records is None or layout is None:
        return []
    written = []
    if pdf_file(out_dir, output_key).exists():
        p = rewrite_pdf(out_dir, output_key, layout, records)
        if p is not None:
            written.append(p)
    if xlsx_file(out_dir, output_key).exists():
        written.append(write_xlsx(out_dir, output_key, layout, records))
    return written
