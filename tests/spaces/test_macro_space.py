"""Macro space: conditional decisions, exact size, operators, and networks that always build."""

from __future__ import annotations

import itertools
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
    layer_act,
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
    # Without 'none' every architecture is connected: for each layer count L, every layer j picks
    # an op, a width and one boolean per earlier layer i <= j - 2.
    live = MacroSpace(ops=[o for o in MACRO_OPS if o != "none"])
    expected = sum(
        int(np.prod([8 * 3 * 2 ** max(j - 1, 0) for j in range(n)], dtype=object))
        for n in range(8, 21)
    )
    assert live.size() == expected
    unconstrained = sum(
        int(np.prod([9 * 3 * 2 ** max(j - 1, 0) for j in range(n)], dtype=object))
        for n in range(8, 21)
    )
    assert expected < size < unconstrained  # the cut-off networks are not counted


def _brute_force_connected(ops: tuple[str, ...], filters: int, acts: int, activated: set[str],
                           lo: int, hi: int, skips: bool) -> int:
    """Count connected architectures by listing every raw combination (independent of the space)."""
    total = 0
    for n in range(lo, hi + 1):
        cands = [[(j, i) for i in range(j - 1)] if skips else [] for j in range(n)]
        for layer_ops in itertools.product(ops, repeat=n):
            act_ways = acts ** sum(o in activated for o in layer_ops)
            for bits in itertools.product((False, True), repeat=sum(map(len, cands))):
                on = iter(bits)
                reach: list[bool] = []
                prev = True
                for j, op in enumerate(layer_ops):
                    fed = prev
                    for _, i in cands[j]:
                        fed = (next(on) and reach[i]) or fed
                    prev = fed and op != "none"
                    reach.append(prev)
                total += act_ways * filters**n * reach[-1]
    return total


@pytest.mark.parametrize(
    "options",
    [
        {"min_layers": 1, "max_layers": 3, "filters": (2, 4), "ops": ("skip_connect", "none")},
        {"min_layers": 1, "max_layers": 4, "filters": (2,), "ops": ("none", "nor_conv_3x3", "max_pool_3x3"),
         "activations": ("relu", "swish")},
        {"min_layers": 2, "max_layers": 4, "filters": (2,), "ops": ("none", "skip_connect"), "skips": False},
    ],
)
def test_size_matches_enumeration_and_counts_only_connected_networks(options: dict[str, object]) -> None:
    small = MacroSpace(**options)  # type: ignore[arg-type]
    archs = list(small.enumerate())
    assert len(archs) == len(set(archs)) == small.size()
    acts = len(small.activations) if len(small.activations) > 1 else 1
    expected = _brute_force_connected(small.ops, len(small.filters), acts, set(small.activated_ops),
                                      small.min_layers, small.max_layers, small.skips)
    assert small.size() == expected
    assert all(not small.is_degenerate(a) for a in archs)


def _cut_off(space: MacroSpace, arch: Architecture) -> bool:
    """Independent check: does any path lead from the stem to the output avoiding 'none'?"""
    reach: list[bool] = []
    for j in range(int(arch["num_layers"])):
        fed = j == 0 or reach[j - 1] or any(
            arch.get(layer_skip(j, i)) is True and reach[i] for i in range(j - 1))
        reach.append(fed and arch[layer_op(j)] != "none")
    return not reach[-1]


def test_operators_never_produce_cut_off_networks(space: MacroSpace) -> None:
    rng = np.random.default_rng(0)
    for _ in range(100):
        a, b = space.sample(rng), space.sample(rng)
        for arch in (a, space.mutate(a, rng), space.crossover(a, b, rng)):
            assert not _cut_off(space, arch)


@pytest.mark.slow
def test_none_of_1000_samples_mutations_or_crossovers_is_cut_off(space: MacroSpace) -> None:
    rng = np.random.default_rng(1)
    made = {"sample": 0, "mutate": 0, "crossover": 0}
    cut = dict.fromkeys(made, 0)
    pool = [space.sample(rng) for _ in range(50)]
    for _ in range(1000):
        a, b = pool[int(rng.integers(len(pool)))], pool[int(rng.integers(len(pool)))]
        for kind, arch in (("sample", space.sample(rng)), ("mutate", space.mutate(a, rng)),
                           ("crossover", space.crossover(a, b, rng))):
            made[kind] += 1
            cut[kind] += _cut_off(space, arch)
            assert kind != "mutate" or arch != a
    assert made == dict.fromkeys(made, 1000) and cut == dict.fromkeys(made, 0)


def test_repair_gives_the_last_reached_none_layer_a_live_op(space: MacroSpace) -> None:
    values: dict[str, object] = {"num_layers": 8}
    for j in range(8):
        values[layer_op(j)] = "none" if j in (2, 5) else "nor_conv_3x3"
        values[layer_filters(j)] = 16
    with pytest.raises(InvalidArchitectureError, match=r"crosses a 'none' layer \(layer 2\)"):
        make(space, [("none" if j in (2, 5) else "nor_conv_3x3", 16) for j in range(8)], set())
    fixed = space.complete(values)  # type: ignore[arg-type]
    # Layer 5 is not reached (layer 2 cuts it off), so layer 2 is repaired first, then layer 5.
    assert fixed[layer_op(2)] == MACRO_OPS[0] and fixed[layer_op(5)] == MACRO_OPS[0]
    bypass = {**values, layer_skip(3, 1): True, layer_skip(7, 4): True}
    fixed = space.complete(bypass)  # type: ignore[arg-type]
    assert fixed[layer_op(2)] == "none" and fixed[layer_op(5)] == "none"  # already connected
    assert all(not _cut_off(space, n) for n in space.neighbors(fixed))


def test_activation_per_layer() -> None:
    space = MacroSpace(min_layers=3, max_layers=3, activations=("relu", "relu6", "swish"),
                       ops=("nor_conv_3x3", "max_pool_3x3", "global_pool", "dw_conv_3x3"))
    assert space.activated_ops == ("nor_conv_3x3", "dw_conv_3x3")
    values = {"num_layers": 3, layer_op(0): "nor_conv_3x3", layer_act(0): "swish",
              layer_op(1): "max_pool_3x3", layer_op(2): "dw_conv_3x3", layer_act(2): "relu6",
              layer_skip(2, 0): True, **{layer_filters(j): 16 for j in range(3)}}
    arch = space.make(values)
    with pytest.raises(InvalidArchitectureError, match="does not exist"):
        space.make({**values, layer_act(1): "relu"})  # pooling has no activation to choose
    model = space.build(arch)
    kinds = [{type(m).__name__ for m in op.modules()} & {"ReLU", "ReLU6", "SiLU"} for op in model.ops]
    assert kinds == [{"SiLU"}, set(), {"ReLU6"}]
    assert "swish" in space.graph(arch)["nodes"][2]["label"]
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 10)
    assert {"activations": ["relu", "relu6", "swish"]}.items() <= space.options().items()
    assert "activations" not in MacroSpace().options()  # unchanged default
    with pytest.raises(ConfigError, match="activations must be distinct names"):
        MacroSpace(activations=("relu", "tanhh"))


def test_global_pool_and_depthwise_ops_keep_the_layer_shapes() -> None:
    from nasforge.ops import create_op

    x = torch.randn(2, 8, 9, 9)
    for name in ("global_pool", "dw_conv_3x3", "atrous_conv_3x3"):
        for c_out, stride in ((8, 1), (16, 2), (12, 1)):
            out = create_op(name, 8, c_out, stride, True)(x)
            assert out.shape == (2, c_out, 5 if stride == 2 else 9, 5 if stride == 2 else 9), name
    pooled = create_op("global_pool", 8, 8, 1, True)(x)
    assert torch.allclose(pooled, x.mean(dim=(2, 3), keepdim=True).expand_as(x))
    dw = create_op("dw_conv_3x3", 8, 16, 1, True)
    assert dw[1].groups == 8  # each output channel sees one input channel


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


def test_cut_off_architectures_are_not_members(space: MacroSpace) -> None:
    layers = [("nor_conv_3x3", 16)] * 8
    with pytest.raises(InvalidArchitectureError, match="does not depend on the input"):
        make(space, [*layers[:4], ("none", 16), *layers[5:]], set())
    bypassed = make(space, [*layers[:4], ("none", 16), *layers[5:]], {(3, 5)})
    assert not space.is_degenerate(bypassed)
    assert not generic_is_degenerate(space, bypassed, {"width_mult": 0.25})
    with pytest.raises(InvalidArchitectureError, match="layer 7"):
        make(space, [*layers[:7], ("none", 16)], {(i, 7) for i in range(6)})


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
        ({"skips": "yes"}, "skips'? .*must be true or false"),
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
    small = MacroSpace(min_layers=1, max_layers=3, filters=(2, 4, 6),
                       ops=("skip_connect", "max_pool_3x3"), monotone_filters=True)
    archs = list(small.enumerate())
    # Widths of L layers: multisets of size L from 3 values; L = 1, 2, 3 (one skip bit at L = 3).
    assert len(archs) == len(set(archs)) == small.size() == 2 * 3 + 4 * 6 + 8 * 10 * 2
    space = MacroSpace(monotone_filters=True)
    assert space.size() < nasforge.create_space("macro").size()
    rng = np.random.default_rng(0)
    for _ in range(30):
        a, b = space.sample(rng), space.sample(rng)
        for arch in (a, space.mutate(a, rng), space.crossover(a, b, rng), *space.neighbors(a)[:5]):
            widths = [f for _, f, _, _ in space.layers(arch)]
            assert widths == sorted(widths)
    narrowing = make(MacroSpace(), [("nor_conv_3x3", 64)] + [("nor_conv_3x3", 16)] * 7, set())
    with pytest.raises(InvalidArchitectureError, match="layer 1 has 16 filters, fewer than layer 0's 64"):
        space.make(dict(narrowing))
    # Completing it (what strategies that choose decision by decision do) sorts the widths.
    repaired = space.complete(dict(narrowing))
    assert [f for _, f, _, _ in space.layers(repaired)] == [16] * 7 + [64]


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
