"""The DARTS supernet: DARTS' search network (Liu et al., ICLR 2019) over the DARTS cell space.

It is the space's own network skeleton (:class:`nasforge.spaces.darts.DartsNetwork`) with cells in
which intermediate node ``i`` sums one mixed op from *every* earlier node ``j < i`` (14 edges for 4
nodes) and concatenates all intermediate nodes. The mixed ops hold every candidate of the space plus
``none`` (DARTS' 8 ops), built by the registry like the derived cells' ops. All normal cells share
one set of architecture logits and all reduction cells another (``alpha_normal``/``alpha_reduce``).

A derived architecture is a path in which each node's two chosen edges carry their ops and every
other edge carries ``none``; ``derive`` keeps, per node, the two incoming edges whose strongest
non-``none`` op weighs most, each with that op (the paper's discretization). Search-network
defaults are the paper's: C=16, 8 cells.

``faithful=True`` (the default) builds the search network of DARTS' published code: the cells'
input preprocessing BatchNorms follow ``affine`` (non-affine by default) and every pooling
candidate is followed by a non-affine BatchNorm (:class:`PoolBN`), which puts the parameter-free
pooling outputs on the scale of the normalized conv outputs before the architecture weights mix
them. C=16, 8 cells has then 1,930,618 weights, as the original. ``faithful=False`` is the
*derived-equivalent* variant: learnable preprocessing BatchNorms and bare pooling, so every path
of the supernet computes exactly its derived network (``extract(arch)``), pooling included.

PC-DARTS (Xu et al., ICLR 2020) options: ``partial_channels=K`` sends 1/K of each edge's input
channels through its candidates (:class:`~nasforge.supernet.partial.PartialChannelOp`), and
``edge_normalization=True`` adds one logit per input edge of every node (``betas``, shared by the
cells of a type like the alphas): in ``softmax`` mode a node sums its edges weighted by the softmax
of its betas, and ``derive`` ranks edges by that weight times the strongest op's. A
partial-channel supernet's candidates are ``C/K`` channels wide, so it has no derived network
to extract weights into. ``checkpointing`` is :meth:`Supernet.set_checkpointing` (``"cell"``
checkpoints each DARTS cell).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from nasforge.errors import ConfigError
from nasforge.ops.registry import Pool, create_op
from nasforge.space.architecture import Architecture
from nasforge.spaces.darts import CELLS, CellSlot, DartsCell, DartsNetwork, DartsSpace, Genotype
from nasforge.supernet.base import Supernet, check_arch, register_supernet
from nasforge.supernet.mixed import MixedOp, Selection, Weighted
from nasforge.supernet.partial import PartialChannelOp

_BUILD_OPTIONS = ("num_classes", "C", "layers", "in_channels", "affine", "faithful",
                  "partial_channels", "edge_normalization", "checkpointing")


class PoolBN(nn.Sequential):
    """A pooling candidate followed by a non-affine BatchNorm (DARTS' search network only).

    Entry ``0`` is the registry's pooling op (what the derived network uses), entry ``1`` the
    search-only BatchNorm, which has no counterpart in derived networks.
    """

    def __init__(self, pool: nn.Module, channels: int) -> None:
        super().__init__(pool, nn.BatchNorm2d(channels, affine=False))


def edge_key(cell: str, node: int, source: int) -> str:
    """Decision key of the supernet edge ``source -> node`` in the normal or reduction cell."""
    return f"{cell}/node{node}/from{source}"


def node_key(cell: str, node: int) -> str:
    """Name of the edge-normalization logits (``betas``) of ``node`` in the normal or reduction cell."""
    return f"{cell}__node{node}"


def _parse_key(key: str) -> tuple[str, int, int]:
    cell, node, source = key.split("/")
    return cell, int(node[len("node"):]), int(source[len("from"):])


class DartsSupernet(Supernet):
    """Weight-sharing DARTS search network (see the module doc)."""

    root = "net."

    def __init__(
        self,
        space: DartsSpace,
        num_classes: int = 10,
        C: int = 16,
        layers: int = 8,
        in_channels: int = 3,
        affine: bool = False,
        faithful: bool = True,
        partial_channels: int = 1,
        edge_normalization: bool = False,
        checkpointing: str = "none",
    ) -> None:
        if not space.distinct_inputs or space.concat_rule != "all":
            raise ConfigError(
                "the DARTS supernet needs a space with distinct_inputs=True and concat='all' (one op "
                f"per edge, every node concatenated); this one has distinct_inputs="
                f"{space.distinct_inputs!r}, concat={space.concat_rule!r}"
            )
        for label, value in (("affine", affine), ("faithful", faithful),
                             ("edge_normalization", edge_normalization)):
            if not isinstance(value, bool):
                raise ConfigError(f"{label} must be True or False, got {value!r}")
        if isinstance(partial_channels, bool) or not isinstance(partial_channels, int) or partial_channels < 1:
            raise ConfigError(
                f"partial_channels must be an integer >= 1 (1: every channel; PC-DARTS uses 4), got "
                f"{partial_channels!r}"
            )
        if C % partial_channels:
            raise ConfigError(
                f"partial_channels={partial_channels} must divide C={C} (each edge computes "
                f"C/partial_channels channels)"
            )
        build: dict[str, Any] = {"num_classes": num_classes, "C": C, "layers": layers,
                                 "in_channels": in_channels}
        # Validate the options exactly as the derived network would (same error messages).
        space.build(space.sample(0), **build)
        super().__init__(space, build)
        self.affine = affine
        self.faithful = faithful
        self.partial_channels = partial_channels
        self.edge_normalization = edge_normalization
        self.op_names: tuple[str, ...] = (
            space.ops if "none" in space.ops else ("none", *space.ops)
        )
        node_ids = list(space.node_ids)

        def make_cell(slot: CellSlot) -> nn.Module:
            cell = "reduce" if slot.reduction else "normal"
            nodes = [[(edge_key(cell, i, j), j) for j in range(i)] for i in node_ids]
            return DartsCell(
                nodes, node_ids, slot.c_prev_prev, slot.c_prev, slot.channels, slot.reduction,
                slot.reduction_prev, make_op=self._make_mixed,
                # The original search network's preprocessing is as (non-)affine as its ops.
                preprocess_affine=affine if faithful else True,
            )

        self.net = DartsNetwork(make_cell, num_classes=num_classes, C=C, layers=layers,
                                in_channels=in_channels)
        self._init_alphas()
        # After the alphas, so that a supernet without betas draws the same alphas as before.
        self.betas = nn.ParameterDict()
        if edge_normalization:
            for cell in CELLS:
                for i in node_ids:
                    self.betas[node_key(cell, i)] = nn.Parameter(1e-3 * torch.randn(i))
        self.set_checkpointing(checkpointing)

    def _make_mixed(self, key: str, channels: int, stride: int) -> nn.Module:
        width = channels // self.partial_channels
        candidates: dict[str, nn.Module] = {}
        for name in self.op_names:
            op = create_op(name, width, width, stride, self.affine)
            candidates[name] = PoolBN(op, width) if self.faithful and isinstance(op, Pool) else op
        if self.partial_channels == 1:
            return MixedOp(key, candidates)
        return PartialChannelOp(key, candidates, channels, self.partial_channels, stride)

    def cells(self) -> list[nn.Module]:
        return list(self.net.cells)

    def arch_parameters(self) -> list[nn.Parameter]:
        """The op logits (``alphas``) and, with edge normalization, the edge logits (``betas``)."""
        return super().arch_parameters() + list(self.betas.values())

    def edge_weights(self) -> dict[str, torch.Tensor]:
        """Edge key -> its edge-normalization weight (softmax of its node's betas); empty without
        edge normalization."""
        out: dict[str, torch.Tensor] = {}
        for name, betas in self.betas.items():
            cell, node = name.split("__node")
            weights = torch.softmax(betas, dim=-1)
            for j in range(int(node)):
                out[edge_key(cell, int(node), j)] = weights[j]
        return out

    def selections(self) -> dict[str, Selection]:
        sel = super().selections()
        # Edge normalization belongs to the continuous relaxation; sampled paths and explicit
        # weights (forward_with_weights) compute single edges as they are.
        if self.edge_normalization and self.mode == "softmax" and self._override is None:
            for key, weight in self.edge_weights().items():
                current = sel[key]
                assert isinstance(current, Weighted)
                sel[key] = Weighted(current.weights, edge=weight)
        return sel

    def extract(self, arch: Architecture, **build_overrides: Any) -> nn.Module:
        if self.partial_channels > 1:
            raise ConfigError(
                f"a partial-channel supernet (partial_channels={self.partial_channels}) has candidate "
                f"ops {self.partial_channels} times narrower than the derived network: train the "
                "derived network (space.build(arch)) from scratch, as PC-DARTS does"
            )
        return super().extract(arch, **build_overrides)

    def _derived_leaf(self, op: MixedOp, choice: str, leaf: str) -> str | None:
        if not isinstance(op.candidates[choice], PoolBN):
            return leaf
        position, _, rest = leaf.partition(".")
        # ``0.<x>`` is the pooling op itself; ``1.<x>`` the search-only BatchNorm (dropped).
        return rest if position == "0" else None

    def body(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x)
        return out

    @property
    def dspace(self) -> DartsSpace:
        """The DARTS space (typed)."""
        assert isinstance(self.space, DartsSpace)
        return self.space

    # ------------------------------------------------------------------ architectures
    def path_of(self, arch: Architecture) -> dict[str, str]:
        """Chosen edges carry their ops; every other edge carries ``none``."""
        check_arch(self.space, arch)
        genotype = self.dspace.genotype(arch)
        path = {key: "none" for key in self.keys}
        for cell in CELLS:
            for i, pair in zip(self.dspace.node_ids, genotype.nodes(cell)):
                for op, j in pair:
                    path[edge_key(cell, i, j)] = op
        return path

    def derive(self, exclude_none: bool = True, **options: Any) -> Architecture:
        """DARTS' discretization: per node the top-2 inputs by strongest non-``none`` weight."""
        if options or exclude_none is not True:
            raise ConfigError(
                "the DARTS supernet derives cells the paper's way only (top-2 inputs per node, "
                f"'none' excluded); unsupported option(s): {sorted(options) or {'exclude_none': False}}"
            )
        cells: dict[str, list[tuple[str, int]]] = {}
        edge_weights = {k: float(w.detach()) for k, w in self.edge_weights().items()}
        for cell in CELLS:
            edges: list[tuple[str, int]] = []
            for i in self.dspace.node_ids:
                scored = []
                for j in range(i):
                    key = edge_key(cell, i, j)
                    probs = torch.softmax(self.alpha(key).detach().float().cpu(), dim=-1)
                    names = self.candidates(key)
                    best = max((k for k, n in enumerate(names) if n != "none"),
                               key=lambda k: float(probs[k]))
                    # PC-DARTS ranks edges by edge weight x op weight (1 without edge normalization).
                    scored.append((float(probs[best]) * edge_weights.get(key, 1.0), -j, names[best], j))
                # Strongest two inputs; ties go to the earlier input (stable, repeatable).
                top = sorted(scored, reverse=True)[:2]
                edges.extend((op, j) for _, _, op, j in sorted(top, key=lambda t: t[3]))
            cells[cell] = edges
        concat = tuple(self.dspace.node_ids)
        genotype = Genotype(tuple(cells["normal"]), concat, tuple(cells["reduce"]), concat)
        return self.dspace.from_genotype(genotype)

    def _derived_prefix(self, op: MixedOp, prefix: str, choice: str, arch: Architecture) -> str | None:
        cell, node, source = _parse_key(op.key)
        genotype = self.dspace.genotype(arch)
        pair = genotype.nodes(cell)[node - 2]
        positions = [k for k, (_, j) in enumerate(pair) if j == source]
        if not positions:
            return None  # an edge the architecture does not use ('none' in the path)
        # ``...cells.<n>.ops.<edge index>``: the derived cell lists two edges per node, in order.
        head = prefix.rsplit(".", 1)[0]
        return f"{head}.{2 * (node - 2) + positions[0]}"

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info["kwargs"]["affine"] = self.affine
        info["kwargs"]["faithful"] = self.faithful
        # Recorded only when set, so checkpoints written before these options existed still match.
        if self.partial_channels != 1:
            info["kwargs"]["partial_channels"] = self.partial_channels
        if self.edge_normalization:
            info["kwargs"]["edge_normalization"] = True
        return info


@register_supernet("darts")
def darts_supernet(space: DartsSpace, **kwargs: Any) -> DartsSupernet:
    """Supernet of a DARTS space; options ``num_classes, C (16), layers (8), in_channels, affine
    (False), faithful (True), partial_channels (1), edge_normalization (False), checkpointing
    ("none")`` (see the module doc)."""
    unknown = sorted(set(kwargs) - set(_BUILD_OPTIONS))
    if unknown:
        raise ConfigError(
            f"unknown supernet option(s) {unknown} for space 'darts'; allowed: "
            + ", ".join(repr(o) for o in _BUILD_OPTIONS)
        )
    return DartsSupernet(space, **kwargs)


__all__ = ["DartsSupernet", "PoolBN", "darts_supernet", "edge_key", "node_key"]
