"""Review decisions: one SQLite file (WAL) beside the outputs, with an audit trail.

A decision is keyed by the input's content hash + form + section + row + key, not by
file name, so it survives re-runs of the pipeline on the same file (moved or renamed
too) and never lands on a different file that happens to share a name.

Only the standard library here: the pipeline imports this on every file it writes.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..types import FormRecord, Value

REVIEW_DIR = "review"
DB_NAME = "decisions.sqlite"
SECTIONS = ("fields", "funding", "indicators")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    sha256 TEXT NOT NULL,
    form_index INTEGER NOT NULL,
    section TEXT NOT NULL,
    row INTEGER NOT NULL,          -- -1 for fields (NULL would defeat the primary key)
    key TEXT NOT NULL,
    file TEXT NOT NULL,
    value TEXT NOT NULL,           -- JSON of the typed value
    reviewer TEXT NOT NULL,
    decided_at TEXT NOT NULL,
    original TEXT,                 -- JSON of the cell as the pipeline wrote it, for undo
    PRIMARY KEY (sha256, form_index, section, row, key)
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sha256 TEXT NOT NULL,
    form_index INTEGER NOT NULL,
    section TEXT NOT NULL,
    row INTEGER NOT NULL,
    key TEXT NOT NULL,
    file TEXT NOT NULL,
    action TEXT NOT NULL,          -- accept / set / pick / import / undo
    old_value TEXT,                -- JSON
    new_value TEXT,                -- JSON
    reviewer TEXT NOT NULL,
    at TEXT NOT NULL,
    undone INTEGER NOT NULL DEFAULT 0,
    batch INTEGER                  -- the cells one decision set (a group): undone together
);
CREATE INDEX IF NOT EXISTS audit_cell ON audit (sha256, form_index, section, row, key);
CREATE TABLE IF NOT EXISTS splits (   -- cells a reviewer took out of their queue group
    sha256 TEXT NOT NULL,
    form_index INTEGER NOT NULL,
    section TEXT NOT NULL,
    row INTEGER NOT NULL,
    key TEXT NOT NULL,
    reviewer TEXT NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (sha256, form_index, section, row, key)
);
"""

_DECIDING = ("accept", "set", "pick", "import")


def db_path(out_dir: Path) -> Path:
    return Path(out_dir) / REVIEW_DIR / DB_NAME


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class CellKey:
    """Where a cell lives: input content hash, form, section, row (None for fields), key."""

    sha256: str
    form_index: int
    section: str
    row: int | None
    key: str

    def __post_init__(self) -> None:
        if self.section not in SECTIONS:
            raise ValueError(f"unknown section {self.section!r}")
        if (self.section == "fields") != (self.row is None):
            raise ValueError("fields have no row; funding and indicator cells need one")

    @property
    def db_row(self) -> int:
        return -1 if self.row is None else int(self.row)

    def params(self) -> tuple[str, int, str, int, str]:
        return (self.sha256, int(self.form_index), self.section, self.db_row, self.key)


@dataclass
class Decision:
    cell: CellKey
    file: str
    value: Any
    reviewer: str
    decided_at: str
    original: dict[str, Any] | None  # the pipeline's cell before the first decision


@dataclass
class Undone:
    """What an undo did: the cell now holds `decision`, or the pipeline's `original` if None."""

    cell: CellKey
    file: str
    decision: Decision | None
    original: dict[str, Any] | None


def _key_from_row(r: sqlite3.Row) -> CellKey:
    row = None if r["row"] < 0 else int(r["row"])
    return CellKey(r["sha256"], int(r["form_index"]), r["section"], row, r["key"])


def _decision(r: sqlite3.Row) -> Decision:
    original = json.loads(r["original"]) if r["original"] else None
    return Decision(_key_from_row(r), r["file"], json.loads(r["value"]), r["reviewer"], r["decided_at"], original)


_WHERE = "sha256 = ? AND form_index = ? AND section = ? AND row = ? AND key = ?"


def _latest_decision(c: sqlite3.Connection, reviewer: str | None) -> sqlite3.Row | None:
    """The audit row of the latest decision not undone yet (by `reviewer`, if given)."""
    q = f"SELECT * FROM audit WHERE undone = 0 AND action IN ({','.join('?' * len(_DECIDING))})"
    args: list[Any] = list(_DECIDING)
    if reviewer is not None:
        q += " AND reviewer = ?"
        args.append(reviewer)
    return c.execute(q + " ORDER BY id DESC LIMIT 1", args).fetchone()


class DecisionStore:
    """The decisions file. One writer at a time (SQLite's lock); readers never block in WAL."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # check_same_thread off: the web app serves from a thread pool; writes are serialized
        # by SQLite's own lock and by `transaction` below.
        self.conn = sqlite3.connect(self.path, timeout=10.0, check_same_thread=False, isolation_level=None)
        self._lock = threading.RLock()  # one connection, many threads: one statement or transaction at a time
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across app crashes
        self.conn.executescript(_SCHEMA)
        if "batch" not in {r[1] for r in self.conn.execute("PRAGMA table_info(audit)")}:
            self.conn.execute("ALTER TABLE audit ADD COLUMN batch INTEGER")  # a file from before groups

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> DecisionStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self.conn.in_transaction:  # nested (one decision on a group): the outer one commits
                yield self.conn
                return
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def _query(self, sql: str, args: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self.conn.execute(sql, tuple(args)).fetchall()

    def journal_mode(self) -> str:
        return str(self._query("PRAGMA journal_mode")[0][0])

    # -- reading ---------------------------------------------------------------------

    def get(self, cell: CellKey) -> Decision | None:
        rows = self._query(f"SELECT * FROM decisions WHERE {_WHERE}", cell.params())
        return _decision(rows[0]) if rows else None

    def all(self, sha256s: Iterable[str] | None = None) -> dict[CellKey, Decision]:
        if sha256s is None:
            rows = self._query("SELECT * FROM decisions")
        else:
            shas = sorted(set(sha256s))
            marks = ",".join("?" * len(shas))
            rows = self._query(f"SELECT * FROM decisions WHERE sha256 IN ({marks})", shas)
        return {d.cell: d for d in map(_decision, rows)}

    def audit(self, cell: CellKey | None = None) -> list[dict[str, Any]]:
        """The trail, oldest first: action, old and new value, reviewer, time."""
        if cell is None:
            rows = self._query("SELECT * FROM audit ORDER BY id")
        else:
            rows = self._query(f"SELECT * FROM audit WHERE {_WHERE} ORDER BY id", cell.params())
        out = []
        for r in rows:
            d = dict(r)
            d["row"] = None if d["row"] < 0 else d["row"]
            for k in ("old_value", "new_value"):
                d[k] = json.loads(d[k]) if d[k] is not None else None
            d["undone"] = bool(d["undone"])
            out.append(d)
        return out

    # -- writing ---------------------------------------------------------------------

    def decide(
        self,
        cell: CellKey,
        value: Any,
        reviewer: str,
        *,
        file: str,
        current: dict[str, Any] | None,
        action: str = "set",
    ) -> Decision:
        """Record that `reviewer` set the cell to `value`; `current` is the cell as it
        stands in the output now (kept as the original on the first decision)."""
        if action not in _DECIDING:
            raise ValueError(f"unknown action {action!r}")
        at = now()
        with self.transaction() as c:
            prev = self.get(cell)
            old = prev.value if prev else (current or {}).get("value")
            original = prev.original if prev else current
            c.execute(
                "INSERT OR REPLACE INTO decisions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*cell.params(), file, json.dumps(value, ensure_ascii=False), reviewer, at,
                 json.dumps(original, ensure_ascii=False) if original is not None else None),
            )
            c.execute(
                "INSERT INTO audit (sha256, form_index, section, row, key, file, action, old_value, new_value,"
                " reviewer, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*cell.params(), file, action, json.dumps(old, ensure_ascii=False),
                 json.dumps(value, ensure_ascii=False), reviewer, at),
            )
        return Decision(cell, file, value, reviewer, at, original)

    def decide_many(
        self,
        cells: list[tuple[CellKey, str, dict[str, Any] | None]],
        value: Any,
        reviewer: str,
        *,
        action: str = "set",
    ) -> list[Decision]:
        """One decision on several cells ((cell, file, current cell) each), in one transaction:
        each cell gets its own decision and audit row, all in one batch that undo takes back whole."""
        with self.transaction() as c:
            out = [self.decide(cell, value, reviewer, file=file, current=current, action=action)
                   for cell, file, current in cells]
            last = c.execute("SELECT max(id) FROM audit").fetchone()[0]
            c.execute("UPDATE audit SET batch = ? WHERE id > ? AND id <= ?", (last, last - len(cells), last))
        return out

    def split(self, cell: CellKey, reviewer: str) -> None:
        """Take the cell out of its queue group: from now on it is decided on its own."""
        with self.transaction() as c:
            c.execute("INSERT OR REPLACE INTO splits VALUES (?, ?, ?, ?, ?, ?, ?)", (*cell.params(), reviewer, now()))

    def splits(self) -> set[CellKey]:
        return {_key_from_row(r) for r in self._query("SELECT * FROM splits")}

    def undo_batch(self, reviewer: str | None = None) -> list[Undone]:
        """Take back the latest decision whole: every cell of its batch (a group decision)."""
        with self.transaction() as c:
            last = _latest_decision(c, reviewer)
            if last is None:
                return []
            n = 1 if last["batch"] is None else c.execute(
                f"SELECT count(*) FROM audit WHERE batch = ? AND undone = 0 AND action IN "
                f"({','.join('?' * len(_DECIDING))})", (last["batch"], *_DECIDING)).fetchone()[0]
            return [u for u in (self.undo(reviewer) for _ in range(n)) if u is not None]

    def undo(self, reviewer: str | None = None) -> Undone | None:
        """Take back the latest decision (by `reviewer`, if given) that is not undone yet:
        the cell returns to the decision before it, or to the pipeline's value."""
        with self.transaction() as c:
            last = _latest_decision(c, reviewer)
            if last is None:
                return None
            cell = _key_from_row(last)
            prev_decision = self.get(cell)
            original = prev_decision.original if prev_decision else None
            c.execute("UPDATE audit SET undone = 1 WHERE id = ?", (last["id"],))
            before = c.execute(
                f"SELECT * FROM audit WHERE {_WHERE} AND undone = 0 AND action IN "
                f"({','.join('?' * len(_DECIDING))}) ORDER BY id DESC LIMIT 1",
                (*cell.params(), *_DECIDING),
            ).fetchone()
            restored: Decision | None = None
            if before is None:
                c.execute(f"DELETE FROM decisions WHERE {_WHERE}", cell.params())
                new_json = json.dumps(original.get("value") if original else None, ensure_ascii=False)
            else:
                c.execute(
                    f"UPDATE decisions SET value = ?, reviewer = ?, decided_at = ? WHERE {_WHERE}",
                    (before["new_value"], before["reviewer"], before["at"], *cell.params()),
                )
                restored = Decision(cell, before["file"], json.loads(before["new_value"]), before["reviewer"],
                                    before["at"], original)
                new_json = before["new_value"]
            c.execute(
                "INSERT INTO audit (sha256, form_index, section, row, key, file, action, old_value, new_value,"
                " reviewer, at) VALUES (?, ?, ?, ?, ?, ?, 'undo', ?, ?, ?, ?)",
                (*cell.params(), last["file"], last["new_value"], new_json, reviewer or last["reviewer"], now()),
            )
        return Undone(cell, last["file"], restored, original)


# -- applying decisions to records ---------------------------------------------------------


def reviewed_cell_json(cell: dict[str, Any] | None, value: Any) -> dict[str, Any]:
    """The output cell after a person decided it: their value, certain, reviewed."""
    out = dict(cell or {"raw": "", "page": None, "bbox": None})
    out["value"] = value
    out["confidence"] = 1.0
    out["needs_review"] = False
    out["reviewed"] = True
    return out


def _reviewed_value(v: Value | None, value: Any) -> Value:
    if v is None:
        v = Value(value=value, raw="", confidence=1.0)
    v.value = value
    v.confidence = 1.0
    v.needs_review = False
    v.reviewed = True
    return v


def apply_decisions(records: list[FormRecord], out_dir: Path) -> int:
    """Re-apply the reviewers' decisions to freshly built records of one file (a re-run).

    Decisions live in `<out>/review/decisions.sqlite`; none there, nothing to do.
    Returns how many cells were set. A decision for a row the new run no longer has
    is kept in the file but not applied."""
    path = db_path(out_dir)
    if not path.exists() or not records:
        return 0
    shas = {str(r.extra_source.get("sha256")) for r in records if r.extra_source.get("sha256")}
    if not shas:
        return 0
    with DecisionStore(path) as store:
        decisions = store.all(shas)
    by_form = {(str(r.extra_source.get("sha256")), r.form_index): r for r in records}
    n = 0
    for cell, d in decisions.items():
        rec = by_form.get((cell.sha256, cell.form_index))
        if rec is None:
            continue
        if cell.section == "fields":
            rec.fields[cell.key] = _reviewed_value(rec.fields.get(cell.key), d.value)
        else:
            rows = rec.funding if cell.section == "funding" else rec.indicators
            if cell.row is None or not 0 <= cell.row < len(rows):
                continue
            rows[cell.row][cell.key] = _reviewed_value(rows[cell.row].get(cell.key), d.value)
        n += 1
    return n


def cell_of(record: dict[str, Any], section: str, row: int | None, key: str) -> dict[str, Any] | None:
    """A cell of a record in its JSON form (None if absent or a plain value)."""
    if section == "fields":
        c = record.get("fields", {}).get(key)
    else:
        rows = record.get(section) or []
        c = rows[row].get(key) if row is not None and 0 <= row < len(rows) else None
    return c if isinstance(c, dict) else None


def set_cell(record: dict[str, Any], section: str, row: int | None, key: str, cell: dict[str, Any]) -> bool:
    if section == "fields":
        record.setdefault("fields", {})[key] = cell
        return True
    rows = record.get(section) or []
    if row is None or not 0 <= row < len(rows):
        return False
    rows[row][key] = cell
    return True
