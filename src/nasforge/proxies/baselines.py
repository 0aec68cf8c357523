"""Size baselines: ``params`` and ``flops`` as proxies (both data-free).

Abdelfattah et al. (ICLR 2021) compare every proxy with these two, because on many benchmarks
bigger networks simply train to higher accuracy: a proxy is only useful where it beats them. The
counts come from :mod:`nasforge.metrics`, so they match the ``params``/``flops`` metrics reported
elsewhere in nasforge.
"""

from __future__ import annotations

import torch
from torch import nn

from nasforge.metrics import count_flops, count_params
from nasforge.proxies.registry import DATA_FREE, LossFn, register_proxy


@register_proxy(
    "params",
    needs=DATA_FREE,
    summary="number of parameters",
    reference="baseline in Abdelfattah et al., ICLR 2021",
    mutates=False,
)
def params(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor | None,
           loss_fn: LossFn) -> float:
    """Parameter count (each shared tensor once)."""
    return float(count_params(model))


@register_proxy(
    "flops",
    needs=DATA_FREE,
    summary="FLOPs of one forward pass of one input (2 per multiply-add)",
    reference="baseline in Abdelfattah et al., ICLR 2021",
    mutates=False,
)
def flops(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor | None,
          loss_fn: LossFn) -> float:
    """FLOPs of one input of ``inputs``' shape (eval mode, no gradients: the model is unchanged)."""
    return float(count_flops(model, tuple(inputs.shape[1:]), batch_size=1, device=inputs.device))


__all__ = ["flops", "params"]
