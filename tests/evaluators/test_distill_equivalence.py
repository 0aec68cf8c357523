"""The "distill" evaluator against plain training: alpha=0 is exactly plain training, and the
soft-loss settings (temperature) change what is learned."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn
from width_space import WidthSpace

import nasforge
from nasforge import EvalContext
from nasforge.train.distill import make_distillation_loss
from nasforge.trial import Result, TrialStatus


def data() -> tuple[torch.Tensor, torch.Tensor]:
    """Three classes of 1x8x8 float images told apart by their brightness."""
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (192,), generator=g)
    x = torch.randn(192, 1, 8, 8, generator=g) * 0.5 + (y.float() - 1).view(-1, 1, 1, 1)
    return x, y


def teacher() -> nn.Module:
    torch.manual_seed(123)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 3))


OPTIONS: dict[str, Any] = dict(dataset=data(), val_size=64, epochs=2, batch_size=32, lr=0.05)


def run(name: str, **options: Any) -> Result:
    space = WidthSpace()
    ev = nasforge.create_evaluator(name, **OPTIONS, **options).bind(space)
    result = ev.evaluate(space.make({"width": 4}), EvalContext(seed=7))
    assert result.status is TrialStatus.OK, result.error
    return result


def curve(result: Result) -> list[tuple[float, float, float, float]]:
    return [(e["train_loss"], e["train_accuracy"], e["val_loss"], e["val_accuracy"])
            for e in result.info["curve"]]


def test_alpha_zero_is_plain_training() -> None:
    plain = run("train")
    distilled = run("distill", teacher=teacher(), alpha=0.0, temperature=4.0)
    assert curve(distilled) == curve(plain)  # bit for bit: same seed, same loss
    for key in ("accuracy", "val_loss", "train_loss", "train_accuracy"):
        assert distilled.metrics[key] == plain.metrics[key]
    assert "teacher_accuracy" in distilled.info and "teacher_accuracy" not in plain.info


def test_soft_loss_and_temperature_change_the_result() -> None:
    plain = run("train")
    warm = run("distill", teacher=teacher(), alpha=0.9, temperature=2.0)
    hot = run("distill", teacher=teacher(), alpha=0.9, temperature=8.0)
    assert curve(warm) != curve(plain)
    assert curve(hot) != curve(warm)
    assert hot.info["curve"][0]["train_loss"] != pytest.approx(warm.info["curve"][0]["train_loss"])
    # the same settings twice give the same result: the difference is the temperature's
    assert curve(run("distill", teacher=teacher(), alpha=0.9, temperature=8.0)) == curve(hot)


def test_alpha_zero_does_not_run_the_teacher() -> None:
    calls = []
    t = teacher()
    t.register_forward_hook(lambda *_: calls.append(1))
    x, y = data()
    student = torch.randn(4, 3)
    assert float(make_distillation_loss(t, alpha=0.0)(student, x[:4], y[:4])) == pytest.approx(
        float(nn.functional.cross_entropy(student, y[:4])))
    assert calls == []  # no soft loss: the teacher's forward pass would be wasted
    make_distillation_loss(t, alpha=0.5)(student, x[:4], y[:4])
    assert calls == [1]
