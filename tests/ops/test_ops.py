"""The operation registry and the cell building blocks (DAG cell, ResNet block, BN stripping).

Ops are listed at collection time, so a newly registered op is tested with no edit here."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nasforge.errors import ConfigError, UnknownNameError
from nasforge.ops import OPS, create_op, list_ops
from nasforge.ops.cells import DAGCell, ResNetBasicBlock, edge_key, strip_batchnorm

OP_NAMES = list_ops()
NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
DARTS_OPS = (
    "none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
    "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5",
)  # fmt: skip


def expected_side(size: int, stride: int) -> int:
    # "Same" padding: a stride-s op maps n pixels to ceil(n / s).
    return -(-size // stride)


def test_registry_holds_the_benchmark_ops() -> None:
    assert set(NB201_OPS) <= set(OP_NAMES)
    assert set(DARTS_OPS) <= set(OP_NAMES)
    assert sorted(OPS) == OP_NAMES


@pytest.mark.parametrize("name", OP_NAMES)
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize(("c_in", "c_out"), [(8, 8), (4, 8)])
@pytest.mark.parametrize("size", [7])  # odd: the case where padding mistakes show
def test_op_output_shape_and_backward(
    name: str, stride: int, c_in: int, c_out: int, size: int
) -> None:
    torch.manual_seed(0)
    op = create_op(name, c_in, c_out, stride, affine=True)
    assert isinstance(op, nn.Module)
    x = torch.randn(2, c_in, size, size, requires_grad=True)
    out = op(x)
    side = expected_side(size, stride)
    assert out.shape == (2, c_out, side, side)
    assert torch.isfinite(out).all()
    out.pow(2).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("name", OP_NAMES)
def test_affine_false_has_no_bn_parameters(name: str) -> None:
    op = create_op(name, 8, 8, 1, affine=False)
    for m in op.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            assert m.weight is None and m.bias is None


def test_none_gives_zeros_and_skip_is_identity() -> None:
    x = torch.randn(2, 4, 6, 6)
    assert torch.count_nonzero(create_op("none", 4, 4, 1)(x)) == 0
    assert torch.count_nonzero(create_op("none", 4, 8, 2)(x)) == 0
    assert torch.equal(create_op("skip_connect", 4, 4, 1)(x), x)


def test_parameter_counts_of_nb201_convs() -> None:
    # ReLU -> conv (no bias) -> affine BN.
    def count(name: str) -> int:
        return sum(p.numel() for p in create_op(name, 16, 16).parameters())

    assert count("nor_conv_3x3") == 16 * 16 * 9 + 32
    assert count("nor_conv_1x1") == 16 * 16 + 32
    for free in ("none", "skip_connect", "avg_pool_3x3"):
        assert count(free) == 0


def test_unknown_op_lists_every_op() -> None:
    with pytest.raises(UnknownNameError) as info:
        create_op("conv_9x9", 4, 4)
    msg = str(info.value)
    assert "'conv_9x9'" in msg
    for name in OP_NAMES:
        assert repr(name) in msg
    assert isinstance(info.value, ConfigError)


# ---------------------------------------------------------------------------------- cells
EDGES = [(1, 0, "nor_conv_3x3"), (2, 0, "skip_connect"), (2, 1, "none"), (3, 2, "avg_pool_3x3"),
         (3, 0, "nor_conv_1x1"), (3, 1, "skip_connect")]  # fmt: skip


def test_dag_cell_sums_its_edges_in_topological_order() -> None:
    torch.manual_seed(0)
    cell = DAGCell(EDGES, 4, 4).eval()
    x = torch.randn(2, 4, 6, 6)
    ops = cell.ops
    n1 = ops[edge_key(1, 0)](x)
    n2 = ops[edge_key(2, 0)](x) + ops[edge_key(2, 1)](n1)
    n3 = ops[edge_key(3, 0)](x) + ops[edge_key(3, 1)](n1) + ops[edge_key(3, 2)](n2)
    assert torch.allclose(cell(x), n3)
    assert cell.num_nodes == 4


def test_dag_cell_changes_width_and_resolution_only_on_input_edges() -> None:
    cell = DAGCell(EDGES, 4, 8, stride=2)
    assert cell(torch.randn(2, 4, 8, 8)).shape == (2, 8, 4, 4)
    conv = cell.ops[edge_key(1, 0)][1]  # type: ignore[index]
    assert (conv.in_channels, conv.stride) == (4, (2, 2))
    inner = cell.ops[edge_key(3, 1)]
    assert isinstance(inner, type(create_op("skip_connect", 8, 8)))  # identity between nodes


@pytest.mark.parametrize(
    ("edges", "match"),
    [
        ([], "at least one edge"),
        ([(1, 1, "none")], "from an earlier node"),
        ([(1, 0, "none"), (1, 0, "none")], "listed twice"),
        ([(2, 0, "none")], "node\\(s\\) \\[1\\] .* no incoming edge"),
        ([(1, 0, "conv_9x9")], "unknown operation 'conv_9x9'"),
    ],
)
def test_dag_cell_refuses_bad_edges(edges: list[tuple[int, int, str]], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        DAGCell(edges, 4, 4)


def test_resnet_block_layout_and_shapes() -> None:
    block = ResNetBasicBlock(4, 8, stride=2)
    assert block(torch.randn(2, 4, 8, 8)).shape == (2, 8, 4, 4)
    assert isinstance(block.shortcut, nn.Sequential)
    pool, conv = block.shortcut
    assert isinstance(pool, nn.AvgPool2d) and conv.kernel_size == (1, 1)
    # conv_a 3x3 (4->8) + BN, conv_b 3x3 (8->8) + BN, shortcut 1x1 (4->8), no bias anywhere.
    expected = 4 * 8 * 9 + 16 + 8 * 8 * 9 + 16 + 4 * 8
    assert sum(p.numel() for p in block.parameters()) == expected
    assert ResNetBasicBlock(8, 8, stride=1).shortcut is None
    assert ResNetBasicBlock(4, 8, stride=1)(torch.randn(1, 4, 5, 5)).shape == (1, 8, 5, 5)
    with pytest.raises(ConfigError, match="stride must be 1 or 2, got 3"):
        ResNetBasicBlock(4, 8, stride=3)


def test_strip_batchnorm_removes_every_bn_in_place() -> None:
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), DAGCell(EDGES, 4, 4), ResNetBasicBlock(4, 8, 2),
        nn.Flatten(), nn.LazyLinear(2), nn.BatchNorm1d(2),
    )  # fmt: skip
    assert strip_batchnorm(net) is net
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())
    assert net(torch.randn(2, 3, 10, 10)).shape == (2, 2)
