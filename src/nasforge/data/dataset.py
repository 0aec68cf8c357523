"""In-memory labelled image datasets and the loaders for named datasets and user data.

Whole datasets are held as one ``uint8`` (or float) tensor of shape (N, C, H, W) plus an int64
label tensor: batches are then gathered with an index tensor, which is far faster than a
per-sample Python ``Dataset`` loop, and a dataset moves to the GPU in one copy.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nasforge.data.catalog import DatasetInfo, DatasetSpec, get_spec
from nasforge.data.cifar import CifarBatch, claims_official, read_cifar_batch
from nasforge.data.files import ChecksumError, locate, verify_file
from nasforge.data.idx import read_idx
from nasforge.errors import ConfigError


class ArrayDataset:
    """Images ``(N, C, H, W)`` (uint8 in [0, 255] or float) and int64 labels ``(N,)`` in memory.

    ``source``: the files the data was read from (set by :func:`load_dataset` to the paths the
    lookup resolved, empty for user tensors), so a run can report exactly which files it used.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, info: DatasetInfo, *,
                 source: Sequence[str | os.PathLike[str]] = ()) -> None:
        if images.dim() != 4:
            raise ConfigError(f"images must have shape (N, C, H, W); got {tuple(images.shape)}")
        if labels.dim() != 1 or labels.shape[0] != images.shape[0]:
            raise ConfigError(
                f"labels must have shape ({images.shape[0]},) to match the images; "
                f"got {tuple(labels.shape)}"
            )
        if images.dtype != torch.uint8 and not images.is_floating_point():
            raise ConfigError(f"images must be uint8 or floating point, not {images.dtype}")
        self.images = images
        self.labels = labels.long()
        self.info = info
        self.source: tuple[Path, ...] = tuple(Path(p) for p in source)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __repr__(self) -> str:
        where = f", from {str(self.source_dir)!r}" if self.source_dir is not None else ""
        return (f"ArrayDataset({self.info.name!r}, n={len(self)}, "
                f"shape={self.info.input_shape}{where})")

    @property
    def source_dir(self) -> Path | None:
        """The directory the files came from (None for user tensors)."""
        return self.source[0].parent if self.source else None

    def subset(self, indices: torch.Tensor | Sequence[int]) -> ArrayDataset:
        """The samples at ``indices`` (a copy, so the parent can be freed)."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        return ArrayDataset(self.images[idx].clone(), self.labels[idx].clone(), self.info,
                            source=self.source)

    def to(self, device: str | torch.device) -> ArrayDataset:
        """This dataset with its tensors on ``device``."""
        return ArrayDataset(self.images.to(device), self.labels.to(device), self.info,
                            source=self.source)


def from_tensors(
    images: Any,
    labels: Any,
    *,
    num_classes: int | None = None,
    name: str = "tensors",
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    augment: str = "none",
) -> ArrayDataset:
    """Wrap user tensors/arrays. ``images`` may be (N, H, W) (one channel added) or (N, C, H, W).

    uint8 images are scaled to [0, 1] by the loader; float images are used as given.
    ``mean``/``std`` (per channel, on the [0, 1] scale for uint8) turn on normalization.
    """
    x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
    y = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels)
    if x.dim() == 3:
        x = x.unsqueeze(1)
    if x.dim() != 4:
        raise ConfigError(f"images must have shape (N, H, W) or (N, C, H, W); got {tuple(x.shape)}")
    if y.is_floating_point():
        raise ConfigError(f"labels must be integers (class indices), not {y.dtype}")
    n_cls = int(y.max().item()) + 1 if num_classes is None and len(y) else int(num_classes or 0)
    if len(y) and (int(y.min().item()) < 0 or int(y.max().item()) >= n_cls):
        raise ConfigError(f"labels must lie in [0, {n_cls}); got [{int(y.min())}, {int(y.max())}]")
    if (mean is None) != (std is None):
        raise ConfigError("give both mean and std, or neither")
    info = DatasetInfo(
        name,
        (int(x.shape[1]), int(x.shape[2]), int(x.shape[3])),
        n_cls,
        tuple(float(m) for m in mean) if mean is not None else None,
        tuple(float(s) for s in std) if std is not None else None,
        augment,
    )
    _check_stats(info)
    return ArrayDataset(x, y, info)


def from_torch_dataset(dataset: Any, *, num_classes: int | None = None, name: str = "dataset",
                       **kwargs: Any) -> ArrayDataset:
    """Materialize any map-style ``torch.utils.data.Dataset`` of ``(image, label)`` pairs once."""
    try:
        n = len(dataset)
    except TypeError:
        raise ConfigError("the dataset must define __len__ (a map-style torch Dataset)") from None
    if n == 0:
        raise ConfigError("the dataset is empty")
    xs, ys = [], []
    for i in range(n):
        x, y = dataset[i]
        xs.append(torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x))
        ys.append(int(y))
    return from_tensors(torch.stack(xs), torch.tensor(ys), num_classes=num_classes, name=name,
                        **kwargs)


def _check_stats(info: DatasetInfo) -> None:
    c = info.input_shape[0]
    for label, stats in (("mean", info.mean), ("std", info.std)):
        if stats is not None and len(stats) not in (1, c):
            raise ConfigError(f"{label} has {len(stats)} values; the images have {c} channel(s)")
    if info.std is not None and any(s <= 0 for s in info.std):
        raise ConfigError(f"std values must be positive; got {info.std}")


def load_dataset(
    name: str,
    split: str = "train",
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = False,
    verify: bool = True,
) -> ArrayDataset:
    """Load a named dataset's ``"train"`` or ``"test"`` split into memory.

    ``name``: ``fashion_mnist``, ``mnist``, ``cifar10`` or ``cifar100``. See
    :mod:`nasforge.data.files` for where files are looked for (an explicit ``data_dir`` is the
    only place searched); the files read are recorded in the result's ``source``.
    ``download=True`` fetches the
    official files (checksums verified) when they are nowhere to be found. ``verify`` checks the
    published MD5 of CIFAR batches (IDX files are checked structurally, since distributions such as
    Debian recompress them).
    """
    spec = get_spec(name)
    paths = locate(spec, split, data_dir, download)
    if spec.fmt == "idx":
        images = read_idx(paths[0])
        labels = read_idx(paths[1]).astype(np.int64)
        if images.ndim != 3 or images.shape[0] != labels.shape[0]:
            raise ConfigError(
                f"{paths[0]} / {paths[1]}: {images.shape} images do not match {labels.shape} labels"
            )
        x = torch.from_numpy(images.copy()).unsqueeze(1)
        y = torch.from_numpy(labels)
    else:
        parts = read_cifar_files(spec, split, paths, verify)
        x = torch.from_numpy(np.concatenate([p.images for p in parts]))
        y = torch.from_numpy(np.concatenate([p.labels for p in parts]))
    if int(y.max().item()) >= spec.info.num_classes or int(y.min().item()) < 0:
        raise ConfigError(f"{paths[-1]}: labels outside [0, {spec.info.num_classes})")
    info = spec.info
    if tuple(x.shape[1:]) != info.input_shape:
        info = replace(info, input_shape=(int(x.shape[1]), int(x.shape[2]), int(x.shape[3])))
    return ArrayDataset(x, y, info, source=paths)


def read_cifar_files(spec: DatasetSpec, split: str, paths: Sequence[Path],
                     verify: bool = True) -> list[CifarBatch]:
    """Read a split's CIFAR batch files. With ``verify``, a file that claims to be the official
    download (:func:`~nasforge.data.cifar.claims_official`) must have the published MD5; the
    user's own data in the CIFAR format (other sizes or labels) is read as it is."""
    parts = []
    for path, remote in zip(paths, spec.files[split]):
        batch = read_cifar_batch(path)
        if verify and claims_official(path, batch):
            try:
                verify_file(path, md5=remote.md5)
            except ChecksumError as exc:
                raise ChecksumError(
                    f"{exc.args[0].split(';')[0]}: the file has the official file's name, number "
                    "of images and batch_label, so it is taken for the official download; it is "
                    "corrupt (delete it and download again) or, if it is your own data, give it "
                    "another batch_label"
                ) from None
        parts.append(batch)
    return parts


def check_dataset_files(name: str, split: str = "train",
                        data_dir: str | os.PathLike[str] | None = None,
                        download: bool = False) -> None:
    """Find a named dataset's files and check they can be read (the checksum of files that
    claim to be the official download included), so a broken file stops a run before it starts."""
    spec = get_spec(name)
    paths = locate(spec, split, data_dir, download)
    if spec.fmt == "cifar":
        read_cifar_files(spec, split, paths)
    else:
        for path in paths:
            read_idx(path)


def as_dataset(obj: Any, split: str = "train", data_dir: str | os.PathLike[str] | None = None,
               download: bool = False) -> ArrayDataset:
    """Turn whatever the user gave into an :class:`ArrayDataset`.

    Accepts a dataset name, an :class:`ArrayDataset`, an ``(images, labels)`` pair, or a map-style
    torch ``Dataset``.
    """
    if isinstance(obj, ArrayDataset):
        return obj
    if isinstance(obj, str):
        return load_dataset(obj, split, data_dir, download)
    if isinstance(obj, tuple) and len(obj) == 2:
        return from_tensors(obj[0], obj[1])
    if hasattr(obj, "__getitem__") and hasattr(obj, "__len__"):
        return from_torch_dataset(obj)
    raise ConfigError(
        f"cannot use {type(obj).__name__} as a dataset; give a dataset name, an (images, labels) "
        "pair, a torch Dataset or an ArrayDataset"
    )
