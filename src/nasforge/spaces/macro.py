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

Activations: with more than one ``activations`` option (e.g. ``("relu", "relu6", "swish")``),
every layer whose op has an activation (the registry ops are pre-activation ``act -> conv -> BN``)
gets a decision ``layer{j}/act``; pooling, identity, ``global_pool`` and ``none`` layers have none,
so no two architectures build the same network. With one option (the default, ``relu``) there is no
such decision, and the default space is unchanged.

Connectivity: only architectures whose output depends on the input are members of the space.
A ``none`` layer outputs zeros, so a network is cut off when every path from the stem to the last
layer crosses one. :meth:`validate` refuses such architectures and :meth:`size` counts only the
connected ones (exactly, by dynamic programming over the layers). The operators keep to the space
by *repair*: ``sample``, ``mutate``, ``crossover`` and ``complete`` draw as before and then, while
the network is cut off, give the last ``none`` layer that the input still reaches a random live op
(the first live op in ``ops`` without an rng, as in ``neighbors``). Only the ``none`` decisions that
cut the network change, so samples stay close to uniform over decisions; ``neighbors`` drops the
neighbours that would be cut off. ``mutate`` always returns an architecture different from its input.

``global_pool`` in the middle of a network averages each channel over the whole map and broadcasts
the means back over the map (see :class:`nasforge.ops.registry.GlobalPool`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from nasforge.errors import ConfigError, InvalidArchitectureError, allowed
from nasforge.ops.activations import ACTIVATIONS, has_activation, set_activation
from nasforge.ops.registry import OPS, ReLUConvBN, create_op
from nasforge.registry import SPACES
from nasforge.space.architecture import Architecture
from nasforge.space.base import SearchSpace
from nasforge.space.decision import Choice, Condition, Value
from nasforge.spaces._options import flag, positive_int, reject_unknown
from nasforge.utils.rng import RngLike, as_rng

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


def layer_act(j: int) -> str:
    """Decision name of layer ``j``'s activation (only with several ``activations``)."""
    return f"layer{j}/act"


def layer_skip(j: int, i: int) -> str:
    """Decision name of the skip connection from layer ``i``'s output to layer ``j``'s input."""
    return f"layer{j}/skip{i}"


def reduction_positions(num_layers: int, reductions: int) -> tuple[int, ...]:
    """Layers whose op is strided: ``k * num_layers // (reductions + 1)``, ``k = 1..reductions``."""
    return tuple(sorted({k * num_layers // (reductions + 1) for k in range(1, reductions + 1)}))


def scaled_width(channels: int, width_mult: float) -> int:
    """``channels * width_mult`` rounded to an even number, at least 2 (a strided identity is a
    factorized reduce of two halves)."""
    return max(2, 2 * round(channels * width_mult / 2))


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
        layers: Sequence[tuple[str, int, Sequence[int], str]],
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
        for j, (op, filters, skips, act) in enumerate(layers):
            self.ops.append(set_activation(create_op(op, c_in, filters, 2 if j in strided else 1, True), act))
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

    def layer_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The output of every layer for input ``x`` (backbones of detection networks tap them)."""
        h = self.stem(x)
        outs: list[torch.Tensor] = []
        for op, skips, proj in zip(self.ops, self.skips, self.projections):
            inp = h
            for i in skips:
                inp = inp + proj[str(i)](outs[i], h)
            h = op(inp)
            outs.append(h)
        return outs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.layer_outputs(x)[-1]
        h = nn.functional.adaptive_avg_pool2d(nn.functional.relu(h), 1)
        return self.classifier(torch.flatten(h, 1))


@SPACES.register("macro")
class MacroSpace(SearchSpace):
    """Macro space (ENAS-style): layer count, per-layer op, width and activation, skip connections."""

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
        activations: Sequence[str] = ("relu",),
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
        if ops == ("none",):
            raise ConfigError("ops must offer at least one op besides 'none': a network of 'none' "
                              "layers never depends on its input")
        activations = tuple(activations)
        unknown_acts = [a for a in activations if a not in ACTIVATIONS]
        if not activations or unknown_acts or len(set(activations)) != len(activations):
            raise ConfigError(f"activations must be distinct names among {allowed(ACTIVATIONS)}, "
                              f"got {allowed(activations)}")
        flag("skips", skips)
        flag("monotone_filters", monotone_filters)
        self.min_layers, self.max_layers = min_layers, max_layers
        self.filters, self.ops, self.skips = filters, ops, skips
        self.monotone_filters = monotone_filters
        self.activations = activations
        # Ops whose layer chooses an activation: those that have one to replace.
        self.activated_ops = tuple(o for o in ops if has_activation(create_op(o, 4, 4, 1, True)))
        super().__init__()

    def reference_architecture(self) -> Architecture:
        """A plain VGG-style network: as few layers as the space allows (at least 6 when it can),
        3x3 convolutions, widths growing from the smallest to the largest filter count, no skips.
        """
        n = min(max(self.min_layers, 6), self.max_layers)
        conv = next((o for o in ("nor_conv_3x3", "dwsep_conv_3x3") if o in self.ops),
                    next(o for o in self.ops if o != "none"))
        widths = sorted(self.filters)
        values: dict[str, Value] = {"num_layers": n}
        for j in range(n):
            values[layer_op(j)] = conv
            values[layer_filters(j)] = widths[min(j * len(widths) // n, len(widths) - 1)]
        return self.complete(values)  # skips take their first option: off; activations the first

    def options(self) -> dict[str, Any]:
        """The constructor options of this space (JSON-able)."""
        out: dict[str, Any] = {
            "min_layers": self.min_layers, "max_layers": self.max_layers,
            "filters": list(self.filters), "ops": list(self.ops), "skips": self.skips,
            "monotone_filters": self.monotone_filters}
        if self.activations != ("relu",):  # absent by default: older checkpoints compare equal
            out["activations"] = list(self.activations)
        return out

    @property
    def _chooses_activation(self) -> bool:
        return len(self.activations) > 1 and bool(self.activated_ops)

    def _declare(self) -> Sequence[Choice]:
        counts = tuple(range(self.min_layers, self.max_layers + 1))
        out = [Choice("num_layers", counts, doc="number of layers")]
        for j in range(self.max_layers):
            cond: tuple[Condition, ...] = ()
            if j >= self.min_layers:
                cond = (Condition("num_layers", tuple(n for n in counts if n > j)),)
            out.append(Choice(layer_op(j), self.ops, cond))
            if self._chooses_activation:
                out.append(Choice(layer_act(j), self.activations,
                                  (*cond, Condition(layer_op(j), self.activated_ops))))
            out.append(Choice(layer_filters(j), self.filters, cond))
            if self.skips:
                out += [Choice(layer_skip(j, i), (False, True), cond) for i in range(j - 1)]
        return out

    def layers(self, arch: Mapping[str, Value]) -> list[tuple[str, int, list[int], str]]:
        """``(op, filters, skip sources, activation)`` of each layer of ``arch``."""
        out = []
        for j in range(int(arch["num_layers"])):
            skips = [i for i in range(j - 1) if arch.get(layer_skip(j, i), False) is True]
            act = str(arch.get(layer_act(j), self.activations[0]))
            out.append((str(arch[layer_op(j)]), int(arch[layer_filters(j)]), skips, act))
        return out

    def _reach(self, arch: Mapping[str, Value]) -> tuple[list[bool], list[bool]]:
        """Per layer: whether the input reaches its input (``fed``) and its output."""
        fed: list[bool] = []
        out: list[bool] = []
        prev = True  # the stem's output
        for op, _, skips, _ in self.layers(arch):
            fed.append(prev or any(out[i] for i in skips))
            prev = fed[-1] and op != "none"
            out.append(prev)
        return fed, out

    def _check(self, arch: Architecture) -> None:
        fed, out = self._reach(arch)
        if not out[-1]:
            cut = [j for j in range(len(fed)) if fed[j] and arch[layer_op(j)] == "none"]
            raise InvalidArchitectureError(
                f"the output does not depend on the input: every path crosses a 'none' layer "
                f"({', '.join(f'layer {j}' for j in cut)}); give one of them another op"
            )
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
        if self.monotone_filters:
            # Sorting keeps the widths that were chosen (a mutation still changes the multiset).
            keys = [layer_filters(j) for j in range(int(arch["num_layers"]))]
            widths = sorted(int(arch[k]) for k in keys)
            arch = arch.replace(**dict(zip(keys, widths)))
        fed, out = self._reach(arch)
        if out[-1]:
            return arch
        # Cut off: the last 'none' layer the input still reaches gets a live op. Each step removes
        # one 'none', and once every reached 'none' is live the whole chain is, so this ends.
        j = max(j for j in range(len(fed)) if fed[j] and arch[layer_op(j)] == "none")
        live = [o for o in self.ops if o != "none"]
        op = live[0] if rng is None else live[int(rng.integers(len(live)))]
        values = dict(arch)
        values[layer_op(j)] = op
        return self._complete(values, rng)  # fills a new activation decision, repairs again

    def mutate(self, arch: Architecture, rng: RngLike = None) -> Architecture:
        """Change one decision (then repair); drawn again in the rare case repair undid it."""
        gen = as_rng(rng)
        child = super().mutate(arch, gen)
        for _ in range(32):
            if child != arch:
                break
            child = super().mutate(arch, gen)
        return child

    def neighbors(self, arch: Architecture) -> list[Architecture]:
        """Architectures one decision away; those the change would cut off are left out (a repair
        would make them differ in two decisions)."""
        out: dict[Architecture, None] = {}
        for d in self.active_decisions(arch):
            for option in d.options:
                if option == arch[d.name] and type(option) is type(arch[d.name]):
                    continue
                values = dict(arch)
                values[d.name] = option
                cand = self._complete(values, None)
                # Decisions that appear or disappear with the change are fine; a repaired op is not.
                repaired = [k for k in arch if k.endswith("/op") and k != d.name
                            and k in cand and cand[k] != arch[k]]
                if cand != arch and not repaired:
                    out[cand] = None
        return list(out)

    def size(self) -> int:
        """Exact count of the connected architectures (see the module docstring)."""
        total = 0
        for n in range(self.min_layers, self.max_layers + 1):
            if self.monotone_filters:  # the widths of n layers form a multiset
                widths = math.comb(n + len(self.filters) - 1, n)
            else:
                widths = len(self.filters) ** n
            total += widths * self._connected_layouts(n)
        return total

    def _connected_layouts(self, n: int) -> int:
        """Ops, activations and skips of ``n`` layers that keep the output connected to the input.

        Dynamic programming over the layers; the state is (how many of the layers that can feed a
        skip into the current one are reached by the input, whether the previous layer is). A
        layer is fed when the previous layer is reached or one reached skip source is on.
        """
        acts = len(self.activations) if self._chooses_activation else 1
        live = sum(acts if o in self.activated_ops else 1 for o in self.ops if o != "none")
        dead = 1 if "none" in self.ops else 0
        states: dict[tuple[int, bool], int] = {(0, True): 1}
        for j in range(n):
            m = max(j - 1, 0) if self.skips else 0  # skip candidates 0..j-2
            nxt: dict[tuple[int, bool], int] = {}
            for (k, prev), count in states.items():
                fed = 2**m if prev else 2**m - 2 ** (m - k)
                k2 = k + int(self.skips and j >= 1 and prev)  # layer j-1: a candidate for j+1
                for reached, ways in ((True, fed * live), (False, fed * dead + (2**m - fed) * (live + dead))):
                    if ways:
                        nxt[(k2, reached)] = nxt.get((k2, reached), 0) + count * ways
            states = nxt
        return sum(c for (_, reached), c in states.items() if reached)

    def is_degenerate(self, arch: Architecture) -> bool:
        """Whether the output cannot depend on the input: never, for a member of this space
        (:meth:`validate` refuses such architectures)."""
        self.validate(arch)
        return False

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
        for j, (op, filters, skips, act) in enumerate(layers):
            extra = f", {act}" if layer_act(j) in arch else ""
            label = f"{j}: {op} ({filters}{extra}{', stride 2' if j in strided else ''})"
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

        stem = scaled_width(stem_channels if stem_channels is not None else min(self.filters), width_mult)
        layers = [(op, scaled_width(f, width_mult), skips, act) for op, f, skips, act in self.layers(arch)]
        return MacroNetwork(layers, num_classes, in_channels, stem, reductions)


__all__ = [
    "MACRO_OPS",
    "MacroNetwork",
    "MacroSpace",
    "SkipProjection",
    "layer_act",
    "layer_filters",
    "layer_op",
    "layer_skip",
    "reduction_positions",
    "scaled_width",
]
