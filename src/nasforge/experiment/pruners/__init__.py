"""Pruners: stop trials early from their learning curves (median, percentile, threshold)."""

from __future__ import annotations

from typing import Any

from nasforge.experiment.pruners.base import REPORTS, PruneCheck, Pruner
from nasforge.experiment.pruners.median import MedianPruner
from nasforge.experiment.pruners.percentile import PercentilePruner
from nasforge.experiment.pruners.threshold import ThresholdPruner
from nasforge.registry import PRUNERS


def create_pruner(name: str, **options: Any) -> Pruner:
    """A registered pruner by name (``median``, ``percentile``, ``threshold``)."""
    pruner: Pruner = PRUNERS.create(name, **options)
    return pruner


def list_pruners() -> list[str]:
    """Names of the registered pruners."""
    return PRUNERS.names()


__all__ = [
    "REPORTS",
    "MedianPruner",
    "PercentilePruner",
    "PruneCheck",
    "Pruner",
    "ThresholdPruner",
    "create_pruner",
    "list_pruners",
]
