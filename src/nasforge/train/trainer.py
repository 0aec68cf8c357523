"""The training loop: SGD/Adam with cosine decay, per-epoch validation, guards and callbacks.

Designed for many short trainings inside a search: the per-step work is only what a bare PyTorch
loop does (forward, loss, backward, clip, step) plus two on-device additions to running sums; the
host reads those sums once per epoch (and, on CUDA, checks for a non-finite loss every
``nan_check_every`` steps), so the GPU is never waited on per step.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable, Sized
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nasforge.errors import ConfigError, NasforgeError
from nasforge.train.config import TrainConfig
from nasforge.train.evaluate import as_logits, autocast_context, evaluate_model
from nasforge.utils.device import resolve_device

#: ``loss_fn(logits, inputs, targets) -> scalar loss``; inputs are passed for losses such as
#: knowledge distillation that need to run another model on the same batch.
LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class TrainingError(NasforgeError):
    """Training could not finish; ``curve`` holds the epochs completed before the failure."""

    def __init__(self, message: str, curve: list[EpochStats] | None = None) -> None:
        super().__init__(message)
        self.curve = list(curve or [])


class NonFiniteLossError(TrainingError):
    """The training loss became NaN or infinite (diverged: lower the learning rate)."""


class TimeLimitExceeded(TrainingError):
    """The deadline passed before training finished."""


@dataclass
class EpochStats:
    """One point of the learning curve (accuracies in percent; ``seconds`` since the start)."""

    epoch: int
    train_loss: float
    train_accuracy: float
    val_accuracy: float | None
    val_loss: float | None
    lr: float
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-able copy."""
        return asdict(self)


@dataclass
class TrainState:
    """Everything needed to continue a training run exactly where it stopped.

    ``model`` holds the weights after the last completed epoch (not the restored best ones),
    ``optimizer`` the optimizer's state, ``step``/``epoch`` how far the schedule got. Training
    continued from it with the same config and data order gives the same weights as one
    uninterrupted run (multi-fidelity promotions rely on this).
    """

    epoch: int
    step: int
    model: dict[str, Any]
    optimizer: dict[str, Any]
    curve: list[EpochStats] = field(default_factory=list)
    best_accuracy: float = -math.inf
    best_model: dict[str, Any] | None = None
    best_epoch: int | None = None
    train_seconds: float = 0.0
    #: torch's global CPU generator (dropout, drop-path) after the last epoch.
    rng: Any = None
    #: The CUDA generator of the training device (dropout on the GPU), when it trained on one.
    cuda_rng: Any = None

    def to_dict(self) -> dict[str, Any]:
        """A ``torch.save``-able dict (curve as plain dicts)."""
        d = asdict(self)
        d["curve"] = [c.to_dict() for c in self.curve]
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainState:
        """Inverse of :meth:`to_dict`."""
        data = dict(data)
        data["curve"] = [EpochStats(**c) for c in data.get("curve", [])]
        return cls(**data)


@dataclass
class FitResult:
    """What :meth:`Trainer.fit` returns.

    ``stopped`` is ``"completed"`` or ``"callback"`` (the per-epoch callback asked to stop, e.g.
    early stopping). ``images_per_sec`` counts training images over training time only.
    """

    curve: list[EpochStats] = field(default_factory=list)
    stopped: str = "completed"
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    images_per_sec: float = 0.0
    device: str = "cpu"
    restored_epoch: int | None = None
    #: With ``fit(keep_state=True)``: the state to continue this run from.
    state: TrainState | None = None
    #: The epoch this call started after (0, or the resumed state's epoch).
    resumed_epoch: int = 0

    @property
    def epochs(self) -> int:
        """Epochs completed."""
        return len(self.curve)

    @property
    def final(self) -> EpochStats | None:
        """The last epoch's statistics."""
        return self.curve[-1] if self.curve else None

    @property
    def best(self) -> EpochStats | None:
        """The epoch with the highest validation accuracy."""
        scored = [s for s in self.curve if s.val_accuracy is not None]
        return max(scored, key=lambda s: s.val_accuracy or 0.0) if scored else None


def make_optimizer(config: TrainConfig, params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    """The optimizer named in ``config`` over ``params``."""
    params = list(params)
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
            nesterov=config.nesterov and config.momentum > 0,
        )
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def lr_at(config: TrainConfig, step: int, total_steps: int) -> float:
    """Learning rate for ``step`` of ``total_steps``: cosine annealing (Loshchilov & Hutter, 2017,
    SGDR, without restarts) from ``lr`` to ``min_lr``, or constant."""
    if config.scheduler == "constant" or total_steps <= 0:
        return config.lr
    progress = min(step / total_steps, 1.0)
    return config.min_lr + 0.5 * (config.lr - config.min_lr) * (1.0 + math.cos(math.pi * progress))


class Trainer:
    """Trains a model on a batch iterable with the hyper-parameters of a :class:`TrainConfig`.

    ``Trainer(epochs=5, lr=0.05)`` is short for ``Trainer(TrainConfig(epochs=5, lr=0.05))``.
    """

    def __init__(self, config: TrainConfig | None = None, **overrides: Any) -> None:
        if config is None:
            config = TrainConfig(**overrides)
        elif overrides:
            config = TrainConfig(**{**config.to_dict(), **overrides})
        self.config = config
        #: How often (steps) the running loss is checked for NaN/inf on CUDA; CPU checks every step
        #: since reading a CPU scalar costs nothing.
        self.nan_check_every = 50

    def fit(
        self,
        model: nn.Module,
        train: Iterable[tuple[torch.Tensor, torch.Tensor]],
        val: Iterable[tuple[torch.Tensor, torch.Tensor]] | None = None,
        *,
        device: str | torch.device | None = "auto",
        seed: int | None = None,
        deadline: float | None = None,
        on_epoch: Callable[[EpochStats], bool | None] | None = None,
        loss_fn: LossFn | None = None,
        restore_best: bool = False,
        steps_per_epoch: int | None = None,
        resume: TrainState | None = None,
        until_epoch: int | None = None,
        keep_state: bool = False,
    ) -> FitResult:
        """Train ``model`` in place for ``config.epochs`` epochs; validate after each epoch.

        ``train``/``val`` yield ``(inputs, targets)`` batches (a
        :class:`~nasforge.data.BatchLoader`, or any re-iterable). ``seed`` seeds torch's global
        RNG (dropout and the like). ``deadline`` is an absolute ``time.time()``: passing it raises
        :class:`TimeLimitExceeded`. A NaN/inf training loss raises :class:`NonFiniteLossError`.
        ``on_epoch(stats)`` returning True stops training (early stopping); exceptions it raises
        (e.g. ``TrialPruned``) propagate. ``restore_best`` loads the weights of the epoch with
        the best validation accuracy at the end.

        ``steps_per_epoch``: batches per epoch, for the cosine schedule's length; defaults to
        ``len(train)``. Training data without a length (a generator, an ``IterableDataset``
        loader) needs it with ``scheduler="cosine"``, else :class:`ConfigError` is raised.

        Partial runs (multi-fidelity): ``until_epoch`` stops after that epoch while the learning
        rate schedule keeps the length of ``config.epochs``; ``keep_state=True`` puts a
        :class:`TrainState` in the result, and ``resume=state`` continues from one (the model's
        weights are loaded from it; the caller restores the data order, e.g. the loader's
        generator). The curve of a resumed run includes the earlier epochs.

        ``config.num_threads`` applies to this call only: torch's CPU thread count is put back
        when ``fit`` returns or raises.
        """
        cfg = self.config
        if steps_per_epoch is not None and (
                isinstance(steps_per_epoch, bool) or not isinstance(steps_per_epoch, int)
                or steps_per_epoch < 1):
            raise ConfigError(
                f"steps_per_epoch must be a positive integer or None; got {steps_per_epoch!r}"
            )
        if steps_per_epoch is None:
            if isinstance(train, Sized):
                steps_per_epoch = len(train)
            elif cfg.scheduler == "cosine":
                raise ConfigError(
                    f"the training data ({type(train).__name__}) has no len(), so the cosine "
                    "schedule cannot know how many steps an epoch has; pass "
                    "steps_per_epoch=... to fit(), or use scheduler='constant'"
                )
            else:
                steps_per_epoch = 0  # constant learning rate: the length is not needed
        if until_epoch is not None and (isinstance(until_epoch, bool)
                                        or not isinstance(until_epoch, int)
                                        or not 1 <= until_epoch <= cfg.epochs):
            raise ConfigError(
                f"until_epoch must be a whole number of epochs from 1 to {cfg.epochs} (the "
                f"schedule's length); got {until_epoch!r}"
            )
        if resume is not None and resume.epoch > (until_epoch or cfg.epochs):
            raise ConfigError(
                f"the state to resume has {resume.epoch} epochs, more than the "
                f"{until_epoch or cfg.epochs} this run should reach"
            )
        dev = torch.device(resolve_device(str(device) if device is not None else "auto"))
        threads_before = torch.get_num_threads()
        if cfg.num_threads is not None and dev.type == "cpu":
            torch.set_num_threads(cfg.num_threads)
        try:
            return self._fit(model, train, val, dev, seed, deadline, on_epoch, loss_fn,
                             restore_best, steps_per_epoch, resume, until_epoch or cfg.epochs,
                             keep_state)
        finally:
            # The thread count is process-wide: leave it as the caller had it.
            if torch.get_num_threads() != threads_before:
                torch.set_num_threads(threads_before)

    def _fit(
        self,
        model: nn.Module,
        train: Iterable[tuple[torch.Tensor, torch.Tensor]],
        val: Iterable[tuple[torch.Tensor, torch.Tensor]] | None,
        dev: torch.device,
        seed: int | None,
        deadline: float | None,
        on_epoch: Callable[[EpochStats], bool | None] | None,
        loss_fn: LossFn | None,
        restore_best: bool,
        steps_per_epoch: int,
        resume: TrainState | None,
        last_epoch: int,
        keep_state: bool,
    ) -> FitResult:
        """The training loop of :meth:`fit` (arguments already checked)."""
        cfg = self.config
        if seed is not None:
            torch.manual_seed(seed)
        on_cuda = dev.type == "cuda"
        if resume is not None and resume.rng is not None:
            torch.set_rng_state(resume.rng)  # dropout continues the same random stream
        if resume is not None and resume.cuda_rng is not None and on_cuda:
            torch.cuda.set_rng_state(resume.cuda_rng, dev)  # the same on the GPU
        amp, _ = cfg.conditions(on_cuda)
        channels_last = cfg.trains_channels_last()
        model.to(dev)
        if channels_last:
            model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        if loss_fn is None:
            smoothing = cfg.label_smoothing

            def loss_fn(logits: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
                return F.cross_entropy(logits, y, label_smoothing=smoothing)

        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = make_optimizer(cfg, params)
        total_steps = cfg.epochs * steps_per_epoch
        check_every = self.nan_check_every if on_cuda else 1

        result = FitResult(device=str(dev))
        best_state: dict[str, Any] | None = None
        best_acc = -math.inf
        start = time.time()
        step = 0
        images = 0
        first = 1
        if resume is not None:
            model.load_state_dict(resume.model)
            optimizer.load_state_dict(resume.optimizer)
            step, first = resume.step, resume.epoch + 1
            result.curve = list(resume.curve)
            result.resumed_epoch = resume.epoch
            best_acc, best_state = resume.best_accuracy, resume.best_model
            result.restored_epoch = resume.best_epoch
            start -= resume.curve[-1].seconds if resume.curve else 0.0
        for epoch in range(first, last_epoch + 1):
            model.train()
            t0 = time.perf_counter()
            loss_sum = torch.zeros((), dtype=torch.float32, device=dev)
            correct = torch.zeros((), dtype=torch.long, device=dev)
            loss_total = 0.0  # CPU: the loss sum kept as a Python float
            seen = 0
            lr = cfg.lr
            for x, y in train:
                if deadline is not None and time.time() > deadline:
                    raise TimeLimitExceeded(
                        f"time limit reached during epoch {epoch} of {cfg.epochs} "
                        f"({len(result.curve)} epoch(s) completed)", result.curve
                    )
                x = x.to(dev, non_blocking=True)
                y = y.to(dev, non_blocking=True)
                if channels_last and x.dim() == 4:  # the layout only exists for image batches
                    x = x.contiguous(memory_format=torch.channels_last)
                lr = lr_at(cfg, step, total_steps)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                with autocast_context(dev, amp):
                    logits = as_logits(model(x))
                    loss = loss_fn(logits, x, y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip is not None:
                    nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                optimizer.step()
                batch = int(y.shape[0])
                step += 1
                if on_cuda:
                    loss_sum.add_(loss.detach().float(), alpha=batch)
                    bad = step % check_every == 0 and not bool(torch.isfinite(loss_sum))
                else:  # reading a CPU scalar costs no sync: check every step, sum in Python
                    value = loss.item()
                    loss_total += value * batch
                    bad = not math.isfinite(value)
                if bad:
                    raise NonFiniteLossError(
                        f"training loss became {loss_sum.item() if on_cuda else value} at epoch "
                        f"{epoch} (by step {step}); lower the learning rate or enable gradient "
                        "clipping", result.curve,
                    )
                correct += (logits.detach().argmax(1) == y).sum()
                seen += batch
            if seen == 0:
                raise TrainingError("the training data yielded no batches")
            # One host read per epoch on CUDA (it waits for the GPU to finish the epoch).
            train_loss = (loss_sum.item() if on_cuda else loss_total) / seen
            if not math.isfinite(train_loss):
                raise NonFiniteLossError(
                    f"training loss became {train_loss} at epoch {epoch}; lower the learning rate "
                    "or enable gradient clipping", result.curve
                )
            train_acc = 100.0 * correct.item() / seen
            result.train_seconds += time.perf_counter() - t0
            images += seen
            val_acc = val_loss = None
            if val is not None:
                if deadline is not None and time.time() > deadline:
                    raise TimeLimitExceeded(
                        f"time limit reached before validating epoch {epoch} of {cfg.epochs}",
                        result.curve,
                    )
                t1 = time.perf_counter()
                val_acc, val_loss = evaluate_model(model, val, dev, amp, channels_last)
                result.eval_seconds += time.perf_counter() - t1
                if restore_best and val_acc > best_acc:
                    best_acc = val_acc
                    best_state = copy.deepcopy(model.state_dict())
                    result.restored_epoch = epoch
            stats = EpochStats(epoch, train_loss, train_acc, val_acc, val_loss, lr,
                               time.time() - start)
            result.curve.append(stats)
            if on_epoch is not None and on_epoch(stats):
                result.stopped = "callback"
                break
        if keep_state:
            done = result.curve[-1].epoch if result.curve else 0
            result.state = TrainState(
                epoch=done, step=step, model=copy.deepcopy(model.state_dict()),
                optimizer=copy.deepcopy(optimizer.state_dict()), curve=list(result.curve),
                best_accuracy=best_acc, best_model=best_state, best_epoch=result.restored_epoch,
                train_seconds=result.train_seconds + (resume.train_seconds if resume else 0.0),
                rng=torch.get_rng_state(),
                cuda_rng=torch.cuda.get_rng_state(dev) if on_cuda else None,
            )
        if restore_best and best_state is not None:
            model.load_state_dict(best_state)
        else:
            result.restored_epoch = None
        result.images_per_sec = images / result.train_seconds if result.train_seconds > 0 else 0.0
        return result
