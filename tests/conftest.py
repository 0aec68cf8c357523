"""Shared fixtures: where the NAS-Bench-201 data and Fashion-MNIST live (skip clearly when absent)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def find_nb201() -> Path | None:
    """``$NASFORGE_NB201``, else ``../shared/benchmarks/nb201`` beside the project root."""
    env = os.environ.get("NASFORGE_NB201")
    candidates = [Path(env)] if env else []
    candidates.append(ROOT.parent / "shared" / "benchmarks" / "nb201")
    for c in candidates:
        if (c / "nb201.csv").is_file():
            return c
    return None


def find_fashion_mnist() -> Path | None:
    """``$NASFORGE_DATA/fashion-mnist``-style dirs, else Debian's /usr/share/datasets/fashion-mnist."""
    candidates = []
    if os.environ.get("NASFORGE_DATA"):
        base = Path(os.environ["NASFORGE_DATA"])
        candidates += [base, base / "fashion-mnist"]
    candidates.append(Path("/usr/share/datasets/fashion-mnist"))
    for c in candidates:
        if (c / "train-images-idx3-ubyte.gz").is_file() or (c / "train-images-idx3-ubyte").is_file():
            return c
    return None


@pytest.fixture(scope="session")
def nb201_dir() -> Path:
    """Directory holding nb201.csv (tests that need it skip with the reason when it is absent)."""
    path = find_nb201()
    if path is None:
        pytest.skip("NAS-Bench-201 data not found: set $NASFORGE_NB201 or place it at ../shared/benchmarks/nb201")
    return path


@pytest.fixture(scope="session")
def fashion_mnist_dir() -> Path:
    """Directory with the Fashion-MNIST IDX files (skip with the reason when absent)."""
    path = find_fashion_mnist()
    if path is None:
        pytest.skip("Fashion-MNIST not found: `apt-get install dataset-fashion-mnist` or set $NASFORGE_DATA")
    return path


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Every test starts on one torch thread and leaves the count as it found it (a test that
    changes it cannot slow down or alter the ones after it)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def pytest_configure(config: pytest.Config) -> None:
    """One torch thread per test process: tiny test models gain nothing from more, and on a shared
    2-core machine extra threads make them many times slower."""
    import torch

    torch.set_num_threads(1)
