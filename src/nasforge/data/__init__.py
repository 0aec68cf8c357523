"""Datasets for training-based evaluation: Fashion-MNIST, MNIST, CIFAR-10/100 and user tensors.

Typical use::

    from nasforge.data import make_splits, BatchLoader
    splits = make_splits("fashion_mnist", train_subset=2000, val_subset=1000, seed=0)
    train = BatchLoader(splits.train, 128, shuffle=True, augment="default", seed=1)
    for x, y in train: ...

Datasets are kept in memory as uint8 tensors; see :mod:`nasforge.data.files` for where files are
looked for and how ``download=True`` fetches the official ones.
"""

from nasforge.data.catalog import DatasetInfo, dataset_info, list_datasets
from nasforge.data.dataset import (
    ArrayDataset,
    as_dataset,
    from_tensors,
    from_torch_dataset,
    load_dataset,
)
from nasforge.data.files import ChecksumError, cache_root, candidate_dirs
from nasforge.data.loader import BatchLoader
from nasforge.data.splits import (
    DataSplits,
    clear_cache,
    make_splits,
    random_subset,
    train_val_split,
)

__all__ = [
    "ArrayDataset",
    "BatchLoader",
    "ChecksumError",
    "DataSplits",
    "DatasetInfo",
    "as_dataset",
    "cache_root",
    "candidate_dirs",
    "clear_cache",
    "dataset_info",
    "from_tensors",
    "from_torch_dataset",
    "list_datasets",
    "load_dataset",
    "make_splits",
    "random_subset",
    "train_val_split",
]
