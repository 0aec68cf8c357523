"""Optuna inside nasforge, and nasforge spaces inside Optuna.

:func:`suggest_architecture` turns an ``optuna.Trial`` into an architecture of any nasforge space
(use it in your own Optuna objective). :class:`OptunaStrategy` drives an Optuna sampler through
Optuna's ask/tell interface as a nasforge strategy; ``tpe`` and ``optuna_nsga2`` are built on it.

Decisions become categorical parameters named after the decisions. Conditional spaces are
define-by-run: a decision is suggested only when it is active given the values suggested before
it. The values then go through ``space.complete``, which applies the space's own repair rule
(e.g. DARTS' ordered, distinct node inputs), so the architecture is always a valid member; the
repair is deterministic, so the sampler still sees a fixed function of its parameters.

Resuming. Optuna's sampler state (its random generator and internal caches) is not JSON-able, so
the strategy's state is the *event log*: the sampler seed plus every ask and tell in order. Loading
a state replays the log into a fresh in-memory study seeded the same way; a seeded Optuna sampler
that sees the same asks and tells in the same order draws the same numbers, so the restored
strategy proposes exactly what the original would have. Replay costs one ask/tell per logged
event (milliseconds each).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any

import optuna

from nasforge.space.architecture import Architecture
from nasforge.space.base import SearchSpace
from nasforge.space.decision import Value
from nasforge.strategies._common import objective_scores
from nasforge.strategies.base import Strategy
from nasforge.trial import Objective, Trial
from nasforge.utils.rng import RngLike

log = logging.getLogger("nasforge.strategies")

#: Proposals per ask before a duplicate of a pending or evaluated architecture is accepted.
DUPLICATE_TRIES = 20

#: Name of the Optuna constraint that holds a trial's violation (> 0: infeasible).
CONSTRAINT = "nasforge_constraints"


def suggest_architecture(trial: optuna.Trial, space: SearchSpace, prefix: str = "") -> Architecture:
    """Suggest every active decision of ``space`` on ``trial`` and return the architecture.

    Example::

        def objective(trial):
            arch = suggest_architecture(trial, space)
            return train_and_score(space.build(arch))

    ``prefix`` is prepended to the parameter names (to mix in other hyper-parameters safely).
    """
    values: dict[str, Value] = {}
    for d in space.decisions:
        if d.active(values):
            value = trial.suggest_categorical(prefix + d.name, list(d.options))
            assert isinstance(value, (str, int, float, bool))  # one of d.options
            values[d.name] = value
    return space.complete(values)


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Silence Optuna's per-trial INFO lines and experimental-feature warnings for a moment."""
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        optuna.logging.set_verbosity(level)


class OptunaStrategy(Strategy):
    """A nasforge strategy backed by an Optuna sampler (subclasses build the sampler).

    ``sampler_options`` are passed to the sampler's constructor. Failed trials are told as
    FAIL; infeasible ones as COMPLETE with a constraint violation of 1 (Optuna's samplers rank them
    behind every feasible trial) and, since Optuna needs values, the worst values seen so far.
    A proposal that repeats a pending architecture is told as FAIL and one that repeats an
    evaluated architecture is told its known result; either way the sampler is asked again (up to
    ``DUPLICATE_TRIES`` proposals per ask), so no query is spent twice.
    """

    def __init__(
        self,
        space: SearchSpace,
        seed: RngLike = None,
        objectives: Objective | str | Sequence[Objective | str] | None = None,
        **sampler_options: Any,
    ) -> None:
        super().__init__(space, seed, objectives)
        self.sampler_options = dict(sampler_options)
        self.optuna_seed = int(self.rng.integers(2**31))
        #: Every Optuna ask and tell so far: ["ask", arch] and
        #: ["tell", number, state ("complete", "fail" or "duplicate"), values, violation].
        self.events: list[list[Any]] = []
        self.study = self._new_study()
        self._open: list[tuple[Architecture, optuna.Trial]] = []
        self._worst: list[float] | None = None
        #: Outcome of every evaluated architecture: [state, values, violation].
        self._known: dict[Architecture, list[Any]] = {}

    @abstractmethod
    def _make_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        """A new sampler seeded with ``seed`` (``self.sampler_options`` applied)."""

    def _new_study(self) -> optuna.Study:
        with quiet_optuna():
            return optuna.create_study(
                directions=[optuna.study.StudyDirection.MAXIMIZE if o.direction == "maximize"
                            else optuna.study.StudyDirection.MINIMIZE for o in self.objectives],
                sampler=self._make_sampler(self.optuna_seed),
            )

    # ------------------------------------------------------------------ ask / tell
    def _ask(self) -> Architecture:
        # A sampler may propose an architecture that is pending or already evaluated. Close such
        # a proposal at once (pending: as failed, so it teaches nothing; evaluated: with its known
        # result, a free observation) and ask again, a bounded number of times.
        pending = set(self.pending)
        for attempt in range(DUPLICATE_TRIES):
            arch, number = self._optuna_ask()
            self.events.append(["ask", arch.to_dict()])
            if attempt == DUPLICATE_TRIES - 1:
                break
            if arch in pending:
                event = ["tell", number, "duplicate", None, 0.0]
            elif arch in self._known:
                event = ["tell", number, *self._known[arch]]
            else:
                break
            self.events.append(event)
            self._optuna_tell(event)
        return arch

    def _optuna_ask(self) -> tuple[Architecture, int]:
        with quiet_optuna():
            ot = self.study.ask()
            arch = suggest_architecture(ot, self.space)
        self._open.append((arch, ot))
        return arch, ot.number

    def _tell(self, trial: Trial) -> None:
        number = next((ot.number for a, ot in self._open if a == trial.arch), None)
        if number is None:
            return  # not proposed by this strategy: Optuna has no trial to close
        scores = objective_scores(self.objectives, trial)
        if scores is None:
            event = ["tell", number, "fail", None, 0.0]
        elif not scores:
            event = ["tell", number, "complete", self._worst_values(), 1.0]
        else:
            values = [float(trial.value(o.metric) or 0.0) for o in self.objectives]
            event = ["tell", number, "complete", values, 0.0]
        self.events.append(event)
        self._optuna_tell(event)

    def _worst_values(self) -> list[float]:
        return list(self._worst) if self._worst is not None else [0.0] * len(self.objectives)

    def _optuna_tell(self, event: list[Any]) -> None:
        """Close an open Optuna trial as ``event`` says, and remember the outcome."""
        _, number, state, values, viol = event
        i = next(i for i, (_, ot) in enumerate(self._open) if ot.number == number)
        arch, ot = self._open.pop(i)
        with quiet_optuna():
            if state in ("fail", "duplicate"):
                self.study.tell(ot, state=optuna.trial.TrialState.FAIL)
            else:
                ot.set_constraint(CONSTRAINT, float(viol))
                self.study.tell(ot, values=values)
        if state == "duplicate":
            return
        self._known[arch] = [state, values, viol]
        if state == "complete" and viol == 0.0:
            if self._worst is None:
                self._worst = [float(v) for v in values]
            else:
                self._worst = [min(w, v) if o.direction == "maximize" else max(w, v)
                               for w, v, o in zip(self._worst, values, self.objectives)]

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["optuna_seed"] = self.optuna_seed
        state["events"] = [list(e) for e in self.events]
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.optuna_seed = int(state["optuna_seed"])
        self.events = [list(e) for e in state["events"]]
        self.study = self._new_study()
        self._open = []
        self._worst = None
        self._known = {}
        mismatches = 0
        for event in self.events:
            if event[0] == "ask":
                if self._optuna_ask()[0] != Architecture.from_dict(event[1]):
                    mismatches += 1
            else:
                self._optuna_tell(event)
        if mismatches:
            log.warning("replaying %d Optuna asks gave %d different architecture(s); was the "
                        "state written by another Optuna version?", sum(
                            e[0] == "ask" for e in self.events), mismatches)
