"""Test fixtures for the review app: a real pipeline output with a review queue.

The pipeline is run for real (the CLI in a subprocess, OCR from tests/ocr_cache). If the
output has no `review/queue.jsonl` (the pipeline's queue writer is newer than these
tests), one is built here in the queue's format from the output's low-confidence cells,
with crops cut from the deskewed page the pipeline read.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "raw" / "d025.pdf"  # a one-page scan we ship
CACHE = REPO / "tests" / "ocr_cache"


def run_pipeline(inp: Path, out: Path) -> subprocess.CompletedProcess[str]:
    """`scanforms run INPUT --out OUT`, as a user runs it (a fresh process, the OCR cache on).

    --force: a re-run must really process the file again (an unchanged file is otherwise skipped),
    or re-applying the decisions would go untested. A high review threshold queues the sample's
    numeric cells too (a clean scan's are otherwise all accepted), so the tests have some to edit.
    """
    env = dict(os.environ, SCANFORMS_OCR_CACHE=str(CACHE))
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "run", str(inp), "--out", str(out), "-q", "--force",
         "--review-threshold", "0.999"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=True,
    )


def _cells(rec: dict[str, Any]) -> list[tuple[str, int | None, str, dict[str, Any]]]:
    out: list[tuple[str, int | None, str, dict[str, Any]]] = [
        ("fields", None, k, c) for k, c in rec["fields"].items() if isinstance(c, dict)
    ]
    for section in ("funding", "indicators"):
        for i, row in enumerate(rec.get(section) or []):
            out += [(section, i, k, c) for k, c in row.items() if isinstance(c, dict)]
    return out


def build_queue(
    out: Path,
    inp: Path,
    threshold: float = 0.95,
    alternatives: dict[tuple[str, int | None, str], list[dict[str, Any]]] | None = None,
) -> list[dict[str, Any]]:
    """Write `<out>/review/queue.jsonl` (and crops) for cells of `inp`'s output below `threshold`."""
    import cv2

    from pipeline import ocr, process
    from pipeline.lexicon import Schema

    labels = {(s.section, s.key): s.canonical or None for s in Schema.load().specs()}
    records = json.loads((out / f"{inp.stem}.json").read_text(encoding="utf-8"))
    engine = ocr.CachedEngine(ocr.RapidOcrEngine(), CACHE)
    pages = {p.page_no: p.prepared.image for p in process.process_file(inp, engine=engine).pages}
    crops = out / "review" / "crops"
    crops.mkdir(parents=True, exist_ok=True)
    entries = []
    for rec in records:
        src = rec["source"]
        cells = _cells(rec)
        for section, row, key, c in cells:
            if c.get("bbox") is None or (c["confidence"] >= threshold and not c.get("needs_review")):
                continue
            img = pages[c["page"]]
            h, w = img.shape[:2]
            x0, y0, x1, y1 = c["bbox"]
            # the row: the table's width on that page, a margin above and below the cell
            same_page = [d["bbox"] for _, _, _, d in cells if d.get("page") == c["page"] and d.get("bbox")]
            tx0, tx1 = min(b[0] for b in same_page), max(b[2] for b in same_page)
            item_id = f"{src['sha256'][:12]}:{src['form_index']}:{section}:{'-' if row is None else row}:{key}"
            name = item_id.replace(":", "_")
            m = 10
            cv2.imwrite(str(crops / f"{name}.png"), img[max(0, y0 - m):min(h, y1 + m), max(0, x0 - m):min(w, x1 + m)])
            cv2.imwrite(str(crops / f"{name}-row.png"),
                        img[max(0, y0 - 40):min(h, y1 + 40), max(0, tx0 - m):min(w, tx1 + m)])
            entries.append({
                "id": item_id, "file": src["file"], "sha256": src["sha256"], "form_index": src["form_index"],
                "section": section, "row": row, "key": key, "label": labels.get((section, key)),
                "value": c["value"], "raw": c["raw"], "confidence": c["confidence"],
                "reasons": c.get("reasons") or [f"confidence {c['confidence']:.2f} below {threshold}"],
                "alternatives": (alternatives or {}).get((section, row, key), []),
                "page": c["page"], "bbox": c["bbox"],
                "crop": f"crops/{name}.png", "row_crop": f"crops/{name}-row.png",
            })
    entries.sort(key=lambda e: e["confidence"])
    (out / "review" / "queue.jsonl").write_text(
        "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries), encoding="utf-8")
    return entries


def read_queue(out: Path) -> list[dict[str, Any]]:
    lines = (out / "review" / "queue.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def output_cell(out: Path, entry: dict[str, Any]) -> dict[str, Any]:
    """The entry's cell as it stands in `<out>/<stem>.json`."""
    recs = json.loads((out / f"{Path(entry['file']).stem}.json").read_text(encoding="utf-8"))
    (rec,) = [r for r in recs if r["source"]["form_index"] == entry["form_index"]]
    if entry["section"] == "fields":
        return rec["fields"][entry["key"]]
    return rec[entry["section"]][entry["row"]][entry["key"]]


def jsonl_cell(out: Path, entry: dict[str, Any]) -> dict[str, Any]:
    """The same cell in `<out>/records.jsonl`."""
    for line in (out / "records.jsonl").read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        if rec["source"]["file"] == entry["file"] and rec["source"]["form_index"] == entry["form_index"]:
            if entry["section"] == "fields":
                return rec["fields"][entry["key"]]
            return rec[entry["section"]][entry["row"]][entry["key"]]
    raise KeyError(entry["id"])


# a proposal for one cell, so the fixture queue exercises picking (the queue writer
# proposes readings that make the form's arithmetic hold)
PROPOSALS = {("indicators", 9, "level1_points"): [{"value": 16, "why": "second reading of the digits"},
                                                   {"value": None, "why": "cell left blank"}]}

_BASE: dict[str, Path] = {}


def base_output(tmp_root: Path) -> Path:
    """The pipeline's output for SAMPLE with its queue, made once per test session."""
    if "out" not in _BASE:
        out = tmp_root / "review-base"
        run_pipeline(SAMPLE, out)
        queue_path = out / "review" / "queue.jsonl"
        if not queue_path.exists():
            build_queue(out, SAMPLE, alternatives=PROPOSALS)
        entries = read_queue(out)
        if not any(e["alternatives"] for e in entries):
            # the sample is read cleanly enough that no cell gets one: add ours, so the
            # tests exercise picking a proposal
            for e in entries:
                e["alternatives"] = PROPOSALS.get((e["section"], e["row"], e["key"]), [])
            queue_path.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries),
                                  encoding="utf-8")
        _BASE["out"] = out
    return _BASE["out"]


def fresh_output(tmp_root: Path, dest: Path) -> Path:
    """A private copy of the base output (tests write decisions into it)."""
    import shutil

    shutil.copytree(base_output(tmp_root), dest)
    return dest
