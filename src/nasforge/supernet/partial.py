"""Partial channel connections of PC-DARTS (Xu et al., ICLR 2020): a mixed op over 1/K of the channels.

A :class:`PartialChannelOp` sends only the first ``C/K`` channels of its input through the
candidate ops (built with ``C/K`` channels); the other channels bypass them unchanged (max-pooled
2x2 on a strided edge, so the shapes agree), the two parts are concatenated and the channels
shuffled in ``K`` groups, so that the next edge samples a different subset. The candidates'
activations, the bulk of a DARTS step's memory, shrink by about ``K``. Sampling a *fixed* slice and
shuffling afterwards is the paper's scheme: across layers every channel is in some edge's
computed part.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from nasforge.errors import ConfigError
from nasforge.supernet.mixed import MixedOp, Selection


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave the ``groups`` channel groups of ``x`` (N, C, H, W) (ShuffleNet's shuffle):
    channel ``g * (C / groups) + i`` moves to position ``i * groups + g``."""
    n, c, h, w = x.shape
    if c % groups:
        raise ConfigError(f"channel shuffle needs channels divisible by {groups}, got {c}")
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class PartialChannelOp(MixedOp):
    """A mixed op over the first ``1/k`` of the channels; the rest bypass it (see the module doc).

    ``candidates`` must be built for ``channels // k`` channels and the edge's ``stride``.
    """

    def __init__(self, key: str, candidates: Mapping[str, nn.Module], channels: int, k: int, stride: int) -> None:
        if k < 1 or channels % k:
            raise ConfigError(
                f"partial channels: {channels} channels cannot be split in {k} equal parts; use a "
                f"partial_channels value that divides C"
            )
        super().__init__(key, candidates)
        self.k = k
        self.stride = stride

    def compute(self, x: torch.Tensor, sel: Selection) -> torch.Tensor:
        c = x.shape[1] // self.k
        out = super().compute(x[:, :c], sel)
        rest = x[:, c:]
        if self.stride == 2:
            # ceil_mode: odd sizes round up, as the strided candidates (padded convs) do.
            rest = nn.functional.max_pool2d(rest, 2, 2, ceil_mode=True)
        return channel_shuffle(torch.cat([out, rest], dim=1), self.k)


__all__ = ["PartialChannelOp", "channel_shuffle"]
