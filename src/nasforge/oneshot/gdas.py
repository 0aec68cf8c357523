"""GDAS: Searching for a Robust Neural Architecture in Four GPU Hours (Dong & Yang, CVPR 2019).

Each forward pass samples one op per edge with the hard Gumbel-softmax: only the sampled op is
computed, and its output is multiplied by the straight-through hard weight (value 1, gradient of the
soft sample), so the architecture logits get a gradient from a single path. Per step, the weights
are updated on a training batch and the architecture logits on a validation batch (Adam, as in
DARTS), each with its own sample. The temperature falls linearly from ``tau_max`` (10) at the first
epoch to ``tau_min`` (0.1) at the last, as in the paper. The cell is derived like DARTS' (argmax of
the logits; top-2 inputs for DARTS cells).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from nasforge.errors import ConfigError
from nasforge.oneshot.search import OneShotConfig, OneShotSearch
from nasforge.space.architecture import Architecture
from nasforge.supernet.batches import Batch
from nasforge.supernet.evaluation import preserved_batchnorm


@dataclass
class GdasConfig(OneShotConfig):
    """GDAS settings: :class:`OneShotConfig` plus the temperature range."""

    tau_max: float = 10.0
    tau_min: float = 0.1
    exclude_none: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.tau_min <= self.tau_max:
            raise ConfigError(
                f"GDAS needs 0 < tau_min <= tau_max, got tau_min={self.tau_min!r}, tau_max={self.tau_max!r}"
            )


def tau_at(epoch: int, epochs: int, tau_max: float, tau_min: float) -> float:
    """Linear temperature schedule: ``tau_max`` at epoch 0, ``tau_min`` at epoch ``epochs - 1``."""
    if epochs <= 1:
        return tau_max
    return tau_max - (tau_max - tau_min) * epoch / (epochs - 1)


class Gdas(OneShotSearch):
    """GDAS search on any space with a supernet."""

    method: ClassVar[str] = "gdas"
    config_class: ClassVar[type[OneShotConfig]] = GdasConfig
    config: GdasConfig

    def start_epoch(self, epoch: int) -> None:
        self.supernet.set_mode("gumbel")
        self.supernet.tau = tau_at(epoch, self.config.epochs, self.config.tau_max, self.config.tau_min)

    def train_step(self, batch: Batch, valid: Batch | None) -> dict[str, float]:
        assert valid is not None
        loss, acc = self.forward_loss(batch)
        self.weight_step(loss)
        with preserved_batchnorm(self.supernet):
            val_loss, val_acc = self.forward_loss(valid)
            grads = torch.autograd.grad(val_loss, self.supernet.arch_parameters(), allow_unused=True)
        self.arch_step([torch.zeros_like(p) if g is None else g
                        for p, g in zip(self.supernet.arch_parameters(), grads)])
        return {"loss": float(loss.detach()), "acc": acc, "val_loss": float(val_loss.detach()),
                "val_acc": val_acc}

    def end_epoch(self, epoch: int) -> dict[str, float]:
        return {"tau": self.supernet.tau}

    def finish(self) -> tuple[Architecture, dict[str, Any]]:
        options = {"exclude_none": True} if self.config.exclude_none else {}
        return self.supernet.derive(**options), {"tau_final": self.supernet.tau}


__all__ = ["Gdas", "GdasConfig", "tau_at"]
