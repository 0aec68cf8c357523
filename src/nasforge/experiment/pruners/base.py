"""Pruners stop a trial early from its learning curve (the values its evaluator reports per step).

The evaluator calls ``ctx.report(step, value)`` after each epoch; the experiment set ``ctx.reporter``
to a :class:`PruneCheck`: the pruner's rule together with the reference curves of the trials that
had completed (status ``ok``) when this one started. Carrying the reference with the trial (instead of asking the
driver at every step) makes pruning work unchanged in worker processes and on Ray, and keeps an
inline run deterministic. The price: a trial does not see curves that finish while it runs.

Values are compared "higher is better" (the sign of the experiment's primary objective), at the same
step. A pruned trial is stored with status ``pruned``, its learning curve (``info["reports"]``) and
the step it stopped at (``info["pruned_at"]``). Strategies rank only ``ok`` trials, so they learn
from a pruned trial that it lost; schedulers never promote it.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nasforge.errors import ConfigError
from nasforge.trial import Trial, TrialStatus

#: ``Trial.info`` key holding every ``(step, value)`` an evaluation reported.
REPORTS = "reports"
#: ``Trial.info`` key of a scheduled trial's configuration (see the schedulers).
CONFIG = "config"


def _check_int(owner: str, name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"pruner {owner!r}: {name} must be a whole number >= {low}, got {value!r}")
    return value


class Pruner(ABC):
    """Decides from the reference curves whether a reported value is bad enough to stop.

    ``warmup_steps``: never prune at a step below this (the first epochs say little);
    ``min_trials``: prune at a step only when at least this many completed trials reported it.
    """

    name: str = "pruner"
    #: Whether the rule compares with other trials (a threshold does not).
    needs_reference: bool = True

    def __init__(self, *, warmup_steps: int = 1, min_trials: int = 4) -> None:
        self.warmup_steps = _check_int(self.name, "warmup_steps", warmup_steps, 0)
        self.min_trials = _check_int(self.name, "min_trials", min_trials, 1)

    def check(self, trials: Iterable[Trial], sign: float, *, after_step: int = 0) -> PruneCheck:
        """The picklable reporter for a trial that starts now, given the finished trials.

        ``after_step``: judge only later steps (a promoted trial was already judged up to its
        parent's fidelity: a promotion that reports those epochs again is not pruned there).
        Each configuration counts once per step (a promotion that evaluates its configuration
        again from the start reports the same early steps as its parent did).
        """
        reference: dict[int, list[float]] = {}
        if self.needs_reference:
            seen: set[tuple[Any, int]] = set()
            for t in trials:
                # Completed trials only (as the median stopping rule and Optuna's pruners do):
                # the partial curves of pruned or failed trials are the bad ones, and counting
                # them would drag the reference down until nothing is pruned any more.
                if t.status is not TrialStatus.OK:
                    continue
                config = t.info.get(CONFIG, ("trial", t.number))
                for step, value in t.info.get(REPORTS, ()):
                    if not math.isfinite(value) or (config, int(step)) in seen:
                        continue
                    seen.add((config, int(step)))
                    reference.setdefault(int(step), []).append(sign * float(value))
        return PruneCheck(self, sign, reference, int(after_step))

    def decide(self, step: int, raw: float, sign: float, reference: Sequence[float]) -> bool:
        """Whether to stop at ``step`` with reported value ``raw``; ``reference`` holds the
        finished trials' values there, already "higher is better" (multiplied by ``sign``).

        NaN never prunes (nothing to judge); an infinite value is judged like any other, so a
        diverged run (a loss of ``inf``, minimized) is stopped."""
        if step < self.warmup_steps or math.isnan(raw):
            return False
        if self.needs_reference and len(reference) < self.min_trials:
            return False
        return self._decide(sign * raw, raw, reference)

    @abstractmethod
    def _decide(self, value: float, raw: float, reference: Sequence[float]) -> bool:
        """The rule: ``value`` is "higher is better", ``raw`` as reported (warm-up and the
        minimum number of trials are already checked)."""

    def describe(self) -> dict[str, Any]:
        """JSON-able settings stored with the experiment."""
        return {"name": self.name, "warmup_steps": self.warmup_steps,
                "min_trials": self.min_trials}


@dataclass(frozen=True)
class PruneCheck:
    """``ctx.reporter`` of one trial: ``check(step, value) -> stop?``."""

    pruner: Pruner
    sign: float
    reference: Mapping[int, list[float]] = field(default_factory=dict)
    #: Steps up to this one are not judged (a promotion's parent passed them already).
    after_step: int = 0

    def __call__(self, step: int, value: float) -> bool:
        if int(step) <= self.after_step:
            return False
        return self.pruner.decide(int(step), float(value), self.sign,
                                  self.reference.get(int(step), []))
