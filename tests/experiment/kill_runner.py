"""Runs one resumable experiment; test_kill_resume.py kills it with SIGKILL and starts it again.

Usage: python kill_runner.py DB LOG STATE_OUT TRIALS [EXECUTOR WORKERS]

The evaluator is deterministic, sleeps a few milliseconds and appends ``"<driver pid> <trial>"`` to
LOG after each evaluation, so the test can see which run evaluated which trial. When the budget is
spent the strategy's final state is written to STATE_OUT.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import nasforge
from nasforge.evaluators.base import EvalContext
from nasforge.evaluators.function import FunctionEvaluator
from nasforge.experiment import Budget, Experiment
from nasforge.space.architecture import Architecture

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from exp_runtime_helpers import metrics


def logged_metrics(arch: Architecture, ctx: EvalContext) -> dict[str, float]:
    """Deterministic metrics after a short sleep; every evaluation is appended to the side log.

    While the file ``KILL_TEST_HOLD`` exists and the log has ``KILL_TEST_HOLD_AT`` lines or more,
    an evaluation waits after logging (until the file is removed or its driver dies), so that a
    test can stop a run at a known point however loaded the machine is.
    """
    parent = os.getppid()  # before anything: a driver killed meanwhile must not hold us forever
    time.sleep(0.003)
    out = metrics(arch, ctx)
    log = os.environ["KILL_TEST_LOG"]
    with open(log, "a") as fh:  # one write per line: no torn lines
        fh.write(f"{os.environ['KILL_TEST_DRIVER']} {ctx.trial_number}\n")
    hold, at = os.environ.get("KILL_TEST_HOLD"), int(os.environ.get("KILL_TEST_HOLD_AT", "0"))
    while hold and os.path.exists(hold) and os.getppid() == parent:
        with open(log) as fh:
            if sum(1 for _ in fh) < at:
                break
        time.sleep(0.01)
    return out


def build(db: str, trials: int, executor: Any = "inline", workers: int = 1,
          ordered: bool = False) -> Experiment:
    """The experiment every run of this script performs (tests build it in-process too)."""
    space = nasforge.create_space("nb201")
    strategy = nasforge.create_strategy("rea", space, seed=11, population_size=10, sample_size=3)
    return Experiment(space, strategy, FunctionEvaluator(logged_metrics),
                      budget=Budget(max_trials=trials), storage=db, seed=5, device="cpu",
                      executor=executor, workers=workers, ordered=ordered, snapshot_every=5)


def main() -> None:
    db, log, state_out, trials = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    executor = sys.argv[5] if len(sys.argv) > 5 else "inline"
    workers = int(sys.argv[6]) if len(sys.argv) > 6 else 1
    os.environ["KILL_TEST_LOG"] = log
    os.environ["KILL_TEST_DRIVER"] = str(os.getpid())  # worker processes inherit it
    exp = build(db, trials, executor, workers, ordered=workers > 1)
    exp.run()
    with open(state_out, "w") as fh:
        json.dump(exp.strategy.state_dict(), fh)


if __name__ == "__main__":
    main()
