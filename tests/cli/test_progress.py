"""The search progress bar: ETA from the budget, best value, trial counts -- in a real terminal."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nasforge.cli.progress import BudgetEta, ProgressCallback, TrialTicks, format_duration
from nasforge.experiment.budget import Budget


def test_eta_from_trials_appears_after_the_first_trial() -> None:
    """Trials of 60 s, 10 in the budget: after one trial, 9 x 60 s remain (rich's 30-second speed
    window would still show nothing)."""
    eta = BudgetEta(Budget(max_trials=10), (0, 0.0, 0.0, 0.0), now=1000.0)
    assert eta.finish_time((0, 30.0, 0.0, 0.0), now=1030.0) is None  # nothing finished yet
    assert eta.finish_time((1, 60.0, 0.0, 0.0), now=1060.0) == pytest.approx(1060 + 9 * 60)
    # Two workers finish two trials per minute: the rate sees the parallelism.
    assert eta.finish_time((2, 60.0, 0.0, 0.0), now=1060.0) == pytest.approx(1060 + 8 * 30)


def test_eta_for_time_cost_and_fidelity_budgets() -> None:
    # Wall time: known from the start, including the seconds of earlier runs of a resumed search.
    eta = BudgetEta(Budget(max_seconds=600), (0, 100.0, 0.0, 0.0), now=0.0)
    assert eta.finish_time((0, 100.0, 0.0, 0.0), now=0.0) == pytest.approx(500)
    # Cost and fidelity: the fraction spent by this run, extrapolated; the first limit wins.
    eta = BudgetEta(Budget(max_cost=1000, max_fidelity=100), (0, 0.0, 200.0, 0.0), now=0.0)
    assert eta.finish_time((3, 10.0, 300.0, 10.0), now=10.0) == pytest.approx(10 + 70)
    assert eta.finish_time((3, 10.0, 300.0, 50.0), now=10.0) == pytest.approx(10 + 10)
    assert format_duration(3725.4) == "1:02:05" and format_duration(-3) == "0:00:00"


def test_status_counts_every_kind() -> None:
    cb = ProgressCallback(quiet=True)
    cb.counts.update(ok=3, failed=1, running=2)
    cb.best = 91.25
    assert cb.status_text("accuracy") == "best accuracy=91.25 | ok 3 failed 1 running 2"
    cb.counts.update(infeasible=4)
    assert cb.status_text("accuracy").endswith("ok 3 failed 1 infeasible 4 running 2")


def test_trial_ticks_show_the_latest_report_of_each_running_trial() -> None:
    ticks = TrialTicks("epochs", "accuracy", announce=True, max_lines=3)
    ticks.start(7, 9.0, now=100.0)
    ticks.start(3, None, now=110.0)
    assert ticks.lines(now=112.0) == ["trial 3: started (0:00:02)", "trial 7: started (0:00:12)"]
    ticks.report(7, 2, 79.5)
    ticks.report(7, 3, 81.25)  # only the latest counts
    ticks.report(3, 1, 40.0)
    ticks.report(99, 1, 1.0)  # not running (ended, or another run's): ignored
    assert ticks.lines(now=142.0) == ["trial 3: epoch 1 accuracy 40 (0:00:32)",
                                      "trial 7: epoch 3/9 accuracy 81.25 (0:00:42)"]
    ticks.end(3)
    assert ticks.lines(now=142.0) == ["trial 7: epoch 3/9 accuracy 81.25 (0:00:42)"]
    for n in (10, 11, 12):
        ticks.start(n, 9.0, now=140.0)
    lines = ticks.lines(now=142.0)  # 4 running, 3 lines: the last one counts the rest
    assert lines[:2] == ["trial 7: epoch 3/9 accuracy 81.25 (0:00:42)", "trial 10: started (0:00:02)"]
    assert lines[2] == "... 2 more running trials"


def test_trial_ticks_of_an_evaluator_that_does_not_announce_reports() -> None:
    """A function evaluator may report or not: a line appears with its first report only, and
    steps that are not epochs are shown as steps."""
    ticks = TrialTicks("fidelity", None)
    ticks.start(0, None, now=0.0)
    assert ticks.lines(now=5.0) == []
    ticks.report(0, 120, 0.5)
    assert ticks.lines(now=5.0) == ["trial 0: step 120 value 0.5 (0:00:05)"]


def test_progress_display_shows_reports_mid_trial() -> None:
    """A real search (inline): while a trial runs, what the progress display would draw holds
    the bar and a line with the trial's latest report, fed by its ``ctx.report`` calls."""
    import io

    from rich.console import Console

    import nasforge
    from nasforge.evaluators.base import EvalContext
    from nasforge.space.architecture import Architecture

    screens: list[str] = []
    progress = ProgressCallback(console=Console(file=io.StringIO(), width=100))

    def trains(arch: Architecture, ctx: EvalContext) -> dict[str, float]:
        for epoch in (1, 2):
            ctx.report(epoch, 60.0 + 10 * epoch + ctx.trial_number)
            assert progress.progress is not None
            out = Console(file=io.StringIO(), width=100)
            out.print(*progress.progress.get_renderables())
            screens.append(out.file.getvalue())  # type: ignore[attr-defined]
        return {"accuracy": 80.0 + ctx.trial_number}

    space = nasforge.create_space("nb201")
    nasforge.Experiment(space, nasforge.create_strategy("random", space, seed=0),
                        nasforge.create_evaluator("function", fn=trains),
                        budget=nasforge.Budget(max_trials=2), callbacks=[progress]).run()
    assert len(screens) == 4
    assert "search" in screens[3] and "best accuracy=80" in screens[3]
    assert re.search(r"^trial 1: step 2 value 81 \(0:00:0\d\)$", screens[3], re.M), screens[3]
    assert "trial 0" not in screens[3]  # ended: its line is gone
    assert progress.progress is None and not progress.ticks.running


SLOW_SEARCH = """
import sys, time
import nasforge
from nasforge.cli.progress import ProgressCallback
from nasforge.trial import Result, TrialStatus

def slow(arch, ctx):
    for epoch in (1, 2, 3):  # a trial that takes a while; rich's own ETA would need 30 s of them
        time.sleep(0.5)
        ctx.report(epoch, 40.0 + 10 * epoch)  # shown under the bar while the trial runs
    if ctx.trial_number == 1:
        raise RuntimeError("this one fails")
    if ctx.trial_number == 2:
        return Result(metrics={"accuracy": 1.0}, status=TrialStatus.PRUNED)
    return {"accuracy": 50.0 + ctx.trial_number}

space = nasforge.create_space("nb201")
exp = nasforge.Experiment(space, nasforge.create_strategy("random", space, seed=0),
                          nasforge.create_evaluator("function", fn=slow),
                          budget=nasforge.Budget(max_trials=8), callbacks=[ProgressCallback()])
exp.run()
print("DONE", file=sys.stderr)
"""


@pytest.mark.slow
def test_progress_bar_in_a_real_terminal(tmp_path: Path) -> None:
    """tmux runs a search with 1.5-second trials; mid-run, the captured screen shows an ETA (not
    ``-:--:--``), the best value so far, the trial counts by status and, under the bar, the
    running trial's latest report."""
    if shutil.which("tmux") is None:
        pytest.skip("tmux not installed (apt-get install tmux)")
    script = tmp_path / "slow_search.py"
    script.write_text(SLOW_SEARCH)
    session = f"nasforge-progress-{os.getpid()}"
    # A terminal 100 columns wide (COLUMNS/LINES inherited from pytest would override it).
    env_cmd = f"cd {tmp_path} && env -u COLUMNS -u LINES {sys.executable} {script}; sleep 30"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "100", "-y", "20", env_cmd],
                   check=True)
    try:
        screen = ""
        deadline = time.time() + 90
        while time.time() < deadline:
            time.sleep(0.5)
            screen = subprocess.run(["tmux", "capture-pane", "-p", "-t", session],
                                    capture_output=True, text=True, check=True).stdout
            match = re.search(r"(\d+)/8", screen)
            ticking = re.search(r"^trial [4-7]: step [1-3] value [4-7]0 ", screen, re.M)
            if (match and 4 <= int(match.group(1)) < 8 and ticking) or "DONE" in screen:
                break
        assert "DONE" not in screen, f"the search ended before the check:\n{screen}"
        line = next(ln for ln in screen.splitlines() if "search" in ln)
        assert re.search(r"ETA \d+:\d\d:\d\d", line), line
        assert "-:--:--" not in line
        assert re.search(r"best accuracy=5\d", line), line
        assert re.search(r"ok [1-9] failed 1 pruned 1 running 1$", line.rstrip()), line
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)
