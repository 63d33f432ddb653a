"""How many review decisions the queue's groups save, and whether any group is wrong.

    python bench/review_groups.py OUT --truth ../shared/corpus/dev/truth [--json FILE]

OUT is a `scanforms run` output folder (left untouched: its `review/` is copied to a temp
folder and the queue rebuilt there with this version's grouping, so an output written by
an older version is measured too; such parts get their cells' OCR score profile from
OUT/features/, so run it with `--features`). Reports the cells queued (a merged cell counts every row
it covers), queue entries, groups (the decisions a reviewer makes), their ratio to the
cells, and wrong groups: a group whose cells do not all have the same truth value by the
scorer's rules (`pipeline.evaluate.same`, as `eval/score.py`), which one decision would
settle wrongly for some of them. A cell the scorer does not count (nothing on the form,
nothing read) has the truth value null.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline import evaluate, export  # noqa: E402
from pipeline.review.groups import cells_of, row_in_cell  # noqa: E402


def _add_ocr_profile(out: Path, parts: Path) -> None:
    """Parts written before the queue carried `ocr_min` and `in_cell`: take them from the run's
    features/ and records."""
    ev: dict[tuple[Any, ...], dict[str, Any]] = {}
    for f in sorted((out / "features").glob("*.jsonl")):
        for line in f.read_text(encoding="utf-8").splitlines():
            if line.strip():
                r = json.loads(line)
                ev[(r["file"], r["form_index"], r["section"], r["row"], r["key"])] = r.get("evidence") or {}
    records = evaluate.load_records(out)
    for part in sorted(parts.glob("*.jsonl")):
        entries = [json.loads(line) for line in part.read_text(encoding="utf-8").splitlines() if line.strip()]
        for e in entries:
            rec = records.get((e["file"], e["form_index"]))
            if "in_cell" not in e and rec is not None and e["row"] is not None and e["bbox"]:
                row = (rec.get(e["section"]) or [])[e["row"]]
                cells = [(c.get("page"), c.get("bbox")) for c in row.values() if isinstance(c, dict)]
                e["in_cell"] = row_in_cell(e["page"], e["bbox"], cells)
            if "ocr_min" not in e:
                m = ev.get((e["file"], e["form_index"], e["section"], e["row"], e["key"]), {}).get("ocr_min")
                e["ocr_min"] = None if m is None else round(float(m), 4)
        export.write_jsonl(part, entries)


def measure(out: Path, truth: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp)
        shutil.copytree(out / export.REVIEW_DIR, copy / export.REVIEW_DIR,
                        ignore=shutil.ignore_patterns("decisions.sqlite*", "queue.jsonl"))
        _add_ocr_profile(out, copy / export.REVIEW_DIR / "parts")
        path = export.combine_review_queue(copy)
        entries = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    scored, _n, _missing = evaluate.score_folder(truth, out)
    truth_of = {(c.file, c.form_index, c.section, c.row, c.key): c.truth for c in scored}
    types = evaluate._types()
    groups: dict[str, list[tuple[dict[str, Any], int | None]]] = {}
    for e in entries:
        for r in e["rows"]:
            groups.setdefault(e["group"], []).append((e, r))
    wrong = []
    for gid, cells in groups.items():
        e0, r0 = cells[0]
        kind = types[e0["section"]].get(e0["key"], "text")
        t0 = truth_of.get((e0["file"], e0["form_index"], e0["section"], r0, e0["key"]))
        odd = [(e, r, truth_of.get((e["file"], e["form_index"], e["section"], r, e["key"]))) for e, r in cells[1:]]
        odd = [(e, r, t) for e, r, t in odd if not (evaluate.same(kind, t0, t) and evaluate.same(kind, t, t0))]
        if odd:
            wrong.append({"group": gid, "key": e0["key"], "raw": e0["raw"], "value": e0["value"], "cells": len(cells),
                          "truth": t0, "differing": [{"file": e["file"], "form_index": e["form_index"], "row": r,
                                                      "truth": t} for e, r, t in odd]})
    cells = sum(cells_of(e) for e in entries)
    multi = [g for g in groups.values() if len({e["id"] for e, _r in g}) > 1]
    return {
        "cells": cells,
        "entries": len(entries),
        "groups": len(groups),
        "groups_per_cell": round(len(groups) / cells, 4) if cells else None,
        "merged_entries": sum(len(e["rows"]) > 1 for e in entries),
        "groups_of_several_entries": len(multi),
        "cross_file_groups": sum(len({e["file"] for e, _r in g}) > 1 for g in multi),
        "wrong_groups": len(wrong),
        "wrong_cells": sum(len(w["differing"]) for w in wrong),
        "wrong": wrong,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="a `scanforms run` output folder")
    ap.add_argument("--truth", type=Path, required=True, help="folder of truth <stem>.json files")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)
    m = measure(args.out, args.truth)
    for w in m["wrong"][:20]:
        print(f"WRONG {w['group']} {w['key']} raw={w['raw']!r} truth={w['truth']!r} "
              f"differing={[(d['file'], d['row'], d['truth']) for d in w['differing']][:4]}")
    print(json.dumps({k: v for k, v in m.items() if k != "wrong"}, ensure_ascii=False))
    if args.json:
        args.json.write_text(json.dumps(m, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
