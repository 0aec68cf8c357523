"""Crashes that take a whole process down: an inline trial that segfaults the driver, a script
without the ``__main__`` guard under the process pool, and the watchdog that stops what a dead
driver's Ray left running."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from nasforge.experiment import SQLiteStorage, ray_reaper
from nasforge.experiment.crash_log import CrashLog, read_crash
from nasforge.trial import TrialStatus

SRC = str(Path(__file__).resolve().parents[2] / "src")

SCRIPT = """
import faulthandler, sys
import nasforge
from nasforge.evaluators.function import FunctionEvaluator
from nasforge.experiment import Budget, Experiment

def fn(arch, ctx):
    if ctx.trial_number == 2:
        faulthandler._sigsegv()  # a crash in native code
    return {{"accuracy": float(ctx.trial_number)}}

{guard}
    space = nasforge.create_space("nb201")
    exp = Experiment(space, nasforge.create_strategy("random", space, seed=0),
                     FunctionEvaluator(fn), budget=Budget(max_trials=5), storage=sys.argv[1],
                     executor="{executor}", workers={workers}, seed=0, device="cpu")
    exp.run()
"""


def write_script(tmp_path: Path, executor: str, workers: int, guard: bool) -> Path:
    body = SCRIPT.format(executor=executor, workers=workers,
                         guard='if __name__ == "__main__":' if guard else "if True:")
    path = tmp_path / "search.py"
    path.write_text(textwrap.dedent(body))
    return path


def run(script: Path, db: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (SRC, os.environ.get(
        "PYTHONPATH")) if p))
    return subprocess.run([sys.executable, str(script), str(db)], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=script.parent)


def test_crash_log_names_the_trial_only_after_a_fatal_error(tmp_path: Path) -> None:
    path = str(tmp_path / "x.crash")
    log = CrashLog(path)
    log.open()
    log.running(3)
    log.running(7)
    assert read_crash(path) is None  # a header alone (e.g. after kill -9) is no crash
    with open(path, "a") as f:
        f.write("Fatal Python error: Segmentation fault\n\nCurrent thread ...\n")
    crash = read_crash(path)
    assert crash is not None and crash.number == 7
    assert crash.headline == "Fatal Python error: Segmentation fault"
    log.close()
    assert not os.path.exists(path)


@pytest.mark.slow
def test_inline_segfault_is_recorded_on_resume_and_the_run_goes_on(tmp_path: Path) -> None:
    script, db = write_script(tmp_path, "inline", 1, guard=True), tmp_path / "s.db"
    first = run(script, db)
    assert first.returncode != 0  # the trial took the driver down
    second = run(script, db)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "trial 2 crashed the process" in second.stderr and "process executor" in second.stderr
    trials = {t.number: t for t in SQLiteStorage(db, readonly=True).trials()}
    assert sorted(trials) == [0, 1, 2, 3, 4]
    crashed = trials[2]
    assert crashed.status is TrialStatus.FAILED and crashed.info.get("crashed")
    assert "Segmentation fault" in (crashed.error or "")
    assert "executor='process'" in (crashed.error or "")
    assert all(trials[n].ok for n in (0, 1, 3, 4))
    assert not Path(f"{db}.crash").exists()


@pytest.mark.slow
def test_process_pool_names_a_missing_main_guard_once(tmp_path: Path) -> None:
    script, db = write_script(tmp_path, "process", 2, guard=False), tmp_path / "s.db"
    t0 = time.time()
    out = run(script, db)
    assert out.returncode != 0
    assert out.stderr.count("ExecutorError: ") == 1, out.stderr[-3000:]
    assert out.stderr.count('guarded with `if __name__ == "__main__":`') == 1
    assert "exit code 1" not in out.stderr
    assert time.time() - t0 < 200
    # Nothing was evaluated, so no budget was spent on the failed starts.
    assert all(t.status is TrialStatus.RUNNING for t in SQLiteStorage(db, readonly=True).trials())


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the watchdog reads /proc")
def test_reaper_kills_the_whole_tree_when_the_pipe_closes(tmp_path: Path) -> None:
    """The tree's root ends first (as Ray's raylet may), its children survive it: all go."""
    root = subprocess.Popen(["sh", "-c", "sleep 60 & sleep 60 & wait"], start_new_session=True)
    time.sleep(0.3)
    tree = ray_reaper.descendants({(root.pid, ray_reaper._start_time(root.pid) or "")})
    assert len(tree) == 3
    read_end, write_end = os.pipe()
    watcher = threading.Thread(target=ray_reaper.watch, args=([root.pid], read_end))
    watcher.start()
    time.sleep(1.5)  # one poll records the children
    os.close(write_end)
    watcher.join(20)
    root.wait(5)
    assert not watcher.is_alive()
    deadline = time.time() + 5
    while any(_alive(pid) for pid, _ in tree) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid, _ in tree)
