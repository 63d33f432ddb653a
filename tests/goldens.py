"""Goldens at the stage boundaries for the sample scans we ship (data/raw), and the command that
regenerates them:

    python -m tests.goldens regenerate      # rewrite tests/golden/stages/<stem>.json
    python -m tests.goldens check           # say which files differ, write nothing

Per file, what two boundaries hand on:
- after ocr: each page's kind, rotation, skew, and its grids — the lattice (rule positions, merged
  cells with spans and boxes) with each cell's text and OCR score — and the lines outside them;
- after normalize + validate, before confidence: each record, every value with its raw text,
  the stages' own score, place, reasons, label, alternatives and the evidence the confidence
  model will read.

OCR comes from tests/ocr_cache only (no cache miss is allowed: see conftest.py), so neither
regenerating nor checking needs ../shared or runs the engine. A golden that changes is a behaviour
change: regenerate, and read the diff before committing it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RAW = REPO / "data" / "raw"  # the sample scans we ship (copies of dev corpus files)
GOLDEN = REPO / "tests" / "golden" / "stages"
OCR_CACHE = REPO / "tests" / "ocr_cache"


def sample_files() -> list[Path]:
    return sorted(p for p in RAW.iterdir() if p.suffix.lower() in (".pdf", ".png", ".jpg", ".jpeg", ".tif", ".tiff"))


def golden_path(src: Path) -> Path:
    return GOLDEN / f"{src.stem}.json"


def _r(x: float) -> float:
    return round(float(x), 4)


def _page(p: Any) -> dict[str, Any]:
    return {
        "page": p.page_no,
        "kind": p.kind,
        "rotation": p.prepared.rotation,
        "skew_deg": round(float(p.prepared.skew_deg), 3),
        "grids": [
            {
                "row_lines": list(g.row_lines),
                "col_lines": list(g.col_lines),
                # [row, col, row_span, col_span, bbox, OCR score, text]
                "cells": [[c.row, c.col, c.row_span, c.col_span, list(c.bbox), _r(c.confidence), c.text]
                          for c in g.cells],
            }
            for g in p.grids
        ],
        "free_lines": [[list(t.bbox), _r(t.score), t.text] for t in p.free_lines],
    }


def _value(v: Any) -> dict[str, Any]:
    out = v.to_json()
    for k in ("label", "alternatives"):
        if getattr(v, k):
            out[k] = getattr(v, k)
    out["evidence"] = {k: _r(x) for k, x in sorted(v.evidence.items())}
    return out


def _record(rec: Any) -> dict[str, Any]:
    return {
        "form_index": rec.form_index,
        "pages": rec.pages,
        "fields": {k: _value(v) for k, v in rec.fields.items()},
        "funding": [{k: _value(v) for k, v in row.items()} for row in rec.funding],
        "indicators": [{k: _value(v) for k, v in row.items()} for row in rec.indicators],
    }


def stage_outputs(src: Path, engine: Any) -> dict[str, Any]:
    """What the stages hand on for one file: pages after ocr, records after normalize + validate."""
    from pipeline import process

    timings: dict[str, float] = {}
    pages = process.read_file(src, process.Options(), engine, timings)
    records, failed = process.build_records(pages, src.name, timings)
    return {
        "file": src.name,
        "pages": [_page(p) for p in pages],
        "records": [_record(r) for r in records],
        "failed_rules": [sorted(f"{f.name}: {f.detail}" for f in rules) for rules in failed],
    }


def _one_line(xs: list[Any]) -> bool:
    """A cell [row, col, spans, [bbox], score, text] or a box: lists of scalars, one level deep."""
    return all(not isinstance(x, dict | list) or (isinstance(x, list) and not any(
        isinstance(y, dict | list) for y in x)) for x in xs)


def dumps(obj: Any, indent: int = 0) -> str:
    """JSON with one line per cell, box or evidence dict: a golden's diff shows what moved."""
    pad = " " * (indent + 1)
    if isinstance(obj, dict) and any(isinstance(x, dict | list) for x in obj.values()):
        items = [f"{pad}{json.dumps(k, ensure_ascii=False)}: {dumps(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    if isinstance(obj, list) and not _one_line(obj):
        return "[\n" + ",\n".join(pad + dumps(x, indent + 1) for x in obj) + "\n" + " " * indent + "]"
    return json.dumps(obj, ensure_ascii=False)


def cached_engine() -> Any:
    from pipeline import engines
    from pipeline.options import Options

    o = Options()  # the pipeline's default engine: goldens show what a run reads
    return engines.CachedEngine(engines.make_engine(None, o.rec_batching, o.recognizer), OCR_CACHE)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.goldens", description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=("regenerate", "check"))
    args = ap.parse_args(argv)
    engine = cached_engine()
    differ = []
    for src in sample_files():
        text = dumps(stage_outputs(src, engine)) + "\n"
        path = golden_path(src)
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        differ.append(path)
        if args.command == "regenerate":
            from pipeline.export import atomic_write_text

            atomic_write_text(path, text)
    verb = "rewritten" if args.command == "regenerate" else "differ"
    print(f"{len(differ)} golden(s) {verb}: {', '.join(p.name for p in differ) or 'none'}; "
          f"OCR cache {engine.hits} hits, {engine.misses} misses")
    if engine.misses:
        print("OCR cache misses: the engine ran and its results were added to tests/ocr_cache; commit them",
              file=sys.stderr)
    return 1 if differ and args.command == "check" else 0


if __name__ == "__main__":
    sys.exit(main())
