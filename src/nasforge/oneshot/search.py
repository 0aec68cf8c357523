"""The loop every one-shot method shares: epochs of supernet steps, optimizers, checkpoints, resume.

A method subclasses :class:`OneShotSearch` and implements :meth:`~OneShotSearch.train_step` (one
step on a training batch and, for bilevel methods, a validation batch) and
:meth:`~OneShotSearch.finish` (turn the trained supernet into an architecture). The base class owns
the weight optimizer (SGD with momentum, cosine-annealed per epoch, as in DARTS), the architecture
optimizer (Adam) when the method has one, the repeatable batch streams, and checkpoints that resume
a run in the middle of an epoch with the same result as an uninterrupted run (on CPU).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from nasforge.data.splits import DataSplits
from nasforge.errors import ConfigError
from nasforge.space.architecture import Architecture
from nasforge.supernet.base import Supernet
from nasforge.supernet.batches import Batch, EpochBatches
from nasforge.supernet.checkpoint import (
    load_checkpoint,
    load_supernet_weights,
    save_checkpoint,
    supernet_differences,
)
from nasforge.utils.coerce import coerce_fields
from nasforge.utils.device import resolve_device
from nasforge.utils.rng import derive_seed, rng_from_state, rng_state

log = logging.getLogger("nasforge.oneshot")


@dataclass
class OneShotConfig:
    """Settings shared by the one-shot methods.

    Defaults are the DARTS paper's CIFAR-10 search (Liu et al., ICLR 2019): 50 epochs, batch 64,
    SGD lr 0.025 cosine-annealed to 0.001, momentum 0.9, weight decay 3e-4, gradient clip 5; Adam
    on the architecture with lr 3e-4, betas (0.5, 0.999), weight decay 1e-3. For a few minutes on
    two CPU cores use e.g. ``epochs=3``, a 2,000-image subset and ``C=8, N=1`` supernets (what the
    ``nasforge oneshot`` command does by default). ``steps_per_epoch`` caps the batches per epoch;
    ``checkpoint_every`` saves every that many steps (0: at the end of each epoch only).
    """

    epochs: int = 50
    batch_size: int = 64
    w_lr: float = 0.025
    w_lr_min: float = 0.001
    w_momentum: float = 0.9
    w_weight_decay: float = 3e-4
    grad_clip: float = 5.0
    a_lr: float = 3e-4
    a_beta1: float = 0.5
    a_beta2: float = 0.999
    a_weight_decay: float = 1e-3
    augment: str = "default"
    steps_per_epoch: int | None = None
    checkpoint_every: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        coerce_fields(self)  # "1e-3" from --option is the number it reads as
        for name in ("epochs", "batch_size"):
            _check_int(name, getattr(self, name), 1)
        _check_int("checkpoint_every", self.checkpoint_every, 0)
        if self.steps_per_epoch is not None:
            _check_int("steps_per_epoch", self.steps_per_epoch, 1)
        _check_int("seed", self.seed, 0)
        for name in ("w_lr", "a_lr"):
            _check_float(name, getattr(self, name), positive=True)
        for name in ("w_lr_min", "w_momentum", "w_weight_decay", "a_weight_decay", "grad_clip"):
            _check_float(name, getattr(self, name), positive=False)
        for name in ("a_beta1", "a_beta2"):
            value = getattr(self, name)
            _check_float(name, value, positive=False)
            if not value < 1:
                raise ConfigError(f"{name} must be in [0, 1), got {value!r}")

    @classmethod
    def make(cls, **options: Any) -> OneShotConfig:
        """Build from keyword options, naming unknown ones and the allowed ones."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(options) - set(names))
        if unknown:
            raise ConfigError(
                f"unknown option(s) {', '.join(map(repr, unknown))} for {cls.__name__}; "
                f"allowed: {', '.join(map(repr, names))}"
            )
        return cls(**options)


def _check_int(name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")


def _check_float(name: str, value: object, positive: bool) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (value <= 0 if positive else value < 0):  # type: ignore[operator]
        kind = "a positive number" if positive else "a number >= 0"
        raise ConfigError(f"{name} must be {kind}, got {value!r}")


@dataclass
class OneShotResult:
    """What a one-shot search returns: the chosen architecture and how the search went."""

    method: str
    arch: Architecture
    arch_string: str
    history: list[dict[str, float]]
    arch_weights: dict[str, dict[str, float]]
    seconds: float
    steps: int
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "method": self.method,
            "arch": self.arch.to_dict(),
            "arch_string": self.arch_string,
            "history": self.history,
            "arch_weights": self.arch_weights,
            "seconds": self.seconds,
            "steps": self.steps,
            "info": self.info,
        }


StepCallback = Callable[["OneShotSearch", dict[str, float]], None]


def search_db_path(checkpoint: Path | None) -> Path | None:
    """Where a search's trials are stored: beside the checkpoint (None without one)."""
    return None if checkpoint is None else checkpoint.with_name(checkpoint.name + ".search.db")


def remove_search_db(checkpoint: Path | None) -> None:
    """Delete a previous run's search database (a fresh run must not resume it)."""
    db = search_db_path(checkpoint)
    if db is not None:
        for suffix in ("", "-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)


class OneShotSearch(ABC):
    """Base of the one-shot methods (see the module doc).

    ``splits`` gives the training data (weights) and the validation data (architecture parameters,
    rewards, evaluation); they must be disjoint, as bilevel optimization assumes. ``checkpoint`` is
    the file saved during the run; ``run(resume=True)`` continues from it.
    """

    method: ClassVar[str] = "oneshot"
    config_class: ClassVar[type[OneShotConfig]] = OneShotConfig
    #: Whether the method optimizes the supernet's architecture parameters with Adam.
    has_arch_optimizer: ClassVar[bool] = True
    #: Whether each training step also receives a validation batch.
    needs_valid_batch: ClassVar[bool] = True
    #: Whether ``finish`` searches sub-networks with trials stored beside the checkpoint; a fresh
    #: (not resumed) run then deletes the previous run's trials so it does not resume them.
    searches_subnets: ClassVar[bool] = False

    def __init__(
        self,
        supernet: Supernet,
        splits: DataSplits,
        config: OneShotConfig | None = None,
        *,
        device: str = "auto",
        checkpoint: str | Path | None = None,
        data_spec: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        if config is None:
            config = self.config_class.make(**options)
        elif options:
            raise ConfigError(f"give either a config or options, not both (got {sorted(options)})")
        if not isinstance(config, self.config_class):
            raise ConfigError(
                f"{self.method} needs a {self.config_class.__name__}, got {type(config).__name__}"
            )
        if not isinstance(supernet, Supernet):
            raise ConfigError(f"{self.method} needs a Supernet, got {type(supernet).__name__}")
        self.config = config
        self.device = torch.device(resolve_device(device))
        self.supernet = supernet.to(self.device)
        self.space = supernet.space
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        self.data_spec = dict(data_spec or {})
        cfg = config
        self.train_batches = EpochBatches(
            splits.train, cfg.batch_size, seed=derive_seed(cfg.seed, "train"), name="train",
            device=self.device, augment=cfg.augment, max_batches=cfg.steps_per_epoch,
        )
        self.valid_batches = EpochBatches(
            splits.val, cfg.batch_size, seed=derive_seed(cfg.seed, "valid"), name="valid",
            device=self.device, augment="none",
        )
        self.splits = splits
        self.w_opt = torch.optim.SGD(
            supernet.weight_parameters(), lr=cfg.w_lr, momentum=cfg.w_momentum,
            weight_decay=cfg.w_weight_decay,
        )
        self.w_sched = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.w_opt, T_max=cfg.epochs, eta_min=cfg.w_lr_min
        )
        self.a_opt: torch.optim.Optimizer | None = None
        if self.has_arch_optimizer:
            self.a_opt = torch.optim.Adam(
                supernet.arch_parameters(), lr=cfg.a_lr, betas=(cfg.a_beta1, cfg.a_beta2),
                weight_decay=cfg.a_weight_decay,
            )
        self.supernet.generator.manual_seed(derive_seed(cfg.seed, "supernet"))
        self.rng = np.random.default_rng(derive_seed(cfg.seed, "method"))
        self.epoch = 0
        self.step_in_epoch = 0
        self.global_step = 0
        self.history: list[dict[str, float]] = []
        self.running: dict[str, float] = {}
        self.elapsed = 0.0

    # ------------------------------------------------------------------ method hooks
    @abstractmethod
    def train_step(self, batch: Batch, valid: Batch | None) -> dict[str, float]:
        """One search step; returns numbers to average over the epoch (e.g. ``loss``, ``acc``)."""

    def start_epoch(self, epoch: int) -> None:
        """Called before the first step of each epoch (also when resuming inside it)."""
        return None

    def end_epoch(self, epoch: int) -> dict[str, float]:
        """Called after the last step of each epoch; returns extra numbers for the history."""
        return {}

    @abstractmethod
    def finish(self) -> tuple[Architecture, dict[str, Any]]:
        """The chosen architecture and JSON-able extra information, once training is over."""

    def extra_state(self) -> dict[str, Any]:
        """Method-specific state for checkpoints (tensors and plain data only)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`extra_state`."""
        return None

    # ------------------------------------------------------------------ helpers for methods
    @property
    def w_lr(self) -> float:
        """The weight optimizer's current learning rate."""
        return float(self.w_opt.param_groups[0]["lr"])

    def weight_step(self, loss: torch.Tensor, *, zero: bool = True, step: bool = True) -> None:
        """Backpropagate ``loss`` to the weights only, clip their gradient norm, take an SGD step.

        ``zero=False`` adds to the gradients already there and ``step=False`` stops after the
        backward pass, so that several paths can accumulate into one update (FairNAS).
        """
        if zero:
            self.w_opt.zero_grad(set_to_none=True)
        arch = self.supernet.arch_parameters()
        flags = [p.requires_grad for p in arch]
        for p in arch:  # architecture parameters get no gradient from the training loss
            p.requires_grad_(False)
        try:
            loss.backward()
        finally:
            for p, flag in zip(arch, flags):
                p.requires_grad_(flag)
        if not step:
            return
        if self.config.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.supernet.weight_parameters(), self.config.grad_clip)
        self.w_opt.step()

    def forward_loss(self, batch: Batch) -> tuple[torch.Tensor, float]:
        """Cross-entropy of the supernet on ``batch`` (current mode) and its accuracy in percent."""
        x, y = batch
        logits = self.supernet(x)
        loss = nn.functional.cross_entropy(logits, y)
        acc = 100.0 * float((logits.detach().argmax(1) == y).float().mean())
        return loss, acc

    def arch_step(self, grads: list[torch.Tensor]) -> None:
        """Apply architecture gradients (one per architecture parameter) with Adam."""
        assert self.a_opt is not None
        self.a_opt.zero_grad(set_to_none=True)
        for p, g in zip(self.supernet.arch_parameters(), grads):
            p.grad = g.detach().clone()
        self.a_opt.step()

    # ------------------------------------------------------------------ the loop
    def _batches(self) -> Iterator[tuple[Batch, Batch | None]]:
        train = self.train_batches.epoch(self.epoch, skip=self.step_in_epoch)
        if not self.needs_valid_batch:
            for batch in train:
                yield batch, None
            return
        valid = self.valid_batches.endless(self.epoch, skip=self.step_in_epoch)
        for batch in train:
            yield batch, next(valid)

    def run(
        self,
        resume: bool = False,
        on_step: StepCallback | None = None,
        on_epoch: StepCallback | None = None,
    ) -> OneShotResult:
        """Train (or continue training) the supernet, then return the chosen architecture.

        ``resume=True`` continues from :attr:`checkpoint` when that file exists. ``on_step`` is
        called after every step (and after the checkpoint of that step, if any) with the step's
        numbers; ``on_epoch`` after every epoch with its history entry.
        """
        if not resume and self.searches_subnets:
            remove_search_db(self.checkpoint)
        if resume:
            if self.checkpoint is None:
                raise ConfigError("resume=True needs a checkpoint path")
            if self.checkpoint.is_file():
                self.load(self.checkpoint)
                log.info("resumed %s at epoch %d step %d", self.method, self.epoch, self.step_in_epoch)
        start = time.time()
        base_elapsed = self.elapsed
        self.supernet.train()
        while self.epoch < self.config.epochs:
            self.start_epoch(self.epoch)
            for batch, valid in self._batches():
                stats = self.train_step(batch, valid)
                for k, v in stats.items():
                    self.running[k] = self.running.get(k, 0.0) + float(v)
                self.running["_steps"] = self.running.get("_steps", 0.0) + 1.0
                self.step_in_epoch += 1
                self.global_step += 1
                self.elapsed = base_elapsed + time.time() - start
                every = self.config.checkpoint_every
                if self.checkpoint is not None and every and self.global_step % every == 0:
                    self.save(self.checkpoint)
                if on_step is not None:
                    on_step(self, stats)
            self._close_epoch()
            self.elapsed = base_elapsed + time.time() - start
            if self.checkpoint is not None:
                self.save(self.checkpoint)
            if on_epoch is not None:
                on_epoch(self, self.history[-1])
        arch, info = self.finish()
        self.elapsed = base_elapsed + time.time() - start
        return OneShotResult(
            method=self.method,
            arch=arch,
            arch_string=self.space.to_string(arch),
            history=list(self.history),
            arch_weights=self.supernet.arch_weights() if self.has_arch_optimizer else {},
            seconds=self.elapsed,
            steps=self.global_step,
            info=info,
        )

    def _close_epoch(self) -> None:
        steps = max(self.running.pop("_steps", 0.0), 1.0)
        entry = {"epoch": float(self.epoch), "lr": self.w_lr}
        entry.update({k: v / steps for k, v in sorted(self.running.items())})
        entry.update(self.end_epoch(self.epoch))
        self.history.append(entry)
        log.info("%s epoch %d: %s", self.method, self.epoch, entry)
        self.w_sched.step()
        self.epoch += 1
        self.step_in_epoch = 0
        self.running = {}

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue this run (see :mod:`nasforge.supernet.checkpoint`)."""
        return {
            "method": self.method,
            "config": asdict(self.config),
            "supernet": self.supernet.describe(),
            "data": self.data_spec,
            "model": self.supernet.state_dict(),
            "w_opt": self.w_opt.state_dict(),
            "w_sched": self.w_sched.state_dict(),
            "a_opt": None if self.a_opt is None else self.a_opt.state_dict(),
            "rng": {
                "supernet": self.supernet.generator.get_state(),
                "method": rng_state(self.rng),
                "torch": torch.get_rng_state(),
            },
            "position": {"epoch": self.epoch, "step": self.step_in_epoch, "global": self.global_step},
            "history": self.history,
            "running": self.running,
            "elapsed": self.elapsed,
            "extra": self.extra_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (refuses a checkpoint of another method or settings)."""
        if state.get("method") != self.method:
            raise ConfigError(f"the checkpoint is of method {state.get('method')!r}, not {self.method!r}")
        mine = asdict(self.config)
        theirs = dict(state.get("config", {}))
        diff = sorted(k for k in mine if _normal(mine[k]) != _normal(theirs.get(k)))
        if diff:
            detail = ", ".join(f"{k}: checkpoint {theirs.get(k)!r} vs now {mine[k]!r}" for k in diff)
            raise ConfigError(f"the checkpoint was made with other settings ({detail})")
        stored = state.get("supernet") or {}
        other = supernet_differences(stored, self.supernet.describe())
        if other:
            raise ConfigError(f"the checkpoint holds another supernet ({'; '.join(other)})")
        load_supernet_weights(self.supernet, state["model"],
                              options_known=isinstance(stored.get("space_options"), dict))
        self.w_opt.load_state_dict(state["w_opt"])
        self.w_sched.load_state_dict(state["w_sched"])
        if self.a_opt is not None:
            self.a_opt.load_state_dict(state["a_opt"])
        self.supernet.generator.set_state(state["rng"]["supernet"])
        self.rng = rng_from_state(state["rng"]["method"])
        torch.set_rng_state(state["rng"]["torch"])
        pos = state["position"]
        self.epoch, self.step_in_epoch, self.global_step = pos["epoch"], pos["step"], pos["global"]
        self.history = [dict(h) for h in state["history"]]
        self.running = dict(state["running"])
        self.elapsed = float(state.get("elapsed", 0.0))
        self.load_extra_state(state.get("extra", {}))

    def save(self, path: str | Path) -> Path:
        """Write a checkpoint of the current state."""
        return save_checkpoint(path, self.state_dict())

    def load(self, path: str | Path) -> None:
        """Continue from the checkpoint at ``path``."""
        # Loaded on the CPU: generator states must stay CPU tensors; modules and optimizers move
        # what they load to their own device.
        self.load_state_dict(load_checkpoint(path, map_location="cpu"))


def _normal(value: Any) -> Any:
    # Checkpoints store tuples as lists; compare the two forms as equal.
    return list(value) if isinstance(value, tuple) else value


__all__ = ["OneShotConfig", "OneShotResult", "OneShotSearch", "StepCallback"]
