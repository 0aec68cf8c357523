"""PC-DARTS: Partial Channel Connections for Memory-Efficient Architecture Search (Xu et al., ICLR 2020).

DARTS (first order, as in the paper) on a supernet built for it: ``partial_channels=K`` sends
1/K of each edge's input channels through the candidate ops and lets the rest bypass them, with a
channel shuffle after each edge (:class:`~nasforge.supernet.partial.PartialChannelOp`), and
``edge_normalization=True`` weights each node's input edges by the softmax of their own logits
(``betas``), which the architecture step learns with the op logits. The derived cell keeps, per
node, the two edges with the largest edge weight x strongest non-``none`` op weight. The weights
alone are trained during the first ``warmup_epochs`` (paper: 15 of 50) before the architecture
steps begin. Paper default: K=4.

Build the supernet with :func:`pcdarts_supernet` (or ``space.supernet(partial_channels=4,
edge_normalization=True)``); this method refuses any other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from nasforge.errors import ConfigError
from nasforge.oneshot.darts import Darts, DartsConfig
from nasforge.oneshot.search import OneShotConfig
from nasforge.space.architecture import Architecture
from nasforge.space.base import SearchSpace
from nasforge.supernet.base import Supernet, seeded_supernet
from nasforge.supernet.batches import Batch
from nasforge.supernet.darts import DartsSupernet

PAPER_K = 4
"""The paper's channel ratio 1/K on CIFAR-10."""

WARMUP_FRACTION = 0.3
"""The paper's warm-up, 15 of 50 epochs, as a fraction of the epochs."""


@dataclass
class PcDartsConfig(DartsConfig):
    """PC-DARTS settings: :class:`DartsConfig` (first order only) plus ``warmup_epochs``, the
    epochs at the start that train the weights only (None: 30 % of the epochs, rounded, i.e. the
    paper's 15 of 50)."""

    warmup_epochs: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.order != 1:
            raise ConfigError(f"PC-DARTS is first order; got order={self.order!r}")
        w = self.warmup_epochs
        if w is not None and (isinstance(w, bool) or not isinstance(w, int) or not 0 <= w < self.epochs):
            raise ConfigError(f"warmup_epochs must be an integer in 0..epochs-1 ({self.epochs - 1}), got {w!r}")

    @property
    def warmup(self) -> int:
        """The warm-up epochs in effect."""
        if self.warmup_epochs is not None:
            return self.warmup_epochs
        return min(round(WARMUP_FRACTION * self.epochs), self.epochs - 1)


def pcdarts_supernet(space: SearchSpace, seed: int = 0, partial_channels: int = PAPER_K, **build: Any) -> Supernet:
    """A DARTS supernet with partial channels (``K=4``) and edge normalization, seeded."""
    return seeded_supernet(space, seed, partial_channels=partial_channels, edge_normalization=True, **build)


class PcDarts(Darts):
    """PC-DARTS search (see the module doc)."""

    method: ClassVar[str] = "pcdarts"
    config_class: ClassVar[type[OneShotConfig]] = PcDartsConfig
    config: PcDartsConfig

    def __init__(self, supernet: Supernet, *args: Any, **kwargs: Any) -> None:
        if not isinstance(supernet, DartsSupernet) or not supernet.edge_normalization:
            raise ConfigError(
                "pcdarts needs a DARTS supernet with edge normalization and partial channels: "
                "space.supernet(partial_channels=4, edge_normalization=True) or "
                "nasforge.oneshot.pcdarts.pcdarts_supernet(space)"
            )
        super().__init__(supernet, *args, **kwargs)

    def train_step(self, batch: Batch, valid: Batch | None) -> dict[str, float]:
        if self.epoch >= self.config.warmup:
            return super().train_step(batch, valid)
        loss, acc = self.forward_loss(batch)
        self.weight_step(loss)
        return {"loss": float(loss.detach()), "acc": acc}

    def finish(self) -> tuple[Architecture, dict[str, Any]]:
        arch, info = super().finish()
        assert isinstance(self.supernet, DartsSupernet)
        info.update(partial_channels=self.supernet.partial_channels, warmup_epochs=self.config.warmup)
        return arch, info


__all__ = ["PAPER_K", "PcDarts", "PcDartsConfig", "pcdarts_supernet"]
