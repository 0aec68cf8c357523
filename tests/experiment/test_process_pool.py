"""The local process pool: same results as inline, faults, timeouts, Ctrl-C, thread limits."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from exp_runtime_helpers import Faulty, WorkerProbe

import nasforge
from nasforge.evaluators.function import FunctionEvaluator
from nasforge.experiment import (
    Budget,
    ExecutorError,
    Experiment,
    InlineExecutor,
    ProcessExecutor,
    SQLiteStorage,
)
from nasforge.experiment.executors import threads_per_worker
from nasforge.experiment.metric_checks import REJECTED
from nasforge.trial import Trial, TrialStatus

RUNNER = Path(__file__).with_name("kill_runner.py")


def make(evaluator: Any, executor: Any, **kwargs: Any) -> Experiment:
    space = nasforge.create_space("nb201")
    strategy = nasforge.create_strategy("rea", space, seed=2)
    kwargs.setdefault("budget", Budget(max_trials=24))
    return Experiment(space, strategy, evaluator, executor=executor, seed=2, device="cpu",
                      **kwargs)


def rows(trials: list[Trial], drop: tuple[str, ...] = ()) -> list[tuple[Any, ...]]:
    return [(t.number, t.arch.to_json(), t.status.value,
             {k: v for k, v in t.metrics.items() if k not in drop}, t.error) for t in trials]


@pytest.mark.slow
def test_pool_equals_inline_with_budget_and_constraints() -> None:
    """Ordered mode: two worker processes compute exactly what the inline executor computes.

    Also: the evaluator reaches each worker once (not per trial), workers cap torch's threads,
    constraints are checked before (params) and after (latency_ms) evaluation in the same way.
    """
    constraints = ["params <= 700000", "latency_ms <= 3.5"]
    pool = ProcessExecutor(workers=2)
    with_pool = make(WorkerProbe(), pool, ordered=True, constraints=constraints).run()
    inline = make(WorkerProbe(), InlineExecutor(capacity=2), ordered=True,
                  constraints=constraints).run()
    probe = ("pid", "loads", "threads")
    assert rows(with_pool.trials, probe) == rows(inline.trials, probe)

    evaluated = [t for t in with_pool.trials if not t.info.get(REJECTED)]
    assert len(evaluated) == 24
    assert any(t.info.get(REJECTED) for t in with_pool.trials)  # pre-checked, never evaluated
    assert any(t.status is TrialStatus.INFEASIBLE and not t.info.get(REJECTED)
               for t in with_pool.trials)  # checked after evaluation
    ran = [t for t in evaluated if "pid" in t.metrics]
    pids = {t.metrics["pid"] for t in ran}
    assert len(pids) == 2 and os.getpid() not in pids
    assert all(t.metrics["loads"] == 1 for t in ran)  # the evaluator was sent once per worker
    assert all(t.metrics["threads"] == threads_per_worker(2) for t in ran)


@pytest.mark.slow
def test_worker_faults_fail_or_retry_one_trial(tmp_path: Path) -> None:
    """Exceptions, a worker killed mid-trial, a segfault and a hang each cost only their trial."""
    fn = Faulty(raise_on=(1,), kill_once_on=(3,), segfault_on=(5,), hang_on=(8,),
                marker_dir=str(tmp_path))
    exp = make(FunctionEvaluator(fn), ProcessExecutor(workers=2), retries=1, trial_timeout=2.0,
               budget=Budget(max_trials=10), storage=str(tmp_path / "e.db"))
    retried: list[str] = []
    exp.add_callback(lambda e: retried.append(e.message) if e.kind == "trial_retried" else None)
    t0 = time.time()
    exp.run()
    assert time.time() - t0 < 120
    by_number = {t.number: t for t in SQLiteStorage(tmp_path / "e.db", readonly=True).trials()}
    assert len(by_number) == 10
    t1, t3, t5, t8 = by_number[1], by_number[3], by_number[5], by_number[8]
    assert t1.status is TrialStatus.FAILED and "ValueError: deliberate failure" in (t1.error or "")
    assert "Traceback" in (t1.error or "")
    # Killed once mid-trial: retried on a fresh worker and then fine.
    assert t3.ok and t3.info.get("attempts") == 2 and (tmp_path / "killed-3").exists()
    # Segfaults every time: failed after the retry, with the reason.
    assert t5.status is TrialStatus.FAILED and t5.info.get("attempts") == 2
    assert "died while running trial 5" in (t5.error or "") and "SIGSEGV" in (t5.error or "")
    assert t8.status is TrialStatus.FAILED and t8.error == "timeout after 2 s"
    assert all(by_number[n].ok for n in (0, 2, 4, 6, 7, 9))
    assert len(retried) == 2
    assert any("SIGKILL" in r for r in retried) and any("SIGSEGV" in r for r in retried)


@pytest.mark.slow
def test_worker_that_cannot_load_the_evaluator_stops_the_run_clearly() -> None:
    exp = make(WorkerProbe(fail_to_load=True), ProcessExecutor(workers=1),
               budget=Budget(max_trials=3))
    with pytest.raises(ExecutorError, match=r"cannot load the evaluator.*refuses to load"):
        exp.run()
    assert exp.stop_reason.startswith("failed: ExecutorError")
    assert [t.status for t in exp.trials] == [TrialStatus.RUNNING]  # re-runs on resume
