"""Metrics named by objectives and constraints: checked up front where the evaluator declares its
metrics, filled in from ``cheap_metrics``, and otherwise a failed trial with its reason (and an
early stop when no result ever had the metric)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from exp_runtime_helpers import CheapMetricsEvaluator, metrics

import nasforge
from nasforge.errors import ConfigError, DataNotFoundError
from nasforge.evaluators.base import EvalContext
from nasforge.evaluators.function import FunctionEvaluator
from nasforge.experiment import Budget, Experiment, SQLiteStorage
from nasforge.space.architecture import Architecture
from nasforge.trial import TrialStatus


@pytest.fixture(scope="module")
def space() -> nasforge.SearchSpace:
    return nasforge.create_space("nb201")


def make(space: nasforge.SearchSpace, evaluator: Any, **kwargs: Any) -> Experiment:
    kwargs.setdefault("budget", Budget(max_trials=20))
    strat = nasforge.create_strategy("random", space, seed=0)
    return Experiment(space, strat, evaluator, seed=0, device="cpu", **kwargs)


class Declared(FunctionEvaluator):
    """Says which metrics it produces, like the training and tabular evaluators."""

    def produced_metrics(self) -> frozenset[str]:
        return frozenset({"accuracy", "params", "latency_ms"})


def test_unknown_names_are_refused_up_front(space: nasforge.SearchSpace, tmp_path: Path) -> None:
    db = tmp_path / "e.db"
    with pytest.raises(ConfigError, match=r"does not produce the metric\(s\) 'acuracy' \(named by "
                       r"objective max:acuracy\); its metrics are: accuracy, latency_ms, params"):
        make(space, Declared(metrics), objectives=["acuracy"], storage=str(db))
    with pytest.raises(ConfigError, match=r"'parmas' \(named by constraint parmas <= 1\)"):
        make(space, Declared(metrics), constraints=["parmas <= 1"], storage=str(db))
    assert not db.exists()  # refused before the storage was created
    make(space, Declared(metrics), objectives=["min:latency_ms"], constraints=["params <= 1e6"])


def test_missing_metric_stops_the_search_with_a_stored_reason(space: nasforge.SearchSpace,
                                                              tmp_path: Path) -> None:
    db = tmp_path / "e.db"
    ev = FunctionEvaluator(metrics)  # cannot declare its metrics in advance
    exp = make(space, ev, objectives=["acuracy"], storage=str(db))
    with pytest.raises(ConfigError, match=r"stopped after trial 0: its result has no metric "
                       r"'acuracy', which objective max:acuracy names; the evaluator produced: "
                       r"accuracy, latency_ms, params"):
        exp.run()
    # One trial, not the whole budget, and `nasforge show --errors` can list why.
    trials = SQLiteStorage(db, readonly=True).trials()
    assert [t.status for t in trials] == [TrialStatus.FAILED]
    assert trials[0].error == ("the result has no metric 'acuracy' (named by objective "
                               "max:acuracy); it has: accuracy, latency_ms, params")


def test_metric_sometimes_missing_fails_only_those_trials(space: nasforge.SearchSpace) -> None:
    def flaky(arch: Architecture, ctx: EvalContext) -> dict[str, float]:
        out = metrics(arch, ctx)
        if ctx.trial_number % 3 == 2:
            del out["latency_ms"]
        return out

    exp = make(space, FunctionEvaluator(flaky), budget=Budget(max_trials=9),
               constraints=["latency_ms <= 100"]).run()
    assert exp.stop_reason == "finished"
    failed = [t for t in exp.trials if t.status is TrialStatus.FAILED]
    assert [t.number for t in failed] == [2, 5, 8]
    assert all("no metric 'latency_ms' (named by constraint latency_ms <= 100)" in (t.error or "")
               for t in failed)
    assert sum(t.ok for t in exp.trials) == 6
    # Before, a constraint on a missing metric was treated as satisfied and the trial was OK.


def test_constrained_metric_missing_fails_instead_of_passing(space: nasforge.SearchSpace) -> None:
    exp = make(space, FunctionEvaluator(metrics), constraints=["flops <= 1"])
    with pytest.raises(ConfigError, match="no metric 'flops', which constraint flops <= 1 names"):
        exp.run()
    assert [t.status for t in exp.trials] == [TrialStatus.FAILED]


def test_cheap_metrics_fill_in_what_the_result_lacks(space: nasforge.SearchSpace) -> None:
    class OnlyAccuracy(CheapMetricsEvaluator):
        def evaluate(self, arch: Architecture, ctx: EvalContext) -> nasforge.Result:
            r = super().evaluate(arch, ctx)
            return nasforge.Result(metrics={"accuracy": r.metrics["accuracy"]})

    exp = make(space, OnlyAccuracy(), budget=Budget(max_trials=5),
               objectives=["accuracy", "min:params"]).run()
    assert all(t.ok and t.metrics["params"] > 0 for t in exp.trials)


def test_setup_error_comes_before_the_storage(space: nasforge.SearchSpace, tmp_path: Path) -> None:
    class NoData(FunctionEvaluator):
        def check_ready(self) -> None:
            raise DataNotFoundError("the data is not in /nowhere")

    db = tmp_path / "e.db"
    with pytest.raises(DataNotFoundError, match="/nowhere"):
        make(space, NoData(metrics), storage=str(db))
    assert not db.exists() and not (tmp_path / "e.db.lock").exists()


def test_failing_cheap_metrics_use_the_budget(space: nasforge.SearchSpace) -> None:
    class Broken(CheapMetricsEvaluator):
        def cheap_metrics(self, arch: Architecture) -> dict[str, float]:
            raise RuntimeError("cannot build")

    exp = make(space, Broken(), budget=Budget(max_trials=4), constraints=["params <= 1e6"]).run()
    assert len(exp.trials) == 4 and exp.stop_reason == "finished"
    assert all(t.status is TrialStatus.FAILED and "cheap_metrics failed: RuntimeError: cannot build"
               in (t.error or "") for t in exp.trials)


def test_negative_seed_is_refused(space: nasforge.SearchSpace) -> None:
    with pytest.raises(ConfigError, match="seed must be an integer >= 0, got -1"):
        Experiment(space, nasforge.create_strategy("random", space, seed=0),
                   FunctionEvaluator(metrics), budget=Budget(max_trials=1), seed=-1)
