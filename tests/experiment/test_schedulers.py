"""Multi-fidelity schedulers: rung ladders, promotions, what the strategy hears, resume.

Most tests run a :class:`QSpace` experiment: architecture ``q`` scores ``q * f / (f + 1)`` at
fidelity ``f`` (see sched_helpers.py), so the promotions are known in advance. The strategy
proposes the qualities of ``QS`` in order: 5, 2, 8, 1, 9, 3, 7, 4, 6 for the first nine trials.
"""

from __future__ import annotations

import dataclasses
import math
import random
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from sched_helpers import QS, CurveEvaluator, ListStrategy, QSpace, build_kill_experiment, q_of, rows

import nasforge
from nasforge.errors import ConfigError, StorageError
from nasforge.evaluators.function import FunctionEvaluator
from nasforge.experiment import (
    Budget,
    EventKind,
    Experiment,
    InlineExecutor,
    JobOutcome,
    SQLiteStorage,
)
from nasforge.experiment.schedulers import (
    ASHA,
    Hyperband,
    ModelBasedHyperband,
    Scheduler,
    Slot,
    SuccessiveHalving,
    create_scheduler,
    list_schedulers,
)
from nasforge.experiment.schedulers.hyperband import bracket_size
from nasforge.trial import Objective, Result, Trial, TrialStatus

HELPERS = Path(__file__).with_name("sched_helpers.py")


def configured(scheduler: Scheduler, evaluator: Any = None) -> Scheduler:
    scheduler.configure(evaluator if evaluator is not None else CurveEvaluator(), Objective())
    return scheduler


def experiment(scheduler: Scheduler | str, *, trials: int = 13, qs: Sequence[int] = QS,
               evaluator: CurveEvaluator | None = None, strategy: Any = None,
               **kwargs: Any) -> Experiment:
    space = QSpace()
    return Experiment(space, strategy if strategy is not None else ListStrategy(space, qs),
                      evaluator if evaluator is not None else CurveEvaluator(),
                      budget=kwargs.pop("budget", Budget(max_trials=trials)), seed=0,
                      device="cpu", scheduler=scheduler, **kwargs)


def by_rung(trials: Sequence[Trial], bracket: int | None = None) -> dict[int, list[Trial]]:
    out: dict[int, list[Trial]] = {}
    for t in trials:
        if bracket is None or t.info["bracket"] == bracket:
            out.setdefault(int(t.info["rung"]), []).append(t)
    return out


class RecordingInline(InlineExecutor):
    """The inline executor, noting how many jobs are in flight whenever the loop waits."""

    def __init__(self, capacity: int) -> None:
        super().__init__(capacity)
        self.in_flight_at_wait: list[int] = []

    def wait(self, timeout: float | None = None) -> list[JobOutcome]:
        self.in_flight_at_wait.append(self.in_flight)
        return super().wait(timeout)


# ---------------------------------------------------------------- registry and rung ladders
def test_registered() -> None:
    assert set(list_schedulers()) >= {"sh", "hyperband", "asha", "bohb"}
    assert isinstance(create_scheduler("asha", eta=2), ASHA)
    assert isinstance(create_scheduler("bohb"), ModelBasedHyperband)


def test_geometric_rungs_for_epochs() -> None:
    assert configured(SuccessiveHalving(max_fidelity=9, eta=3)).rungs == (1.0, 3.0, 9.0)
    assert configured(ASHA(min_fidelity=1, max_fidelity=9, eta=3)).rungs == (1.0, 3.0, 9.0)
    # The top defaults to the evaluator's own fidelity (9 epochs), the bottom to top / eta^2.
    assert configured(Hyperband(eta=3)).rungs == (1.0, 3.0, 9.0)
    assert configured(ASHA(max_fidelity=8, eta=2)).rungs == (2.0, 4.0, 8.0)
    assert configured(ASHA(min_fidelity=1, max_fidelity=27, eta=3)).rungs == (1, 3, 9, 27)
    # Whole epochs: 10/9, 10/3, 10 are rounded.
    assert configured(ASHA(max_fidelity=10, eta=3)).rungs == (1.0, 3.0, 10.0)


def test_geometric_rungs_for_a_continuous_fidelity() -> None:
    class Continuous(CurveEvaluator):
        integer_fidelity = False

    rungs = configured(ASHA(max_fidelity=10, eta=3), Continuous()).rungs
    assert rungs == pytest.approx((10 / 9, 10 / 3, 10.0))


def test_discrete_levels_of_the_evaluator() -> None:
    ev = CurveEvaluator(levels=(4, 12, 36, 200))
    assert configured(SuccessiveHalving(), ev).rungs == (4.0, 12.0, 36.0, 200.0)
    assert configured(SuccessiveHalving(min_fidelity=12, max_fidelity=36), ev).rungs == (12.0, 36.0)
    with pytest.raises(ConfigError, match=r"offers only 4, 12, 36, 200 epochs.*max_fidelity 100"):
        configured(SuccessiveHalving(max_fidelity=100), ev)
    with pytest.raises(ConfigError, match=r"rung\(s\) 100 epochs are not offered.*allowed: 4, 12"):
        configured(SuccessiveHalving(rungs=[12, 100]), ev)
    with pytest.raises(ConfigError, match="only one rung"):
        configured(SuccessiveHalving(min_fidelity=200), ev)


def test_explicit_rungs() -> None:
    assert configured(ASHA(rungs=[1, 2, 5])).rungs == (1.0, 2.0, 5.0)
    assert configured(ASHA(rungs=[1, 2, 5])).top_fidelity == 5.0
    with pytest.raises(ConfigError, match="increase strictly"):
        configured(ASHA(rungs=[3, 1]))
    with pytest.raises(ConfigError, match="increase strictly"):
        configured(ASHA(rungs=[1, 1, 3]))
    with pytest.raises(ConfigError, match="positive"):
        configured(ASHA(rungs=[0, 1]))
    with pytest.raises(ConfigError, match="numbers"):
        configured(ASHA(rungs=["1", "3"]))  # type: ignore[list-item]
    with pytest.raises(ConfigError, match=r"whole epochs; rung\(s\) 1.5 are not"):
        configured(ASHA(rungs=[1.5, 3]))
    with pytest.raises(ConfigError, match=r"only one rung \(9\)"):
        configured(ASHA(rungs=[9]))


@pytest.mark.parametrize(("make", "message"), [
    (lambda: ASHA(eta=1.5), r"eta .* >= 2, got 1\.5"),
    (lambda: ASHA(eta=1), r"got 1\b"),
    (lambda: ASHA(eta=math.inf), "got inf"),
    (lambda: ASHA(eta=True), "got True"),
    (lambda: SuccessiveHalving(min_fidelity=5, max_fidelity=2),
     "max_fidelity 2 is below min_fidelity 5"),
    (lambda: ASHA(min_fidelity=0), "min_fidelity must be a positive number, got 0"),
    (lambda: ASHA(max_fidelity=math.nan), "max_fidelity must be a positive number, got nan"),
    (lambda: ASHA(tell="bogus"), "tell='bogus' is not allowed"),
    (lambda: ASHA(tell="final"), "asynchronous"),
    (lambda: SuccessiveHalving(n_configs=1), r"n_configs must be a whole number >= 2 .*got 1"),
    (lambda: Hyperband(brackets=0), "brackets must be a whole number >= 1, got 0"),
    (lambda: ModelBasedHyperband(random_fraction=1.5), "random_fraction .* got 1.5"),
])
def test_bad_settings_are_refused(make: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make()


def test_bad_ladders_are_refused_when_configured() -> None:
    with pytest.raises(ConfigError, match=r"only one rung \(2\)"):
        configured(SuccessiveHalving(min_fidelity=1, max_fidelity=2, eta=3))
    with pytest.raises(ConfigError, match=r"brackets=4 is more than the 3 the rungs allow"):
        configured(Hyperband(brackets=4, max_fidelity=9))

    class NoDefault(CurveEvaluator):
        def default_fidelity(self) -> None:  # type: ignore[override]
            return None

    with pytest.raises(ConfigError, match="set max_fidelity"):
        configured(ASHA(), NoDefault())


def test_evaluator_without_fidelity_is_refused(tmp_path: Path) -> None:
    space = QSpace()
    db = tmp_path / "x.db"
    with pytest.raises(ConfigError, match=r"scheduler 'asha' needs an evaluator with a fidelity.*"
                                          r"evaluator 'function' has none"):
        Experiment(space, ListStrategy(space, QS), FunctionEvaluator(lambda a, c: 1.0),
                   budget=Budget(max_trials=3), scheduler="asha", storage=str(db))
    assert not db.exists()  # refused before the storage was opened


def test_fidelity_and_scheduler_together_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"fidelity=3 and scheduler 'sh' were both given"):
        experiment("sh", fidelity=3)


def test_unknown_scheduler_name() -> None:
    with pytest.raises(ConfigError):
        experiment("nope")


# ---------------------------------------------------------------- successive halving
def test_successive_halving_promotes_the_top_third() -> None:
    exp = experiment(SuccessiveHalving(n_configs=9, eta=3, max_fidelity=9), trials=26).run()
    trials = exp.trials
    assert len(trials) == 26 and all(t.ok for t in trials)
    # Bracket 0: trials 0-8 at 1 epoch (q 5 2 8 1 9 3 7 4 6); the top three (q 9, 8, 7: trials
    # 4, 2, 6) at 3 epochs, best first; the best of those (q 9) at 9 epochs.
    b0 = by_rung(trials, 0)
    assert [t.number for t in b0[0]] == list(range(9))
    assert [q_of(t) for t in b0[0]] == [5, 2, 8, 1, 9, 3, 7, 4, 6]
    assert {t.fidelity for t in b0[0]} == {1.0}
    assert [(t.number, q_of(t), t.info.get("parent"), t.info["config"]) for t in b0[1]] == [
        (9, 9, 4, 4), (10, 8, 2, 2), (11, 7, 6, 6)]
    assert {t.fidelity for t in b0[1]} == {3.0}
    assert [(t.number, q_of(t), t.info.get("parent"), t.info["config"], t.fidelity)
            for t in b0[2]] == [(12, 9, 9, 4, 9.0)]
    # Bracket 1: q 15 12 18 11 19 13 17 14 16 (trials 13-21) -> 19, 18, 17 -> 19.
    b1 = by_rung(trials, 1)
    assert [t.number for t in b1[0]] == list(range(13, 22))
    assert [(q_of(t), t.info.get("parent")) for t in b1[1]] == [(19, 17), (18, 15), (17, 19)]
    assert [(q_of(t), t.info.get("parent")) for t in b1[2]] == [(19, 22)]
    # A promotion continues its configuration: same architecture and seed as its parent.
    for t in trials:
        if t.info.get("parent") is not None:
            parent = trials[t.info.get("parent")]
            assert t.arch == parent.arch and t.seed == parent.seed
            assert t.info["fidelity_spent"] == t.fidelity  # no checkpoints: full fidelity again
    assert exp.strategy.asked == 18  # promotions never ask the strategy
    assert exp.best() is not None and exp.best().number == 25  # type: ignore[union-attr]
    assert exp.scheduler.summary_brackets() == [  # type: ignore[union-attr]
        {"bracket": 0, "start_rung": 0, "planned": [9, 3, 1], "started": [9, 3, 1]},
        {"bracket": 1, "start_rung": 0, "planned": [9, 3, 1], "started": [9, 3, 1]},
    ]
    assert exp.fidelity_spent == 2 * (9 * 1 + 3 * 3 + 9)


def test_fidelity_budget_counts_epochs() -> None:
    # 9 x 1 + 3 x 3 = 18 epochs < 20: the top-rung trial starts and crosses the limit (27).
    exp = experiment("sh", budget=Budget(max_fidelity=20)).run()
    assert len(exp.trials) == 13 and exp.fidelity_spent == 27
    assert exp.scheduler is not None and exp.scheduler.rungs == (1.0, 3.0, 9.0)  # by name


def test_failed_trials_are_never_promoted() -> None:
    # q 9 and 8 fail at the first rung: q 7, 6, 5 (trials 6, 8, 0) go up instead.
    exp = experiment(SuccessiveHalving(max_fidelity=9), evaluator=CurveEvaluator(fail=(9, 8))).run()
    b0 = by_rung(exp.trials, 0)
    assert [t.status for t in b0[0]].count(TrialStatus.FAILED) == 2
    assert [(q_of(t), t.info.get("parent")) for t in b0[1]] == [(7, 6), (6, 8), (5, 0)]
    assert [q_of(t) for t in b0[2]] == [7]


def test_a_rung_with_few_survivors_shrinks_and_an_empty_one_ends_the_bracket() -> None:
    # 7 of 9 fail: only two configurations can be promoted.
    ev = CurveEvaluator(fail=(5, 2, 8, 1, 9, 3, 7))
    exp = experiment(SuccessiveHalving(max_fidelity=9), evaluator=ev, trials=13).run()
    b0 = by_rung(exp.trials, 0)
    assert [q_of(t) for t in b0[1]] == [6, 4] and [q_of(t) for t in b0[2]] == [6]
    assert [t.info["bracket"] for t in exp.trials[12:]] == [1]
    # All 9 fail: the next bracket starts at once.
    ev = CurveEvaluator(fail=(5, 2, 8, 1, 9, 3, 7, 4, 6))
    exp = experiment(SuccessiveHalving(max_fidelity=9), evaluator=ev, trials=11).run()
    assert [(t.info["bracket"], t.info["rung"]) for t in exp.trials[9:]] == [(1, 0), (1, 0)]


def test_successive_halving_waits_at_rung_boundaries() -> None:
    ex = RecordingInline(capacity=4)
    exp = experiment(SuccessiveHalving(max_fidelity=9), trials=13, executor=ex).run()
    assert len(exp.trials) == 13
    # 9 new trials: 4 in flight until the ninth starts, then the rung drains (3, 2, 1) before
    # the three promotions start together (3, 2, 1), then the top rung alone (1).
    assert ex.in_flight_at_wait == [4, 4, 4, 4, 4, 4, 3, 2, 1, 3, 2, 1, 1]


def test_synchronous_next_slot_says_wait() -> None:
    sh = configured(SuccessiveHalving(n_configs=3, max_fidelity=9))
    started = []
    for n in range(3):
        slot = sh.next_slot()
        assert slot == Slot(rung=0, bracket=0)
        started.append(fake_start(sh, n, slot, q=n))
    assert sh.next_slot() is None  # rung 0 is running
    fake_finish(sh, started[0])
    fake_finish(sh, started[1])
    assert sh.next_slot() is None
    fake_finish(sh, started[2])
    slot = sh.next_slot()
    assert slot is not None and slot.rung == 1 and slot.parent is not None
    assert slot.parent.number == 2  # q=2 is the best of 0, 1, 2


# ---------------------------------------------------------------- Hyperband
def test_hyperband_bracket_sizes_follow_li_et_al() -> None:
    hb = configured(Hyperband(max_fidelity=9, eta=3))
    # s_max = 2, eta = 3: n = ceil(3 / (s + 1) * 3^s) = 9, 5, 3 starting at 1, 3, 9 epochs.
    assert [hb.bracket_plan(i) for i in range(4)] == [(0, 9), (1, 5), (2, 3), (0, 9)]
    assert [hb.plan_sizes(*hb.bracket_plan(i)) for i in range(3)] == [[9, 3, 1], [5, 1], [3]]
    # Table 1 of Li et al. (JMLR 2018): R = 81, eta = 3.
    hb = configured(Hyperband(max_fidelity=81, min_fidelity=1, eta=3))
    assert hb.rungs == (1, 3, 9, 27, 81)
    sizes = [hb.plan_sizes(*hb.bracket_plan(i)) for i in range(5)]
    assert sizes == [[81, 27, 9, 3, 1], [34, 11, 3, 1], [15, 5, 1], [8, 2], [5]]
    # brackets=2 keeps the two most exploratory ones.
    hb2 = configured(Hyperband(max_fidelity=9, brackets=2))
    assert [hb2.bracket_plan(i) for i in range(4)] == [(0, 9), (1, 5), (0, 9), (1, 5)]


def test_bracket_size_is_exact() -> None:
    for top in range(1, 20):
        for eta in (2, 3, 4):
            for s in range(top + 1):
                exact = -((-(top + 1) * eta ** s) // (s + 1))  # integer ceiling
                assert bracket_size(top, s, eta) == exact, (top, s, eta)
    assert bracket_size(10, 8, 3) == 8019  # floats give 8020
    assert bracket_size(2, 1, 2.5) == math.ceil(1.5 * 2.5)


def test_hyperband_runs_its_brackets_in_order() -> None:
    exp = experiment(Hyperband(max_fidelity=9, eta=3), trials=22).run()
    started = {(t.info["bracket"], t.info["rung"]): 0 for t in exp.trials}
    for t in exp.trials:
        started[(t.info["bracket"], t.info["rung"])] += 1
    assert started == {(0, 0): 9, (0, 1): 3, (0, 2): 1, (1, 1): 5, (1, 2): 1, (2, 2): 3}
    # Bracket 1 starts q 15 12 18 11 19 at 3 epochs; q 19 goes to 9 epochs.
    b1 = by_rung(exp.trials, 1)
    assert [q_of(t) for t in b1[1]] == [15, 12, 18, 11, 19] and {t.fidelity for t in b1[1]} == {3.0}
    assert [q_of(t) for t in b1[2]] == [19] and b1[2][0].fidelity == 9.0
    assert [q_of(t) for t in by_rung(exp.trials, 2)[2]] == [13, 17, 14]
    assert exp.scheduler.summary_brackets()[1] == {  # type: ignore[union-attr]
        "bracket": 1, "start_rung": 1, "planned": [5, 1], "started": [5, 1]}


# ---------------------------------------------------------------- ASHA
def fake_start(sched: Scheduler, number: int, slot: Slot, q: int) -> Trial:
    config = number if slot.parent is None else int(slot.parent.info["config"])
    info = {"rung": slot.rung, "bracket": slot.bracket, "config": config,
            "parent": None if slot.parent is None else slot.parent.number}
    trial = Trial(number=number, arch=QSpace().make({"q": q}), fidelity=sched.fidelity(slot),
                  info=info)
    sched.started(trial)
    return trial


def finish(trial: Trial, accuracy: float | None) -> Trial:
    """The trial finished with that accuracy (None: failed), keeping its schedule info."""
    if accuracy is None:
        return dataclasses.replace(trial, status=TrialStatus.FAILED, error="boom", finished_at=1.0)
    return dataclasses.replace(trial, status=TrialStatus.OK, metrics={"accuracy": accuracy},
                               finished_at=1.0)


def fake_finish(sched: Scheduler, trial: Trial, ok: bool = True) -> list[Trial]:
    return sched.finished(finish(trial, float(trial.arch["q"]) if ok else None))


def test_asha_promotes_the_top_third_of_what_finished() -> None:
    asha = configured(ASHA(max_fidelity=9, eta=3))
    number = 0

    def start(slot: Slot, q: int | None = None) -> Trial:
        nonlocal number
        t = fake_start(asha, number, slot, q if q is not None else int(slot.parent.arch["q"]))
        number += 1
        return t

    new = Slot(rung=0, bracket=0)
    firsts = [start(new, q) for q in (5, 2, 8)]
    assert asha.next_slot() == new  # nothing finished yet: start more
    for t in firsts[:2]:
        fake_finish(asha, t)
    assert asha.next_slot() == new  # 2 finished: floor(2 / 3) = 0 promotions
    fake_finish(asha, firsts[2])
    slot = asha.next_slot()  # 3 finished: the best one (q 8) goes up
    assert slot.rung == 1 and slot.parent is not None and slot.parent.number == 2
    up = start(slot)
    assert asha.next_slot() == new  # q 8 is already promoted
    more = [start(new, q) for q in (1, 9, 3)]
    fake_finish(asha, more[0])
    fake_finish(asha, more[1], ok=False)  # q 9 failed: never promoted
    fake_finish(asha, more[2])
    # 6 finished at rung 0: top 2 of the scored (8, 5): 8 is up, so 5 goes.
    slot = asha.next_slot()
    assert slot.rung == 1 and slot.parent is not None and int(slot.parent.arch["q"]) == 5
    up2 = start(slot)
    assert asha.next_slot() == new
    fake_finish(asha, up)
    fake_finish(asha, up2)
    assert asha.next_slot() == new  # rung 1 has 2 finished: none goes to rung 2 yet
    assert asha.summary()[0] == {"rung": 0, "fidelity": 1.0, "trials": 6, "finished": 6, "ok": 5,
                                 "best_trial": 2}


def test_asha_never_waits_and_promotes_only_from_the_top() -> None:
    rng = random.Random(7)
    asha = configured(ASHA(max_fidelity=27, min_fidelity=1, eta=3))
    running: list[Trial] = []
    trials: list[Trial] = []
    for number in range(400):
        slot = asha.next_slot()
        assert isinstance(slot, Slot)  # never "wait"
        if slot.parent is not None:
            rung_below = [t for t in trials if t.info["rung"] == slot.rung - 1
                          and t.status is not TrialStatus.RUNNING]
            scored = sorted((t for t in rung_below if t.ok), key=lambda t: -t.metrics["accuracy"])
            quota = len(rung_below) // 3
            assert slot.parent in scored[:quota]
            assert not any(t.info["config"] == slot.parent.info["config"]
                           and t.info["rung"] == slot.rung for t in trials)
        q = rng.randrange(100) if slot.parent is None else int(slot.parent.arch["q"])
        t = fake_start(asha, number, slot, q)
        running.append(t)
        trials.append(t)
        # Finish a random number of the running trials (some fail).
        for _ in range(rng.randrange(0, 3)):
            if not running:
                break
            done = running.pop(rng.randrange(len(running)))
            ok = rng.random() > 0.1
            finished = finish(done, q_score(done) if ok else None)
            asha.finished(finished)
            trials[done.number] = finished
    assert max(int(t.info["rung"]) for t in trials) == 3  # some reached the top


def q_score(trial: Trial) -> float:
    return float(trial.arch["q"]) * (1 + int(trial.info["rung"]))


def test_asha_keeps_every_worker_busy() -> None:
    ex = RecordingInline(capacity=4)
    exp = experiment(ASHA(max_fidelity=9), trials=30, executor=ex).run()
    assert len(exp.trials) == 30
    # While the budget lasts, 4 trials are in flight at every wait; then they drain.
    assert ex.in_flight_at_wait == [min(4, 30 - k) for k in range(30)]
    assert max(t.info["rung"] for t in exp.trials) == 2


def test_asha_in_an_experiment_promotes_hand_computed_configs() -> None:
    exp = experiment(ASHA(max_fidelity=9), trials=8).run()
    got = [(t.number, q_of(t), t.info["rung"], t.info.get("parent")) for t in exp.trials]
    assert got == [
        (0, 5, 0, None), (1, 2, 0, None), (2, 8, 0, None),
        (3, 8, 1, 2),  # 3 finished at rung 0: the best (q 8) goes up
        (4, 1, 0, None), (5, 9, 0, None),
        (6, 9, 1, 5),  # 5 finished: quota 1, q 9 is now the best and not yet promoted
        (7, 3, 0, None),
    ]
    # "entry": the strategy hears each configuration once, after its first rung.
    assert [t.number for t in exp.strategy.heard] == [0, 1, 2, 4, 5, 7]


# ---------------------------------------------------------------- what the strategy hears
def test_entry_tells_each_configuration_once_after_its_first_rung() -> None:
    exp = experiment(SuccessiveHalving(max_fidelity=9), trials=26).run()
    heard = exp.strategy.heard
    assert [t.number for t in heard] == list(range(9)) + list(range(13, 22))
    assert all(t.info["rung"] == 0 and t.fidelity == 1.0 for t in heard)
    assert exp.strategy.pending == []


@pytest.mark.parametrize("scheduler", [
    lambda: SuccessiveHalving(max_fidelity=9, tell="final"),
    lambda: ModelBasedHyperband(max_fidelity=9, random_fraction=0),  # "final" by default
])
def test_final_tells_each_configuration_once_with_its_highest_rung(scheduler: Any) -> None:
    exp = experiment(scheduler(), trials=13).run()
    heard = [t.number for t in exp.strategy.heard]
    # Rung 0 completes with trial 8: all but the promoted 4, 2, 6 end there; rung 1 completes
    # with trial 11: 10 and 11 end there; 12 ends the bracket at the top.
    assert heard == [0, 1, 3, 5, 7, 8, 10, 11, 12]
    configs = [t.info["config"] for t in exp.strategy.heard]
    assert sorted(configs) == list(range(9))
    best_fid = {t.info["config"]: t.fidelity for t in exp.strategy.heard}
    assert best_fid[4] == 9.0 and best_fid[2] == best_fid[6] == 3.0 and best_fid[0] == 1.0
    assert exp.strategy.pending == []


def test_final_tells_the_rung_when_a_failure_completes_it() -> None:
    # The last rung-0 trial (q 6, trial 8) fails: it completes the rung, and the five other
    # configurations that are not promoted must still be told (once).
    exp = experiment(SuccessiveHalving(max_fidelity=9, tell="final"),
                     evaluator=CurveEvaluator(fail=(6,)), trials=13).run()
    heard = [t.number for t in exp.strategy.heard]
    assert heard[:6] == [8, 0, 1, 3, 5, 7]
    assert sorted(t.info["config"] for t in exp.strategy.heard) == list(range(9))
    assert exp.strategy.pending == []


def test_final_tells_a_failed_promotion() -> None:
    class FailAtTop(CurveEvaluator):
        def evaluate(self, arch: Any, ctx: Any) -> Result:
            if ctx.fidelity == 9:
                return Result.failed("out of memory at 9 epochs")
            return super().evaluate(arch, ctx)

    exp = experiment(SuccessiveHalving(max_fidelity=9, tell="final"), evaluator=FailAtTop()).run()
    last = exp.strategy.heard[-1]
    assert last.number == 12 and last.status is TrialStatus.FAILED
    assert sorted(t.info["config"] for t in exp.strategy.heard) == list(range(9))


def test_bohb_draws_random_configurations_without_asking() -> None:
    exp = experiment(ModelBasedHyperband(max_fidelity=9, random_fraction=1), trials=13).run()
    assert exp.strategy.asked == 0
    news = [t for t in exp.trials if t.info.get("parent") is None]
    assert len(news) == 9 and all(t.info["random_config"] for t in news)
    assert len(exp.strategy.heard) == 9  # still told, at the end of their journeys
    # A fraction: the choice is a function of the seed and the trial number.
    sched = ModelBasedHyperband(max_fidelity=9, random_fraction=0.5)
    exp = experiment(sched, trials=13).run()
    flags = [bool(t.info.get("random_config")) for t in exp.trials if t.info.get("parent") is None]
    assert flags == [sched.random_config(0, n) for n in range(9)]
    assert 0 < sum(flags) < 9 and exp.strategy.asked == 9 - sum(flags)


# ---------------------------------------------------------------- resume
SCHEDULERS = {
    "sh": lambda: SuccessiveHalving(max_fidelity=9),
    "sh-final": lambda: SuccessiveHalving(max_fidelity=9, tell="final"),
    "hyperband": lambda: Hyperband(max_fidelity=9),
    "asha": lambda: ASHA(max_fidelity=9),
    "bohb": lambda: ModelBasedHyperband(max_fidelity=9, random_fraction=0.4),
}


def stored_run(db: Path, name: str, trials: int, capacity: int = 1,
               evaluator: CurveEvaluator | None = None, **kwargs: Any) -> Experiment:
    ev = evaluator if evaluator is not None else CurveEvaluator(fail=(3,))
    return experiment(SCHEDULERS[name](), trials=trials, evaluator=ev, storage=str(db),
                      executor=InlineExecutor(capacity=capacity), snapshot_every=4, **kwargs)


def check_same(resumed: Experiment, ref: Experiment) -> None:
    assert resumed.replay_mismatches == 0
    assert rows(resumed.trials) == rows(ref.trials)
    assert resumed.strategy.state_dict() == ref.strategy.state_dict()
    assert resumed.scheduler.summary() == ref.scheduler.summary()  # type: ignore[union-attr]
    assert resumed.fidelity_spent == ref.fidelity_spent
    # What was stored agrees too.
    assert rows(resumed.storage.trials()) == rows(ref.trials)


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_stop_and_resume_equals_an_uninterrupted_run(tmp_path: Path, name: str) -> None:
    ref = stored_run(tmp_path / "ref.db", name, 30).run()
    assert len(ref.trials) == 30
    db = tmp_path / "run.db"
    first = stored_run(db, name, 30)

    def stop_after_11(event: Any) -> None:
        if event.kind is EventKind.TRIAL_FINISHED and event.trial.number == 10:
            first.stop()

    first.add_callback(stop_after_11)
    first.run()
    assert first.stop_reason == "stopped" and len(first.trials) == 11
    resumed = stored_run(db, name, 30).run()
    check_same(resumed, ref)


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_larger_budget_continues_where_the_first_ended(tmp_path: Path, name: str) -> None:
    ref = stored_run(tmp_path / "ref.db", name, 30).run()
    db = tmp_path / "run.db"
    stored_run(db, name, 7).run()
    stored_run(db, name, 18).run()
    resumed = stored_run(db, name, 30).run()
    check_same(resumed, ref)


@pytest.mark.parametrize("ordered", [False, True])
@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_crash_mid_trial_resumes_exactly(tmp_path: Path, name: str, ordered: bool) -> None:
    """Three trials in flight; the driver dies during trial 12 (KeyboardInterrupt from inside
    the evaluation). The trials in flight stay 'running' and run again on resume."""
    ref = stored_run(tmp_path / "ref.db", name, 30, capacity=3, ordered=ordered).run()
    db = tmp_path / "run.db"
    crashing = stored_run(db, name, 30, capacity=3, ordered=ordered,
                          evaluator=CurveEvaluator(fail=(3,), interrupt_on=12))
    with pytest.raises(KeyboardInterrupt):
        crashing.run()
    stored = SQLiteStorage(db, readonly=True).trials()
    assert any(t.status is TrialStatus.RUNNING for t in stored)
    ev = CurveEvaluator(fail=(3,))
    resumed = stored_run(db, name, 30, capacity=3, evaluator=ev, ordered=ordered).run()
    check_same(resumed, ref)
    finished_before = {t.number for t in stored if t.status is not TrialStatus.RUNNING}
    assert not finished_before & {n for n, _ in ev.calls}  # no finished trial ran again


class CheapQ(CurveEvaluator):
    """Knows ``q`` before evaluating, so a constraint on it rejects proposals for free."""

    def cheap_metrics(self, arch: Any) -> dict[str, float]:
        return {"q": float(arch["q"])}


def test_rejected_random_configurations_replay_exactly(tmp_path: Path) -> None:
    def run(db: Path, trials: int) -> Experiment:
        return experiment(ModelBasedHyperband(max_fidelity=9, random_fraction=0.5),
                          evaluator=CheapQ(), constraints=["q >= 40"], storage=str(db),
                          budget=Budget(max_trials=trials), snapshot_every=100).run()

    ref = run(tmp_path / "ref.db", 30)
    assert any(t.info.get("rejected_before_evaluation") for t in ref.trials)
    run(tmp_path / "run.db", 10)
    resumed = run(tmp_path / "run.db", 30)
    assert resumed.replay_mismatches == 0
    assert rows(resumed.trials) == rows(ref.trials)
    assert resumed.strategy.state_dict() == ref.strategy.state_dict()


def test_rejected_proposals_take_no_rung_slot() -> None:
    exp = experiment(SuccessiveHalving(max_fidelity=9), evaluator=CheapQ(), trials=13,
                     constraints=["q >= 3"]).run()
    rejected = [t for t in exp.trials if t.info.get("rejected_before_evaluation")]
    assert [q_of(t) for t in rejected] == [2, 1]
    assert all("rung" not in t.info for t in rejected)
    evaluated = [t for t in exp.trials if not t.info.get("rejected_before_evaluation")]
    rung0 = [q_of(t) for t in evaluated if t.info["rung"] == 0]
    assert rung0 == [5, 8, 9, 3, 7, 4, 6, 15, 12]  # still nine configurations at rung 0
    assert [q_of(t) for t in evaluated if t.info["rung"] == 1] == [15, 12, 9]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sh", "asha"])
def test_worker_processes_match_the_inline_schedule(name: str) -> None:
    inline = experiment(SCHEDULERS[name](), trials=20, executor=InlineExecutor(capacity=2),
                        ordered=True).run()
    pool = experiment(SCHEDULERS[name](), trials=20, executor="process", workers=2,
                      ordered=True).run()
    assert rows(pool.trials) == rows(inline.trials)


def test_resume_with_other_scheduler_settings_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "run.db"
    stored_run(db, "asha", 5).run()
    with pytest.raises(StorageError, match="scheduler"):
        experiment(ASHA(max_fidelity=27), trials=10, evaluator=CurveEvaluator(fail=(3,)),
                   storage=str(db), snapshot_every=4).run()


def test_a_trial_without_a_rung_is_refused() -> None:
    asha = configured(ASHA(max_fidelity=9))
    with pytest.raises(ConfigError, match="trial 4 has no rung"):
        asha.started(Trial(number=4, arch=QSpace().make({"q": 1})))
    with pytest.raises(ConfigError, match="ran at rung 5"):
        asha.started(Trial(number=5, arch=QSpace().make({"q": 1}),
                           info={"rung": 5, "bracket": 0, "config": 5, "parent": None}))


# ---------------------------------------------------------------- NAS-Bench-201 (12 / 200 epochs)
def test_nb201_offers_12_and_200_epochs(nb201_dir: Path) -> None:
    space = nasforge.create_space("nb201")
    ev = nasforge.create_evaluator("nb201", data=str(nb201_dir), dataset="cifar10", fidelity=12)
    sh = configured(SuccessiveHalving(), ev.bind(space))
    assert sh.rungs == (12.0, 200.0)
    with pytest.raises(ConfigError, match=r"rung\(s\) 100 epochs are not offered .*allowed: 12, 200"):
        configured(SuccessiveHalving(rungs=[12, 100]), ev)
    with pytest.raises(ConfigError, match=r"offers only 12, 200 epochs"):
        configured(SuccessiveHalving(min_fidelity=50), ev)
    exp = Experiment(space, nasforge.create_strategy("random", space, seed=1), ev,
                     budget=Budget(max_trials=8), scheduler=SuccessiveHalving(), device="cpu").run()
    trials = exp.trials
    # n_configs = eta^(rungs - 1) = 3 at 12 epochs, the best at 200; twice.
    assert [t.fidelity for t in trials] == [12, 12, 12, 200] * 2
    for bracket in (trials[:4], trials[4:]):
        best12 = max(bracket[:3], key=lambda t: t.metrics["accuracy"])
        top = bracket[3]
        assert top.info["parent"] == best12.number and top.arch == best12.arch
        # A table cannot continue a rung: the promotion pays the full 200 epochs.
        assert top.info["fidelity_spent"] == 200
        assert top.cost == pytest.approx(ev.evaluate(top.arch, ev_ctx(200)).cost)
    assert exp.best() is not None and exp.best().fidelity == 200  # type: ignore[union-attr]


def ev_ctx(fidelity: float) -> Any:
    from nasforge.evaluators.base import EvalContext

    return EvalContext(fidelity=fidelity)


# ---------------------------------------------------------------- kill -9 in the middle of a rung
def kill_log(log: Path) -> list[tuple[int, int]]:
    if not log.exists():
        return []
    return [(int(a), int(b)) for a, b in (line.split() for line in log.read_text().splitlines())]


def told_numbers(db: Path) -> set[int]:
    if not db.exists():
        return set()
    try:
        s = SQLiteStorage(db, readonly=True)
    except Exception:
        return set()
    try:
        return {x.trial.number for x in s.stored_trials() if x.tell_seq is not None}
    finally:
        s.close()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sh", "asha"])
def test_sigkill_mid_rung_resumes_exactly(tmp_path: Path, name: str) -> None:
    trials = 40
    ref = build_kill_experiment(str(tmp_path / "ref.db"), trials, name).run()
    db, log = tmp_path / "killed.db", tmp_path / "killed.log"
    rng = random.Random(1234)
    kills, done_at_kill = 0, []
    pids: set[int] = set()
    while True:
        proc = subprocess.Popen([sys.executable, str(HELPERS), str(db), str(log), str(trials), name],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        pids.add(proc.pid)
        if kills < 4:
            target = len(kill_log(log)) + rng.randint(2, 6)
            deadline = time.time() + 60
            while len(kill_log(log)) < target and proc.poll() is None and time.time() < deadline:
                time.sleep(0.002)
            time.sleep(rng.uniform(0.0, 0.004))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=30)
                kills += 1
                done_at_kill.append((set(pids), told_numbers(db)))
                continue
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()
        break
    assert kills == 4
    final = SQLiteStorage(db, readonly=True)
    assert rows(final.trials()) == rows(ref.trials)
    final.close()
    for earlier, done in done_at_kill:
        again = [(pid, n) for pid, n in kill_log(log) if pid not in earlier and n in done]
        assert not again, f"finished trials evaluated again after a kill: {again}"
    assert len({n for _, n in kill_log(log)}) == trials
    # Kills landed in the middle of rungs: some of a rung's trials were told, others not.
    groups: dict[tuple[int, int], set[int]] = {}
    for t in ref.trials:
        groups.setdefault((t.info["bracket"], t.info["rung"]), set()).add(t.number)
    mid_rung = [done for _, done in done_at_kill
                if any(0 < len(g & done) < len(g) for g in groups.values())]
    assert mid_rung


def test_tpe_learns_from_bohbs_uniformly_drawn_configurations() -> None:
    """BOHB's random third is told to the strategy; TPE records it in its study (as BOHB's own
    model learns from every configuration)."""
    from nasforge.strategies.tpe import TPE

    space = QSpace()
    strategy = TPE(space, seed=0)
    exp = Experiment(space, strategy, CurveEvaluator(), budget=Budget(max_trials=20), seed=0,
                     device="cpu", scheduler=ModelBasedHyperband(max_fidelity=9,
                                                                 random_fraction=0.5)).run()
    random_configs = [t for t in exp.trials if t.info.get("random_config") and t.status.finished]
    assert random_configs, "the test needs some uniformly drawn configurations"
    recorded = {int(t.params["q"]) for t in strategy.study.get_trials(deepcopy=False)
                if t.state.name == "COMPLETE"}
    assert {q_of(t) for t in random_configs} <= recorded


def test_more_brackets_than_the_trial_budget_allows_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"2 bracket\(s\) need 19 evaluations.*budget of 10"):
        experiment(Hyperband(max_fidelity=9, brackets=2), trials=10)
    experiment(Hyperband(max_fidelity=9, brackets=2), trials=19)  # 9+3+1 and 5+1: enough
    experiment(Hyperband(max_fidelity=9), trials=5)  # no brackets asked for: a warning only
