"""Tables for analysts: records and indicators as pandas frames, written as parquet and CSV.

records.parquet    one row per form: source columns, then each field as `<key>` and `<key>_confidence`
indicators.parquet one row per indicator, with its form's file / output_key / form_index / project_name

`file` is the input's name; `output_key` tells apart two inputs of the same name (naming.output_keys).

Columns holding mixed types (a number on most forms, a string where the typing
failed) are written as strings: parquet needs one type per column.
"""

from __future__ import annotations

import io
from numbers import Number
from pathlib import Path
from typing import Any

from . import export

SOURCE_COLUMNS = ("file", "output_key", "form_index", "pages", "sha256")


def _flatten(cells: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for key, cell in cells.items():
        cell = cell if isinstance(cell, dict) else {"value": cell}
        row[key] = cell.get("value")
        row[f"{key}_confidence"] = cell.get("confidence")
    return row


def _source(rec: dict[str, Any]) -> dict[str, Any]:
    src = rec["source"]
    return {
        "file": src["file"],
        "output_key": src.get("output_key"),
        "form_index": src["form_index"],
        "pages": ",".join(str(p) for p in src.get("pages", [])),
        "sha256": src.get("sha256"),
    }


def records_frame(records: list[dict[str, Any]]):  # -> pd.DataFrame (pandas imported lazily)
    rows = [_source(r) | _flatten(r.get("fields", {})) for r in records]
    return _frame(rows, SOURCE_COLUMNS)


def indicators_frame(records: list[dict[str, Any]]):  # -> pd.DataFrame
    rows = []
    for r in records:
        name = (r.get("fields", {}).get("project_name") or {}).get("value")
        src = r["source"]
        head = {"file": src["file"], "output_key": src.get("output_key"), "form_index": src["form_index"],
                "project_name": name}
        for i, ind in enumerate(r.get("indicators", [])):
            rows.append(head | {"indicator_index": i} | _flatten(ind))
    return _frame(rows, ("file", "output_key", "form_index", "project_name", "indicator_index"))


def _frame(rows: list[dict[str, Any]], first: tuple[str, ...]):
    import pandas as pd

    columns = list(first)
    for row in rows:  # columns in first-seen order: records are sorted, so this is stable
        columns += [k for k in row if k not in columns]
    df = pd.DataFrame(rows, columns=columns, dtype=object)  # keep Python types: ints stay ints
    for col in df.columns:
        df[col] = _uniform(df[col])
    return df


def _uniform(s):  # pd.Series -> pd.Series with one parquet type
    import pandas as pd

    vals = [v for v in s if v is not None and not (isinstance(v, float) and v != v)]
    if not vals:
        return s.astype("object")
    if all(isinstance(v, bool) for v in vals):
        return s.astype("boolean")
    if all(isinstance(v, int) and not isinstance(v, bool) for v in vals):
        return s.astype("Int64")
    if all(isinstance(v, Number) and not isinstance(v, bool) for v in vals):
        return pd.to_numeric(s, errors="coerce").astype("float64")
    return s.map(lambda v: None if v is None or (isinstance(v, float) and v != v) else str(v)).astype("object")


def write_tables(out_dir: Path, records: list[dict[str, Any]]) -> list[Path]:
    """records/indicators as .parquet and .csv (UTF-8 with BOM: Excel then reads the Chinese right)."""
    written = []
    for name, df in (("records", records_frame(records)), ("indicators", indicators_frame(records))):
        buf = io.BytesIO()
        df.to_parquet(buf, index=False, engine="pyarrow")
        export.atomic_write_bytes(out_dir / f"{name}.parquet", buf.getvalue())
        export.atomic_write_bytes(out_dir / f"{name}.csv", df.to_csv(index=False).encode("utf-8-sig"))
        written += [out_dir / f"{name}.parquet", out_dir / f"{name}.csv"]
    return written
