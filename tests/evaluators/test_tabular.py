"""The NAS-Bench-201 tabular evaluator: lookups, simulated cost, constraints, errors."""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import nasforge
from nasforge import Budget, Choice, EvalContext, Experiment, SearchSpace, TrialStatus
from nasforge.benchmarks import NB201Table
from nasforge.errors import ConfigError, InvalidArchitectureError
from nasforge.evaluators.tabular import TabularEvaluator

BEST = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
        "+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|")


@pytest.fixture(scope="module")
def evaluator(nb201_dir: Path) -> TabularEvaluator:
    ev = nasforge.create_evaluator("nb201", data=str(nb201_dir), dataset="cifar10", fidelity=12)
    assert isinstance(ev, TabularEvaluator)
    return ev.bind(nasforge.create_space("nb201"))


def test_registered() -> None:
    assert "nb201" in nasforge.list_evaluators()
    assert TabularEvaluator.simulated_cost and TabularEvaluator.deterministic


def test_evaluate_known_architecture(evaluator: TabularEvaluator) -> None:
    space = nasforge.create_space("nb201")
    arch = space.from_string(BEST)
    res = evaluator.evaluate(arch, EvalContext())
    assert res.status is TrialStatus.OK
    assert res.metrics["accuracy"] == pytest.approx(84.384)  # cifar10_valid_val_acc_12
    assert res.metrics["test_accuracy"] == pytest.approx(94.3733)  # cifar10_test_acc_200
    assert res.metrics["params"] == 1_073_466
    assert res.cost == pytest.approx(12 * 14.3987 + 4.5461)
    assert res.info["index"] == 6111 and res.info["arch"] == BEST
    assert evaluator.evaluate(arch, EvalContext(seed=5)) == res  # deterministic, seed-independent
    assert evaluator.cheap_metrics(arch) == {"params": 1_073_466.0}


def test_context_fidelity_overrides(evaluator: TabularEvaluator) -> None:
    arch = nasforge.create_space("nb201").from_string(BEST)
    res = evaluator.evaluate(arch, EvalContext(fidelity=200))
    assert res.metrics["accuracy"] == pytest.approx(91.6067)
    assert res.cost == pytest.approx(200 * 14.3987 + 4.5461)
    assert res.info["fidelity"] == 200


def test_tiny_experiment_with_cost_budget_and_constraint(evaluator: TabularEvaluator) -> None:
    space = nasforge.create_space("nb201")
    strategy = nasforge.create_strategy("random", space, seed=3)
    exp = Experiment(space, strategy, evaluator, budget=Budget(max_cost=1500.0),
                     constraints=["params <= 5e5"], storage=None, device="cpu").run()
    trials = exp.trials
    ok = [t for t in trials if t.ok]
    rejected = [t for t in trials if t.status is TrialStatus.INFEASIBLE]
    assert ok and rejected
    assert all(t.metrics["params"] <= 5e5 for t in ok)
    # rejected before 'training': nothing charged, no accuracy looked up
    assert all(t.cost == 0.0 and "test_accuracy" not in t.metrics for t in rejected)
    total = sum(t.cost for t in trials)
    assert total >= 1500.0 and total - ok[-1].cost < 1500.0  # the crossing trial counts
    table = NB201Table.load(evaluator.data)
    best = exp.best()
    assert best is not None
    assert best.metrics["accuracy"] == max(table.query(t.info["index"]).val_acc for t in ok)


class _ToySpace(SearchSpace):
    name = "toy"

    def _declare(self) -> Sequence[Choice]:
        return [Choice("a", (1, 2))]

    def build(self, arch: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


def test_other_spaces_are_refused(evaluator: TabularEvaluator, nb201_dir: Path) -> None:
    fresh = TabularEvaluator(data=nb201_dir)
    with pytest.raises(ConfigError, match="only for the 'nb201' search space, not 'toy'"):
        fresh.bind(_ToySpace())
    toy_arch = _ToySpace().sample(0)
    with pytest.raises(InvalidArchitectureError, match="space 'nb201', got 'toy'"):
        evaluator.evaluate(toy_arch, EvalContext())


def test_datasets_without_times(nb201_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"no training times for dataset 'cifar100'.*charge_cost"):
        TabularEvaluator(data=nb201_dir, dataset="cifar100")
    ev = TabularEvaluator(data=nb201_dir, dataset="cifar100", charge_cost=False)
    ev.bind(nasforge.create_space("nb201"))
    res = ev.evaluate(nasforge.create_space("nb201").from_string(BEST), EvalContext())
    assert res.cost == 0.0 and res.metrics["accuracy"] == pytest.approx(60.2)
    assert res.info["test_epochs"] == 12


def test_bad_options(nb201_dir: Path) -> None:
    with pytest.raises(ConfigError, match="unknown NAS-Bench-201 dataset 'svhn'"):
        TabularEvaluator(data=nb201_dir, dataset="svhn")
    with pytest.raises(ConfigError, match="fidelity 50; available"):
        TabularEvaluator(data=nb201_dir, fidelity=50)
    with pytest.raises(ConfigError, match="bad options for evaluator 'nb201'"):
        nasforge.create_evaluator("nb201", data=str(nb201_dir), epochs=3)


def test_pickles_without_the_table(evaluator: TabularEvaluator) -> None:
    blob = pickle.dumps(evaluator)
    assert len(blob) < 10_000  # the path travels, not the arrays
    clone = pickle.loads(blob)
    arch = nasforge.create_space("nb201").sample(7)
    assert clone.evaluate(arch, EvalContext()) == evaluator.evaluate(arch, EvalContext())
    assert clone.describe() == evaluator.describe()
