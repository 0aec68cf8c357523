"""The fast NAS-Bench-201 synflow scorer gives the generic proxy's number without building."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nasforge.errors import ConfigError, InvalidArchitectureError
from nasforge.proxies import NB201Synflow, compute_proxy, live_edges
from nasforge.spaces.nb201 import NB201Space

SPACE = NB201Space()


def generic(arch: object, seed: int, shape: tuple[int, int, int] = (3, 32, 32), **build: int
            ) -> float:
    torch.manual_seed(seed)
    model = SPACE.build(arch, in_channels=shape[0], **build)  # type: ignore[arg-type]
    return compute_proxy("synflow", model, torch.zeros(1, *shape))


def test_equals_the_generic_proxy_on_random_cells() -> None:
    scorer = NB201Synflow(C=4, N=2)
    for seed in range(12):
        arch = SPACE.sample(seed)
        expected = generic(arch, seed, C=4, N=2)
        assert scorer(arch, seed) == pytest.approx(expected, rel=1e-12, abs=0.0)


def test_equals_the_generic_proxy_on_the_benchmark_network() -> None:
    arch = SPACE.from_string(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|"
        "skip_connect~2|"
    )
    assert NB201Synflow()(arch, 7) == pytest.approx(generic(arch, 7), rel=1e-12)


def test_other_input_shapes_and_class_counts() -> None:
    arch = SPACE.sample(3)
    scorer = NB201Synflow(C=4, N=1, num_classes=7, in_channels=1, image_size=28)
    expected = generic(arch, 0, (1, 28, 28), C=4, N=1, num_classes=7)
    assert scorer(arch, 0) == pytest.approx(expected, rel=1e-12)


def test_degenerate_cells_score_zero_like_autograd() -> None:
    arch = SPACE.from_string("|none~0|+|nor_conv_3x3~0|none~1|+|none~0|nor_conv_3x3~1|none~2|")
    assert SPACE.is_degenerate(arch)
    assert NB201Synflow(C=4, N=1)(arch, 0) == 0.0 == generic(arch, 0, C=4, N=1)


def test_dead_edges_do_not_change_the_score() -> None:
    # Node 1 feeds nothing but a none edge: its conv draws weights but contributes nothing.
    live = SPACE.from_string("|nor_conv_3x3~0|+|skip_connect~0|none~1|+|nor_conv_1x1~0|none~1|"
                             "avg_pool_3x3~2|")
    assert live_edges(SPACE.edges(live)) == [(2, 0, "skip_connect"), (3, 0, "nor_conv_1x1"),
                                            (3, 2, "avg_pool_3x3")]
    assert NB201Synflow(C=4, N=1)(live, 5) == pytest.approx(generic(live, 5, C=4, N=1), rel=1e-12)


def test_accepts_strings_and_edge_lists_and_rejects_others() -> None:
    arch = SPACE.sample(1)
    scorer = NB201Synflow(C=4, N=1)
    value = scorer(arch, 2)
    assert scorer(SPACE.to_string(arch), 2) == value == scorer(SPACE.edges(arch), 2)
    assert scorer(arch, 3) != value  # another init, another score
    with pytest.raises(InvalidArchitectureError, match="not a NAS-Bench-201 cell"):
        scorer([(1, 0, "nor_conv_3x3")], 0)
    with pytest.raises(InvalidArchitectureError):
        scorer("|conv~0|", 0)
    with pytest.raises(ConfigError, match="C must be a positive integer"):
        NB201Synflow(C=0)


@pytest.mark.slow  # 80 benchmark-size networks
def test_ranks_nb201_cells_like_the_published_synflow(nb201_dir: Path) -> None:
    from scipy.stats import spearmanr

    from nasforge.benchmarks import NB201Table

    table = NB201Table.load(nb201_dir)
    idx = np.random.default_rng(0).choice(len(table), 80, replace=False)
    scorer = NB201Synflow()
    scores = [scorer(table.arch_string(int(i)), int(i)) for i in idx]
    acc = np.asarray(table.column("cifar10_valid_val_acc_200"))[idx]
    # Published over all 15,625 cells: 0.737 (Abdelfattah et al., 2021); 80 cells vary by ~0.1.
    assert spearmanr(scores, acc).statistic > 0.5
