"""Once-for-all training of the elastic space (Cai, Gan, Wang, Zhang & Han, ICLR 2020).

The supernet (:class:`~nasforge.supernet.elastic.ElasticSupernet`) is trained so that
every sub-network works with the shared weights:

- **progressive shrinking** (OFA): the epochs are split into phases that make more dimensions
  elastic: ``full`` (largest network only), ``kernel`` (kernel sizes elastic), ``depth`` (then
  depths, adding one smaller depth per sub-stage: {4} -> {4, 3} -> {4, 3, 2}) and ``width`` (then
  expand ratios, likewise). Before each width epoch the hidden channels are sorted by importance so
  the first channels, which every narrower sub-network keeps, are the most important.
  ``shrinking="none"`` makes everything elastic from the start.
- **the sandwich rule** (Yu & Huang, ICCV 2019, "Universally Slimmable Networks"): every step
  trains the largest, the smallest and ``random_subnets`` random sub-networks of the current phase
  on the same batch, gradients summed; with in-place distillation the largest network learns from
  the labels and the others from its (detached) predictions. ``rule="random"`` trains
  ``random_subnets`` random sub-networks per step (OFA's own sampling, without a teacher).

Afterwards sub-networks are picked like SPOS' (:func:`~nasforge.oneshot.specialize.search_subnets`:
a strategy over the weight_sharing evaluator, with optional constraints such as
``params <= 2e5``), and :meth:`ElasticSupernet.extract` turns any of them into a stand-alone
network with its trained weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from nasforge.errors import ConfigError, allowed
from nasforge.oneshot.search import OneShotConfig, OneShotSearch
from nasforge.oneshot.specialize import SubnetSearchConfig, search_subnets
from nasforge.space.architecture import Architecture
from nasforge.space.decision import Value
from nasforge.supernet.batches import Batch, first_batches
from nasforge.supernet.elastic import ElasticSupernet
from nasforge.supernet.evaluation import evaluate_arch

PHASES: tuple[str, ...] = ("full", "kernel", "depth", "width")
SHRINKING: tuple[str, ...] = ("progressive", "none")
RULES: tuple[str, ...] = ("sandwich", "random")


@dataclass
class OfaConfig(SubnetSearchConfig):
    """Once-for-all settings: :class:`SubnetSearchConfig` plus the training schedule.

    ``phase_epochs`` gives the epochs of the ``full, kernel, depth, width`` phases (summing to
    ``epochs``); by default the epochs are split evenly, the remainder going to the later phases.
    """

    shrinking: str = "progressive"
    rule: str = "sandwich"
    random_subnets: int = 2
    inplace_distill: bool = True
    phase_epochs: list[int] | None = None
    search_trials: int = 20

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.shrinking not in SHRINKING:
            raise ConfigError(f"unknown shrinking {self.shrinking!r}; allowed: {allowed(SHRINKING)}")
        if self.rule not in RULES:
            raise ConfigError(f"unknown sampling rule {self.rule!r}; allowed: {allowed(RULES)}")
        low = 0 if self.rule == "sandwich" else 1
        if isinstance(self.random_subnets, bool) or not isinstance(self.random_subnets, int) or (
            self.random_subnets < low
        ):
            raise ConfigError(f"random_subnets must be an integer >= {low}, got {self.random_subnets!r}")
        if self.phase_epochs is not None:
            phases = list(self.phase_epochs)
            if len(phases) != len(PHASES) or any(
                isinstance(p, bool) or not isinstance(p, int) or p < 0 for p in phases
            ) or sum(phases) != self.epochs:
                raise ConfigError(
                    f"phase_epochs must be {len(PHASES)} integers >= 0 ({', '.join(PHASES)}) summing "
                    f"to epochs={self.epochs}, got {self.phase_epochs!r}"
                )

    def phases(self) -> list[int]:
        """Epochs of each phase of progressive shrinking."""
        if self.phase_epochs is not None:
            return list(self.phase_epochs)
        base, extra = divmod(self.epochs, len(PHASES))
        return [base + (1 if i >= len(PHASES) - extra else 0) for i in range(len(PHASES))]


@dataclass(frozen=True)
class Elastic:
    """The choices each dimension may take in the current phase."""

    kernels: tuple[int, ...]
    depths: tuple[int, ...]
    expands: tuple[Value, ...]
    phase: str = "all"
    sort_channels: bool = False


def _top(values: tuple[Any, ...], count: int) -> tuple[Any, ...]:
    return tuple(sorted(values)[-count:])


class Ofa(OneShotSearch):
    """Once-for-all supernet training with progressive shrinking and the sandwich rule."""

    method: ClassVar[str] = "ofa"
    searches_subnets: ClassVar[bool] = True
    config_class: ClassVar[type[OneShotConfig]] = OfaConfig
    has_arch_optimizer: ClassVar[bool] = False
    needs_valid_batch: ClassVar[bool] = False
    config: OfaConfig
    supernet: ElasticSupernet

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.supernet, ElasticSupernet):
            raise ConfigError(
                f"once-for-all training needs the elastic space's supernet, got {type(self.supernet).__name__}"
            )
        self.elastic = self.elastic_at(0)

    # ------------------------------------------------------------------ schedule
    def elastic_at(self, epoch: int) -> Elastic:
        """What is elastic at ``epoch`` under the configured shrinking."""
        space = self.supernet.espace
        ks, ds, es = space.kernel_sizes, space.depths, space.expand_ratios
        if self.config.shrinking == "none":
            return Elastic(ks, ds, es)
        # Past the last epoch (e.g. when evaluating after training) everything is elastic.
        phase, length, inside = PHASES[-1], 1, 0
        start = 0
        for name, days in zip(PHASES, self.config.phases()):
            if epoch < start + days:
                phase, length, inside = name, days, epoch - start
                break
            start += days
        if phase == "full":
            return Elastic((max(ks),), (max(ds),), (max(es),), phase)
        if phase == "kernel":
            return Elastic(ks, (max(ds),), (max(es),), phase)
        values = ds if phase == "depth" else es
        stages = max(len(values) - 1, 1)
        # Sub-stage grows with the epoch; the phase's last epoch always allows every value.
        sub = min(stages - 1, -(-(inside + 1) * stages // length) - 1)
        grown = _top(tuple(values), sub + 2)
        if phase == "depth":
            return Elastic(ks, grown, (max(es),), phase)
        return Elastic(ks, ds, grown, phase, sort_channels=True)

    def start_epoch(self, epoch: int) -> None:
        self.elastic = self.elastic_at(epoch)
        if self.elastic.sort_channels and self.step_in_epoch == 0:
            self.supernet.sort_channels(self.w_opt)

    def sample(self, which: str) -> Architecture:
        """``"largest"``, ``"smallest"`` or ``"random"`` sub-network of the current phase."""
        space = self.supernet.espace
        el = self.elastic
        values: dict[str, Value] = {}

        def pick(options: tuple[Any, ...]) -> Any:
            if which == "largest":
                return max(options)
            if which == "smallest":
                return min(options)
            return options[int(self.rng.integers(len(options)))]

        if space.resolutions:  # elastic resolution: every phase samples it (as OFA does)
            values["resolution"] = pick(space.resolutions)
        for s in range(len(space.stages)):
            depth = max(space.depths) if which == "largest" else pick(el.depths)
            values[space.depth_name(s)] = depth
            for b in range(depth):
                values[space.block_name(s, b, "kernel")] = (
                    max(space.kernel_sizes) if which == "largest" else pick(el.kernels))
                values[space.block_name(s, b, "expand")] = (
                    max(space.expand_ratios) if which == "largest" else pick(el.expands))
        return space.make(values)

    # ------------------------------------------------------------------ training
    def train_step(self, batch: Batch, valid: Batch | None) -> dict[str, float]:
        x, y = batch
        if self.config.rule == "sandwich":
            plan = ["largest", "smallest"] + ["random"] * self.config.random_subnets
        else:
            plan = ["random"] * self.config.random_subnets
        archs = list(dict.fromkeys(self.sample(w) for w in plan))  # no duplicate sub-networks
        self.w_opt.zero_grad(set_to_none=True)
        teacher: torch.Tensor | None = None
        total, first_acc = 0.0, 0.0
        for i, arch in enumerate(archs):
            self.supernet.set_arch(arch)
            logits = self.supernet(x)
            if teacher is not None and self.config.inplace_distill:
                loss = -(teacher * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
            else:
                loss = F.cross_entropy(logits, y)
            if i == 0:
                first_acc = 100.0 * float((logits.detach().argmax(1) == y).float().mean())
                if self.config.rule == "sandwich":
                    teacher = F.softmax(logits.detach(), dim=1)
            loss.backward()
            total += float(loss.detach())
        if self.config.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.supernet.weight_parameters(), self.config.grad_clip)
        self.w_opt.step()
        return {"loss": total / len(archs), "acc": first_acc, "subnets": float(len(archs))}

    def end_epoch(self, epoch: int) -> dict[str, float]:
        return {"phase": float(PHASES.index(self.elastic.phase)) if self.elastic.phase in PHASES else -1.0}

    def finish(self) -> tuple[Architecture, dict[str, Any]]:
        cfg = self.config
        self.elastic = self.elastic_at(cfg.epochs)  # every dimension elastic for the ends
        bn = first_batches(self.splits.train, cfg.eval_batch_size, cfg.bn_batches, self.device)
        valid = first_batches(self.splits.val, cfg.eval_batch_size, None, self.device)
        ends = {}
        for which in ("largest", "smallest"):
            ends[f"{which}_accuracy"] = evaluate_arch(self.supernet, self.sample(which), valid,
                                                      bn if cfg.bn_batches else None)[0]
        arch, info = search_subnets(self, cfg)
        return arch, {**info, **ends, "phases": cfg.phases() if cfg.shrinking == "progressive" else []}


__all__ = ["PHASES", "Elastic", "Ofa", "OfaConfig"]
