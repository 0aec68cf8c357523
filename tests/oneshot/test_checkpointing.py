"""Activation checkpointing of supernets: same gradients, weights and BatchNorm statistics."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from oneshot_helpers import tiny_splits, tiny_supernet

from nasforge.errors import ConfigError
from nasforge.oneshot.methods import create_search
from nasforge.supernet import Supernet
from nasforge.supernet.recompute import LEVELS, Checkpointed

_BN = torch.nn.modules.batchnorm._BatchNorm


def _grads_and_stats(net: Supernet, x: torch.Tensor, y: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    net.train()
    net.zero_grad(set_to_none=True)
    torch.nn.functional.cross_entropy(net(x), y).backward()
    grads = [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in net.parameters()]
    return grads, [b.clone() for b in net.buffers()]


def _max_diff(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    assert len(a) == len(b)
    return max(float((u.double() - v.double()).abs().max()) for u, v in zip(a, b))


@pytest.mark.parametrize(
    ("space_name", "extra"),
    [
        ("darts", {}),
        ("nb201", {}),
        ("darts", {"partial_channels": 2, "edge_normalization": True}),
    ],
)
@pytest.mark.parametrize("mode", ["softmax", "gumbel", "single_path"])
def test_checkpointed_gradients_and_batchnorm_stats_equal_plain_ones(
    space_name: str, extra: dict[str, Any], mode: str
) -> None:
    _, base = tiny_supernet(space_name, **extra)
    x = torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    results = {}
    for level in LEVELS:
        net = copy.deepcopy(base).set_checkpointing(level)
        net.set_mode(mode)
        net.generator.manual_seed(3)  # the same Gumbel / single-path samples for every level
        results[level] = _grads_and_stats(net, x, y)
    grads, stats = results["none"]
    assert any(float(g.abs().max()) > 0 for g in grads[: len(base.arch_parameters())]) or mode == "single_path"
    for level in ("mixed_op", "cell"):
        assert _max_diff(results[level][0], grads) <= 1e-6, level
        assert _max_diff(results[level][1], stats) == 0.0, level  # BN statistics updated once


def test_checkpointing_recomputes_the_ops_once_and_counts_batchnorm_batches_once() -> None:
    _, net = tiny_supernet("darts")
    net.set_checkpointing("mixed_op").train()
    op = next(iter(net.mixed_ops())).candidates["sep_conv_3x3"]
    calls = []
    op.register_forward_hook(lambda *_: calls.append(1))
    bn = next(m for m in op.modules() if isinstance(m, _BN))
    before = int(bn.num_batches_tracked)
    torch.nn.functional.cross_entropy(net(torch.randn(4, 1, 8, 8)), torch.tensor([0, 1, 2, 3])).backward()
    assert len(calls) == 2  # forward, then the recomputation in backward
    assert int(bn.num_batches_tracked) == before + 1
    calls.clear()
    with torch.no_grad():  # nothing to recompute without a backward pass
        net(torch.randn(4, 1, 8, 8))
    assert len(calls) == 1


@pytest.mark.parametrize(
    ("space_name", "method", "level"),
    [
        ("darts", "darts", "mixed_op"),
        ("darts", "darts2", "cell"),
        ("darts", "gdas", "cell"),
        ("nb201", "darts2", "mixed_op"),
        ("nb201", "spos", "cell"),
        ("nb201", "enas", "mixed_op"),
    ],
)
def test_a_checkpointed_search_step_equals_a_plain_one(space_name: str, method: str, level: str) -> None:
    torch.set_num_threads(1)
    out = {}
    for lv in ("none", level):
        _, net = tiny_supernet(space_name, checkpointing=lv)
        search = create_search(
            method,
            net,
            tiny_splits(32, 32),
            epochs=1,
            batch_size=16,
            steps_per_epoch=1,
            seed=0,
            **({"controller_steps": 1} if method == "enas" else {}),
        )
        search.supernet.train()
        search.start_epoch(0)
        batch, valid = next(search._batches())
        search.train_step(batch, valid)
        out[lv] = ([p.detach().clone() for p in net.parameters()], [b.clone() for b in net.buffers()])
    assert _max_diff(out[level][0], out["none"][0]) <= 1e-6
    assert _max_diff(out[level][1], out["none"][1]) <= 1e-6


def test_checkpointing_is_not_part_of_the_state_and_survives_deepcopy() -> None:
    _, plain = tiny_supernet("darts")
    _, net = tiny_supernet("darts", checkpointing="cell")
    assert net.checkpointing == "cell"
    assert net.state_dict().keys() == plain.state_dict().keys()
    assert net.describe() == plain.describe()
    copied = copy.deepcopy(net)
    wrapped = [m for m in copied.modules() if isinstance(m.__dict__.get("forward"), Checkpointed)]
    assert len(wrapped) == len(copied.cells()) == 3
    assert all(m.forward.module is m for m in wrapped)
    net.set_checkpointing("none")
    assert not any(isinstance(m.__dict__.get("forward"), Checkpointed) for m in net.modules())


def test_checkpointing_errors_name_the_allowed_levels() -> None:
    with pytest.raises(ConfigError, match=r"unknown checkpointing level 'layer'.*'mixed_op'"):
        tiny_supernet("darts", checkpointing="layer")
    _, elastic = tiny_supernet("elastic")
    with pytest.raises(ConfigError, match="no cells to checkpoint"):
        elastic.set_checkpointing("cell")
    with pytest.raises(ConfigError, match="unknown checkpointing level"):
        tiny_supernet("nb201", checkpointing=True)
