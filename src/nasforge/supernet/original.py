"""Weights in the layout of the original implementations, in both directions.

Supported networks and the original code whose ``state_dict`` layout they read and write:

- :class:`~nasforge.supernet.darts.DartsSupernet` (``faithful=True``) — DARTS' search ``Network``
  (Liu et al., ICLR 2019; ``cnn/model_search.py`` of the DARTS code);
- :class:`~nasforge.spaces.darts.DartsNetwork` — DARTS' derived ``NetworkCIFAR`` /
  ``NetworkImageNet`` (``cnn/model.py``), given the genotype the original was built with;
- :class:`~nasforge.spaces.nb201.NB201Network` — NAS-Bench-201's ``TinyNetwork`` with its
  ``InferCell`` (Dong & Yang, ICLR 2020; ``xautodl/models/cell_infers``);
- :class:`~nasforge.supernet.nb201.NB201Supernet` — NAS-Bench-201's search networks
  (``TinyNetworkDarts``/``TinyNetworkGDAS`` with ``NAS201SearchCell``).

How the entries correspond (``ours -> original``):

* Ops. The original ``ReLUConvBN``/``DilConv``/``SepConv`` wrap an ``nn.Sequential`` named ``op``;
  ours are the sequential itself, so ``<op>.1.weight -> <op>.op.1.weight``. A ``SepConv`` is one
  sequential of 8 layers there and two stacked ``DilConv`` s here: ``0.k -> op.k`` and
  ``1.k -> op.(k+4)``. ``FactorizedReduce``, plain ``nn.Sequential`` ops and BatchNorms keep
  their names; the search network's BatchNorm after pooling is ``1.*`` in both.
* DARTS edges. A cell's mixed ops are numbered the same way in both: node 2 reads nodes 0, 1,
  node 3 reads 0, 1, 2, ... (``cells.i.ops.k -> cells.i._ops.k``), and a mixed op's candidates are
  indexed in ``PRIMITIVES`` order (``candidates.sep_conv_3x3 -> _ops.4``). The architecture
  weights ``alphas_normal``/``alphas_reduce`` (14 x 8; plain tensors there, so absent from the
  original ``state_dict``) are row ``k`` for edge ``k``. In a derived network the original keeps
  each node's two edges in the genotype's order and this library in canonical order (by input,
  then op), so the two of a node swap where the genotype lists them the other way.
* NAS-Bench-201 edges: ``cells.i.ops.edge_<to>_<from>`` is ``cells.i.layers.<k>`` (``k`` the
  position in the architecture string, node 1's input first) in ``TinyNetwork`` and
  ``cells.i.edges.<to><-<from>.<op index>`` in the search networks, whose ``arch_parameters``
  rows follow the sorted edge names (``1<-0, 2<-0, 2<-1, 3<-0, ...``: the same order).
  Residual blocks' ``shortcut`` is ``downsample``; ``preprocessN`` is our ``preN``; DARTS'
  auxiliary head has its ReLU and pooling inside ``features`` (indices shifted by 2).
* NAS-Bench-201's non-affine convolutions carry a bias (``bias=not affine``). A bias right before a
  BatchNorm only shifts the mean the BatchNorm subtracts, so it is folded into that BatchNorm's
  running mean (``mean - bias``): exactly the same output in eval mode, and in training mode the
  batch mean absorbs it. The other way, such biases are written as zeros. A network saved with
  ``track_running_stats=False`` has no running statistics; they start at mean 0, variance 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from nasforge.errors import ConfigError, allowed
from nasforge.ops.cells import DAGCell, ResNetBasicBlock
from nasforge.ops.registry import DilConv, Pool, ReLUConvBN, SepConv, create_op
from nasforge.spaces.darts import DARTS_OPS, DartsCell, DartsNetwork, Genotype
from nasforge.spaces.darts_genotypes import is_published_name, parse_genotype, published
from nasforge.spaces.nb201 import NB201_OPS, NB201Network
from nasforge.supernet.darts import DartsSupernet, PoolBN
from nasforge.supernet.mixed import MixedOp
from nasforge.supernet.nb201 import NB201Supernet

#: The candidate order of DARTS' ``PRIMITIVES`` and of NAS-Bench-201's search space.
DARTS_PRIMITIVES: tuple[str, ...] = DARTS_OPS
NB201_PRIMITIVES: tuple[str, ...] = NB201_OPS
_RUNNING = ("running_mean", "running_var", "num_batches_tracked")


@dataclass
class OriginalLayout:
    """How one of our networks' entries are named in the original implementation."""

    #: our state entry -> the original's entry
    names: dict[str, str] = field(default_factory=dict)
    #: the original's conv bias -> our running mean of the BatchNorm right after that conv
    folded_biases: dict[str, str] = field(default_factory=dict)
    #: the original's architecture tensor -> our alpha entry of each of its rows
    alphas: dict[str, list[str]] = field(default_factory=dict)


def _op_entry(op: nn.Module, local: str, conv_bias: bool) -> tuple[str, str | None]:
    """``(original local name, original conv bias or None)`` of entry ``local`` of op ``op``."""
    if isinstance(op, PoolBN):
        position, _, rest = local.partition(".")
        if position == "0":
            return _op_entry(op[0], rest, conv_bias)
        return local, None
    if isinstance(op, Pool) and local.startswith("preprocess."):
        assert op.preprocess is not None
        name, bias = _op_entry(op.preprocess, local[len("preprocess.") :], conv_bias)
        return f"preprocess.{name}", None if bias is None else f"preprocess.{bias}"
    if isinstance(op, SepConv):
        half, _, rest = local.partition(".")
        index, _, leaf = rest.partition(".")
        return f"op.{int(index) + 4 * int(half)}.{leaf}", None
    if isinstance(op, (ReLUConvBN, DilConv)):
        # The original NB201 convs have a bias when non-affine; its place is the conv before the BN.
        bn_index = len(op) - 1
        bias = f"op.{bn_index - 1}.bias" if conv_bias and local == f"{bn_index}.running_mean" else None
        return f"op.{local}", bias
    return local, None


def _add_op(layout: OriginalLayout, op: nn.Module, ours: str, orig: str, conv_bias: bool = False) -> None:
    for local in op.state_dict():
        name, bias = _op_entry(op, local, conv_bias)
        layout.names[f"{ours}.{local}"] = f"{orig}.{name}"
        if bias is not None:
            layout.folded_biases[f"{orig}.{bias}"] = f"{ours}.{local}"


def _add_plain(layout: OriginalLayout, module: nn.Module, ours: str, orig: str) -> None:
    for local in module.state_dict():
        layout.names[f"{ours}{local}"] = f"{orig}{local}"


def _node_permutation(cell: DartsCell, original: tuple[tuple[str, int], ...] | None) -> list[int]:
    """Original edge position of each of our edges (identity without a genotype).

    Each node's edges are matched by the node they read; two edges reading the same node (spaces
    with ``distinct_inputs=False``) are told apart by the shapes of their weights.
    """
    inputs = [j for node in cell.edge_inputs for j in node]
    if original is None:
        return list(range(len(inputs)))
    if len(original) != len(inputs):
        raise ConfigError(f"the genotype lists {len(original)} edges for a cell with {len(inputs)}")
    conv = cell.pre1[1]
    assert isinstance(conv, nn.Conv2d)  # pre1 is ReLU -> Conv -> BN to the cell's width
    channels = conv.out_channels
    out: list[int] = []
    start = 0
    for node in cell.edge_inputs:
        free = list(range(start, start + len(node)))
        for k in range(start, start + len(node)):
            j = inputs[k]
            match = [t for t in free if original[t][1] == j]
            if not match:
                raise ConfigError(
                    f"the genotype does not fit the network: node {len(out) // 2 + 2} reads node {j} "
                    f"here, but the genotype's node reads {sorted(original[t][1] for t in free)}"
                )
            mine = _signature(cell.ops[k])
            stride = 2 if cell.reduction and j < 2 else 1
            pick = next(
                (t for t in match if _signature(create_op(original[t][0], channels, channels, stride, True)) == mine),
                match[0],
            )
            free.remove(pick)
            out.append(pick)
        start += len(node)
    return out


def _signature(op: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(k, tuple(v.shape)) for k, v in op.state_dict().items()]


def _genotype(genotype: Genotype | str | None) -> Genotype | None:
    if genotype is None or isinstance(genotype, Genotype):
        return genotype
    return published(genotype) if is_published_name(genotype) else parse_genotype(genotype)


def _darts_layout(net: DartsNetwork, root: str, search: bool, genotype: Genotype | None) -> OriginalLayout:
    layout = OriginalLayout()
    for name, module in net.named_children():
        if name == "cells":
            continue
        if name == "auxiliary_head":
            for local in module.state_dict():
                part, _, rest = local.partition(".")
                if part == "features":
                    index, _, leaf = rest.partition(".")
                    local_orig = f"features.{int(index) + 2}.{leaf}"  # ReLU + pooling come first
                else:
                    local_orig = local
                layout.names[f"{root}{name}.{local}"] = f"{name}.{local_orig}"
            continue
        _add_plain(layout, module, f"{root}{name}.", f"{name}.")
    for i, cell in enumerate(net.cells):
        assert isinstance(cell, DartsCell)
        ours, orig = f"{root}cells.{i}", f"cells.{i}"
        _add_op(layout, cell.pre0, f"{ours}.pre0", f"{orig}.preprocess0")
        _add_op(layout, cell.pre1, f"{ours}.pre1", f"{orig}.preprocess1")
        cell_type = "reduce" if cell.reduction else "normal"
        perm = _node_permutation(cell, None if genotype is None else genotype.cell_edges(cell_type))
        for k, op in enumerate(cell.ops):
            if search:
                assert isinstance(op, MixedOp)
                for cand, module in op.candidates.items():
                    _add_op(
                        layout,
                        module,
                        f"{ours}.ops.{k}.candidates.{cand}",
                        f"{orig}._ops.{k}._ops.{_index(DARTS_PRIMITIVES, cand, 'DARTS')}",
                    )
            else:
                _add_op(layout, op, f"{ours}.ops.{k}", f"{orig}._ops.{perm[k]}")
    return layout


def _index(primitives: tuple[str, ...], op: str, code: str) -> int:
    if op not in primitives:
        raise ConfigError(
            f"op {op!r} has no place in the original {code} search network, whose candidates are {allowed(primitives)}"
        )
    return primitives.index(op)


def _nb201_layout(net: nn.Module, root: str, search: bool) -> OriginalLayout:
    layout = OriginalLayout()
    for name, module in net.named_children():
        if name != "cells":
            _add_plain(layout, module, f"{root}{name}.", f"{name}.")
            continue
        assert isinstance(module, nn.ModuleList)
        for i, cell in enumerate(module):
            ours, orig = f"{root}cells.{i}", f"cells.{i}"
            if isinstance(cell, ResNetBasicBlock):
                _add_op(layout, cell.conv_a, f"{ours}.conv_a", f"{orig}.conv_a")
                _add_op(layout, cell.conv_b, f"{ours}.conv_b", f"{orig}.conv_b")
                if cell.shortcut is not None:
                    _add_op(layout, cell.shortcut, f"{ours}.shortcut", f"{orig}.downsample")
                continue
            assert isinstance(cell, DAGCell)
            for k, (to, frm, key) in enumerate(cell.plan):
                op = cell.ops[key]
                if not search:
                    _add_op(layout, op, f"{ours}.ops.{key}", f"{orig}.layers.{k}")
                    continue
                assert isinstance(op, MixedOp)
                for cand, module in op.candidates.items():
                    bn = next((m for m in module.modules() if isinstance(m, nn.BatchNorm2d)), None)
                    _add_op(
                        layout,
                        module,
                        f"{ours}.ops.{key}.candidates.{cand}",
                        f"{orig}.edges.{to}<-{frm}.{_index(NB201_PRIMITIVES, cand, 'NAS-Bench-201')}",
                        conv_bias=bn is not None and not bn.affine,
                    )
    return layout


def original_layout(model: nn.Module, genotype: Genotype | str | None = None) -> OriginalLayout:
    """The correspondence of ``model``'s entries with the original code's (see the module doc).

    ``genotype`` (a :class:`Genotype`, its text or a published name) is the one a derived DARTS
    network was built with in the original code, in the original's edge order; without it our
    order is assumed.
    """
    if isinstance(model, DartsSupernet):
        if not model.faithful:
            raise ConfigError(
                "the original DARTS search network has a BatchNorm after each pooling candidate; "
                "build the supernet with faithful=True to read or write its weights"
            )
        assert isinstance(model.net, DartsNetwork)
        layout = _darts_layout(model.net, "net.", True, None)
        for cell_type in ("normal", "reduce"):
            cell = next(
                c for c in model.net.cells if isinstance(c, DartsCell) and c.reduction == (cell_type == "reduce")
            )
            layout.alphas[f"alphas_{cell_type}"] = [_alpha_entry(model, op) for op in cell.ops]
        return layout
    if isinstance(model, NB201Supernet):
        layout = _nb201_layout(model.net, "net.", True)
        dag = next(c for c in model.net.modules() if isinstance(c, DAGCell))
        layout.alphas["arch_parameters"] = [_alpha_entry(model, dag.ops[key]) for _, _, key in dag.plan]
        return layout
    if isinstance(model, DartsNetwork):
        return _darts_layout(model, "", False, _genotype(genotype))
    if isinstance(model, NB201Network):
        return _nb201_layout(model, "", False)
    raise ConfigError(
        f"no original layout is known for {type(model).__name__}; supported: DartsSupernet "
        "(faithful=True), DartsNetwork, NB201Network, NB201Supernet"
    )


def _alpha_entry(model: nn.Module, op: nn.Module) -> str:
    assert isinstance(op, MixedOp) and isinstance(model, (DartsSupernet, NB201Supernet))
    target = model.alpha(op.key)
    return next(f"alphas.{n}" for n, p in model.alphas.items() if p is target)


def from_original(
    model: nn.Module, state: Mapping[str, torch.Tensor], genotype: Genotype | str | None = None
) -> dict[str, torch.Tensor]:
    """A ``state_dict`` that ``model`` loads (strictly) from the original code's ``state``.

    Architecture weights (``alphas_normal``/``alphas_reduce`` for DARTS, ``arch_parameters`` for
    NAS-Bench-201) are read when ``state`` has them; otherwise ``model``'s own are kept. Entries
    that do not fit raise a :class:`ConfigError` naming them.
    """
    layout = original_layout(model, genotype)
    own = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    missing: list[str] = []
    for ours, orig in layout.names.items():
        if orig in state:
            out[ours] = state[orig].detach().clone()
        elif ours.rsplit(".", 1)[-1] in _RUNNING:
            # track_running_stats=False in the original: start from fresh statistics.
            leaf = ours.rsplit(".", 1)[-1]
            fresh = {
                "running_mean": torch.zeros_like,
                "running_var": torch.ones_like,
                "num_batches_tracked": torch.zeros_like,
            }[leaf]
            out[ours] = fresh(own[ours])
        else:
            missing.append(orig)
    for bias, mean in layout.folded_biases.items():
        if bias in state:
            out[mean] = out[mean] - state[bias].detach().to(out[mean].dtype)
    for orig, entries in layout.alphas.items():
        if orig not in state:
            out.update({e: own[e].detach().clone() for e in entries})
            continue
        rows = state[orig]
        if rows.shape[0] != len(entries):
            raise ConfigError(f"{orig} has {rows.shape[0]} rows, the network {len(entries)} edges")
        out.update({e: rows[k].detach().clone() for k, e in enumerate(entries)})
    known = set(layout.names.values()) | set(layout.folded_biases) | set(layout.alphas)
    unexpected = sorted(k for k in state if k not in known)
    shapes = [
        f"{orig} {tuple(out[o].shape)} vs {tuple(own[o].shape)}"
        for o, orig in layout.names.items()
        if o in out and out[o].shape != own[o].shape
    ]
    if missing or unexpected or shapes:
        parts = [
            f"{label} {len(items)} (e.g. {', '.join(items[:3])})"
            for label, items in (("missing", missing), ("unexpected", unexpected), ("other shape", shapes))
            if items
        ]
        raise ConfigError(
            f"the original weights do not fit this {type(model).__name__} ({'; '.join(parts)}); "
            "build it with the original's options (C, layers/N, classes, affine, genotype)"
        )
    return out


def to_original(model: nn.Module, genotype: Genotype | str | None = None) -> dict[str, torch.Tensor]:
    """``model``'s weights under the original code's names (the inverse of :func:`from_original`).

    Architecture weights come out as the original's matrices (``alphas_normal``, ...); folded
    conv biases as zeros.
    """
    layout = original_layout(model, genotype)
    own = model.state_dict()
    out = {orig: own[ours].detach().clone() for ours, orig in layout.names.items()}
    for bias, mean in layout.folded_biases.items():
        out[bias] = torch.zeros_like(own[mean])
    for orig, entries in layout.alphas.items():
        out[orig] = torch.stack([own[e].detach().clone() for e in entries])
    return out


__all__ = [
    "DARTS_PRIMITIVES",
    "NB201_PRIMITIVES",
    "OriginalLayout",
    "from_original",
    "original_layout",
    "to_original",
]
