"""Accuracy under input perturbations: FGSM adversarial examples and Gaussian noise.

Perturbation sizes are given on the [0, 1] pixel scale (``epsilon=8/255`` is the usual CIFAR
setting) and converted to the network's normalized input scale with the loader's per-channel std;
perturbed inputs are clipped to the valid pixel range [0, 1] in that same normalized space.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from nasforge.errors import ConfigError
from nasforge.train.evaluate import as_logits, model_device

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


def _scale_and_bounds(data: Batches, channels: int, device: torch.device
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(1/std, low, high) per channel for the loader's normalization (identity without one)."""
    norm = getattr(data, "normalizer", None)
    if norm is None:
        one = torch.ones(1, channels, 1, 1, device=device)
        return one, torch.zeros_like(one), one
    inv_std = norm.inv_std.to(device)
    mean = norm.mean.to(device)
    return inv_std, (0.0 - mean) * inv_std, (1.0 - mean) * inv_std


def _limited(data: Batches, max_batches: int | None) -> Batches:
    for i, batch in enumerate(data):
        if max_batches is not None and i >= max_batches:
            return
        yield batch


def fgsm_accuracy(model: nn.Module, data: Batches, epsilon: float = 8 / 255,
                  device: str | torch.device | None = None,
                  max_batches: int | None = None) -> float:
    """Accuracy (%) on Fast Gradient Sign Method examples (Goodfellow et al., ICLR 2015):
    ``x + epsilon * sign(grad_x loss)``, with ``epsilon`` on the [0, 1] pixel scale."""
    if epsilon < 0:
        raise ConfigError(f"epsilon must be >= 0; got {epsilon!r}")
    dev = model_device(model, device)
    was_training = model.training
    model.eval()
    correct, n = torch.zeros((), dtype=torch.long, device=dev), 0
    try:
        for x, y in _limited(data, max_batches):
            x, y = x.to(dev), y.to(dev)
            scale, low, high = _scale_and_bounds(data, x.shape[1], dev)
            x = x.detach().clone().requires_grad_(True)
            loss = F.cross_entropy(as_logits(model(x)).float(), y)
            (grad,) = torch.autograd.grad(loss, x)
            adv = torch.max(torch.min(x + epsilon * scale * grad.sign(), high), low).detach()
            with torch.no_grad():
                correct += (as_logits(model(adv)).argmax(1) == y).sum()
            n += int(y.shape[0])
    finally:
        model.train(was_training)
    if n == 0:
        raise ConfigError("no batches to measure robustness on")
    return 100.0 * correct.item() / n


def noise_accuracy(model: nn.Module, data: Batches, std: float = 0.1,
                   device: str | torch.device | None = None, seed: int = 0,
                   max_batches: int | None = None) -> float:
    """Accuracy (%) with i.i.d. Gaussian noise of standard deviation ``std`` (pixel scale) added
    to every input (the "Gaussian noise" corruption of Hendrycks & Dietterich, ICLR 2019)."""
    if std < 0:
        raise ConfigError(f"noise std must be >= 0; got {std!r}")
    dev = model_device(model, device)
    g = torch.Generator().manual_seed(int(seed))
    was_training = model.training
    model.eval()
    correct, n = torch.zeros((), dtype=torch.long, device=dev), 0
    try:
        with torch.no_grad():
            for x, y in _limited(data, max_batches):
                x, y = x.to(dev), y.to(dev)
                scale, low, high = _scale_and_bounds(data, x.shape[1], dev)
                noise = torch.randn(x.shape, generator=g).to(dev)
                noisy = torch.max(torch.min(x + std * scale * noise, high), low)
                correct += (as_logits(model(noisy)).argmax(1) == y).sum()
                n += int(y.shape[0])
    finally:
        model.train(was_training)
    if n == 0:
        raise ConfigError("no batches to measure robustness on")
    return 100.0 * correct.item() / n
