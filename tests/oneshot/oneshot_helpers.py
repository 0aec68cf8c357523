"""Tiny data, spaces and supernets shared by the one-shot tests."""

from __future__ import annotations

from typing import Any

import torch

import nasforge
from nasforge.data import DataSplits, from_tensors
from nasforge.oneshot.supernet import Supernet, seeded_supernet
from nasforge.spaces.elastic import ElasticSpace, StageSpec

NB201_TINY: dict[str, Any] = {"C": 4, "N": 1, "num_classes": 4, "in_channels": 1}
DARTS_TINY: dict[str, Any] = {"C": 4, "layers": 3, "num_classes": 4, "in_channels": 1}
ELASTIC_TINY: dict[str, Any] = {"width_mult": 0.5, "in_channels": 1, "num_classes": 4,
                                "stem_stride": 1}



def tiny_splits(n_train: int = 64, n_valid: int = 64, size: int = 12, seed: int = 0) -> DataSplits:
    """Two disjoint synthetic 4-class splits whose labels are learnable from the mean intensity."""
    gen = torch.Generator().manual_seed(seed)

    def make(n: int) -> Any:
        y = torch.randint(0, 4, (n,), generator=gen)
        x = torch.randn(n, 1, size, size, generator=gen) + y.view(-1, 1, 1, 1).float() * 0.5
        return from_tensors(x, y, num_classes=4)

    return DataSplits(make(n_train), make(n_valid))


def tiny_elastic_space() -> ElasticSpace:
    """Two stages, depths {1, 2}, expand {2, 3}, kernels {3, 5, 7}: small but every dimension elastic."""
    return ElasticSpace(depths=(1, 2), expand_ratios=(2, 3), kernel_sizes=(3, 5, 7),
                        stages=[StageSpec(8, 2, "relu", True), StageSpec(16, 2, "hswish", False)])


def tiny_supernet(space_name: str, seed: int = 0, **overrides: Any) -> tuple[nasforge.SearchSpace, Supernet]:
    """(space, supernet) of a tiny network of ``space_name`` (nb201, darts or elastic);
    ``overrides`` change its build options."""
    if space_name == "elastic":
        space: nasforge.SearchSpace = tiny_elastic_space()
        kwargs = ELASTIC_TINY
    else:
        space = nasforge.create_space(space_name)
        kwargs = NB201_TINY if space_name == "nb201" else DARTS_TINY
    return space, seeded_supernet(space, seed, **{**kwargs, **overrides})


def randomize_batchnorm(model: torch.nn.Module, seed: int = 0) -> None:
    """Give every BatchNorm non-trivial running statistics and affine parameters."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.num_features, generator=gen) - 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                if m.affine:
                    m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                    m.bias.copy_(torch.rand(m.num_features, generator=gen) - 0.5)


def state_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> list[str]:
    """Names of the entries that differ (empty when both state dicts are identical)."""
    if a.keys() != b.keys():
        return sorted(set(a) ^ set(b))
    return [k for k in a if not torch.equal(a[k], b[k])]
