"""PC-DARTS: partial channel connections, edge normalization and the search method."""

from __future__ import annotations

import pytest
import torch
from oneshot_helpers import tiny_splits, tiny_supernet

import nasforge
from nasforge.errors import ConfigError
from nasforge.oneshot.methods import create_search
from nasforge.oneshot.pcdarts import PcDartsConfig, pcdarts_supernet
from nasforge.supernet.darts import edge_key, node_key
from nasforge.supernet.mixed import MixedOp, Weighted
from nasforge.supernet.partial import PartialChannelOp, channel_shuffle


def test_channel_shuffle_interleaves_the_groups() -> None:
    x = torch.arange(6.0).view(1, 6, 1, 1)
    assert channel_shuffle(x, 2).flatten().tolist() == [0, 3, 1, 4, 2, 5]
    assert channel_shuffle(x, 3).flatten().tolist() == [0, 2, 4, 1, 3, 5]
    with pytest.raises(ConfigError, match="divisible by 4"):
        channel_shuffle(x, 4)


@pytest.mark.parametrize("stride", [1, 2])
def test_partial_op_computes_a_quarter_of_the_channels_and_passes_the_rest(stride: int) -> None:
    inner = torch.nn.Conv2d(2, 2, 3, stride, 1, bias=False)
    op = PartialChannelOp("e", {"conv": inner}, channels=8, k=4, stride=stride)
    op.selection = Weighted(torch.ones(1))
    x = torch.randn(2, 8, 6, 6)
    out = op(x)
    assert out.shape == (2, 8, 6 // stride, 6 // stride)
    # Undo the shuffle: group 0 is the computed part, groups 1-3 the bypassed channels.
    groups = out.view(2, 2, 4, *out.shape[-2:]).transpose(1, 2).reshape(out.shape)
    assert torch.allclose(groups[:, :2], inner(x[:, :2]))
    rest = x[:, 2:] if stride == 1 else torch.nn.functional.max_pool2d(x[:, 2:], 2, 2)
    assert torch.equal(groups[:, 2:], rest)
    with pytest.raises(ConfigError, match="cannot be split in 3"):
        PartialChannelOp("e", {"conv": inner}, channels=8, k=3, stride=1)


def test_partial_supernet_has_narrow_candidates_and_betas_as_arch_parameters() -> None:
    _, full = tiny_supernet("darts")
    space, net = tiny_supernet("darts", partial_channels=2, edge_normalization=True)
    ops = list(net.mixed_ops())
    assert all(isinstance(op, PartialChannelOp) and op.k == 2 for op in ops)
    conv = ops[0].candidates["sep_conv_3x3"].modules()
    assert next(m for m in conv if isinstance(m, torch.nn.Conv2d)).in_channels == 2  # C=4 / K=2
    n_mixed = sum(p.numel() for op in ops for p in op.parameters())
    n_full = sum(p.numel() for op in full.mixed_ops() for p in op.parameters())
    assert n_mixed < n_full / 2  # depthwise weights shrink by K, pointwise by K^2
    betas = list(net.betas.values())
    assert [b.numel() for b in betas] == [2, 3, 4, 5] * 2
    arch = {id(p) for p in net.arch_parameters()}
    assert all(id(b) in arch for b in betas)
    assert not any(id(p) in arch for p in net.weight_parameters())
    assert net.describe()["kwargs"]["partial_channels"] == 2
    with pytest.raises(ConfigError, match="narrower than the derived network"):
        net.extract(space.from_string("DARTS_V2"))
    with pytest.raises(ConfigError, match="partial_channels=3 must divide C=4"):
        tiny_supernet("darts", partial_channels=3)
    with pytest.raises(ConfigError, match="partial_channels must be an integer >= 1"):
        tiny_supernet("darts", partial_channels=0)


def test_edge_normalization_weights_each_edge_by_the_softmax_of_its_node_betas() -> None:
    _, net = tiny_supernet("darts", edge_normalization=True)
    with torch.no_grad():
        net.betas[node_key("normal", 3)].copy_(torch.tensor([0.0, 1.0, 2.0]))
    sel = net.selections()
    expected = torch.softmax(torch.tensor([0.0, 1.0, 2.0]), dim=-1)
    for j in range(3):
        s = sel[edge_key("normal", 3, j)]
        assert isinstance(s, Weighted) and s.edge is not None
        assert torch.allclose(s.edge, expected[j])
    # An edge's output is scaled as a whole.
    op = next(m for m in net.mixed_ops() if m.key == edge_key("normal", 3, 1))
    x = torch.randn(2, 4, 6, 6)
    net.eval()
    op.selection = Weighted(sel[op.key].weights)
    plain = op(x)
    op.selection = sel[op.key]
    assert torch.allclose(op(x), plain * expected[1])
    op.selection = None
    # Single paths and explicit weights ignore the betas.
    net.set_mode("gumbel")
    assert all(not isinstance(s, Weighted) for s in net.selections().values())


def test_derive_ranks_edges_by_edge_weight_times_op_weight() -> None:
    space, net = tiny_supernet("darts", edge_normalization=True)
    with torch.no_grad():
        for key in net.keys:
            net.alpha(key).zero_()
        names = net.candidates(edge_key("normal", 2, 0))
        k = names.index("sep_conv_3x3")
        net.alpha(edge_key("normal", 2, 0))[k] = 3.0  # strongest op by far on edge 0 -> 2 ...
        net.alpha(edge_key("normal", 3, 0))[k] = 3.0  # ... and on 0 -> 3
        net.betas[node_key("normal", 3)].copy_(torch.tensor([-10.0, 5.0, 5.0]))  # but node 3 favors 1, 2
    genotype = space.genotype(net.derive())
    node2, node3 = genotype.nodes("normal")[:2]
    assert ("sep_conv_3x3", 0) in node2
    assert sorted(j for _, j in node3) == [1, 2]


def test_pcdarts_warms_up_then_searches_and_returns_a_valid_cell() -> None:
    torch.set_num_threads(1)
    space = nasforge.create_space("darts")
    net = pcdarts_supernet(space, 0, partial_channels=2, C=4, layers=3, num_classes=4, in_channels=1)
    before = [p.detach().clone() for p in net.arch_parameters()]
    seen: list[list[torch.Tensor]] = []
    search = create_search(
        "pcdarts", net, tiny_splits(32, 32), epochs=2, batch_size=16, steps_per_epoch=1, warmup_epochs=1, seed=0
    )
    result = search.run(on_epoch=lambda s, _: seen.append([p.detach().clone() for p in net.arch_parameters()]))
    assert all(torch.equal(a, b) for a, b in zip(seen[0], before))  # warm-up: weights only
    assert not all(torch.equal(a, b) for a, b in zip(seen[1], before))
    assert any(not torch.equal(a, b) for a, b in zip(seen[1][-8:], before[-8:]))  # the betas learn too
    space.validate(result.arch)
    assert result.info["partial_channels"] == 2 and result.info["warmup_epochs"] == 1


def test_pcdarts_refuses_other_supernets_and_bad_settings() -> None:
    _, plain = tiny_supernet("darts")
    with pytest.raises(ConfigError, match="pcdarts needs a DARTS supernet with edge normalization"):
        create_search("pcdarts", plain, tiny_splits())
    _, nb201 = tiny_supernet("nb201")
    with pytest.raises(ConfigError, match="pcdarts needs a DARTS supernet"):
        create_search("pcdarts", nb201, tiny_splits())
    _, net = tiny_supernet("darts", partial_channels=2, edge_normalization=True)
    with pytest.raises(ConfigError, match="'pcdarts' means order=1"):
        create_search("pcdarts", net, tiny_splits(), order=2)
    with pytest.raises(ConfigError, match=r"warmup_epochs must be an integer in 0..epochs-1 \(2\)"):
        create_search("pcdarts", net, tiny_splits(), epochs=3, warmup_epochs=3)
    assert PcDartsConfig(epochs=50).warmup == 15  # the paper's 15 of 50 epochs
    assert PcDartsConfig(epochs=3).warmup == 1
    assert PcDartsConfig(epochs=1).warmup == 0
    assert isinstance(next(iter(plain.mixed_ops())), MixedOp)
