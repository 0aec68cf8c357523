"""DARTS (1st/2nd order), GDAS, SPOS, ENAS and once-for-all on tiny settings."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from oneshot_helpers import ELASTIC_TINY, state_equal, tiny_splits, tiny_supernet

from nasforge.errors import ConfigError
from nasforge.oneshot.darts import Darts
from nasforge.oneshot.gdas import tau_at
from nasforge.oneshot.methods import create_search, list_methods
from nasforge.oneshot.ofa import Ofa
from nasforge.oneshot.supernet import seeded_supernet
from nasforge.spaces.elastic import ElasticSpace, StageSpec
from nasforge.trial import Trial

FAST = {"epochs": 1, "batch_size": 16, "device": "cpu"}


def _alphas(net: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in net.arch_parameters()]  # type: ignore[operator]


@pytest.mark.parametrize("method", ["darts", "darts2", "gdas"])
def test_bilevel_methods_train_both_parameter_groups(method: str) -> None:
    space, net = tiny_supernet("nb201")
    alphas = _alphas(net)
    weights = {k: v.clone() for k, v in net.state_dict().items() if not k.startswith("alphas.")}
    result = create_search(method, net, tiny_splits(), **FAST).run()
    assert space.is_valid(result.arch)
    assert result.steps == 4 and len(result.history) == 1
    assert all(not torch.equal(a, b) for a, b in zip(alphas, _alphas(net)))
    assert state_equal(weights, {k: v for k, v in net.state_dict().items() if k in weights})
    assert set(result.arch_weights) == set(net.keys)
    assert result.arch == net.derive()  # the paper's discretization of the final alphas


def test_darts_runs_on_the_darts_space() -> None:
    space, net = tiny_supernet("darts")
    splits = tiny_splits(32, 32, size=16)
    result = create_search("darts", net, splits, epochs=1, batch_size=16, device="cpu").run()
    genotype = space.genotype(result.arch)  # type: ignore[attr-defined]
    assert all(op != "none" for op, _ in genotype.normal + genotype.reduce)
    assert result.arch_string.startswith("Genotype(")


def test_second_order_gradient_matches_exact_unrolled_gradient() -> None:
    """Eq. 7-8 of DARTS: the finite-difference hypergradient equals autograd through the step."""
    _, net = tiny_supernet("nb201")
    net = net.double()
    splits = tiny_splits(16, 16)
    # hvp_r=1e-6: small enough that no ReLU changes sign between w+ and w- (see HVP_R).
    search = Darts(net, splits, epochs=1, batch_size=16, order=2, w_momentum=0.0,
                   w_weight_decay=0.0, hvp_r=1e-6, device="cpu")
    net.train()
    net.set_mode("softmax")
    (x, y), = list(search.train_batches.epoch(0))
    (xv, yv), = list(search.valid_batches.epoch(0))
    x, xv = x.double(), xv.double()
    weights = net.weight_parameters()
    arch = net.arch_parameters()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    approx, _ = search.second_order_grads((x, y), (xv, yv))
    after = net.state_dict()
    assert not state_equal({k: v for k, v in state.items() if "running" not in k and
                            "num_batches" not in k},
                           {k: after[k] for k in state if "running" not in k and "num_batches" not in k})
    net.load_state_dict(state)

    # Exact: differentiate L_val(w - xi * grad_w L_train(w, a), a) through the virtual step.
    names = [n for n, p in net.named_parameters() if not n.startswith("alphas.")]
    ce = torch.nn.functional.cross_entropy
    loss = ce(net(x), y)
    grads = torch.autograd.grad(loss, weights, create_graph=True, allow_unused=True)
    xi = search.w_lr
    unrolled = {n: w - xi * (g if g is not None else torch.zeros_like(w))
                for n, w, g in zip(names, weights, grads)}
    unrolled.update({f"alphas.{k}": p for k, p in net.alphas.items()})
    buffers = dict(net.named_buffers())
    out = torch.func.functional_call(net, {**unrolled, **buffers}, (xv,))
    exact = torch.autograd.grad(ce(out, yv), arch)
    for a, e in zip(approx, exact):
        assert torch.allclose(a, e, rtol=1e-5, atol=1e-8), (a, e)
    assert Darts(net, splits, order=2, batch_size=16).config.hvp_r == 0.01  # the paper's default


def test_second_order_virtual_step_includes_momentum_and_weight_decay() -> None:
    """After real steps with momentum, the virtual step must be the optimizer's next step:
    ``w' = w - xi * (momentum * buf + grad + decay * w)`` (as in DARTS' code), checked against
    autograd through exactly that step."""
    _, net = tiny_supernet("nb201")
    net = net.double()
    splits = tiny_splits(64, 16)
    momentum, decay = 0.9, 0.05  # a decay far above the default, so its term is visible
    search = Darts(net, splits, epochs=1, batch_size=16, order=2, w_momentum=momentum,
                   w_weight_decay=decay, hvp_r=1e-6, device="cpu")
    net.train()
    net.set_mode("softmax")
    train = [(x.double(), y) for x, y in search.train_batches.epoch(0)]
    (xv, yv), = [(x.double(), y) for x, y in search.valid_batches.epoch(0)]
    for batch in train[:3]:  # real steps fill the momentum buffers
        search.train_step(batch, (xv, yv))
    weights = net.weight_parameters()
    buffers = [search.w_opt.state[w].get("momentum_buffer") for w in weights]
    assert all(b is not None for b in buffers) and any(float(b.abs().sum()) > 0 for b in buffers)
    x, y = train[3]
    state = {k: v.clone() for k, v in net.state_dict().items()}
    approx, _ = search.second_order_grads((x, y), (xv, yv))
    net.load_state_dict(state)

    names = [n for n, p in net.named_parameters() if not n.startswith("alphas.")]
    ce = torch.nn.functional.cross_entropy
    grads = torch.autograd.grad(ce(net(x), y), weights, create_graph=True)
    xi = search.w_lr

    def exact(with_terms: bool) -> list[torch.Tensor]:
        unrolled = {}
        for n, w, g, b in zip(names, weights, grads, buffers):
            step = g + decay * w + momentum * b if with_terms else g
            unrolled[n] = w - xi * step
        unrolled.update({f"alphas.{k}": p for k, p in net.alphas.items()})
        out = torch.func.functional_call(net, {**unrolled, **dict(net.named_buffers())}, (xv,))
        return list(torch.autograd.grad(ce(out, yv), net.arch_parameters(), retain_graph=True))

    for a, e in zip(approx, exact(True)):
        assert torch.allclose(a, e, rtol=1e-5, atol=1e-8), (a, e)
    # The terms matter here: leaving them out gives a clearly different hypergradient.
    plain = exact(False)
    assert any(not torch.allclose(a, e, rtol=1e-3, atol=1e-6) for a, e in zip(approx, plain))


def test_gdas_temperature_schedule_and_sampling() -> None:
    assert tau_at(0, 5, 10.0, 0.1) == 10.0
    assert tau_at(4, 5, 10.0, 0.1) == pytest.approx(0.1)
    assert tau_at(2, 5, 10.0, 0.1) == pytest.approx(5.05)
    _, net = tiny_supernet("nb201")
    result = create_search("gdas", net, tiny_splits(), epochs=2, batch_size=16, device="cpu").run()
    assert [h["tau"] for h in result.history] == [10.0, pytest.approx(0.1)]
    with pytest.raises(ConfigError, match="tau_min <= tau_max"):
        create_search("gdas", net, tiny_splits(), tau_min=5.0, tau_max=1.0)


def test_spos_trains_single_paths_and_searches_with_inherited_weights() -> None:
    space, net = tiny_supernet("nb201")
    assert net.arch_parameters()
    alphas = _alphas(net)
    result = create_search("spos", net, tiny_splits(), search_trials=6, bn_batches=1,
                           eval_batch_size=32, **FAST).run()
    assert all(torch.equal(a, b) for a, b in zip(alphas, _alphas(net)))  # no architecture learning
    assert result.info["search_trials"] == 6
    assert result.info["supernet_accuracy"] == max(t["accuracy"] for t in result.info["top"])
    assert space.to_string(result.arch) == result.info["top"][0]["arch_string"]


def test_fair_paths_cover_every_option_of_every_decision_once() -> None:
    import numpy as np

    from nasforge import create_space
    from nasforge.oneshot.spos import fair_paths

    space = create_space("nb201")
    rng = np.random.default_rng(0)
    paths = fair_paths(space, rng)
    assert len(paths) == 5  # five operations per edge
    for d in space.decisions:
        assert sorted(p[d.name] for p in paths) == sorted(d.options)
    # Independent shuffles: the paths are not the five "all one op" cells.
    assert any(len({p[d.name] for d in space.decisions}) > 1 for p in paths)
    again = fair_paths(space, np.random.default_rng(0))
    assert again == paths  # same seed, same paths


def test_fair_spos_trains_every_path_of_a_step_in_one_update() -> None:
    space, net = tiny_supernet("nb201")
    search = create_search("spos", net, tiny_splits(), sampling="fair", search_trials=2,
                           bn_batches=1, eval_batch_size=32, **FAST)
    seen: list[Any] = []
    steps: list[int] = []
    original_set, original_step = net.set_arch, search.w_opt.step

    def spy_set(arch: Any) -> None:
        seen.append(arch)
        original_set(arch)

    def spy_step(*args: Any, **kwargs: Any) -> Any:
        steps.append(len(seen))
        return original_step(*args, **kwargs)

    net.set_arch = spy_set  # type: ignore[method-assign]
    search.w_opt.step = spy_step  # type: ignore[method-assign]
    batch = next(iter(search.train_batches.epoch(0)))
    search.train_step(batch, None)
    assert len(seen) == 5 and steps == [5]  # five paths, one optimizer step after all of them
    for d in space.decisions:
        assert sorted(a[d.name] for a in seen) == sorted(d.options)
    with pytest.raises(ConfigError, match="sampling must be one of uniform, fair"):
        create_search("spos", net, tiny_splits(), sampling="fairest")


def test_enas_controller_learns_from_validation_rewards() -> None:
    space, net = tiny_supernet("nb201")
    told: list[Trial] = []
    search = create_search("enas", net, tiny_splits(), controller="rea", controller_steps=5,
                           derive_samples=3, **FAST)
    original_tell = search.controller.tell  # type: ignore[attr-defined]

    def spy(trial: Trial) -> None:
        told.append(trial)
        original_tell(trial)

    search.controller.tell = spy  # type: ignore[attr-defined]
    result = search.run()
    assert len(told) == 5 and all(0.0 <= t.metrics["accuracy"] <= 100.0 for t in told)
    assert result.info["controller_updates"] == 5
    assert space.is_valid(result.arch)


def test_enas_with_the_reinforce_controller() -> None:
    space, net = tiny_supernet("nb201")
    search = create_search("enas", net, tiny_splits(), controller_steps=4, derive_samples=2,
                           **FAST)
    # ENAS's own controller settings, whatever the strategy's defaults are.
    ctrl = search.controller
    assert (ctrl.lr, ctrl.normalize_advantage, ctrl.avoid_repeats) == (0.001, False, False)  # type: ignore[attr-defined]
    result = search.run()
    assert space.is_valid(result.arch) and result.info["controller"] == "reinforce"
    # The user's controller options still win.
    tuned = create_search("enas", net, tiny_splits(), controller_options={"lr": 0.01}, **FAST)
    assert tuned.controller.lr == 0.01  # type: ignore[attr-defined]


def test_ofa_progressive_shrinking_and_sandwich_training() -> None:
    space, net = tiny_supernet("elastic")
    search = create_search("ofa", net, tiny_splits(64, 64, size=16), epochs=4, batch_size=16,
                           search_trials=3, bn_batches=1, eval_batch_size=32, device="cpu",
                           constraints=["params <= 1e9"])
    assert isinstance(search, Ofa)
    phases = [search.elastic_at(e) for e in range(4)]
    assert [p.phase for p in phases] == ["full", "kernel", "depth", "width"]
    assert phases[0].kernels == (7,) and phases[1].kernels == (3, 5, 7)
    assert phases[2].depths == (1, 2) and phases[2].expands == (3,)
    assert phases[3].expands == (2, 3) and phases[3].sort_channels
    result = search.run()
    # full phase trains only the largest network; later phases the sandwich (3-4 distinct nets)
    assert result.history[0]["subnets"] == 1.0 and result.history[3]["subnets"] > 2.0
    assert space.is_valid(result.arch)
    assert {"largest_accuracy", "smallest_accuracy", "top"} <= set(result.info)
    search.supernet.eval()
    x = torch.randn(2, 1, 16, 16)
    search.supernet.set_arch(result.arch)
    assert torch.allclose(search.supernet(x), search.supernet.extract(result.arch).eval()(x), atol=1e-5)


def test_ofa_depth_phase_widens_one_depth_at_a_time() -> None:
    """OFA's elastic depth with depths (2, 3, 4): {4} -> {4, 3} -> {4, 3, 2}, checked on the
    sub-networks actually trained in each epoch, not only on the schedule."""
    space = ElasticSpace(depths=(2, 3, 4), expand_ratios=(2, 3), kernel_sizes=(3, 5),
                         stages=[StageSpec(8, 2, "relu", False), StageSpec(8, 2, "relu", False)])
    net = seeded_supernet(space, 0, **ELASTIC_TINY)
    search = create_search("ofa", net, tiny_splits(32, 32, size=16), epochs=4, batch_size=16,
                           phase_epochs=[1, 1, 2, 0], search_trials=1, bn_batches=1,
                           eval_batch_size=32, device="cpu")
    assert isinstance(search, Ofa)
    assert [search.elastic_at(e).depths for e in range(4)] == [(4,), (4,), (3, 4), (2, 3, 4)]
    assert [search.elastic_at(e).phase for e in range(4)] == ["full", "kernel", "depth", "depth"]
    seen: dict[int, set[int]] = {}
    sample = search.sample

    def spy(which: str) -> Any:
        arch = sample(which)
        seen.setdefault(search.epoch, set()).update(
            int(arch[space.depth_name(s)]) for s in range(len(space.stages)))
        return arch

    search.sample = spy  # type: ignore[method-assign]
    search.run()
    # Epoch 2 may use depth 3 and 4 but never 2; epoch 3 uses 2 (the smallest net of the sandwich).
    assert seen[0] == {4} and seen[1] == {4}
    assert seen[2] == {3, 4} and seen[3] >= {2, 4}


def test_ofa_phase_lengths_and_rules_are_validated() -> None:
    _, net = tiny_supernet("elastic")
    with pytest.raises(ConfigError, match="phase_epochs"):
        create_search("ofa", net, tiny_splits(size=16), epochs=4, phase_epochs=[1, 1, 1])
    with pytest.raises(ConfigError, match="unknown sampling rule 'all'"):
        create_search("ofa", net, tiny_splits(size=16), rule="all")
    search = create_search("ofa", net, tiny_splits(size=16), epochs=6, phase_epochs=[0, 1, 2, 3])
    assert [search.elastic_at(e).phase for e in range(6)] == ["kernel", "depth", "depth", "width",
                                                              "width", "width"]
    _, nb = tiny_supernet("nb201")
    with pytest.raises(ConfigError, match="elastic space's supernet"):
        create_search("ofa", nb, tiny_splits())


def test_same_seed_same_result_and_other_seed_differs() -> None:
    def run(seed: int) -> dict[str, torch.Tensor]:
        _, net = tiny_supernet("nb201", seed=seed)
        create_search("gdas", net, tiny_splits(), seed=seed, **FAST).run()
        return net.state_dict()

    assert not state_equal(run(3), run(3))
    assert state_equal(run(3), run(4))


def test_bad_options_are_named() -> None:
    _, net = tiny_supernet("nb201")
    with pytest.raises(ConfigError, match=r"unknown option.*'learning_rate'.*allowed"):
        create_search("darts", net, tiny_splits(), learning_rate=0.1)
    with pytest.raises(ConfigError, match="order must be 1 or 2"):
        Darts(net, tiny_splits(), order=3)
    with pytest.raises(ConfigError, match=r"'darts' means order=1.*darts2"):
        create_search("darts", net, tiny_splits(), order=2)
    with pytest.raises(ConfigError, match="epochs must be an integer >= 1"):
        create_search("spos", net, tiny_splits(), epochs=0)
    with pytest.raises(ConfigError, match="unknown one-shot method 'nao'"):
        create_search("nao", net, tiny_splits())
    with pytest.raises(ConfigError, match="fewer than one batch"):
        create_search("darts", net, tiny_splits(8, 8), batch_size=16)
    assert set(list_methods()) == {"darts", "darts2", "pcdarts", "gdas", "spos", "enas", "ofa"}
