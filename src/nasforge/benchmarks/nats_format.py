"""Reader for the official NATS-Bench topology files (``NATS-tss-v1_0-3ffb9-simple/``).

The directory holds ``meta.pickle.pbz2`` (the 15,625 architecture strings in index order) and one
``<index:06d>.pickle.pbz2`` per architecture. An architecture file maps the training schedule
(``"12"`` or ``"200"`` epochs) to ``{"all_results": {(dataset, seed): run}}``, where a run holds
per-epoch ``train_times`` and ``eval_acc1es`` / ``eval_times`` keyed ``"<split>@<epoch>"``, plus
``params`` (millions) and ``flop`` (millions of multiply-adds). Facts from Dong et al., "NATS-Bench"
(TPAMI 2021), and the files themselves; everything is read with the safe unpickler.

:func:`row_from_file` turns one architecture file into the flat columns of ``nb201.csv`` (same
names, same meaning: means over the seeds of each run), plus columns the CSV lacks (200-epoch
CIFAR-100 / ImageNet16-120 results, their training times, FLOPs).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nasforge.benchmarks.safe_pickle import load_pickle_bz2
from nasforge.errors import ConfigError

META_FILE = "meta.pickle.pbz2"
DIR_NAME = "NATS-tss-v1_0-3ffb9-simple"
_ARCH_FILE = re.compile(r"^(\d{6})\.pickle\.pbz2$")


@dataclass(frozen=True)
class NatsDataset:
    """How one of our datasets maps onto NATS-Bench's run names and eval splits."""

    search_run: str  # run giving the search signal (and the training times charged for it)
    valid_split: str
    report_run: str  # run whose test accuracy is reported
    report_split: str
    search_prefix: str  # column prefixes, as in nb201.csv
    report_prefix: str
    params_column: str
    flops_column: str


#: cifar10 searches on 'cifar10-valid' (trained on 25k images, validated on the other 25k) and
#: reports the 'cifar10' run (trained on all 50k) on the test set, as NAS-Bench-201 does; CIFAR-100
#: and ImageNet16-120 report their 'x-test' half of the test set (the other half is 'x-valid').
NATS_DATASETS: dict[str, NatsDataset] = {
    "cifar10": NatsDataset("cifar10-valid", "x-valid", "cifar10", "ori-test",
                           "cifar10_valid", "cifar10", "params_m", "flops_m"),
    "cifar100": NatsDataset("cifar100", "x-valid", "cifar100", "x-test",
                            "cifar100", "cifar100", "cifar100_params_m", "cifar100_flops_m"),
    "imagenet16": NatsDataset("ImageNet16-120", "x-valid", "ImageNet16-120", "x-test",
                              "imagenet16", "imagenet16",
                              "imagenet16_params_m", "imagenet16_flops_m"),
}


def is_nats_dir(path: Path) -> bool:
    """Whether ``path`` is a NATS-Bench topology directory (holds ``meta.pickle.pbz2``)."""
    return (path / META_FILE).is_file()


def read_meta(directory: Path) -> list[str]:
    """The architecture strings of ``meta.pickle.pbz2``, in index order."""
    meta = load_pickle_bz2(directory / META_FILE)
    archs = meta.get("meta_archs") if isinstance(meta, Mapping) else None
    if not isinstance(archs, list) or not all(isinstance(a, str) for a in archs):
        raise ConfigError(
            f"{str(directory / META_FILE)!r} has no 'meta_archs' list of strings; "
            "is this a NATS-Bench topology (tss) directory?"
        )
    return archs


def present_indexes(directory: Path, count: int) -> np.ndarray:
    """Boolean mask of the architecture indexes that have a file in ``directory``."""
    mask = np.zeros(count, dtype=bool)
    for name in (p.name for p in directory.iterdir()):
        m = _ARCH_FILE.match(name)
        if m and int(m.group(1)) < count:
            mask[int(m.group(1))] = True
    return mask


def arch_file(directory: Path, index: int) -> Path:
    """Path of one architecture's file."""
    return directory / f"{index:06d}.pickle.pbz2"


def _runs(results: Mapping[Any, Any], run_name: str) -> list[Mapping[str, Any]]:
    return [run for key, run in results.items()
            if isinstance(key, tuple) and key and key[0] == run_name and isinstance(run, Mapping)]


def _mean_eval(runs: list[Mapping[str, Any]], field: str, key: str) -> float | None:
    values = [float(r[field][key]) for r in runs
              if isinstance(r.get(field), Mapping) and key in r[field]]
    return float(np.mean(values)) if values else None


def _mean_train_time(runs: list[Mapping[str, Any]]) -> float | None:
    values = [float(t) for r in runs if isinstance(r.get("train_times"), Mapping)
              for t in r["train_times"].values()]
    return float(np.mean(values)) if values else None


def row_from_file(directory: Path, index: int, expected_arch: str) -> dict[str, float]:
    """Flat columns (``nb201.csv`` names) for architecture ``index``."""
    path = arch_file(directory, index)
    data = load_pickle_bz2(path)
    if not isinstance(data, Mapping):
        raise ConfigError(f"{str(path)!r} does not hold a mapping of training schedules")
    row: dict[str, float] = {}
    # Training time per epoch is a property of the network and the machine, identical across the
    # two schedules in the files; the 200-epoch schedule is read last so it wins if they differ.
    for hp in sorted((k for k in data if str(k).isdigit()), key=lambda k: int(k)):
        entry = data[hp]
        if not isinstance(entry, Mapping) or not isinstance(entry.get("all_results"), Mapping):
            raise ConfigError(f"{str(path)!r}: schedule {hp!r} has no 'all_results'")
        arch = entry.get("arch_str")
        if arch is not None and arch != expected_arch:
            raise ConfigError(
                f"{str(path)!r} describes {arch!r}, but meta.pickle.pbz2 lists {expected_arch!r} "
                f"at index {index}"
            )
        epochs = int(hp)
        last = epochs - 1
        results = entry["all_results"]
        for spec in NATS_DATASETS.values():
            search = _runs(results, spec.search_run)
            report = _runs(results, spec.report_run)
            values = {
                f"{spec.search_prefix}_val_acc_{epochs}":
                    _mean_eval(search, "eval_acc1es", f"{spec.valid_split}@{last}"),
                f"{spec.report_prefix}_test_acc_{epochs}":
                    _mean_eval(report, "eval_acc1es", f"{spec.report_split}@{last}"),
                f"{spec.search_prefix}_train_time_per_epoch_s": _mean_train_time(search),
                f"{spec.search_prefix}_val_time_s":
                    _mean_eval(search, "eval_times", f"{spec.valid_split}@{last}"),
            }
            if spec.search_run == "cifar10-valid":
                values[f"cifar10_valid_test_acc_{epochs}"] = _mean_eval(
                    search, "eval_acc1es", f"ori-test@{last}")
            if search:
                values[spec.params_column] = float(search[0]["params"])
                values[spec.flops_column] = float(search[0]["flop"])
            row.update({k: v for k, v in values.items() if v is not None})
    return row


__all__ = [
    "DIR_NAME",
    "META_FILE",
    "NATS_DATASETS",
    "NatsDataset",
    "arch_file",
    "is_nats_dir",
    "present_indexes",
    "read_meta",
    "row_from_file",
]
