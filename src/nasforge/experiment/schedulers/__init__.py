"""Multi-fidelity schedulers: successive halving, Hyperband, ASHA and a model-based Hyperband.

``create_scheduler("asha", eta=3)``; ``Experiment(..., scheduler=...)`` runs any strategy under it.
"""

from __future__ import annotations

from typing import Any

from nasforge.experiment.schedulers.asha import ASHA
from nasforge.experiment.schedulers.base import Scheduler, Slot, schedule_info
from nasforge.experiment.schedulers.bohb import ModelBasedHyperband
from nasforge.experiment.schedulers.hyperband import Hyperband
from nasforge.experiment.schedulers.successive_halving import SuccessiveHalving
from nasforge.registry import SCHEDULERS


def create_scheduler(name: str, **options: Any) -> Scheduler:
    """A registered scheduler by name (``sh``, ``hyperband``, ``asha``, ``bohb``)."""
    scheduler: Scheduler = SCHEDULERS.create(name, **options)
    return scheduler


def list_schedulers() -> list[str]:
    """Names of the registered schedulers."""
    return SCHEDULERS.names()


__all__ = [
    "ASHA",
    "Hyperband",
    "ModelBasedHyperband",
    "Scheduler",
    "Slot",
    "SuccessiveHalving",
    "create_scheduler",
    "list_schedulers",
    "schedule_info",
]
