"""SPOS: Single Path One-Shot Neural Architecture Search with Uniform Sampling (Guo et al., ECCV 2020).

Training: each step samples one architecture uniformly from the space (``space.sample``) and
trains only its path of the supernet on a training batch; there are no architecture parameters.
Search: an evolutionary search over architectures scored with inherited weights, BatchNorm
statistics recalibrated per architecture on training batches, accuracy on the validation split
(:func:`nasforge.oneshot.specialize.search_subnets`). It reuses the library's strategies:
regularized evolution (``"rea"``) by default, where the paper runs a genetic algorithm (20
generations of 50). With a checkpoint the search's trials go to ``<checkpoint>.search.db``, so an
interrupted search resumes without repeating trials.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from nasforge.oneshot.search import OneShotConfig, OneShotSearch
from nasforge.oneshot.specialize import SubnetSearchConfig, search_subnets
from nasforge.space.architecture import Architecture
from nasforge.supernet.batches import Batch


@dataclass
class SposConfig(SubnetSearchConfig):
    """SPOS settings: the training settings plus the search (see :class:`SubnetSearchConfig`)."""


class Spos(OneShotSearch):
    """Single-path uniform supernet training, then evolutionary search with inherited weights."""

    method: ClassVar[str] = "spos"
    searches_subnets: ClassVar[bool] = True
    config_class: ClassVar[type[OneShotConfig]] = SposConfig
    has_arch_optimizer: ClassVar[bool] = False
    needs_valid_batch: ClassVar[bool] = False
    config: SposConfig

    def train_step(self, batch: Batch, valid: Batch | None) -> dict[str, float]:
        self.supernet.set_arch(self.space.sample(self.rng))
        loss, acc = self.forward_loss(batch)
        self.weight_step(loss)
        return {"loss": float(loss.detach()), "acc": acc}

    def finish(self) -> tuple[Architecture, dict[str, Any]]:
        return search_subnets(self, self.config)


__all__ = ["Spos", "SposConfig"]
