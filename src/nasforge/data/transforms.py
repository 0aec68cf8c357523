"""Batch transforms on tensors: scaling, shape adaptation, augmentation and normalization.

Everything works on a whole batch (B, C, H, W) on the batch's device; torchvision is not needed.
The training augmentation for CIFAR is the standard one of ResNet/DARTS/NAS-Bench-201 training:
random crop with 4 pixels of zero padding, then a horizontal flip with probability 1/2.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nasforge.errors import ConfigError

AUGMENTATIONS = ("none", "crop_flip", "crop", "flip")


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float in [0, 1]; float images unchanged."""
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()


def adapt_shape(x: torch.Tensor, image_size: int | None = None, channels: int | None = None,
                mode: str = "pad") -> torch.Tensor:
    """Make images fit a network built for another input shape.

    ``image_size``: pad with zeros (``mode="pad"``, e.g. 28 -> 32 adds 2 pixels per side) or
    resize bilinearly (``mode="resize"``). ``channels``: repeat a single channel (gray -> RGB).
    """
    if image_size is not None and (x.shape[-2] != image_size or x.shape[-1] != image_size):
        if mode == "pad":
            dh, dw = image_size - x.shape[-2], image_size - x.shape[-1]
            if dh < 0 or dw < 0:
                raise ConfigError(
                    f"cannot pad {x.shape[-2]}x{x.shape[-1]} images to {image_size}; "
                    "use mode='resize' to shrink"
                )
            x = F.pad(x, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))
        elif mode == "resize":
            x = F.interpolate(x, size=(image_size, image_size), mode="bilinear",
                              align_corners=False)
        else:
            raise ConfigError(f"unknown resize mode {mode!r}; allowed: 'pad', 'resize'")
    if channels is not None and x.shape[1] != channels:
        if x.shape[1] != 1:
            raise ConfigError(f"can only repeat 1-channel images to {channels}; got {x.shape[1]}")
        x = x.expand(-1, channels, -1, -1)
    return x


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Per-sample random crop of the original size from the zero-padded batch."""
    b, _, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    oy = torch.randint(0, 2 * padding + 1, (b,), generator=generator).to(x.device)
    ox = torch.randint(0, 2 * padding + 1, (b,), generator=generator).to(x.device)
    rows = (oy[:, None] + torch.arange(h, device=x.device))[:, :, None]  # (B, H, 1)
    cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, :]  # (B, 1, W)
    batch = torch.arange(b, device=x.device)[:, None, None]
    # Advanced indexing around the channel slice puts the indexed dims first: (B, H, W, C).
    return padded[batch, :, rows, cols].permute(0, 3, 1, 2)


def random_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Flip each image left-right with probability 1/2."""
    flip = (torch.rand(x.shape[0], generator=generator) < 0.5).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def augment(
    x: torch.Tensor, kind: str, generator: torch.Generator, padding: int = 4
) -> torch.Tensor:
    """Apply the training augmentation ``kind`` (one of :data:`AUGMENTATIONS`)."""
    if kind == "none":
        return x
    if kind not in AUGMENTATIONS:
        raise ConfigError(f"unknown augmentation {kind!r}; allowed: {', '.join(AUGMENTATIONS)}")
    if kind in ("crop_flip", "crop"):
        x = random_crop(x, padding, generator)
    if kind in ("crop_flip", "flip"):
        x = random_flip(x, generator)
    return x


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel, with the statistics kept on the batch's device.

    A module, so the same normalization the loaders apply in training can sit inside a deployed
    model (:class:`nasforge.train.Deployable`): the exported graph then takes pixels in [0, 1].
    The statistics are non-persistent buffers: they move with ``.to()`` but stay out of
    ``state_dict`` (the metadata beside the weights records them).
    """

    mean: torch.Tensor
    inv_std: torch.Tensor
    shift: torch.Tensor

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1),
                             persistent=False)
        self.register_buffer("inv_std",
                             1.0 / torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1),
                             persistent=False)
        self.register_buffer("shift", -self.mean * self.inv_std, persistent=False)

    def _to(self, device: torch.device) -> None:
        if self.mean.device != device:
            self.to(device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalize float images."""
        self._to(x.device)
        return (x - self.mean) * self.inv_std

    def from_uint8(self, x: torch.Tensor) -> torch.Tensor:
        """Normalize uint8 images in one pass: ``x * (inv_std / 255) + shift``, in place on the
        float copy (the per-batch hot path of the loader)."""
        self._to(x.device)
        return torch.addcmul(self.shift, x.float(), self.inv_std * (1.0 / 255.0))
