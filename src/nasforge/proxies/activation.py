"""Activation proxies of Mellor et al.: jacob_cov and naswot (images needed, no labels).

Both ask how differently an untrained network treats the images of one batch: a network that
maps different images to different linear regions (or Jacobians) tends to train to a better
accuracy. Both run the network in training mode (BatchNorm on batch statistics), as the papers
did, and need a batch of at least two images.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from nasforge.errors import ConfigError
from nasforge.proxies.registry import INPUTS, LossFn, logits_of, register_proxy

# Activations whose binary code ``x > 0`` names the linear piece a unit is on.
_RECTIFIERS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU)
# Regularizer of the eigenvalues in jacob_cov (Mellor et al., arXiv:2006.04647v1).
_JACOB_K = 1e-5


def _batch_of_two(name: str, inputs: torch.Tensor) -> None:
    if inputs.shape[0] < 2:
        raise ConfigError(
            f"proxy {name!r} compares the images of a batch, so it needs at least 2; "
            f"got a batch of {inputs.shape[0]}"
        )


@register_proxy(
    "jacob_cov",
    needs=INPUTS,
    summary="-sum(log(v+k) + 1/(v+k)) over eigenvalues v of the correlation of input Jacobians",
    reference="Mellor et al., arXiv:2006.04647v1 (2020); Abdelfattah et al., ICLR 2021",
)
def jacob_cov(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor | None,
              loss_fn: LossFn) -> float:
    """Score of the correlation between the per-image Jacobians ``d sum(f(x)) / dx``.

    Uncorrelated Jacobians (eigenvalues near one) score highest. NaN when some image's Jacobian
    is constant (its correlation is undefined, e.g. a network whose output ignores the input).
    """
    _batch_of_two("jacob_cov", inputs)
    x = inputs.detach().clone().requires_grad_(True)
    model.train()
    (jac,) = torch.autograd.grad(logits_of(model(x)).sum(), x, allow_unused=True)
    if jac is None:
        return math.nan
    flat = jac.reshape(jac.shape[0], -1).detach().double().cpu().numpy()
    if not np.isfinite(flat).all() or (flat.std(axis=1) == 0).any():
        return math.nan
    eig = np.linalg.eigvalsh(np.corrcoef(flat))
    return float(-np.sum(np.log(eig + _JACOB_K) + 1.0 / (eig + _JACOB_K)))


@register_proxy(
    "naswot",
    needs=INPUTS,
    summary="log|K_H|, K_H[i,j] = number of ReLU units on which images i and j agree (x > 0)",
    reference="Mellor et al., ICML 2021 (Neural Architecture Search without Training)",
)
def naswot(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor | None,
           loss_fn: LossFn) -> float:
    """Log-determinant of the Hamming-agreement kernel of the binary ReLU activation codes.

    Each image gets one bit per rectifier unit (its input is > 0). ``K_H[i, j]`` counts the bits
    images ``i`` and ``j`` share; ``log det K_H`` is high when images fall into different linear
    regions. ``-inf`` when two images have identical codes (``K_H`` singular). Only ``nn.ReLU``,
    ``nn.ReLU6`` and ``nn.LeakyReLU`` modules are seen (functional ``relu`` calls are not).
    """
    _batch_of_two("naswot", inputs)
    units = [m for m in model.modules() if isinstance(m, _RECTIFIERS)]
    if not units:
        raise ConfigError(
            "proxy 'naswot' reads the binary codes of rectifier units, but the model has no "
            "nn.ReLU / nn.ReLU6 / nn.LeakyReLU module"
        )
    n = inputs.shape[0]
    kernel = torch.zeros((n, n), dtype=torch.float64, device=inputs.device)

    def record(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        nonlocal kernel
        code = (args[0].detach().reshape(n, -1) > 0).double()
        # Agreements = both on + both off = c c^T + (1 - c)(1 - c)^T.
        kernel = kernel + code @ code.T + (1.0 - code) @ (1.0 - code).T

    # Pre-hooks see a unit's input before an in-place rectifier could overwrite it. Training mode
    # updates BatchNorm's running statistics: harmless, this is compute_proxy's copy.
    hooks = [m.register_forward_pre_hook(record) for m in units]
    try:
        model.train()
        with torch.no_grad():
            model(inputs)
    finally:
        for h in hooks:
            h.remove()
    sign, logdet = torch.linalg.slogdet(kernel.cpu())
    return float(logdet) if float(sign) > 0 else -math.inf


__all__ = ["jacob_cov", "naswot"]
