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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import export, naming
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

    @property
    def cell(self) -> CellKey:
        return CellKey(self.sha256, self.form_index, self.section, self.row, self.key)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Item:
        return cls(
            id=str(d["id"]), file=str(d["file"]), sha256=str(d["sha256"]), form_index=int(d["form_index"]),
            section=str(d["section"]), row=None if d.get("row") is None else int(d["row"]), key=str(d["key"]),
            label=d.get("label"), value=d.get("value"), raw=str(d.get("raw") or ""),
            confidence=float(d.get("confidence") or 0.0), reasons=list(d.get("reasons") or []),
            alternatives=list(d.get("alternatives") or []), page=d.get("page"), bbox=d.get("bbox"),
            crop=d.get("crop"), row_crop=d.get("row_crop"), output_key=d.get("output_key"),
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
    cell: dict[str, Any] | None  # the output cell now


class ReviewSession:
    """The queue of one output folder, its decisions file, and the output rewrites."""

    def __init__(self, out_dir: Path, reviewer: str = "reviewer") -> None:
        self.out_dir = Path(out_dir)
        self.reviewer = reviewer
        self.store = DecisionStore(db_path(self.out_dir))
        self._lock = threading.Lock()  # one output rewrite at a time
        self._queue: list[Item] = []
        self._queue_mtime: float | None = None

    def close(self) -> None:
        self.store.close()

    # -- queue -------------------------------------------------------------------------

    def items(self) -> list[Item]:
        """The queue, re-read when the pipeline has rewritten it."""
        path = self.out_dir / REVIEW_DIR / QUEUE_NAME
        mtime = path.stat().st_mtime if path.exists() else None
        if mtime != self._queue_mtime:
            self._queue, self._queue_mtime = load_queue(self.out_dir), mtime
        return self._queue

    def item(self, item_id: str) -> Item:
        for it in self.items():
            if it.id == item_id:
                return it
        raise ReviewError(f"no queue item {item_id!r}")

    def decisions(self) -> dict[CellKey, Decision]:
        return self.store.all({it.sha256 for it in self.items()})

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
        """accept the value as it stands, set a typed text, or pick alternative `index`."""
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
        with self._lock:
            self._load_record(item.cell, item.file)  # no output to correct: refuse before storing
            current = self._output_cell(item)
            d = self.store.decide(item.cell, value, reviewer or self.reviewer, file=item.file, current=current,
                                  action=action)
            cell = reviewed_cell_json(d.original if current is None else current, value)
            self._write_cell(item, cell)
        return Outcome(item, value, cell)

    def undo(self, reviewer: str | None = None) -> Outcome | None:
        """Take back the latest decision: the output cell returns to what it was before."""
        with self._lock:
            u = self.store.undo(reviewer or self.reviewer)
            if u is None:
                return None
            if u.decision is not None:
                cell: dict[str, Any] | None = reviewed_cell_json(u.original or self._output_cell_at(u.cell, u.file),
                                                                 u.decision.value)
            else:
                cell = u.original
            if cell is not None:
                self._write_cell_at(u.cell, u.file, cell)
        item = next((it for it in self.items() if it.cell == u.cell), None)
        return Outcome(item, cell.get("value") if cell else None, cell)

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

    def _output_cell(self, item: Item) -> dict[str, Any] | None:
        return self._output_cell_at(item.cell, item.file)

    def _output_cell_at(self, cell: CellKey, file: str) -> dict[str, Any] | None:
        path = self._record_path(cell, file)
        if not path.exists():
            return None
        for rec in json.loads(path.read_text(encoding="utf-8")):
            if self._matches(rec, cell):
                return cell_of(rec, cell.section, cell.row, cell.key)
        return None

    def _write_cell(self, item: Item, cell_json: dict[str, Any]) -> None:
        self._write_cell_at(item.cell, item.file, cell_json)

    def _load_record(self, cell: CellKey, file: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The file's records and the one holding `cell` (ReviewError if there is none)."""
        path = self._record_path(cell, file)
        if not path.exists():
            raise ReviewError(f"no output {path.name} for {file}: run the pipeline first")
        records = json.loads(path.read_text(encoding="utf-8"))
        for rec in records:
            if self._matches(rec, cell) and (cell.section == "fields" or (
                    cell.row is not None and 0 <= cell.row < len(rec.get(cell.section) or []))):
                return records, rec
        raise ReviewError(f"{path.name} has no form {cell.form_index} cell {cell.section}/{cell.row}/{cell.key}")

    def _write_cell_at(self, cell: CellKey, file: str, cell_json: dict[str, Any]) -> None:
        """Put the cell into `<output key>.json` and `records.jsonl` (each rewritten by rename)."""
        records, hit = self._load_record(cell, file)
        set_cell(hit, cell.section, cell.row, cell.key, cell_json)
        path = self._record_path(cell, file)
        export.atomic_write_text(path, json.dumps(records, ensure_ascii=False, indent=1))
        combined = self.out_dir / "records.jsonl"
        if combined.exists():
            lines = []
            for line in combined.read_text(encoding="utf-8").splitlines():
                if not line.strip():
                    continue
                rec = json.loads(line)
                src = rec.get("source", {})
                if src.get("output_key", path.stem) == path.stem and self._matches(rec, cell):
                    rec = hit
                lines.append(rec)
            export.write_jsonl(combined, lines)
