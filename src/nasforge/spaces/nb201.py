"""NAS-Bench-201 cell space (Dong & Yang, ICLR 2020, "NAS-Bench-201: Extending the Scope of
Reproducible Neural Architecture Search").

A cell is a DAG of 4 nodes; each of the 6 edges ``j -> i`` (j < i) carries one of 5 operations.
Decision ``edge_i_j`` is the op on the edge from node ``j`` to node ``i``; the official string
``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` lists node 1's, 2's and 3's inputs in that order.

All 15,625 cells are members of the space, including the degenerate ones whose output is constant
zero (no input -> output path without ``none``): the benchmark trained those too.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import product
from typing import Any

import numpy as np
import torch
from torch import nn

from nasforge.errors import ConfigError, InvalidArchitectureError, allowed
from nasforge.ops.cells import DAGCell, ResNetBasicBlock, strip_batchnorm
from nasforge.registry import SPACES
from nasforge.space.architecture import Architecture
from nasforge.space.base import SearchSpace
from nasforge.space.decision import Choice

NB201_OPS: tuple[str, ...] = (
    "none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"
)  # fmt: skip
NB201_EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
_EXAMPLE = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
)

# Every input -> output path of the cell, as the edges ``(to, from)`` it walks, shortest first.
NB201_PATHS: tuple[tuple[tuple[int, int], ...], ...] = (
    ((3, 0),),
    ((1, 0), (3, 1)),
    ((2, 0), (3, 2)),
    ((1, 0), (2, 1), (3, 2)),
)
# Ops a path can carry: a path through ``none`` carries nothing, so it is not a feature.
_PATH_OPS: tuple[str, ...] = tuple(op for op in NB201_OPS if op != "none")
_MAX_PATH = max(len(p) for p in NB201_PATHS)
# Feature index of every possible op sequence of length 1..3: length-1 sequences first, then
# length 2, then 3, each block in lexicographic order of _PATH_OPS (4 + 16 + 64 = 84 features).
_PATH_INDEX: dict[tuple[str, ...], int] = {
    seq: i
    for i, seq in enumerate(
        seq for length in range(1, _MAX_PATH + 1) for seq in product(_PATH_OPS, repeat=length)
    )
}
ENCODING_KINDS: tuple[str, ...] = ("onehot", "path", "both")


def edge_name(to: int, frm: int) -> str:
    """Decision name of the edge from node ``frm`` to node ``to``."""
    return f"edge_{to}_{frm}"


class NB201Network(nn.Module):
    """NAS-Bench-201's inference network ("TinyNetwork") for one cell.

    stem ``Conv3x3(in_channels -> C) + BN``; three stages of ``N`` cells with ``C``, ``2C`` and
    ``4C`` channels, separated by stride-2 ResNet basic blocks; then ``BN + ReLU``, global average
    pooling and a linear classifier. Every cell of the network is the same architecture with its
    own weights. ``forward`` returns the logits.
    """

    def __init__(
        self,
        edges: Sequence[tuple[int, int, str]],
        num_classes: int = 10,
        C: int = 16,
        N: int = 5,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, C, kernel_size=3, padding=1, bias=False), nn.BatchNorm2d(C)
        )
        cells: list[nn.Module] = []
        c_prev = C
        for stage, width in enumerate((C, 2 * C, 4 * C)):
            if stage > 0:
                cells.append(ResNetBasicBlock(c_prev, width, stride=2, affine=True))
                c_prev = width
            cells.extend(DAGCell(edges, c_prev, width, stride=1, affine=True) for _ in range(N))
        self.cells = nn.ModuleList(cells)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c_prev), nn.ReLU(inplace=False))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for cell in self.cells:
            x = cell(x)
        x = self.global_pooling(self.lastact(x)).flatten(1)
        logits: torch.Tensor = self.classifier(x)
        return logits


def _positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return value


#: NAS-Bench-201's ResNet cell: two 3x3 convolutions and a residual (its paper's "ResNet" row).
RESNET_CELL = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"


@SPACES.register("nb201")
class NB201Space(SearchSpace):
    """The 15,625-cell NAS-Bench-201 topology space (6 edges x 5 ops)."""

    name = "nb201"
    small_build_kwargs = {"C": 4, "N": 1}

    def _declare(self) -> Sequence[Choice]:
        return [Choice(edge_name(i, j), NB201_OPS) for i, j in NB201_EDGES]

    # ------------------------------------------------------------------ text form
    def reference_architecture(self) -> Architecture:
        """The ResNet cell, NAS-Bench-201's hand-designed reference (Dong & Yang, ICLR 2020)."""
        return self.from_string(RESNET_CELL)

    def to_string(self, arch: Architecture) -> str:
        """The official string form, e.g. ``|nor_conv_3x3~0|+|nor_conv_3x3~0|...|``."""
        self.validate(arch)
        nodes = []
        for i in (1, 2, 3):
            nodes.append("|" + "|".join(f"{arch[edge_name(i, j)]}~{j}" for j in range(i)) + "|")
        return "+".join(nodes)

    def from_string(self, text: str) -> Architecture:
        """Parse the official string form (clear error naming the bad part)."""
        if not isinstance(text, str):
            raise InvalidArchitectureError(
                f"a NAS-Bench-201 string is needed, got {type(text).__name__} {text!r:.100}"
            )
        text = text.strip()
        parts = text.split("+")
        if len(parts) != 3:
            raise InvalidArchitectureError(
                f"NAS-Bench-201 string {text!r} must have 3 nodes separated by '+', "
                f"e.g. {_EXAMPLE!r}"
            )
        values: dict[str, Any] = {}
        for i, part in enumerate(parts, start=1):
            tokens = part[1:-1].split("|") if len(part) > 1 and part[0] == part[-1] == "|" else []
            if len(tokens) != i:
                raise InvalidArchitectureError(
                    f"node {i} of {text!r} is {part!r}; it must list {i} input(s) as '|op~j|', "
                    f"e.g. {_EXAMPLE!r}"
                )
            for k, token in enumerate(tokens):
                op, sep, src = token.partition("~")
                if not sep or src != str(k):
                    raise InvalidArchitectureError(
                        f"node {i} of {text!r}: input {k} is {token!r}; inputs must be written "
                        f"'op~j' with j = 0..{i - 1} in order"
                    )
                if op not in NB201_OPS:
                    raise InvalidArchitectureError(
                        f"unknown operation {op!r} on the edge {k} -> {i} of {text!r}; "
                        f"allowed ops: {allowed(NB201_OPS)}"
                    )
                values[edge_name(i, k)] = op
        return self.make(values)

    # ------------------------------------------------------------------ cell structure
    def edges(self, arch: Architecture) -> list[tuple[int, int, str]]:
        """``(to, from, op)`` for the 6 edges of ``arch``'s cell."""
        self.validate(arch)
        return [(i, j, str(arch[edge_name(i, j)])) for i, j in NB201_EDGES]

    def paths(self, arch: Architecture) -> list[tuple[str, ...]]:
        """Op sequences of the input -> output paths that carry a signal (no ``none`` on them)."""
        self.validate(arch)
        out = []
        for path in NB201_PATHS:
            ops = tuple(str(arch[edge_name(i, j)]) for i, j in path)
            if "none" not in ops:
                out.append(ops)
        return out

    def is_degenerate(self, arch: Architecture) -> bool:
        """True when every input -> output path crosses a ``none`` edge: the cell outputs zeros.

        Such cells are still valid members of the benchmark (it trained them); a strategy may use
        this to skip them.
        """
        return not self.paths(arch)

    def options(self) -> dict[str, Any]:
        """The constructor options: none (the benchmark's space is fixed)."""
        return {}

    def graph(self, arch: Architecture, part: str | None = None) -> dict[str, Any]:
        """A drawable cell: nodes 0 (in) to 3 (out) and one labelled edge per op that is not
        ``none`` (an edge carrying ``none`` is no connection)."""
        if part is not None:
            raise ConfigError(f"the nb201 space draws its whole cell and has no parts; got part {part!r}")
        self.validate(arch)
        labels = {0: "in", 3: "out"}
        kinds = {0: "input", 3: "output"}
        nodes = [{"id": str(i), "label": labels.get(i, str(i)), "kind": kinds.get(i, "node")}
                 for i in range(4)]
        edges = [{"src": str(j), "dst": str(i), "label": op}
                 for i, j, op in self.edges(arch) if op != "none"]
        return {"title": "NAS-Bench-201 cell", "layout": "dag", "nodes": nodes, "edges": edges}

    # ------------------------------------------------------------------ encodings
    def encoding_length(self, kind: str = "both") -> int:
        """Length of :meth:`encode`'s vector: onehot 30, path 84, both 114."""
        lengths = {"onehot": super().encoding_size, "path": len(_PATH_INDEX)}
        lengths["both"] = lengths["onehot"] + lengths["path"]
        if kind not in lengths:
            raise ConfigError(f"unknown encoding kind {kind!r}; allowed: {allowed(ENCODING_KINDS)}")
        return lengths[kind]

    @property
    def encoding_size(self) -> int:
        """Length of the default (``"both"``) encoding: 114."""
        return self.encoding_length("both")

    def encode(self, arch: Architecture, kind: str = "both") -> np.ndarray:
        """A float32 feature vector of ``arch`` for performance predictors.

        - ``"onehot"`` (30): one-hot op per edge, edges in the order ``edge_1_0, edge_2_0,
          edge_2_1, edge_3_0, edge_3_1, edge_3_2``, ops in the order of :data:`NB201_OPS`.
        - ``"path"`` (84): the path encoding of White et al. (AAAI 2021, BANANAS): one feature per
          possible sequence of non-``none`` ops of length 1..3 (4 + 16 + 64; shorter first, then
          lexicographic in ``skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3``), set when
          some input -> output path of the cell carries exactly that sequence. Paths through a
          ``none`` edge carry nothing and set no feature, so a degenerate cell encodes to zeros.
        - ``"both"`` (114, the default): onehot followed by path.
        """
        length = self.encoding_length(kind)  # validates ``kind``
        parts: list[np.ndarray] = []
        if kind in ("onehot", "both"):
            parts.append(super().encode(self.validate(arch)))
        if kind in ("path", "both"):
            vec = np.zeros(len(_PATH_INDEX), dtype=np.float32)
            for ops in self.paths(arch):
                vec[_PATH_INDEX[ops]] = 1.0
            parts.append(vec)
        out = np.concatenate(parts)
        assert out.shape == (length,)
        return out

    # ------------------------------------------------------------------ networks
    def build(
        self,
        arch: Architecture,
        num_classes: int = 10,
        C: int = 16,
        N: int = 5,
        in_channels: int = 3,
        use_bn: bool = True,
        **kwargs: Any,
    ) -> NB201Network:
        """The benchmark's network for ``arch`` (C=16, N=5 as published; see :class:`NB201Network`).

        ``use_bn=False`` gives the same network with every BatchNorm removed (for synflow).
        With 10 classes its parameter count equals the benchmark table's ``params_m``.
        """
        if kwargs:
            raise ConfigError(
                f"unknown build option(s) {', '.join(map(repr, sorted(kwargs)))} for space "
                "'nb201'; allowed: 'num_classes', 'C', 'N', 'in_channels', 'use_bn'"
            )
        net = NB201Network(
            self.edges(arch),
            num_classes=_positive("num_classes", num_classes),
            C=_positive("C", C),
            N=_positive("N", N),
            in_channels=_positive("in_channels", in_channels),
        )
        if not isinstance(use_bn, bool):
            raise ConfigError(f"use_bn must be True or False, got {use_bn!r}")
        if not use_bn:
            strip_batchnorm(net)
        return net


__all__ = [
    "ENCODING_KINDS",
    "NB201_EDGES",
    "NB201_OPS",
    "NB201_PATHS",
    "NB201Network",
    "NB201Space",
    "edge_name",
]
