"""Reports of running trials reach the driver live: ``trial_reported`` events, inline and pool."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from exp_runtime_helpers import Handshake

import nasforge
from nasforge.evaluators.function import FunctionEvaluator
from nasforge.experiment import Budget, Event, EventKind, Experiment, ProcessExecutor
from nasforge.trial import TrialStatus


def run_handshake(tmp_path: Path, executor: Any, trials: int) -> tuple[Experiment, list[Event]]:
    """A search whose trials wait for the driver to have seen their first report."""
    events: list[Event] = []

    def on_event(event: Event) -> None:
        events.append(event)
        if event.kind is EventKind.TRIAL_REPORTED and event.step == 1:
            assert event.trial is not None
            (tmp_path / f"seen-{event.trial.number}").touch()

    space = nasforge.create_space("nb201")
    exp = Experiment(space, nasforge.create_strategy("random", space, seed=0),
                     FunctionEvaluator(Handshake(str(tmp_path), wait_s=30.0)),
                     budget=Budget(max_trials=trials), executor=executor, device="cpu",
                     callbacks=[on_event])
    exp.run()
    return exp, events


def check(exp: Experiment, events: list[Event], trials: int) -> None:
    # Each trial saw the driver's answer to its first report: the report arrived while it ran.
    assert [t.metrics["accuracy"] for t in exp.trials] == [1.0] * trials
    for n in range(trials):
        mine = [e for e in events if e.trial is not None and e.trial.number == n]
        kinds = [e.kind for e in mine]
        assert kinds == [EventKind.TRIAL_STARTED, EventKind.TRIAL_REPORTED,
                         EventKind.TRIAL_REPORTED, EventKind.TRIAL_FINISHED]
        assert [(e.step, e.value) for e in mine[1:3]] == [(1, 10.0 + n), (2, 20.0 + n)]
        assert mine[1].trial is not None and mine[1].trial.status is TrialStatus.RUNNING
        # The learning curve is still stored with the finished trial.
        assert exp.trials[n].info["reports"] == [[1, 10.0 + n], [2, 20.0 + n]]


def test_inline_reports_are_events_while_the_trial_runs(tmp_path: Path) -> None:
    exp, events = run_handshake(tmp_path, None, trials=3)
    check(exp, events, 3)


@pytest.mark.slow
def test_process_pool_reports_travel_live_from_the_workers(tmp_path: Path) -> None:
    """Two spawned workers: each report comes over the worker's pipe before its result."""
    exp, events = run_handshake(tmp_path, ProcessExecutor(workers=2), trials=4)
    check(exp, events, 4)
