"""Mixed operations: one edge of a supernet holding every candidate op of the operation registry.

A :class:`MixedOp` computes its edge in one of three ways, chosen per forward by the supernet that
owns it (it sets :attr:`MixedOp.selection` before each forward pass):

- :class:`Weighted` — the continuous relaxation of DARTS (Liu et al., ICLR 2019): every candidate
  is computed and the outputs are summed with the given weights (``softmax(alpha)``).
- :class:`Sampled` with a ``gate`` — GDAS (Dong & Yang, CVPR 2019): only the sampled op is computed;
  its output is multiplied by the straight-through hard weight, whose value is exactly 1 but whose
  gradient reaches every architecture logit.
- :class:`Sampled` without a gate — single path (SPOS, Guo et al., ECCV 2020; ENAS; evaluation of one
  architecture with inherited weights): only the chosen op is computed, nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from nasforge.errors import ConfigError, allowed


@dataclass(frozen=True)
class Weighted:
    """Sum every candidate's output weighted by ``weights`` (one entry per candidate, in order).

    ``edge`` (a 0-d tensor), when given, multiplies the whole edge output: PC-DARTS' edge
    normalization weight of this edge among its node's inputs.
    """

    weights: torch.Tensor
    edge: torch.Tensor | None = None


@dataclass(frozen=True)
class Sampled:
    """Compute only candidate ``index``; multiply by ``gate`` (a 0-d tensor) when given."""

    index: int
    gate: torch.Tensor | None = None


Selection = Weighted | Sampled


class MixedOp(nn.Module):
    """One supernet edge: the candidate ops (same modules as derived networks) under one decision.

    ``key`` names the architecture decision this edge follows; several edges (e.g. the same edge in
    every cell of a NAS-Bench-201 network) share a key and so share one set of architecture weights.
    """

    def __init__(self, key: str, candidates: Mapping[str, nn.Module]) -> None:
        super().__init__()
        if not candidates:
            raise ConfigError(f"mixed op {key!r} needs at least one candidate op")
        self.key = key
        self.names: tuple[str, ...] = tuple(candidates)
        self.candidates = nn.ModuleDict(dict(candidates))
        self.selection: Selection | None = None

    def index(self, op: str) -> int:
        """Position of candidate ``op`` (clear error naming the allowed candidates)."""
        try:
            return self.names.index(op)
        except ValueError:
            raise ConfigError(
                f"op {op!r} is not a candidate of edge {self.key!r}; allowed: {allowed(self.names)}"
            ) from None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sel = self.selection
        if sel is None:
            raise ConfigError(
                f"mixed op {self.key!r} has no selection: run it through its Supernet's forward"
            )
        out = self.compute(x, sel)
        if isinstance(sel, Weighted) and sel.edge is not None:
            out = out * sel.edge
        return out

    def compute(self, x: torch.Tensor, sel: Selection) -> torch.Tensor:
        """The edge's output under ``sel`` (before any edge-normalization weight)."""
        if isinstance(sel, Sampled):
            out: torch.Tensor = self.candidates[self.names[sel.index]](x)
            return out if sel.gate is None else out * sel.gate
        return self.mix(x, sel.weights)

    def mix(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """``sum_k weights[k] * candidate_k(x)`` (DARTS' continuous relaxation)."""
        if weights.shape != (len(self.names),):
            raise ConfigError(
                f"edge {self.key!r} has {len(self.names)} candidates but got weights of shape "
                f"{tuple(weights.shape)}"
            )
        total: torch.Tensor | None = None
        for w, name in zip(weights, self.names):
            term = w * self.candidates[name](x)
            total = term if total is None else total + term
        assert total is not None
        return total


def gumbel_hard(
    logits: torch.Tensor, tau: float, generator: torch.Generator
) -> tuple[int, torch.Tensor]:
    """Hard Gumbel-softmax sample of one categorical with a straight-through gradient (GDAS).

    Returns the sampled index and the hard weight vector ``one_hot - stop_grad(p) + p`` with
    ``p = softmax((log_softmax(logits) + g) / tau)``: its forward value is one-hot while its
    gradient is that of the soft sample (Jang et al., ICLR 2017; Dong & Yang, CVPR 2019). The
    Gumbel noise ``g = -log(-log U)`` is drawn on the CPU from ``generator`` so that a run is
    repeatable on every device.
    """
    if tau <= 0:
        raise ConfigError(f"Gumbel temperature must be positive, got {tau!r}")
    u = torch.rand(logits.shape, generator=generator, dtype=torch.float64)
    tiny = torch.finfo(torch.float64).tiny
    g = -torch.log(-torch.log(u.clamp(min=tiny, max=1.0 - 1e-12)))
    g = g.to(device=logits.device, dtype=logits.dtype)
    probs = torch.softmax((torch.log_softmax(logits, dim=-1) + g) / tau, dim=-1)
    index = int(probs.argmax().item())
    one_hot = torch.zeros_like(probs)
    one_hot[index] = 1.0
    return index, one_hot - probs.detach() + probs


__all__ = ["MixedOp", "Sampled", "Selection", "Weighted", "gumbel_hard"]
