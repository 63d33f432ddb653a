"""The review queue and what a decision does: store it, then rewrite the outputs.

The queue is `<out>/review/queue.jsonl` (written by the pipeline, lowest confidence
first). A decision goes to the decisions file first (the source of truth, re-applied on
every re-run), then into `<out>/<output key>.json` and `records.jsonl`, each rewritten whole
by rename, so a reader never sees half a file. The output key is the queue entry's; for a
cell no longer queued, the one the manifest gives its content hash (pipeline.naming).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import archive, export, naming
from .store import (
    REVIEW_DIR,
    CellKey,
    Decision,
    DecisionStore,
    cell_of,
    db_path,
    reviewed_cell_json,
    set_cell,
)

QUEUE_NAME = "queue.jsonl"


class ReviewError(Exception):
    """A request the queue cannot satisfy (unknown item, value of the wrong type)."""


@dataclass
class Item:
    """One queue entry (see the queue's format in README / the issue)."""

    id: str
    file: str
    sha256: str
    form_index: int
    section: str
    row: int | None
    key: str
    label: str | None
    value: Any
    raw: str
    confidence: float
    reasons: list[str] = field(default_factory=list)
    alternatives: list[dict[str, Any]] = field(default_factory=list)
    page: int | None = None
    bbox: list[int] | None = None
    crop: str | None = None
    row_crop: str | None = None
    output_key: str | None = None  # the file's records are <out>/<output_key>.json (None: a 0.3.0 queue)
    rows: list[int | None] = field(default_factory=list)  # a merged cell: every row it covers
    group: str = ""  # entries that read the same across the folder (review.groups)
    group_size: int = 1

    @property
    def cell(self) -> CellKey:
        return CellKey(self.sha256, self.form_index, self.section, self.row, self.key)

    @property
    def cells(self) -> list[CellKey]:
        """The record cells this entry stands for: its row, or every row of a merged cell."""
        return [CellKey(self.sha256, self.form_index, self.section, r, self.key) for r in (self.rows or [self.row])]

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Item:
        return cls(
            id=str(d["id"]), file=str(d["file"]), sha256=str(d["sha256"]), form_index=int(d["form_index"]),
            section=str(d["section"]), row=None if d.get("row") is None else int(d["row"]), key=str(d["key"]),
            label=d.get("label"), value=d.get("value"), raw=str(d.get("raw") or ""),
            confidence=float(d.get("confidence") or 0.0), reasons=list(d.get("reasons") or []),
            alternatives=list(d.get("alternatives") or []), page=d.get("page"), bbox=d.get("bbox"),
            crop=d.get("crop"), row_crop=d.get("row_crop"), output_key=d.get("output_key"),
            rows=[None if r is None else int(r) for r in d.get("rows") or [d.get("row")]],
            group=str(d.get("group") or d["id"]), group_size=int(d.get("group_size") or 1),
        )


def load_queue(out_dir: Path) -> list[Item]:
    path = Path(out_dir) / REVIEW_DIR / QUEUE_NAME
    if not path.exists():
        return []
    items = [Item.from_json(json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    items.sort(key=lambda it: it.confidence)  # stable: the writer's order among equals
    return items


_KEY_TYPES: dict[tuple[str, str], str] | None = None


def key_type(section: str, key: str) -> str:
    """The value type of a canonical key (models/schema.yaml); text if unknown."""
    global _KEY_TYPES
    if _KEY_TYPES is None:
        from ..lexicon import Schema

        schema = Schema.load()
        _KEY_TYPES = {(s.section, s.key): s.type for s in schema.specs()}
    return _KEY_TYPES.get((section, key), "text")


def parse_typed(section: str, key: str, text: str) -> Any:
    """What a reviewer typed, as the key's type ("2,523,747.00" -> 2523747.0); empty is null."""
    from ..values import parse_value

    kind = key_type(section, key)
    value, ok = parse_value(kind, text)
    if not ok:
        raise ReviewError(f"{text!r} is not a {kind} value for {key}")
    return value


def display(value: Any) -> str:
    """A value as the reviewer edits it."""
    if value is None:
        return ""
    if value is True:
        return "是"
    if value is False:
        return "否"
    return str(value)


@dataclass
class Outcome:
    item: Item | None  # None: an undone cell that a newer queue no longer lists
    value: Any
    cell: dict[str, Any] | None  # the output cell now (the item's first)
    cells: int = 1  # record cells the decision set or took back (a group: all of them)


FileHook = Callable[[Path], None]


class ReviewSession:
    """The queue of one output folder, its decisions file, and the output rewrites.

    `on_file_written` is called with each `<output key>.json` a decision (or undo) has just
    rewritten: the one place where "a decision was applied to file X" (a hook for outputs
    made from the records, e.g. a regenerated PDF)."""

    def __init__(self, out_dir: Path, reviewer: str = "reviewer", on_file_written: FileHook | None = None) -> None:
        self.out_dir = Path(out_dir)
        self.reviewer = reviewer
        self.on_file_written = on_file_written
        self.store = DecisionStore(db_path(self.out_dir))
        self._lock = threading.Lock()  # one output rewrite at a time
        self._queue: list[Item] = []
        self._queue_mtime: float | None = None
        self._splits_seen: set[CellKey] | None = None

    def close(self) -> None:
        self.store.close()

    # -- queue -------------------------------------------------------------------------

    def items(self) -> list[Item]:
        """The queue, re-read when the pipeline has rewritten it; a cell the reviewer split
        off its group is a group of its own."""
        path = self.out_dir / REVIEW_DIR / QUEUE_NAME
        mtime = path.stat().st_mtime if path.exists() else None
        splits = self.store.splits()
        if mtime != self._queue_mtime or splits != self._splits_seen:
            items = load_queue(self.out_dir)
            for it in items:
                if it.cell in splits:
                    it.group = f"split:{it.id}"
            sizes: dict[str, int] = {}
            for it in items:
                sizes[it.group] = sizes.get(it.group, 0) + 1
            for it in items:
                it.group_size = sizes[it.group]
            self._queue, self._queue_mtime, self._splits_seen = items, mtime, splits
        return self._queue

    def item(self, item_id: str) -> Item:
        for it in self.items():
            if it.id == item_id:
                return it
        raise ReviewError(f"no queue item {item_id!r}")

    def members(self, item: Item) -> list[Item]:
        """The item's group, lowest confidence first (the item itself among them)."""
        return [it for it in self.items() if it.group == item.group]

    def decisions(self) -> dict[CellKey, Decision]:
        return self.store.all({it.sha256 for it in self.items()})

    @staticmethod
    def is_decided(item: Item, decisions: dict[CellKey, Decision]) -> bool:
        return all(c in decisions for c in item.cells)

    def current_value(self, item: Item, decisions: dict[CellKey, Decision] | None = None) -> Any:
        d = (decisions if decisions is not None else self.decisions()).get(item.cell)
        return d.value if d else item.value

    # -- deciding ----------------------------------------------------------------------

    def decide(
        self,
        item_id: str,
        action: str,
        text: str | None = None,
        index: int | None = None,
        reviewer: str | None = None,
    ) -> Outcome:
        """accept the value as it stands, set a typed text, or pick alternative `index`:
        for every cell of the item's group (each recorded on its own, undone together)."""
        item = self.item(item_id)
        if action == "accept":
            value = self.current_value(item)
        elif action in ("set", "import"):
            value = parse_typed(item.section, item.key, text or "")
        elif action == "pick":
            if index is None or not 0 <= index < len(item.alternatives):
                raise ReviewError(f"{item.key}: no proposal {index}")
            value = item.alternatives[index].get("value")
        else:
            raise ReviewError(f"unknown action {action!r}")
        targets = [(cell, it.file) for it in self.members(item) for cell in it.cells]
        with self._lock:
            paths = {cell: self._record_path(cell, file) for cell, file in targets}
            loaded = {path: self._load_records(path, file) for (_c, file), path in zip(targets, paths.values(),
                                                                                       strict=True)}
            # no output to correct: refuse before storing anything
            current = {cell: cell_of(self._find(loaded[paths[cell]], cell, paths[cell]), cell.section, cell.row,
                                     cell.key) for cell, _file in targets}
            ds = self.store.decide_many([(cell, file, current[cell]) for cell, file in targets], value,
                                        reviewer or self.reviewer, action=action)
            cells = {d.cell: (d.file, reviewed_cell_json(d.original if current[d.cell] is None else current[d.cell],
                                                         value)) for d in ds}
            self._write_cells(cells)
        return Outcome(item, value, cells[item.cell][1], len(cells))

    def split(self, item_id: str, reviewer: str | None = None) -> Item:
        """Take the item out of its group: its cells are decided on their own from now on."""
        item = self.item(item_id)
        self.store.split(item.cell, reviewer or self.reviewer)
        return self.item(item_id)

    def undo(self, reviewer: str | None = None) -> Outcome | None:
        """Take back the latest decision whole (a group's: all its cells): each output cell
        returns to what it was before."""
        with self._lock:
            undone = self.store.undo_batch(reviewer or self.reviewer)
            if not undone:
                return None
            cells: dict[CellKey, tuple[str, dict[str, Any]]] = {}
            for u in undone:
                if u.decision is not None:
                    cell = reviewed_cell_json(u.original or self._output_cell_at(u.cell, u.file), u.decision.value)
                else:
                    cell = u.original
                if cell is not None:
                    cells[u.cell] = (u.file, cell)
            self._write_cells(cells)
        first = undone[-1].cell  # the batch's first cell (undone last)
        item = next((it for it in self.items() if first in it.cells), None)
        shown = cells.get(first, (None, None))[1]
        return Outcome(item, shown.get("value") if shown else None, shown, len(undone))

    # -- outputs -----------------------------------------------------------------------

    def _record_path(self, cell: CellKey, file: str) -> Path:
        """`<out>/<output key>.json` of the input with the cell's content hash (not its name: two
        inputs may share one): the queue's key, else the manifest's, else the stem (a 0.3.0 folder)."""
        for it in self.items():
            if it.sha256 == cell.sha256 and it.output_key:
                return export.record_file(self.out_dir, it.output_key)
        key = naming.recorded_keys(self.out_dir).get(cell.sha256)
        return export.record_file(self.out_dir, key or Path(file).stem)

    @staticmethod
    def _matches(rec: dict[str, Any], cell: CellKey) -> bool:
        src = rec.get("source", {})
        return src.get("form_index") == cell.form_index and src.get("sha256", cell.sha256) == cell.sha256

    def _output_cell_at(self, cell: CellKey, file: str) -> dict[str, Any] | None:
        path = self._record_path(cell, file)
        if not path.exists():
            return None
        for rec in json.loads(path.read_text(encoding="utf-8")):
            if self._matches(rec, cell):
                return cell_of(rec, cell.section, cell.row, cell.key)
        return None

    def _load_records(self, path: Path, file: str) -> list[dict[str, Any]]:
        if not path.exists():
            raise ReviewError(f"no output {path.name} for {file}: run the pipeline first")
        return list(json.loads(path.read_text(encoding="utf-8")))

    def _find(self, records: list[dict[str, Any]], cell: CellKey, path: Path) -> dict[str, Any]:
        """The record holding `cell` (ReviewError if there is none)."""
        for rec in records:
            if self._matches(rec, cell) and (cell.section == "fields" or (
                    cell.row is not None and 0 <= cell.row < len(rec.get(cell.section) or []))):
                return rec
        raise ReviewError(f"{path.name} has no form {cell.form_index} cell {cell.section}/{cell.row}/{cell.key}")

    def _write_cells(self, cells: dict[CellKey, tuple[str, dict[str, Any]]]) -> None:
        """Put the cells into their `<output key>.json` files and `records.jsonl`, each rewritten
        once (by rename), whatever the number of cells."""
        by_path: dict[Path, list[tuple[CellKey, str, dict[str, Any]]]] = {}
        for cell, (file, cell_json) in cells.items():
            by_path.setdefault(self._record_path(cell, file), []).append((cell, file, cell_json))
        changed: dict[tuple[str, int], tuple[str, dict[str, Any]]] = {}  # (sha, form) -> (output key, record)
        for path, todo in by_path.items():
            records = self._load_records(path, todo[0][1])
            for cell, _file, cell_json in todo:
                rec = self._find(records, cell, path)
                set_cell(rec, cell.section, cell.row, cell.key, cell_json)
                changed[(cell.sha256, cell.form_index)] = (path.stem, rec)
            export.atomic_write_text(path, json.dumps(records, ensure_ascii=False, indent=1))
            archive.refresh_after_review(self.out_dir, path.stem)  # the archive PDF / xlsx never lag the records
            if self.on_file_written is not None:  # a decision was applied to this file
                self.on_file_written(path)
        combined = self.out_dir / "records.jsonl"
        if combined.exists() and changed:
            lines = []
            for line in combined.read_text(encoding="utf-8").splitlines():
                if not line.strip():
                    continue
                rec = json.loads(line)
                src = rec.get("source", {})
                hit = changed.get((src.get("sha256"), src.get("form_index")))  # type: ignore[arg-type]
                if hit is not None and src.get("output_key", hit[0]) == hit[0]:
                    rec = hit[1]
                lines.append(rec)
            export.write_jsonl(combined, lines)
