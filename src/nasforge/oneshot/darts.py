"""DARTS: Differentiable Architecture Search (Liu, Simonyan & Yang, ICLR 2019).

The supernet mixes every edge's candidate ops with ``softmax(alpha)``. Bilevel optimization
alternates, per step, an architecture step on a validation batch (Adam on ``alpha``) and a weight
step on a training batch (SGD). First order ignores how the weights depend on ``alpha``; second order
differentiates through one virtual SGD step ``w' = w - xi * grad_w L_train(w, alpha)`` (paper eq. 7),
with the Hessian-vector product approximated by central finite differences (eq. 8):

    grad_alpha L_val(w', alpha)
        - xi * [grad_alpha L_train(w+, alpha) - grad_alpha L_train(w-, alpha)] / (2 eps),
    w+- = w +- eps * grad_w' L_val(w', alpha),  eps = 0.01 / ||grad_w' L_val(w', alpha)||.

As in the paper's code, ``xi`` is the current weight learning rate and the virtual step includes the
optimizer's momentum and weight decay. Architecture steps leave BatchNorm running statistics as the
weight steps made them. The architecture is discretized by the supernet's ``derive`` (DARTS cells:
the two strongest non-``none`` inputs per node; NAS-Bench-201: argmax per edge over all ops).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from nasforge.errors import ConfigError
from nasforge.oneshot.search import OneShotConfig, OneShotSearch
from nasforge.space.architecture import Architecture
from nasforge.supernet.batches import Batch
from nasforge.supernet.evaluation import preserved_batchnorm

HVP_R = 0.01
"""The finite-difference scale of DARTS: eps = 0.01 / ||grad||.

With ReLU networks the gradient jumps where a pre-activation crosses zero, so perturbing the
weights by 0.01 (in norm) makes the difference quotient a coarse estimate of the exact product; a
smaller ``hvp_r`` (e.g. 1e-6 in float64) recovers the exact unrolled gradient."""


@dataclass
class DartsConfig(OneShotConfig):
    """DARTS settings: :class:`OneShotConfig` plus ``order`` (1 or 2), the finite-difference scale
    ``hvp_r`` of second order (eps = hvp_r / ||grad||) and ``exclude_none`` (derive NAS-Bench-201
    cells without ``none``; DARTS cells never use it)."""

    order: int = 1
    hvp_r: float = HVP_R
    exclude_none: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.order not in (1, 2) or isinstance(self.order, bool):
            raise ConfigError(f"DARTS order must be 1 or 2, got {self.order!r}")
        if isinstance(self.hvp_r, bool) or not isinstance(self.hvp_r, (int, float)) or not self.hvp_r > 0:
            raise ConfigError(f"hvp_r must be a positive number, got {self.hvp_r!r}")


class Darts(OneShotSearch):
    """DARTS search (first or second order) on any space with a supernet."""

    method: ClassVar[str] = "darts"
    config_class: ClassVar[type[OneShotConfig]] = DartsConfig
    config: DartsConfig

    def start_epoch(self, epoch: int) -> None:
        self.supernet.set_mode("softmax")

    def train_step(self, batch: Batch, valid: Batch | None) -> dict[str, float]:
        assert valid is not None
        with preserved_batchnorm(self.supernet):
            if self.config.order == 1:
                grads, val_loss = self.first_order_grads(valid)
            else:
                grads, val_loss = self.second_order_grads(batch, valid)
        self.arch_step(grads)
        loss, acc = self.forward_loss(batch)
        self.weight_step(loss)
        return {"loss": float(loss.detach()), "acc": acc, "val_loss": val_loss}

    # ------------------------------------------------------------------ architecture gradients
    def first_order_grads(self, valid: Batch) -> tuple[list[torch.Tensor], float]:
        """``grad_alpha L_val(w, alpha)`` and the validation loss."""
        loss, _ = self.forward_loss(valid)
        grads = torch.autograd.grad(loss, self.supernet.arch_parameters())
        return list(grads), float(loss.detach())

    def second_order_grads(self, batch: Batch, valid: Batch) -> tuple[list[torch.Tensor], float]:
        """The unrolled architecture gradient of DARTS (eq. 7 and 8) and the validation loss.

        Weights are changed in place for the virtual step and the finite differences, then put back
        exactly.
        """
        net = self.supernet
        weights = net.weight_parameters()
        arch = net.arch_parameters()
        xi = self.w_lr
        group = self.w_opt.param_groups[0]
        momentum, decay = float(group["momentum"]), float(group["weight_decay"])
        original = [w.detach().clone() for w in weights]

        loss, _ = self.forward_loss(batch)
        g_train = _grads(loss, weights)
        with torch.no_grad():
            for w, g in zip(weights, g_train):
                step = g + decay * w
                buf = self.w_opt.state.get(w, {}).get("momentum_buffer")
                if buf is not None:
                    step = step + momentum * buf
                w.sub_(xi * step)
        val_loss, _ = self.forward_loss(valid)
        g_all = _grads(val_loss, arch + weights)
        d_alpha, d_w = g_all[: len(arch)], g_all[len(arch):]
        hessian = self._hessian_vector(batch, weights, original, d_w)
        grads = [da - xi * h for da, h in zip(d_alpha, hessian)]
        return grads, float(val_loss.detach())

    def _hessian_vector(
        self, batch: Batch, weights: list[nn.Parameter], original: list[torch.Tensor],
        vector: list[torch.Tensor],
    ) -> list[torch.Tensor]:
        """``(grad_alpha L_train(w+) - grad_alpha L_train(w-)) / (2 eps)``; restores ``w``."""
        arch = self.supernet.arch_parameters()
        norm = torch.sqrt(sum((v.double() ** 2).sum() for v in vector))  # type: ignore[arg-type]
        if not torch.isfinite(norm) or float(norm) == 0.0:
            # No signal to follow: the implicit term vanishes.
            self._set(weights, original, vector, 0.0)
            return [torch.zeros_like(a) for a in arch]
        eps = self.config.hvp_r / float(norm)
        self._set(weights, original, vector, eps)
        loss_p, _ = self.forward_loss(batch)
        g_plus = torch.autograd.grad(loss_p, arch)
        self._set(weights, original, vector, -eps)
        loss_n, _ = self.forward_loss(batch)
        g_minus = torch.autograd.grad(loss_n, arch)
        self._set(weights, original, vector, 0.0)
        return [(gp - gn) / (2 * eps) for gp, gn in zip(g_plus, g_minus)]

    @staticmethod
    @torch.no_grad()
    def _set(weights: list[nn.Parameter], original: list[torch.Tensor], vector: list[torch.Tensor],
             scale: float) -> None:
        for w, w0, v in zip(weights, original, vector):
            w.copy_(w0)
            if scale:
                w.add_(v, alpha=scale)

    def finish(self) -> tuple[Architecture, dict[str, Any]]:
        options = {"exclude_none": True} if self.config.exclude_none else {}
        return self.supernet.derive(**options), {"order": self.config.order}


def _grads(loss: torch.Tensor, params: list[nn.Parameter]) -> list[torch.Tensor]:
    """Gradients of ``loss`` for ``params``; zeros for parameters the loss does not use."""
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]


__all__ = ["HVP_R", "Darts", "DartsConfig"]
