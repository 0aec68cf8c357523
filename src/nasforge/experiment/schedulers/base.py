"""Multi-fidelity schedulers: which fidelity each evaluation gets and which trials are promoted.

A scheduler sits between the strategy and the evaluator. The experiment asks it for the next
:class:`Slot`: either a *new* configuration at some rung (the architecture comes from the
strategy's ``ask``) or the *promotion* of a finished trial to the next rung (the same architecture,
evaluated at a higher fidelity; evaluators that can, e.g. training, continue from the rung's saved
state). The scheduler's whole state is a function of the trials it has seen: the experiment rebuilds
it on resume by showing it the stored trials again, so a ``kill -9`` loses no rung result and repeats
no finished rung.

Rungs are fidelities ``r_0 < r_1 < ... < r_K``. By default they are geometric with ratio ``eta``
between ``min_fidelity`` and ``max_fidelity`` (Li et al., JMLR 2018; rounded to whole epochs for
training), or the fidelities the evaluator offers in that range (NAS-Bench-201: 12 and 200 epochs).
``rungs=[...]`` sets them explicitly.

What the strategy learns (``tell``):

* ``"entry"``: each configuration once, right after its first evaluation, with that result. Every
  configuration the strategy proposed is told at the same fidelity within a bracket, and the
  strategy's ``pending`` list empties as fast as without a scheduler. Promotions are the scheduler's
  business. ASHA always uses this (its configurations can be promoted at any later time).
* ``"final"``: each configuration once, when its journey through the bracket ends (it was not
  promoted, or it finished the top rung), with the result of the highest rung it reached. Good
  configurations are told at high fidelity, as BOHB's model is fit on the highest budget
  (Falkner et al., ICML 2018). Synchronous brackets only.

Failed, pruned and infeasible evaluations are never promoted; the strategy is told them like any
other trial (strategies rank only ``ok`` trials, so they count as losers).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from nasforge.errors import ConfigError
from nasforge.evaluators.base import Evaluator
from nasforge.trial import Objective, Trial, TrialStatus

#: ``Trial.info`` keys a scheduler writes into every trial it starts.
RUNG, BRACKET, CONFIG, PARENT = "rung", "bracket", "config", "parent"

TELL_MODES = ("entry", "final")


@dataclass(frozen=True)
class Slot:
    """What to evaluate next: a new configuration (``parent is None``) or a promotion."""

    rung: int
    bracket: int
    parent: Trial | None = None

    @property
    def is_new(self) -> bool:
        """Whether the architecture must come from the strategy."""
        return self.parent is None


def schedule_info(trial: Trial) -> tuple[int, int, int, int | None] | None:
    """``(rung, bracket, config, parent)`` recorded in a scheduled trial's info, else None."""
    info = trial.info
    if RUNG not in info:
        return None
    parent = info.get(PARENT)
    return (int(info[RUNG]), int(info[BRACKET]), int(info[CONFIG]),
            None if parent is None else int(parent))


class Scheduler(ABC):
    """Base class: rung ladder, validation, trial bookkeeping and the restore protocol.

    Subclasses implement :meth:`next_slot` and may override :meth:`_on_finish` (which trials to
    tell the strategy). The experiment calls :meth:`configure` once, then :meth:`started` for
    every trial it starts (or finds stored), :meth:`finished` for every result (in the order the
    results were told), and :meth:`next_slot` whenever a worker is free.
    """

    name: str = "scheduler"
    #: Whether :meth:`next_slot` can return None while trials are running (synchronous rungs).
    synchronous: bool = False

    def __init__(
        self,
        *,
        min_fidelity: float | None = None,
        max_fidelity: float | None = None,
        eta: float = 3,
        rungs: Sequence[float] | None = None,
        tell: str = "entry",
    ) -> None:
        if (isinstance(eta, bool) or not isinstance(eta, (int, float)) or not eta >= 2
                or not math.isfinite(eta)):
            raise ConfigError(
                f"scheduler {self.name!r}: eta (the reduction factor) must be a finite number "
                f">= 2, got {eta!r}"
            )
        for label, value in (("min_fidelity", min_fidelity), ("max_fidelity", max_fidelity)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value) or value <= 0):
                raise ConfigError(
                    f"scheduler {self.name!r}: {label} must be a positive number, got {value!r}"
                )
        if min_fidelity is not None and max_fidelity is not None and max_fidelity < min_fidelity:
            raise ConfigError(
                f"scheduler {self.name!r}: max_fidelity {max_fidelity:g} is below min_fidelity "
                f"{min_fidelity:g}; the highest rung must be at least the lowest"
            )
        if tell not in TELL_MODES:
            raise ConfigError(
                f"scheduler {self.name!r}: tell={tell!r} is not allowed; allowed: "
                + ", ".join(TELL_MODES)
            )
        if tell == "final" and not self.synchronous:
            raise ConfigError(
                f"scheduler {self.name!r} is asynchronous: a configuration can be promoted at any "
                "later time, so its journey never ends; use tell='entry'"
            )
        self.min_fidelity = min_fidelity
        self.max_fidelity = max_fidelity
        self.eta = float(eta)
        self._rungs_given = None if rungs is None else list(rungs)
        self.tell = tell
        self.rungs: tuple[float, ...] = ()
        self.objective = Objective()
        self.can_resume = False
        self.reset()

    # ------------------------------------------------------------------ set-up
    def configure(self, evaluator: Evaluator, objective: Objective) -> None:
        """Check the evaluator has fidelities and compute the rungs; ConfigError otherwise."""
        if not evaluator.supports_fidelity:
            raise ConfigError(
                f"scheduler {self.name!r} needs an evaluator with a fidelity (training epochs, a "
                f"tabular benchmark's epoch columns); evaluator {evaluator.name!r} has none"
            )
        self.objective = objective
        self.can_resume = evaluator.can_resume
        self.rungs = self._ladder(evaluator)
        self._check_rungs()
        self.reset()

    def _ladder(self, evaluator: Evaluator) -> tuple[float, ...]:
        levels = evaluator.fidelity_levels()
        unit = evaluator.fidelity_unit
        if self._rungs_given is not None:
            given = self._rungs_given
            if any(isinstance(r, bool) or not isinstance(r, (int, float)) for r in given):
                raise ConfigError(f"scheduler {self.name!r}: rungs must be numbers, got {given!r}")
            rungs = [float(r) for r in given]
            if any(not math.isfinite(r) or r <= 0 for r in rungs):
                raise ConfigError(f"scheduler {self.name!r}: rungs must be positive, got {rungs}")
            if evaluator.integer_fidelity and any(not r.is_integer() for r in rungs):
                raise ConfigError(
                    f"scheduler {self.name!r}: evaluator {evaluator.name!r} takes whole {unit}; "
                    f"rung(s) {', '.join(f'{r:g}' for r in rungs if not r.is_integer())} are not"
                )
            if rungs != sorted(set(rungs)):
                raise ConfigError(
                    f"scheduler {self.name!r}: rungs must increase strictly, got {rungs}"
                )
            if levels is not None:
                bad = [r for r in rungs if r not in levels]
                if bad:
                    raise ConfigError(
                        f"scheduler {self.name!r}: rung(s) {', '.join(f'{r:g}' for r in bad)} "
                        f"{unit} are not offered by evaluator {evaluator.name!r}; allowed: "
                        + ", ".join(f"{v:g}" for v in levels)
                    )
            return tuple(rungs)
        top = self.max_fidelity
        if top is None:
            top = max(levels) if levels is not None else evaluator.default_fidelity()
        if top is None:
            raise ConfigError(f"scheduler {self.name!r}: set max_fidelity ({unit})")
        bottom = self.min_fidelity
        if levels is not None:
            if top not in levels or (bottom is not None and bottom not in levels):
                raise ConfigError(
                    f"scheduler {self.name!r}: evaluator {evaluator.name!r} offers only "
                    + ", ".join(f"{v:g}" for v in levels) + f" {unit}; got min_fidelity "
                    f"{bottom!r}, max_fidelity {top:g}"
                )
            low = min(levels) if bottom is None else bottom
            return tuple(v for v in levels if low <= v <= top)
        if bottom is None:
            bottom = top / self.eta ** 2
        if bottom > top:
            raise ConfigError(
                f"scheduler {self.name!r}: max_fidelity {top:g} is below min_fidelity {bottom:g}"
            )
        k = math.floor(math.log(top / bottom) / math.log(self.eta) + 1e-9)
        rungs = [top / self.eta ** (k - i) for i in range(k + 1)]
        if evaluator.integer_fidelity:
            rungs = sorted({max(1.0, float(round(r))) for r in rungs})
        return tuple(rungs)

    def _check_rungs(self) -> None:
        if len(self.rungs) < 2:
            raise ConfigError(
                f"scheduler {self.name!r}: the fidelities give only one rung "
                f"({', '.join(f'{r:g}' for r in self.rungs)}); lower min_fidelity or raise "
                "max_fidelity so that at least one promotion is possible (max >= eta x min)"
            )

    @property
    def top_fidelity(self) -> float:
        """The highest rung's fidelity (the schedule length of training evaluators)."""
        return self.rungs[-1]

    # ------------------------------------------------------------------ bookkeeping
    def reset(self) -> None:
        """Forget every trial (the experiment then replays the stored ones)."""
        self.trials: dict[int, Trial] = {}
        #: rung -> trial numbers started there, in start order
        self.by_rung: dict[int, list[int]] = {}
        #: (config, rung) pairs that exist (a configuration is evaluated once per rung)
        self.reached: set[tuple[int, int]] = set()

    def started(self, trial: Trial) -> None:
        """Record a trial that was started (its info holds rung, bracket, config, parent)."""
        sched = schedule_info(trial)
        if sched is None:
            raise ConfigError(
                f"trial {trial.number} has no rung: the experiment's storage was written without "
                f"scheduler {self.name!r}; resume it with the settings it was started with"
            )
        rung, _, config, _ = sched
        if rung >= len(self.rungs):
            raise ConfigError(
                f"trial {trial.number} ran at rung {rung}, but scheduler {self.name!r} has only "
                f"{len(self.rungs)} rungs; resume with the settings the experiment started with"
            )
        self.trials[trial.number] = trial
        self.by_rung.setdefault(rung, []).append(trial.number)
        self.reached.add((config, rung))
        self._on_start(trial, sched)

    def finished(self, trial: Trial) -> list[Trial]:
        """Record a result; return the trials the strategy should be told now (in order)."""
        self.trials[trial.number] = trial
        sched = schedule_info(trial)
        assert sched is not None
        return self._on_finish(trial, sched)

    def _on_start(self, trial: Trial, sched: tuple[int, int, int, int | None]) -> None:  # noqa: B027
        """Subclass hook: a trial started."""

    def _on_finish(self, trial: Trial, sched: tuple[int, int, int, int | None]) -> list[Trial]:
        """Which trials to tell the strategy after ``trial`` finished (default: ``"entry"``)."""
        return [trial] if sched[3] is None else []

    def score(self, number: int) -> float | None:
        """'Higher is better' score of a finished trial (None: not promotable)."""
        return self.objective.score(self.trials[number])

    def is_done(self, number: int) -> bool:
        """Whether the trial has finished."""
        return self.trials[number].status is not TrialStatus.RUNNING

    def ranked(self, numbers: Iterable[int]) -> list[int]:
        """Finished, scored trials best first (ties: lower trial number first)."""
        scored = [(s, n) for n in numbers if self.is_done(n) and (s := self.score(n)) is not None]
        return [n for s, n in sorted(scored, key=lambda sn: (-sn[0], sn[1]))]

    def config_of(self, number: int) -> int:
        """The configuration (number of its first trial) a trial belongs to."""
        sched = schedule_info(self.trials[number])
        assert sched is not None
        return sched[2]

    # ------------------------------------------------------------------ scheduling
    @abstractmethod
    def next_slot(self) -> Slot | None:
        """The next evaluation to start, or None when it must wait for running trials."""

    def fidelity(self, slot: Slot) -> float:
        """The fidelity of a slot's evaluation."""
        return self.rungs[slot.rung]

    def describe(self) -> dict[str, Any]:
        """JSON-able settings stored with the experiment (a resume must use the same ones)."""
        return {"name": self.name, "eta": self.eta, "rungs": list(self.rungs) or self._rungs_given,
                "min_fidelity": self.min_fidelity, "max_fidelity": self.max_fidelity,
                "tell": self.tell}

    def summary(self) -> list[dict[str, Any]]:
        """Per rung: fidelity, trials started, finished, ok, best score (for show/report)."""
        rows = []
        for k, fid in enumerate(self.rungs):
            nums = self.by_rung.get(k, [])
            best = self.ranked(nums)
            rows.append({"rung": k, "fidelity": fid, "trials": len(nums),
                         "finished": sum(self.is_done(n) for n in nums),
                         "ok": sum(self.trials[n].ok for n in nums),
                         "best_trial": best[0] if best else None})
        return rows
