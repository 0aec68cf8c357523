"""Pruners: the median, percentile and threshold rules, the picklable PruneCheck, and pruned
trials in experiments (status, stored learning curve, step, budget, schedulers)."""

from __future__ import annotations

import math
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from sched_helpers import CurveEvaluator, ListStrategy, QSpace, curve, q_of

from nasforge.errors import ConfigError
from nasforge.evaluators.function import FunctionEvaluator
from nasforge.experiment import Budget, Experiment, InlineExecutor, JobOutcome
from nasforge.experiment.executors import run_job
from nasforge.experiment.pruners import (
    REPORTS,
    MedianPruner,
    PercentilePruner,
    PruneCheck,
    Pruner,
    ThresholdPruner,
    create_pruner,
    list_pruners,
)
from nasforge.experiment.schedulers import SuccessiveHalving
from nasforge.trial import Trial, TrialStatus


def experiment(pruner: Pruner | str | None, qs: Sequence[int], *, fidelity: float | None = 5,
               **kwargs: Any) -> Experiment:
    space = QSpace()
    kwargs.setdefault("evaluator", CurveEvaluator())
    return Experiment(space, ListStrategy(space, qs), budget=Budget(max_trials=len(qs)),
                      pruner=pruner, fidelity=fidelity, seed=0, device="cpu", **kwargs)


def trial(number: int, status: TrialStatus, reports: list[list[float]]) -> Trial:
    return Trial(number=number, arch=QSpace().make({"q": number}), status=status,
                 info={REPORTS: reports})


# ---------------------------------------------------------------- the rules
def test_registered() -> None:
    assert set(list_pruners()) >= {"median", "percentile", "threshold"}
    assert isinstance(create_pruner("median", min_trials=2), MedianPruner)
    assert isinstance(create_pruner("percentile", percentile=10), PercentilePruner)
    assert isinstance(create_pruner("threshold", lower=1), ThresholdPruner)


def test_median_rule() -> None:
    p = MedianPruner(warmup_steps=2, min_trials=3)
    ref = [10.0, 20.0, 30.0]
    assert not p.decide(1, 0.0, 1.0, ref)  # warm-up: step 1 < 2
    assert p.decide(2, 15.0, 1.0, ref)  # below the median 20
    assert not p.decide(2, 20.0, 1.0, ref)  # not strictly below
    assert not p.decide(2, 25.0, 1.0, ref)
    assert not p.decide(5, 0.0, 1.0, [10.0, 20.0])  # only 2 trials reported step 5
    assert p.decide(2, 15.0, 1.0, [10.0, 20.0, 30.0, 40.0])  # median 25
    assert not p.decide(2, math.nan, 1.0, ref)  # nothing to judge
    assert p.decide(2, -math.inf, 1.0, ref)
    # Minimized (a loss): the reference is already "higher is better" (negated losses 1, 2, 3).
    assert p.decide(2, 2.5, -1.0, [-1.0, -2.0, -3.0])
    assert not p.decide(2, 1.5, -1.0, [-1.0, -2.0, -3.0])
    assert p.decide(2, math.inf, -1.0, [-1.0, -2.0, -3.0])  # a diverged loss
    assert p.describe() == {"name": "median", "warmup_steps": 2, "min_trials": 3}


def test_percentile_rule() -> None:
    ref = [0.0, 10.0, 20.0, 30.0, 40.0]
    p = PercentilePruner(25, min_trials=5)
    assert p.decide(1, 9.9, 1.0, ref) and not p.decide(1, 10.0, 1.0, ref)  # 25th pct = 10
    assert not p.decide(1, 0.0, 1.0, ref[:4])  # min_trials
    p75 = PercentilePruner(75, min_trials=1)
    assert p75.decide(1, 29.0, 1.0, ref) and not p75.decide(1, 30.0, 1.0, ref)
    p50 = PercentilePruner(50, min_trials=1)
    m = MedianPruner(min_trials=1)
    for v in (5.0, 19.9, 20.0, 35.0):
        assert p50.decide(3, v, 1.0, ref) == m.decide(3, v, 1.0, ref)
    assert p.describe()["percentile"] == 25.0
    for bad in (0, 100, -5, True, "25"):
        with pytest.raises(ConfigError, match="percentile must be between 0 and 100"):
            PercentilePruner(bad)  # type: ignore[arg-type]


def test_threshold_rule() -> None:
    low = ThresholdPruner(lower=15, warmup_steps=3)
    assert not low.decide(2, 10.0, 1.0, [])  # warm-up
    assert low.decide(3, 10.0, 1.0, [])  # needs no other trial
    assert not low.decide(3, 15.0, 1.0, [])
    assert low.decide(3, -math.inf, 1.0, [])
    assert not low.decide(3, math.nan, 1.0, [])
    high = ThresholdPruner(upper=5.0)
    assert high.decide(1, 5.1, -1.0, []) and not high.decide(1, 5.0, -1.0, [])  # raw values
    assert high.decide(1, math.inf, -1.0, [])  # a diverged loss
    both = ThresholdPruner(lower=1, upper=2)
    assert both.decide(1, 0.5, 1.0, []) and both.decide(1, 2.5, 1.0, [])
    assert not both.decide(1, 1.5, 1.0, [])
    assert both.describe() == {"name": "threshold", "lower": 1, "upper": 2, "warmup_steps": 1}


@pytest.mark.parametrize(("make", "message"), [
    (lambda: ThresholdPruner(), "needs lower"),
    (lambda: ThresholdPruner(lower=3, upper=2), "lower 3 is above upper 2"),
    (lambda: ThresholdPruner(lower=math.nan), "lower must be a number, got nan"),
    (lambda: ThresholdPruner(upper="x"), "upper must be a number"),
    (lambda: MedianPruner(warmup_steps=-1), "warmup_steps must be a whole number >= 0, got -1"),
    (lambda: MedianPruner(warmup_steps=True), "warmup_steps must be a whole number"),
    (lambda: MedianPruner(min_trials=0), "min_trials must be a whole number >= 1, got 0"),
    (lambda: PercentilePruner(min_trials=2.5), "min_trials must be a whole number"),
])
def test_bad_settings_are_refused(make: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make()


# ---------------------------------------------------------------- PruneCheck
def test_check_compares_with_completed_trials_at_the_same_step() -> None:
    trials = [
        trial(0, TrialStatus.OK, [[1, 10.0], [2, 20.0]]),
        trial(1, TrialStatus.OK, [[1, 30.0], [2, math.nan]]),  # non-finite values are skipped
        trial(2, TrialStatus.OK, [[1, 50.0]]),
        trial(3, TrialStatus.RUNNING, [[1, 99.0]]),  # running: not a reference
        trial(4, TrialStatus.PRUNED, [[1, 1.0]]),  # pruned or failed curves are no reference
        trial(5, TrialStatus.FAILED, [[1, 2.0]]),
        Trial(number=6, arch=QSpace().make({"q": 6}), status=TrialStatus.OK),  # no curve
    ]
    check = MedianPruner(min_trials=1).check(trials, sign=1.0)
    assert isinstance(check, PruneCheck)
    assert dict(check.reference) == {1: [10.0, 30.0, 50.0], 2: [20.0]}
    assert check(1, 29.0) and not check(1, 30.0)
    assert check(2, 19.0) and not check(2, 21.0)
    assert not check(3, 0.0)  # nobody reported step 3
    # Minimized: values are negated once, in the reference and in the comparison.
    neg = MedianPruner(min_trials=1).check(trials, sign=-1.0)
    assert dict(neg.reference) == {1: [-10.0, -30.0, -50.0], 2: [-20.0]}
    assert neg(1, 31.0) and not neg(1, 29.0)


def test_each_configuration_counts_once_per_step() -> None:
    # Trial 2 is trial 0's configuration promoted and evaluated again from the start: its
    # steps 1-2 repeat trial 0's and must not count twice.
    def scheduled(number: int, config: int, reports: list[list[float]]) -> Trial:
        return Trial(number=number, arch=QSpace().make({"q": config}), status=TrialStatus.OK,
                     info={REPORTS: reports, "config": config})

    trials = [scheduled(0, 0, [[1, 90.0], [2, 95.0]]), scheduled(1, 1, [[1, 10.0], [2, 20.0]]),
              scheduled(2, 0, [[1, 90.0], [2, 95.0], [3, 97.0]])]
    check = MedianPruner(min_trials=1).check(trials, 1.0)
    assert dict(check.reference) == {1: [90.0, 10.0], 2: [95.0, 20.0], 3: [97.0]}


def test_a_promotion_is_judged_only_after_its_parent_s_steps() -> None:
    trials = [trial(n, TrialStatus.OK, [[1, 50.0], [2, 60.0], [3, 70.0]]) for n in range(4)]
    check = MedianPruner(min_trials=1).check(trials, 1.0, after_step=2)
    assert check.after_step == 2
    assert not check(1, 0.0) and not check(2, 0.0)  # already judged at the rung below
    assert check(3, 0.0) and not check(3, 80.0)
    assert pickle.loads(pickle.dumps(check)).after_step == 2


def test_config_key_matches_the_schedulers() -> None:
    from nasforge.experiment.pruners.base import CONFIG as PRUNER_CONFIG
    from nasforge.experiment.schedulers.base import CONFIG

    assert PRUNER_CONFIG == CONFIG


def test_threshold_check_needs_no_reference() -> None:
    check = ThresholdPruner(lower=5).check([trial(0, TrialStatus.OK, [[1, 1.0]])], 1.0)
    assert dict(check.reference) == {}
    assert check(1, 4.0) and not check(1, 6.0)


def test_check_pickles() -> None:
    trials = [trial(n, TrialStatus.OK, [[1, float(10 * n)], [2, float(20 * n)]]) for n in range(5)]
    for pruner in (MedianPruner(min_trials=2), PercentilePruner(40, warmup_steps=2, min_trials=3),
                   ThresholdPruner(lower=15)):
        check = pruner.check(trials, 1.0)
        back = pickle.loads(pickle.dumps(check))
        assert dict(back.reference) == dict(check.reference)
        for step in (1, 2, 3):
            for v in (0.0, 14.0, 25.0, 45.0, 100.0):
                assert back(step, v) == check(step, v)


# ---------------------------------------------------------------- in an experiment
def test_pruned_trial_is_stored_with_its_curve() -> None:
    exp = experiment(MedianPruner(min_trials=4), [50, 60, 70, 80, 10, 90, 20]).run()
    t = exp.trials
    assert [x.status for x in t] == [TrialStatus.OK] * 4 + [
        TrialStatus.PRUNED, TrialStatus.OK, TrialStatus.PRUNED]
    # Trial 4 (q 10) reports 5.0 at step 1; the completed trials reported 25, 30, 35, 40 there.
    p = t[4]
    assert p.info[REPORTS] == [[1, 5.0]] and p.info["pruned_at"] == 1
    assert p.error == "pruned at step 1" and p.metrics == {}
    assert p.info["fidelity_spent"] == 1.0  # one epoch of the five
    assert t[6].info[REPORTS] == [[1, 10.0]]  # median of 25..45 is 35
    # Completed trials keep their whole curve too.
    assert t[0].info[REPORTS] == [[s, curve(50, s)] for s in range(1, 6)]
    assert t[0].info["fidelity_spent"] == 5.0
    assert exp.fidelity_spent == 5 * 5 + 1 + 1
    assert exp.best() is not None and q_of(exp.best()) == 90  # type: ignore[arg-type]


def test_min_trials_and_warmup_are_respected() -> None:
    # Trial 1 (q 10) is the worst, but only one trial had completed when it started.
    exp = experiment(MedianPruner(min_trials=2), [50, 10, 60, 5]).run()
    assert [x.status.value for x in exp.trials] == ["ok", "ok", "ok", "pruned"]
    # The reference of trial 3 is trials 0-2 (10 is the median of 5 curves... here of 3).
    assert exp.trials[3].info["pruned_at"] == 1
    # With warmup_steps=3 it runs three steps before it is stopped.
    exp = experiment(MedianPruner(min_trials=2, warmup_steps=3), [50, 10, 60, 5]).run()
    late = exp.trials[3]
    assert late.status is TrialStatus.PRUNED and late.info["pruned_at"] == 3
    assert [s for s, _ in late.info[REPORTS]] == [1, 2, 3]
    assert late.info["fidelity_spent"] == 3.0


def test_pruned_curves_do_not_weaken_the_median() -> None:
    # Four good trials, then ten bad ones: each bad one must be compared with the completed
    # curves only (at step 1: 25, 30, 35, 40), not with the partial curves of the bad ones
    # pruned before it, which would pull the median down until nothing is pruned.
    qs = [50, 60, 70, 80, *range(10, 20)]
    exp = experiment(MedianPruner(min_trials=4), qs).run()
    assert [x.status.value for x in exp.trials[4:]] == ["pruned"] * 10


def test_percentile_and_threshold_in_an_experiment() -> None:
    exp = experiment(PercentilePruner(25, min_trials=4), [50, 60, 70, 80, 55, 20]).run()
    # At step 1 the 25th percentile of 25, 30, 35, 40 is 28.75: q 55 (27.5) is pruned, and so
    # is q 20 (10).
    assert [x.status.value for x in exp.trials] == ["ok"] * 4 + ["pruned", "pruned"]
    # curve(q, 2) = 2q/3 < 20 means q < 30: pruned at step 2 (after the warm-up).
    exp = experiment(ThresholdPruner(lower=20, warmup_steps=2), [10, 50, 29, 30]).run()
    assert [(x.status.value, x.info.get("pruned_at")) for x in exp.trials] == [
        ("pruned", 2), ("ok", None), ("pruned", 2), ("ok", None)]


def test_pruned_trials_are_never_promoted() -> None:
    qs = [50, 60, 70, 80, 10, 90, 20, 30, 40]
    space = QSpace()
    strategy = ListStrategy(space, qs)
    exp = Experiment(space, strategy, CurveEvaluator(), budget=Budget(max_trials=13),
                     scheduler=SuccessiveHalving(max_fidelity=9), pruner=MedianPruner(min_trials=4),
                     seed=0, device="cpu").run()
    rung0 = [t for t in exp.trials if t.info["rung"] == 0]
    assert [t.number for t in rung0 if t.status is TrialStatus.PRUNED] == [4, 6, 7, 8]
    rung1 = [t for t in exp.trials if t.info["rung"] == 1]
    assert [q_of(t) for t in rung1] == [90, 80, 70]
    # The promotions evaluate from the start (no checkpoints) and report step 1 again, where
    # q 70 (35) is below the median of the rung-0 curves (40): not judged there again, its
    # parent passed that step already.
    assert all(t.ok for t in exp.trials if t.info["rung"] > 0)
    assert rung1[2].info[REPORTS][0] == [1, 35.0]
    assert [t.number for t in strategy.heard] == list(range(9))  # pruned ones are told too


def test_a_pruned_trial_spends_only_the_epochs_it_ran() -> None:
    class Resumable(CurveEvaluator):
        can_resume = True

    space = QSpace()
    exp = Experiment(space, ListStrategy(space, [1]), Resumable(), budget=Budget(max_trials=1),
                     scheduler=SuccessiveHalving(max_fidelity=9), pruner="median", device="cpu")
    plan = exp.plan
    promoted = Trial(number=5, arch=space.make({"q": 1}), fidelity=9.0,
                     info={"rung": 2, "bracket": 0, "config": 0, "parent": 4})
    # Continued from its parent's 3 epochs, pruned at epoch 5: 2 epochs.
    info = {"pruned_at": 5, REPORTS: [[4, 1.0], [5, 1.0]]}
    assert plan.spent(promoted, info, 3.0) == 2.0
    # The checkpoint was missing: it ran from epoch 1.
    info = {"pruned_at": 5, REPORTS: [[s, 1.0] for s in range(1, 6)], "resume": "not found"}
    assert plan.spent(promoted, info, 3.0) == 5.0
    # Not pruned: its fidelity less its parent's; what the evaluator says wins.
    assert plan.spent(promoted, {REPORTS: [[9, 1.0]]}, 3.0) == 6.0
    assert plan.spent(promoted, {"epochs_trained": 4}, 3.0) == 4.0


def test_pruner_needs_an_evaluator_that_reports() -> None:
    space = QSpace()
    with pytest.raises(ConfigError, match=r"pruner 'median' needs intermediate values, but "
                                          r"evaluator 'function' reports none"):
        Experiment(space, ListStrategy(space, [1]), FunctionEvaluator(lambda a, c: 1.0),
                   budget=Budget(max_trials=1), pruner="median")


def test_pruner_must_compare_the_primary_objective() -> None:
    with pytest.raises(ConfigError, match=r"would compare 'accuracy'.*primary objective is min:q"):
        experiment("median", [1, 2], objectives="min:q")
    with pytest.raises(ConfigError, match="pruner"):
        experiment("no-such-pruner", [1, 2])


@pytest.mark.slow
def test_pruning_in_worker_processes() -> None:
    # A threshold needs no reference, so the outcome does not depend on timing: the PruneCheck
    # travels to the worker (pickled) and stops the trial there.
    qs = [10, 50, 29, 30]
    pool = experiment(ThresholdPruner(lower=20, warmup_steps=2), qs, executor="process",
                      workers=2, ordered=True).run()
    assert [(x.status.value, x.info.get("pruned_at")) for x in pool.trials] == [
        ("pruned", 2), ("ok", None), ("pruned", 2), ("ok", None)]
    assert pool.trials[0].info[REPORTS] == [[1, curve(10, 1)], [2, curve(10, 2)]]


class LastInFirstOut(InlineExecutor):
    """Runs the newest queued job first: results arrive out of ask order, as from a pool."""

    def wait(self, timeout: float | None = None) -> list[JobOutcome]:
        if not self._queue:
            return []
        return [run_job(self.evaluator, self._queue.pop(), enforce_timeout=True)]


def test_ordered_pruning_does_not_depend_on_arrival_order() -> None:
    # Trial 2 (q 10) is asked right after trial 0 is told. In ask order trial 1 has not been told
    # then: 1 completed trial < min_trials, so trial 2 runs to the end, whatever the executor.
    qs = [50, 60, 10, 70]
    fifo = experiment(MedianPruner(min_trials=2), qs, executor=InlineExecutor(capacity=2),
                      ordered=True).run()
    lifo = experiment(MedianPruner(min_trials=2), qs, executor=LastInFirstOut(capacity=2),
                      ordered=True).run()
    assert fifo.trials[2].status is TrialStatus.OK
    assert [t.status for t in lifo.trials] == [t.status for t in fifo.trials]


def test_a_crash_does_not_change_pruning_decisions(tmp_path: Path) -> None:
    # Capacity 3: trial 5 (q 10) is asked after trial 2 is told (3 completed trials <
    # min_trials 4: it is not pruned). The driver dies while it runs, after 3 and 4 were told;
    # the resumed run must judge it as it was judged when it was asked.
    qs = [50, 60, 70, 80, 90, 10, 55, 65]

    def run(db: Path, evaluator: CurveEvaluator) -> Experiment:
        return experiment(MedianPruner(min_trials=4), qs, storage=str(db), evaluator=evaluator,
                          executor=InlineExecutor(capacity=3)).run()

    ref = run(tmp_path / "ref.db", CurveEvaluator())
    assert ref.trials[5].status is TrialStatus.OK
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "run.db", CurveEvaluator(interrupt_on=5))
    resumed = run(tmp_path / "run.db", CurveEvaluator())
    assert [t.status for t in resumed.trials] == [t.status for t in ref.trials]


def test_what_the_evaluator_says_it_trained_is_charged_when_pruned() -> None:
    from nasforge.evaluators.base import EvalContext, TrialPruned
    from nasforge.experiment.executors import TrialJob

    def prune_after_two(arch: Any, ctx: EvalContext) -> float:
        ctx.report(1, 5.0)
        ctx.report(2, 6.0)
        raise TrialPruned("stopped", info={"epochs_trained": 2})

    space = QSpace()
    job = TrialJob(0, space.make({"q": 1}), EvalContext(seed=0))
    out = run_job(FunctionEvaluator(prune_after_two), job)
    assert out.result.status is TrialStatus.PRUNED
    assert out.result.info["epochs_trained"] == 2 and out.result.info["pruned_at"] == 2
    assert out.result.info[REPORTS] == [[1, 5.0], [2, 6.0]]
