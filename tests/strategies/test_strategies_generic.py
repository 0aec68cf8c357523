"""Every registered strategy against every registered space (and a toy conditional space): the
strategy contract (``nasforge.testing.check_strategy``: valid asks, no pending duplicates, tells
of every status, JSON state, resume to the same future, determinism per seed, consistent names),
plus more seeds for batch asks, a run through the experiment loop, and an experiment resume."""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest
from strategy_helpers import OBJECTIVES, TINY, ToyConditionalSpace, drive, toy_metrics

import nasforge
from nasforge.evaluators.base import EvalContext
from nasforge.evaluators.function import FunctionEvaluator
from nasforge.experiment import Budget, Experiment
from nasforge.space.architecture import Architecture
from nasforge.space.base import SearchSpace
from nasforge.strategies.base import Strategy
from nasforge.testing import check_strategy

STRATEGY_NAMES = nasforge.list_strategies()
SPACE_NAMES = [*nasforge.list_spaces(), "toy_conditional"]


@cache
def get_space(name: str) -> SearchSpace:
    return ToyConditionalSpace() if name == "toy_conditional" else nasforge.create_space(name)


def make(strategy: str, space: str, seed: int) -> Strategy:
    return nasforge.create_strategy(strategy, get_space(space), seed=seed,
                                    objectives=list(OBJECTIVES), **TINY.get(strategy, {}))


#: Seeds of the batch test per space: the toy space has 68 members (4 of depth 1, drawn a third of
#: the time), so independent draws repeat within a batch of 6 in most seeds; NB201 is realistic.
BATCH_SEEDS = {"toy_conditional": range(10), "nb201": range(2)}


@pytest.mark.parametrize("space_name", SPACE_NAMES)
@pytest.mark.parametrize("strategy_name", STRATEGY_NAMES)
def test_strategy_contract(strategy_name: str, space_name: str) -> None:
    def factory(space: SearchSpace, seed: int) -> Strategy:
        assert space is get_space(space_name)
        return make(strategy_name, space_name, seed)

    # Two seeds where the space is small enough for repeats to happen by chance; one elsewhere.
    seeds = (0, 1) if space_name in BATCH_SEEDS else (0,)
    check_strategy(factory, get_space(space_name), seeds=seeds)


@pytest.mark.parametrize("space_name", sorted(BATCH_SEEDS))
@pytest.mark.parametrize("strategy_name", STRATEGY_NAMES)
def test_batch_asks_avoid_pending_duplicates(strategy_name: str, space_name: str) -> None:
    for seed in BATCH_SEEDS[space_name]:
        strat = make(strategy_name, space_name, seed=seed)
        drive(strat, steps=4)
        batch = strat.ask_batch(6)
        assert len(set(batch)) == len(batch), f"seed {seed}: {batch}"


@pytest.mark.parametrize("space_name", SPACE_NAMES)
@pytest.mark.parametrize("strategy_name", STRATEGY_NAMES)
def test_runs_in_experiment_with_constraint(strategy_name: str, space_name: str) -> None:
    space = get_space(space_name)

    def fn(arch: Architecture, ctx: EvalContext) -> dict[str, float]:
        return toy_metrics(space, arch)

    strat = make(strategy_name, space_name, seed=1)
    # About a third of the architectures break the constraint and come back INFEASIBLE.
    exp = Experiment(space, strat, FunctionEvaluator(fn), budget=Budget(max_trials=8),
                     objectives=list(OBJECTIVES), constraints=["params <= 4000"], seed=1,
                     device="cpu")
    exp.run()
    trials = exp.trials
    assert len(trials) == 8
    assert all(t.status.finished for t in trials)
    for t in trials:
        space.validate(t.arch)


@pytest.mark.parametrize("strategy_name", STRATEGY_NAMES)
def test_experiment_resume_matches_an_uninterrupted_run(strategy_name: str, tmp_path: Any) -> None:
    space = get_space("nb201")

    def fn(arch: Architecture, ctx: EvalContext) -> dict[str, float]:
        return toy_metrics(space, arch)

    def experiment(storage: Any, trials: int) -> Experiment:
        strat = make(strategy_name, "nb201", seed=7)
        return Experiment(space, strat, FunctionEvaluator(fn), budget=Budget(max_trials=trials),
                          objectives=list(OBJECTIVES), storage=storage, seed=7, device="cpu",
                          snapshot_every=3)

    path = str(tmp_path / "exp.db")
    experiment(path, 7).run()
    resumed = experiment(path, 12).run()  # loads the last snapshot, replays the rest
    straight = experiment(None, 12).run()
    assert resumed.replay_mismatches == 0
    assert [t.arch for t in resumed.trials] == [t.arch for t in straight.trials]
