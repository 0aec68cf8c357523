"""Experiment events: callbacks that see trials start and finish (progress bars, logging, users)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from nasforge.trial import Trial, TrialStatus

if TYPE_CHECKING:
    from nasforge.experiment.loop import Experiment

log = logging.getLogger("nasforge.experiment")


class Callback:
    """Subclass and override the hooks you need; all default to doing nothing."""

    def on_experiment_start(self, experiment: Experiment) -> None:
        """Called once per :meth:`Experiment.run`, after resuming stored trials."""

    def on_trial_start(self, experiment: Experiment, trial: Trial) -> None:
        """A trial was asked and submitted."""

    def on_trial_end(self, experiment: Experiment, trial: Trial) -> None:
        """A trial finished (ok, failed, pruned or infeasible) and was stored."""

    def on_experiment_end(self, experiment: Experiment) -> None:
        """The run stopped (budget spent, interrupted or failed)."""


class LoggingCallback(Callback):
    """Logs each finished trial through Python logging (``nasforge.experiment``)."""

    def on_trial_end(self, experiment: Experiment, trial: Trial) -> None:
        if trial.status is TrialStatus.FAILED:
            first = (trial.error or "").splitlines()[0] if trial.error else ""
            log.warning("trial %d failed: %s", trial.number, first)
        else:
            log.info("trial %d %s %s", trial.number, trial.status.value, dict(trial.metrics))
