"""DARTS cell space: decisions and constraints, genotype codec, published cells, networks."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

import nasforge
from nasforge.errors import ConfigError, InvalidArchitectureError, UnknownNameError
from nasforge.space.checks import generic_is_degenerate
from nasforge.spaces.darts import (
    CELLS,
    DartsCell,
    DartsSpace,
    compatible_options,
    drop_path,
    input_name,
    op_name,
    parse,
    reduction_layers,
    space_for,
)
from nasforge.spaces.darts_genotypes import (
    AMOEBANET,
    DARTS_V1,
    DARTS_V2,
    NASNET,
    Genotype,
    format_genotype,
    make_genotype,
    parse_genotype,
)

# DARTS_V2 exactly as the DARTS code prints it (with range(...) for the concat lists).
V2_TEXT = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
    "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), "
    "('dil_conv_3x3', 2)], normal_concat=range(2, 6), reduce=[('max_pool_3x3', 0), "
    "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
    "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=range(2, 6))"
)


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def space() -> DartsSpace:
    s = nasforge.create_space("darts")
    assert isinstance(s, DartsSpace)
    return s


def node_edges(genotype: Genotype, cell: str) -> list[Counter[tuple[str, int]]]:
    return [Counter(pair) for pair in genotype.nodes(cell)]


# ---------------------------------------------------------------------------- exact networks
def test_darts_v2_cifar_parameter_count_is_exact(space: DartsSpace) -> None:
    model = space.build(space.from_string("DARTS_V2"), num_classes=10, C=36, layers=20)
    assert n_params(model) == 3_349_342


def test_darts_v1_cifar_parameter_count_is_exact(space: DartsSpace) -> None:
    model = space.build(space.from_string("DARTS_V1"), num_classes=10, C=36, layers=20)
    assert n_params(model) == 3_169_414


def test_auxiliary_head_is_extra_and_only_used_in_training(space: DartsSpace) -> None:
    model = space.build(space.from_string("DARTS_V2"), C=36, layers=20, auxiliary=True)
    assert model.auxiliary_head is not None
    assert n_params(model) - n_params(model.auxiliary_head) == 3_349_342
    small = space.build(space.from_string("DARTS_V2"), C=4, layers=6, auxiliary=True)
    x = torch.randn(2, 3, 32, 32)
    small.train()
    logits, aux = small.forward_with_aux(x)
    assert logits.shape == (2, 10) and aux is not None and aux.shape == (2, 10)
    small.eval()
    logits, aux = small.forward_with_aux(x)
    assert aux is None and torch.equal(small(x), logits)


def test_imagenet_network_matches_the_paper_size(space: DartsSpace) -> None:
    # DARTS reports 4.7M parameters for its ImageNet network (C=48, 14 cells, mobile setting).
    model = space.build(space.from_string("DARTS_V2"), num_classes=1000, C=48, layers=14,
                        dataset="imagenet")
    assert abs(n_params(model) - 4.7e6) < 0.05e6
    small = space.build(space.from_string("DARTS_V2"), num_classes=5, C=8, layers=3,
                        dataset="imagenet")
    small.eval()
    with torch.no_grad():
        assert small(torch.randn(1, 3, 64, 64)).shape == (1, 5)


def test_reduction_cells_sit_at_one_and_two_thirds(space: DartsSpace) -> None:
    assert reduction_layers(20) == (6, 13)
    assert reduction_layers(8) == (2, 5)
    model = space.build(space.sample(0), C=4, layers=8)
    flags = [cell.reduction for cell in model.cells]
    assert [i for i, f in enumerate(flags) if f] == [2, 5]


# ---------------------------------------------------------------------------- sampling & validity
def test_samples_respect_distinct_canonical_inputs(space: DartsSpace) -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        arch = space.sample(rng)
        for cell in CELLS:
            for i in space.node_ids:
                a, b = arch[input_name(cell, i, 0)], arch[input_name(cell, i, 1)]
                assert isinstance(a, int) and isinstance(b, int)
                assert 0 <= a < b < i
                assert arch[op_name(cell, i, 0)] != "none"


def test_sampling_is_uniform_over_input_pairs(space: DartsSpace) -> None:
    rng = np.random.default_rng(1)
    counts: Counter[tuple[object, object]] = Counter()
    for _ in range(3000):
        arch = space.sample(rng)
        counts[(arch["normal/node4/in0"], arch["normal/node4/in1"])] += 1
    assert set(counts) == {(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)}
    assert max(counts.values()) - min(counts.values()) < 150  # 500 expected each


def test_equal_inputs_and_unsorted_edges_are_rejected(space: DartsSpace) -> None:
    arch = space.from_string("DARTS_V2")
    same = arch.replace(**{"normal/node3/in1": 1, "normal/node3/in0": 1})
    with pytest.raises(InvalidArchitectureError, match="node 3"):
        space.validate(same)
    swapped = arch.replace(**{"normal/node4/in0": 1, "normal/node4/in1": 0})
    with pytest.raises(InvalidArchitectureError):
        space.validate(swapped)


def test_repair_restores_canonical_order(space: DartsSpace) -> None:
    values = dict(space.from_string("DARTS_V2"))
    values["normal/node4/in0"], values["normal/node4/in1"] = 1, 1  # collapsed onto one input
    fixed = space._complete(values, None)
    space.validate(fixed)
    assert fixed["normal/node4/in0"] != fixed["normal/node4/in1"]


def test_size_is_the_literature_count(space: DartsSpace) -> None:
    per_cell = math.prod(math.comb(i, 2) for i in range(2, 6)) * 7**8
    assert space.size() == per_cell**2 == 1_076_746_950_455_072_400


@pytest.mark.parametrize(
    "options",
    [
        {"nodes": 2, "ops": ["skip_connect", "max_pool_3x3"]},
        {"nodes": 1, "ops": ["skip_connect", "max_pool_3x3"], "distinct_inputs": False},
        {"nodes": 1, "ops": ["skip_connect"], "allow_none": True, "distinct_inputs": False},
    ],
)
def test_size_matches_enumeration_on_small_spaces(options: dict[str, object]) -> None:
    small = DartsSpace(**options)  # type: ignore[arg-type]
    archs = list(small.enumerate())
    assert len(archs) == len(set(archs)) == small.size()


def test_neighbors_change_one_edge(space: DartsSpace) -> None:
    arch = space.from_string("DARTS_V2")
    nbrs = space.neighbors(arch)
    # Per node i: 2 edges x (6 other ops + i - 2 other free inputs); 2 cells.
    assert len(nbrs) == 2 * sum(2 * (6 + i - 2) for i in range(2, 6)) == 120
    base = space.genotype(arch)
    for n in nbrs:
        g = space.genotype(n)
        changed = [
            (cell, k) for cell in CELLS
            for k, (x, y) in enumerate(zip(node_edges(base, cell), node_edges(g, cell))) if x != y
        ]
        assert len(changed) == 1
        cell, k = changed[0]
        assert sum((node_edges(base, cell)[k] - node_edges(g, cell)[k]).values()) == 1


def test_mutate_and_crossover(space: DartsSpace) -> None:
    rng = np.random.default_rng(3)
    a, b = space.sample(rng), space.sample(rng)
    child = space.mutate(a, rng)
    assert child in space.neighbors(a)
    mixed = space.crossover(a, b, rng)
    ga, gb, gm = (space.genotype(x) for x in (a, b, mixed))
    for cell in CELLS:
        for pa, pb, pm in zip(ga.nodes(cell), gb.nodes(cell), gm.nodes(cell)):
            assert pm in (pa, pb)


def test_same_seed_same_sample(space: DartsSpace) -> None:
    assert space.sample(7) == space.sample(7)
    assert space.sample(7) != space.sample(8)


# ---------------------------------------------------------------------------- genotype codec
def test_to_string_prints_the_darts_form(space: DartsSpace) -> None:
    text = space.to_string(space.from_string("DARTS_V2"))
    assert text.startswith("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ")
    assert "normal_concat=[2, 3, 4, 5]" in text and text.endswith("reduce_concat=[2, 3, 4, 5])")
    assert space.from_string(text) == space.from_string("DARTS_V2")


def test_published_text_parses_to_the_published_cell(space: DartsSpace) -> None:
    arch = space.from_string(V2_TEXT)
    assert arch == space.from_string("DARTS_V2") == space.from_string("darts")
    # Edges are sorted per node, but every node keeps exactly its published edges.
    got = space.genotype(arch)
    for cell in CELLS:
        assert node_edges(got, cell) == node_edges(DARTS_V2, cell)
    assert parse_genotype(V2_TEXT) == DARTS_V2
    assert parse_genotype(format_genotype(DARTS_V1)) == DARTS_V1
    assert repr(DARTS_V1) == format_genotype(DARTS_V1)


def test_round_trip_of_samples(space: DartsSpace) -> None:
    for seed in range(20):
        arch = space.sample(seed)
        assert space.from_string(space.to_string(arch)) == arch


@pytest.mark.parametrize(
    "text",
    [
        "__import__('pathlib').Path('{marker}').touch()",
        "Genotype(normal=__import__('pathlib').Path('{marker}').touch(), normal_concat=[2], "
        "reduce=[], reduce_concat=[])",
        "Genotype(normal=[(open('{marker}', 'w'), 0)], normal_concat=[2], reduce=[], "
        "reduce_concat=[])",
        "Genotype(normal=[('sep_conv_3x3', 0)] * 8, normal_concat=[2], reduce=[], reduce_concat=[])",
        "Genotype(normal=(lambda: 1)(), normal_concat=[2], reduce=[], reduce_concat=[])",
    ],
)
def test_parsing_never_runs_code(space: DartsSpace, tmp_path: Path, text: str) -> None:
    marker = tmp_path / "pwned"
    with pytest.raises(InvalidArchitectureError):
        space.from_string(text.format(marker=marker))
    assert not marker.exists()


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("Genotype(normal=[('sep_conv_3x3', 0)", "cannot parse"),
        ("Genotype(normal=[], normal_concat=[], reduce=[], reduce_concat=[])", "two per node"),
        ("Genotype(normal=[('sep_conv_3x3', 0)], normal_concat=[2])", "lacks field"),
        ("Genotype(nromal=[])", "unknown genotype field 'nromal'"),
        ("NASNet_V9", "published name"),
    ],
)
def test_parse_errors_name_the_problem(space: DartsSpace, text: str, match: str) -> None:
    with pytest.raises(InvalidArchitectureError, match=match):
        space.from_string(text)


def test_genotype_outside_the_space_names_the_problem(space: DartsSpace) -> None:
    bad_op = make_genotype(
        [("conv_7x1_1x7", 0), ("sep_conv_3x3", 1), *list(DARTS_V2.normal[2:])], [2, 3, 4, 5],
        DARTS_V2.reduce, [2, 3, 4, 5],
    )
    with pytest.raises(InvalidArchitectureError, match=r"conv_7x1_1x7.*ops='extended'"):
        space.from_genotype(bad_op)
    twice = make_genotype(
        [("sep_conv_3x3", 0), ("sep_conv_5x5", 0), *list(DARTS_V2.normal[2:])], [2, 3, 4, 5],
        DARTS_V2.reduce, [2, 3, 4, 5],
    )
    with pytest.raises(InvalidArchitectureError, match="reads node 0 twice"):
        space.from_genotype(twice)
    loose = DartsSpace(distinct_inputs=False)
    assert loose.genotype(loose.from_genotype(twice)).nodes("normal")[0] == (
        ("sep_conv_3x3", 0), ("sep_conv_5x5", 0))
    with_none = make_genotype(
        [("none", 0), ("sep_conv_3x3", 1), *list(DARTS_V2.normal[2:])], [2, 3, 4, 5],
        DARTS_V2.reduce, [2, 3, 4, 5],
    )
    with pytest.raises(InvalidArchitectureError, match="allow_none=True"):
        space.from_genotype(with_none)
    assert DartsSpace(allow_none=True).from_genotype(with_none)["normal/node2/in0/op"] == "none"


# ---------------------------------------------------------------------------- NASNet, AmoebaNet
@pytest.mark.parametrize(("name", "genotype"), [("NASNet", NASNET), ("AmoebaNet", AMOEBANET)])
def test_nasnet_and_amoebanet_need_and_get_a_compatible_space(
    space: DartsSpace, name: str, genotype: Genotype
) -> None:
    with pytest.raises(InvalidArchitectureError, match="nodes=5"):
        space.from_string(name)
    assert compatible_options(genotype) == {
        "ops": "extended", "allow_none": False, "nodes": 5, "distinct_inputs": False,
        "concat": "loose",
    }
    other, arch = parse(name)
    assert other.nodes == 5 and "sep_conv_7x7" in other.ops
    got = other.genotype(arch)
    assert got.normal_concat == genotype.normal_concat
    assert got.reduce_concat == genotype.reduce_concat
    for cell in CELLS:
        assert node_edges(got, cell) == node_edges(genotype, cell)
    assert space_for(name).from_string(name) == arch
    assert DartsSpace(**other.options()).from_string(name) == arch
    model = other.build(arch, C=4, layers=3)
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    for seed in range(5):  # the extended space samples and round-trips like the default one
        sample = other.sample(seed)
        assert other.from_string(other.to_string(sample)) == sample


# ---------------------------------------------------------------------------- networks
@pytest.mark.parametrize("seed", range(4))
def test_sampled_networks_build_train_and_run(space: DartsSpace, seed: int) -> None:
    torch.manual_seed(seed)
    model = space.build(space.sample(seed), num_classes=7, C=4, layers=4, drop_path_prob=0.3)
    model.train()
    out = model(torch.randn(2, 3, 16, 16))
    assert out.shape == (2, 7)
    out.sum().backward()
    assert all(p.grad is not None for p in model.classifier.parameters())


def test_drop_path_drops_whole_samples_and_rescales() -> None:
    torch.manual_seed(0)
    x = torch.ones(4000, 2, 3, 3)
    y = drop_path(x, 0.25)
    per_sample = y.flatten(1)
    kept = (per_sample != 0).all(dim=1)
    assert ((per_sample == 0).all(dim=1) | kept).all()
    assert abs(kept.float().mean().item() - 0.75) < 0.03
    assert torch.allclose(per_sample[kept], torch.full_like(per_sample[kept], 1 / 0.75))
    assert drop_path(x, 0.0) is x


def test_cell_builds_edges_through_its_op_factory() -> None:
    calls: list[tuple[str, int, int]] = []

    def make_op(name: str, channels: int, stride: int) -> torch.nn.Module:
        calls.append((name, channels, stride))
        return torch.nn.Identity() if stride == 1 else torch.nn.AvgPool2d(2)

    nodes = [[("a", 0), ("b", 1)], [("c", 2), ("d", 0)]]
    cell = DartsCell(nodes, [2, 3], 6, 6, 4, reduction=True, reduction_prev=False, make_op=make_op)
    assert calls == [("a", 4, 2), ("b", 4, 2), ("c", 4, 1), ("d", 4, 2)]
    out = cell(torch.randn(1, 6, 8, 8), torch.randn(1, 6, 8, 8))
    assert out.shape == (1, 8, 4, 4) and cell.out_channels == 8


def test_degenerate_networks_are_found_structurally_and_agree_with_forward() -> None:
    space = DartsSpace(allow_none=True)
    values = dict(space.sample(0))
    values.update({k: "none" for k in values if k.endswith("/op")})
    all_none = space.make(values)
    assert space.is_degenerate(all_none)
    assert generic_is_degenerate(space, all_none, {"C": 4, "layers": 3})
    # One real op from the previous cell in the normal cell keeps the signal flowing.
    alive = all_none.replace(**{"normal/node2/in1/op": "sep_conv_3x3",
                                "reduce/node2/in1/op": "max_pool_3x3"})
    assert not space.is_degenerate(alive, layers=3)
    assert not generic_is_degenerate(space, alive, {"C": 4, "layers": 3})
    assert not space.is_degenerate(space.from_string("DARTS_V2"))


def test_graph_describes_one_cell(space: DartsSpace) -> None:
    g = space.graph(space.from_string("DARTS_V2"), part="reduce")
    assert g["title"] == "Reduction cell"
    assert len(g["nodes"]) == 2 + 4 + 1
    labelled = [e for e in g["edges"] if e["label"]]
    assert len(labelled) == 8 and {e["dst"] for e in labelled} == {"2", "3", "4", "5"}
    assert sorted(e["src"] for e in g["edges"] if e["dst"] == "out") == ["2", "3", "4", "5"]
    with pytest.raises(UnknownNameError):
        space.graph(space.sample(0), part="middle")


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"ops": "nasnet"}, "unknown DARTS op set 'nasnet'"),
        ({"ops": ["sep_conv_3x3", "warp_conv"]}, "warp_conv"),
        ({"ops": ["none", "sep_conv_3x3"]}, "allow_none"),
        ({"nodes": 0}, "nodes must be"),
        ({"concat": "some"}, "unknown concat rule"),
        ({"allow_none": "yes"}, "option 'allow_none' of space 'darts' must be true or false"),
    ],
)
def test_bad_space_options(options: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        nasforge.create_space("darts", **options)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"C": 0}, "C must be a positive integer"),
        ({"layers": 2.5}, "layers must be"),
        ({"dataset": "mnist"}, "'cifar', 'imagenet'"),
        ({"drop_path_prob": 1.0}, "drop_path_prob"),
        ({"channels": 8}, "unknown build option"),
    ],
)
def test_bad_build_options(space: DartsSpace, options: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        space.build(space.sample(0), **options)  # type: ignore[arg-type]
