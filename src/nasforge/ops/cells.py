"""Building blocks of cell-based networks: a DAG cell over registry ops, a ResNet reduction block,
and a switch that removes BatchNorm from any built network.

The DAG cell follows the NAS-Bench-201 cell (Dong & Yang, ICLR 2020): node 0 is the cell input and
every later node is the *sum* of one op per incoming edge; the cell returns its last node. The ops
come from :func:`nasforge.ops.create_op`, so a derived network and a supernet share one definition.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nasforge.errors import ConfigError
from nasforge.ops.registry import ReLUConvBN, create_op


def edge_key(to: int, frm: int) -> str:
    """Key of the edge ``frm -> to`` in a :class:`DAGCell`'s ``edges`` ModuleDict."""
    return f"edge_{to}_{frm}"


class DAGCell(nn.Module):
    """A cell whose node ``i`` is ``sum(op_ij(node_j) for each edge j -> i)``; returns the last.

    ``edges`` lists ``(to, from, op_name)``. Edges leaving node 0 (the cell input) map ``c_in`` to
    ``c_out`` with ``stride``; the others map ``c_out`` to ``c_out`` with stride 1, as in
    NAS-Bench-201's inference cell. A ``none`` edge is a real (parameter-free) op that yields
    zeros, so a cell whose edges are all ``none`` still runs forward and backward and returns
    zeros of the right shape.
    """

    def __init__(
        self,
        edges: Sequence[tuple[int, int, str]],
        c_in: int,
        c_out: int,
        stride: int = 1,
        affine: bool = True,
    ) -> None:
        super().__init__()
        if not edges:
            raise ConfigError("a DAG cell needs at least one edge")
        self.num_nodes = 1 + max(to for to, _, _ in edges)
        # Ordered by destination node, so that forward computes nodes in topological order.
        self.plan: list[tuple[int, int, str]] = []
        ops = nn.ModuleDict()
        seen: set[tuple[int, int]] = set()
        for to, frm, op in sorted(edges, key=lambda e: (e[0], e[1])):
            if not 0 <= frm < to:
                raise ConfigError(
                    f"edge {frm} -> {to}: an edge must go from an earlier node to a later one"
                )
            if (to, frm) in seen:
                raise ConfigError(f"edge {frm} -> {to} is listed twice")
            seen.add((to, frm))
            key = edge_key(to, frm)
            if frm == 0:
                ops[key] = create_op(op, c_in, c_out, stride, affine)
            else:
                ops[key] = create_op(op, c_out, c_out, 1, affine)
            self.plan.append((to, frm, key))
        missing = [i for i in range(1, self.num_nodes) if all(to != i for to, _, _ in self.plan)]
        if missing:
            raise ConfigError(f"node(s) {missing} of the cell have no incoming edge")
        self.ops = ops
        self.c_in, self.c_out, self.stride = c_in, c_out, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes: list[torch.Tensor | None] = [x] + [None] * (self.num_nodes - 1)
        for to, frm, key in self.plan:
            src = nodes[frm]
            assert src is not None  # guaranteed by the topological order of ``plan``
            out = self.ops[key](src)
            current = nodes[to]
            nodes[to] = out if current is None else current + out
        last = nodes[-1]
        assert last is not None
        return last


class ResNetBasicBlock(nn.Module):
    """Residual block ``ReLUConvBN(3x3, stride) -> ReLUConvBN(3x3)`` plus a shortcut.

    NAS-Bench-201 places one between its stages (stride 2). Its shortcut is ``AvgPool2d(2) ->
    Conv1x1`` when strided (no BN, as published), a 1x1 ReLUConvBN when only the width changes, and
    the identity otherwise.
    """

    def __init__(self, c_in: int, c_out: int, stride: int, affine: bool = True) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ConfigError(f"ResNetBasicBlock stride must be 1 or 2, got {stride}")
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride, 1, 1, affine)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1, 1, affine)
        self.shortcut: nn.Module | None
        if stride == 2:
            self.shortcut = nn.Sequential(
                nn.AvgPool2d(kernel_size=2, stride=2, padding=0),
                nn.Conv2d(c_in, c_out, kernel_size=1, stride=1, padding=0, bias=False),
            )
        elif c_in != c_out:
            self.shortcut = ReLUConvBN(c_in, c_out, 1, 1, 0, 1, affine)
        else:
            self.shortcut = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.shortcut is None else self.shortcut(x)
        return residual + self.conv_b(self.conv_a(x))


_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def strip_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm layer of ``module`` (in place) by ``nn.Identity``; return ``module``.

    This turns any built network into its BatchNorm-free variant without a second network
    definition. The synflow zero-cost proxy is scored on that variant (Abdelfattah et al., ICLR
    2021, following Tanaka et al., NeurIPS 2020).
    """
    for name, child in list(module.named_children()):
        if isinstance(child, _BATCHNORMS):
            setattr(module, name, nn.Identity())
        else:
            strip_batchnorm(child)
    return module


__all__ = ["DAGCell", "ResNetBasicBlock", "edge_key", "strip_batchnorm"]
