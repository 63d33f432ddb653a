"""The spreadsheet: `<out>/xlsx/<key>.xlsx`, each form laid out as the form's grid (openpyxl).

One sheet per form: the grids of the form's pages one under the other, cells merged as
on the paper, column widths and row heights from the rulings, labels as printed; a cell
holding one record value carries the typed value (number, date, text); a cell under the
review threshold (`needs_review`) is filled amber with its confidence in a comment.
A last sheet, `indicators`, holds the flat indicator rows of every form (as indicators.csv).
"""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path
from typing import Any

from .layout import iter_record_cells, value_text

XLSX_DIR = "xlsx"
WARN_FILL = "FFD966"  # amber: cells to review
PX_PER_CHAR = 7.0  # Excel column width unit: about 7 px of the default font at 96 DPI


def xlsx_file(out_dir: Path, output_key: str) -> Path:
    return out_dir / XLSX_DIR / f"{output_key}.xlsx"


def _centre_in(bbox: list[int], cell: list[int]) -> bool:
    cx, cy = (bbox[0] + bbox[2]) / 2.0, (bbox[1] + bbox[3]) / 2.0
    return cell[0] <= cx <= cell[2] and cell[1] <= cy <= cell[3]


def _typed(value: Any) -> Any:
    """A record value as a spreadsheet value: numbers stay numbers, ISO dates become dates."""
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, str) and len(value) == 10 and value[4] == "-" and value[7] == "-":
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            return value
    return value


def grid_cells(lp: dict[str, Any], rec: dict[str, Any]) -> list[dict[str, Any]]:
    """The cells of one page's grids with what the sheet shows: value (typed where the cell holds
    exactly one record value), the record cells in it, row/col offsets for stacking."""
    mine = [(k, c) for _s, _r, k, c in iter_record_cells(rec) if c.get("page") == lp["page"] and c.get("bbox")]
    out = []
    for gi, g in enumerate(sorted(lp["grids"], key=lambda g: g["row_lines"][0])):
        for cell in g["cells"]:
            # one entry per key: a merged 一级指标 repeats its value down its rows
            uniq = {k: c for k, c in mine if _centre_in(c["bbox"], cell["bbox"])}
            value: Any = cell["text"] or None
            if len(uniq) == 1:
                (c,) = uniq.values()
                # one value: typed (a cell holding two, 投入与管理 (36分), keeps its printed text)
                value = _typed(c.get("value")) if c.get("value") is not None else (cell["text"] or None)
            elif len(uniq) > 1 and any(c.get("reviewed") for c in uniq.values()):
                value = " ".join(value_text(c) for c in uniq.values())
            out.append({"grid": gi, **cell, "value": value, "record_cells": list(uniq.values())})
    return out


def _sheet_title(rec: dict[str, Any], used: set[str]) -> str:
    name = ((rec.get("fields") or {}).get("project_name") or {}).get("value") or ""
    base = f"{rec['source']['form_index'] + 1} {name}".strip()
    for bad in "[]:*?/\\":
        base = base.replace(bad, " ")
    base = base[:28] or "form"
    title, n = base, 2
    while title in used:
        title, n = f"{base[:26]}-{n}", n + 1
    used.add(title)
    return title


def build_workbook(layout: dict[str, Any], records: list[dict[str, Any]]) -> bytes:
    from openpyxl import Workbook
    from openpyxl.comments import Comment
    from openpyxl.styles import Alignment, Border, NamedStyle, PatternFill, Side
    from openpyxl.utils import get_column_letter

    wb = Workbook()
    wb.remove(wb.active)
    pages = {p["page"]: p for p in layout["pages"]}
    thin = Side(style="thin", color="444444")
    border = Border(left=thin, right=thin, top=thin, bottom=thin)
    # named styles: assigning a Border/Alignment object per cell hashes it each time (half the
    # workbook's time on a born-digital file's 900 cells)
    wb.add_named_style(NamedStyle("form_cell", border=border, alignment=Alignment(wrap_text=True, vertical="center")))
    wb.add_named_style(NamedStyle("form_date", border=border, alignment=Alignment(wrap_text=True, vertical="center"),
                                  number_format="yyyy-mm-dd"))
    wb.add_named_style(NamedStyle("form_money", border=border, alignment=Alignment(wrap_text=True, vertical="center"),
                                  number_format="#,##0.00"))
    warn = PatternFill("solid", fgColor=WARN_FILL)
    used: set[str] = set()
    for rec in records:
        ws = wb.create_sheet(_sheet_title(rec, used))
        top = 1
        title = ((rec.get("fields") or {}).get("form_title") or {}).get("value")
        if title:
            ws.cell(row=1, column=1, value=title)
            top = 3
        widths: dict[int, float] = {}
        for page_no in rec["source"].get("pages") or []:
            lp = pages.get(page_no)
            if lp is None:
                continue
            px_per_pt = lp["dpi"] / 72.0
            grids = sorted(lp["grids"], key=lambda g: g["row_lines"][0])
            cells = grid_cells(lp, rec)
            for gi, g in enumerate(grids):
                for j in range(len(g["col_lines"]) - 1):  # the widest the column is in any grid
                    px = (g["col_lines"][j + 1] - g["col_lines"][j]) * 96.0 / lp["dpi"]
                    widths[j + 1] = max(widths.get(j + 1, 0.0), px / PX_PER_CHAR)
                for i in range(len(g["row_lines"]) - 1):
                    ws.row_dimensions[top + i].height = (g["row_lines"][i + 1] - g["row_lines"][i]) / px_per_pt
                for c in (c for c in cells if c["grid"] == gi):
                    r0, c0 = top + c["row"], 1 + c["col"]
                    r1, c1 = r0 + c["row_span"] - 1, c0 + c["col_span"] - 1
                    xc = ws.cell(row=r0, column=c0, value=c["value"])
                    # a merge draws the top-left cell's border round the whole range
                    v = c["value"]
                    money = isinstance(v, float) and (abs(v) >= 1000 or not v.is_integer())
                    xc.style = "form_date" if isinstance(v, dt.date) else "form_money" if money else "form_cell"
                    if r1 > r0 or c1 > c0:
                        ws.merge_cells(start_row=r0, start_column=c0, end_row=r1, end_column=c1)
                    doubtful = [rc for rc in c["record_cells"] if rc.get("needs_review")]
                    if doubtful:
                        xc.fill = warn
                        conf = min(float(rc.get("confidence") or 0.0) for rc in doubtful)
                        xc.comment = Comment(f"confidence {conf:.3f}: to review", "scanforms")
                top += len(g["row_lines"]) - 1 + 1  # a blank row between tables
        for j, w in widths.items():
            ws.column_dimensions[get_column_letter(j)].width = round(w, 1)
        # printed like the paper form: one page wide
        ws.sheet_properties.pageSetUpPr.fitToPage = True
        ws.page_setup.fitToWidth, ws.page_setup.fitToHeight = 1, 0
    _indicator_sheet(wb, records)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _indicator_sheet(wb: Any, records: list[dict[str, Any]]) -> None:
    """The flat indicator rows (the columns of indicators.csv), built here: pandas for a few rows
    cost more than the whole workbook (its import, and NA values openpyxl cannot write)."""
    ws = wb.create_sheet("indicators")
    head = ["file", "form_index", "project_name", "indicator_index"]
    keys: list[str] = []
    rows: list[dict[str, Any]] = []
    for r in records:
        name = ((r.get("fields") or {}).get("project_name") or {}).get("value")
        for i, ind in enumerate(r.get("indicators") or []):
            row: dict[str, Any] = {"file": r["source"]["file"], "form_index": r["source"]["form_index"],
                                   "project_name": name, "indicator_index": i}
            for key, cell in ind.items():
                cell = cell if isinstance(cell, dict) else {"value": cell}
                for k, v in ((key, _typed(cell.get("value"))), (f"{key}_confidence", cell.get("confidence"))):
                    if k not in keys:
                        keys.append(k)
                    row[k] = v
            rows.append(row)
    ws.append(head + keys)
    for row in rows:
        ws.append([row.get(k) for k in head + keys])


def write_xlsx(out_dir: Path, output_key: str, layout: dict[str, Any], records: list[dict[str, Any]]) -> Path:
    from .export import atomic_write_bytes

    path = xlsx_file(out_dir, output_key)
    atomic_write_bytes(path, build_workbook(layout, records))
    return path
