"""Accuracy under input perturbations: FGSM adversarial examples and Gaussian noise.

Perturbation sizes (``epsilon``, ``std``) are given on the *pixel* scale, i.e. in the units of the
images before any normalization (``epsilon=8/255`` is the usual CIFAR setting for pixels in
[0, 1]). When the batches come from a loader with a ``normalizer`` (a
:class:`~nasforge.data.BatchLoader` with the dataset's mean/std), the size is converted to the
network's normalized input scale with the per-channel std; without one, inputs are taken to be
on the pixel scale already and the size is used as given.

Clipping: a perturbed input is clipped to the valid pixel range only when that range is known:

* ``bounds=(low, high)`` passed by the caller (pixel scale, before normalization), or else
* the loader's ``pixel_range`` (a :class:`~nasforge.data.BatchLoader` over uint8 images:
  ``(0, 1)``; over float images: unknown).

With neither (plain tensors, a ``torch.utils.data.DataLoader``, float user data) nothing is
clipped: clipping to a guessed range would change clean inputs that lie outside it. A pixel that
already lies outside the known range (float rounding of normalized data) is never moved further
out by the clip, nor pulled in: the clip only stops the perturbation. So ``epsilon=0`` and
``std=0`` always give the clean accuracy.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from nasforge.errors import ConfigError
from nasforge.train.evaluate import as_logits, model_device

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]
#: ``(low, high)`` valid pixel values on the pixel scale (before normalization).
Bounds = tuple[float, float]


class _Geometry:
    """How pixel-scale sizes and bounds map to the network's input scale for one data source."""

    def __init__(self, data: Batches, bounds: Bounds | None) -> None:
        if bounds is not None:
            try:
                lo, hi = (float(b) for b in bounds)
            except (TypeError, ValueError):
                lo = hi = math.nan  # not two numbers: reported below
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise ConfigError(
                    f"bounds must be two finite numbers (low, high) with low < high; got {bounds!r}"
                )
            self.bounds: Bounds | None = (lo, hi)
        else:
            known = getattr(data, "pixel_range", None)
            self.bounds = (float(known[0]), float(known[1])) if known is not None else None
        self.norm = getattr(data, "normalizer", None)

    def scale(self, x: torch.Tensor) -> torch.Tensor | float:
        """Factor from a pixel-scale size to the input scale (1/std per channel, or 1)."""
        if self.norm is None:
            return 1.0
        return self.norm.inv_std.to(x.device)

    def clip(self, x: torch.Tensor, perturbed: torch.Tensor) -> torch.Tensor:
        """``perturbed`` clipped to the valid range in input space (unchanged when unknown).

        The limits are widened to include the clean value ``x``, so the clip never moves a pixel
        that was already outside the range: it only stops the perturbation.
        """
        if self.bounds is None:
            return perturbed
        lo, hi = self.bounds
        if self.norm is not None:
            mean, inv_std = self.norm.mean.to(x.device), self.norm.inv_std.to(x.device)
            low, high = (lo - mean) * inv_std, (hi - mean) * inv_std
            low, high = torch.minimum(low, x), torch.maximum(high, x)
        else:
            low, high = x.clamp(max=lo), x.clamp(min=hi)
        return torch.max(torch.min(perturbed, high), low)


def _limited(data: Batches, max_batches: int | None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for i, batch in enumerate(data):
        if max_batches is not None and i >= max_batches:
            return
        yield batch


def fgsm_accuracy(model: nn.Module, data: Batches, epsilon: float = 8 / 255,
                  device: str | torch.device | None = None,
                  max_batches: int | None = None, *,
                  bounds: Bounds | None = None) -> float:
    """Accuracy (%) on Fast Gradient Sign Method examples (Goodfellow et al., ICLR 2015):
    ``x + epsilon * sign(grad_x loss)``, with ``epsilon`` on the pixel scale.

    ``bounds``: the valid pixel range ``(low, high)`` before normalization; defaults to the
    loader's ``pixel_range`` (see the module docstring), and with neither nothing is clipped.
    ``max_batches`` limits the batches used.
    """
    if not epsilon >= 0:
        raise ConfigError(f"epsilon must be >= 0; got {epsilon!r}")
    geometry = _Geometry(data, bounds)
    dev = model_device(model, device)
    was_training = model.training
    model.eval()
    correct, n = torch.zeros((), dtype=torch.long, device=dev), 0
    try:
        for x, y in _limited(data, max_batches):
            x, y = x.to(dev), y.to(dev)
            x = x.detach().clone().requires_grad_(True)
            loss = F.cross_entropy(as_logits(model(x)).float(), y)
            (grad,) = torch.autograd.grad(loss, x)
            x = x.detach()
            adv = geometry.clip(x, x + epsilon * geometry.scale(x) * grad.sign())
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
                   max_batches: int | None = None, *,
                   bounds: Bounds | None = None) -> float:
    """Accuracy (%) with i.i.d. Gaussian noise of standard deviation ``std`` (pixel scale) added
    to every input (the "Gaussian noise" corruption of Hendrycks & Dietterich, ICLR 2019).

    The noise is drawn from a CPU generator seeded with ``seed`` (the same noise on every
    device); ``bounds`` and ``max_batches`` as for :func:`fgsm_accuracy`.
    """
    if not std >= 0:
        raise ConfigError(f"noise std must be >= 0; got {std!r}")
    geometry = _Geometry(data, bounds)
    dev = model_device(model, device)
    g = torch.Generator().manual_seed(int(seed))
    was_training = model.training
    model.eval()
    correct, n = torch.zeros((), dtype=torch.long, device=dev), 0
    try:
        with torch.no_grad():
            for x, y in _limited(data, max_batches):
                x, y = x.to(dev), y.to(dev)
                dtype = x.dtype if x.is_floating_point() else torch.float32
                noise = torch.randn(x.shape, generator=g, dtype=dtype).to(dev)
                noisy = geometry.clip(x, x + std * geometry.scale(x) * noise)
                correct += (as_logits(model(noisy)).argmax(1) == y).sum()
                n += int(y.shape[0])
    finally:
        model.train(was_training)
    if n == 0:
        raise ConfigError("no batches to measure robustness on")
    return 100.0 * correct.item() / n
