"""Elastic (once-for-all) space: decisions, MobileNetV3 networks, sub-networks cut with weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import nasforge
from nasforge.errors import ConfigError, InvalidArchitectureError
from nasforge.spaces.elastic import (
    OFA_STAGES,
    ElasticSpace,
    MBConvBlock,
    StageSpec,
    extract_block,
    make_divisible,
)


@pytest.fixture(scope="module")
def space() -> ElasticSpace:
    s = nasforge.create_space("elastic")
    assert isinstance(s, ElasticSpace)
    return s


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_size_is_the_once_for_all_count(space: ElasticSpace) -> None:
    # Per stage: sum over depths d of (3 kernels x 3 ratios)^d; five stages (OFA: ~2e19).
    assert space.size() == (81 + 729 + 6561) ** 5
    assert 2e19 < space.size() < 2.2e19


def test_block_decisions_exist_only_within_the_depth(space: ElasticSpace) -> None:
    values = dict(space.max_arch())
    values["stage1/depth"] = 2
    for b in (2, 3):
        del values[f"stage1/block{b}/kernel"], values[f"stage1/block{b}/expand"]
    arch = space.make(values)
    assert space.plan(arch)[1] == [(7, 6.0), (7, 6.0)]
    with pytest.raises(InvalidArchitectureError, match="does not exist"):
        space.validate(arch.replace(**{"stage1/block2/kernel": 3}))
    for seed in range(20):
        a = space.sample(seed)
        for s in range(5):
            depth = int(a[f"stage{s}/depth"])
            assert (f"stage{s}/block{depth - 1}/kernel" in a)
            assert (f"stage{s}/block{depth}/kernel" in a) is False


def test_network_follows_mobilenet_v3(space: ElasticSpace) -> None:
    model = space.build(space.max_arch(), num_classes=1000)
    blocks = [model.block(s, b) for s in range(5) for b in range(4)]
    assert [model.block(s, 0).c_out for s in range(5)] == [s.width for s in OFA_STAGES]
    assert [model.block(s, 0).stride for s in range(5)] == [2, 2, 2, 1, 2]
    assert [model.block(s, 0).use_se for s in range(5)] == [False, True, False, True, True]
    assert all(b.residual == (b.stride == 1 and b.c_in == b.c_out) for b in blocks)
    assert isinstance(model.block(0, 0).activation, torch.nn.ReLU)
    assert isinstance(model.block(2, 0).activation, torch.nn.Hardswish)
    # The largest network (all blocks, kernel 7, expand 6) has ~7.66M parameters at 1000 classes.
    assert 7.5e6 < n_params(model) < 7.8e6


def test_simpler_variants_drop_se_and_hswish() -> None:
    plain = ElasticSpace(se=False, hswish=False)
    model = plain.build(plain.sample(0), width_mult=0.25)
    kinds = {type(m) for m in model.modules()}
    assert torch.nn.Hardswish not in kinds
    assert all(m.se is None for m in model.modules() if isinstance(m, MBConvBlock))


@pytest.mark.parametrize("seed", range(3))
def test_samples_build_and_run_on_small_inputs(space: ElasticSpace, seed: int) -> None:
    torch.manual_seed(seed)
    model = space.build(space.sample(seed), num_classes=4, width_mult=0.25)
    model.train()
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 4)
    out.sum().backward()
    small_stem = space.build(space.sample(seed), width_mult=0.25, stem_stride=1)
    small_stem.eval()
    with torch.no_grad():
        assert small_stem(torch.randn(1, 3, 16, 16)).shape == (1, 10)


def test_extracting_the_max_network_from_itself_is_exact(space: ElasticSpace) -> None:
    torch.manual_seed(0)
    big = space.build_max(width_mult=0.25)
    big.eval()
    sub = space.extract(big, space.max_arch())
    sub.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(big(x), sub(x))


def test_extracted_subnetworks_match_built_ones(space: ElasticSpace) -> None:
    torch.manual_seed(1)
    big = space.build_max(width_mult=0.25)
    for seed in range(3):
        arch = space.sample(seed)
        sub = space.extract(big, arch)
        ref = space.build(arch, width_mult=0.25)
        assert {k: v.shape for k, v in sub.state_dict().items()} == {
            k: v.shape for k, v in ref.state_dict().items()}
        # Weights are inherited: the stem and head are the big network's.
        for part in ("stem", "classifier"):
            mine, theirs = getattr(sub, part).state_dict(), getattr(big, part).state_dict()
            assert all(torch.equal(mine[k], theirs[k]) for k in mine)
        sub.eval()
        with torch.no_grad():
            assert torch.isfinite(sub(torch.randn(1, 3, 32, 32))).all()


def test_elastic_kernel_keeps_the_kernel_centre() -> None:
    torch.manual_seed(2)
    big = MBConvBlock(16, 16, 7, 6, 1, "relu", se=False)
    with torch.no_grad():
        mask = torch.zeros(7, 7)
        mask[2:5, 2:5] = 1  # only the centre 3x3 is non-zero
        big.dw_conv.weight.mul_(mask)
    small = extract_block(big, 3, 6)
    assert small.kernel == 3 and small.dw_conv.weight.shape[-1] == 3
    assert torch.equal(small.dw_conv.weight, big.dw_conv.weight[:, :, 2:5, 2:5])
    big.eval()
    small.eval()
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        assert torch.allclose(big(x), small(x), atol=1e-6)


def test_elastic_width_keeps_the_first_channels() -> None:
    torch.manual_seed(3)
    big = MBConvBlock(16, 24, 5, 6, 2, "hswish", se=False)
    small_hidden = make_divisible(16 * 3)
    with torch.no_grad():
        big.project_conv.weight[:, small_hidden:] = 0  # the extra channels contribute nothing
    small = extract_block(big, 5, 3)
    assert small.hidden == small_hidden == 48 and big.hidden == 96
    big.eval()
    small.eval()
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        assert torch.allclose(big(x), small(x), atol=1e-6)
    se_big = MBConvBlock(16, 16, 7, 6, 1, "relu", se=True)
    se_small = extract_block(se_big, 5, 4)
    assert se_small.se is not None and se_big.se is not None
    m, h = se_small.se.mid, se_small.hidden
    assert torch.equal(se_small.se.reduce.weight, se_big.se.reduce.weight[:m, :h])
    assert torch.equal(se_small.se.expand.weight, se_big.se.expand.weight[:h, :m])


def test_extract_refuses_larger_blocks() -> None:
    block = MBConvBlock(16, 16, 5, 4, 1, "relu", se=False)
    with pytest.raises(ConfigError, match="kernel 7"):
        extract_block(block, 7, 4)
    with pytest.raises(ConfigError, match="expand ratio 6"):
        extract_block(block, 5, 6)


def test_graph_is_a_chain_of_blocks(space: ElasticSpace) -> None:
    arch = space.sample(4)
    g = space.graph(arch)
    depth = sum(int(arch[f"stage{s}/depth"]) for s in range(5))
    assert len(g["nodes"]) == depth + 2 and len(g["edges"]) == depth + 1
    assert g["layout"] == "chain"


def test_make_divisible_follows_the_mobilenet_rule() -> None:
    assert [make_divisible(v) for v in (6, 16 * 3, 24 * 4.5, 40 * 0.35, 1280 * 0.25)] == [
        8, 48, 112, 16, 320]
    assert make_divisible(10) == 16  # 8 would lose more than 10%


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"kernel_sizes": (3, 4)}, "odd"),
        ({"depths": (0, 2)}, "depths must be positive"),
        ({"stages": [{"width": 8, "stride": 3, "act": "relu", "se": False}]}, "stride 1 or 2"),
        ({"stages": [{"width": 8, "act": "gelu", "stride": 1, "se": False}]}, "'relu', 'hswish'"),
        ({"stages": [{"width": 8}]}, "needs width, stride, act, se"),
        ({"se": 1}, "option 'se' of space 'elastic' must be true or false"),
    ],
)
def test_bad_options(options: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        nasforge.create_space("elastic", **options)


def test_bad_build_options(space: ElasticSpace) -> None:
    arch = space.sample(0)
    for options, match in (({"width_mult": -1}, "width_mult"), ({"stem_stride": 4}, "stem_stride"),
                           ({"dropout": 1.5}, "dropout"), ({"C": 3}, "unknown build option")):
        with pytest.raises(ConfigError, match=match):
            space.build(arch, **options)


def test_custom_stages_change_the_decisions() -> None:
    s = ElasticSpace(depths=(1, 2), stages=[{"width": 16, "stride": 2, "act": "relu", "se": True}])
    assert s.size() == 9 + 81
    model = s.build(s.sample(np.random.default_rng(0)), width_mult=0.5)
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 16, 16)).shape == (1, 10)


def test_options_rebuild_the_same_space_and_strings_ignore_key_order() -> None:
    space = nasforge.create_space("elastic", depths=(1, 2), se=False,
                                  stages=[{"width": 16, "stride": 2, "act": "relu", "se": True}])
    again = nasforge.create_space("elastic", **space.options())
    assert again.options() == space.options()
    assert again.size() == space.size()
    arch = space.sample(3)
    # Read back from storage, the choices may come in another order: the string is the same.
    shuffled = space.make(dict(reversed(list(dict(arch).items()))))
    assert list(dict(shuffled)) != list(dict(arch)) or len(dict(arch)) == 1
    assert space.to_string(shuffled) == space.to_string(arch)


def test_resolution_and_stage_widths_are_decisions() -> None:
    plain = ElasticSpace()
    space = ElasticSpace(resolutions=(128, 160, 192, 224), stage_widths=(0.75, 1.0, 1.25))
    assert space.size() == plain.size() * 4 * 3 ** len(space.stages)
    assert "resolutions" not in plain.options() and "stage_widths" not in plain.options()
    again = nasforge.create_space("elastic", **space.options())
    assert again.options() == space.options() and again.size() == space.size()
    arch = space.sample(0).replace(resolution=160, **{space.width_name(2): 1.25, space.width_name(0): 0.75})
    model = space.build(arch)
    seen: list[tuple[int, ...]] = []
    model.stem.register_forward_hook(lambda m, i, o: seen.append(tuple(i[0].shape)))
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    assert seen == [(1, 3, 160, 160)]  # the network runs at the chosen resolution
    widths = [model.stage(s)[0].c_out for s in range(len(space.stages))]
    expected = [make_divisible(spec.width * m) for spec, m in
                zip(OFA_STAGES, [0.75, float(arch[space.width_name(1)]), 1.25,
                                 float(arch[space.width_name(3)]), float(arch[space.width_name(4)])])]
    assert widths == expected
    assert space.max_arch()["resolution"] == 224 and "at 160x160" in space.graph(arch)["title"]
    with pytest.raises(ConfigError, match="resolutions must be at least 16"):
        ElasticSpace(resolutions=(8, 32))
    with pytest.raises(ConfigError, match="stage_widths must be distinct multipliers"):
        ElasticSpace(stage_widths=(1.0, 1.0))


def test_supernet_runs_sub_networks_at_their_resolution() -> None:
    from nasforge.oneshot.ofa import Ofa

    space = ElasticSpace(depths=(1, 2), expand_ratios=(2, 3), kernel_sizes=(3, 5),
                         stages=[StageSpec(8, 2, "relu", True), StageSpec(16, 2, "hswish", False)],
                         resolutions=(16, 24))
    torch.manual_seed(0)
    net = space.supernet(num_classes=3, in_channels=1, width_mult=1.0)
    net.eval()
    x = torch.randn(2, 1, 20, 20)
    for seed in range(3):
        arch = space.sample(seed)
        sub = net.extract(arch).eval()
        assert sub.config.resolution == arch["resolution"]
        assert torch.allclose(net.run_arch(x, arch), sub(x), atol=1e-5)
    wide = ElasticSpace(stage_widths=(0.5, 1.0))
    with pytest.raises(ConfigError, match="not per-stage widths"):
        wide.supernet()
    with pytest.raises(ConfigError, match="per-stage widths cannot be cut"):
        wide.extract(wide.build_max(width_mult=0.25), wide.sample(0))
    # Once-for-all training samples the resolution too, and still runs end to end.
    from nasforge.data import DataSplits, from_tensors
    from nasforge.oneshot.methods import create_search

    gen = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (32,), generator=gen)
    data = from_tensors(torch.randn(32, 1, 12, 12, generator=gen) + y.view(-1, 1, 1, 1) * 0.5, y,
                        num_classes=3)
    search = create_search("ofa", net, DataSplits(data, data), epochs=4, batch_size=16, search_trials=2,
                           bn_batches=1, eval_batch_size=32, device="cpu")
    assert isinstance(search, Ofa)
    search.start_epoch(3)
    assert {int(search.sample("random")["resolution"]) for _ in range(20)} == {16, 24}
    assert search.sample("largest")["resolution"] == 24 and search.sample("smallest")["resolution"] == 16
    result = search.run()
    assert space.is_valid(result.arch) and "resolution" in result.arch
