"""Distillation ("distill"), user training code on a built model ("model_function"), metrics."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from width_space import WidthSpace

import nasforge
from nasforge import EvalContext
from nasforge.data import BatchLoader, make_splits
from nasforge.errors import ConfigError
from nasforge.train import Trainer
from nasforge.train.distill import distillation_loss, make_distillation_loss
from nasforge.trial import TrialStatus


def test_distillation_loss_math() -> None:
    g = torch.Generator().manual_seed(0)
    s = torch.randn(8, 5, generator=g, requires_grad=True)
    t = torch.randn(8, 5, generator=g)
    y = torch.randint(0, 5, (8,), generator=g)
    ce = F.cross_entropy(s, y)
    assert torch.allclose(distillation_loss(s, t, y, alpha=0.0), ce)
    assert torch.allclose(distillation_loss(s, s.detach(), y, 3.0, 0.5), 0.5 * ce, atol=1e-6)
    T = 2.0
    kl = F.kl_div(F.log_softmax(s / T, 1), F.softmax(t / T, 1), reduction="batchmean")
    assert torch.allclose(distillation_loss(s, t, y, T, 1.0), T * T * kl, atol=1e-6)
    distillation_loss(s, t, y).backward()
    assert s.grad is not None and torch.isfinite(s.grad).all()
    with pytest.raises(ConfigError, match="temperature"):
        make_distillation_loss(nn.Identity(), temperature=0)
    with pytest.raises(ConfigError, match="alpha"):
        make_distillation_loss(nn.Identity(), alpha=1.5)


def trained_teacher(fashion_mnist_dir: Path) -> nn.Module:
    splits = make_splits("fashion_mnist", data_dir=fashion_mnist_dir, train_subset=1024,
                         val_subset=256)
    torch.manual_seed(0)
    teacher = WidthSpace().build(WidthSpace().make({"width": 8}), 10, 1)
    Trainer(epochs=2, lr=0.1).fit(teacher, BatchLoader(splits.train, 64, shuffle=True), None,
                                  device="cpu", seed=0)
    return teacher


def test_distill_evaluator(fashion_mnist_dir: Path) -> None:
    teacher = trained_teacher(fashion_mnist_dir)
    space = WidthSpace()
    calls = []

    def factory() -> nn.Module:
        calls.append(1)
        return teacher

    ev = nasforge.create_evaluator(
        "distill", teacher=factory, temperature=3.0, alpha=0.7, dataset="fashion_mnist",
        data_dir=str(fashion_mnist_dir), epochs=1, train_subset=512, val_subset=256,
        batch_size=64).bind(space)
    a = space.make({"width": 4})
    r1 = ev.evaluate(a, EvalContext(seed=0))
    r2 = ev.evaluate(a, EvalContext(seed=0))
    assert r1.status is TrialStatus.OK and r1.metrics == r2.metrics
    assert len(calls) == 1  # built once per process
    assert 10 < r1.info["teacher_accuracy"] <= 100
    plain = nasforge.create_evaluator(
        "train", dataset="fashion_mnist", data_dir=str(fashion_mnist_dir), epochs=1,
        train_subset=512, val_subset=256, batch_size=64).bind(space)
    assert plain.evaluate(a, EvalContext(seed=0)).metrics["train_loss"] != r1.metrics["train_loss"]
    clone = pickle.loads(pickle.dumps(nasforge.create_evaluator(
        "distill", teacher=teacher, dataset="fashion_mnist").bind(space)))
    assert clone._teacher == {} and isinstance(clone.teacher, nn.Module)
    with pytest.raises(ConfigError, match="teacher must be"):
        nasforge.create_evaluator("distill", teacher=3)


def test_model_function_evaluator() -> None:
    space = WidthSpace()
    seen: list[int] = []

    def train_and_eval(model: nn.Module, ctx: EvalContext) -> dict[str, float]:
        seen.append(ctx.seed)
        assert isinstance(model, nn.Module)
        return {"accuracy": float(sum(p.sum().item() for p in model.parameters())),
                "width": float(next(iter(model.parameters())).shape[0])}

    ev = nasforge.create_evaluator("model_function", fn=train_and_eval,
                                   build_kwargs={"num_classes": 3, "in_channels": 1}).bind(space)
    a = space.make({"width": 8})
    r = ev.evaluate(a, EvalContext(seed=5))
    assert r.metrics["width"] == 8 and seen == [5]
    assert r.metrics == ev.evaluate(a, EvalContext(seed=5)).metrics  # seeded initialization
    assert r.metrics != ev.evaluate(a, EvalContext(seed=6)).metrics
    assert ev.cheap_metrics(a)["params"] == sum(
        p.numel() for p in space.build(a, 3, 1).parameters())
    nan = nasforge.create_evaluator("model_function", fn=lambda m, c: float("nan")).bind(space)
    assert nan.evaluate(a, EvalContext()).status is TrialStatus.FAILED


def test_training_evaluator_hardware_metrics(fashion_mnist_dir: Path) -> None:
    space = WidthSpace()
    ev = nasforge.create_evaluator(
        "train", dataset="fashion_mnist", data_dir=str(fashion_mnist_dir), epochs=1,
        train_subset=256, val_subset=128, batch_size=64,
        metrics=("latency_ms", "peak_memory_mb", "fgsm_accuracy", "noise_accuracy"),
        metric_options={"latency_repeats": 3, "epsilon": 0.05, "robustness_batches": 1},
    ).bind(space)
    r = ev.evaluate(space.make({"width": 4}), EvalContext(seed=0))
    for m in ("latency_ms", "peak_memory_mb", "fgsm_accuracy", "noise_accuracy"):
        assert r.metrics[m] >= 0
    assert r.info["metric_options"]["epsilon"] == 0.05
    # Measured in the training conditions: fp32 and NCHW on the CPU by default...
    assert r.info["metric_options"]["precision"] == "float32"
    assert r.info["metric_options"]["channels_last"] is False
    # ...channels_last when the trainer used it, unless metric_options say otherwise.
    nhwc = nasforge.create_evaluator(
        "train", dataset="fashion_mnist", data_dir=str(fashion_mnist_dir), epochs=1,
        train_subset=128, val_subset=64, batch_size=64, channels_last=True,
        metrics=("latency_ms",), metric_options={"latency_repeats": 2},
    ).bind(space)
    assert nhwc.evaluate(space.make({"width": 4}),
                         EvalContext(seed=0)).info["metric_options"]["channels_last"] is True
    with pytest.raises(ConfigError, match="unknown metric option"):
        nasforge.create_evaluator("train", metric_options={"eps": 0.1})
