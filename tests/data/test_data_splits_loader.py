"""Splits, subsets, batching, augmentation, normalization and user-supplied data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nasforge.data import (
    BatchLoader,
    as_dataset,
    from_tensors,
    from_torch_dataset,
    make_splits,
    random_subset,
    train_val_split,
)
from nasforge.data.transforms import adapt_shape, random_crop, random_flip
from nasforge.errors import ConfigError


def numbered(n: int = 100, c: int = 1, hw: int = 8) -> torch.Tensor:
    """Images whose first pixel is their index, so splits can be traced back."""
    x = torch.zeros(n, c, hw, hw, dtype=torch.uint8)
    x[:, 0, 0, 0] = torch.arange(n, dtype=torch.uint8)
    return x


def ids(images: torch.Tensor) -> set[int]:
    return set(images[:, 0, 0, 0].tolist())


def test_train_val_split_disjoint_deterministic() -> None:
    ds = from_tensors(numbered(), torch.arange(100) % 10)
    tr, va = train_val_split(ds, 0.2, seed=3)
    assert len(tr) == 80 and len(va) == 20
    assert ids(tr.images).isdisjoint(ids(va.images))
    assert ids(tr.images) | ids(va.images) == set(range(100))
    tr2, va2 = train_val_split(ds, 20, seed=3)
    assert torch.equal(va.images, va2.images) and torch.equal(tr.images, tr2.images)
    _, va3 = train_val_split(ds, 20, seed=4)
    assert ids(va3.images) != ids(va.images)


def test_subsets_and_size_errors() -> None:
    ds = from_tensors(numbered(), torch.arange(100) % 10)
    sub = random_subset(ds, 30, seed=0)
    assert len(sub) == 30 and ids(sub.images) <= set(range(100))
    assert ids(random_subset(ds, 30, seed=0).images) == ids(sub.images)
    assert random_subset(ds, None, 0) is ds
    for bad in (0, -1, 1.5, 101, "10", True):
        with pytest.raises(ConfigError):
            random_subset(ds, bad, 0)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="leaves no training samples"):
        train_val_split(ds, 100, 0)


def test_make_splits_with_user_tensors() -> None:
    x, y = numbered(), torch.arange(100) % 10
    s = make_splits((x, y), val_size=25, train_subset=40, val_subset=10, seed=1)
    assert s.sizes() == {"train": 40, "val": 10}
    assert ids(s.train.images).isdisjoint(ids(s.val.images))
    with pytest.raises(ConfigError, match="test=True"):
        make_splits((x, y), test=True)


def test_make_splits_real_fashion_mnist(fashion_mnist_dir: Path) -> None:
    s = make_splits("fashion_mnist", data_dir=fashion_mnist_dir, train_subset=500, val_subset=200,
                    test=True, test_subset=100)
    assert s.sizes() == {"train": 500, "val": 200, "test": 100}
    again = make_splits("fashion_mnist", data_dir=fashion_mnist_dir, train_subset=500,
                        val_subset=200, test=True, test_subset=100)
    assert again is s  # cached per process
    # train and val come from disjoint parts of the official training split
    tr = {bytes(t.numpy()) for t in s.train.images}
    assert not any(bytes(v.numpy()) in tr for v in s.val.images)


def test_loader_covers_each_sample_once_and_is_seeded() -> None:
    ds = from_tensors(numbered(50), torch.arange(50) % 10)
    loader = BatchLoader(ds, 16, shuffle=True, seed=5, normalize=False)
    assert len(loader) == 4
    seen = torch.cat([x[:, 0, 0, 0] for x, _ in loader])
    assert sorted((seen * 255).round().long().tolist()) == list(range(50))
    first = [y.tolist() for _, y in BatchLoader(ds, 16, shuffle=True, seed=5)]
    assert first == [y.tolist() for _, y in BatchLoader(ds, 16, shuffle=True, seed=5)]
    assert first != [y.tolist() for _, y in BatchLoader(ds, 16, shuffle=True, seed=6)]
    dropped = BatchLoader(ds, 16, shuffle=True, drop_last=True)
    assert len(dropped) == 3 and sum(len(y) for _, y in dropped) == 48 == dropped.num_samples


def test_loader_labels_match_images() -> None:
    ds = from_tensors(numbered(40), torch.arange(40) % 10)
    for x, y in BatchLoader(ds, 7, shuffle=True, seed=0, normalize=False):
        assert torch.equal((x[:, 0, 0, 0] * 255).round().long() % 10, y)


def test_normalization_and_shape_adaptation() -> None:
    x = torch.full((4, 1, 28, 28), 255, dtype=torch.uint8)
    ds = from_tensors(x, torch.zeros(4, dtype=torch.long), num_classes=10, mean=[0.5], std=[0.25])
    loader = BatchLoader(ds, 4, image_size=32, channels=3)
    (xb, _), = list(loader)
    assert xb.shape == (4, 3, 32, 32) and loader.input_shape == (3, 32, 32)
    assert torch.allclose(xb[:, :, 2:30, 2:30], torch.tensor(2.0))  # (1 - 0.5) / 0.25
    assert torch.allclose(xb[:, :, 0, :], torch.tensor(-2.0))  # zero padding, normalized
    resized = adapt_shape(torch.ones(2, 1, 28, 28), 32, None, "resize")
    assert resized.shape == (2, 1, 32, 32)
    with pytest.raises(ConfigError, match="cannot pad"):
        adapt_shape(torch.ones(1, 1, 28, 28), 16)
    with pytest.raises(ConfigError, match="resize mode"):
        BatchLoader(ds, 4, resize_mode="stretch")


def test_random_crop_is_a_shifted_window_and_flip_mirrors() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).view(2, 3, 6, 6) + 1
    out = random_crop(x, 2, g)
    assert out.shape == x.shape
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(2):
        windows = [padded[i, :, dy:dy + 6, dx:dx + 6] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(out[i], w) for w in windows)
    flipped = random_flip(x, torch.Generator().manual_seed(1))
    for i in range(2):
        assert torch.equal(flipped[i], x[i]) or torch.equal(flipped[i], x[i].flip(2))


def test_default_augmentation_per_dataset() -> None:
    ds = from_tensors(numbered(8, c=3, hw=32), torch.zeros(8, dtype=torch.long), num_classes=10,
                      augment="crop_flip")
    assert BatchLoader(ds, 4, augment="default").augment == "crop_flip"
    plain = from_tensors(numbered(8), torch.zeros(8, dtype=torch.long), num_classes=10)
    assert BatchLoader(plain, 4, augment="default").augment == "none"
    with pytest.raises(ConfigError, match="unknown augmentation 'rotate'"):
        BatchLoader(plain, 4, augment="rotate")


def test_user_data_forms() -> None:
    arr = np.zeros((6, 5, 5), dtype=np.uint8)
    ds = as_dataset((arr, np.array([0, 1, 2, 0, 1, 2])))
    assert ds.info.input_shape == (1, 5, 5) and ds.info.num_classes == 3

    class Pairs(torch.utils.data.Dataset[tuple[torch.Tensor, int]]):
        def __len__(self) -> int:
            return 4

        def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
            return torch.full((3, 4, 4), float(i)), i % 2

    tds = from_torch_dataset(Pairs())
    assert tds.images.shape == (4, 3, 4, 4) and tds.labels.tolist() == [0, 1, 0, 1]
    assert as_dataset(Pairs()).info.num_classes == 2
    with pytest.raises(ConfigError, match="labels must lie"):
        from_tensors(arr, np.array([0, 1, 2, 0, 1, 5]), num_classes=3)
    with pytest.raises(ConfigError, match="integers"):
        from_tensors(arr, np.zeros(6))
    with pytest.raises(ConfigError, match="cannot use int"):
        as_dataset(3)
    with pytest.raises(ConfigError, match="mean has 2 values"):
        from_tensors(arr, np.zeros(6, dtype=int), mean=[0.1, 0.2], std=[1.0, 1.0])


def test_fast_uint8_path_matches_reference_normalization() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (6, 3, 5, 5), generator=g, dtype=torch.uint8)
    mean, std = [0.1, 0.5, 0.9], [0.2, 0.3, 0.4]
    ds = from_tensors(x, torch.zeros(6, dtype=torch.long), num_classes=2, mean=mean, std=std)
    (xb, _), = list(BatchLoader(ds, 6))
    ref = (x.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(
        1, 3, 1, 1)
    assert torch.allclose(xb, ref, atol=1e-5)
