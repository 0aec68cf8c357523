"""Supernets: mixing modes, parameter groups, derivation, and equivalence with derived networks."""

from __future__ import annotations

import pytest
import torch
from oneshot_helpers import randomize_batchnorm, tiny_elastic_space, tiny_supernet

import nasforge
from nasforge.errors import ConfigError, InvalidArchitectureError
from nasforge.oneshot import MixedOp, Supernet, gumbel_hard, supernet_spaces
from nasforge.oneshot.supernets.darts import edge_key
from nasforge.spaces.darts import DartsSpace
from nasforge.supernet.darts import PoolBN


@pytest.mark.parametrize(("space_name", "options"), [("nb201", {}), ("darts", {"faithful": False})])
def test_one_hot_weights_and_single_path_compute_the_derived_network(
    space_name: str, options: dict[str, bool]
) -> None:
    space, net = tiny_supernet(space_name, **options)
    net = net.double()
    randomize_batchnorm(net)
    size = 12 if space_name == "nb201" else 16
    x = torch.randn(3, 1, size, size, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    for seed in range(3):
        arch = space.sample(seed)
        derived = net.extract(arch).double().eval()
        net.eval()
        expected = derived(x)
        net.set_mode("softmax")
        mixed = net.forward_with_weights(x, net.one_hot(arch))
        net.set_arch(arch)
        single = net(x)
        assert torch.allclose(mixed, expected, atol=1e-10), space.to_string(arch)
        assert torch.allclose(single, expected, atol=1e-10)
        # The extracted network is a real copy of the supernet's weights, not a view.
        assert all(p.data_ptr() not in {q.data_ptr() for q in net.parameters()}
                   for p in derived.parameters())


def test_extracted_weights_change_when_the_supernet_trains() -> None:
    space, net = tiny_supernet("nb201")
    arch = space.sample(0)
    before = net.extract(arch).state_dict()
    with torch.no_grad():
        for p in net.weight_parameters():
            p.add_(1.0)
    after = net.extract(arch).state_dict()
    conv = next(k for k in before if k.endswith("weight") and before[k].dim() == 4)
    assert torch.equal(after[conv], before[conv] + 1.0)


def test_elastic_subnetworks_match_their_extracted_networks() -> None:
    space, net = tiny_supernet("elastic")
    with torch.no_grad():  # non-identity kernel transforms, so the transform path is exercised
        for p in net.transforms.values():  # type: ignore[union-attr]
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(2)))
    randomize_batchnorm(net)
    x = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(3))
    net.eval()
    archs = [space.sample(s) for s in range(3)] + [tiny_elastic_space().max_arch()]
    for arch in archs:
        net.set_arch(arch)
        assert torch.allclose(net(x), net.extract(arch).eval()(x), atol=1e-5)


def test_elastic_channel_sorting_keeps_the_largest_network_and_orders_importance() -> None:
    _, net = tiny_supernet("elastic")
    net.eval()
    net.set_arch(tiny_elastic_space().max_arch())
    x = torch.randn(2, 1, 16, 16)
    before = net(x)
    net.sort_channels()  # type: ignore[attr-defined]
    assert torch.allclose(net(x), before, atol=1e-5)
    block = net.net.block(0, 0)  # type: ignore[union-attr,operator]
    importance = block.project_conv.weight.abs().sum(dim=(0, 2, 3))
    assert torch.all(importance[:-1] >= importance[1:])


@pytest.mark.parametrize("space_name", ["nb201", "darts"])
def test_arch_and_weight_parameters_are_disjoint_and_complete(space_name: str) -> None:
    _, net = tiny_supernet(space_name)
    arch = {id(p) for p in net.arch_parameters()}
    weights = {id(p) for p in net.weight_parameters()}
    assert arch and weights and not arch & weights
    assert arch | weights == {id(p) for p in net.parameters()}
    assert all(f"alphas.{k}" in net.state_dict() for k in net.alphas)
    expected_keys = 6 if space_name == "nb201" else 2 * 14
    assert len(net.keys) == expected_keys == len(net.arch_parameters())


def _ran(net: Supernet) -> dict[int, int]:
    """Count candidate-op calls per mixed op while running ``net`` once."""
    calls: dict[int, int] = {}
    handles = []
    for i, op in enumerate(net.mixed_ops()):
        for cand in op.candidates.values():
            handles.append(cand.register_forward_hook(
                lambda *_, i=i: calls.__setitem__(i, calls.get(i, 0) + 1)))
    net(torch.randn(2, 1, 12, 12))
    for h in handles:
        h.remove()
    return calls


def test_gumbel_and_single_path_compute_one_op_per_edge_softmax_all() -> None:
    _, net = tiny_supernet("nb201")
    n_mixed = len(list(net.mixed_ops()))
    net.set_mode("softmax")
    assert _ran(net) == {i: 5 for i in range(n_mixed)}
    net.set_mode("gumbel")
    net.tau = 1.0
    assert _ran(net) == {i: 1 for i in range(n_mixed)}
    net.set_mode("single_path")  # no fixed path: a uniform path per forward
    assert _ran(net) == {i: 1 for i in range(n_mixed)}


def test_gumbel_sample_is_one_hot_with_gradient_to_every_logit() -> None:
    logits = torch.tensor([0.5, -1.0, 2.0, 0.0], requires_grad=True)
    gen = torch.Generator().manual_seed(0)
    index, hard = gumbel_hard(logits, 0.5, gen)
    assert torch.equal(hard.detach(), torch.nn.functional.one_hot(torch.tensor(index), 4).float())
    hard[index].backward()
    assert logits.grad is not None and torch.count_nonzero(logits.grad) == 4
    # Low temperature: samples follow the argmax of the logits almost always.
    picks = [gumbel_hard(torch.tensor([0.0, 5.0, 0.0]), 0.1, gen)[0] for _ in range(50)]
    assert picks.count(1) >= 45
    with pytest.raises(ConfigError, match="temperature"):
        gumbel_hard(logits, 0.0, gen)


def test_gumbel_forward_equals_the_path_it_sampled() -> None:
    _, net = tiny_supernet("nb201")
    net.eval()
    x = torch.randn(2, 1, 12, 12)
    net.set_mode("gumbel")
    state = net.generator.get_state()
    sel = net.selections()
    net.generator.set_state(state)
    out = net(x)
    path = {k: net.candidates(k)[s.index] for k, s in sel.items()}  # type: ignore[union-attr]
    net.set_path(path)
    assert torch.allclose(out, net(x), atol=1e-6)


def test_softmax_mode_gives_gradients_to_architecture_parameters() -> None:
    _, net = tiny_supernet("nb201")
    net.set_mode("softmax")
    net(torch.randn(2, 1, 12, 12)).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.arch_parameters())


def test_nb201_derive_takes_argmax_with_none_unless_excluded() -> None:
    _, net = tiny_supernet("nb201")
    with torch.no_grad():
        for key in net.keys:
            net.alpha(key).zero_()
            net.alpha(key)[net.candidates(key).index("none")] = 2.0
            net.alpha(key)[net.candidates(key).index("nor_conv_3x3")] = 1.0
    assert set(net.derive().values()) == {"none"}
    assert set(net.derive(exclude_none=True).values()) == {"nor_conv_3x3"}
    with pytest.raises(ConfigError, match="exclude_none"):
        net.derive(top_k=2)


def test_darts_derive_keeps_the_two_strongest_inputs_without_none() -> None:
    space, net = tiny_supernet("darts")
    assert isinstance(space, DartsSpace)
    with torch.no_grad():
        for key in net.keys:
            names = net.candidates(key)
            net.alpha(key).zero_()
            net.alpha(key)[names.index("none")] = 9.0  # never chosen, however strong
            _, node, source = key.split("/")
            i, j = int(node[4:]), int(source[4:])
            if j >= i - 2:  # the two latest inputs win, with sep_conv_3x3
                net.alpha(key)[names.index("sep_conv_3x3")] = 3.0
    genotype = space.genotype(net.derive())
    for cell in ("normal", "reduce"):
        for i, pair in zip(space.node_ids, genotype.nodes(cell)):
            assert sorted(j for _, j in pair) == [i - 2, i - 1]
            assert {op for op, _ in pair} == {"sep_conv_3x3"}
    path = net.path_of(net.derive())
    assert path[edge_key("normal", 5, 0)] == "none" and path[edge_key("normal", 5, 4)] == "sep_conv_3x3"


def test_supernet_errors_name_the_bad_value() -> None:
    space = nasforge.create_space("nb201")
    with pytest.raises(ConfigError, match=r"unknown supernet option.*'depth'.*allowed"):
        space.supernet(depth=3)
    with pytest.raises(ConfigError, match="C must be a positive integer"):
        space.supernet(C=0)
    _, net = tiny_supernet("nb201")
    with pytest.raises(ConfigError, match=r"unknown supernet mode 'hard'.*allowed"):
        net.set_mode("hard")
    bad_path = dict.fromkeys(net.keys, "conv_9x9")
    with pytest.raises(ConfigError, match="'conv_9x9' is not a candidate"):
        net.set_path(bad_path)
    with pytest.raises(InvalidArchitectureError):
        net.set_arch(nasforge.create_space("darts").sample(0))
    with pytest.raises(ConfigError, match="distinct_inputs=True"):
        DartsSpace(distinct_inputs=False).supernet(C=4, layers=3)
    assert {"nb201", "darts", "elastic"} <= set(supernet_spaces())
    macro = nasforge.create_space("macro")
    with pytest.raises(ConfigError, match=r"no weight-sharing supernet.*'nb201'"):
        macro.supernet()


def test_mixed_op_needs_a_selection() -> None:
    op = MixedOp("edge", {"skip_connect": torch.nn.Identity()})
    with pytest.raises(ConfigError, match="no selection"):
        op(torch.zeros(1))


def test_faithful_darts_supernet_is_the_original_search_network() -> None:
    space = nasforge.create_space("darts")
    # Liu et al.'s search network (C=16, 8 cells) has 1,930,618 weights in the published code.
    counts = {f: sum(p.numel() for p in space.supernet(faithful=f).weight_parameters())
              for f in (True, False)}
    assert counts == {True: 1_930_618, False: 1_930_618 + 1_280}
    _, net = tiny_supernet("darts")
    cell = net.net.cells[0]  # type: ignore[index]
    assert not cell.pre0[2].affine and not cell.pre1[2].affine
    pools = [op.candidates[name] for op in net.mixed_ops() for name in op.names if "pool" in name]
    assert pools and all(isinstance(p, PoolBN) and not p[1].affine for p in pools)
    _, affine = tiny_supernet("darts", affine=True)
    assert affine.net.cells[0].pre1[2].affine  # type: ignore[index]
    assert net.describe()["kwargs"]["faithful"] is True
    with pytest.raises(ConfigError, match="faithful must be True or False, got 'yes'"):
        space.supernet(C=4, layers=3, faithful="yes")


def test_faithful_darts_paths_without_pooling_compute_the_derived_network() -> None:
    space, net = tiny_supernet("darts")
    net = net.double()
    randomize_batchnorm(net)
    x = torch.randn(2, 1, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    no_pool = space.from_string(
        "Genotype(normal=[('sep_conv_3x3', 0), ('dil_conv_3x3', 1), ('skip_connect', 0), "
        "('sep_conv_5x5', 2), ('dil_conv_5x5', 1), ('sep_conv_3x3', 3), ('skip_connect', 2), "
        "('sep_conv_3x3', 4)], normal_concat=[2, 3, 4, 5], reduce=[('sep_conv_5x5', 0), "
        "('skip_connect', 1), ('dil_conv_3x3', 0), ('sep_conv_3x3', 2), ('skip_connect', 2), "
        "('dil_conv_5x5', 3), ('sep_conv_3x3', 0), ('skip_connect', 4)], reduce_concat=[2, 3, 4, 5])"
    )
    with_pool = space.from_string("DARTS_V1")  # max_pool_3x3 in its reduction cell
    net.eval()
    for arch, same in ((no_pool, True), (with_pool, False)):
        derived = net.extract(arch).double().eval()  # the pooling BatchNorm has no place there
        net.set_arch(arch)
        assert torch.allclose(net(x), derived(x), atol=1e-10) is same
