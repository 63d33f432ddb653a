"""Output keys: the one name under which everything made from one input file is written.

Every per-input output is named by its input's output key, never by the file's stem:

    <out>/<key>.json                      the records
    overlays/<key>-p<page>.png            tables/<key>-p<page>-t<k>.json/.html
    review/parts/<key>.jsonl              review/crops/<key>-f<form>-....jpg
    features/<key>.jsonl

and the key is kept in the manifest (`output_key`), in each record (`source.output_key`),
in each review queue entry and in the tables' `output_key` column. `output_keys` is the
only function that decides keys; writers take the key they are given.

Standard library only: every stage that writes imports this.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

MANIFEST_NAME = "manifest.jsonl"
KEY_SEP = "__"  # between folder names in a key made from a path: 2019/自评表.pdf -> 2019__自评表
# names of the run's combined outputs beside the per-input `<key>.json`: an input named
# run_report.pdf must not write over the run report
RESERVED = frozenset({"run_report"})


def output_keys(inputs: Sequence[Path], recorded: Mapping[str, str] | None = None) -> dict[Path, str]:
    """The output key of every input of a run: unique within the run, stable across re-runs.

    - An input that already has a key (`recorded`: resolved path -> key, from the manifest)
      keeps it: a re-run never renames outputs, even when a file of the same name turns up
      later (the newcomer gets the longer name instead).
    - Otherwise the key is the file's stem (`自评表`), as long as no other input of the run
      has the same stem (compared case-insensitively: a.pdf and A.pdf collide on macOS and
      Windows) and no other input holds it.
    - Inputs whose stems collide are named by their path relative to the folder all those
      inputs share, flattened with `__`: in/2019/自评表.pdf, in/2020/自评表.pdf ->
      `2019__自评表`, `2020__自评表`. Same folder, other suffix (a.pdf, a.png): the first
      keeps `a`, the next is `a_png`.
    - A name still taken (a file really called `2019__自评表.pdf`) gets the suffix
      (`2019__自评表_pdf`), then instead `~` and 8 hex digits of the path's hash.

    A fresh run and a history of runs can therefore name a colliding file differently
    (x/a.pdf is `a` if it was alone at first, `x__a` if y/a.pdf came in the same run);
    each output folder stays consistent with itself. Removed inputs hold no key.
    """
    recorded = recorded or {}
    resolved = {p: str(p.resolve()) for p in inputs}
    keys: dict[Path, str] = {}
    taken = set(RESERVED)
    for p in inputs:
        k = recorded.get(resolved[p])
        if k and k.casefold() not in taken:
            keys[p] = k
            taken.add(k.casefold())
    by_stem: dict[str, list[Path]] = {}
    for p in inputs:
        by_stem.setdefault(p.stem.casefold(), []).append(p)
    for p in inputs:
        if p in keys:
            continue
        group = by_stem[p.stem.casefold()]
        for cand in _candidates(p, group, resolved[p]):
            if cand.casefold() not in taken:
                keys[p] = cand
                taken.add(cand.casefold())
                break
    return keys


def _candidates(path: Path, group: list[Path], resolved: str) -> list[str]:
    rel = _relative_to_common(path, group)
    flat = KEY_SEP.join([*rel.parent.parts, rel.stem]) if len(group) > 1 else path.stem
    with_suffix = f"{flat}_{path.suffix.lstrip('.').lower()}" if path.suffix else flat
    hashed = f"{flat}~{hashlib.sha1(resolved.encode('utf-8', 'surrogateescape')).hexdigest()[:8]}"
    return [flat, with_suffix, hashed]


def _relative_to_common(path: Path, group: list[Path]) -> Path:
    """`path` relative to the deepest folder holding every file of `group`."""
    folders = [str(p.resolve().parent) for p in group]
    try:
        common = os.path.commonpath(folders)
    except ValueError:  # different drives: no folder in common
        return Path(path.name)
    return path.resolve().relative_to(common)


def recorded_keys(out_dir: Path) -> dict[str, str]:
    """Content hash -> output key of every input the manifest lists with outputs.

    For readers that hold a content hash and need the file's outputs (the review app
    undoing a decision whose cell has left the queue)."""
    path = Path(out_dir) / MANIFEST_NAME
    out: dict[str, str] = {}
    if not path.exists():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            e = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(e, dict) and e.get("sha256") and e.get("output_key"):
            out[str(e["sha256"])] = str(e["output_key"])
    return out
