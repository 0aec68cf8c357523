"""The NAS-Bench-201 tabular benchmark (Dong & Yang, ICLR 2020; topology part of NATS-Bench).

Every one of the 15,625 cells of the NAS-Bench-201 space was trained; this module answers "how good
is this cell, and what would finding that out have cost?" from either of two files:

* ``nb201.csv`` — one row per architecture with end-point numbers (see its README for the columns);
* the official NATS-Bench topology directory ``NATS-tss-v1_0-3ffb9-simple/`` (bz2 pickles, read with
  a restricted unpickler, architecture files loaded on first use).

Both become the same flat columns, named as in the CSV. A query for ``(arch, dataset, fidelity)``
returns the search signal (validation accuracy after ``fidelity`` epochs), the test accuracy papers
report, the parameter count and the simulated cost of the evaluation, which follows
NAS-Bench-201's ``simulate_train_eval``:
``fidelity x seconds per training epoch + one pass over the validation set``.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nasforge.benchmarks import nats_format
from nasforge.errors import ConfigError, DataNotFoundError, InvalidArchitectureError, allowed
from nasforge.space.architecture import Architecture
from nasforge.space.base import SearchSpace

ENV_VAR = "NASFORGE_NB201"
CSV_NAME = "nb201.csv"
NUM_ARCHS = 15_625
FIDELITIES = (12, 200)

#: Dataset names we accept -> canonical name.
DATASET_ALIASES: dict[str, str] = {
    "cifar10": "cifar10", "cifar-10": "cifar10",
    "cifar100": "cifar100", "cifar-100": "cifar100",
    "imagenet16": "imagenet16", "imagenet16-120": "imagenet16", "imagenet16_120": "imagenet16",
}

#: Classes of each dataset; the C=16, N=5 network ends in a 64-channel global pool and a linear
#: classifier, so its parameter count grows by 65 (64 weights + 1 bias) per class. ``nb201.csv``
#: gives the 10-class count; the others follow exactly (checked against the official files).
NUM_CLASSES = {"cifar10": 10, "cifar100": 100, "imagenet16": 120}
_PARAMS_PER_CLASS_M = 65e-6


def canonical_dataset(name: str) -> str:
    """``"CIFAR-100"`` -> ``"cifar100"``; ConfigError naming the allowed names otherwise."""
    key = str(name).strip().lower()
    if key not in DATASET_ALIASES:
        names = sorted(set(DATASET_ALIASES.values()))
        raise ConfigError(f"unknown NAS-Bench-201 dataset {name!r}; allowed: {allowed(names)}")
    return DATASET_ALIASES[key]


def signal_column(dataset: str, fidelity: int) -> str:
    """Column of the search signal: validation accuracy after ``fidelity`` epochs."""
    return f"{nats_format.NATS_DATASETS[dataset].search_prefix}_val_acc_{fidelity}"


def report_column(dataset: str, epochs: int) -> str:
    """Column of the test accuracy to report after ``epochs`` of training."""
    return f"{nats_format.NATS_DATASETS[dataset].report_prefix}_test_acc_{epochs}"


def train_time_column(dataset: str) -> str:
    """Column of the seconds per training epoch of the search run."""
    return f"{nats_format.NATS_DATASETS[dataset].search_prefix}_train_time_per_epoch_s"


def val_time_column(dataset: str) -> str:
    """Column of the seconds of one pass over the validation set."""
    return f"{nats_format.NATS_DATASETS[dataset].search_prefix}_val_time_s"


@dataclass(frozen=True)
class NB201Record:
    """What the benchmark knows about one architecture on one dataset at one fidelity."""

    index: int
    arch: str
    dataset: str
    fidelity: int
    #: Search signal: validation accuracy (%) after ``fidelity`` epochs.
    val_acc: float
    #: Test accuracy (%) to report (for cifar10 ``cifar10_test_acc_200``, the number papers give).
    test_acc: float
    #: Epochs of training behind ``test_acc`` (200, or 12 where the data has nothing longer).
    test_epochs: int
    #: Parameters in millions of the network for this dataset's number of classes.
    params_m: float
    #: Millions of multiply-adds (official files only).
    flops_m: float | None
    train_time_per_epoch: float | None
    val_time: float | None
    #: Simulated seconds of the evaluation; None when the data has no training times for it.
    cost: float | None

    @property
    def params(self) -> float:
        """Parameter count (not millions)."""
        return round(self.params_m * 1e6)


@dataclass(frozen=True)
class NB201Arrays:
    """Whole columns for one (dataset, fidelity), indexed by architecture index (NaN = unknown)."""

    dataset: str
    fidelity: int
    signal: np.ndarray
    test: np.ndarray
    cost: np.ndarray
    params_m: np.ndarray
    test_epochs: int


RowLoader = Callable[[int], dict[str, float]]


class NB201Table:
    """All known results of the NAS-Bench-201 cells, column-wise (numpy arrays by index).

    Build one with :meth:`load`; loads are cached per path within a process.
    """

    def __init__(
        self,
        arch_strings: list[str],
        columns: Mapping[str, np.ndarray],
        source: Path,
        fmt: str,
        present: np.ndarray | None = None,
        row_loader: RowLoader | None = None,
    ) -> None:
        self.source = source
        self.format = fmt
        self._archs = list(arch_strings)
        n = len(self._archs)
        self._index = {a: i for i, a in enumerate(self._archs)}
        if len(self._index) != n:
            raise ConfigError(f"{str(source)!r} lists some architecture strings more than once")
        self._columns: dict[str, np.ndarray] = {k: np.asarray(v, dtype=np.float64)
                                                 for k, v in columns.items()}
        self._present = np.ones(n, dtype=bool) if present is None else present
        self._loaded = self._present.copy() if row_loader is None else np.zeros(n, dtype=bool)
        self._row_loader = row_loader
        self._lock = threading.Lock()
        if row_loader is not None:
            first = np.flatnonzero(self._present)
            if first.size == 0:
                raise DataNotFoundError(f"{str(source)!r} holds no architecture files")
            self._ensure(int(first[0]))  # learn which columns the files carry

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> NB201Table:
        """Load the table at ``path`` (a directory or file), else at ``$NASFORGE_NB201``.

        A directory may hold ``nb201.csv``, be a NATS-Bench topology directory
        (``meta.pickle.pbz2`` plus ``<index>.pickle.pbz2`` files) or contain one named
        ``NATS-tss-v1_0-3ffb9-simple``. A file may be the CSV or the ``meta.pickle.pbz2``.
        """
        target, fmt = resolve_path(path)
        stat = (target / nats_format.META_FILE if fmt == "nats" else target).stat()
        key = (str(target.resolve()), fmt, stat.st_mtime_ns, stat.st_size)
        with _CACHE_LOCK:
            table = _CACHE.get(key)
        if table is None:
            table = _load_csv(target) if fmt == "csv" else _load_nats(target)
            with _CACHE_LOCK:
                _CACHE[key] = table
        return table

    def _ensure(self, index: int) -> None:
        if self._loaded[index]:
            return
        if not self._present[index]:
            raise DataNotFoundError(
                f"architecture index {index} ({self._archs[index]}) is not in {str(self.source)!r} "
                f"({int(self._present.sum())} of {len(self._archs)} architectures are present)"
            )
        assert self._row_loader is not None
        with self._lock:
            if self._loaded[index]:
                return
            row = self._row_loader(index)
            for name, value in row.items():
                col = self._columns.get(name)
                if col is None:
                    col = self._columns[name] = np.full(len(self._archs), np.nan)
                col[index] = value
            self._loaded[index] = True

    def _ensure_all(self) -> None:
        for i in np.flatnonzero(self._present & ~self._loaded):
            self._ensure(int(i))

    # ------------------------------------------------------------------ names and indexes
    def __len__(self) -> int:
        return len(self._archs)

    @property
    def columns(self) -> list[str]:
        """Names of the columns this table has."""
        return sorted(self._columns)

    @property
    def present(self) -> np.ndarray:
        """Boolean mask of the architectures this copy of the benchmark has results for."""
        return self._present.copy()

    def index_of(self, arch: Architecture | str | int) -> int:
        """Official index of an architecture, its NAS-Bench-201 string, or a checked index."""
        if isinstance(arch, Architecture):
            if arch.space != "nb201":
                raise InvalidArchitectureError(
                    f"NAS-Bench-201 has results only for architectures of space 'nb201', "
                    f"not {arch.space!r}"
                )
            arch = _nb201_space().to_string(arch)
        if isinstance(arch, (int, np.integer)) and not isinstance(arch, bool):
            if not 0 <= int(arch) < len(self._archs):
                raise ConfigError(
                    f"architecture index {arch} is out of range 0..{len(self._archs) - 1}"
                )
            return int(arch)
        if not isinstance(arch, str):
            raise ConfigError(
                "expected an Architecture, a NAS-Bench-201 string or an index, "
                f"got {type(arch).__name__}"
            )
        idx = self._index.get(arch.strip())
        if idx is None:
            raise InvalidArchitectureError(
                f"{arch!r} is not a NAS-Bench-201 architecture string; write e.g. "
                f"{self._archs[0]!r}"
            )
        return idx

    def arch_string(self, index: int) -> str:
        """The NAS-Bench-201 string of architecture ``index``."""
        return self._archs[self.index_of(int(index))]

    # ------------------------------------------------------------------ availability
    def datasets(self) -> dict[str, tuple[int, ...]]:
        """Dataset -> fidelities (epochs) with a search signal in this table."""
        out: dict[str, tuple[int, ...]] = {}
        for ds in NUM_CLASSES:
            fids = tuple(f for f in FIDELITIES if signal_column(ds, f) in self._columns)
            if fids:
                out[ds] = fids
        return out

    def has_cost(self, dataset: str) -> bool:
        """Whether the table has the training/validation times needed to simulate cost."""
        ds = canonical_dataset(dataset)
        return train_time_column(ds) in self._columns and val_time_column(ds) in self._columns

    def _describe_available(self) -> str:
        return "; ".join(
            f"{ds} at {', '.join(map(str, f))} epochs" for ds, f in self.datasets().items()
        )

    def check(self, dataset: str, fidelity: int) -> tuple[str, int]:
        """Canonical ``(dataset, fidelity)``; ConfigError naming what is available otherwise."""
        ds = canonical_dataset(dataset)
        try:
            number = float(fidelity)
        except (TypeError, ValueError):
            raise ConfigError(f"fidelity must be a number of epochs, got {fidelity!r}") from None
        if not number.is_integer():
            raise ConfigError(f"fidelity must be a whole number of epochs, got {fidelity!r}")
        fid = int(number)
        avail = self.datasets()
        if ds not in avail or fid not in avail[ds]:
            raise ConfigError(
                f"{str(self.source)!r} has no results for dataset {ds!r} at fidelity {fid}; "
                f"available: {self._describe_available()}"
            )
        return ds, fid

    def _report_epochs(self, ds: str) -> int:
        return 200 if report_column(ds, 200) in self._columns else 12

    # ------------------------------------------------------------------ queries
    def query(self, arch: Architecture | str | int, dataset: str = "cifar10",
              fidelity: int = 12) -> NB201Record:
        """Look up one architecture (Architecture, string or index)."""
        ds, fid = self.check(dataset, fidelity)
        i = self.index_of(arch)
        self._ensure(i)
        cols = self._columns
        val = float(cols[signal_column(ds, fid)][i])
        test_epochs = self._report_epochs(ds)
        test = float(cols[report_column(ds, test_epochs)][i])
        if np.isnan(val) or np.isnan(test):
            raise DataNotFoundError(
                f"{str(self.source)!r} has no {ds!r} result at {fid} epochs for architecture {i}"
            )
        train_time = val_time = cost = None
        if self.has_cost(ds):
            train_time = float(cols[train_time_column(ds)][i])
            val_time = float(cols[val_time_column(ds)][i])
            cost = fid * train_time + val_time
        flops_col = cols.get(nats_format.NATS_DATASETS[ds].flops_column)
        flops = None if flops_col is None or np.isnan(flops_col[i]) else float(flops_col[i])
        return NB201Record(
            index=i, arch=self._archs[i], dataset=ds, fidelity=fid, val_acc=val, test_acc=test,
            test_epochs=test_epochs,
            params_m=float(cols[nats_format.NATS_DATASETS[ds].params_column][i]),
            flops_m=flops, train_time_per_epoch=train_time, val_time=val_time, cost=cost,
        )

    def params_m(self, arch: Architecture | str | int, dataset: str = "cifar10") -> float:
        """Parameters (millions) of one architecture's network for ``dataset``."""
        ds = canonical_dataset(dataset)
        i = self.index_of(arch)
        self._ensure(i)
        return float(self._columns[nats_format.NATS_DATASETS[ds].params_column][i])

    def column(self, name: str) -> np.ndarray:
        """A whole column by its CSV name (read-only view; loads every file of the official
        format first)."""
        if name not in self._columns:
            raise ConfigError(f"no column {name!r}; available: {allowed(self.columns)}")
        self._ensure_all()
        view = self._columns[name].view()
        view.flags.writeable = False
        return view

    def arrays(self, dataset: str = "cifar10", fidelity: int = 12) -> NB201Arrays:
        """Signal, test accuracy, cost and params of every architecture (NaN where unknown), for
        vectorized experiments. Cost is NaN everywhere when the data has no training times."""
        ds, fid = self.check(dataset, fidelity)
        self._ensure_all()
        test_epochs = self._report_epochs(ds)
        if self.has_cost(ds):
            cost = fid * self._columns[train_time_column(ds)] + self._columns[val_time_column(ds)]
        else:
            cost = np.full(len(self._archs), np.nan)
        return NB201Arrays(
            dataset=ds, fidelity=fid,
            signal=self._columns[signal_column(ds, fid)].copy(),
            test=self._columns[report_column(ds, test_epochs)].copy(),
            cost=cost,
            params_m=self._columns[nats_format.NATS_DATASETS[ds].params_column].copy(),
            test_epochs=test_epochs,
        )

    def __repr__(self) -> str:
        return (f"NB201Table({str(self.source)!r}, format={self.format!r}, "
                f"archs={int(self._present.sum())}/{len(self._archs)})")


@functools.lru_cache(maxsize=1)
def _nb201_space() -> SearchSpace:
    # Imported late: the space module pulls in the network code, which table users may not need.
    from nasforge.spaces.nb201 import NB201Space

    return NB201Space()


_CACHE: dict[tuple[str, str, int, int], NB201Table] = {}
_CACHE_LOCK = threading.Lock()


def resolve_path(path: str | os.PathLike[str] | None) -> tuple[Path, str]:
    """Where the table is and in which format (``"csv"`` or ``"nats"``).

    Looks only at ``path`` (or ``$NASFORGE_NB201`` when ``path`` is None); raises
    :class:`DataNotFoundError` naming every place it looked.
    """
    if path is None or str(path) == "":
        env = os.environ.get(ENV_VAR)
        if not env:
            raise DataNotFoundError(
                "no NAS-Bench-201 data given: pass a path (--data PATH / data=PATH) or set "
                f"${ENV_VAR} to a directory holding {CSV_NAME} or a {nats_format.DIR_NAME} "
                "directory"
            )
        path, origin = env, f"${ENV_VAR}"
    else:
        origin = "the given path"
    p = Path(path).expanduser()
    looked: list[str] = [str(p)]
    if p.is_file():
        if p.name == nats_format.META_FILE:
            return p.parent, "nats"
        if p.suffix.lower() == ".csv":
            return p, "csv"
        raise ConfigError(
            f"{str(p)!r} ({origin}) is neither a CSV file nor {nats_format.META_FILE}"
        )
    if p.is_dir():
        candidates = [
            (p / CSV_NAME, "csv"),
            (p, "nats"),
            (p / nats_format.DIR_NAME, "nats"),
        ]
        for cand, fmt in candidates:
            looked.append(str(cand / nats_format.META_FILE) if fmt == "nats" else str(cand))
            if fmt == "csv" and cand.is_file():
                return cand, fmt
            if fmt == "nats" and nats_format.is_nats_dir(cand):
                return cand, fmt
    raise DataNotFoundError(
        f"NAS-Bench-201 data not found at {str(p)!r} ({origin}); looked for: {', '.join(looked)}"
    )


_REQUIRED_CSV = ("index", "arch")


def _load_csv(path: Path) -> NB201Table:
    """Parse ``nb201.csv``: every column but ``arch`` is numeric."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataNotFoundError(f"cannot read {str(path)!r}: {exc}") from None
    lines = text.splitlines()
    if not lines:
        raise ConfigError(f"{str(path)!r} is empty")
    header = [h.strip() for h in lines[0].split(",")]
    missing = [c for c in _REQUIRED_CSV if c not in header]
    if missing:
        raise ConfigError(
            f"{str(path)!r} lacks column(s) {allowed(missing)}; it has {allowed(header)}"
        )
    body = [line for line in lines[1:] if line.strip()]
    width = len(header) - 1
    bad = next((k for k, line in enumerate(body) if line.count(",") != width), None)
    if bad is not None:
        raise ConfigError(
            f"{str(path)!r} line {bad + 2} has {body[bad].count(',') + 1} fields, "
            f"the header has {len(header)}"
        )
    at = header.index("arch")
    archs = [line.split(",", at + 1)[at].strip() for line in body]
    numeric = [i for i, name in enumerate(header) if name != "arch"]
    try:
        # numpy's C parser: about 4x faster than converting Python strings column by column.
        values = np.loadtxt(body, delimiter=",", usecols=numeric, dtype=np.float64,
                            comments=None, ndmin=2)
        columns = {header[i]: values[:, k].copy() for k, i in enumerate(numeric)}
    except ValueError:
        columns = _parse_columns_slowly(path, header, body, numeric)
    index = columns.pop("index")
    if not np.array_equal(index, np.arange(len(archs))):
        raise ConfigError(f"{str(path)!r}: the 'index' column must run 0, 1, 2, ... in order")
    _check_ranges(path, columns)
    base = columns.get("params_m")
    if base is not None:
        # The CSV has the 10-class count only; other datasets' networks differ in the classifier.
        for ds, classes in NUM_CLASSES.items():
            col = nats_format.NATS_DATASETS[ds].params_column
            columns.setdefault(col, base + (classes - 10) * _PARAMS_PER_CLASS_M)
    return NB201Table(archs, columns, source=path, fmt="csv")


def _check_ranges(path: Path, columns: dict[str, np.ndarray]) -> None:
    """Refuse values no benchmark can hold: an accuracy outside [0, 100] %, a negative time or
    size (NaN means "not measured" and is allowed)."""
    for name, col in columns.items():
        if "_acc_" in name:
            low, high, what = 0.0, 100.0, "an accuracy in [0, 100] (%)"
        elif name.endswith(("_time", "params_m", "flops_m")) or "_time_" in name:
            low, high, what = 0.0, np.inf, "a number >= 0"
        else:
            continue
        bad = np.flatnonzero(~np.isnan(col) & ((col < low) | (col > high)))
        if bad.size:
            i = int(bad[0])
            raise ConfigError(
                f"{str(path)!r} line {i + 2}: column {name!r} holds {float(col[i])!r}; it must be {what}"
                + (f" ({bad.size} such rows)" if bad.size > 1 else "")
            )


def _parse_columns_slowly(
    path: Path, header: list[str], body: list[str], numeric: list[int]
) -> dict[str, np.ndarray]:
    """Column-by-column parse: empty fields become NaN, and a bad field is named in the error."""
    fields = list(zip(*(line.split(",") for line in body))) if body else [() for _ in header]
    columns: dict[str, np.ndarray] = {}
    for i in numeric:
        try:
            columns[header[i]] = np.array([v if v.strip() else "nan" for v in fields[i]],
                                          dtype=np.float64)
        except ValueError as exc:
            raise ConfigError(
                f"{str(path)!r} column {header[i]!r} is not numeric: {exc}"
            ) from None
    return columns


def _load_nats(directory: Path) -> NB201Table:
    archs = nats_format.read_meta(directory)
    present = nats_format.present_indexes(directory, len(archs))

    def loader(index: int) -> dict[str, float]:
        return nats_format.row_from_file(directory, index, archs[index])

    return NB201Table(archs, {}, source=directory, fmt="nats", present=present, row_loader=loader)


def clear_cache() -> None:
    """Forget the tables loaded so far (tests, or after files changed in place)."""
    with _CACHE_LOCK:
        _CACHE.clear()


__all__ = [
    "DATASET_ALIASES",
    "ENV_VAR",
    "FIDELITIES",
    "NUM_ARCHS",
    "NB201Arrays",
    "NB201Record",
    "NB201Table",
    "canonical_dataset",
    "clear_cache",
    "resolve_path",
]
