"""Deterministic pieces for the multi-fidelity tests (schedulers, pruners), importable by a
subprocess too: ``python sched_helpers.py DB LOG TRIALS SCHEDULER`` runs one resumable experiment
(the kill -9 test in test_schedulers.py kills it and starts it again).

* :class:`QSpace`: one decision ``q`` in 0..99, the architecture's "quality": a higher ``q`` is a
  better network at every fidelity, so the expected promotions can be written down by hand.
* :class:`ListStrategy`: proposes ``q`` values from a fixed list, in order (resumable state).
* :class:`CurveEvaluator`: accuracy ``q * f / (f + 1)`` at fidelity ``f``; reports that curve
  epoch by epoch (so pruners can stop it) and fails the qualities listed in ``fail``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from nasforge.evaluators.base import EvalContext, Evaluator, TrialPruned
from nasforge.space import Architecture, Choice, SearchSpace
from nasforge.strategies.base import Strategy
from nasforge.trial import Result, Trial


class QSpace(SearchSpace):
    """One integer decision ``q`` (0..99)."""

    name = "qspace"

    def _declare(self) -> Sequence[Choice]:
        return [Choice("q", tuple(range(100)))]

    def build(self, arch: Architecture, **kwargs: Any) -> Any:
        raise NotImplementedError("QSpace architectures are scored, never built")


def curve(q: int, step: float) -> float:
    """The fake learning curve: increasing in the step, ordered by ``q`` at every step."""
    return q * step / (step + 1.0)


class ListStrategy(Strategy):
    """Proposes ``space.make({"q": qs[i]})`` for i = 0, 1, ... (cycling); records what it hears."""

    name = "list"

    def __init__(self, space: SearchSpace, qs: Sequence[int], seed: int = 0) -> None:
        super().__init__(space, seed=seed)
        self.qs = list(qs)
        self.i = 0
        self.asked = 0
        #: Numbers of the trials told, in order (part of the state).
        self.told: list[int] = []
        #: The trials told in this process, in order (not part of the state).
        self.heard: list[Trial] = []

    def _ask(self) -> Architecture:
        q = self.qs[self.i % len(self.qs)]
        self.i += 1
        self.asked += 1
        return self.space.make({"q": q})

    def _tell(self, trial: Trial) -> None:
        self.told.append(trial.number)
        self.heard.append(trial)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "i": self.i, "told": list(self.told)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.i = int(state["i"])
        self.told = [int(n) for n in state["told"]]


class CurveEvaluator(Evaluator):
    """Deterministic multi-fidelity evaluator over :class:`QSpace` (see the module docstring).

    ``levels``: the fidelities it offers (None: any). ``log``: append ``"<tag> <trial>"`` to
    this file after each evaluation (``tag`` from ``$SCHED_TEST_TAG``). ``sleep``: seconds per
    evaluation. ``interrupt_on``: raise KeyboardInterrupt the first time this trial number runs
    (a crash in the middle of a trial, in-process).
    """

    name = "curve"
    supports_fidelity = True
    integer_fidelity = True
    fidelity_unit = "epochs"
    reports_metric = "accuracy"

    def __init__(self, fail: Sequence[int] = (), levels: Sequence[float] | None = None,
                 log: str | None = None, sleep: float = 0.0,
                 interrupt_on: int | None = None) -> None:
        super().__init__()
        self.fail = tuple(fail)
        self.levels = None if levels is None else tuple(float(v) for v in levels)
        self.log = log
        self.sleep = sleep
        self.interrupt_on = interrupt_on
        self.calls: list[tuple[int, float | None]] = []  # (trial number, fidelity), inline only

    def evaluate(self, arch: Architecture, ctx: EvalContext) -> Result:
        if self.interrupt_on is not None and ctx.trial_number == self.interrupt_on:
            self.interrupt_on = None
            raise KeyboardInterrupt
        self.calls.append((ctx.trial_number, ctx.fidelity))
        if self.sleep:
            time.sleep(self.sleep)
        q = int(arch["q"])
        fid = float(ctx.fidelity if ctx.fidelity is not None else 9)
        if self.log is not None:
            with open(self.log, "a") as fh:
                fh.write(f"{os.environ.get('SCHED_TEST_TAG', '0')} {ctx.trial_number}\n")
        if q in self.fail:
            return Result.failed(f"q={q} always fails", cost=1.0)
        for step in range(1, int(fid) + 1):
            if ctx.report(step, curve(q, step)):
                raise TrialPruned(f"pruned at step {step}")
        return Result(metrics={"accuracy": curve(q, fid), "q": float(q)}, cost=fid)

    def fidelity_levels(self) -> tuple[float, ...] | None:
        return self.levels

    def default_fidelity(self) -> float:
        return 9.0

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "fail": list(self.fail), "levels": self.levels}


def q_of(trial: Trial) -> int:
    return int(trial.arch["q"])


def rows(trials: Sequence[Trial]) -> list[tuple[Any, ...]]:
    """What must be equal between an interrupted-and-resumed run and an uninterrupted one."""
    keys = ("rung", "bracket", "config", "parent", "random_config", "fidelity_spent")
    return [(t.number, t.arch.to_json(), t.fidelity, t.status.value, dict(t.metrics), t.seed,
             {k: t.info.get(k) for k in keys}) for t in trials]


QS = (5, 2, 8, 1, 9, 3, 7, 4, 6, 15, 12, 18, 11, 19, 13, 17, 14, 16, 25, 22, 28, 21, 29, 23, 27,
      24, 26, 35, 32, 38, 31, 39, 33, 37, 34, 36, 45, 42, 48, 41, 49, 43, 47, 44, 46)


def build_kill_experiment(db: str, trials: int, scheduler: str, log: str | None = None) -> Any:
    """The experiment the kill -9 test runs (and, uninterrupted, its reference)."""
    from nasforge.experiment import Budget, Experiment, InlineExecutor
    from nasforge.experiment.schedulers import create_scheduler

    space = QSpace()
    return Experiment(space, ListStrategy(space, QS), CurveEvaluator(log=log, sleep=0.004),
                      budget=Budget(max_trials=trials), storage=db, seed=3, device="cpu",
                      executor=InlineExecutor(capacity=2),
                      scheduler=create_scheduler(scheduler, max_fidelity=9, eta=3),
                      snapshot_every=4)


def main() -> None:
    db, log, trials, scheduler = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    os.environ["SCHED_TEST_TAG"] = str(os.getpid())
    build_kill_experiment(db, trials, scheduler, log).run()


if __name__ == "__main__":
    main()
