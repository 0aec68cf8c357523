"""Every registered zero-cost proxy on tiny models: finite, deterministic, leaves the model alone,
and the orderings and special values their definitions imply."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nasforge.errors import ConfigError, UnknownNameError
from nasforge.metrics import count_flops, count_params
from nasforge.proxies import PROXIES, compute_proxy, get_proxy, list_proxies
from nasforge.proxies.saliency import fisher

ALL = list_proxies()
DATA_FREE = {"synflow", "params", "flops"}


def tiny(width: int = 6, seed: int = 0, bn: bool = True, dropout: float = 0.0) -> nn.Sequential:
    """conv-BN-ReLU x2, global pool, linear: the shape of the cell networks, 3x8x8 inputs."""
    torch.manual_seed(seed)

    def norm(channels: int) -> nn.Module:
        return nn.BatchNorm2d(channels) if bn else nn.Identity()

    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1, bias=False), norm(width), nn.ReLU(inplace=True),
        nn.Conv2d(width, width, 3, padding=1, bias=False), norm(width), nn.ReLU(),
        nn.Dropout(dropout), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 5),
    )


def batch(n: int = 8, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 8, 8, generator=gen), torch.randint(0, 5, (n,), generator=gen)


def test_registry_lists_every_proxy_with_what_it_needs() -> None:
    assert set(ALL) == {"synflow", "snip", "grasp", "fisher", "fisher_per_channel", "jacob_cov",
                        "naswot", "grad_norm", "params", "flops"}
    assert set(list_proxies(data_free=True)) == DATA_FREE
    assert set(list_proxies(data_free=False)) == set(ALL) - DATA_FREE
    needs_labels = {n for n in ALL if get_proxy(n).needs_targets}
    assert needs_labels == {"snip", "grasp", "fisher", "fisher_per_channel", "grad_norm"}
    for proxy in PROXIES.values():
        assert proxy.summary and proxy.reference


def test_unknown_proxy_names_the_allowed_ones() -> None:
    x, y = batch()
    with pytest.raises(UnknownNameError) as err:
        compute_proxy("synflw", tiny(), x, y)
    assert "'synflw'" in str(err.value)
    for name in ALL:
        assert repr(name) in str(err.value)


@pytest.mark.parametrize("name", ALL)
def test_finite_deterministic_and_model_untouched(name: str) -> None:
    model = tiny()
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = batch()
    torch.manual_seed(123)
    rng_before = torch.get_rng_state()
    first = compute_proxy(name, model, x, y, seed=3)
    assert torch.equal(torch.get_rng_state(), rng_before)  # the caller's RNG is not consumed
    assert math.isfinite(first)
    torch.manual_seed(999)  # a different global RNG state must not matter
    assert compute_proxy(name, model, x, y, seed=3) == first
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "weights or buffers changed"
    assert all(p.grad is None for p in model.parameters())
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert model.training and isinstance(model[1], nn.BatchNorm2d)
    assert model[2].inplace  # the copy, not the model, had its in-place ReLU turned off


@pytest.mark.parametrize("name", sorted(DATA_FREE))
def test_data_free_proxies_ignore_the_input_values(name: str) -> None:
    model = tiny()
    x, _ = batch()
    assert compute_proxy(name, model, x) == compute_proxy(name, model, torch.zeros(1, 3, 8, 8))


@pytest.mark.parametrize("name", sorted(n for n in ALL if get_proxy(n).needs_targets))
def test_loss_based_proxies_need_labels(name: str) -> None:
    x, y = batch()
    with pytest.raises(ConfigError, match="needs targets"):
        compute_proxy(name, tiny(), x)
    with pytest.raises(ConfigError, match="8 inputs but 3 targets"):
        compute_proxy(name, tiny(), x, y[:3])


@pytest.mark.parametrize("name", ["synflow", "params", "flops", "snip", "grad_norm", "naswot"])
def test_wider_network_scores_higher(name: str) -> None:
    x, y = batch(16)
    for seed in range(3):
        assert compute_proxy(name, tiny(12, seed), x, y) > compute_proxy(name, tiny(3, seed), x, y)


def test_synflow_matches_its_closed_form_on_a_two_layer_net() -> None:
    # With |W| and an all-ones input every path 1 -> out has both layers on it, so
    # sum |theta dR/dtheta| = 2 * R = 2 * 1^T |W2| |W1| 1.
    torch.manual_seed(0)
    first, second = nn.Linear(4, 3, bias=False), nn.Linear(3, 2, bias=False)
    model = nn.Sequential(first, nn.ReLU(), second)
    w1, w2 = first.weight.detach().double().abs(), second.weight.detach().double().abs()
    expected = 2 * float((w2 @ w1 @ torch.ones(4, dtype=torch.float64)).sum())
    assert compute_proxy("synflow", model, torch.randn(5, 4)) == pytest.approx(expected, rel=1e-12)


def test_synflow_ignores_batchnorm_and_input_batch_size() -> None:
    with_bn, without = tiny(bn=True), tiny(bn=False)
    without.load_state_dict({k: v for k, v in with_bn.state_dict().items()
                             if not k.startswith(("1.", "4."))})  # all but the BatchNorms
    x, _ = batch()
    assert compute_proxy("synflow", with_bn, x) == pytest.approx(
        compute_proxy("synflow", without, x[:1]), rel=1e-12)


def test_params_and_flops_are_the_metrics() -> None:
    model = tiny()
    x, _ = batch()
    assert compute_proxy("params", model, x) == count_params(model)
    assert compute_proxy("flops", model, x) == count_flops(model, (3, 8, 8))


def test_snip_and_grad_norm_follow_their_definitions() -> None:
    model = tiny(bn=False)
    x, y = batch()
    check = tiny(bn=False)
    check.train()
    nn.functional.cross_entropy(check(x), y).backward()
    snip = norm = 0.0
    for m in check.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            assert m.weight.grad is not None
            snip += float((m.weight.detach() * m.weight.grad).abs().sum())
            norm += float(m.weight.grad.norm())
    assert compute_proxy("snip", model, x, y) == pytest.approx(snip, rel=1e-5)
    assert compute_proxy("grad_norm", model, x, y) == pytest.approx(norm, rel=1e-5)


def test_custom_loss_is_used() -> None:
    x, y = batch()
    model = tiny()

    def doubled(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return 2 * nn.functional.cross_entropy(logits, targets)

    plain = compute_proxy("grad_norm", model, x, y)
    assert compute_proxy("grad_norm", model, x, y, loss_fn=doubled) == pytest.approx(2 * plain)


def test_seed_controls_the_model_randomness() -> None:
    model = tiny(dropout=0.5)
    x, y = batch()
    a = compute_proxy("snip", model, x, y, seed=0)
    assert compute_proxy("snip", model, x, y, seed=0) == a
    assert compute_proxy("snip", model, x, y, seed=1) != a


def test_naswot_is_minus_infinity_for_identical_images() -> None:
    x, _ = batch(4)
    x[1] = x[0]  # two identical activation codes: the kernel is singular
    assert compute_proxy("naswot", tiny(bn=False), x) == -math.inf


def test_naswot_needs_relu_modules_and_two_images() -> None:
    x, _ = batch()
    no_relu = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(5))
    no_relu(x)  # materialize the lazy layer
    with pytest.raises(ConfigError, match=r"nn\.ReLU"):
        compute_proxy("naswot", no_relu, x)
    for name in ("naswot", "jacob_cov"):
        with pytest.raises(ConfigError, match="at least 2"):
            compute_proxy(name, tiny(), x[:1])


def test_jacob_cov_is_nan_when_the_output_ignores_the_input() -> None:
    model = tiny(bn=False)
    first = model[0]
    assert isinstance(first, nn.Conv2d)
    with torch.no_grad():
        first.weight.zero_()
    x, _ = batch()
    assert math.isnan(compute_proxy("jacob_cov", model, x))


def test_model_without_conv_or_linear_is_rejected() -> None:
    x, y = batch()
    with pytest.raises(ConfigError, match="no Conv or Linear"):
        compute_proxy("snip", nn.Sequential(nn.Flatten()), x, y)
    with pytest.raises(ConfigError, match=r"torch\.nn\.Module"):
        compute_proxy("params", "not a model", x)  # type: ignore[arg-type]


def test_grasp_explains_missing_second_derivatives() -> None:
    x, y = batch()
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Hardsigmoid(), nn.Flatten(), nn.Linear(144, 5))
    with pytest.raises(ConfigError, match="second derivatives"):
        compute_proxy("grasp", model, x, y)


def test_fisher_counts_a_channel_once_per_weight_as_published_or_once_per_channel() -> None:
    torch.manual_seed(0)
    conv, linear = nn.Conv2d(3, 4, 3, padding=1), nn.Linear(4, 5)
    model = nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), linear)
    x, y = batch()
    # By hand: the loss gradient of each layer's output, then 0.5 * mean_n (sum_hw a * g)^2.
    a1 = conv(x)  # the proxy runs on a copy; these are the same weights
    a2 = linear(torch.relu(a1).mean((2, 3)))
    g1, g2 = torch.autograd.grad(nn.functional.cross_entropy(a2, y), [a1, a2])
    conv_part = float((0.5 * (a1 * g1).sum((2, 3)).pow(2).mean(0)).sum().detach())
    linear_part = float((0.5 * (a2 * g2).pow(2).mean(0)).sum().detach())
    per_channel = compute_proxy("fisher_per_channel", model, x, y)
    published = compute_proxy("fisher", model, x, y)
    assert per_channel == pytest.approx(conv_part + linear_part, rel=1e-5)
    # Abdelfattah et al. give each of a channel's weights its value: 3*3*3 per conv channel, 4 per unit.
    assert published == pytest.approx(27 * conv_part + 4 * linear_part, rel=1e-5)
    with pytest.raises(ConfigError, match="fisher mode must be one of"):
        fisher(model, x, y, nn.functional.cross_entropy, mode="per_layer")
