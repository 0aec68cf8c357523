"""Deterministic train/validation/test splits and seeded subsets.

NAS compares architectures on a validation set carved from the training data, keeping the test
set for the final report; every split here depends only on the dataset size and a seed, so all
trials of an experiment (and all worker processes) see exactly the same samples.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

from nasforge.data.dataset import ArrayDataset, as_dataset
from nasforge.errors import ConfigError


@dataclass
class DataSplits:
    """The training, validation and (optional) test sets of one experiment."""

    train: ArrayDataset
    val: ArrayDataset
    test: ArrayDataset | None = None

    def sizes(self) -> dict[str, int]:
        """Number of samples in each split (JSON-able)."""
        out = {"train": len(self.train), "val": len(self.val)}
        if self.test is not None:
            out["test"] = len(self.test)
        return out

    def sources(self) -> dict[str, str]:
        """The directory each split's files were read from (JSON-able; user data is left out)."""
        parts = {"train": self.train, "val": self.val, "test": self.test}
        return {name: str(d.source_dir) for name, d in parts.items()
                if d is not None and d.source_dir is not None}


def _permutation(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(int(seed))
    return torch.randperm(n, generator=g)


def resolve_size(size: int | float | None, n: int, what: str) -> int | None:
    """An absolute sample count from a count, a fraction in (0, 1), or None (all)."""
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, (int, float)):
        raise ConfigError(f"{what} must be a count or a fraction in (0, 1); got {size!r}")
    if isinstance(size, float) and 0 < size < 1:
        return max(1, round(size * n))
    if size < 1 or size != int(size):
        raise ConfigError(f"{what} must be a positive count or a fraction in (0, 1); got {size!r}")
    if int(size) > n:
        raise ConfigError(f"{what}={int(size)} is larger than the {n} samples available")
    return int(size)


def random_subset(data: ArrayDataset, size: int | float | None, seed: int,
                  what: str = "subset") -> ArrayDataset:
    """A seeded random subset of ``size`` samples (``data`` itself when size is None)."""
    k = resolve_size(size, len(data), what)
    if k is None or k == len(data):
        return data
    return data.subset(_permutation(len(data), seed)[:k].sort().values)


def train_val_split(
    data: ArrayDataset, val_size: int | float, seed: int
) -> tuple[ArrayDataset, ArrayDataset]:
    """Split ``data`` into disjoint (train, validation) parts; ``val_size``: count or fraction."""
    k = resolve_size(val_size, len(data), "val_size")
    if k is None or k >= len(data):
        raise ConfigError(f"val_size={val_size!r} leaves no training samples out of {len(data)}")
    perm = _permutation(len(data), seed)
    return data.subset(perm[k:].sort().values), data.subset(perm[:k].sort().values)


_CACHE: dict[tuple[Any, ...], DataSplits] = {}


def make_splits(
    dataset: Any = "fashion_mnist",
    *,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = False,
    val_size: int | float = 0.1,
    train_subset: int | float | None = None,
    val_subset: int | float | None = None,
    test: bool = False,
    test_subset: int | float | None = None,
    seed: int = 0,
    cache: bool = True,
) -> DataSplits:
    """Load a dataset and split it: validation is held out of the training split.

    ``train_subset``/``val_subset``/``test_subset`` then take seeded random subsets (counts or
    fractions). ``dataset`` is a name or anything :func:`~nasforge.data.dataset.as_dataset`
    accepts. Named datasets are cached per process (``cache=False`` to reload).
    """
    key = None
    if isinstance(dataset, str) and cache:
        key = (dataset, str(data_dir), val_size, train_subset, val_subset, test, test_subset, seed)
        if key in _CACHE:
            return _CACHE[key]
    full = as_dataset(dataset, "train", data_dir, download)
    train, val = train_val_split(full, val_size, seed)
    train = random_subset(train, train_subset, seed + 1, "train_subset")
    val = random_subset(val, val_subset, seed + 2, "val_subset")
    test_set = None
    if test:
        if not isinstance(dataset, str):
            raise ConfigError(
                "test=True needs a named dataset (user data has no official test split)"
            )
        test_set = random_subset(as_dataset(dataset, "test", data_dir, download), test_subset,
                                 seed + 3, "test_subset")
    splits = DataSplits(train, val, test_set)
    if key is not None:
        _CACHE[key] = splits
    return splits


def clear_cache() -> None:
    """Forget the datasets loaded by :func:`make_splits` in this process."""
    _CACHE.clear()
