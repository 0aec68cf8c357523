"""The "proxy" evaluator: proxy scores as metrics, data handling, experiments, and rank()."""

from __future__ import annotations

import math
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import nasforge
from nasforge import Budget, EvalContext, Experiment
from nasforge.errors import ConfigError, InvalidArchitectureError, UnknownNameError
from nasforge.evaluators.proxies import ProxyEvaluator, RankedArch, rank
from nasforge.space import Architecture, Choice, SearchSpace
from nasforge.trial import TrialStatus

SMALL = {"C": 4, "N": 1}


class TinySpace(SearchSpace):
    """Width x kernel of a one-conv network (any input channels and classes)."""

    name = "tiny_proxy"

    def _declare(self) -> Sequence[Choice]:
        return [Choice("width", (2, 8)), Choice("kernel", (1, 3))]

    def build(self, arch: Architecture, num_classes: int = 10, in_channels: int = 3,
              **kwargs: Any) -> nn.Module:
        w, k = int(arch["width"]), int(arch["kernel"])
        return nn.Sequential(
            nn.Conv2d(in_channels, w, k, padding=k // 2), nn.BatchNorm2d(w), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(w, num_classes),
        )


def make(space: SearchSpace, **options: Any) -> ProxyEvaluator:
    ev = nasforge.create_evaluator("proxy", **options)
    assert isinstance(ev, ProxyEvaluator)
    return ev.bind(space)


def test_registered_with_defaults() -> None:
    assert "proxy" in nasforge.list_evaluators()
    ev = nasforge.create_evaluator("proxy")
    assert isinstance(ev, ProxyEvaluator) and ev.proxies == ("synflow",)
    assert not ev.needs_data


def test_metrics_are_every_proxy_plus_the_primary_score() -> None:
    space = nasforge.create_space("nb201")
    ev = make(space, proxy=["synflow", "params", "naswot"], dataset="random", build_kwargs=SMALL,
              batch_size=8)
    arch = space.sample(0)
    r = ev.evaluate(arch, EvalContext(seed=1))
    assert r.status is TrialStatus.OK
    assert set(r.metrics) == {"score", "synflow", "params", "naswot"}
    assert r.metrics["score"] == r.metrics["synflow"] > 0
    assert r.metrics["params"] == sum(p.numel() for p in space.build(arch, **SMALL).parameters())
    assert math.isfinite(r.metrics["naswot"])
    assert r.cost is not None and r.cost > 0
    assert r.info["proxies"] == ["synflow", "params", "naswot"] and r.info["primary"] == "synflow"
    assert ev.evaluate(arch, EvalContext(seed=1)).metrics == r.metrics  # same seed, same scores
    assert ev.evaluate(arch, EvalContext(seed=2)).metrics["synflow"] != r.metrics["synflow"]


def test_fast_nb201_synflow_equals_the_generic_path() -> None:
    space = nasforge.create_space("nb201")
    fast = make(space, build_kwargs=SMALL)
    slow = make(space, build_kwargs=SMALL, fast_nb201=False)
    for seed in range(3):
        arch = space.sample(seed)
        a = fast.evaluate(arch, EvalContext(seed=seed)).metrics["synflow"]
        b = slow.evaluate(arch, EvalContext(seed=seed)).metrics["synflow"]
        assert a == pytest.approx(b, rel=1e-12)


def test_data_based_proxies_need_a_dataset() -> None:
    with pytest.raises(ConfigError) as err:
        nasforge.create_evaluator("proxy", proxy=["synflow", "snip", "jacob_cov"])
    text = str(err.value)
    assert text.startswith("data-based proxies 'snip', 'jacob_cov' need images, but no dataset")
    assert "dataset='random'" in text and "flops, params, synflow" in text
    data_free = nasforge.create_evaluator("proxy", proxy=["synflow", "params"])
    assert isinstance(data_free, ProxyEvaluator) and data_free.dataset is None


def test_random_data_only_when_asked_for() -> None:
    space = TinySpace()
    ev = make(space, proxy=["snip", "jacob_cov"], dataset="random", batch_size=6, data_seed=3)
    x, y = ev.batch()
    assert x.shape == (6, 3, 32, 32) and y.shape == (6,) and int(y.max()) < 10
    assert torch.equal(x, space.example_input(6, seed=3))
    r = ev.evaluate(space.make({"width": 8, "kernel": 3}), EvalContext())
    assert r.info["data"] == "random example_input, random labels (not informative)"
    assert all(math.isfinite(r.metrics[k]) for k in ("snip", "jacob_cov"))


@pytest.mark.slow  # loads the 60,000 Fashion-MNIST training images
def test_real_images_from_a_named_dataset(fashion_mnist_dir: Path) -> None:
    space = TinySpace()
    ev = make(space, proxy=["grad_norm", "flops"], dataset="fashion_mnist",
              data_dir=str(fashion_mnist_dir), batch_size=16)
    x, y = ev.batch()
    assert x.shape == (16, 1, 28, 28) and x.dtype == torch.float32
    assert len(set(y.tolist())) > 1  # a real, shuffled sample of labels
    assert torch.equal(ev.batch()[0], x)  # one fixed batch for every architecture
    r = ev.evaluate(space.make({"width": 2, "kernel": 3}), EvalContext())
    assert r.info["data"] == "fashion_mnist" and r.metrics["score"] == r.metrics["grad_norm"] > 0
    # the network was built for the data: 1 input channel, FLOPs of a 1x28x28 image
    model = ev.build(space.make({"width": 2, "kernel": 3}))
    assert isinstance(model, nn.Sequential) and model[0].in_channels == 1
    assert r.metrics["flops"] == 2 * (2 * 1 * 9 * 28 * 28 + 2 * 10)
    # the pickled evaluator leaves its batch behind and loads it again where it is used
    clone = pickle.loads(pickle.dumps(ev))
    assert clone._batches == {} and torch.equal(clone.bind(space).batch()[0], x)


def test_bad_options_name_the_allowed_values() -> None:
    with pytest.raises(UnknownNameError) as err:
        nasforge.create_evaluator("proxy", proxy=["synflow", "zen"])
    assert "'zen'" in str(err.value) and "'jacob_cov'" in str(err.value)
    with pytest.raises(ConfigError, match="at least one proxy"):
        nasforge.create_evaluator("proxy", proxy=[])
    with pytest.raises(ConfigError, match="batch_size"):
        nasforge.create_evaluator("proxy", batch_size=0)
    with pytest.raises(ConfigError, match="num_classes"):
        nasforge.create_evaluator("proxy", dataset="fashion_mnist", build_kwargs={"num_classes": 3})
    with pytest.raises(UnknownNameError):
        nasforge.create_evaluator("proxy", dataset="no_such_data")
    with pytest.raises(ConfigError, match="bind"):
        nasforge.create_evaluator("proxy", proxy="params").evaluate(
            TinySpace().sample(0), EvalContext())


def test_cheap_metrics_give_params_for_constraints() -> None:
    space = TinySpace()
    ev = make(space)
    arch = space.make({"width": 8, "kernel": 1})
    assert ev.cheap_metrics(arch) == {"params": float(3 * 8 + 8 + 2 * 8 + 8 * 10 + 10)}


def test_as_the_evaluator_of_an_experiment() -> None:
    space = nasforge.create_space("nb201")
    ev = nasforge.create_evaluator("proxy", proxy=["synflow", "params"], build_kwargs=SMALL)
    strategy = nasforge.create_strategy("random", space, seed=0)
    exp = Experiment(space, strategy, ev, objectives="score", budget=Budget(max_trials=4),
                     device="cpu").run()
    assert len(exp.trials) == 4 and all(t.ok for t in exp.trials)
    best = exp.best()
    assert best is not None
    assert best.metrics["score"] == max(t.metrics["synflow"] for t in exp.trials)


def test_rank_votes_and_sorts_best_first() -> None:
    space = TinySpace()
    archs = list(space.enumerate())
    ranked = rank(archs, ["params", "flops"], space=space, batch_size=4)
    assert all(isinstance(r, RankedArch) for r in ranked) and len(ranked) == 4
    assert [r.vote_rank for r in ranked] == sorted(r.vote_rank for r in ranked)
    best = ranked[0]
    assert best.arch == space.make({"width": 8, "kernel": 3}) and best.vote_rank == 1
    assert set(best.scores) == {"params", "flops"}
    worst = ranked[-1]
    assert worst.arch == space.make({"width": 2, "kernel": 1}) and worst.vote_rank == 4
    majority = rank(archs, ["params", "flops"], space=space, method="majority")
    assert [r.arch for r in majority] == [r.arch for r in ranked]


def test_rank_default_vote_needs_a_dataset() -> None:
    space = TinySpace()
    archs = list(space.enumerate())
    with pytest.raises(ConfigError, match=r"data-based proxies 'jacob_cov', 'snip' need images"):
        rank(archs, space=space)  # the default vote: synflow, jacob_cov, snip
    g = torch.Generator().manual_seed(0)
    images, labels = torch.rand(64, 3, 8, 8, generator=g), torch.randint(0, 4, (64,), generator=g)
    ranked = rank(archs, space=space, dataset=(images, labels), batch_size=16)
    assert len(ranked) == 4 and set(ranked[0].scores) == {"synflow", "jacob_cov", "snip"}
    assert all(math.isfinite(r.scores["snip"]) for r in ranked)


def test_rank_finds_the_space_and_rejects_bad_input() -> None:
    space = nasforge.create_space("nb201")
    archs = [space.sample(i) for i in range(3)]
    ranked = rank(archs, "synflow", build_kwargs=SMALL)
    values = [r.scores["synflow"] for r in ranked]
    assert values == sorted(values, reverse=True) and {r.arch for r in ranked} == set(archs)
    with pytest.raises(ConfigError, match="at least one"):
        rank([], "synflow")
    with pytest.raises(InvalidArchitectureError, match="one space"):
        rank([archs[0], TinySpace().sample(0)], "params")
    with pytest.raises(ConfigError, match="'sum', 'majority'"):
        rank(archs, "params", method="best")


@pytest.mark.slow  # one small network of every registered space
@pytest.mark.parametrize("space_name", nasforge.list_spaces())
def test_every_registered_space_can_be_scored(space_name: str) -> None:
    space = nasforge.create_space(space_name)
    ev = make(space, proxy=["synflow", "naswot", "snip", "flops"], dataset="random",
              batch_size=4, build_kwargs=dict(space.small_build_kwargs))
    r = ev.evaluate(space.sample(0), EvalContext(seed=0))
    assert r.status is TrialStatus.OK
    assert all(math.isfinite(r.metrics[k]) for k in ("synflow", "naswot", "snip", "flops"))
