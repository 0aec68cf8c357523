"""The storage contract: every backend (MemoryStorage, SQLiteStorage) must pass these tests."""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from nasforge.errors import StorageError
from nasforge.experiment.storage import (
    SCHEMA_VERSION,
    MemoryStorage,
    SQLiteStorage,
    Storage,
    open_storage,
)
from nasforge.space.architecture import Architecture
from nasforge.trial import Trial, TrialStatus


def arch(i: int) -> Architecture:
    return Architecture("toy", {"a": i % 3, "b": f"op{i}"})


def running(number: int) -> Trial:
    return Trial(number=number, arch=arch(number), seed=100 + number, fidelity=0.5,
                 started_at=1000.0 + number)


def finished(number: int, acc: float = 0.5, status: TrialStatus = TrialStatus.OK) -> Trial:
    return Trial(number=number, arch=arch(number), status=status, metrics={"accuracy": acc},
                 cost=2.5, error=None if status is TrialStatus.OK else "boom",
                 info={"curve": [0.1, 0.2]}, seed=100 + number, fidelity=0.5,
                 started_at=1000.0 + number, finished_at=1003.0 + number)


BACKENDS = ["memory", "sqlite"]


@pytest.fixture(params=BACKENDS)
def make_storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Storage]]:
    """A factory of storages of one backend; SQLite ones reopen the same file."""
    opened: list[Storage] = []
    memory = MemoryStorage()

    def make() -> Storage:
        s: Storage = memory if request.param == "memory" else SQLiteStorage(tmp_path / "exp.db")
        opened.append(s)
        return s

    yield make
    for s in opened:
        s.close()


def test_add_and_finish_roundtrip(make_storage: Callable[[], Storage]) -> None:
    s = make_storage()
    s.add_trial(running(0), ask_seq=1)
    s.add_trial(running(1), ask_seq=2)
    assert [t.status for t in s.trials()] == [TrialStatus.RUNNING, TrialStatus.RUNNING]
    # The evaluation may start later than the ask (queued, or re-run after a resume).
    done = dataclasses.replace(finished(0, 0.75), started_at=1001.5)
    s.finish_trial(done, tell_seq=3, meta={"elapsed": 4.5})
    s2 = make_storage()  # a reopened SQLite file sees the same
    t0 = s2.trial(0)
    assert t0 == done
    assert s2.trial(1) == running(1)
    assert s2.get_meta("elapsed") == 4.5
    stored = s2.stored_trials()
    assert [(x.trial.number, x.ask_seq, x.tell_seq) for x in stored] == [(0, 1, 3), (1, 2, None)]


def test_metrics_info_and_special_values(make_storage: Callable[[], Storage]) -> None:
    s = make_storage()
    s.add_trial(running(0), 1)
    t = Trial(number=0, arch=arch(0), status=TrialStatus.FAILED, metrics={}, cost=0.0,
              error="Traceback ...\nValueError: x", info={"nested": {"a": [1, 2]}}, seed=100,
              fidelity=0.5, started_at=1000.0, finished_at=1001.0)
    s.finish_trial(t, 2)
    got = make_storage().trial(0)
    assert got.error == "Traceback ...\nValueError: x"
    assert got.info == {"nested": {"a": [1, 2]}}
    assert got.status is TrialStatus.FAILED


def test_order_count_and_status_filter(make_storage: Callable[[], Storage]) -> None:
    s = make_storage()
    for n in (2, 0, 1, 3):
        s.add_trial(running(n), ask_seq=10 + n)
    s.finish_trial(finished(1), 20)
    s.finish_trial(finished(3, status=TrialStatus.FAILED), 21)
    assert [t.number for t in s.trials()] == [0, 1, 2, 3]
    assert [x.trial.number for x in s.stored_trials()] == [0, 1, 2, 3]
    assert s.count() == 4
    assert s.count(TrialStatus.RUNNING) == 2
    assert [t.number for t in s.trials(TrialStatus.FAILED)] == [3]
    assert [t.number for t in s.trials(TrialStatus.OK)] == [1]


def test_meta_roundtrip(make_storage: Callable[[], Storage]) -> None:
    s = make_storage()
    assert s.get_meta("config") is None
    s.set_meta("config", {"space": "nb201", "list": [1, 2.5, "x"], "none": None})
    s.set_meta("config", {"space": "darts"})  # replaced, not appended
    assert make_storage().get_meta("config") == {"space": "darts"}


def test_snapshots_newest_wins(make_storage: Callable[[], Storage]) -> None:
    s = make_storage()
    assert s.latest_snapshot() is None
    s.save_snapshot(5, {"rng": {"state": 1}, "population": [[1, 2]]})
    s.save_snapshot(9, {"rng": {"state": 2}, "population": []})
    s.save_snapshot(7, {"rng": {"state": 3}})  # older seq saved late does not win
    assert make_storage().latest_snapshot() == (9, {"rng": {"state": 2}, "population": []})


def test_snapshot_is_a_copy(make_storage: Callable[[], Storage]) -> None:
    s = make_storage()
    state = {"pending": [1]}
    s.save_snapshot(1, state)
    state["pending"].append(2)
    loaded = s.latest_snapshot()
    assert loaded is not None and loaded[1] == {"pending": [1]}
    loaded[1]["pending"].append(3)
    again = s.latest_snapshot()
    assert again is not None and again[1] == {"pending": [1]}


def test_duplicate_number_is_refused(make_storage: Callable[[], Storage]) -> None:
    s = make_storage()
    s.add_trial(running(0), 1)
    with pytest.raises(StorageError, match="trial 0 is already stored"):
        s.add_trial(running(0), 2)


def test_finishing_unknown_trial_is_refused(make_storage: Callable[[], Storage]) -> None:
    s = make_storage()
    with pytest.raises(StorageError, match="trial 7 was never started"):
        s.finish_trial(finished(7), 1)


def test_finishing_twice_is_refused(make_storage: Callable[[], Storage]) -> None:
    s = make_storage()
    s.add_trial(running(0), 1)
    s.finish_trial(finished(0, 0.1), 2)
    with pytest.raises(StorageError, match="trial 0 is already finished"):
        s.finish_trial(finished(0, 0.9), 3)
    assert s.trial(0).metrics == {"accuracy": 0.1}  # the first result stays


def test_finishing_with_running_status_is_refused(make_storage: Callable[[], Storage]) -> None:
    s = make_storage()
    s.add_trial(running(0), 1)
    with pytest.raises(StorageError, match="running"):
        s.finish_trial(running(0), 2)


def test_buffered_result_then_tell(make_storage: Callable[[], Storage]) -> None:
    """A result stored without a tell number can be told later (ordered loop mode)."""
    s = make_storage()
    s.add_trial(running(0), 1)
    s.finish_trial(finished(0, 0.3), None)
    st = make_storage().stored_trials()[0]
    assert st.tell_seq is None and st.trial.status is TrialStatus.OK
    s.finish_trial(finished(0, 0.3), 4)
    assert make_storage().stored_trials()[0].tell_seq == 4


def test_unknown_trial_lookup(make_storage: Callable[[], Storage]) -> None:
    with pytest.raises(StorageError, match="no trial 3"):
        make_storage().trial(3)


def test_failed_write_changes_nothing(make_storage: Callable[[], Storage]) -> None:
    s = make_storage()
    s.add_trial(running(0), 1)
    with pytest.raises(TypeError):
        s.finish_trial(finished(0), 2, meta={"bad": object()})
    assert s.trial(0).status is TrialStatus.RUNNING
    assert s.get_meta("bad") is None


def test_record_is_one_atomic_batch(make_storage: Callable[[], Storage]) -> None:
    s = make_storage()
    s.add_trial(running(0), 1)
    s.record(added=[(running(1), 2), (running(2), 3)], finished=[(finished(1), 4)],
             meta={"elapsed": 1.5})
    got = make_storage()
    assert [(x.trial.number, x.ask_seq, x.tell_seq) for x in got.stored_trials()] == [
        (0, 1, None), (1, 2, 4), (2, 3, None)]
    assert got.get_meta("elapsed") == 1.5
    # A batch with one bad part changes nothing.
    with pytest.raises(StorageError, match="trial 2 is already stored"):
        s.record(added=[(running(3), 5), (running(2), 6)], finished=[(finished(0), 7)])
    with pytest.raises(StorageError, match="trial 1 is already finished"):
        s.record(added=[(running(3), 5)], finished=[(finished(0), 7), (finished(1), 8)],
                 meta={"elapsed": 9.0})
    got = make_storage()
    assert got.count() == 3 and got.trial(0).status is TrialStatus.RUNNING
    assert got.get_meta("elapsed") == 1.5


def test_second_opener_in_one_process_is_refused(tmp_path: Path) -> None:
    a, b = SQLiteStorage(tmp_path / "e.db"), SQLiteStorage(tmp_path / "e.db")
    with a.writer(), pytest.raises(StorageError, match="already being run"), b.writer():
        pass
    a.close()
    b.close()


def test_writer_lock_is_reentrant(make_storage: Callable[[], Storage]) -> None:
    s = make_storage()
    with s.writer(), s.writer():
        s.set_meta("x", 1)
    with s.writer():  # released and taken again
        pass


# ---------------------------------------------------------------- SQLite specifics
def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    SQLiteStorage(path).close()
    con = sqlite3.connect(path)
    con.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    con.commit()
    con.close()
    with pytest.raises(StorageError, match=r"newer nasforge \(schema version 2"):
        SQLiteStorage(path)
    with pytest.raises(StorageError, match="upgrade nasforge"):
        SQLiteStorage(path, readonly=True)


def _layout(path: Path) -> tuple[list[tuple[str, str]], str]:
    """Every schema object and the journal mode of an SQLite file (to see nothing changed)."""
    con = sqlite3.connect(path)
    objects = con.execute("SELECT type, name FROM sqlite_master ORDER BY name").fetchall()
    mode = con.execute("PRAGMA journal_mode").fetchone()[0]
    con.close()
    return objects, mode


def test_newer_schema_with_another_layout_is_refused_untouched(tmp_path: Path) -> None:
    """A future layout (different tables and columns) is refused before any DDL runs on it."""
    path = tmp_path / "future.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    con.execute("INSERT INTO meta VALUES('schema_version', ?)", (str(SCHEMA_VERSION + 1),))
    con.execute("CREATE TABLE trials (id INTEGER PRIMARY KEY, payload BLOB)")
    con.commit()
    con.close()
    before = _layout(path)
    for readonly in (False, True):
        with pytest.raises(StorageError, match=r"newer nasforge \(schema version 2; this version "
                           r"reads up to 1\); upgrade nasforge"):
            SQLiteStorage(path, readonly=readonly)
    assert _layout(path) == before  # no snapshots table, no index, still not in WAL mode


def test_same_version_with_another_layout_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "odd.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    con.execute("INSERT INTO meta VALUES('schema_version', ?)", (str(SCHEMA_VERSION),))
    con.execute("CREATE TABLE trials (number INTEGER PRIMARY KEY, arch TEXT)")
    con.commit()
    con.close()
    before = _layout(path)
    with pytest.raises(StorageError, match="table 'trials' lacks column"):
        SQLiteStorage(path)
    assert _layout(path) == before


def test_another_programs_database_is_not_modified(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE users (name TEXT)")
    con.commit()
    con.close()
    before = _layout(path)
    with pytest.raises(StorageError, match=r"not a nasforge experiment database \(it has "
                       r"table\(s\) users but no schema version\)"):
        SQLiteStorage(path)
    assert _layout(path) == before


def test_interrupted_creation_is_completed(tmp_path: Path) -> None:
    """Only our tables and no version (an older nasforge died between the two): usable."""
    path = tmp_path / "half.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    con.commit()
    con.close()
    s = SQLiteStorage(path)
    s.add_trial(running(0), 1)
    assert s.count() == 1 and s.get_meta("schema_version") == SCHEMA_VERSION
    s.close()


def test_not_a_database_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "notes.db"
    bad.write_text("these are my notes, not a database\n" * 100)
    with pytest.raises(StorageError, match="not a nasforge experiment database"):
        SQLiteStorage(bad)
    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE t(x)")
    con.commit()
    con.close()
    with pytest.raises(StorageError, match="not a nasforge experiment database"):
        SQLiteStorage(other, readonly=True)


def test_readonly_refuses_writes_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="no experiment database"):
        SQLiteStorage(tmp_path / "missing.db", readonly=True)
    SQLiteStorage(tmp_path / "e.db").close()
    ro = SQLiteStorage(tmp_path / "e.db", readonly=True)
    with pytest.raises(StorageError, match="read-only"):
        ro.set_meta("x", 1)
    with pytest.raises(StorageError, match="read-only"), ro.writer():
        pass


def test_wal_mode_and_indexes(tmp_path: Path) -> None:
    s = SQLiteStorage(tmp_path / "e.db")
    con = sqlite3.connect(tmp_path / "e.db")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    plan = " ".join(str(r) for r in con.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM trials WHERE status='ok' ORDER BY number"))
    assert "trials_status" in plan
    plan = " ".join(str(r) for r in con.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM trials WHERE number=5"))
    assert "PRIMARY KEY" in plan or "INTEGER PRIMARY KEY" in plan
    con.close()
    s.close()


@pytest.mark.slow
def test_second_writer_is_refused_while_first_runs(tmp_path: Path) -> None:
    path = tmp_path / "e.db"
    first = SQLiteStorage(path)
    code = textwrap.dedent(f"""
        from nasforge.experiment.storage import SQLiteStorage
        from nasforge.errors import StorageError
        try:
            with SQLiteStorage({str(path)!r}).writer():
                print("GOT LOCK")
        except StorageError as exc:
            print("REFUSED", exc)
    """)
    with first.writer():
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=120).stdout
        assert out.startswith("REFUSED") and "already being run" in out, out
        assert str(os.getpid()) in out  # names the process that holds the experiment
    # Released: another opener (a new open file, as in another process) gets it.
    second = SQLiteStorage(path)
    with second.writer():
        pass
    first.close()
    second.close()


@pytest.mark.slow
def test_readonly_reader_in_another_process_sees_live_trials(tmp_path: Path) -> None:
    """WAL: a reader in another process sees committed trials while the writer keeps writing."""
    path = tmp_path / "live.db"
    writer = SQLiteStorage(path)
    reader_code = textwrap.dedent(f"""
        import json, sys
        from nasforge.experiment.storage import SQLiteStorage
        ro = SQLiteStorage({str(path)!r}, readonly=True)
        for line in sys.stdin:  # one query per request, on one long-lived connection
            trials = ro.trials()
            print(json.dumps([[t.number, t.status.value] for t in trials]), flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", reader_code], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None

    def ask() -> list[list[object]]:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write("q\n")
        proc.stdin.flush()
        return list(json.loads(proc.stdout.readline()))

    try:
        with writer.writer():
            writer.add_trial(running(0), 1)
            assert ask() == [[0, "running"]]
            writer.finish_trial(finished(0), 2)
            writer.add_trial(running(1), 3)
            assert ask() == [[0, "ok"], [1, "running"]]
            # A write transaction that is open (not committed) stays invisible to the reader.
            writer._conn.execute("BEGIN IMMEDIATE")
            writer._conn.execute("UPDATE trials SET status='ok' WHERE number=1")
            assert ask() == [[0, "ok"], [1, "running"]]
            writer._conn.execute("COMMIT")
            assert ask() == [[0, "ok"], [1, "ok"]]
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
        writer.close()


def test_open_storage_dispatch(tmp_path: Path) -> None:
    assert isinstance(open_storage(None), MemoryStorage)
    assert isinstance(open_storage(":memory:"), MemoryStorage)
    m = MemoryStorage()
    assert open_storage(m) is m
    s = open_storage(str(tmp_path / "sub" / "x.db"))
    assert isinstance(s, SQLiteStorage) and (tmp_path / "sub" / "x.db").exists()
    s.close()


def test_many_trials_stay_fast(tmp_path: Path) -> None:
    """20,000 trials: single-trial lookups and counts do not scan (indexed), reads are linear."""
    import time

    s = SQLiteStorage(tmp_path / "big.db")
    rows = []
    for n in range(20_000):
        t = finished(n, n / 20_000, TrialStatus.OK if n % 10 else TrialStatus.FAILED)
        rows.append((n, t.arch.to_json(), t.status.value, json.dumps(dict(t.metrics)), t.cost,
                     t.error, "{}", t.seed, t.fidelity, t.started_at, t.finished_at, n, n))
    with s._tx() as c:
        c.executemany("INSERT INTO trials VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    t0 = time.perf_counter()
    for n in range(0, 20_000, 97):
        assert s.trial(n).number == n
    lookups = (time.perf_counter() - t0) / len(range(0, 20_000, 97))
    assert s.count(TrialStatus.FAILED) == 2000
    t0 = time.perf_counter()
    everything = s.trials()
    read_all = time.perf_counter() - t0
    assert len(everything) == 20_000
    # A lookup must cost far less than reading everything (generous for a loaded machine).
    assert lookups < read_all / 50, (lookups, read_all)
    s.close()
