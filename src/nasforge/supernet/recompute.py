"""Activation checkpointing of supernet parts: keep their inputs, recompute the rest in backward.

A supernet in ``softmax`` mode computes every candidate of every edge, and autograd keeps every
intermediate tensor of every candidate until the backward pass: that is what makes a DARTS step
need gigabytes. Checkpointing a part (``torch.utils.checkpoint``, non-reentrant) keeps only the
part's inputs during the forward pass and runs the part again during the backward pass to get the
tensors its gradient needs: one more forward pass of compute for a much lower peak.

Levels (:data:`LEVELS`):

- ``"none"``: plain autograd;
- ``"mixed_op"``: each mixed op (every candidate of one edge) is a checkpointed part; the cell
  keeps only its node states;
- ``"cell"``: each cell is a part (the supernet says which modules are its cells); only the cells'
  inputs are kept, and one cell's activations exist at a time during the backward pass.

Two side effects of running a part twice are handled here:

- The mixed ops read their selection (mixing weights, sampled op, gate) from an attribute that the
  supernet clears after the forward pass; the selections seen in the first run are put back for the
  recomputation, so it computes exactly the same function with the same architecture tensors
  (their gradients flow through the tensors of the first run).
- BatchNorm layers in training mode update their running statistics on every call; the
  recomputation would update them a second time. The statistics of the part's BatchNorms are saved
  before and restored after the recomputation, so a checkpointed step leaves them exactly as an
  uncheckpointed one.

Random numbers (dropout, drop-path) are replayed by ``torch.utils.checkpoint`` itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from nasforge.errors import ConfigError, allowed
from nasforge.supernet.mixed import MixedOp

LEVELS: tuple[str, ...] = ("none", "mixed_op", "cell")
"""Checkpointing levels of a supernet (see the module doc)."""

_BN = nn.modules.batchnorm._BatchNorm


def check_level(level: object) -> str:
    """``level`` if it is one of :data:`LEVELS`, else a :class:`ConfigError` naming them."""
    if not isinstance(level, str) or level not in LEVELS:
        raise ConfigError(f"unknown checkpointing level {level!r}; allowed: {allowed(LEVELS)}")
    return level


class Checkpointed:
    """The ``forward`` of one checkpointed module (installed as the instance's ``forward``).

    Keeping the module's own class and attribute names means its ``state_dict`` keys, hooks and
    ``isinstance`` checks are unchanged; :func:`uncheckpoint` removes it again.
    """

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self.mixed: list[MixedOp] = [m for m in module.modules() if isinstance(m, MixedOp)]
        self.batchnorms: list[nn.Module] = [m for m in module.modules() if isinstance(m, _BN)]

    def _plain(self, *args: Any, **kwargs: Any) -> Any:
        # The class's forward, not the instance attribute (which is this object).
        return type(self.module).forward(self.module, *args, **kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not (torch.is_grad_enabled() and self.module.training):
            return self._plain(*args, **kwargs)
        selections = [op.selection for op in self.mixed]
        calls = 0

        def run(*inner: Any, **inner_kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            if calls == 1:
                return self._plain(*inner, **inner_kwargs)
            return self._recompute(selections, inner, inner_kwargs)

        return checkpoint(run, *args, use_reentrant=False, **kwargs)

    def _recompute(self, selections: Sequence[Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        current = [op.selection for op in self.mixed]
        stats = [
            (bn, {k: b.clone() for k, b in bn.named_buffers(recurse=False) if b is not None}) for bn in self.batchnorms
        ]
        for op, sel in zip(self.mixed, selections):
            op.selection = sel
        try:
            return self._plain(*args, **kwargs)
        finally:
            for op, sel in zip(self.mixed, current):
                op.selection = sel
            with torch.no_grad():
                for bn, buffers in stats:
                    for k, b in buffers.items():
                        getattr(bn, k).copy_(b)


def checkpoint_modules(modules: Sequence[nn.Module]) -> None:
    """Make each of ``modules`` a checkpointed part (idempotent)."""
    for module in modules:
        if not isinstance(module.__dict__.get("forward"), Checkpointed):
            module.forward = Checkpointed(module)


def uncheckpoint(model: nn.Module) -> None:
    """Remove checkpointing from every module of ``model``."""
    for module in model.modules():
        if isinstance(module.__dict__.get("forward"), Checkpointed):
            del module.__dict__["forward"]


__all__ = ["LEVELS", "Checkpointed", "check_level", "checkpoint_modules", "uncheckpoint"]
