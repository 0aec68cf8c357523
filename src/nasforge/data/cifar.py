"""Reading CIFAR-10/100 "python version" batches with a restricted unpickler.

The official batches (Krizhevsky, 2009) are Python pickles of a dict holding a ``uint8`` array
``data`` of shape (N, 3072) in channel-major order and the labels (``labels`` for CIFAR-10,
``fine_labels`` for CIFAR-100). Unpickling can run arbitrary code, so :class:`_BatchUnpickler`
only resolves the few globals needed to rebuild numpy arrays; anything else is refused. Files
are only read from paths the user's ``data_dir`` (or the cache) leads to.
"""

from __future__ import annotations

import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nasforge.errors import ConfigError, file_error

# (module, name) pairs a numpy array pickle refers to, across numpy 1.x and 2.x module names, plus
# the codec helper Python 3 uses to pickle bytes with protocol 2.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _BatchUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild numpy arrays and plain containers, and nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"refusing to load global {module}.{name}: a CIFAR batch only holds numpy arrays, "
            "lists and strings"
        )


#: Images in each file of the official downloads (Krizhevsky, 2009): CIFAR-10's five training
#: batches and test batch, CIFAR-100's one training and one test file.
OFFICIAL_IMAGES = {**{f"data_batch_{i}": 10000 for i in range(1, 6)}, "test_batch": 10000,
                   "train": 50000, "test": 10000}

# The official files carry a batch_label such as b"training batch 1 of 5".
_OFFICIAL_LABEL = re.compile(r"(training|testing) batch \d+ of \d+")


@dataclass(frozen=True)
class CifarBatch:
    """One CIFAR python batch: images (N, 3, 32, 32) uint8, labels (N,) int64, its batch_label."""

    images: np.ndarray
    labels: np.ndarray
    batch_label: str | None


def claims_official(path: Path, batch: CifarBatch) -> bool:
    """Whether a file presents itself as part of the official download: the official file name,
    the official number of images and an official ``batch_label``. Only such files have a
    published checksum to compare with; a user's own data in the same format does not."""
    expected = OFFICIAL_IMAGES.get(path.name)
    return (expected is not None and len(batch.labels) == expected
            and batch.batch_label is not None and bool(_OFFICIAL_LABEL.fullmatch(batch.batch_label)))


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) int64 of one CIFAR python batch file."""
    batch = read_cifar_batch(path)
    return batch.images, batch.labels


def read_cifar_batch(path: Path) -> CifarBatch:
    """One CIFAR python batch file, checked (a clear ConfigError naming the file otherwise)."""
    try:
        with open(path, "rb") as fh:
            obj = _BatchUnpickler(fh, encoding="bytes").load()
    except OSError as exc:
        raise file_error(exc, path, "read the dataset file") from None
    except EOFError as exc:
        raise file_error(exc, path, "read the dataset file") from None
    except (pickle.UnpicklingError, ValueError, TypeError) as exc:
        raise ConfigError(f"{path} is not a CIFAR python batch: {exc}") from None
    if not isinstance(obj, dict):
        raise ConfigError(f"{path} is not a CIFAR python batch (holds a {type(obj).__name__})")
    batch = {k.decode() if isinstance(k, bytes) else str(k): v for k, v in obj.items()}
    if "data" not in batch:
        raise ConfigError(f"{path} is not a CIFAR python batch (no 'data' entry)")
    label_key = next((k for k in ("labels", "fine_labels") if k in batch), None)
    if label_key is None:
        raise ConfigError(f"{path} is not a CIFAR python batch (no 'labels' or 'fine_labels')")
    data = np.asarray(batch["data"])
    labels = np.asarray(batch[label_key], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ConfigError(
            f"{path}: 'data' has dtype {data.dtype} and shape {data.shape}; "
            "expected uint8 (N, 3072)"
        )
    if labels.shape != (data.shape[0],):
        raise ConfigError(f"{path}: {labels.shape[0]} labels for {data.shape[0]} images")
    label = batch.get("batch_label")
    text = label.decode("utf-8", "replace") if isinstance(label, bytes) else (
        label if isinstance(label, str) else None)
    return CifarBatch(data.reshape(-1, 3, 32, 32), labels, text)
