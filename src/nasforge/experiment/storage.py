"""Experiment storage: an append-mostly record of trials, events and strategy snapshots.

Two backends share one interface and one test suite (``tests/experiment/test_storage_backends.py``):
:class:`SQLiteStorage` (one file, WAL mode, written by the driver only, readable by other processes
while an experiment runs) and :class:`MemoryStorage` (tests, benchmarks). Each trial row carries the
sequence numbers of its ask and tell events, so that a resumed experiment can replay exactly what
its strategy saw.

A trial row goes through three states: *running* (asked, ``tell_seq`` NULL), *finished but not yet
told* (a result is stored, ``tell_seq`` NULL; only the ordered loop mode buffers results like this)
and *told* (``tell_seq`` set). Only the last is final; finishing a told trial again is an error.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sqlite3
import threading
import time
import urllib.parse
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from nasforge.errors import ConfigError, StorageError, allowed, file_error
from nasforge.space.architecture import Architecture
from nasforge.trial import Trial, TrialStatus

#: Version of the SQLite layout this code writes; files with a newer one are refused.
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class StoredTrial:
    """A trial plus the event sequence numbers of its ask and (once told) its tell."""

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


def _check_finishable(trial: Trial) -> None:
    if not trial.status.finished:
        raise StorageError(f"trial {trial.number} cannot be finished with status 'running'")


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
        """Record a newly asked trial; a number that is already stored raises StorageError."""

    @abstractmethod
    def finish_trial(
        self, trial: Trial, tell_seq: int | None, meta: dict[str, Any] | None = None
    ) -> None:
        """Record a trial's outcome (and optional meta values) in one atomic step.

        ``tell_seq=None`` stores the result without marking it told (it can be finished again
        later with a sequence number). An unknown or already told trial raises StorageError.
        """

    def record(
        self,
        added: Sequence[tuple[Trial, int]] = (),
        finished: Sequence[tuple[Trial, int | None]] = (),
        meta: dict[str, Any] | None = None,
    ) -> None:
        """Several writes at once: new trials ``(trial, ask_seq)``, then outcomes
        ``(trial, tell_seq)``, then meta values. Backends make this one atomic transaction (the
        loop writes each tell together with the asks before it); this default is not atomic.
        """
        for trial, ask_seq in added:
            self.add_trial(trial, ask_seq)
        for trial, tell_seq in finished:
            self.finish_trial(trial, tell_seq)
        for key, value in (meta or {}).items():
            self.set_meta(key, value)

    @abstractmethod
    def stored_trials(self) -> list[StoredTrial]:
        """Every trial with its event numbers, ordered by trial number."""

    @abstractmethod
    def save_snapshot(self, seq: int, state: dict[str, Any]) -> None:
        """Store the strategy's state as of event ``seq`` (older snapshots may be dropped)."""

    @abstractmethod
    def latest_snapshot(self) -> tuple[int, dict[str, Any]] | None:
        """The newest snapshot as ``(seq, state)``, or None."""

    @abstractmethod
    def trial(self, number: int) -> Trial:
        """One trial by number (StorageError when absent)."""

    def trials(self, status: TrialStatus | None = None) -> list[Trial]:
        """Every trial (with a given status), ordered by number."""
        return [s.trial for s in self.stored_trials() if status is None or s.trial.status is status]

    def count(self, status: TrialStatus | None = None) -> int:
        """Number of trials (with a given status)."""
        return len(self.trials(status))

    @contextlib.contextmanager
    def writer(self) -> Iterator[None]:
        """Hold the right to drive the experiment (one driver at a time); no-op by default."""
        yield

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release resources (no-op by default)."""


class MemoryStorage(Storage):
    """Keeps everything in Python objects; nothing survives the process."""

    def __init__(self) -> None:
        self._meta: dict[str, str] = {}
        self._trials: dict[int, StoredTrial] = {}
        self._snapshot: tuple[int, dict[str, Any]] | None = None
        self._sorted = True  # trials are usually added in number order; sort lazily otherwise

    def get_meta(self, key: str) -> Any | None:
        value = self._meta.get(key)
        return None if value is None else json.loads(value)

    def set_meta(self, key: str, value: Any) -> None:
        self._meta[key] = dumps(value)

    def add_trial(self, trial: Trial, ask_seq: int) -> None:
        if trial.number in self._trials:
            raise StorageError(f"trial {trial.number} is already stored")
        if self._trials and trial.number < next(reversed(self._trials)):
            self._sorted = False
        self._trials[trial.number] = StoredTrial(trial, ask_seq, None)

    def finish_trial(
        self, trial: Trial, tell_seq: int | None, meta: dict[str, Any] | None = None
    ) -> None:
        _check_finishable(trial)
        old = self._trials.get(trial.number)
        if old is None:
            raise StorageError(f"trial {trial.number} was never started")
        if old.tell_seq is not None:
            raise StorageError(f"trial {trial.number} is already finished")
        encoded = {k: dumps(v) for k, v in (meta or {}).items()}  # fail before changing anything
        self._trials[trial.number] = StoredTrial(trial, old.ask_seq, tell_seq)
        self._meta.update(encoded)

    def record(
        self,
        added: Sequence[tuple[Trial, int]] = (),
        finished: Sequence[tuple[Trial, int | None]] = (),
        meta: dict[str, Any] | None = None,
    ) -> None:
        # Check everything first, so that a refused batch changes nothing (like a rollback).
        numbers = [t.number for t, _ in added]
        clash = [n for n in numbers if n in self._trials] or [
            n for i, n in enumerate(numbers) if n in numbers[:i]]
        if clash:
            raise StorageError(f"trial {clash[0]} is already stored")
        for t, _ in finished:
            _check_finishable(t)
            old = self._trials.get(t.number)
            if old is None and t.number not in numbers:
                raise StorageError(f"trial {t.number} was never started")
            if old is not None and old.tell_seq is not None:
                raise StorageError(f"trial {t.number} is already finished")
        encoded = {k: dumps(v) for k, v in (meta or {}).items()}
        for trial, ask_seq in added:
            self.add_trial(trial, ask_seq)
        for trial, tell_seq in finished:
            self.finish_trial(trial, tell_seq)
        self._meta.update(encoded)

    def _ordered(self) -> list[StoredTrial]:
        if not self._sorted:
            self._trials = dict(sorted(self._trials.items()))
            self._sorted = True
        return list(self._trials.values())

    def stored_trials(self) -> list[StoredTrial]:
        return self._ordered()

    def trial(self, number: int) -> Trial:
        try:
            return self._trials[number].trial
        except KeyError:
            raise StorageError(f"no trial {number} in this experiment") from None

    def count(self, status: TrialStatus | None = None) -> int:
        if status is None:
            return len(self._trials)
        return sum(1 for s in self._trials.values() if s.trial.status is status)

    def save_snapshot(self, seq: int, state: dict[str, Any]) -> None:
        if self._snapshot is None or seq >= self._snapshot[0]:  # the newest event number wins
            self._snapshot = (seq, json.loads(dumps(state)))

    def latest_snapshot(self) -> tuple[int, dict[str, Any]] | None:
        if self._snapshot is None:
            return None
        # A copy: the caller may mutate what it loads.
        return self._snapshot[0], json.loads(dumps(self._snapshot[1]))


#: ``durability`` setting -> SQLite ``synchronous`` level (in WAL mode). NORMAL survives a crash
#: of the process; FULL also syncs the log at every commit, so a finished trial survives power loss.
_SYNCHRONOUS = {"normal": "NORMAL", "full": "FULL"}


def check_durability(value: str) -> str:
    """``value`` if it is a known durability setting, else a ConfigError listing them."""
    if value not in _SYNCHRONOUS:
        raise ConfigError(
            f"unknown storage durability {value!r}; allowed: {allowed(_SYNCHRONOUS)} ('normal' "
            "survives a crash of the process, 'full' also a power loss, at some cost per trial)"
        )
    return value


def sqlite_uri(path: str | Path, readonly: bool = False) -> str:
    """The SQLite ``file:`` URI that opens exactly the file at ``path``.

    The path is made absolute and percent-encoded, so ``?``, ``#`` and ``%`` in a file name are
    ordinary characters: ``exp#1.db`` is a file of that name, and ``run?mode=memory`` can
    neither pick an in-memory database nor other URI parameters. ``:memory:`` and empty paths are
    refused (use :class:`MemoryStorage`, or ``storage=None``, for a database in memory).
    """
    text = os.fspath(path)
    if text.strip() in ("", ":memory:") or text.startswith("file:"):
        raise ConfigError(
            f"{text!r} is not a database file path; give a file such as 'runs/exp.db' (for a "
            "storage in memory, pass storage=None or ':memory:' to open_storage)"
        )
    if "\x00" in text:
        raise ConfigError(f"database path {text!r} contains a NUL character")
    posix = Path(os.path.abspath(text)).as_posix()
    if not posix.startswith("/"):  # Windows: C:/x.db -> /C:/x.db
        posix = "/" + posix
    quoted = urllib.parse.quote(posix, safe="/:")
    return f"file://{quoted}?mode={'ro' if readonly else 'rwc'}"


def _has_sqlite_header(path: Path) -> bool:
    """Whether the file starts like a SQLite database (so a read error means damage)."""
    try:
        with open(path, "rb") as f:
            return f.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False


def _writable_hint(path: Path) -> str:
    """Why a database could not be opened or written, when the reason is the directory."""
    folder = path.parent if str(path.parent) else Path(".")
    if folder.is_dir() and not os.access(folder, os.W_OK):
        return f" (the directory {str(folder)!r} is not writable)"
    return ""


_SCHEMA = f"""
BEGIN;
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
INSERT OR IGNORE INTO meta(key, value) VALUES('schema_version', '{SCHEMA_VERSION}');
COMMIT;
"""

#: The columns of each table of the layout above (an existing file must have them all).
_LAYOUT = {
    "meta": ("key", "value"),
    "trials": ("number", "arch", "status", "metrics", "cost", "error", "info", "seed", "fidelity",
               "started_at", "finished_at", "ask_seq", "tell_seq"),
    "snapshots": ("seq", "state"),
}

_MARKS = ",".join("?" * 12)
_COLUMNS = (
    "number, arch, status, metrics, cost, error, info, seed, fidelity, started_at, finished_at,"
    " ask_seq, tell_seq"
)


def _row_to_stored(row: tuple[Any, ...]) -> StoredTrial:
    (number, arch, status, metrics, cost, error, info, seed, fidelity, started_at, finished_at,
     ask_seq, tell_seq) = row
    trial = Trial(
        number=number,
        arch=Architecture.from_json(arch),
        status=TrialStatus(status),
        metrics=json.loads(metrics),
        cost=cost,
        error=error,
        info=json.loads(info),
        seed=seed,
        fidelity=fidelity,
        started_at=started_at,
        finished_at=finished_at,
    )
    return StoredTrial(trial, ask_seq, tell_seq)


class SQLiteStorage(Storage):
    """One SQLite file in WAL mode.

    Every write is its own transaction, so a ``kill -9`` at any moment leaves the file with every
    finished trial that was reported before it. ``synchronous=NORMAL`` in WAL mode is durable
    against process crashes (not power loss) and keeps a commit in the tens of microseconds.
    Open with ``readonly=True`` to inspect an experiment another process is writing: in WAL mode
    readers never block the writer and each query sees the newest committed trials.
    ``durability="full"`` (``synchronous=FULL``) also syncs every commit to the disk, so told
    trials survive a power loss or an OS crash, at the price of one fsync per commit.

    The path is always a plain file name (see :func:`sqlite_uri`), and :meth:`writer` locks the
    file it resolves to, whatever path reaches it.
    """

    def __init__(
        self, path: str | Path, readonly: bool = False, durability: str = "normal"
    ) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self.durability = check_durability(durability)
        uri = sqlite_uri(path, readonly)  # refuses ':memory:' and the like before any I/O
        if readonly and not self.path.exists():
            raise StorageError(f"no experiment database at {str(self.path)!r}")
        if self.path.is_dir():
            raise StorageError(f"{str(self.path)!r} is a directory; give the path of a database file")
        if not readonly:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise file_error(exc, self.path.parent, "create the storage directory") from None
        try:
            self._conn = sqlite3.connect(uri, uri=True, timeout=30.0, isolation_level=None,
                                         check_same_thread=False)
        except sqlite3.Error as exc:
            raise StorageError(
                f"cannot open experiment database {str(self.path)!r}: {exc}"
                + _writable_hint(self.path)
            ) from exc
        # One connection may be used from callback threads; SQLite objects are not thread-safe.
        self._lock = threading.RLock()
        self._lock_file: IO[str] | None = None
        try:
            # Look before writing: a file from a newer nasforge, or another program's database,
            # must be refused as it is, not half-converted by our DDL.
            self._check_version()
            if not readonly:
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute(f"PRAGMA synchronous={_SYNCHRONOUS[self.durability]}")
                self._conn.executescript(_SCHEMA)  # one transaction: tables and version together
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise self._diagnose(exc) from exc
        except StorageError:
            # A damaged file can look like "not ours" (its table list unreadable): say what it is.
            problem = self._integrity_problem()
            self._conn.close()
            if problem:
                raise StorageError(
                    f"{str(self.path)!r} is corrupt ({problem}); restore it from a copy or start "
                    "a new experiment with another path"
                ) from None
            raise

    def _integrity_problem(self) -> str | None:
        """SQLite's first complaint about the file's structure, or None when it is sound."""
        try:
            rows = self._conn.execute("PRAGMA quick_check(1)").fetchall()
        except sqlite3.DatabaseError as exc:
            return str(exc)
        first = str(rows[0][0]) if rows else "ok"
        return None if first == "ok" else first

    def _diagnose(self, exc: sqlite3.Error, action: str = "open") -> StorageError:
        """What a SQLite error means for the user: a corrupt file, a full disk, no permission..."""
        name = str(self.path)
        text = str(exc)
        if isinstance(exc, sqlite3.DatabaseError) and (
            "malformed" in text or "not a database" in text or "corrupt" in text
        ):
            if not _has_sqlite_header(self.path):
                return StorageError(
                    f"{name!r} is not a nasforge experiment database (not a SQLite file: {text}); "
                    "use another path"
                )
            return StorageError(
                f"{name!r} is corrupt ({text}); restore it from a copy or start a new "
                "experiment with another path"
            )
        if "full" in text or "disk I/O" in text or "readonly" in text or "unable to open" in text:
            return StorageError(f"cannot {action} {name!r}: {text}{_writable_hint(self.path)}")
        return StorageError(f"{name!r} is not a nasforge experiment database: {text}")

    def _check_version(self) -> None:
        """Refuse (without writing) a file that is newer, not ours, or not laid out as ours."""
        name = str(self.path)
        tables = {r[0] for r in self._conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'")}
        if not tables:
            if self.readonly:
                raise StorageError(
                    f"{name!r} is not a nasforge experiment database (no schema version)"
                )
            return  # a new (or empty) file: the schema is created next
        row = None
        if "meta" in tables:
            try:
                row = self._conn.execute(
                    "SELECT value FROM meta WHERE key='schema_version'").fetchone()
            except sqlite3.OperationalError as exc:
                raise StorageError(
                    f"{name!r} is not a nasforge experiment database ({exc})"
                ) from exc
        if row is None:
            if self.readonly or not tables <= set(_LAYOUT):
                raise StorageError(
                    f"{name!r} is not a nasforge experiment database (it has table(s) "
                    f"{', '.join(sorted(tables))} but no schema version); use another path"
                )
            # Only our tables: a creation interrupted by an older nasforge, whose DDL and version
            # were not one transaction. The layout check below still applies.
            row = (str(SCHEMA_VERSION),)
        try:
            version = int(json.loads(row[0]))
        except (ValueError, TypeError):
            raise StorageError(f"{name!r} has an unreadable schema version {row[0]!r}") from None
        if version > SCHEMA_VERSION:
            raise StorageError(
                f"{name!r} was written by a newer nasforge (schema version {version}; "
                f"this version reads up to {SCHEMA_VERSION}); upgrade nasforge to open it"
            )
        for table, columns in _LAYOUT.items():
            if table not in tables:
                if self.readonly:
                    raise StorageError(
                        f"{name!r} is not a complete nasforge experiment database (no table "
                        f"{table!r})"
                    )
                continue  # created by the schema script
            have = {r[1] for r in self._conn.execute(f"PRAGMA table_info({table})")}
            missing = [c for c in columns if c not in have]
            if missing:
                raise StorageError(
                    f"{name!r} does not have the layout of a nasforge experiment database "
                    f"(schema version {version}): table {table!r} lacks column(s) "
                    f"{', '.join(missing)}"
                )

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        if self.readonly:
            raise StorageError(f"{str(self.path)!r} is open read-only")
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self._conn
                except BaseException:
                    if self._conn.in_transaction:  # SQLite may have rolled back a failed write
                        self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
            except sqlite3.DatabaseError as exc:  # a full disk, a size limit, a corrupt page
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise self._diagnose(exc, "write to") from exc

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        with self._lock:
            try:
                return self._conn.execute(sql, args).fetchall()
            except sqlite3.DatabaseError as exc:
                raise self._diagnose(exc, "read") from exc

    def _loads(self, text: str, what: str) -> Any:
        """JSON from a stored column; a hand-edited or damaged value names where it is."""
        try:
            return json.loads(text)
        except (TypeError, ValueError) as exc:
            raise StorageError(
                f"{str(self.path)!r}: {what} holds invalid JSON ({exc}): {str(text)[:80]!r}"
            ) from None

    def _stored(self, row: tuple[Any, ...]) -> StoredTrial:
        try:
            return _row_to_stored(row)
        except (TypeError, ValueError, KeyError) as exc:  # bad JSON, an unknown status, ...
            raise StorageError(
                f"{str(self.path)!r}: trial {row[0]} cannot be read ({type(exc).__name__}: {exc}); "
                "the row was edited or damaged"
            ) from None

    def get_meta(self, key: str) -> Any | None:
        rows = self._read("SELECT value FROM meta WHERE key=?", (key,))
        return None if not rows else self._loads(rows[0][0], f"meta value {key!r}")

    def set_meta(self, key: str, value: Any) -> None:
        text = dumps(value)
        with self._tx() as c:
            c.execute("INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", (key, text))

    def add_trial(self, trial: Trial, ask_seq: int) -> None:
        self.record(added=[(trial, ask_seq)])

    def finish_trial(
        self, trial: Trial, tell_seq: int | None, meta: dict[str, Any] | None = None
    ) -> None:
        self.record(finished=[(trial, tell_seq)], meta=meta)

    def record(
        self,
        added: Sequence[tuple[Trial, int]] = (),
        finished: Sequence[tuple[Trial, int | None]] = (),
        meta: dict[str, Any] | None = None,
    ) -> None:
        # Encode everything first, so that bad input fails before the transaction starts.
        inserts = [(t.number, t.arch.to_json(), t.status.value, dumps(dict(t.metrics)), t.cost,
                    t.error, dumps(dict(t.info)), t.seed, t.fidelity, t.started_at,
                    t.finished_at, ask_seq) for t, ask_seq in added]
        updates = []
        for t, tell_seq in finished:
            _check_finishable(t)
            metrics = dumps({k: float(v) for k, v in t.metrics.items()})
            cost = t.cost if math.isfinite(t.cost) else 0.0
            updates.append((t.status.value, metrics, cost, t.error, dumps(dict(t.info)),
                            t.started_at, t.finished_at, tell_seq, t.number))
        encoded = [(k, dumps(v)) for k, v in (meta or {}).items()]
        with self._tx() as c:
            for row in inserts:
                try:
                    c.execute(f"INSERT INTO trials({_COLUMNS}) VALUES({_MARKS},NULL)", row)
                except sqlite3.IntegrityError:
                    raise StorageError(f"trial {row[0]} is already stored") from None
            for args in updates:
                cur = c.execute(
                    "UPDATE trials SET status=?, metrics=?, cost=?, error=?, info=?, started_at=?,"
                    " finished_at=?, tell_seq=? WHERE number=? AND tell_seq IS NULL",
                    args,
                )
                if cur.rowcount != 1:
                    number = args[-1]
                    exists = c.execute("SELECT 1 FROM trials WHERE number=?", (number,)).fetchone()
                    if exists is None:
                        raise StorageError(f"trial {number} was never started")
                    raise StorageError(f"trial {number} is already finished")
            if encoded:
                c.executemany("INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", encoded)

    def stored_trials(self) -> list[StoredTrial]:
        rows = self._read(f"SELECT {_COLUMNS} FROM trials ORDER BY number")
        return [self._stored(r) for r in rows]

    def trials(self, status: TrialStatus | None = None) -> list[Trial]:
        if status is None:
            rows = self._read(f"SELECT {_COLUMNS} FROM trials ORDER BY number")
        else:  # served by the status index
            rows = self._read(f"SELECT {_COLUMNS} FROM trials WHERE status=? ORDER BY number",
                              (status.value,))
        return [self._stored(r).trial for r in rows]

    def trial(self, number: int) -> Trial:
        rows = self._read(f"SELECT {_COLUMNS} FROM trials WHERE number=?", (number,))
        if not rows:
            raise StorageError(f"no trial {number} in {str(self.path)!r}")
        return self._stored(rows[0]).trial

    def count(self, status: TrialStatus | None = None) -> int:
        if status is None:
            return int(self._read("SELECT COUNT(*) FROM trials")[0][0])
        return int(self._read("SELECT COUNT(*) FROM trials WHERE status=?", (status.value,))[0][0])

    def save_snapshot(self, seq: int, state: dict[str, Any]) -> None:
        text = dumps(state)
        with self._tx() as c:
            c.execute("INSERT OR REPLACE INTO snapshots(seq, state) VALUES(?, ?)", (seq, text))
            # Keep the two newest, so that a reader always finds a complete one.
            c.execute("DELETE FROM snapshots WHERE seq NOT IN "
                      "(SELECT seq FROM snapshots ORDER BY seq DESC LIMIT 2)")

    def latest_snapshot(self) -> tuple[int, dict[str, Any]] | None:
        rows = self._read("SELECT seq, state FROM snapshots ORDER BY seq DESC LIMIT 1")
        if not rows:
            return None
        return int(rows[0][0]), self._loads(rows[0][1], f"snapshot {rows[0][0]}")

    @contextlib.contextmanager
    def writer(self) -> Iterator[None]:
        """Hold an exclusive lock on ``<db>.lock`` while an experiment drives this file.

        The operating system drops the lock when the process dies (even by ``kill -9``), so a
        restarted run never waits on a dead one, while two live runs on one file are refused.
        """
        if self.readonly:
            raise StorageError(f"{str(self.path)!r} is open read-only; it cannot run an experiment")
        if self._lock_file is not None:  # re-entrant within one process
            yield
            return
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks; one driver per file is up to the user
            yield
            return
        # Keyed on the file itself: a symlink, a relative path or '..' reach the same lock.
        real = self.path.resolve()
        lock_path = real.with_name(real.name + ".lock")
        try:
            handle = open(lock_path, "a+")  # noqa: SIM115 (held across the yield)
        except OSError as exc:
            raise file_error(exc, lock_path, "create the lock file") from None
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            owner = handle.read().strip() or "unknown"
            handle.close()
            raise StorageError(
                f"the experiment in {str(self.path)!r} is already being run (by process {owner}); "
                "wait for it to finish or stop it first"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock_file = handle
        try:
            yield
        finally:
            self._lock_file = None
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            handle.close()

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def open_storage(spec: str | Path | Storage | None, durability: str | None = None) -> Storage:
    """``None`` or ``":memory:"`` -> MemoryStorage; a path -> SQLiteStorage; a Storage as is.

    ``durability`` (``"normal"`` or ``"full"``, see :class:`SQLiteStorage`) applies to a path; it
    cannot be given for memory or an already opened storage (it would be silently ignored).
    """
    if durability is not None:
        check_durability(durability)
    if isinstance(spec, Storage):
        if durability not in (None, getattr(spec, "durability", "normal")):
            raise ConfigError(
                f"durability={durability!r} was given with an opened storage; open it with "
                f"SQLiteStorage(path, durability={durability!r}) instead"
            )
        return spec
    if spec is None or str(spec) == ":memory:":
        if durability not in (None, "normal"):
            raise ConfigError(
                f"durability={durability!r} needs a database file; the storage is in memory "
                "(give a path with --storage)"
            )
        return MemoryStorage()
    return SQLiteStorage(spec, durability=durability or "normal")


def now() -> float:
    """Wall clock used for trial timestamps."""
    return time.time()
