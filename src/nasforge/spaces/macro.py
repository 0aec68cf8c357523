"""Macro (whole-network, chain-structured) search space, after ENAS' macro space (Pham et al., ICML
2018, "Efficient Neural Architecture Search via Parameter Sharing") and the layer-wise spaces of
Zoph & Le (ICLR 2017) and Baker et al. (ICLR 2017).

A network is a stem, ``num_layers`` layers and a classifier. Each layer ``j`` chooses

* ``layer{j}/op``: its operation (plain 3x3/5x5/7x7 convs, single depthwise-separable 3x3/5x5
  convs, 3x3 max/avg pooling, identity ``skip_connect``, or ``none`` = zero);
* ``layer{j}/filters``: its output width;
* ``layer{j}/skip{i}`` for every ``i <= j - 2``: whether layer ``i``'s output is added to layer
  ``j``'s input (layer ``j - 1`` always feeds layer ``j``).

Decisions of layer ``j`` exist only when ``num_layers > j`` (a :class:`~nasforge.space.Condition`),
so the base class samples, mutates, crosses over, encodes and counts (exact ``size()``) correctly.

Building rules, so that every architecture is a working network: layer ``j``'s input is the
previous layer's output plus its skip inputs, each average-pooled to the current resolution and
projected by a 1x1 ReLU-conv-BN when its width differs. The op maps the input width to the layer's
``filters`` (the registry ops insert a 1x1 projection for pooling/identity when widths differ).
The resolution halves at layers ``k * num_layers // (reductions + 1)`` for ``k = 1..reductions``
(default: 1/3 and 2/3 depth), where the op is strided.

Widths: by default every layer picks its width freely, as in Zoph & Le's layer-wise space, so a
network may get narrower after a reduction (the ``channels`` design check warns about such
networks). ``monotone_filters=True`` keeps every layer at least as wide as the one before it, so
widths never shrink, at a reduction or anywhere else, whatever the build's ``reductions``; invalid
combinations are repaired by sorting the layer widths (same multiset of widths, ascending).
It is not the default: it would change the size and the samples of the default space and make
architectures stored from it invalid.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from nasforge.errors import ConfigError, InvalidArchitectureError, allowed
from nasforge.ops.registry import OPS, ReLUConvBN, create_op
from nasforge.registry import SPACES
from nasforge.space.architecture import Architecture
from nasforge.space.base import SearchSpace
from nasforge.space.decision import Choice, Condition, Value
from nasforge.spaces._options import flag, positive_int, reject_unknown

MACRO_OPS: tuple[str, ...] = (
    "nor_conv_3x3",
    "nor_conv_5x5",
    "nor_conv_7x7",
    "dwsep_conv_3x3",
    "dwsep_conv_5x5",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "none",
)
"""Default layer operations (registry names; ``none`` outputs zeros)."""


def layer_op(j: int) -> str:
    """Decision name of layer ``j``'s operation."""
    return f"layer{j}/op"


def layer_filters(j: int) -> str:
    """Decision name of layer ``j``'s output width."""
    return f"layer{j}/filters"


def layer_skip(j: int, i: int) -> str:
    """Decision name of the skip connection from layer ``i``'s output to layer ``j``'s input."""
    return f"layer{j}/skip{i}"


def reduction_positions(num_layers: int, reductions: int) -> tuple[int, ...]:
    """Layers whose op is strided: ``k * num_layers // (reductions + 1)``, ``k = 1..reductions``."""
    return tuple(sorted({k * num_layers // (reductions + 1) for k in range(1, reductions + 1)}))


class SkipProjection(nn.Module):
    """Adapt a skip input to the target: average-pool to its size, 1x1 ReLU-conv-BN to its width."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.proj: nn.Module | None = None if c_in == c_out else ReLUConvBN(c_in, c_out, 1, 1, 0)

    def forward(self, x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != like.shape[-2:]:
            x = nn.functional.adaptive_avg_pool2d(x, (int(like.shape[-2]), int(like.shape[-1])))
        return x if self.proj is None else self.proj(x)


class MacroNetwork(nn.Module):
    """Stem -> layers (each fed by the previous layer plus its skips) -> ReLU, pool, linear."""

    def __init__(
        self,
        layers: Sequence[tuple[str, int, Sequence[int]]],
        num_classes: int,
        in_channels: int,
        stem_channels: int,
        reductions: int,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, stem_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(stem_channels),
        )
        strided = reduction_positions(len(layers), reductions) if reductions else ()
        self.ops = nn.ModuleList()
        self.skips: list[list[int]] = []
        self.projections: list[nn.ModuleDict] = []
        widths: list[int] = []
        c_in = stem_channels
        for j, (op, filters, skips) in enumerate(layers):
            self.ops.append(create_op(op, c_in, filters, 2 if j in strided else 1, True))
            self.skips.append(list(skips))
            self.projections.append(
                nn.ModuleDict({str(i): SkipProjection(widths[i], c_in) for i in skips})
            )
            # Registered as attributes too, so their weights belong to the network.
            self.add_module(f"skips{j}", self.projections[-1])
            widths.append(filters)
            c_in = filters
        self.classifier = nn.Linear(c_in, num_classes)

    def main_path(self) -> list[nn.Module]:
        """The modules whose outputs are the network's successive layer outputs (stem, layers).

        Skip projections are side branches: the design checks measure widths on this path only.
        """
        return [self.stem, *self.ops]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        outs: list[torch.Tensor] = []
        for op, skips, proj in zip(self.ops, self.skips, self.projections):
            inp = h
            for i in skips:
                inp = inp + proj[str(i)](outs[i], h)
            h = op(inp)
            outs.append(h)
        h = nn.functional.adaptive_avg_pool2d(nn.functional.relu(h), 1)
        return self.classifier(torch.flatten(h, 1))


@SPACES.register("macro")
class MacroSpace(SearchSpace):
    """Macro space (ENAS-style): layer count, per-layer op and width, skip connections."""

    name = "macro"
    small_build_kwargs = {"width_mult": 0.25}

    def __init__(
        self,
        min_layers: int = 8,
        max_layers: int = 20,
        filters: Sequence[int] = (16, 32, 64),
        ops: Sequence[str] = MACRO_OPS,
        skips: bool = True,
        monotone_filters: bool = False,
    ) -> None:
        positive_int("min_layers", min_layers)
        positive_int("max_layers", max_layers)
        if min_layers > max_layers:
            raise ConfigError(
                f"min_layers ({min_layers}) must not exceed max_layers ({max_layers})"
            )
        filters = tuple(filters)
        bad = [f for f in filters
               if isinstance(f, bool) or not isinstance(f, int) or f < 2 or f % 2]
        if not filters or bad:
            # Even widths: a strided identity is a factorized reduce made of two halves.
            raise ConfigError(f"filters must be even integers >= 2, got {allowed(filters)}")
        ops = tuple(ops)
        unknown_ops = [o for o in ops if o not in OPS]
        if not ops or unknown_ops:
            raise ConfigError(
                f"unknown op(s) {allowed(unknown_ops)} for the macro space; registered: "
                f"{allowed(sorted(OPS))}"
            )
        flag("skips", skips)
        flag("monotone_filters", monotone_filters)
        self.min_layers, self.max_layers = min_layers, max_layers
        self.filters, self.ops, self.skips = filters, ops, skips
        self.monotone_filters = monotone_filters
        super().__init__()

    def reference_architecture(self) -> Architecture:
        """A plain VGG-style network: as few layers as the space allows (at least 6 when it can),
        3x3 convolutions, widths growing from the smallest to the largest filter count, no skips.
        """
        n = min(max(self.min_layers, 6), self.max_layers)
        conv = next((o for o in ("nor_conv_3x3", "dwsep_conv_3x3") if o in self.ops), self.ops[0])
        widths = sorted(self.filters)
        values: dict[str, Value] = {"num_layers": n}
        for j in range(n):
            values[layer_op(j)] = conv
            values[layer_filters(j)] = widths[min(j * len(widths) // n, len(widths) - 1)]
        return self.complete(values)  # skips take their first option: off

    def options(self) -> dict[str, Any]:
        """The constructor options of this space (JSON-able)."""
        return {"min_layers": self.min_layers, "max_layers": self.max_layers,
                "filters": list(self.filters), "ops": list(self.ops), "skips": self.skips,
                "monotone_filters": self.monotone_filters}

    def _declare(self) -> Sequence[Choice]:
        counts = tuple(range(self.min_layers, self.max_layers + 1))
        out = [Choice("num_layers", counts, doc="number of layers")]
        for j in range(self.max_layers):
            cond: tuple[Condition, ...] = ()
            if j >= self.min_layers:
                cond = (Condition("num_layers", tuple(n for n in counts if n > j)),)
            out.append(Choice(layer_op(j), self.ops, cond))
            out.append(Choice(layer_filters(j), self.filters, cond))
            if self.skips:
                out += [Choice(layer_skip(j, i), (False, True), cond) for i in range(j - 1)]
        return out

    def layers(self, arch: Mapping[str, Value]) -> list[tuple[str, int, list[int]]]:
        """``(op, filters, skip sources)`` of each layer of ``arch``."""
        out = []
        for j in range(int(arch["num_layers"])):
            skips = [i for i in range(j - 1) if arch.get(layer_skip(j, i), False) is True]
            out.append((str(arch[layer_op(j)]), int(arch[layer_filters(j)]), skips))
        return out

    def _check(self, arch: Architecture) -> None:
        if not self.monotone_filters:
            return
        widths = [int(arch[layer_filters(j)]) for j in range(int(arch["num_layers"]))]
        for j in range(1, len(widths)):
            if widths[j] < widths[j - 1]:
                raise InvalidArchitectureError(
                    f"layer {j} has {widths[j]} filters, fewer than layer {j - 1}'s {widths[j - 1]}; "
                    "with monotone_filters widths must not decrease"
                )

    def _repair(self, arch: Architecture, rng: np.random.Generator | None) -> Architecture:
        if not self.monotone_filters:
            return arch
        # Sorting keeps the widths that were chosen (a mutation still changes the multiset).
        keys = [layer_filters(j) for j in range(int(arch["num_layers"]))]
        widths = sorted(int(arch[k]) for k in keys)
        return arch.replace(**dict(zip(keys, widths)))

    def size(self) -> int:
        """Exact count; with ``monotone_filters`` the widths of ``n`` layers form a multiset."""
        if not self.monotone_filters:
            return super().size()
        total = 0
        for n in range(self.min_layers, self.max_layers + 1):
            skips = sum(max(j - 1, 0) for j in range(n)) if self.skips else 0
            widths = math.comb(n + len(self.filters) - 1, n)
            total += len(self.ops) ** n * widths * 2**skips
        return total

    def is_degenerate(self, arch: Architecture) -> bool:
        """Whether the output cannot depend on the input: a ``none`` layer cuts every path."""
        self.validate(arch)
        dep: list[bool] = []
        prev = True  # the stem's output
        for op, _, skips in self.layers(arch):
            feeds = prev or any(dep[i] for i in skips)
            prev = feeds and op != "none"
            dep.append(prev)
        return not prev

    def graph(self, arch: Architecture, part: str | None = None) -> dict[str, Any]:
        """A drawable chain: input, stem, one node per layer (op, width, stride), skips, output."""
        if part is not None:
            raise ConfigError(f"the macro space draws its whole network and has no parts; got part {part!r}")
        self.validate(arch)
        nodes = [{"id": "in", "label": "input", "kind": "input"},
                 {"id": "stem", "label": "stem 3x3", "kind": "node"}]
        edges = [{"src": "in", "dst": "stem", "label": ""}]
        prev = "stem"
        layers = self.layers(arch)
        strided = reduction_positions(len(layers), 2)  # build()'s default reductions
        for j, (op, filters, skips) in enumerate(layers):
            label = f"{j}: {op} ({filters}{', stride 2' if j in strided else ''})"
            nodes.append({"id": f"L{j}", "label": label, "kind": "node"})
            edges.append({"src": prev, "dst": f"L{j}", "label": ""})
            edges += [{"src": f"L{i}", "dst": f"L{j}", "label": "", "kind": "skip"} for i in skips]
            prev = f"L{j}"
        nodes.append({"id": "out", "label": "pool + linear", "kind": "output"})
        edges.append({"src": prev, "dst": "out", "label": ""})
        return {"title": f"Macro network ({arch['num_layers']} layers)", "layout": "chain",
                "nodes": nodes, "edges": edges}

    def build(
        self,
        arch: Architecture,
        num_classes: int = 10,
        in_channels: int = 3,
        stem_channels: int | None = None,
        reductions: int = 2,
        width_mult: float = 1.0,
        **kwargs: Any,
    ) -> MacroNetwork:
        """The network of ``arch``; ``width_mult`` scales every width (kept even, at least 2)."""
        reject_unknown(self.name, kwargs, ("num_classes", "in_channels", "stem_channels",
                                           "reductions", "width_mult"))
        self.validate(arch)
        positive_int("num_classes", num_classes)
        positive_int("in_channels", in_channels)
        if stem_channels is not None:
            positive_int("stem_channels", stem_channels)
        if isinstance(reductions, bool) or not isinstance(reductions, int) or reductions < 0:
            raise ConfigError(f"reductions must be a non-negative integer, got {reductions!r}")
        if not width_mult > 0:
            raise ConfigError(f"width_mult must be positive, got {width_mult!r}")

        def scale(c: int) -> int:
            return max(2, 2 * round(c * width_mult / 2))

        stem = scale(stem_channels if stem_channels is not None else min(self.filters))
        layers = [(op, scale(f), skips) for op, f, skips in self.layers(arch)]
        return MacroNetwork(layers, num_classes, in_channels, stem, reductions)


__all__ = [
    "MACRO_OPS",
    "MacroNetwork",
    "MacroSpace",
    "SkipProjection",
    "layer_filters",
    "layer_op",
    "layer_skip",
    "reduction_positions",
]
