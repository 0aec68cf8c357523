"""NAS-Bench-201 space: official strings, exact parameter counts against the benchmark table,
encodings, degenerate cells and the network's forward/backward."""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from itertools import product
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import nasforge
from nasforge.errors import ConfigError, InvalidArchitectureError
from nasforge.ops.cells import DAGCell, ResNetBasicBlock
from nasforge.space import Architecture
from nasforge.spaces.nb201 import NB201_EDGES, NB201_OPS, NB201Space, edge_name

# Index 6111, the best cell on CIFAR-10 (94.37 % test accuracy).
BEST = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
)
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


@pytest.fixture(scope="module")
def space() -> NB201Space:
    sp = nasforge.create_space("nb201")
    assert isinstance(sp, NB201Space)
    return sp


@pytest.fixture(scope="module")
def rows(nb201_dir: Path) -> list[dict[str, str]]:
    with open(nb201_dir / "nb201.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def arch_of(space: NB201Space, ops: tuple[str, ...]) -> Architecture:
    return space.make({edge_name(i, j): op for (i, j), op in zip(NB201_EDGES, ops)})


def every_arch(space: NB201Space) -> Iterator[Architecture]:
    for ops in product(NB201_OPS, repeat=6):
        yield arch_of(space, ops)


# ---------------------------------------------------------------------------------- strings
def test_official_string_maps_to_edges(space: NB201Space) -> None:
    arch = space.from_string(BEST)
    assert arch == space.make({
        "edge_1_0": "nor_conv_3x3",
        "edge_2_0": "nor_conv_3x3",
        "edge_2_1": "nor_conv_3x3",
        "edge_3_0": "skip_connect",
        "edge_3_1": "nor_conv_3x3",
        "edge_3_2": "nor_conv_1x1",
    })
    assert space.to_string(arch) == BEST
    assert space.edges(arch)[-1] == (3, 2, "nor_conv_1x1")


def test_every_table_string_round_trips(space: NB201Space, rows: list[dict[str, str]]) -> None:
    assert len(rows) == 15625
    archs = set()
    for row in rows:
        arch = space.from_string(row["arch"])
        assert space.to_string(arch) == row["arch"]
        archs.add(arch)
    # The table holds each member of the space exactly once.
    assert len(archs) == 15625 == space.size()


def test_whole_space_is_valid_including_degenerate_cells(space: NB201Space) -> None:
    members = list(space.enumerate())
    assert len(members) == 15625
    assert set(members) == set(every_arch(space))
    assert space.validate(space.from_string(ALL_NONE))


def test_surrounding_whitespace_is_ignored(space: NB201Space) -> None:
    assert space.from_string(f"  {BEST}\n") == space.from_string(BEST)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("|nor_conv_3x3~0|+|none~0|none~1|", "must have 3 nodes separated by '\\+'"),
        ("|nor_conv_3x3~0|+|none~0|+|none~0|none~1|none~2|", "node 2 .* must list 2 input"),
        ("nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|", "node 1 .* must list 1 input"),
        ("|nor_conv_3x3~1|+|none~0|none~1|+|none~0|none~1|none~2|", "input 0 is 'nor_conv_3x3~1'"),
        ("|nor_conv_3x3|+|none~0|none~1|+|none~0|none~1|none~2|", "input 0 is 'nor_conv_3x3'"),
        ("|none~0|+|none~1|none~0|+|none~0|none~1|none~2|", "node 2 .* input 0 is 'none~1'"),
        ("", "must have 3 nodes"),
    ],
)
def test_malformed_strings_name_the_bad_part(space: NB201Space, text: str, match: str) -> None:
    with pytest.raises(InvalidArchitectureError, match=match):
        space.from_string(text)


def test_unknown_op_lists_the_five_ops(space: NB201Space) -> None:
    text = "|nor_conv_3x3~0|+|none~0|sep_conv_3x3~1|+|none~0|none~1|none~2|"
    with pytest.raises(InvalidArchitectureError) as info:
        space.from_string(text)
    msg = str(info.value)
    assert "'sep_conv_3x3'" in msg and "1 -> 2" in msg
    for op in NB201_OPS:
        assert repr(op) in msg


def test_unknown_op_through_make_lists_the_five_ops(space: NB201Space) -> None:
    values = dict(space.from_string(BEST))
    values["edge_3_1"] = "conv"
    with pytest.raises(InvalidArchitectureError) as info:
        space.make(values)
    msg = str(info.value)
    assert "'edge_3_1'" in msg and all(repr(op) in msg for op in NB201_OPS)


def test_non_string_is_refused(space: NB201Space) -> None:
    with pytest.raises(InvalidArchitectureError, match="got int"):
        space.from_string(5)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------- params
def test_param_count_of_best_cell_is_published_value(
    space: NB201Space, rows: list[dict[str, str]]
) -> None:
    row = rows[6111]
    assert row["index"] == "6111" and row["arch"] == BEST and row["params_m"] == "1.073466"
    assert n_params(space.build(space.from_string(BEST))) == 1_073_466


@pytest.mark.parametrize(("index", "params"), [(0, 129_306), (11, 802_426), (284, 101_306)])
def test_param_count_of_official_sample_cells(
    space: NB201Space, rows: list[dict[str, str]], index: int, params: int
) -> None:
    # The official-format sample files carry these counts for indices 0, 11 and 284.
    assert n_params(space.build(space.from_string(rows[index]["arch"]))) == params


@pytest.mark.slow  # ~3.5 s: 200 full-size networks are built (no forward pass)
def test_param_counts_equal_table_for_200_random_rows(
    space: NB201Space, rows: list[dict[str, str]]
) -> None:
    chosen = random.Random(201).sample(rows, 200)
    worst = 0.0
    for row in chosen:
        model = space.build(space.from_string(row["arch"]), num_classes=10)
        worst = max(worst, abs(n_params(model) / 1e6 - float(row["params_m"])))
    assert worst <= 1e-6


def test_param_count_follows_options(space: NB201Space) -> None:
    arch = space.from_string(ALL_NONE)
    base = n_params(space.build(arch))
    # Only the classifier depends on the number of classes: 64 weights + 1 bias per class.
    assert n_params(space.build(arch, num_classes=100)) - base == 90 * 65
    # Only the stem conv depends on the input channels: 16 * 9 weights per channel.
    assert base - n_params(space.build(arch, in_channels=1)) == 2 * 16 * 9


# ---------------------------------------------------------------------------------- networks
def test_network_layout(space: NB201Space) -> None:
    model = space.build(space.from_string(BEST), C=8, N=2)
    cells = list(model.cells)
    kinds = [type(c).__name__ for c in cells]
    assert kinds == ["DAGCell"] * 2 + ["ResNetBasicBlock"] + ["DAGCell"] * 2 + [
        "ResNetBasicBlock"
    ] + ["DAGCell"] * 2
    widths = [c.c_out for c in cells if isinstance(c, DAGCell)]
    assert widths == [8, 8, 16, 16, 32, 32]
    blocks = [c for c in cells if isinstance(c, ResNetBasicBlock)]
    assert all(isinstance(b.shortcut, nn.Sequential) for b in blocks)
    shortcut = blocks[0].shortcut
    assert isinstance(shortcut, nn.Sequential) and isinstance(shortcut[0], nn.AvgPool2d)
    assert model.classifier.in_features == 32


@pytest.mark.parametrize("which", ["best", "all_none", "sample"])
def test_forward_backward_published_size(space: NB201Space, which: str) -> None:
    torch.manual_seed(0)
    arch = {"best": space.from_string(BEST), "all_none": space.from_string(ALL_NONE)}.get(
        which, space.sample(0)
    )
    model = space.build(arch)
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)
    out.sum().backward()
    assert model.classifier.weight.grad is not None
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_all_none_cell_outputs_zero_and_still_trains_the_head(space: NB201Space) -> None:
    torch.manual_seed(0)
    model = space.build(space.from_string(ALL_NONE), C=4, N=1)
    cell_outputs: list[torch.Tensor] = []
    for cell in model.cells:
        if isinstance(cell, DAGCell):
            cell.register_forward_hook(lambda m, i, o: cell_outputs.append(o))
    out = model(torch.randn(2, 3, 32, 32))
    assert all(torch.count_nonzero(o) == 0 for o in cell_outputs)
    out.sum().backward()
    grad = model.classifier.weight.grad
    assert grad is not None and torch.isfinite(grad).all()
    assert model.classifier.bias.grad is not None
    assert torch.count_nonzero(model.classifier.bias.grad) > 0


def test_in_channels_option_runs_grayscale(space: NB201Space) -> None:
    model = space.build(space.from_string(BEST), in_channels=1, num_classes=3, C=4, N=1)
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 3)


def test_without_batchnorm(space: NB201Space) -> None:
    arch = space.from_string(BEST)
    with_bn = space.build(arch, C=4, N=1)
    without = space.build(arch, C=4, N=1, use_bn=False)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in without.modules())
    bn_params = sum(
        p.numel()
        for m in with_bn.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm)
        for p in m.parameters()
    )
    assert bn_params > 0
    assert n_params(with_bn) - n_params(without) == bn_params
    # synflow runs it in float64 on an all-ones input.
    out = without.double()(torch.ones(1, 3, 32, 32, dtype=torch.float64))
    assert out.dtype == torch.float64 and torch.isfinite(out).all()


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"C": 0}, "C must be a positive integer, got 0"),
        ({"N": 1.5}, "N must be a positive integer"),
        ({"num_classes": -1}, "num_classes must be a positive integer"),
        ({"use_bn": "no"}, "use_bn must be True or False"),
        ({"width": 3}, "unknown build option\\(s\\) 'width'.*'num_classes', 'C', 'N'"),
    ],
)
def test_bad_build_options(space: NB201Space, options: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        space.build(space.from_string(BEST), **options)


def test_build_refuses_foreign_architecture(space: NB201Space) -> None:
    with pytest.raises(InvalidArchitectureError):
        space.build(Architecture("darts", {"x": 1}))


# ---------------------------------------------------------------------------------- encodings
def test_encoding_lengths(space: NB201Space) -> None:
    arch = space.from_string(BEST)
    assert space.encode(arch, "onehot").shape == (30,)
    assert space.encode(arch, "path").shape == (84,)
    assert space.encode(arch).shape == (114,) == (space.encoding_size,)
    parts = [space.encode(arch, "onehot"), space.encode(arch, "path")]
    assert np.array_equal(space.encode(arch), np.concatenate(parts))
    for kind in ("onehot", "path", "both"):
        assert space.encoding_length(kind) == len(space.encode(arch, kind))


def test_onehot_layout(space: NB201Space) -> None:
    vec = space.encode(space.from_string(BEST), "onehot").reshape(6, 5)
    picked = [NB201_OPS[i] for i in vec.argmax(axis=1)]
    assert picked == ["nor_conv_3x3"] * 3 + ["skip_connect", "nor_conv_3x3", "nor_conv_1x1"]
    assert vec.sum() == 6


def test_path_encoding_documented_indices(space: NB201Space) -> None:
    # Non-none ops index: skip 0, conv1x1 1, conv3x3 2, avg 3; length-L blocks start at 0, 4, 20.
    conv3 = arch_of(space, ("nor_conv_3x3",) * 6)
    assert np.flatnonzero(space.encode(conv3, "path")).tolist() == [2, 4 + 2 * 4 + 2, 20 + 42]
    # BEST: 3->0 skip; 0->1->3 (c3, c3); 0->2->3 (c3, c1); 0->1->2->3 (c3, c3, c1).
    best = space.encode(space.from_string(BEST), "path")
    assert np.flatnonzero(best).tolist() == [0, 4 + 9, 4 + 10, 20 + 2 * 16 + 2 * 4 + 1]


def test_path_encoding_matches_enumerated_paths(space: NB201Space) -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        arch = space.sample(rng)
        paths = space.paths(arch)
        assert all("none" not in p for p in paths)
        assert space.encode(arch, "path").sum() == len(set(paths))


def test_unknown_encoding_kind(space: NB201Space) -> None:
    with pytest.raises(ConfigError, match="unknown encoding kind 'adj'; allowed: 'onehot', 'path'"):
        space.encode(space.from_string(BEST), "adj")


def test_encoding_distinguishes_every_cell(space: NB201Space) -> None:
    codes = {space.encode(a, "onehot").tobytes() for a in every_arch(space)}
    assert len(codes) == 15625


# ---------------------------------------------------------------------------------- degenerate
def reaches_output(arch: Architecture) -> bool:
    """Independent check: graph search from node 0 over non-none edges."""
    reached = {0}
    for i in (1, 2, 3):
        if any(j in reached and arch[edge_name(i, j)] != "none" for j in range(i)):
            reached.add(i)
    return 3 in reached


def test_degenerate_detection_over_whole_space(space: NB201Space) -> None:
    count = 0
    for arch in every_arch(space):
        degenerate = space.is_degenerate(arch)
        assert degenerate == (not reaches_output(arch))
        assert degenerate == (space.encode(arch, "path").sum() == 0)
        count += degenerate
    assert 0 < count < 15625
    assert space.is_degenerate(space.from_string(ALL_NONE))
    assert not space.is_degenerate(space.from_string(BEST))


@pytest.mark.parametrize(
    "text",
    [
        # Input reaches node 1 and 2, but both edges into node 3 from them are none.
        "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|none~0|none~1|none~2|",
        # Only node 1 -> 3 and 2 -> 3 carry ops, but nothing reaches node 1 or 2.
        "|none~0|+|none~0|none~1|+|none~0|nor_conv_3x3~1|avg_pool_3x3~2|",
    ],
)
def test_degenerate_cells_output_zeros(space: NB201Space, text: str) -> None:
    arch = space.from_string(text)
    assert space.is_degenerate(arch)
    cell = DAGCell(space.edges(arch), 4, 4)
    out = cell(torch.randn(2, 4, 8, 8))
    assert out.shape == (2, 4, 8, 8) and torch.count_nonzero(out) == 0


def test_non_degenerate_cells_output_signal(space: NB201Space) -> None:
    rng = np.random.default_rng(1)
    torch.manual_seed(0)
    checked = 0
    while checked < 5:
        arch = space.sample(rng)
        if space.is_degenerate(arch):
            continue
        cell = DAGCell(space.edges(arch), 4, 4)
        assert torch.count_nonzero(cell(torch.randn(2, 4, 8, 8))) > 0
        checked += 1


# ---------------------------------------------------------------------------------- operators
def test_mutate_and_neighbors_change_one_edge(space: NB201Space) -> None:
    rng = np.random.default_rng(0)
    for _ in range(30):
        arch = space.sample(rng)
        child = space.mutate(arch, rng)
        assert sum(child[k] != arch[k] for k in arch) == 1
        nbrs = space.neighbors(arch)
        assert len(nbrs) == len(set(nbrs)) == 6 * 4
        assert all(sum(n[k] != arch[k] for k in arch) == 1 for n in nbrs)
