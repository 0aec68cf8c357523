"""THE KILL TEST: SIGKILL a running experiment at random moments, restart it, compare.

A real subprocess runs ``kill_runner.py`` (SQLite storage, REA, deterministic evaluator that logs
every evaluation). We kill it with SIGKILL at random moments (during start-up, mid-trial, between
trials, during snapshots) and start the same command again until it completes. Then:

* no finished trial is lost: trials are numbered 0..N-1 and every one is finished;
* no finished trial is evaluated twice: after each kill we read which trials the database holds as
  finished; no later process may evaluate any of them again (the side log says who evaluated what);
* the final trials (architecture, status, metrics per number) and the strategy's final state equal
  those of an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kill_runner import build

from nasforge.experiment import InlineExecutor, SQLiteStorage
from nasforge.trial import TrialStatus

RUNNER = Path(__file__).with_name("kill_runner.py")


def start(db: Path, log: Path, state: Path, trials: int, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, str(RUNNER), str(db), str(log), str(state),
                             str(trials), *extra], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def log_lines(log: Path) -> list[tuple[int, int]]:
    if not log.exists():
        return []
    out = []
    for line in log.read_text().splitlines():
        pid, number = line.split()
        out.append((int(pid), int(number)))
    return out


def told(db: Path) -> set[int]:
    """Numbers of trials the database holds as finished and told."""
    if not db.exists():
        return set()
    try:
        s = SQLiteStorage(db, readonly=True)
    except Exception:  # killed before the schema was written
        return set()
    try:
        return {x.trial.number for x in s.stored_trials() if x.tell_seq is not None}
    finally:
        s.close()


def final_rows(db: Path) -> list[tuple[object, ...]]:
    s = SQLiteStorage(db, readonly=True)
    rows = [(t.number, t.arch.to_json(), t.status.value, dict(t.metrics), t.seed)
            for t in s.trials()]
    s.close()
    return rows


def run_with_kills(tmp: Path, trials: int, kills: int, rng: random.Random,
                   *extra: str) -> tuple[Path, Path, int]:
    db, log, state = tmp / "killed.db", tmp / "killed.log", tmp / "killed-state.json"
    finished_at_kill: list[tuple[set[int], set[int]]] = []  # (pids so far, told trials)
    pids: set[int] = set()
    n_kills = 0
    while True:
        proc = start(db, log, state, trials, *extra)
        pids.add(proc.pid)
        if n_kills < kills:
            before = len(log_lines(log))
            # Each kill lets the run advance by at most ``step`` evaluations, so all ``kills``
            # kills land before the run can finish, however fast this machine starts Python.
            step = max(2, trials // (2 * kills))
            if rng.random() < 0.25:
                # Anywhere, start-up included: after a random delay (or ``step`` evaluations).
                until = time.time() + rng.uniform(0.0, 4.0)
                while time.time() < until and len(log_lines(log)) < before + step \
                        and proc.poll() is None:
                    time.sleep(0.002)
            else:
                # Mid-run: after a random number of further evaluations, plus random jitter.
                target = before + rng.randint(1, step)
                deadline = time.time() + 60
                while len(log_lines(log)) < target and proc.poll() is None \
                        and time.time() < deadline:
                    time.sleep(0.002)
                time.sleep(rng.uniform(0.0, 0.006))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=30)
                n_kills += 1
                finished_at_kill.append((set(pids), told(db)))
                continue
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()
        break
    # No trial the database held as finished at a kill is evaluated by any later process.
    for earlier_pids, done in finished_at_kill:
        again = [(pid, n) for pid, n in log_lines(log) if pid not in earlier_pids and n in done]
        assert not again, f"finished trials evaluated again after a kill: {again}"
    return db, state, n_kills


def reference(tmp: Path, trials: int, monkeypatch: pytest.MonkeyPatch,
              executor: object = "inline") -> tuple[list[tuple[object, ...]], object]:
    """The uninterrupted run, in this process (same experiment as kill_runner.py builds)."""
    monkeypatch.setenv("KILL_TEST_LOG", str(tmp / "reference.log"))
    monkeypatch.setenv("KILL_TEST_DRIVER", "0")
    exp = build(str(tmp / "reference.db"), trials, executor, ordered=executor != "inline").run()
    return final_rows(tmp / "reference.db"), exp.strategy.state_dict()


@pytest.mark.slow
def test_sigkill_at_random_moments_resumes_exactly(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    trials = 120
    ref_rows, ref_state = reference(tmp_path, trials, monkeypatch)
    rng = random.Random(int(os.environ.get("NASFORGE_KILL_SEED", "20240601")))
    db, state, n_kills = run_with_kills(tmp_path, trials, kills=5, rng=rng)
    assert n_kills == 5  # the run was really interrupted repeatedly

    rows = final_rows(db)
    assert [r[0] for r in rows] == list(range(trials))  # nothing lost, nothing extra
    assert all(r[2] == TrialStatus.OK.value for r in rows)
    assert rows == ref_rows  # identical to the uninterrupted run
    assert json.loads(state.read_text()) == json.loads(json.dumps(ref_state))
    # Every trial was evaluated at least once, and re-evaluations are bounded by the kills
    # (only the trial that was running when a process died is evaluated again).
    evaluated = [n for _, n in log_lines(tmp_path / "killed.log")]
    assert set(evaluated) == set(range(trials))
    assert len(evaluated) - trials <= n_kills


@pytest.mark.slow
def test_process_pool_survives_sigkill_and_ctrl_c(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Two worker processes (ordered mode). The driver is killed with SIGKILL once, then stopped
    with Ctrl-C (SIGINT to its whole process group, as a terminal sends it): it exits with
    KeyboardInterrupt, no worker survives, the trials that were running stay 'running'. The same
    command then completes, with exactly the trials of an uninterrupted run on the inline executor
    (InlineExecutor(capacity=2) reproduces the pool's schedule)."""
    trials = 36
    db, log, state = tmp_path / "killed.db", tmp_path / "killed.log", tmp_path / "state.json"
    extra = ("process", "2")
    # Each phase holds its evaluations once the log has enough lines (kill_runner.py), so that
    # the signal always lands mid-run: with 3 ms trials a starved test process could otherwise
    # poll the log only after the whole run had finished.
    hold = tmp_path / "hold"
    hold.touch()
    monkeypatch.setenv("KILL_TEST_HOLD", str(hold))
    monkeypatch.setenv("KILL_TEST_HOLD_AT", "6")

    def wait_for(n_lines: int, proc: subprocess.Popen[bytes]) -> None:
        deadline = time.time() + 120
        while len(log_lines(log)) < n_lines and proc.poll() is None and time.time() < deadline:
            time.sleep(0.003)

    # 1. SIGKILL the driver mid-run.
    proc = start(db, log, state, trials, *extra)
    wait_for(6, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    done_at_kill, first_pid = told(db), proc.pid
    assert 0 < len(done_at_kill) < trials

    # 2. Resume, then Ctrl-C.
    monkeypatch.setenv("KILL_TEST_HOLD_AT", str(len(log_lines(log)) + 6))
    proc = subprocess.Popen([sys.executable, str(RUNNER), str(db), str(log), str(state),
                             str(trials), *extra], start_new_session=True,
                            # A shell's background job ignores SIGINT and its children inherit that
                            # (Python then installs no KeyboardInterrupt handler): a terminal's
                            # Ctrl-C reaches a foreground program, so the driver gets the default.
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for(len(log_lines(log)) + 6, proc)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and b"KeyboardInterrupt" in err, err.decode()
    # Nothing of that session is left: workers were stopped (multiprocessing's resource tracker
    # needs a moment to see its pipe close and exit on its own).
    gone_by = time.time() + 15
    while time.time() < gone_by:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)
    stored = SQLiteStorage(db, readonly=True).trials()
    assert len(stored) < trials
    assert any(t.status is TrialStatus.RUNNING for t in stored)
    done_at_interrupt = told(db)

    # 3. The same command completes the run.
    hold.unlink()
    proc = start(db, log, state, trials, *extra)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()

    lines = log_lines(log)
    again = [n for pid, n in lines if pid != first_pid and n in done_at_kill]
    assert not again, f"finished trials evaluated again after the SIGKILL: {again}"
    later = [n for pid, n in lines if pid == proc.pid and n in done_at_interrupt]
    assert not later, f"finished trials evaluated again after Ctrl-C: {later}"
    rows = final_rows(db)
    assert [r[0] for r in rows] == list(range(trials))
    assert all(r[2] == TrialStatus.OK.value for r in rows)
    ref_rows, ref_state = reference(tmp_path, trials, monkeypatch, InlineExecutor(capacity=2))
    assert rows == ref_rows
    assert json.loads(state.read_text()) == json.loads(json.dumps(ref_state))
