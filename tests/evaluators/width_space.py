"""A one-decision search space of tiny conv nets, shared by the evaluator tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from nasforge.space import Architecture, Choice, SearchSpace


class WidthSpace(SearchSpace):
    """One conv layer of a chosen width (4 or 8) over any image size of at least 4x4."""

    name = "width"

    def _declare(self) -> Sequence[Choice]:
        return [Choice("width", (4, 8))]

    def build(self, arch: Architecture, num_classes: int = 10, in_channels: int = 3,
              **kwargs: Any) -> nn.Module:
        w = int(arch["width"])
        return nn.Sequential(nn.Conv2d(in_channels, w, 3, padding=1), nn.BatchNorm2d(w),
                             nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(),
                             nn.Linear(16 * w, num_classes))
