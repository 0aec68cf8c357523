"""SPOS: Single Path One-Shot Neural Architecture Search with Uniform Sampling (Guo et al., ECCV 2020).

Training: each step samples one architecture uniformly from the space (``space.sample``) and
trains only its path of the supernet on a training batch; there are no architecture parameters.
With ``sampling="fair"`` a step follows FairNAS's strict fairness instead (Chu et al., ICCV 2021):
it draws ``m`` paths in which every option of every decision appears exactly once (``m`` = the
largest number of options; a decision with fewer options fills its remaining paths uniformly at
random), accumulates the gradients of all ``m`` paths on the same batch and makes one update, so
that every candidate operation is trained equally often. It needs a space whose decisions are
independent (no conditional decisions).
Search: an evolutionary search over architectures scored with inherited weights, BatchNorm
statistics recalibrated per architecture on training batches, accuracy on the validation split
(:func:`nasforge.oneshot.specialize.search_subnets`). It reuses the library's strategies:
regularized evolution (``"rea"``) by default, where the paper runs a genetic algorithm (20
generations of 50). With a checkpoint the search's trials go to ``<checkpoint>.search.db``, so an
interrupted search resumes without repeating trials.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np

from nasforge.errors import ConfigError
from nasforge.oneshot.search import OneShotConfig, OneShotSearch
from nasforge.oneshot.specialize import SubnetSearchConfig, search_subnets
from nasforge.space.architecture import Architecture
from nasforge.space.base import SearchSpace
from nasforge.supernet.batches import Batch

SAMPLINGS = ("uniform", "fair")


@dataclass
class SposConfig(SubnetSearchConfig):
    """SPOS settings: the training settings plus the search (see :class:`SubnetSearchConfig`).

    ``sampling``: ``"uniform"`` (one uniformly drawn path per step, as in SPOS) or ``"fair"``
    (FairNAS's strict fairness: every option of every decision once per step).
    """

    sampling: str = "uniform"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.sampling not in SAMPLINGS:
            raise ConfigError(f"sampling must be one of {', '.join(SAMPLINGS)}, got {self.sampling!r}")


def fair_paths(
    space: SearchSpace, rng: np.random.Generator, fixed: Mapping[str, Any] | None = None
) -> list[Architecture]:
    """FairNAS's paths for one step: every option of every decision in exactly one path.

    Each decision's options are shuffled independently, so the paths combine them at random;
    a decision with fewer options than the widest one repeats uniformly drawn options. Decisions
    in ``fixed`` (a few-shot sub-supernet's) keep their value in every path.
    """
    fixed = dict(fixed or {})
    if space.is_conditional:
        raise ConfigError(
            f"sampling='fair' needs independent decisions, but space {space.name!r} has conditional "
            "ones (a decision exists only for some values of another); use sampling='uniform'"
        )
    decisions = [d for d in space.decisions if d.name not in fixed]
    m = max((len(d.options) for d in decisions), default=1)
    columns: dict[str, list[Any]] = {name: [value] * m for name, value in fixed.items()}
    for d in decisions:
        k = len(d.options)
        order = np.concatenate([rng.permutation(k), rng.integers(k, size=m - k)])
        rng.shuffle(order)  # the repeats land in random paths, not always the last ones
        columns[d.name] = [d.options[int(i)] for i in order]
    try:
        return [space.make({name: col[j] for name, col in columns.items()}) for j in range(m)]
    except ConfigError as exc:
        raise ConfigError(
            f"sampling='fair' combines options freely, but space {space.name!r} refused a "
            f"combination ({exc}); use sampling='uniform'"
        ) from exc


class Spos(OneShotSearch):
    """Single-path uniform supernet training, then evolutionary search with inherited weights."""

    method: ClassVar[str] = "spos"
    searches_subnets: ClassVar[bool] = True
    config_class: ClassVar[type[OneShotConfig]] = SposConfig
    has_arch_optimizer: ClassVar[bool] = False
    needs_valid_batch: ClassVar[bool] = False
    config: SposConfig
    #: Decisions every trained path keeps (``{name: option}``): set by few-shot NAS on its
    #: sub-supernets (:mod:`nasforge.oneshot.fewshot`); empty for SPOS itself.
    fixed: Mapping[str, Any] = MappingProxyType({})

    def sample_path(self) -> Architecture:
        """The path of a uniform step: a uniform sample of the space (of its ``fixed`` part)."""
        if not self.fixed:
            return self.space.sample(self.rng)
        return self.space.complete(self.fixed, self.rng)

    def train_step(self, batch: Batch, valid: Batch | None) -> dict[str, float]:
        if self.config.sampling == "uniform":
            self.supernet.set_arch(self.sample_path())
            loss, acc = self.forward_loss(batch)
            self.weight_step(loss)
            return {"loss": float(loss.detach()), "acc": acc}
        paths = fair_paths(self.space, self.rng, self.fixed)
        losses, accs = [], []
        for j, arch in enumerate(paths):  # one backward per path: only one graph in memory
            self.supernet.set_arch(arch)
            loss, acc = self.forward_loss(batch)
            self.weight_step(loss, zero=j == 0, step=j == len(paths) - 1)
            losses.append(float(loss.detach()))
            accs.append(acc)
        return {"loss": float(np.mean(losses)), "acc": float(np.mean(accs))}

    def finish(self) -> tuple[Architecture, dict[str, Any]]:
        return search_subnets(self, self.config)


__all__ = ["Spos", "SposConfig", "fair_paths"]
