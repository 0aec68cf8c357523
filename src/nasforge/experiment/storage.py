"""Experiment storage: an append-mostly record of trials, events and strategy snapshots.

Two backends share one interface and one test suite: :class:`SQLiteStorage` (one file, WAL mode,
written by the driver only, readable by other processes while an experiment runs) and
:class:`MemoryStorage` (tests, benchmarks). Each trial row carries the sequence numbers of its ask
and tell events, so that a resumed experiment can replay exactly what its strategy saw.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nasforge.errors import StorageError
from nasforge.space.architecture import Architecture
from nasforge.trial import Trial, TrialStatus

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class StoredTrial:
    """A trial plus the event sequence numbers of its ask and (when finished) its tell."""

    trial: Trial
    ask_seq: int
    tell_seq: int | None


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def dumps(obj: Any) -> str:
    """JSON text for storage (numpy scalars allowed; NaN/inf kept as JSON extensions)."""
    return json.dumps(obj, default=_json_default, separators=(",", ":"), sort_keys=True)


class Storage(ABC):
    """Where an experiment keeps its trials. Only the experiment's driver writes to it."""

    @abstractmethod
    def get_meta(self, key: str) -> Any | None:
        """A JSON value stored under ``key`` (None when absent)."""

    @abstractmethod
    def set_meta(self, key: str, value: Any) -> None:
        """Store a JSON value under ``key``."""

    @abstractmethod
    def add_trial(self, trial: Trial, ask_seq: int) -> None:
        """Record a newly asked (running) trial."""

    @abstractmethod
    def finish_trial(self, trial: Trial, tell_seq: int, meta: dict[str, Any] | None = None) -> None:
        """Record a trial's outcome (and optional meta values) in one atomic step."""

    @abstractmethod
    def stored_trials(self) -> list[StoredTrial]:
        """Every trial with its event numbers, ordered by trial number."""

    @abstractmethod
    def save_snapshot(self, seq: int, state: dict[str, Any]) -> None:
        """Store the strategy's state as of event ``seq`` (older snapshots may be dropped)."""

    @abstractmethod
    def latest_snapshot(self) -> tuple[int, dict[str, Any]] | None:
        """The newest snapshot as ``(seq, state)``, or None."""

    def trials(self) -> list[Trial]:
        """Every trial, ordered by number."""
        return [s.trial for s in self.stored_trials()]

    def count(self, status: TrialStatus | None = None) -> int:
        """Number of trials (with a given status)."""
        return sum(1 for t in self.trials() if status is None or t.status is status)

    def close(self) -> None:
        """Release resources (no-op by default)."""


class MemoryStorage(Storage):
    """Keeps everything in Python objects; nothing survives the process."""

    def __init__(self) -> None:
        self._meta: dict[str, Any] = {}
        self._trials: dict[int, StoredTrial] = {}
        self._snapshot: tuple[int, dict[str, Any]] | None = None

    def get_meta(self, key: str) -> Any | None:
        value = self._meta.get(key)
        return None if value is None else json.loads(value)

    def set_meta(self, key: str, value: Any) -> None:
        self._meta[key] = dumps(value)

    def add_trial(self, trial: Trial, ask_seq: int) -> None:
        if trial.number in self._trials:
            raise StorageError(f"trial {trial.number} is already stored")
        self._trials[trial.number] = StoredTrial(trial, ask_seq, None)

    def finish_trial(self, trial: Trial, tell_seq: int, meta: dict[str, Any] | None = None) -> None:
        old = self._trials.get(trial.number)
        if old is None:
            raise StorageError(f"trial {trial.number} was never started")
        self._trials[trial.number] = StoredTrial(trial, old.ask_seq, tell_seq)
        for k, v in (meta or {}).items():
            self.set_meta(k, v)

    def stored_trials(self) -> list[StoredTrial]:
        return [self._trials[k] for k in sorted(self._trials)]

    def trials(self) -> list[Trial]:
        return [self._trials[k].trial for k in sorted(self._trials)]

    def save_snapshot(self, seq: int, state: dict[str, Any]) -> None:
        self._snapshot = (seq, json.loads(dumps(state)))

    def latest_snapshot(self) -> tuple[int, dict[str, Any]] | None:
        return self._snapshot


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
    number INTEGER PRIMARY KEY,
    arch TEXT NOT NULL,
    status TEXT NOT NULL,
    metrics TEXT NOT NULL,
    cost REAL NOT NULL,
    error TEXT,
    info TEXT NOT NULL,
    seed INTEGER NOT NULL,
    fidelity REAL,
    started_at REAL NOT NULL,
    finished_at REAL,
    ask_seq INTEGER NOT NULL,
    tell_seq INTEGER
);
CREATE INDEX IF NOT EXISTS trials_status ON trials(status);
CREATE TABLE IF NOT EXISTS snapshots (seq INTEGER PRIMARY KEY, state TEXT NOT NULL);
"""


def _row_to_stored(row: sqlite3.Row) -> StoredTrial:
    trial = Trial(
        number=row["number"],
        arch=Architecture.from_json(row["arch"]),
        status=TrialStatus(row["status"]),
        metrics=json.loads(row["metrics"]),
        cost=row["cost"],
        error=row["error"],
        info=json.loads(row["info"]),
        seed=row["seed"],
        fidelity=row["fidelity"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
    )
    return StoredTrial(trial, row["ask_seq"], row["tell_seq"])


class SQLiteStorage(Storage):
    """One SQLite file in WAL mode.

    Every write is its own transaction, so a ``kill -9`` at any moment leaves the file with every
    finished trial that was reported before it. ``synchronous=NORMAL`` in WAL mode is durable
    against process crashes (not power loss) and keeps a commit well under a millisecond.
    Open with ``readonly=True`` to inspect an experiment another process is writing.
    """

    def __init__(self, path: str | Path, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        if readonly and not self.path.exists():
            raise StorageError(f"no experiment database at {str(self.path)!r}")
        if not readonly:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        uri = f"file:{self.path}?mode=ro" if readonly else f"file:{self.path}"
        try:
            self._conn = sqlite3.connect(uri, uri=True, timeout=30.0, isolation_level=None,
                                         check_same_thread=False)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open experiment database {str(self.path)!r}: {exc}") from exc
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        try:
            if not readonly:
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA synchronous=NORMAL")
                self._conn.executescript(_SCHEMA)
            self._check_version()
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"{str(self.path)!r} is not a nasforge experiment database: {exc}") from exc

    def _check_version(self) -> None:
        try:
            row = self._conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        except sqlite3.OperationalError as exc:
            raise StorageError(f"{str(self.path)!r} is not a nasforge experiment database ({exc})") from exc
        if row is None:
            if self.readonly:
                raise StorageError(f"{str(self.path)!r} is not a nasforge experiment database (no schema)")
            self._conn.execute(
                "INSERT INTO meta(key, value) VALUES('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
            return
        version = int(json.loads(row["value"]))
        if version > SCHEMA_VERSION:
            raise StorageError(
                f"{str(self.path)!r} was written by a newer nasforge (schema {version}; this version "
                f"reads up to {SCHEMA_VERSION}); upgrade nasforge to open it"
            )

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        if self.readonly:
            raise StorageError(f"{str(self.path)!r} is open read-only")
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def get_meta(self, key: str) -> Any | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else json.loads(row["value"])

    def set_meta(self, key: str, value: Any) -> None:
        with self._tx() as c:
            c.execute("INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", (key, dumps(value)))

    def add_trial(self, trial: Trial, ask_seq: int) -> None:
        with self._tx() as c:
            try:
                c.execute(
                    "INSERT INTO trials(number, arch, status, metrics, cost, error, info, seed, fidelity,"
                    " started_at, finished_at, ask_seq, tell_seq) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,NULL)",
                    (trial.number, trial.arch.to_json(), trial.status.value, dumps(dict(trial.metrics)),
                     trial.cost, trial.error, dumps(dict(trial.info)), trial.seed, trial.fidelity,
                     trial.started_at, trial.finished_at, ask_seq),
                )
            except sqlite3.IntegrityError:
                raise StorageError(f"trial {trial.number} is already stored") from None

    def finish_trial(self, trial: Trial, tell_seq: int, meta: dict[str, Any] | None = None) -> None:
        metrics = {k: float(v) for k, v in trial.metrics.items()}
        with self._tx() as c:
            cur = c.execute(
                "UPDATE trials SET status=?, metrics=?, cost=?, error=?, info=?, finished_at=?, tell_seq=?"
                " WHERE number=?",
                (trial.status.value, dumps(metrics), trial.cost if math.isfinite(trial.cost) else 0.0,
                 trial.error, dumps(dict(trial.info)), trial.finished_at, tell_seq, trial.number),
            )
            if cur.rowcount != 1:
                raise StorageError(f"trial {trial.number} was never started")
            for k, v in (meta or {}).items():
                c.execute("INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", (k, dumps(v)))

    def stored_trials(self) -> list[StoredTrial]:
        rows = self._conn.execute("SELECT * FROM trials ORDER BY number").fetchall()
        return [_row_to_stored(r) for r in rows]

    def count(self, status: TrialStatus | None = None) -> int:
        if status is None:
            return int(self._conn.execute("SELECT COUNT(*) FROM trials").fetchone()[0])
        return int(
            self._conn.execute("SELECT COUNT(*) FROM trials WHERE status=?", (status.value,)).fetchone()[0]
        )

    def save_snapshot(self, seq: int, state: dict[str, Any]) -> None:
        with self._tx() as c:
            c.execute("INSERT OR REPLACE INTO snapshots(seq, state) VALUES(?, ?)", (seq, dumps(state)))
            # Keep the two newest: one is always complete even if a write is torn mid-way.
            c.execute("DELETE FROM snapshots WHERE seq NOT IN (SELECT seq FROM snapshots ORDER BY seq DESC LIMIT 2)")

    def latest_snapshot(self) -> tuple[int, dict[str, Any]] | None:
        row = self._conn.execute("SELECT seq, state FROM snapshots ORDER BY seq DESC LIMIT 1").fetchone()
        return None if row is None else (int(row["seq"]), json.loads(row["state"]))

    def close(self) -> None:
        self._conn.close()


def open_storage(spec: str | Path | Storage | None) -> Storage:
    """``None`` or ``":memory:"`` -> MemoryStorage; a path -> SQLiteStorage; a Storage as is."""
    if isinstance(spec, Storage):
        return spec
    if spec is None or str(spec) == ":memory:":
        return MemoryStorage()
    return SQLiteStorage(spec)


def now() -> float:
    """Wall clock used for trial timestamps."""
    return time.time()
