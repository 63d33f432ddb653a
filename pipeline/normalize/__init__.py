"""Normalize: a form's table rows -> a FormRecord with canonical keys and typed values.

Labels are matched against the lexicon in models/ (tolerant of OCR noise); values are
typed by the schema. Merged level1/level2 cells repeat down the rows they span, also
across a page break where the label is printed on one side only. The stage in parts,
with plain types between them:

- `layout`: which block of the form a row belongs to (header pairs, 项目资金, 年度总体目标,
  indicator table) and the form's title;
- `columns`: where a cell sits among the named columns, on any page of the form;
- `indicators`: the cells of each indicator row (`IndicatorRow`), the repairs of a
  damaged table, the typed indicator rows;
- `cellvalue`: cells -> a typed `Value` with its OCR evidence.
"""

from __future__ import annotations

from .layout import RecordBuilder, build_records

__all__ = ["RecordBuilder", "build_records"]
