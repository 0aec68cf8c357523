"""Experiment events: what progress bars, logs and user code subscribe to.

The loop emits one :class:`Event` per thing that happens (experiment started, trial started,
reported an intermediate value, finished, failed, retried, experiment ended). Subscribers are
:class:`Callback` objects, whose :meth:`Callback.on_event` dispatches to one hook per kind, or
plain functions ``fn(event)`` wrapped by :func:`as_callback`. ``trial_finished``/``trial_failed``
are emitted after the trial was stored, so a subscriber that reads the database sees the result it is told about.
``trial_reported`` carries each ``ctx.report(step, value)`` of a running trial while it runs
(inline and process-pool executors; a Ray trial's reports arrive only with its result, in
``info["reports"]``), which is what the progress display's per-epoch ticks show.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Union

from nasforge.errors import ConfigError
from nasforge.trial import Trial, TrialStatus

if TYPE_CHECKING:
    from nasforge.experiment.loop import Experiment

log = logging.getLogger("nasforge.experiment")


class EventKind(str, enum.Enum):
    """The kinds of experiment events."""

    EXPERIMENT_STARTED = "experiment_started"
    TRIAL_STARTED = "trial_started"
    TRIAL_RETRIED = "trial_retried"
    TRIAL_REPORTED = "trial_reported"  # an intermediate value (ctx.report) of a running trial
    TRIAL_FINISHED = "trial_finished"  # ok, pruned or infeasible
    TRIAL_FAILED = "trial_failed"
    EXPERIMENT_ENDED = "experiment_ended"


@dataclass(frozen=True)
class Event:
    """One thing that happened in an experiment.

    ``trial`` is set for trial events (for ``trial_finished``/``trial_failed`` it is the stored,
    finished trial); ``message`` says why for retries and how the experiment ended
    (``"finished"``, ``"stopped"``, ``"interrupted"`` or ``"failed: ..."``). ``step`` and
    ``value`` are set for ``trial_reported`` (what the evaluator passed to ``ctx.report``; the
    trial is the running one, as it started).
    """

    kind: EventKind
    time: float
    trial: Trial | None = None
    message: str = ""
    step: int | None = None
    value: float | None = None


class Callback:
    """Subclass and override the hooks you need; all default to doing nothing.

    ``on_trial_end`` sees every trial that ends (any status); ``on_trial_failed`` additionally
    sees the failed ones. Override :meth:`on_event` to receive every event in one place.
    """

    def on_event(self, experiment: Experiment, event: Event) -> None:
        """Receive one event; the default calls the hook for its kind."""
        kind = event.kind
        if kind is EventKind.EXPERIMENT_STARTED:
            self.on_experiment_start(experiment)
        elif kind is EventKind.EXPERIMENT_ENDED:
            self.on_experiment_end(experiment)
        elif event.trial is not None:
            if kind is EventKind.TRIAL_STARTED:
                self.on_trial_start(experiment, event.trial)
            elif kind is EventKind.TRIAL_RETRIED:
                self.on_trial_retry(experiment, event.trial, event.message)
            elif kind is EventKind.TRIAL_REPORTED:
                assert event.step is not None and event.value is not None
                self.on_trial_report(experiment, event.trial, event.step, event.value)
            else:
                self.on_trial_end(experiment, event.trial)
                if kind is EventKind.TRIAL_FAILED:
                    self.on_trial_failed(experiment, event.trial)

    def on_experiment_start(self, experiment: Experiment) -> None:
        """Called once per :meth:`Experiment.run`, after resuming stored trials."""

    def on_trial_start(self, experiment: Experiment, trial: Trial) -> None:
        """A trial was asked (or is re-run after a resume) and submitted."""

    def on_trial_retry(self, experiment: Experiment, trial: Trial, reason: str) -> None:
        """A trial's worker died and the trial was submitted again."""

    def on_trial_report(self, experiment: Experiment, trial: Trial, step: int,
                        value: float) -> None:
        """A running trial reported ``value`` at ``step`` (e.g. validation accuracy after an
        epoch), live with the inline and process executors. Keep it quick: it runs between the
        evaluator's epochs (inline) or while the driver waits for results (process pool)."""

    def on_trial_end(self, experiment: Experiment, trial: Trial) -> None:
        """A trial ended (ok, failed, pruned or infeasible) and was stored."""

    def on_trial_failed(self, experiment: Experiment, trial: Trial) -> None:
        """A trial failed (exception, dead worker, timeout) and was stored."""

    def on_experiment_end(self, experiment: Experiment) -> None:
        """The run stopped (budget spent, stopped, interrupted or failed)."""


EventFn = Callable[[Event], object]


class FunctionCallback(Callback):
    """Calls ``fn(event)`` for every event, or only for the given ``kinds``."""

    def __init__(self, fn: EventFn, kinds: Collection[EventKind | str] | None = None) -> None:
        if not callable(fn):
            raise ConfigError(
                f"a callback must be a Callback or a function of one event, got {fn!r}"
            )
        self.fn = fn
        self.kinds: frozenset[EventKind] | None = None
        if kinds is not None:
            try:
                self.kinds = frozenset(EventKind(k) for k in kinds)
            except ValueError:
                raise ConfigError(
                    f"unknown event kind in {sorted(map(str, kinds))}; allowed: "
                    + ", ".join(repr(k.value) for k in EventKind)
                ) from None

    def on_event(self, experiment: Experiment, event: Event) -> None:
        if self.kinds is None or event.kind in self.kinds:
            self.fn(event)


CallbackLike = Union[Callback, EventFn]  # noqa: UP007 (a runtime alias on 3.10)


def as_callback(obj: CallbackLike) -> Callback:
    """A Callback as is; a function of one event wrapped in :class:`FunctionCallback`."""
    if isinstance(obj, Callback):
        return obj
    return FunctionCallback(obj)


class LoggingCallback(Callback):
    """Logs trial events through Python logging (logger ``nasforge.experiment``)."""

    def on_trial_start(self, experiment: Experiment, trial: Trial) -> None:
        log.debug("trial %d started", trial.number)

    def on_trial_retry(self, experiment: Experiment, trial: Trial, reason: str) -> None:
        log.warning("trial %d retried: %s", trial.number, reason)

    def on_trial_end(self, experiment: Experiment, trial: Trial) -> None:
        if trial.status is TrialStatus.FAILED:
            first = (trial.error or "").splitlines()[0] if trial.error else ""
            log.warning("trial %d failed: %s", trial.number, first)
        else:
            log.info("trial %d %s %s", trial.number, trial.status.value, dict(trial.metrics))

    def on_experiment_end(self, experiment: Experiment) -> None:
        log.info("experiment %s after %d trial(s)", experiment.stop_reason, experiment.usage[0])
