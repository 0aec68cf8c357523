"""SynFlow, the data-free proxy (Tanaka et al., NeurIPS 2020, "Pruning neural networks without any
data by iteratively conserving synaptic flow"; used as a NAS proxy by Abdelfattah et al., ICLR 2021,
"Zero-Cost Proxies for Lightweight NAS").

The network is "linearized": every parameter is replaced by its absolute value, BatchNorm is
removed (its batch statistics would make the score depend on data), and an all-ones input of
batch size one goes through it in float64 (products of many weights overflow float32 on deep
networks). With ``R = sum(f(1))`` the score is ``sum |theta * dR/dtheta|`` over the weights of the
conv and linear layers. It needs no data: only the input shape.

The computation runs on a throw-away copy of the model (see :func:`~nasforge.proxies.registry.
compute_proxy`), which is the same as Tanaka et al.'s "take absolute values, score, restore the
signs" but leaves even the model's dtype and BatchNorm layers untouched.
"""

from __future__ import annotations

import torch
from torch import nn

from nasforge.ops.cells import strip_batchnorm
from nasforge.proxies.registry import (
    DATA_FREE,
    LossFn,
    logits_of,
    prunable_weights,
    register_proxy,
)


@register_proxy(
    "synflow",
    needs=DATA_FREE,
    summary="sum |theta * dR/dtheta|, R = sum of outputs of the |theta| network on an all-ones "
    "input (no BatchNorm, float64)",
    reference="Tanaka et al., NeurIPS 2020; Abdelfattah et al., ICLR 2021",
)
def synflow(
    model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor | None, loss_fn: LossFn
) -> float:
    """SynFlow score of ``model`` (changed in place: call through ``compute_proxy``)."""
    strip_batchnorm(model)
    # eval(): without BatchNorm this only turns off dropout-like randomness, which the score
    # must not depend on.
    model.double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.abs_()
    ones = torch.ones((1, *inputs.shape[1:]), dtype=torch.float64, device=inputs.device)
    weights = prunable_weights(model)
    total = logits_of(model(ones)).sum()
    grads = torch.autograd.grad(total, weights, allow_unused=True)
    score = torch.zeros((), dtype=torch.float64, device=inputs.device)
    with torch.no_grad():
        for w, g in zip(weights, grads):
            if g is not None:  # a weight the output does not depend on scores zero
                score += (w * g).abs().sum()
    return float(score)


__all__ = ["synflow"]
