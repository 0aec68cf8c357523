"""Partial and resumed training (multi-fidelity rungs): Trainer.fit(until_epoch, keep_state,
resume) and the training evaluator continuing a promoted trial from its rung's checkpoint."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import nasforge
from nasforge import EvalContext
from nasforge.data import BatchLoader, from_tensors
from nasforge.errors import ConfigError
from nasforge.evaluators.training import TrainingEvaluator
from nasforge.experiment import Budget, EventKind, Experiment
from nasforge.experiment.schedulers import SuccessiveHalving
from nasforge.space import Architecture, Choice, SearchSpace
from nasforge.train import FitResult, Trainer, TrainState
from nasforge.trial import TrialStatus


# ---------------------------------------------------------------- Trainer
def blobs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, 1, 4, 4, generator=g) * 0.8 + (y.float() * 2 - 1).view(-1, 1, 1, 1) * 0.3
    return x, y


def loaders(seed: int = 0) -> tuple[BatchLoader, BatchLoader]:
    x, y = blobs(128, 0)
    xv, yv = blobs(64, 1)
    return (BatchLoader(from_tensors(x, y, num_classes=2), 16, shuffle=True, seed=seed),
            BatchLoader(from_tensors(xv, yv, num_classes=2), 32))


def model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    # Dropout: the resumed run must continue torch's random stream, not restart it.
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.BatchNorm1d(12), nn.ReLU(),
                         nn.Dropout(0.3), nn.Linear(12, 2))


def curve_without_time(fit: FitResult) -> list[dict[str, Any]]:
    return [{k: v for k, v in s.to_dict().items() if k != "seconds"} for s in fit.curve]


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def roundtrip(state: TrainState) -> TrainState:
    """Through torch.save/torch.load, as a checkpoint file does."""
    buf = io.BytesIO()
    torch.save(state.to_dict(), buf)
    buf.seek(0)
    return TrainState.from_dict(torch.load(buf, weights_only=False))


def split_run(trainer: Trainer, stops: Sequence[int], **fit_kwargs: Any) -> tuple[nn.Module, FitResult]:
    """Train to each epoch of ``stops`` in turn, each call a fresh model, loader and state file
    (the first call starts from ``model(0)``, as the uninterrupted run does)."""
    state: TrainState | None = None
    loader_state: torch.Tensor | None = None
    fit: FitResult | None = None
    net = model(0)
    for i, stop in enumerate(stops):
        if i:
            net = model(100 + i)  # whatever the init: the weights come from the state
        train, val = loaders(0)
        if loader_state is not None:
            train.generator.set_state(loader_state)
        fit = trainer.fit(net, train, val, device="cpu", seed=5, resume=state, until_epoch=stop,
                          keep_state=True, **fit_kwargs)
        assert fit.state is not None and fit.state.epoch == stop
        state, loader_state = roundtrip(fit.state), train.generator.get_state()
    assert fit is not None
    return net, fit


@pytest.mark.parametrize("options", [
    {"optimizer": "sgd", "lr": 0.1},
    {"optimizer": "adam", "lr": 0.01, "label_smoothing": 0.1},
    {"optimizer": "sgd", "lr": 0.1, "scheduler": "constant"},
])
def test_two_epochs_in_two_calls_equal_one_call(options: dict[str, Any]) -> None:
    trainer = Trainer(epochs=2, **options)
    train, val = loaders(0)
    whole = model(0)
    one = trainer.fit(whole, train, val, device="cpu", seed=5)
    net, two = split_run(trainer, [1, 2])
    assert same_weights(net, whole)
    assert curve_without_time(two) == curve_without_time(one)
    assert two.resumed_epoch == 1 and two.epochs == 2 and one.resumed_epoch == 0


def test_many_segments_and_the_best_epoch_survive_resumes() -> None:
    trainer = Trainer(epochs=5, lr=0.2)
    train, val = loaders(0)
    whole = model(0)
    one = trainer.fit(whole, train, val, device="cpu", seed=5, restore_best=True)
    net, parts = split_run(trainer, [1, 3, 4, 5], restore_best=True)
    assert curve_without_time(parts) == curve_without_time(one)
    assert parts.restored_epoch == one.restored_epoch is not None
    assert same_weights(net, whole)  # the best epoch's weights, restored in both


def test_the_state_holds_the_last_epoch_not_the_restored_best() -> None:
    trainer = Trainer(epochs=3, lr=0.2)
    train, val = loaders(0)
    net = model(0)
    fit = trainer.fit(net, train, val, device="cpu", seed=5, until_epoch=2, keep_state=True,
                      restore_best=True)
    assert fit.state is not None and fit.state.epoch == 2 and fit.state.step == 2 * len(train)
    assert fit.state.best_epoch == fit.restored_epoch
    assert [s.epoch for s in fit.state.curve] == [1, 2]
    assert fit.state.train_seconds > 0
    without = trainer.fit(model(0), *loaders(0), device="cpu", seed=5, until_epoch=2)
    assert without.state is None  # only with keep_state
    # The schedule keeps the length of config.epochs: epoch 2 of 3 ends above the final lr.
    full = trainer.fit(model(0), *loaders(0), device="cpu", seed=5)
    assert curve_without_time(without) == curve_without_time(full)[:2]


def test_resuming_a_finished_state_trains_nothing() -> None:
    trainer = Trainer(epochs=2, lr=0.1)
    net, fit = split_run(trainer, [2])
    assert fit.state is not None
    again = model(7)
    train, val = loaders(0)
    more = trainer.fit(again, train, val, device="cpu", seed=5, resume=fit.state, keep_state=True)
    assert more.resumed_epoch == 2 and more.epochs == 2 and more.train_seconds == 0
    assert same_weights(again, net)
    assert more.state is not None and more.state.epoch == 2


@pytest.mark.parametrize("until", [0, 3, True, 1.5, "1"])
def test_until_epoch_is_checked(until: Any) -> None:
    with pytest.raises(ConfigError, match=r"until_epoch must be a whole number of epochs from 1 to 2"):
        Trainer(epochs=2).fit(model(0), *loaders(0), device="cpu", until_epoch=until)


def test_a_state_beyond_until_epoch_is_refused() -> None:
    trainer = Trainer(epochs=3, lr=0.1)
    _, fit = split_run(trainer, [2])
    with pytest.raises(ConfigError, match="the state to resume has 2 epochs, more than the 1"):
        trainer.fit(model(0), *loaders(0), device="cpu", resume=fit.state, until_epoch=1)


# ---------------------------------------------------------------- the training evaluator
class TinySpace(SearchSpace):
    """Width x kernel of a one-conv network."""

    name = "tiny-resume"

    def _declare(self) -> Sequence[Choice]:
        return [Choice("width", (4, 6)), Choice("kernel", (1, 3))]

    def build(self, arch: Architecture, num_classes: int = 10, in_channels: int = 3,
              **kwargs: Any) -> nn.Module:
        w, k = int(arch["width"]), int(arch["kernel"])
        return nn.Sequential(nn.Conv2d(in_channels, w, k, padding=k // 2), nn.BatchNorm2d(w),
                             nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Dropout(0.2),
                             nn.Linear(4 * w, num_classes))


def tiny_data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (96,), generator=g)
    x = (torch.rand(96, 2, 6, 6, generator=g) * 80 + y.view(-1, 1, 1, 1) * 50).to(torch.uint8)
    return x, y


@pytest.fixture
def space() -> TinySpace:
    return TinySpace()


def evaluator(space: SearchSpace, **kw: Any) -> TrainingEvaluator:
    opts: dict[str, Any] = dict(dataset=tiny_data(), val_size=32, epochs=3, batch_size=16,
                                lr=0.05, augment="default")
    opts.update(kw)
    ev = nasforge.create_evaluator("train", **opts)
    assert isinstance(ev, TrainingEvaluator)
    ev.bind(space)
    return ev


def ctx(**kw: Any) -> EvalContext:
    return EvalContext(seed=7, device="cpu", max_fidelity=3, **kw)


def without_time(curve: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in c.items() if k != "seconds"} for c in curve]


def test_a_rung_checkpoint_continues_exactly(tmp_path: Path, space: TinySpace) -> None:
    ev = evaluator(space)
    a = space.make({"width": 6, "kernel": 3})
    full = ev.evaluate(a, ctx(fidelity=3))
    ckpt = str(tmp_path / "rungs" / "trial-0.pt")
    rung = ev.evaluate(a, ctx(fidelity=1, checkpoint_to=ckpt))
    assert rung.status is TrialStatus.OK and os.path.exists(ckpt)
    assert rung.info["schedule_epochs"] == 3 and rung.info["epochs_trained"] == 1
    assert not [f for f in os.listdir(tmp_path / "rungs") if ".tmp" in f]  # written atomically
    cont = ev.evaluate(a, ctx(fidelity=3, resume_from=ckpt))
    assert cont.status is TrialStatus.OK
    assert cont.info["resumed_from_epoch"] == 1 and cont.info["epochs_trained"] == 2
    assert "resume" not in cont.info
    assert cont.metrics["accuracy"] == full.metrics["accuracy"]
    assert cont.metrics["val_loss"] == full.metrics["val_loss"]
    assert cont.metrics["epochs"] == 3
    assert without_time(cont.info["curve"]) == without_time(full.info["curve"])
    # The first rung is the beginning of the full run (same schedule, same data order).
    assert without_time(rung.info["curve"]) == without_time(full.info["curve"])[:1]


def test_a_missing_or_bad_checkpoint_trains_from_scratch(tmp_path: Path, space: TinySpace) -> None:
    ev = evaluator(space)
    a = space.make({"width": 4, "kernel": 3})
    full = ev.evaluate(a, ctx(fidelity=3))
    missing = str(tmp_path / "nope.pt")
    r = ev.evaluate(a, ctx(fidelity=3, resume_from=missing))
    assert r.status is TrialStatus.OK
    assert r.info["resume"] == f"checkpoint {missing!r} not found: trained from scratch"
    assert r.info["epochs_trained"] == 3 and "resumed_from_epoch" not in r.info
    assert r.metrics["accuracy"] == full.metrics["accuracy"]
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    r = ev.evaluate(a, ctx(fidelity=3, resume_from=str(broken)))
    assert r.status is TrialStatus.OK and "unreadable" in r.info["resume"]
    other = str(tmp_path / "other.pt")
    ev.evaluate(space.make({"width": 6, "kernel": 1}), ctx(fidelity=1, checkpoint_to=other))
    r = ev.evaluate(a, ctx(fidelity=3, resume_from=other))
    assert "another architecture or schedule" in r.info["resume"]
    assert r.metrics["accuracy"] == full.metrics["accuracy"]


def tiny_experiment(space: SearchSpace, ev: TrainingEvaluator, trials: int = 3,
                    **kw: Any) -> Experiment:
    strategy = nasforge.create_strategy("random", space, seed=1)
    # Two configurations for 1 epoch, the better one continued to 3.
    sh = SuccessiveHalving(rungs=[1, 3], n_configs=2, eta=2)
    return Experiment(space, strategy, ev, budget=Budget(max_trials=trials), scheduler=sh,
                      seed=0, device="cpu", **kw)


def test_a_promoted_trial_continues_its_parent(tmp_path: Path, space: TinySpace) -> None:
    ev = evaluator(space)
    exp = tiny_experiment(space, ev, checkpoint_dir=str(tmp_path / "ck")).run()
    t = exp.trials
    assert [x.status for x in t] == [TrialStatus.OK] * 3, [x.error for x in t]
    assert [x.fidelity for x in t] == [1, 1, 3]
    top = t[2]
    parent = t[top.info["parent"]]
    assert parent.metrics["accuracy"] == max(x.metrics["accuracy"] for x in t[:2])
    assert top.info["resumed_from_epoch"] == 1 and top.info["epochs_trained"] == 2
    assert top.info["fidelity_spent"] == 2 and parent.info["fidelity_spent"] == 1
    assert exp.fidelity_spent == 1 + 1 + 2
    assert sorted(os.listdir(tmp_path / "ck")) == ["trial-0.pt", "trial-1.pt"]  # not the top rung
    # Exactly what training the configuration for 3 epochs in one go gives.
    whole = ev.evaluate(top.arch, EvalContext(seed=top.seed, device="cpu", fidelity=3,
                                              max_fidelity=3))
    assert top.metrics["accuracy"] == whole.metrics["accuracy"]
    assert without_time(top.info["curve"]) == without_time(whole.info["curve"])


def test_a_promotion_without_its_checkpoint_trains_from_scratch(tmp_path: Path,
                                                                space: TinySpace) -> None:
    ck = tmp_path / "ck"

    def delete_checkpoints(event: Any) -> None:
        if event.kind is EventKind.TRIAL_FINISHED and ck.exists():
            for f in ck.iterdir():
                f.unlink()

    ev = evaluator(space)
    exp = tiny_experiment(space, ev, checkpoint_dir=str(ck), callbacks=[delete_checkpoints]).run()
    top = exp.trials[2]
    assert top.status is TrialStatus.OK
    assert "not found: trained from scratch" in top.info["resume"]
    assert top.info["epochs_trained"] == 3 and "resumed_from_epoch" not in top.info
    assert top.info["fidelity_spent"] == 3 and exp.fidelity_spent == 1 + 1 + 3
    # Same result: from scratch with the same seed is the same run.
    ref = tiny_experiment(space, evaluator(space), checkpoint_dir=str(tmp_path / "ref")).run()
    assert top.metrics["accuracy"] == ref.trials[2].metrics["accuracy"]


def test_a_resumed_experiment_finds_the_rung_checkpoints(tmp_path: Path, space: TinySpace) -> None:
    db = tmp_path / "run.db"
    first = tiny_experiment(space, evaluator(space), trials=2, storage=str(db)).run()
    assert len(first.trials) == 2
    assert sorted(os.listdir(f"{db}.rungs")) == ["trial-0.pt", "trial-1.pt"]  # beside the db
    resumed = tiny_experiment(space, evaluator(space), trials=3, storage=str(db)).run()
    assert resumed.replay_mismatches == 0
    top = resumed.trials[2]
    assert top.info["resumed_from_epoch"] == 1 and top.info["epochs_trained"] == 2
    assert resumed.fidelity_spent == 4


@pytest.mark.parametrize(("rung", "top"), [(1, 3), (3, 5)])
def test_early_stopping_counts_the_rung_s_epochs(tmp_path: Path, space: TinySpace, rung: int,
                                                 top: int) -> None:
    # Patience 1 with an impossible min_delta: one uninterrupted run stops after epoch 2.
    ev = evaluator(space, early_stopping=1, min_delta=1000.0)
    a = space.make({"width": 6, "kernel": 3})
    whole = ev.evaluate(a, EvalContext(seed=7, device="cpu", fidelity=top, max_fidelity=top))
    assert whole.info["stopped"] == "callback" and whole.metrics["epochs"] == 2
    ckpt = str(tmp_path / "rung.pt")
    ev.evaluate(a, EvalContext(seed=7, device="cpu", fidelity=rung, max_fidelity=top,
                               checkpoint_to=ckpt))
    cont = ev.evaluate(a, EvalContext(seed=7, device="cpu", fidelity=top, max_fidelity=top,
                                      resume_from=ckpt))
    # The promotion stops where the uninterrupted run stopped: after epoch 2, even when the
    # rung had already stopped there (then it trains nothing more).
    assert cont.metrics["epochs"] == 2 and cont.info["stopped"] == "callback"
    assert cont.info["epochs_trained"] == 2 - min(rung, 2)
    assert cont.metrics["accuracy"] == whole.metrics["accuracy"]
    assert without_time(cont.info["curve"]) == without_time(whole.info["curve"])
