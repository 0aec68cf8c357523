"""Weights in the original implementations' layout (DARTS, NAS-Bench-201): layout, import, export.

The original code is not part of this repository, so the expected layout is written out here from
its documented structure (DARTS' ``model_search.py``: ``cells.i.preprocess0.op.1.weight``,
``cells.i._ops.k._ops.j...``; NAS-Bench-201's ``TinyNetwork``), and the DARTS search network's
forward pass is recomputed functionally from such a ``state_dict`` as the reference.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from oneshot_helpers import randomize_batchnorm, tiny_supernet

import nasforge
from nasforge.errors import ConfigError
from nasforge.supernet import seeded_supernet
from nasforge.supernet.original import DARTS_PRIMITIVES, from_original, original_layout, to_original

Tensor = torch.Tensor
State = dict[str, Tensor]
C, LAYERS, STEPS = 4, 3, 4
KERNELS = {"sep_conv_3x3": 3, "sep_conv_5x5": 5, "dil_conv_3x3": 3, "dil_conv_5x5": 5}


# ---------------------------------------------------------------- DARTS search network, by hand
def _cell_plan() -> list[tuple[int, int, int, bool, bool]]:
    """``(c_prev_prev, c_prev, c, reduction, reduction_prev)`` per cell (stem 3*C, 1 input channel)."""
    plan, pp, p, c, red_prev = [], 3 * C, 3 * C, C, False
    for i in range(LAYERS):
        red = i in (LAYERS // 3, 2 * LAYERS // 3)
        c = c * 2 if red else c
        plan.append((pp, p, c, red, red_prev))
        pp, p, red_prev = p, STEPS * c, red
    return plan


def _bn_shapes(prefix: str, n: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.running_mean": (n,), f"{prefix}.running_var": (n,), f"{prefix}.num_batches_tracked": ()}


def expected_darts_search_layout() -> dict[str, tuple[int, ...]]:
    """Entry -> shape of ``model_search.Network(C=4, layers=3)`` with 1 input channel, 4 classes."""
    out: dict[str, tuple[int, ...]] = {
        "stem.0.weight": (3 * C, 1, 3, 3),
        "stem.1.weight": (3 * C,),
        "stem.1.bias": (3 * C,),
        **_bn_shapes("stem.1", 3 * C),
    }
    for i, (pp, p, c, red, red_prev) in enumerate(_cell_plan()):
        cell = f"cells.{i}"
        if red_prev:
            out |= {
                f"{cell}.preprocess0.conv_1.weight": (c // 2, pp, 1, 1),
                f"{cell}.preprocess0.conv_2.weight": (c // 2, pp, 1, 1),
                **_bn_shapes(f"{cell}.preprocess0.bn", c),
            }
        else:
            out |= {f"{cell}.preprocess0.op.1.weight": (c, pp, 1, 1), **_bn_shapes(f"{cell}.preprocess0.op.2", c)}
        out |= {f"{cell}.preprocess1.op.1.weight": (c, p, 1, 1), **_bn_shapes(f"{cell}.preprocess1.op.2", c)}
        k = 0
        for step in range(STEPS):
            for j in range(2 + step):
                for index, name in enumerate(DARTS_PRIMITIVES):
                    op = f"{cell}._ops.{k}._ops.{index}"
                    size = KERNELS.get(name, 0)
                    if "pool" in name:
                        out |= _bn_shapes(f"{op}.1", c)
                    elif name == "skip_connect" and red and j < 2:
                        out |= {
                            f"{op}.conv_1.weight": (c // 2, c, 1, 1),
                            f"{op}.conv_2.weight": (c // 2, c, 1, 1),
                            **_bn_shapes(f"{op}.bn", c),
                        }
                    elif name.startswith("sep_conv"):
                        for base in (1, 5):
                            out |= {
                                f"{op}.op.{base}.weight": (c, 1, size, size),
                                f"{op}.op.{base + 1}.weight": (c, c, 1, 1),
                                **_bn_shapes(f"{op}.op.{base + 2}", c),
                            }
                    elif name.startswith("dil_conv"):
                        out |= {
                            f"{op}.op.1.weight": (c, 1, size, size),
                            f"{op}.op.2.weight": (c, c, 1, 1),
                            **_bn_shapes(f"{op}.op.3", c),
                        }
                k += 1
    c_last = STEPS * _cell_plan()[-1][2]
    out |= {
        "classifier.weight": (4, c_last),
        "classifier.bias": (4,),
        "alphas_normal": (14, 8),
        "alphas_reduce": (14, 8),
    }
    return out


def _bn(s: State, p: str, x: Tensor, affine: bool = False) -> Tensor:
    w, b = (s[f"{p}.weight"], s[f"{p}.bias"]) if affine else (None, None)
    return F.batch_norm(x, s[f"{p}.running_mean"], s[f"{p}.running_var"], w, b, training=False)


def _fr(s: State, p: str, x: Tensor) -> Tensor:
    x = F.relu(x)
    y = torch.cat(
        [F.conv2d(x, s[f"{p}.conv_1.weight"], stride=2), F.conv2d(x[:, :, 1:, 1:], s[f"{p}.conv_2.weight"], stride=2)],
        1,
    )
    return _bn(s, f"{p}.bn", y)


def _dw(s: State, p: str, first: int, x: Tensor, k: int, stride: int, dil: int) -> Tensor:
    w = s[f"{p}.op.{first}.weight"]
    x = F.conv2d(F.relu(x), w, stride=stride, padding=dil * (k // 2), dilation=dil, groups=w.shape[0])
    return _bn(s, f"{p}.op.{first + 2}", F.conv2d(x, s[f"{p}.op.{first + 1}.weight"]))


def _candidate(s: State, p: str, name: str, x: Tensor, stride: int) -> Tensor:
    if name == "none":
        return x[:, :, ::stride, ::stride].mul(0.0)
    if name == "max_pool_3x3":
        return _bn(s, f"{p}.1", F.max_pool2d(x, 3, stride, 1))
    if name == "avg_pool_3x3":
        return _bn(s, f"{p}.1", F.avg_pool2d(x, 3, stride, 1, count_include_pad=False))
    if name == "skip_connect":
        return x if stride == 1 else _fr(s, p, x)
    if name.startswith("sep_conv"):
        return _dw(s, p, 5, _dw(s, p, 1, x, KERNELS[name], stride, 1), KERNELS[name], 1, 1)
    return _dw(s, p, 1, x, KERNELS[name], stride, 2)


def reference_darts_search_forward(s: State, x: Tensor) -> Tensor:
    """The DARTS search network's eval-mode logits computed from an original-layout state."""
    s0 = s1 = _bn(s, "stem.1", F.conv2d(x, s["stem.0.weight"], padding=1), affine=True)
    for i, (_, _, _, red, red_prev) in enumerate(_cell_plan()):
        cell = f"cells.{i}"
        w = torch.softmax(s["alphas_reduce" if red else "alphas_normal"], dim=-1)
        pre0 = (
            _fr(s, f"{cell}.preprocess0", s0)
            if red_prev
            else _bn(s, f"{cell}.preprocess0.op.2", F.conv2d(F.relu(s0), s[f"{cell}.preprocess0.op.1.weight"]))
        )
        pre1 = _bn(s, f"{cell}.preprocess1.op.2", F.conv2d(F.relu(s1), s[f"{cell}.preprocess1.op.1.weight"]))
        states, k = [pre0, pre1], 0
        for _ in range(STEPS):
            total = torch.zeros(())
            for j, h in enumerate(list(states)):
                stride = 2 if red and j < 2 else 1
                for index, name in enumerate(DARTS_PRIMITIVES):
                    total = total + w[k, index] * _candidate(s, f"{cell}._ops.{k}._ops.{index}", name, h, stride)
                k += 1
            states.append(total)
        s0, s1 = s1, torch.cat(states[-STEPS:], 1)
    return F.linear(s1.mean((2, 3)), s["classifier.weight"], s["classifier.bias"])


def _random_state(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> State:
    gen = torch.Generator().manual_seed(seed)
    out: State = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            out[key] = torch.tensor(7)
        elif key.endswith("running_var"):
            out[key] = torch.rand(shape, generator=gen, dtype=torch.float64) + 0.5
        else:
            out[key] = 0.5 * torch.randn(shape, generator=gen, dtype=torch.float64)
    return out


def test_darts_supernet_reads_the_original_search_layout_and_computes_its_logits() -> None:
    _, net = tiny_supernet("darts", in_channels=1)
    expected = expected_darts_search_layout()
    exported = to_original(net)
    assert {k: tuple(v.shape) for k, v in exported.items()} == expected
    original = _random_state(expected)
    net = net.double()
    net.load_state_dict(from_original(net, original), strict=True)
    net.eval()
    x = torch.randn(3, 1, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    reference = reference_darts_search_forward(original, x)
    assert torch.allclose(net(x), reference, atol=1e-10)
    # Without the original's alphas the network keeps its own.
    own = {k: v.clone() for k, v in net.state_dict().items() if k.startswith("alphas.")}
    reloaded = from_original(net, {k: v for k, v in original.items() if not k.startswith("alphas_")})
    assert all(torch.equal(reloaded[k], v) for k, v in own.items())


def test_darts_derived_network_follows_the_genotypes_edge_order() -> None:
    space = nasforge.create_space("darts")
    net = space.build(space.from_string("DARTS_V2"), C=4, layers=3, auxiliary=True, in_channels=1)
    exported = to_original(net, genotype="DARTS_V2")
    # DARTS_V2's normal node 4 lists ('sep_conv_3x3', 1) before ('skip_connect', 0): the original's
    # edge 4 holds the separable conv (8 layers in one sequential), edge 5 the identity.
    assert "cells.0._ops.4.op.7.running_var" in exported
    assert not any(k.startswith("cells.0._ops.5.") for k in exported)
    assert "cells.1.preprocess0.conv_1.weight" not in exported  # cell 1 reduces: its pre0 is plain
    assert "cells.2.preprocess0.conv_1.weight" in exported
    assert {"auxiliary_head.features.2.weight", "auxiliary_head.features.6.running_mean"} <= set(exported)
    # Read back without the genotype (our canonical order), the entries no longer fit.
    with pytest.raises(ConfigError, match=r"missing 8 \(e.g. cells.0._ops.5.op.1.weight"):
        from_original(net, exported)


def _round_trip(model: torch.nn.Module, fresh: torch.nn.Module, x: Tensor, genotype: str | None = None) -> None:
    randomize_batchnorm(model, seed=3)
    model.eval()
    fresh.eval()
    original = to_original(model, genotype)
    fresh.load_state_dict(from_original(fresh, original, genotype), strict=True)
    assert torch.equal(fresh(x), model(x))


@pytest.mark.parametrize("space_name", ["darts", "nb201"])
def test_supernets_round_trip_through_the_original_layout(space_name: str) -> None:
    _, net = tiny_supernet(space_name, seed=0)
    _, fresh = tiny_supernet(space_name, seed=1)
    with torch.no_grad():
        for p in net.arch_parameters():
            p.normal_()
    _round_trip(net, fresh, torch.randn(2, 1, 16, 16))
    assert all(torch.equal(a, b) for a, b in zip(net.arch_parameters(), fresh.arch_parameters()))


@pytest.mark.parametrize(("dataset", "size"), [("cifar", 16), ("imagenet", 64)])
def test_darts_networks_round_trip_through_the_original_layout(dataset: str, size: int) -> None:
    space = nasforge.create_space("darts")
    arch = space.from_string("DARTS_V2")
    build = {"C": 4, "layers": 3, "auxiliary": True, "in_channels": 1, "dataset": dataset}
    torch.manual_seed(0)
    net = space.build(arch, **build)
    torch.manual_seed(1)
    _round_trip(net, space.build(arch, **build), torch.randn(2, 1, size, size), genotype="DARTS_V2")


def test_nb201_network_uses_the_tiny_network_layout_and_round_trips() -> None:
    space = nasforge.create_space("nb201")
    arch = space.from_string("|nor_conv_3x3~0|+|avg_pool_3x3~0|skip_connect~1|+|nor_conv_1x1~0|none~1|nor_conv_3x3~2|")
    torch.manual_seed(0)
    net = space.build(arch, C=4, N=1, in_channels=1, num_classes=4)
    names = set(to_original(net))
    assert {
        "cells.0.layers.0.op.1.weight",
        "cells.0.layers.3.op.2.running_mean",
        "cells.0.layers.5.op.1.weight",
        "cells.1.conv_a.op.1.weight",
        "cells.1.downsample.1.weight",
        "lastact.0.weight",
        "stem.0.weight",
    } <= names
    assert not any(k.startswith(("cells.0.layers.1.", "cells.0.layers.2.")) for k in names)  # pool, skip
    torch.manual_seed(1)
    _round_trip(net, space.build(arch, C=4, N=1, in_channels=1, num_classes=4), torch.randn(2, 1, 12, 12))


def test_nb201_search_network_folds_conv_biases_into_the_batchnorm() -> None:
    _, net = tiny_supernet("nb201")
    randomize_batchnorm(net)
    net.eval()
    x = torch.randn(2, 1, 12, 12)
    before = net(x)
    original = to_original(net)
    layout = original_layout(net)
    assert layout.folded_biases and set(layout.folded_biases) <= set(original)
    assert original["arch_parameters"].shape == (6, 5)
    # The same function with non-zero biases: conv + b, and BatchNorm means shifted by b.
    gen = torch.Generator().manual_seed(0)
    mean_of = {ours: orig for ours, orig in layout.names.items()}
    for bias in layout.folded_biases:
        original[bias] = torch.randn(original[bias].shape, generator=gen)
        original[mean_of[layout.folded_biases[bias]]] += original[bias]
    _, fresh = tiny_supernet("nb201", seed=1)
    fresh.load_state_dict(from_original(fresh, original), strict=True)
    fresh.eval()
    assert torch.allclose(fresh(x), before, atol=1e-5)


def test_original_layout_errors_name_the_problem() -> None:
    _, derived_equivalent = tiny_supernet("darts", faithful=False)
    with pytest.raises(ConfigError, match="faithful=True"):
        to_original(derived_equivalent)
    with pytest.raises(ConfigError, match="no original layout is known for Linear; supported"):
        original_layout(torch.nn.Linear(2, 2))
    _, net = tiny_supernet("darts")
    state = to_original(net)
    state.pop("stem.0.weight")
    state["cells.0.extra"] = torch.zeros(1)
    with pytest.raises(ConfigError, match=r"missing 1 \(e.g. stem.0.weight\); unexpected 1"):
        from_original(net, state)
    wide = seeded_supernet(nasforge.create_space("darts"), 0, C=6, layers=3, in_channels=1, num_classes=4)
    with pytest.raises(ConfigError, match="other shape"):
        from_original(wide, to_original(net))
