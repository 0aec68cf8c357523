"""Storage paths and failures: the path is a plain file name (never SQLite URI syntax), the
single-writer lock follows the file, durability maps to SQLite's synchronous level, and damaged
databases, bad rows and full disks are reported as what they are."""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nasforge.errors import ConfigError, FileAccessError, StorageError
from nasforge.experiment.storage import MemoryStorage, SQLiteStorage, open_storage, sqlite_uri
from nasforge.space.architecture import Architecture
from nasforge.trial import Trial


def add(storage: SQLiteStorage, number: int) -> None:
    storage.add_trial(Trial(number=number, arch=Architecture("toy", {"a": number}), seed=number,
                            started_at=1.0), ask_seq=number + 1)


@pytest.mark.parametrize("name", ["exp#1.db", "run?cache=shared&mode=memory", "a%20b.db",
                                  "sp ace's.db", "ü.db"])
def test_uri_characters_are_part_of_the_file_name(tmp_path: Path, name: str) -> None:
    s = SQLiteStorage(tmp_path / name)
    add(s, 0)
    s.close()
    assert (tmp_path / name).is_file()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(("-wal", "-shm"))) \
        == [name]
    reread = SQLiteStorage(tmp_path / name, readonly=True)
    assert reread.count() == 1
    reread.close()


def test_hash_names_are_different_databases(tmp_path: Path) -> None:
    a, b = SQLiteStorage(tmp_path / "exp#1.db"), SQLiteStorage(tmp_path / "exp#2.db")
    add(a, 0)
    assert b.count() == 0
    with a.writer(), b.writer():  # two files, two locks: no clash
        pass
    a.close()
    b.close()


def test_uri_is_quoted_and_absolute(tmp_path: Path) -> None:
    uri = sqlite_uri(tmp_path / "x?mode=memory#frag%.db", readonly=True)
    assert uri.startswith("file:///") and uri.endswith("?mode=ro")
    assert "x%3Fmode%3Dmemory%23frag%25.db" in uri
    assert sqlite_uri("rel.db").startswith(f"file://{Path.cwd().as_posix()}")


@pytest.mark.parametrize("bad", [":memory:", "", "  ", "file:x.db", "file::memory:?cache=shared",
                                 "a\x00b.db"])
def test_non_file_paths_are_refused(bad: str) -> None:
    with pytest.raises(ConfigError, match="database"):
        SQLiteStorage(bad)


def test_open_storage_memory_and_durability() -> None:
    assert isinstance(open_storage(":memory:"), MemoryStorage)
    assert isinstance(open_storage(None, durability="normal"), MemoryStorage)
    with pytest.raises(ConfigError, match="needs a database file"):
        open_storage(None, durability="full")
    with pytest.raises(ConfigError, match=r"unknown storage durability 'fsync'.*'normal', 'full'"):
        open_storage("x.db", durability="fsync")


@pytest.mark.parametrize(("durability", "level"), [("normal", 1), ("full", 2)])
def test_durability_sets_synchronous(tmp_path: Path, durability: str, level: int) -> None:
    s = open_storage(tmp_path / "d.db", durability=durability)
    assert isinstance(s, SQLiteStorage) and s.durability == durability
    assert s._conn.execute("PRAGMA synchronous").fetchone()[0] == level
    with pytest.raises(ConfigError, match="opened storage"):
        open_storage(s, durability="full" if durability == "normal" else "normal")
    s.close()


def test_lock_follows_the_file_not_the_path_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                 ) -> None:
    (tmp_path / "sub").mkdir()
    db = tmp_path / "exp.db"
    (tmp_path / "link.db").symlink_to(db)
    monkeypatch.chdir(tmp_path / "sub")
    first = SQLiteStorage(db)
    with first.writer():
        for other in (tmp_path / "link.db", Path("../exp.db"), tmp_path / "sub" / ".." / "exp.db"):
            second = SQLiteStorage(other)
            with pytest.raises(StorageError, match="already being run"), second.writer():
                pass
            second.close()
    first.close()
    assert not (tmp_path / "link.db.lock").exists()  # one lock file, beside the real database


def test_corrupt_database_is_called_corrupt(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    s = SQLiteStorage(db)
    for i in range(50):
        add(s, i)
    s.close()
    data = bytearray(db.read_bytes())
    rng = random.Random(0)
    for i in range(100, len(data)):  # everything after the 100-byte header, schema page included
        data[i] = rng.randrange(256)
    db.write_bytes(bytes(data))
    for readonly in (True, False):
        with pytest.raises(StorageError, match="is corrupt") as err:
            SQLiteStorage(db, readonly=readonly).count()
        assert "schema version" not in str(err.value)


def test_row_with_bad_json_names_the_trial(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    s = SQLiteStorage(db)
    add(s, 0)
    add(s, 1)
    s.set_meta("note", "x")
    s.close()
    with sqlite3.connect(db) as con:
        con.execute("UPDATE trials SET info='{not json' WHERE number=1")
        con.execute("UPDATE meta SET value='[1,' WHERE key='note'")
    r = SQLiteStorage(db, readonly=True)
    with pytest.raises(StorageError, match="trial 1 cannot be read"):
        r.trials()
    with pytest.raises(StorageError, match="meta value 'note' holds invalid JSON"):
        r.get_meta("note")
    assert r.trial(0).number == 0  # the good rows still read
    r.close()


def test_unusable_directories_name_the_path(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(FileAccessError, match=r"cannot create the storage directory .*file"):
        SQLiteStorage(blocker / "exp.db")
    with pytest.raises(StorageError, match="is a directory"):
        SQLiteStorage(tmp_path)


def test_file_size_limit_is_reported_as_a_write_error(tmp_path: Path) -> None:
    """A database that hits RLIMIT_FSIZE (like a full disk) gives one clear error, no traceback."""
    resource = pytest.importorskip("resource")
    assert resource
    script = textwrap.dedent(f"""
        import resource, signal
        from nasforge.errors import StorageError
        from nasforge.experiment.storage import SQLiteStorage
        from nasforge.space.architecture import Architecture
        from nasforge.trial import Trial
        s = SQLiteStorage({str(tmp_path / "big.db")!r})
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
        try:
            for i in range(10000):
                s.add_trial(Trial(number=i, arch=Architecture("toy", {{"a": "x" * 500}}),
                                  seed=i, started_at=1.0), ask_seq=i + 1)
        except StorageError as exc:
            print("ERROR", exc)
    """)
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, check=False, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert "Traceback" not in res.stderr, res.stderr[-2000:]
    assert res.stdout.startswith("ERROR cannot write to"), res.stdout + res.stderr[-2000:]
    assert "big.db" in res.stdout
