"""The training loop: learning, determinism, schedules, guards (NaN, deadline), callbacks."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from torch import nn

from nasforge.data import BatchLoader, from_tensors
from nasforge.errors import ConfigError
from nasforge.train import (
    EarlyStopping,
    NonFiniteLossError,
    TimeLimitExceeded,
    TrainConfig,
    Trainer,
    evaluate_model,
    lr_at,
)


def blobs(n: int = 256, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two-class 1x4x4 images whose mean brightness gives the class (learnable in a few steps)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, 1, 4, 4, generator=g) * 0.5 + (y.float() * 2 - 1).view(-1, 1, 1, 1)
    return x, y


def loaders(seed: int = 0) -> tuple[BatchLoader, BatchLoader]:
    x, y = blobs(256, 0)
    xv, yv = blobs(128, 1)
    return (BatchLoader(from_tensors(x, y, num_classes=2), 32, shuffle=True, seed=seed),
            BatchLoader(from_tensors(xv, yv, num_classes=2), 64))


def model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 2))


def test_learns_and_reports_curve() -> None:
    train, val = loaders()
    res = Trainer(epochs=3, lr=0.1).fit(model(), train, val, device="cpu", seed=0)
    assert res.epochs == 3 and res.stopped == "completed"
    assert res.final is not None and res.final.val_accuracy is not None
    assert res.final.val_accuracy > 90
    assert [s.epoch for s in res.curve] == [1, 2, 3]
    assert res.curve[-1].train_loss < res.curve[0].train_loss
    assert res.images_per_sec > 0 and res.device == "cpu"


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
def test_same_seed_same_result(optimizer: str) -> None:
    def run(seed: int) -> list[float]:
        train, val = loaders(seed)
        res = Trainer(epochs=2, lr=0.01 if optimizer != "sgd" else 0.1, optimizer=optimizer,
                      label_smoothing=0.1).fit(model(seed), train, val, device="cpu", seed=seed)
        return [s.train_loss for s in res.curve] + [s.val_loss or 0.0 for s in res.curve]

    assert run(0) == run(0)
    assert run(0) != run(1)


def test_cosine_schedule() -> None:
    cfg = TrainConfig(lr=0.2, min_lr=0.02)
    assert lr_at(cfg, 0, 100) == pytest.approx(0.2)
    assert lr_at(cfg, 50, 100) == pytest.approx(0.11)
    assert lr_at(cfg, 100, 100) == pytest.approx(0.02)
    assert lr_at(TrainConfig(lr=0.2, scheduler="constant"), 70, 100) == 0.2
    train, val = loaders()
    res = Trainer(epochs=2, lr=0.2).fit(model(), train, val, device="cpu")
    assert res.curve[0].lr > res.curve[1].lr > 0


def test_config_errors_name_the_value() -> None:
    with pytest.raises(ConfigError, match=r"optimizer 'rmsprop'.*sgd"):
        TrainConfig(optimizer="rmsprop")
    with pytest.raises(ConfigError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(ConfigError, match="lr"):
        TrainConfig(lr=-1)
    with pytest.raises(ConfigError, match="grad_clip"):
        TrainConfig(grad_clip=0)
    with pytest.raises(TypeError):
        Trainer(epochz=3)


def test_nan_loss_raises_with_reason() -> None:
    train, val = loaders()
    with pytest.raises(NonFiniteLossError, match=r"loss became (nan|inf)") as err:
        Trainer(epochs=2, lr=1e30, grad_clip=None, momentum=0.0).fit(
            model(), train, val, device="cpu")
    assert err.value.curve == [] or all(math.isfinite(s.train_loss) for s in err.value.curve)


def test_deadline_raises() -> None:
    train, val = loaders()
    with pytest.raises(TimeLimitExceeded, match="time limit reached during epoch 1"):
        Trainer(epochs=2).fit(model(), train, val, device="cpu", deadline=time.time() - 1)

    calls = []

    def slow(stats: object) -> bool:
        calls.append(stats)
        time.sleep(0.3)
        return False

    with pytest.raises(TimeLimitExceeded) as err:
        Trainer(epochs=50).fit(model(), train, val, device="cpu", deadline=time.time() + 0.2,
                               on_epoch=slow)
    assert len(err.value.curve) == len(calls) >= 1


def test_callback_stops_and_restore_best() -> None:
    train, val = loaders()
    stopper = EarlyStopping(patience=1, min_delta=100.0)  # nothing beats +100 points: stop at 2
    res = Trainer(epochs=10).fit(model(), train, val, device="cpu",
                                 on_epoch=lambda s: stopper.step(s.epoch, s.val_accuracy or 0))
    assert res.epochs == 2 and res.stopped == "callback"

    net = model()
    res = Trainer(epochs=3, lr=0.5).fit(net, train, val, device="cpu", restore_best=True)
    assert res.best is not None and res.restored_epoch == res.best.epoch
    acc, _ = evaluate_model(net, val)
    assert acc == pytest.approx(res.best.val_accuracy)


def test_early_stopping_rule() -> None:
    es = EarlyStopping(patience=2, min_delta=0.5)
    assert [es.step(e, v) for e, v in enumerate([10, 11, 11.2, 11.4], 1)] == [
        False, False, False, True]
    assert es.best == 11 and es.best_epoch == 2
    low = EarlyStopping(patience=1, mode="min")
    assert low.step(1, 1.0) is False and low.step(2, 2.0) is True
    low.reset()
    assert low.best is None
    with pytest.raises(ConfigError, match="patience"):
        EarlyStopping(patience=0)
    with pytest.raises(ConfigError, match="mode"):
        EarlyStopping(mode="up")


def test_tuple_outputs_and_custom_loss() -> None:
    class Aux(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = model()

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            out = self.body(x)
            return out, out.detach() * 0

    seen = []

    def loss_fn(logits: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        seen.append(x.shape[0])
        return nn.functional.cross_entropy(logits, y)

    train, val = loaders()
    res = Trainer(epochs=1).fit(Aux(), train, val, device="cpu", loss_fn=loss_fn)
    assert sum(seen) == 256 and res.final is not None


def test_num_threads_applies_during_fit_and_is_restored() -> None:
    train, _ = loaders()
    assert torch.get_num_threads() == 1
    during: list[int] = []
    Trainer(epochs=2, num_threads=2).fit(model(), train, device="cpu",
                                         on_epoch=lambda s: during.append(torch.get_num_threads()))
    assert during == [2, 2]
    assert torch.get_num_threads() == 1  # the process-wide setting is the caller's again
    with pytest.raises(NonFiniteLossError):
        Trainer(epochs=1, num_threads=2, lr=1e30, grad_clip=None, momentum=0.0).fit(
            model(), train, device="cpu")
    assert torch.get_num_threads() == 1  # also when fit raises


class Unsized:
    """Re-iterable batches without ``__len__`` (like a loader over an IterableDataset)."""

    def __init__(self, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        self.batches = batches

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return iter(self.batches)


def test_data_without_length_needs_steps_for_the_cosine_schedule() -> None:
    train, _ = loaders()
    data = Unsized(list(train))
    with pytest.raises(ConfigError, match=r"\(Unsized\) has no len\(\).*steps_per_epoch"):
        Trainer(epochs=2).fit(model(), data, device="cpu")
    res = Trainer(epochs=2, lr=0.2).fit(model(), data, device="cpu", steps_per_epoch=len(train))
    ref = Trainer(epochs=2, lr=0.2).fit(model(), train, device="cpu")
    assert [s.lr for s in res.curve] == [s.lr for s in ref.curve]  # same schedule as with len()
    assert res.curve[1].lr < res.curve[0].lr < 0.2  # decaying, not constant
    const = Trainer(epochs=2, lr=0.2, scheduler="constant").fit(model(), data, device="cpu")
    assert [s.lr for s in const.curve] == [0.2, 0.2]
    with pytest.raises(ConfigError, match=r"steps_per_epoch must be a positive integer.*got 0"):
        Trainer(epochs=1).fit(model(), train, device="cpu", steps_per_epoch=0)


def one_batch() -> list[tuple[torch.Tensor, torch.Tensor]]:
    x, y = blobs(32, 3)
    return [(x, y)]


def params_after(**cfg: Any) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(weights before, weights after one plain SGD step, reported training loss)."""
    net = model(0)
    before = nn.utils.parameters_to_vector(net.parameters()).detach().clone()
    options: dict[str, Any] = dict(epochs=1, lr=0.5, momentum=0.0, weight_decay=0.0,
                                      grad_clip=None, scheduler="constant")
    options.update(cfg)
    res = Trainer(TrainConfig(**options)).fit(net, one_batch(), device="cpu", seed=0)
    assert res.final is not None
    return before, nn.utils.parameters_to_vector(net.parameters()).detach(), res.final.train_loss


def test_grad_clip_bounds_the_step() -> None:
    before, free, _ = params_after()
    _, clipped, _ = params_after(grad_clip=0.01)
    assert float((free - before).norm()) > 0.5 * 0.01 * 10  # the unclipped step is much larger
    # with SGD and no momentum the step is lr * the clipped gradient: norm exactly lr * clip
    assert float((clipped - before).norm()) == pytest.approx(0.5 * 0.01, rel=1e-4)


def test_weight_decay_adds_lr_times_decay_times_weights() -> None:
    before, plain, _ = params_after()
    _, decayed, _ = params_after(weight_decay=0.1)
    # SGD: w <- w - lr * (g + wd * w); same g in both runs, so the difference is lr * wd * w
    assert torch.allclose(plain - decayed, 0.5 * 0.1 * before, atol=1e-6)


def test_label_smoothing_changes_the_loss_and_the_step() -> None:
    x, y = one_batch()[0]
    with torch.no_grad():
        logits = model(0)(x)
    _, plain, loss = params_after()
    _, smooth, smooth_loss = params_after(label_smoothing=0.2)
    assert loss == pytest.approx(float(nn.functional.cross_entropy(logits, y)), rel=1e-6)
    assert smooth_loss == pytest.approx(
        float(nn.functional.cross_entropy(logits, y, label_smoothing=0.2)), rel=1e-6)
    assert smooth_loss != pytest.approx(loss, rel=1e-3)
    assert not torch.allclose(plain, smooth)
