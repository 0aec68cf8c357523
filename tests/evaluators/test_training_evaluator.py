"""The "train" evaluator on real Fashion-MNIST subsets with a tiny space (and nb201, slow)."""

from __future__ import annotations

import pickle
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import nasforge
from nasforge import EvalContext, TrialPruned
from nasforge.errors import ConfigError
from nasforge.evaluators.training import TrainingEvaluator
from nasforge.space import Architecture, Choice, SearchSpace
from nasforge.trial import TrialStatus


class TinySpace(SearchSpace):
    """Width x kernel of a one-conv network; builds whatever input channels/classes it is told."""

    name = "tiny"

    def _declare(self) -> Sequence[Choice]:
        return [Choice("width", (4, 8)), Choice("kernel", (1, 3))]

    def build(self, arch: Architecture, num_classes: int = 10, in_channels: int = 3,
              scale: float = 1.0, **kwargs: Any) -> nn.Module:
        w, k = int(arch["width"]), int(arch["kernel"])
        net = nn.Sequential(
            nn.Conv2d(in_channels, w, k, padding=k // 2), nn.BatchNorm2d(w), nn.ReLU(),
            nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(16 * w, num_classes),
        )
        if scale != 1.0:  # lets a test make training diverge
            with torch.no_grad():
                for p in net[-1].parameters():
                    p.mul_(scale)
        return net



@pytest.fixture
def space() -> TinySpace:
    return TinySpace()


def make(fashion_mnist_dir: Path, space: SearchSpace, **kw: Any) -> TrainingEvaluator:
    opts: dict[str, Any] = dict(dataset="fashion_mnist", data_dir=str(fashion_mnist_dir),
                                epochs=1, train_subset=512, val_subset=256, batch_size=64)
    opts.update(kw)
    ev = nasforge.create_evaluator("train", **opts)
    assert isinstance(ev, TrainingEvaluator)
    return ev.bind(space)  # type: ignore[return-value]


def arch(space: SearchSpace) -> Architecture:
    return space.make({"width": 8, "kernel": 3})


def test_registered_and_trains(fashion_mnist_dir: Path, space: TinySpace) -> None:
    assert "train" in nasforge.list_evaluators()
    ev = make(fashion_mnist_dir, space, epochs=2, lr=0.1, train_subset=1024)
    r = ev.evaluate(arch(space), EvalContext(seed=0))
    assert r.status is TrialStatus.OK
    assert 40 < r.metrics["accuracy"] <= 100  # 10 classes: chance is 10 %
    assert r.metrics["params"] == sum(p.numel() for p in space.build(arch(space), 10, 1).parameters())
    assert r.metrics["epochs"] == 2 and r.cost is not None and r.cost > 0
    curve = r.info["curve"]
    assert [c["epoch"] for c in curve] == [1, 2] and curve[-1]["val_accuracy"] == r.metrics["accuracy"]
    assert r.info["data"] == {"train": 1024, "val": 256}


def test_same_seed_same_accuracy(fashion_mnist_dir: Path, space: TinySpace) -> None:
    ev = make(fashion_mnist_dir, space)
    a = ev.evaluate(arch(space), EvalContext(seed=3)).metrics
    b = ev.evaluate(arch(space), EvalContext(seed=3)).metrics
    c = ev.evaluate(arch(space), EvalContext(seed=4)).metrics
    assert a == b
    assert a["train_loss"] != c["train_loss"]


def test_fidelity_sets_epochs(fashion_mnist_dir: Path, space: TinySpace) -> None:
    ev = make(fashion_mnist_dir, space, epochs=5, train_subset=128, val_subset=64)
    r = ev.evaluate(arch(space), EvalContext(seed=0, fidelity=2.2))
    assert r.metrics["epochs"] == 2 and len(r.info["curve"]) == 2
    with pytest.raises(ConfigError, match="fidelity"):
        ev.evaluate(arch(space), EvalContext(seed=0, fidelity=0))


def test_report_prunes(fashion_mnist_dir: Path, space: TinySpace) -> None:
    ev = make(fashion_mnist_dir, space, epochs=3, train_subset=128, val_subset=64)
    reports: list[tuple[int, float]] = []

    def reporter(step: int, value: float) -> bool:
        reports.append((step, value))
        return step == 2

    with pytest.raises(TrialPruned, match="after epoch 2") as caught:
        ev.evaluate(arch(space), EvalContext(seed=0, reporter=reporter))
    assert [s for s, _ in reports] == [1, 2] and all(0 <= v <= 100 for _, v in reports)
    # The budget charges exactly what was trained, not a guess from the curve.
    assert caught.value.info == {"epochs_trained": 2}


def test_early_stopping_keeps_best(fashion_mnist_dir: Path, space: TinySpace) -> None:
    ev = make(fashion_mnist_dir, space, epochs=6, train_subset=128, val_subset=64,
              early_stopping=1, min_delta=50.0)
    r = ev.evaluate(arch(space), EvalContext(seed=0))
    assert r.info["stopped"] == "callback" and len(r.info["curve"]) == 2
    assert r.metrics["accuracy"] == max(c["val_accuracy"] for c in r.info["curve"])
    with pytest.raises(ConfigError, match="patience"):
        make(fashion_mnist_dir, space, early_stopping=0)


def test_nan_loss_fails_with_reason(fashion_mnist_dir: Path, space: TinySpace) -> None:
    ev = make(fashion_mnist_dir, space, lr=1e20, grad_clip=None, train_subset=128,
              build_kwargs={"scale": 1e30})
    r = ev.evaluate(arch(space), EvalContext(seed=0))
    assert r.status is TrialStatus.FAILED
    assert r.error is not None and "loss became" in r.error


def test_deadline_fails_with_reason(fashion_mnist_dir: Path, space: TinySpace) -> None:
    ev = make(fashion_mnist_dir, space)
    r = ev.evaluate(arch(space), EvalContext(seed=0, deadline=time.time() - 1))
    assert r.status is TrialStatus.FAILED and r.error is not None and "time limit" in r.error


def test_pickles_without_data(fashion_mnist_dir: Path, space: TinySpace) -> None:
    ev = make(fashion_mnist_dir, space, train_subset=128, val_subset=64)
    ev.splits()
    clone = pickle.loads(pickle.dumps(ev))
    assert clone._splits is None and clone.space is not None
    assert clone.evaluate(arch(space), EvalContext(seed=1)).metrics == ev.evaluate(
        arch(space), EvalContext(seed=1)).metrics


def test_cheap_metrics_and_extra_metrics(fashion_mnist_dir: Path, space: TinySpace) -> None:
    ev = make(fashion_mnist_dir, space, train_subset=128, val_subset=64, metrics=("flops", "macs"))
    cheap = ev.cheap_metrics(arch(space))
    assert cheap["params"] > 0 and cheap["flops"] == 2 * cheap["macs"] > 0
    r = ev.evaluate(arch(space), EvalContext(seed=0))
    assert r.metrics["flops"] == cheap["flops"] and r.metrics["params"] == cheap["params"]


def test_test_split_and_channel_adaptation(fashion_mnist_dir: Path, space: TinySpace) -> None:
    ev = make(fashion_mnist_dir, space, train_subset=128, val_subset=64, test=True,
              test_subset=100, image_size=32, channels=3)
    assert ev.input_shape() == (3, 32, 32)
    model = ev.build(arch(space))
    assert next(iter(model.children())).in_channels == 3
    r = ev.evaluate(arch(space), EvalContext(seed=0))
    assert 0 <= r.metrics["test_accuracy"] <= 100


def test_bad_options(fashion_mnist_dir: Path, space: TinySpace) -> None:
    with pytest.raises(ConfigError, match=r"'epochz'.*epochs"):
        nasforge.create_evaluator("train", epochz=3)
    with pytest.raises(ConfigError, match="unknown dataset 'imagenet'"):
        nasforge.create_evaluator("train", dataset="imagenet")
    with pytest.raises(ConfigError, match="unknown metric 'speed'"):
        nasforge.create_evaluator("train", metrics=("speed",))
    unbound = nasforge.create_evaluator("train")
    assert isinstance(unbound, TrainingEvaluator)
    with pytest.raises(ConfigError, match="not bound"):
        unbound.build(arch(space))


def test_user_tensors_as_dataset(space: TinySpace) -> None:
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (96,), generator=g)
    x = (torch.rand(96, 2, 6, 6, generator=g) * 50 + y.view(-1, 1, 1, 1) * 60).to(torch.uint8)
    ev = nasforge.create_evaluator("train", dataset=(x, y), val_size=32, epochs=1, batch_size=16)
    ev.bind(space)
    r = ev.evaluate(arch(space), EvalContext(seed=0))
    assert r.status is TrialStatus.OK and r.info["data"] == {"train": 64, "val": 32}


@pytest.mark.slow
def test_nb201_on_fashion_mnist(fashion_mnist_dir: Path) -> None:
    space = nasforge.create_space("nb201")
    ev = make(fashion_mnist_dir, space, epochs=2, train_subset=1024, val_subset=256,
              build_kwargs={"C": 8, "N": 1})
    a = space.from_string(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    )
    r = ev.evaluate(a, EvalContext(seed=0))
    assert r.status is TrialStatus.OK and r.metrics["accuracy"] > 40


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_in_an_experiment(fashion_mnist_dir: Path, workers: int) -> None:
    space = nasforge.create_space("nb201")
    ev = make(fashion_mnist_dir, space, epochs=1, train_subset=128, val_subset=64,
              build_kwargs={"C": 4, "N": 1}, num_threads=1)
    exp = nasforge.Experiment(
        space, nasforge.create_strategy("random", space, seed=0), ev,
        budget=nasforge.Budget(max_trials=3), constraints=["params <= 1e6"], workers=workers,
        seed=0, ordered=True,
    ).run()
    trials = exp.trials
    assert len(trials) == 3 and all(t.status is TrialStatus.OK for t in trials), [
        t.error for t in trials]
    assert all(0 <= t.metrics["accuracy"] <= 100 and t.info["curve"] for t in trials)


# ---------------------------------------------------------------- metrics objectives/constraints name
def test_declares_and_computes_requested_metrics(fashion_mnist_dir: Path, space: TinySpace) -> None:
    ev = make(fashion_mnist_dir, space, train_subset=128, val_subset=64)
    assert ev.produced_metrics() >= {"accuracy", "params", "val_loss", "epochs"}
    assert "flops" not in ev.produced_metrics() and "flops" not in ev.cheap_metrics(arch(space))
    # What an experiment does with the names its objectives and constraints use: metrics the
    # library can compute are added; unknown names are left for the experiment to refuse.
    ev.request_metrics(["flops", "accuracy", "acuracy", "flops"])
    assert ev.metrics == ("flops",)
    assert "flops" in ev.produced_metrics() and "acuracy" not in ev.produced_metrics()
    cheap = ev.cheap_metrics(arch(space))
    assert cheap["flops"] > 0  # known before training, so a constraint on it costs nothing
    r = ev.evaluate(arch(space), EvalContext(seed=0))
    assert r.metrics["flops"] == cheap["flops"]
    assert set(r.metrics) == set(ev.produced_metrics())


def test_weight_free_constraint_rejects_before_training(fashion_mnist_dir: Path,
                                                         space: TinySpace) -> None:
    from nasforge.trial import Constraint

    ev = make(fashion_mnist_dir, space, train_subset=128, val_subset=64,
              metric_options={"latency_repeats": 2, "latency_warmup": 1})
    ev.request_metrics(["latency_ms"])
    impossible = (Constraint("latency_ms", "<=", 0.0),)
    r = ev.evaluate(arch(space), EvalContext(seed=0, constraints=impossible))
    assert r.status is TrialStatus.INFEASIBLE and r.error == "violates latency_ms <= 0"
    assert r.metrics["latency_ms"] > 0 and r.info == {"trained": False}
    assert "accuracy" not in r.metrics and "curve" not in r.info  # it was never trained
    easy = (Constraint("latency_ms", "<=", 1e9),)
    ok = ev.evaluate(arch(space), EvalContext(seed=0, constraints=easy))
    assert ok.status is TrialStatus.OK and ok.info["curve"] and ok.metrics["latency_ms"] > 0


def test_missing_data_is_found_before_any_trial(tmp_path: Path, space: TinySpace,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from nasforge.errors import DataNotFoundError

    # CIFAR-10 has no system-wide install to fall back on; the cache is empty too.
    monkeypatch.delenv("NASFORGE_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    empty = tmp_path / "no-data-here"
    empty.mkdir()
    ev = nasforge.create_evaluator("train", dataset="cifar10", data_dir=str(empty))
    with pytest.raises(DataNotFoundError, match=r"(?s)cifar10 \(train split\) not found.*no-data-here"):
        ev.check_ready()
    # In an experiment this fails at construction, before any storage exists.
    db = tmp_path / "e.db"
    s = nasforge.create_space("nb201")
    with pytest.raises(DataNotFoundError, match="not found"):
        nasforge.Experiment(s, nasforge.create_strategy("random", s, seed=0), ev,
                            budget=nasforge.Budget(max_trials=2), storage=str(db))
    assert not db.exists()


def test_ready_when_data_is_there(fashion_mnist_dir: Path, space: TinySpace) -> None:
    make(fashion_mnist_dir, space).check_ready()  # finds the files; loads nothing
    x, y = torch.zeros(8, 1, 4, 4, dtype=torch.uint8), torch.zeros(8, dtype=torch.long)
    nasforge.create_evaluator("train", dataset=(x, y), val_size=2).check_ready()  # user data
