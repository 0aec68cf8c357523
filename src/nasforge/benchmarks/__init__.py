"""Tabular NAS benchmarks: every architecture of a space already trained, so a search strategy can
be evaluated in seconds. NAS-Bench-201 (CSV or the official NATS-Bench files) is supported."""

from nasforge.benchmarks.nb201 import (
    NB201Arrays,
    NB201Record,
    NB201Table,
    canonical_dataset,
    clear_cache,
    resolve_path,
)
from nasforge.benchmarks.safe_pickle import SafeUnpickler, UnsafePickleError, load_pickle_bz2

__all__ = [
    "NB201Arrays",
    "NB201Record",
    "NB201Table",
    "SafeUnpickler",
    "UnsafePickleError",
    "canonical_dataset",
    "clear_cache",
    "load_pickle_bz2",
    "resolve_path",
]
