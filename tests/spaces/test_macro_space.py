"""Macro space: conditional decisions, exact size, operators, and networks that always build."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

import nasforge
from nasforge.errors import ConfigError, InvalidArchitectureError
from nasforge.space import Architecture
from nasforge.space.checks import generic_is_degenerate
from nasforge.spaces.macro import (
    MACRO_OPS,
    MacroSpace,
    layer_filters,
    layer_op,
    layer_skip,
    reduction_positions,
)


@pytest.fixture(scope="module")
def space() -> MacroSpace:
    s = nasforge.create_space("macro")
    assert isinstance(s, MacroSpace)
    return s


def make(
    space: MacroSpace, layers: list[tuple[str, int]], skips: set[tuple[int, int]]
) -> Architecture:
    values: dict[str, object] = {"num_layers": len(layers)}
    for j, (op, filters) in enumerate(layers):
        values[layer_op(j)] = op
        values[layer_filters(j)] = filters
        for i in range(j - 1):
            values[layer_skip(j, i)] = (i, j) in skips
    return space.make(values)  # type: ignore[arg-type]


def test_later_layers_exist_only_when_the_network_is_deep_enough(space: MacroSpace) -> None:
    arch = make(space, [("nor_conv_3x3", 16)] * 8, set())
    assert layer_op(7) in arch and layer_op(8) not in arch and layer_skip(7, 5) in arch
    assert space.decision(layer_op(8)).conditions[0].values == tuple(range(9, 21))
    with pytest.raises(InvalidArchitectureError, match="does not exist"):
        space.validate(arch.replace(**{layer_op(8): "nor_conv_3x3"}))
    with pytest.raises(InvalidArchitectureError, match="lacks decision"):
        space.validate(arch.replace(num_layers=9))
    rng = np.random.default_rng(0)
    for _ in range(50):
        a = space.sample(rng)
        n = int(a["num_layers"])
        assert 8 <= n <= 20
        assert all(layer_op(j) in a for j in range(n)) and layer_op(n) not in a


def test_size_is_exact_and_fast(space: MacroSpace) -> None:
    start = time.perf_counter()
    size = space.size()
    assert time.perf_counter() - start < 2.0
    # Independent count: for each layer count L, every layer j picks an op, a width and
    # one boolean per earlier layer i <= j - 2.
    expected = sum(
        int(np.prod([9 * 3 * 2 ** max(j - 1, 0) for j in range(n)], dtype=object))
        for n in range(8, 21)
    )
    assert size == expected


def test_size_matches_enumeration_on_a_small_space() -> None:
    small = MacroSpace(min_layers=1, max_layers=3, filters=(2, 4), ops=("skip_connect", "none"))
    archs = list(small.enumerate())
    assert len(archs) == len(set(archs)) == small.size() == 2 * 2 + 16 + 16 * 8  # L = 1, 2, 3


def test_operators_follow_the_layer_count(space: MacroSpace) -> None:
    rng = np.random.default_rng(1)
    for _ in range(30):
        a, b = space.sample(rng), space.sample(rng)
        for new in (space.mutate(a, rng), space.crossover(a, b, rng)):
            space.validate(new)
    short = make(space, [("nor_conv_3x3", 16)] * 8, set())
    deep = make(space, [("avg_pool_3x3", 64)] * 20, {(0, 19)})
    for _ in range(10):
        child = space.crossover(short, deep, rng)
        space.validate(child)
        # Layers beyond the shorter parent come from the deeper one.
        if child["num_layers"] == 20:
            assert child[layer_op(12)] == "avg_pool_3x3" and child[layer_skip(19, 0)] is True
    arch = space.sample(2)
    nbrs = space.neighbors(arch)
    assert len(set(nbrs)) == len(nbrs) and arch not in nbrs
    counts = {int(n["num_layers"]) for n in nbrs}
    assert counts == set(range(8, 21))  # one neighbour per other layer count
    for n in nbrs:
        space.validate(n)


def test_encoding_marks_inactive_layers_with_zeros(space: MacroSpace) -> None:
    short = make(space, [("nor_conv_3x3", 16)] * 8, set())
    vec = space.encode(short)
    assert vec.shape == (space.encoding_size,)
    assert vec.sum() == len(short)  # one hot per active decision


@pytest.mark.parametrize("seed", range(4))
def test_samples_build_and_run(space: MacroSpace, seed: int) -> None:
    torch.manual_seed(seed)
    arch = space.sample(seed)
    model = space.build(arch, num_classes=6, width_mult=0.25)
    model.train()
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 6)
    out.sum().backward()


def test_widths_skips_and_resolutions_fit_together(space: MacroSpace) -> None:
    layers = [("nor_conv_3x3", 16), ("max_pool_3x3", 64), ("skip_connect", 32),
              ("dwsep_conv_5x5", 16), ("avg_pool_3x3", 64), ("none", 32), ("nor_conv_7x7", 16),
              ("skip_connect", 64), ("dwsep_conv_3x3", 32)]
    every_skip = {(i, j) for j in range(len(layers)) for i in range(j - 1)}
    arch = make(space, layers, every_skip)
    model = space.build(arch, width_mult=0.5, stem_channels=6)
    shapes: list[tuple[int, ...]] = []
    for op in model.ops:
        op.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape)))
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    assert reduction_positions(9, 2) == (3, 6)
    sizes = [s[2] for s in shapes]
    assert sizes == [32, 32, 32, 16, 16, 16, 8, 8, 8]
    assert [s[1] for s in shapes] == [f // 2 for _, f in layers]


def test_degenerate_architectures(space: MacroSpace) -> None:
    layers = [("nor_conv_3x3", 16)] * 8
    cut = make(space, [*layers[:4], ("none", 16), *layers[5:]], set())
    assert space.is_degenerate(cut)
    assert generic_is_degenerate(space, cut, {"width_mult": 0.25})
    bypassed = make(space, [*layers[:4], ("none", 16), *layers[5:]], {(3, 5)})
    assert not space.is_degenerate(bypassed)
    assert not generic_is_degenerate(space, bypassed, {"width_mult": 0.25})
    last_none = make(space, [*layers[:7], ("none", 16)], {(i, 7) for i in range(6)})
    assert space.is_degenerate(last_none)


def test_graph_lists_layers_and_skips(space: MacroSpace) -> None:
    arch = make(space, [("nor_conv_3x3", 16)] * 8, {(0, 2), (1, 7)})
    g = space.graph(arch)
    assert len(g["nodes"]) == 8 + 3
    assert [(e["src"], e["dst"]) for e in g["edges"] if e.get("kind") == "skip"] == [
        ("L0", "L2"), ("L1", "L7")]
    assert "stride 2" in g["nodes"][2 + 2]["label"]  # layer 2 = 8 // 3 reduces


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"min_layers": 5, "max_layers": 3}, "must not exceed"),
        ({"filters": (16, 33)}, "even integers"),
        ({"ops": ("nor_conv_3x3", "fancy_conv")}, "fancy_conv"),
        ({"skips": "yes"}, "skips must be true or false"),
        ({"min_layers": 0}, "min_layers must be a positive integer"),
    ],
)
def test_bad_options(options: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        nasforge.create_space("macro", **options)


def test_bad_build_options(space: MacroSpace) -> None:
    arch = space.sample(0)
    with pytest.raises(ConfigError, match="width_mult"):
        space.build(arch, width_mult=0)
    with pytest.raises(ConfigError, match="unknown build option"):
        space.build(arch, C=16)


def test_default_ops_are_registered_names() -> None:
    from nasforge.ops import OPS

    assert set(MACRO_OPS) <= set(OPS)


def test_monotone_filters_keep_widths_from_shrinking() -> None:
    small = MacroSpace(min_layers=1, max_layers=3, filters=(2, 4, 6), ops=("skip_connect", "none"),
                       monotone_filters=True)
    archs = list(small.enumerate())
    # Widths of L layers: multisets of size L from 3 values; L = 1, 2, 3 (one skip bit at L = 3).
    assert len(archs) == len(set(archs)) == small.size() == 2 * 3 + 4 * 6 + 8 * 10 * 2
    space = MacroSpace(monotone_filters=True)
    assert space.size() < nasforge.create_space("macro").size()
    rng = np.random.default_rng(0)
    for _ in range(30):
        a, b = space.sample(rng), space.sample(rng)
        for arch in (a, space.mutate(a, rng), space.crossover(a, b, rng), *space.neighbors(a)[:5]):
            widths = [f for _, f, _ in space.layers(arch)]
            assert widths == sorted(widths)
    narrowing = make(MacroSpace(), [("nor_conv_3x3", 64)] + [("nor_conv_3x3", 16)] * 7, set())
    with pytest.raises(InvalidArchitectureError, match="layer 1 has 16 filters, fewer than layer 0's 64"):
        space.make(dict(narrowing))
    # Completing it (what strategies that choose decision by decision do) sorts the widths.
    repaired = space.complete(dict(narrowing))
    assert [f for _, f, _ in space.layers(repaired)] == [16] * 7 + [64]


def test_options_rebuild_the_same_space() -> None:
    space = MacroSpace(min_layers=2, max_layers=4, filters=(8, 16), skips=False, monotone_filters=True)
    options = space.options()
    assert options == {"min_layers": 2, "max_layers": 4, "filters": [8, 16],
                       "ops": list(MACRO_OPS), "skips": False, "monotone_filters": True}
    again = nasforge.create_space("macro", **options)
    assert isinstance(again, MacroSpace)
    assert again.options() == options and again.size() == space.size()
    with pytest.raises(ConfigError, match="monotone_filters must be true or false"):
        MacroSpace(monotone_filters="yes")  # type: ignore[arg-type]


def test_main_path_is_the_stem_and_the_layers(space: MacroSpace) -> None:
    model = space.build(space.sample(3), width_mult=0.25)
    path = model.main_path()
    assert path[0] is model.stem and path[1:] == list(model.ops)
    with pytest.raises(ConfigError, match="no parts; got part 'reduce'"):
        space.graph(space.sample(3), part="reduce")
