"""Task presets: named, documented configurations of a search space for one task.

A preset is a space name plus constructor options. Choosing one (``create_space("macro",
preset="image_classification")``, ``preset: image_classification`` in YAML, ``--preset`` on the
command line) is the same as passing those options; options given beside it override the
preset's. Experiments store the resolved options, so reports, exports and retraining rebuild the
same space without knowing presets.

The guide's operation names map to registry ops as in :data:`GUIDE_OPS` (every registry op is
``act -> op -> BatchNorm``, so every conv and projection layer has batch norm).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nasforge.errors import ConfigError, unknown

GUIDE_OPS: dict[str, str] = {
    "conv3x3": "nor_conv_3x3",
    "conv5x5": "nor_conv_5x5",
    "depthwise_conv": "dw_conv_3x3",
    "pointwise_conv": "nor_conv_1x1",
    "atrous_conv": "atrous_conv_3x3",
    "max_pool": "max_pool_3x3",
    "avg_pool": "avg_pool_3x3",
    "global_pool": "global_pool",
    "identity": "skip_connect",
}
"""Operation names used by the presets' task descriptions -> registry op names."""


def _ops(*names: str) -> list[str]:
    return [GUIDE_OPS[n] for n in names]


@dataclass(frozen=True)
class Preset:
    """A named space configuration: ``space`` created with ``options``."""

    name: str
    space: str
    options: Mapping[str, Any] = field(default_factory=dict)
    doc: str = ""

    def merged(self, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The preset's options overridden by ``options`` (a fresh, JSON-able dict)."""
        return {**{k: list(v) if isinstance(v, tuple) else v for k, v in self.options.items()},
                **dict(options or {})}


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "image_classification", "macro",
            {
                "min_layers": 6,
                "max_layers": 20,
                "filters": [16, 32, 64, 128, 256, 512],
                "ops": _ops("conv3x3", "conv5x5", "depthwise_conv", "pointwise_conv", "max_pool",
                            "avg_pool", "global_pool", "identity"),
                "skips": True,
                "activations": ["relu", "relu6", "swish"],
            },
            "image classification (macro): 6-20 layers of conv3x3/5x5, depthwise, pointwise, "
            "max/avg/global pooling or identity, 16-512 channels, skip connections, batch norm, "
            "relu/relu6/swish per layer",
        ),
        Preset(
            "object_detection", "detection",
            {
                "min_layers": 8,
                "max_layers": 30,
                "filters": [32, 64, 128, 256, 512, 1024],
                "ops": _ops("conv3x3", "conv5x5", "depthwise_conv", "atrous_conv", "max_pool",
                            "avg_pool", "identity"),
                "fpn_channels": [64, 128, 256],
                "anchor_scales": [32, 64, 128, 256, 512],
            },
            "object detection: a backbone of 8-30 layers (conv3x3/5x5, depthwise, atrous, "
            "max/avg pooling, identity; 32-1024 channels), an FPN over its stages and a RetinaNet "
            "head with anchors of 32-512 pixels",
        ),
    )
}
"""The built-in presets by name."""


def get_preset(name: str) -> Preset:
    """The preset ``name`` (clear error listing the presets)."""
    if not isinstance(name, str) or name not in PRESETS:
        raise unknown("preset", name, PRESETS)
    return PRESETS[name]


def resolve_preset(space: str | None, preset: str, options: Mapping[str, Any] | None = None
                   ) -> tuple[str, dict[str, Any]]:
    """``(space name, options)`` for ``preset``; ``space`` (None: the preset's) must match it."""
    p = get_preset(preset)
    if space is not None and space != p.space:
        raise ConfigError(f"preset {preset!r} configures space {p.space!r}, not {space!r}; "
                          f"drop the space or choose space {p.space!r}")
    return p.space, p.merged(options)


def list_presets() -> list[dict[str, Any]]:
    """Name, space, description and options of every preset (JSON-able)."""
    return [{"name": p.name, "space": p.space, "description": p.doc, "options": p.merged()}
            for p in PRESETS.values()]


__all__ = ["GUIDE_OPS", "PRESETS", "Preset", "get_preset", "list_presets", "resolve_preset"]
