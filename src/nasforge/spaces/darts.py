"""DARTS cell space (Liu, Simonyan & Yang, "DARTS: Differentiable Architecture Search", ICLR 2019).

An architecture is a *normal* and a *reduction* cell. A cell has two input nodes (0: the output of
the cell two back, 1: the previous cell's output) and ``nodes`` intermediate nodes (4 in DARTS,
numbered 2..5). Intermediate node ``i`` is the sum of two edges, each an operation applied to an
earlier node ``j < i``; the cell's output concatenates the intermediate nodes.

Decisions, per cell (``normal``/``reduce``) and intermediate node ``i``::

    {cell}/node{i}/in0, {cell}/node{i}/in1          input node indices
    {cell}/node{i}/in0/op, {cell}/node{i}/in1/op    the operation on each of the two edges

Design choices (each is a space option, defaults follow DARTS' derived cells):

* ``distinct_inputs=True``: the two edges of a node read two *different* nodes, as DARTS'
  discretization keeps the two strongest edges from distinct predecessors. Because a node sums its
  edges, the pair is unordered: an architecture stores it in *canonical order* (sorted by input,
  then by op), so every cell is counted once and ``size()`` is the literature's count,
  ``(prod_i C(i, 2) * |ops|^2)^2`` ~ 1.1e18 for DARTS' 7 ops. ``from_string`` sorts published
  genotypes into this order (the network is the same; ``to_string`` prints the sorted form).
  ``distinct_inputs=False`` lets both edges read the same node (NASNet/AmoebaNet do).
* ``allow_none=False``: DARTS drops ``none`` when deriving cells, so sampled networks are sensible;
  with ``allow_none=True`` cells (and genotypes) may use ``none`` and some networks no longer depend
  on their input (see :meth:`DartsSpace.is_degenerate`).
* ``ops="darts"`` (DARTS' 8 candidate ops) or ``"extended"`` (adds ``sep_conv_7x7`` and
  ``conv_7x1_1x7`` used by NASNet-A and AmoebaNet-A), or an explicit list of registered op names.
* ``concat="all"`` (DARTS: every intermediate node) or ``"loose"`` (NASNet/AmoebaNet: the nodes
  no other node reads).

Published cells: ``space.from_string("DARTS_V2")`` (also ``DARTS_V1``, ``DARTS``). NASNet-A and
AmoebaNet-A need a space with ``ops="extended", nodes=5, distinct_inputs=False, concat="loose"``;
:func:`space_for` makes the right space for any genotype and :func:`parse` returns both.

:meth:`DartsSpace.build` makes the evaluation network of the paper: CIFAR (3x3 stem with ``3*C``
channels, ``layers`` cells, reduction cells at 1/3 and 2/3 depth, optional auxiliary head at 2/3
depth, drop-path) or ImageNet (two stride-2 conv stems). The network skeleton
(:class:`DartsNetwork`) takes a ``make_cell`` factory and :class:`DartsCell` takes a ``make_op``
factory, so a one-shot supernet reuses both with mixed ops in place of fixed ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch import nn

from nasforge.errors import ConfigError, InvalidArchitectureError, allowed, unknown
from nasforge.ops.registry import OPS, FactorizedReduce, Identity, ReLUConvBN, create_op
from nasforge.registry import SPACES
from nasforge.space.architecture import Architecture
from nasforge.space.base import SearchSpace
from nasforge.space.decision import Choice, Value
from nasforge.spaces._options import flag, positive_int, reject_unknown
from nasforge.spaces.darts_genotypes import (
    PUBLISHED,
    Edge,
    Genotype,
    format_genotype,
    is_published_name,
    make_genotype,
    parse_genotype,
    published,
)
from nasforge.utils.rng import RngLike, as_rng

DARTS_OPS: tuple[str, ...] = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
"""DARTS' candidate operations (its PRIMITIVES), in the paper's order."""

EXTENDED_OPS: tuple[str, ...] = (*DARTS_OPS, "sep_conv_7x7", "conv_7x1_1x7")
"""DARTS' ops plus the two extra ops of the NASNet-A / AmoebaNet-A cells."""

OP_SETS: dict[str, tuple[str, ...]] = {"darts": DARTS_OPS, "extended": EXTENDED_OPS}
CELLS: tuple[str, ...] = ("normal", "reduce")
CONCAT_RULES: tuple[str, ...] = ("all", "loose")
DATASETS: tuple[str, ...] = ("cifar", "imagenet")

NodeConfig = tuple[tuple[int, str], tuple[int, str]]
"""One intermediate node: ``((input0, op0), (input1, op1))`` in canonical order."""


def input_name(cell: str, node: int, k: int) -> str:
    """Decision name of the input index of edge ``k`` (0/1) of ``node`` in ``cell``."""
    return f"{cell}/node{node}/in{k}"


def op_name(cell: str, node: int, k: int) -> str:
    """Decision name of the operation of edge ``k`` (0/1) of ``node`` in ``cell``."""
    return f"{cell}/node{node}/in{k}/op"


def reduction_layers(layers: int) -> tuple[int, ...]:
    """Indices of the reduction cells among ``layers`` cells: ``layers//3``, ``2*layers//3``."""
    return tuple(sorted({layers // 3, 2 * layers // 3}))


# ============================================================================ network modules
OpMaker = Callable[[str, int, int], nn.Module]
"""``(op name, channels, stride) -> module``: how a cell turns an edge into a module."""


def fixed_op(name: str, channels: int, stride: int) -> nn.Module:
    """The registry op ``name`` mapping ``channels`` to ``channels`` (a derived network's edge)."""
    return create_op(name, channels, channels, stride, True)


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Zero whole samples with probability ``drop_prob`` and rescale the rest (DARTS' drop-path)."""
    if drop_prob <= 0.0:
        return x
    keep = 1.0 - drop_prob
    mask = torch.empty(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x / keep * mask


class DartsCell(nn.Module):
    """One cell: preprocess the two inputs, compute each node as a sum of edges, concatenate.

    ``nodes[n]`` lists the ``(op, input)`` edges of intermediate node ``n + 2`` (any number of
    edges; a derived cell has two). ``make_op`` builds each edge's module: the default is the fixed
    registry op; a supernet passes a factory returning mixed ops and overrides :meth:`apply_edge`
    to feed them architecture weights. ``preprocess_affine`` sets whether the BatchNorms of the two
    input preprocessing layers learn a scale and shift: True in derived networks; DARTS' search
    network makes them non-affine like its candidate ops.
    """

    def __init__(
        self,
        nodes: Sequence[Sequence[Edge]],
        concat: Sequence[int],
        c_prev_prev: int,
        c_prev: int,
        channels: int,
        reduction: bool,
        reduction_prev: bool,
        make_op: OpMaker = fixed_op,
        preprocess_affine: bool = True,
    ) -> None:
        super().__init__()
        self.reduction = reduction
        # The cell two back has twice the resolution when the previous cell reduced.
        self.pre0: nn.Module = (
            FactorizedReduce(c_prev_prev, channels, affine=preprocess_affine)
            if reduction_prev
            else ReLUConvBN(c_prev_prev, channels, 1, 1, 0, affine=preprocess_affine)
        )
        self.pre1 = ReLUConvBN(c_prev, channels, 1, 1, 0, affine=preprocess_affine)
        self.ops = nn.ModuleList()
        self.edge_inputs: list[list[int]] = []
        for n, edges in enumerate(nodes):
            node = n + 2
            inputs = []
            for op, j in edges:
                if not 0 <= j < node:
                    raise ConfigError(
                        f"node {node} of a cell cannot read node {j}; allowed 0..{node - 1}"
                    )
                # In a reduction cell only the edges leaving the two cell inputs are strided.
                stride = 2 if reduction and j < 2 else 1
                self.ops.append(make_op(op, channels, stride))
                inputs.append(j)
            self.edge_inputs.append(inputs)
        bad = [i for i in concat if not 0 <= i < len(nodes) + 2]
        if bad:
            raise ConfigError(f"concat names node(s) {bad} outside 0..{len(nodes) + 1}")
        self.concat = list(concat)
        self.out_channels = len(self.concat) * channels

    def apply_edge(self, index: int, x: torch.Tensor, drop_prob: float) -> torch.Tensor:
        """Output of edge ``index`` (in node order) on input ``x``; drop-path skips identities."""
        op = self.ops[index]
        h = op(x)
        if self.training and drop_prob > 0.0 and not isinstance(op, Identity):
            h = drop_path(h, drop_prob)
        return h

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float = 0.0) -> torch.Tensor:
        states = [self.pre0(s0), self.pre1(s1)]
        index = 0
        for inputs in self.edge_inputs:
            total: torch.Tensor | None = None
            for j in inputs:
                h = self.apply_edge(index, states[j], drop_prob)
                index += 1
                total = h if total is None else total + h
            assert total is not None  # every node has at least one edge
            states.append(total)
        return torch.cat([states[i] for i in self.concat], dim=1)


@dataclass(frozen=True)
class CellSlot:
    """Where a cell sits in the network and the widths it must use."""

    index: int
    reduction: bool
    reduction_prev: bool
    c_prev_prev: int
    c_prev: int
    channels: int


CellMaker = Callable[[CellSlot], nn.Module]
"""``slot -> cell``; the cell has ``out_channels`` and ``forward(s0, s1, drop_prob)``."""


def genotype_cells(genotype: Genotype, make_op: OpMaker = fixed_op) -> CellMaker:
    """A :data:`CellMaker` building the normal/reduction cells of ``genotype``."""

    def make(slot: CellSlot) -> nn.Module:
        cell = "reduce" if slot.reduction else "normal"
        return DartsCell(
            genotype.nodes(cell), genotype.concat(cell), slot.c_prev_prev, slot.c_prev,
            slot.channels, slot.reduction, slot.reduction_prev, make_op,
        )

    return make


def _out_channels(cell: nn.Module) -> int:
    """The ``out_channels`` a cell made by a :data:`CellMaker` must declare."""
    value = cell.__dict__.get("out_channels")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{type(cell).__name__} must set an int attribute 'out_channels'")
    return value


class AuxiliaryHead(nn.Module):
    """Auxiliary classifier at 2/3 depth (DARTS, after Szegedy et al.): pool to 2x2, 1x1 conv to
    128, 2x2 conv to 768, linear. Pooling is the paper's (5x5, stride 3 on CIFAR's 8x8 maps, stride
    2 on ImageNet's 7x7); other map sizes are pooled adaptively to 2x2 so any input size works."""

    def __init__(self, channels: int, num_classes: int, dataset: str) -> None:
        super().__init__()
        self.pool_stride = 3 if dataset == "cifar" else 2
        self.features = nn.Sequential(
            nn.Conv2d(channels, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
            # The ImageNet head of DARTS has no BatchNorm after the 2x2 conv.
            nn.BatchNorm2d(768) if dataset == "cifar" else nn.Identity(),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.relu(x)
        if min(x.shape[-2:]) >= 5:
            x = nn.functional.avg_pool2d(x, 5, self.pool_stride, 0, count_include_pad=False)
        if tuple(x.shape[-2:]) != (2, 2):
            x = nn.functional.adaptive_avg_pool2d(x, 2)
        return self.classifier(torch.flatten(self.features(x), 1))


class DartsNetwork(nn.Module):
    """The evaluation network of DARTS: stem, ``layers`` cells, global pooling, linear classifier.

    ``dataset="cifar"``: one 3x3 conv stem with ``stem_multiplier * C`` channels. ``"imagenet"``:
    two stride-2 stems (224x224 input gives 28x28 at the first cell). Cells at ``layers//3`` and
    ``2*layers//3`` reduce the resolution and double the width. ``drop_path_prob`` is an attribute
    a training loop may change each epoch (DARTS raises it linearly). :meth:`forward` returns the
    logits; :meth:`forward_with_aux` also returns the auxiliary logits while training.
    """

    def __init__(
        self,
        make_cell: CellMaker,
        num_classes: int = 10,
        C: int = 36,
        layers: int = 20,
        auxiliary: bool = False,
        drop_path_prob: float = 0.0,
        in_channels: int = 3,
        dataset: str = "cifar",
        stem_multiplier: int = 3,
    ) -> None:
        super().__init__()
        if dataset not in DATASETS:
            raise unknown("DARTS network dataset layout", dataset, DATASETS)
        self.dataset = dataset
        self.drop_path_prob = float(drop_path_prob)
        self.stem0: nn.Module | None = None
        self.stem1: nn.Module | None = None
        self.stem: nn.Module | None = None
        if dataset == "cifar":
            c_stem = stem_multiplier * C
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem)
            )
            c_prev_prev, c_prev, reduction_prev = c_stem, c_stem, False
        else:
            self.stem0 = nn.Sequential(
                nn.Conv2d(in_channels, C // 2, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(C // 2),
                nn.ReLU(inplace=True),
                nn.Conv2d(C // 2, C, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(C),
            )
            self.stem1 = nn.Sequential(
                nn.ReLU(inplace=True),
                nn.Conv2d(C, C, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(C),
            )
            # stem1 halves the resolution of stem0's output, like a reduction cell would.
            c_prev_prev, c_prev, reduction_prev = C, C, True
        reductions = reduction_layers(layers)
        self.aux_index = 2 * layers // 3
        self.cells = nn.ModuleList()
        self.auxiliary_head: AuxiliaryHead | None = None
        channels = C
        for i in range(layers):
            reduction = i in reductions
            if reduction:
                channels *= 2
            cell = make_cell(CellSlot(i, reduction, reduction_prev, c_prev_prev, c_prev, channels))
            self.cells.append(cell)
            reduction_prev = reduction
            c_prev_prev, c_prev = c_prev, _out_channels(cell)
            if auxiliary and i == self.aux_index:
                self.auxiliary_head = AuxiliaryHead(c_prev, num_classes, dataset)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)

    def forward_with_aux(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(logits, auxiliary logits)``; the second is None unless training with the head."""
        if self.stem is not None:
            s0 = s1 = self.stem(x)
        else:
            assert self.stem0 is not None and self.stem1 is not None
            s0 = self.stem0(x)
            s1 = self.stem1(s0)
        aux: torch.Tensor | None = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == self.aux_index and self.auxiliary_head is not None and self.training:
                aux = self.auxiliary_head(s1)
        logits = self.classifier(torch.flatten(self.global_pooling(s1), 1))
        return logits, aux

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_aux(x)[0]


def network_from_genotype(genotype: Genotype, **kwargs: Any) -> DartsNetwork:
    """The evaluation network of any genotype (same options as :meth:`DartsSpace.build`)."""
    return DartsNetwork(genotype_cells(genotype), **kwargs)


# ============================================================================ the space
def _resolve_ops(ops: str | Sequence[str], allow_none: bool) -> tuple[str, ...]:
    if isinstance(ops, str):
        if ops not in OP_SETS:
            raise unknown("DARTS op set", ops, OP_SETS)
        names = OP_SETS[ops]
        return names if allow_none else tuple(o for o in names if o != "none")
    names = tuple(ops)
    bad = [o for o in names if not isinstance(o, str) or o not in OPS]
    if bad:
        raise ConfigError(
            f"unknown op(s) {allowed(bad)} for the DARTS space; registered: {allowed(sorted(OPS))}"
        )
    if "none" in names and not allow_none:
        raise ConfigError(
            "ops lists 'none' but allow_none=False; pass allow_none=True to search over it"
        )
    if allow_none and "none" not in names:
        names = ("none", *names)
    if len(set(names)) != len(names):
        raise ConfigError(f"ops has repeated names: {allowed(names)}")
    if not [o for o in names if o != "none"]:
        raise ConfigError("the DARTS space needs at least one op other than 'none'")
    return names


@SPACES.register("darts")
class DartsSpace(SearchSpace):
    """DARTS cell space (Liu et al., ICLR 2019): normal + reduction cell, 2 edges per node."""

    name = "darts"
    small_build_kwargs = {"C": 4, "layers": 3}
    #: The drawable parts of an architecture (``graph(arch, part)``): one per cell type.
    graph_parts = CELLS

    def __init__(
        self,
        ops: str | Sequence[str] = "darts",
        allow_none: bool = False,
        nodes: int = 4,
        distinct_inputs: bool = True,
        concat: str = "all",
    ) -> None:
        flag("allow_none", allow_none)
        flag("distinct_inputs", distinct_inputs)
        if isinstance(nodes, bool) or not isinstance(nodes, int) or not 1 <= nodes <= 10:
            raise ConfigError(f"nodes must be an integer from 1 to 10, got {nodes!r}")
        if concat not in CONCAT_RULES:
            raise unknown("concat rule", concat, CONCAT_RULES)
        self.allow_none = allow_none
        self.ops: tuple[str, ...] = _resolve_ops(ops, allow_none)
        self.nodes = nodes
        self.distinct_inputs = distinct_inputs
        self.concat_rule = concat
        self._op_index = {o: i for i, o in enumerate(self.ops)}
        super().__init__()

    def reference_architecture(self) -> Architecture:
        """DARTS_V2 (Liu et al., ICLR 2019), the best-known cell of this space."""
        return self.from_string("DARTS_V2")

    def options(self) -> dict[str, Any]:
        """The constructor options of this space (JSON-able)."""
        return {
            "ops": list(self.ops),
            "allow_none": self.allow_none,
            "nodes": self.nodes,
            "distinct_inputs": self.distinct_inputs,
            "concat": self.concat_rule,
        }

    @property
    def node_ids(self) -> range:
        """Indices of the intermediate nodes (2 .. nodes + 1)."""
        return range(2, self.nodes + 2)

    def _declare(self) -> Sequence[Choice]:
        out: list[Choice] = []
        for cell in CELLS:
            for i in self.node_ids:
                # Canonical order: edge 0 reads the smaller input, so with distinct inputs edge 0
                # never reads node i-1 and edge 1 never reads node 0.
                hi = i - 1 if self.distinct_inputs else i
                lo = 1 if self.distinct_inputs else 0
                out.append(Choice(input_name(cell, i, 0), tuple(range(hi))))
                out.append(Choice(op_name(cell, i, 0), self.ops))
                out.append(Choice(input_name(cell, i, 1), tuple(range(lo, i))))
                out.append(Choice(op_name(cell, i, 1), self.ops))
        return out

    # ------------------------------------------------------------------ node-level helpers
    def _key(self, edge: tuple[int, str]) -> tuple[int, int]:
        return edge[0], self._op_index.get(edge[1], len(self.ops))

    def _canonical(self, a: tuple[int, str], b: tuple[int, str]) -> NodeConfig:
        return (a, b) if self._key(a) <= self._key(b) else (b, a)

    def _node(self, arch: Mapping[str, Value], cell: str, i: int) -> NodeConfig:
        e0 = (int(arch[input_name(cell, i, 0)]), str(arch[op_name(cell, i, 0)]))
        e1 = (int(arch[input_name(cell, i, 1)]), str(arch[op_name(cell, i, 1)]))
        return e0, e1

    @staticmethod
    def _set_node(values: dict[str, Value], cell: str, i: int, node: NodeConfig) -> None:
        for k, (j, op) in enumerate(node):
            values[input_name(cell, i, k)] = j
            values[op_name(cell, i, k)] = op

    def node_configs(self, i: int) -> list[NodeConfig]:
        """Every canonical configuration of intermediate node ``i`` (in a fixed order)."""
        return list(_node_configs(i, self.ops, self.distinct_inputs))

    # ------------------------------------------------------------------ validity
    def _check(self, arch: Architecture) -> None:
        for cell in CELLS:
            for i in self.node_ids:
                e0, e1 = self._node(arch, cell, i)
                if self.distinct_inputs and e0[0] == e1[0]:
                    raise InvalidArchitectureError(
                        f"{cell} cell node {i}: both edges read node {e0[0]}; this space needs two "
                        "different inputs (create it with distinct_inputs=False to allow this)"
                    )
                if self._key(e0) > self._key(e1):
                    raise InvalidArchitectureError(
                        f"{cell} cell node {i}: edges {e0} and {e1} are not in canonical order "
                        f"({input_name(cell, i, 0)} <= {input_name(cell, i, 1)}, ties by op "
                        "order); from_string and the space's operators sort them automatically"
                    )

    def _repair(self, arch: Architecture, rng: np.random.Generator | None) -> Architecture:
        values = dict(arch)
        for cell in CELLS:
            for i in self.node_ids:
                e0, e1 = self._node(values, cell, i)
                if self.distinct_inputs and e0[0] == e1[0]:
                    others = [j for j in range(i) if j != e0[0]]
                    j = others[int(rng.integers(len(others)))] if rng is not None else others[0]
                    e1 = (j, e1[1])
                self._set_node(values, cell, i, self._canonical(e0, e1))
        return arch.with_values(values)

    # ------------------------------------------------------------------ operators
    def sample(self, rng: RngLike = None) -> Architecture:
        """Uniform over the space: each node's canonical configuration is drawn uniformly."""
        gen = as_rng(rng)
        values: dict[str, Value] = {}
        for cell in CELLS:
            for i in self.node_ids:
                configs = _node_configs(i, self.ops, self.distinct_inputs)
                self._set_node(values, cell, i, configs[int(gen.integers(len(configs)))])
        return Architecture(self.name, values)

    def neighbors(self, arch: Architecture) -> list[Architecture]:
        """Cells that differ in one edge: its op, or the node it reads (deterministic order)."""
        self.validate(arch)
        out: dict[Architecture, None] = {}
        for cell in CELLS:
            for i in self.node_ids:
                node = self._node(arch, cell, i)
                for k in (0, 1):
                    (j, op), other = node[k], node[1 - k]
                    changes = [(j, o) for o in self.ops if o != op]
                    changes += [
                        (m, op) for m in range(i)
                        if m != j and not (self.distinct_inputs and m == other[0])
                    ]
                    for edge in changes:
                        values = dict(arch)
                        self._set_node(values, cell, i, self._canonical(edge, other))
                        cand = arch.with_values(values)
                        if cand != arch:
                            out[cand] = None
        return list(out)

    def mutate(self, arch: Architecture, rng: RngLike = None) -> Architecture:
        """A uniformly chosen neighbour: one edge gets a new op or a new input node."""
        gen = as_rng(rng)
        candidates = self.neighbors(arch)
        return candidates[int(gen.integers(len(candidates)))] if candidates else arch

    def crossover(self, a: Architecture, b: Architecture, rng: RngLike = None) -> Architecture:
        """Node-wise uniform crossover: each node's two edges come together from ``a`` or ``b``."""
        gen = as_rng(rng)
        self.validate(a)
        self.validate(b)
        values: dict[str, Value] = {}
        for cell in CELLS:
            for i in self.node_ids:
                parent = a if gen.random() < 0.5 else b
                self._set_node(values, cell, i, self._node(parent, cell, i))
        return Architecture(self.name, values)

    def size(self) -> int:
        """Exact number of distinct architectures: ``(prod_i |node configs of i|)^2``."""
        per_cell = math.prod(
            len(_node_configs(i, self.ops, self.distinct_inputs)) for i in self.node_ids
        )
        return per_cell**2

    # ------------------------------------------------------------------ genotypes
    def concat_of(self, edges: Sequence[Edge]) -> tuple[int, ...]:
        """The nodes a cell concatenates, by this space's rule (``all`` or ``loose`` ends)."""
        ids = list(self.node_ids)
        if self.concat_rule == "all":
            return tuple(ids)
        read = {j for _, j in edges}
        return tuple(i for i in ids if i not in read)

    def genotype(self, arch: Architecture) -> Genotype:
        """The :class:`Genotype` of ``arch`` (edges in canonical order)."""
        self.validate(arch)
        cells: dict[str, tuple[Edge, ...]] = {}
        for cell in CELLS:
            edges: list[Edge] = []
            for i in self.node_ids:
                for j, op in self._node(arch, cell, i):
                    edges.append((op, j))
            cells[cell] = tuple(edges)
        return Genotype(
            cells["normal"], self.concat_of(cells["normal"]),
            cells["reduce"], self.concat_of(cells["reduce"]),
        )

    def from_genotype(self, genotype: Genotype) -> Architecture:
        """The architecture of ``genotype`` in this space (edges sorted into canonical order).

        Raises an error naming the problem, and the options of a space that would hold it.
        """
        problems = self._incompatibilities(genotype)
        if problems:
            hint = ""
            try:
                opts = compatible_options(genotype)
                hint = "; a space that holds it: create_space('darts', " + ", ".join(
                    f"{k}={v!r}" for k, v in opts.items()) + ")"
            except InvalidArchitectureError:
                pass
            raise InvalidArchitectureError(
                "genotype does not fit this DARTS space: " + "; ".join(problems) + hint
            )
        values: dict[str, Value] = {}
        for cell in CELLS:
            for i, ((op0, j0), (op1, j1)) in zip(self.node_ids, genotype.nodes(cell)):
                self._set_node(values, cell, i, self._canonical((j0, op0), (j1, op1)))
        return self.make(values)

    def _incompatibilities(self, genotype: Genotype) -> list[str]:
        problems: list[str] = []
        for cell in CELLS:
            nodes = genotype.nodes(cell)
            if len(nodes) != self.nodes:
                problems.append(f"the {cell} cell has {len(nodes)} nodes, this space {self.nodes}")
                continue
            for i, pair in zip(self.node_ids, nodes):
                for op, j in pair:
                    if op not in self._op_index:
                        problems.append(
                            f"{cell} node {i} uses op {op!r}, not one of {allowed(self.ops)}"
                        )
                    if not 0 <= j < i:
                        problems.append(f"{cell} node {i} reads node {j}; allowed 0..{i - 1}")
                if self.distinct_inputs and pair[0][1] == pair[1][1]:
                    problems.append(f"{cell} node {i} reads node {pair[0][1]} twice")
            expected = self.concat_of(genotype.cell_edges(cell))
            if tuple(genotype.concat(cell)) != expected:
                problems.append(
                    f"{cell}_concat is {list(genotype.concat(cell))}, but this space "
                    f"(concat={self.concat_rule!r}) concatenates {list(expected)}"
                )
        return problems

    def to_string(self, arch: Architecture) -> str:
        """DARTS' text ``Genotype(normal=[...], normal_concat=[...], reduce=[...], ...)``."""
        return format_genotype(self.genotype(arch))

    def from_string(self, text: str) -> Architecture:
        """Parse a Genotype string (safely, no eval) or a published name such as ``"DARTS_V2"``."""
        genotype = published(text) if is_published_name(text) else parse_genotype(text)
        return self.from_genotype(genotype)

    # ------------------------------------------------------------------ analysis
    def is_degenerate(self, arch: Architecture, layers: int = 20) -> bool:
        """Whether the ``layers``-cell network's output cannot depend on its input.

        Only possible with ``none``: a node depends on the input when one of its edges has a real
        op and reads a node that does; a cell when a concatenated node does.
        """
        reach = {cell: self._cell_reach(arch, cell) for cell in CELLS}
        reductions = reduction_layers(layers)
        s0 = s1 = True  # the stem's output depends on the input
        for i in range(layers):
            reads0, reads1 = reach["reduce" if i in reductions else "normal"]
            s0, s1 = s1, (reads0 and s0) or (reads1 and s1)
        return not s1

    def _cell_reach(self, arch: Architecture, cell: str) -> tuple[bool, bool]:
        """Whether the cell's output depends on input 0 and on input 1."""
        result = []
        for source in (0, 1):
            dep = [j == source for j in range(2)]
            edges: list[Edge] = []
            for i in self.node_ids:
                node = self._node(arch, cell, i)
                dep.append(any(op != "none" and dep[j] for j, op in node))
                edges += [(op, j) for j, op in node]
            result.append(any(dep[i] for i in self.concat_of(edges)))
        return result[0], result[1]

    def graph(self, arch: Architecture, part: str | None = None) -> dict[str, Any]:
        """A drawable description of one cell (``part="normal"`` by default, or ``"reduce"``)."""
        cell = part or "normal"
        if cell not in CELLS:
            raise unknown("DARTS cell", cell, CELLS)
        genotype = self.genotype(arch)
        nodes: list[dict[str, str]] = [
            {"id": "0", "label": "c_{k-2}", "kind": "input"},
            {"id": "1", "label": "c_{k-1}", "kind": "input"},
        ]
        nodes += [{"id": str(i), "label": str(i - 2), "kind": "node"} for i in self.node_ids]
        nodes.append({"id": "out", "label": "c_{k}", "kind": "output"})
        edges: list[dict[str, str]] = []
        for i, pair in zip(self.node_ids, genotype.nodes(cell)):
            for op, j in pair:
                if op != "none":
                    edges.append({"src": str(j), "dst": str(i), "label": op})
        edges += [{"src": str(i), "dst": "out", "label": ""} for i in genotype.concat(cell)]
        title = f"{'Normal' if cell == 'normal' else 'Reduction'} cell"
        return {"title": title, "layout": "dag", "nodes": nodes, "edges": edges}

    # ------------------------------------------------------------------ networks
    def build(
        self,
        arch: Architecture,
        num_classes: int = 10,
        C: int = 36,
        layers: int = 20,
        auxiliary: bool = False,
        drop_path_prob: float = 0.0,
        in_channels: int = 3,
        dataset: str = "cifar",
        **kwargs: Any,
    ) -> DartsNetwork:
        """The DARTS evaluation network for ``arch`` (CIFAR defaults: C=36, 20 cells)."""
        reject_unknown(self.name, kwargs, ("num_classes", "C", "layers", "auxiliary",
                                           "drop_path_prob", "in_channels", "dataset"))
        for label, value in (("num_classes", num_classes), ("C", C), ("layers", layers),
                             ("in_channels", in_channels)):
            positive_int(label, value)
        flag("auxiliary", auxiliary)
        if C % 2 and dataset == "imagenet":
            raise ConfigError(f"C must be even for the ImageNet stem, got {C}")
        if not 0.0 <= float(drop_path_prob) < 1.0:
            raise ConfigError(f"drop_path_prob must be in [0, 1), got {drop_path_prob!r}")
        return network_from_genotype(
            self.genotype(arch), num_classes=num_classes, C=C, layers=layers,
            auxiliary=auxiliary, drop_path_prob=drop_path_prob, in_channels=in_channels,
            dataset=dataset,
        )



@lru_cache(maxsize=256)
def _node_configs(i: int, ops: tuple[str, ...], distinct: bool) -> tuple[NodeConfig, ...]:
    """Canonical ``((in0, op0), (in1, op1))`` configurations of node ``i`` (inputs 0..i-1)."""
    edges = [(j, o) for j in range(i) for o in ops]  # sorted by (input, op index)
    out: list[NodeConfig] = []
    for a in range(len(edges)):
        for b in range(a, len(edges)):
            e0, e1 = edges[a], edges[b]
            if e0[0] == e1[0] and distinct:
                continue
            out.append((e0, e1))
    return tuple(out)


# ============================================================================ published cells
def compatible_options(genotype: Genotype) -> dict[str, Any]:
    """Options of a DARTS space that holds ``genotype`` (e.g. for NASNet-A or AmoebaNet-A)."""
    counts = {len(genotype.nodes(c)) for c in CELLS}
    if len(counts) != 1:
        raise InvalidArchitectureError(
            f"the normal and reduction cells have different node counts {sorted(counts)}"
        )
    nodes = counts.pop()
    all_edges = genotype.normal + genotype.reduce
    ops_used = {op for op, _ in all_edges}
    unknown_ops = sorted(ops_used - set(EXTENDED_OPS))
    if unknown_ops:
        raise InvalidArchitectureError(
            f"genotype uses op(s) {allowed(unknown_ops)} outside the DARTS op sets "
            f"{allowed(EXTENDED_OPS)}"
        )
    options: dict[str, Any] = {
        "ops": "darts" if ops_used <= set(DARTS_OPS) else "extended",
        "allow_none": "none" in ops_used,
        "nodes": nodes,
        "distinct_inputs": all(a[1] != b[1] for c in CELLS for a, b in genotype.nodes(c)),
    }
    ids = tuple(range(2, nodes + 2))
    rules = []
    for cell in CELLS:
        concat = tuple(genotype.concat(cell))
        read = {j for _, j in genotype.cell_edges(cell)}
        loose = tuple(i for i in ids if i not in read)
        rules.append({r for r, expect in (("all", ids), ("loose", loose)) if concat == expect})
    common = rules[0] & rules[1]
    if not common:
        raise InvalidArchitectureError(
            "the genotype's concat lists follow neither rule (all intermediate nodes, or the nodes "
            "no other node reads)"
        )
    options["concat"] = "all" if "all" in common else "loose"
    return options


def space_for(genotype: Genotype | str) -> DartsSpace:
    """A :class:`DartsSpace` that holds ``genotype`` (a Genotype, its text, or a published name)."""
    if isinstance(genotype, str):
        genotype = published(genotype) if is_published_name(genotype) else parse_genotype(genotype)
    return DartsSpace(**compatible_options(genotype))


def parse(text: str) -> tuple[DartsSpace, Architecture]:
    """``(space, arch)`` for a Genotype string or published name, with a space that fits it."""
    genotype = published(text) if is_published_name(text) else parse_genotype(text)
    space = space_for(genotype)
    return space, space.from_genotype(genotype)


__all__ = [
    "CELLS",
    "DARTS_OPS",
    "EXTENDED_OPS",
    "PUBLISHED",
    "AuxiliaryHead",
    "CellSlot",
    "DartsCell",
    "DartsNetwork",
    "DartsSpace",
    "Genotype",
    "compatible_options",
    "drop_path",
    "fixed_op",
    "genotype_cells",
    "input_name",
    "make_genotype",
    "network_from_genotype",
    "op_name",
    "parse",
    "reduction_layers",
    "space_for",
]
