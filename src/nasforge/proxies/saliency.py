"""Loss-gradient proxies: snip, grasp, grad_norm and fisher (all need images and labels).

Each differentiates the loss of one batch through the untrained network (in training mode, so
BatchNorm uses the batch's statistics) and sums a per-weight or per-channel saliency, as
Abdelfattah et al. (ICLR 2021, "Zero-Cost Proxies for Lightweight NAS") turned pruning-at-init
criteria into whole-network scores: the sums run over the weights of conv and linear layers.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nasforge.errors import ConfigError
from nasforge.proxies.registry import (
    INPUTS_AND_TARGETS,
    LossFn,
    logits_of,
    prunable_layers,
    prunable_weights,
    register_proxy,
)


def _loss(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor | None,
          loss_fn: LossFn) -> torch.Tensor:
    assert targets is not None  # compute_proxy checks this for every loss-based proxy
    model.train()
    return loss_fn(logits_of(model(inputs)), targets)


def _grads(loss: torch.Tensor, tensors: Sequence[torch.Tensor],
           create_graph: bool = False) -> list[torch.Tensor]:
    # A weight the loss does not depend on (an op on a dead path) gets a zero gradient.
    grads = torch.autograd.grad(loss, list(tensors), allow_unused=True, create_graph=create_graph)
    return [torch.zeros_like(t) if g is None else g for t, g in zip(tensors, grads)]


def _total(values: Sequence[torch.Tensor]) -> float:
    return float(sum((v.detach().double() for v in values), torch.zeros((), dtype=torch.float64)))


@register_proxy(
    "grad_norm",
    needs=INPUTS_AND_TARGETS,
    summary="sum over conv/linear layers of the L2 norm of the loss gradient of their weights",
    reference="Abdelfattah et al., ICLR 2021",
)
def grad_norm(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor | None,
              loss_fn: LossFn) -> float:
    """Sum of per-layer gradient norms ``||dL/dW||_2`` at initialization."""
    weights = prunable_weights(model)
    grads = _grads(_loss(model, inputs, targets, loss_fn), weights)
    return _total([g.norm().cpu() for g in grads])


@register_proxy(
    "snip",
    needs=INPUTS_AND_TARGETS,
    summary="sum |theta * dL/dtheta| (connection sensitivity) over conv/linear weights",
    reference="Lee et al., ICLR 2019 (SNIP); Abdelfattah et al., ICLR 2021",
)
def snip(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor | None,
         loss_fn: LossFn) -> float:
    """SNIP's connection sensitivity summed over the network.

    Lee et al. score a weight by ``|dL/dc|`` for a multiplicative mask ``c = 1`` on it, which
    equals ``|theta * dL/dtheta|``.
    """
    weights = prunable_weights(model)
    grads = _grads(_loss(model, inputs, targets, loss_fn), weights)
    return _total([(w * g).abs().sum().cpu() for w, g in zip(weights, grads)])


@register_proxy(
    "grasp",
    needs=INPUTS_AND_TARGETS,
    summary="sum of -theta * (H g) over conv/linear weights (gradient signal preservation)",
    reference="Wang et al., ICLR 2020 (GraSP); Abdelfattah et al., ICLR 2021",
)
def grasp(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor | None,
          loss_fn: LossFn) -> float:
    """GraSP summed over the network: ``sum(-theta * H g)`` with ``g = dL/dtheta``.

    ``H g`` (Hessian-gradient product) is the gradient of ``g_const . dL/dtheta`` where
    ``g_const`` is a first, detached gradient (temperature 1, as in Abdelfattah et al.).
    """
    weights = prunable_weights(model)
    g = [t.detach() for t in _grads(_loss(model, inputs, targets, loss_fn), weights)]
    g_graph = _grads(_loss(model, inputs, targets, loss_fn), weights, create_graph=True)
    z = sum(((a * b).sum() for a, b in zip(g, g_graph) if b.requires_grad),
            torch.zeros((), device=inputs.device))
    if not z.requires_grad:  # the loss does not depend on any weight twice over: H g = 0
        return 0.0
    try:
        hg = _grads(z, weights)
    except RuntimeError as exc:
        if "not implemented" not in str(exc):
            raise
        raise ConfigError(
            "proxy 'grasp' needs second derivatives (a Hessian-gradient product), which PyTorch "
            f"does not have for an operation of this model: {exc}"
        ) from exc
    return _total([(-w.detach() * h).sum().cpu() for w, h in zip(weights, hg)])


FISHER_MODES: tuple[str, ...] = ("per_weight", "per_channel")


def fisher(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor | None,
           loss_fn: LossFn, mode: str = "per_weight") -> float:
    """Fisher pruning saliency of every output channel of every conv/linear layer, summed.

    For channel ``k`` with activation ``a`` and loss gradient ``g``, the estimated loss increase
    of removing it is ``0.5 * mean_n (sum_{h,w} a * g)^2`` (an empirical Fisher approximation;
    Theis et al. 2018, Turner et al. 2020).

    ``mode="per_weight"`` (the default, the published quantity): Abdelfattah et al. (ICLR 2021)
    give every weight of a channel that channel's saliency and sum over weights, so a channel
    counts once per weight it has (``in_channels / groups * kernel area``; ``in_features`` for a
    linear layer). ``mode="per_channel"`` counts each channel once (registered as proxy
    ``fisher_per_channel``); the two rank NAS-Bench-201 cells alike but differ in scale.
    """
    if mode not in FISHER_MODES:
        raise ConfigError(f"fisher mode must be one of {FISHER_MODES}, got {mode!r}")
    # (layer, output) per call, so each activation knows how many weights its channels have.
    calls: list[tuple[nn.Module, torch.Tensor]] = []

    def keep(module: nn.Module, args: object, output: torch.Tensor) -> None:
        calls.append((module, output))

    hooks = [m.register_forward_hook(keep) for m in prunable_layers(model)]
    try:
        loss = _loss(model, inputs, targets, loss_fn)
    finally:
        for h in hooks:
            h.remove()
    if not calls:
        prunable_weights(model)  # raises the "no conv or linear layer" error
    grads = _grads(loss, [a for _, a in calls])
    parts = []
    for (layer, a), g in zip(calls, grads):
        per_channel = (a * g).flatten(2).sum(2) if a.dim() > 2 else a * g
        saliency = (0.5 * per_channel.pow(2).mean(0)).sum()
        if mode == "per_weight":
            weight = layer.weight
            assert isinstance(weight, torch.Tensor)
            saliency = saliency * weight[0].numel()  # weights per output channel
        parts.append(saliency.detach().cpu())
    return _total(parts)


register_proxy(
    "fisher",
    needs=INPUTS_AND_TARGETS,
    summary="sum over conv/linear weights of their channel's 0.5 * mean_n (sum_hw act * dL/dact)^2",
    reference="Theis et al., 2018; Turner et al., ICLR 2020; Abdelfattah et al., ICLR 2021",
)(fisher)


def fisher_per_channel(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor | None,
                       loss_fn: LossFn) -> float:
    """:func:`fisher` with each output channel counted once (``mode="per_channel"``)."""
    return fisher(model, inputs, targets, loss_fn, mode="per_channel")


register_proxy(
    "fisher_per_channel",
    needs=INPUTS_AND_TARGETS,
    summary="sum over conv/linear output channels of 0.5 * mean_n (sum_hw act * dL/dact)^2",
    reference="Theis et al., 2018; Turner et al., ICLR 2020 (per channel, not per weight)",
)(fisher_per_channel)


__all__ = ["FISHER_MODES", "fisher", "fisher_per_channel", "grad_norm", "grasp", "snip"]
