"""Results of evaluations and the trials that record them; objectives and constraints.

These plain value types are shared by evaluators (which return a :class:`Result`), strategies (which
are told :class:`Trial` s) and the experiment loop (which stores them), so they live at the top of the
package with no dependencies of their own.
"""

from __future__ import annotations

import enum
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nasforge.errors import ConfigError
from nasforge.space.architecture import Architecture


class TrialStatus(str, enum.Enum):
    """Life cycle of a trial."""

    RUNNING = "running"
    OK = "ok"
    FAILED = "failed"
    PRUNED = "pruned"
    INFEASIBLE = "infeasible"

    @property
    def finished(self) -> bool:
        """Whether the trial has ended (in any way)."""
        return self is not TrialStatus.RUNNING


@dataclass(frozen=True)
class Result:
    """What an evaluator returns for one architecture.

    ``metrics`` are the numbers objectives and constraints refer to (``accuracy``, ``params``, ...);
    ``cost`` is the price of the evaluation in seconds (simulated for tabular benchmarks, real wall
    time otherwise, filled in by the experiment when None); ``info`` holds JSON-able extras
    (learning curves, the test accuracy to report, ...).
    """

    metrics: Mapping[str, float] = field(default_factory=dict)
    cost: float | None = None
    status: TrialStatus = TrialStatus.OK
    error: str | None = None
    info: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def failed(cls, error: str, cost: float | None = None, **info: Any) -> Result:
        """A failed evaluation with its reason."""
        return cls(metrics={}, cost=cost, status=TrialStatus.FAILED, error=error, info=info)


@dataclass(frozen=True)
class Trial:
    """One evaluation of one architecture inside an experiment."""

    number: int
    arch: Architecture
    status: TrialStatus = TrialStatus.RUNNING
    metrics: Mapping[str, float] = field(default_factory=dict)
    cost: float = 0.0
    error: str | None = None
    info: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    fidelity: float | None = None
    started_at: float = 0.0
    finished_at: float | None = None

    @property
    def duration(self) -> float | None:
        """Wall seconds the evaluation took (None while running)."""
        return None if self.finished_at is None else self.finished_at - self.started_at

    @property
    def ok(self) -> bool:
        """True when the trial finished successfully."""
        return self.status is TrialStatus.OK

    def finish(self, result: Result, finished_at: float) -> Trial:
        """A copy of this running trial completed with ``result``."""
        cost = result.cost if result.cost is not None else max(finished_at - self.started_at, 0.0)
        return Trial(
            number=self.number,
            arch=self.arch,
            status=result.status,
            metrics=dict(result.metrics),
            cost=float(cost),
            error=result.error,
            info=dict(result.info),
            seed=self.seed,
            fidelity=self.fidelity,
            started_at=self.started_at,
            finished_at=finished_at,
        )

    def value(self, metric: str) -> float | None:
        """A metric's value, or None when the trial has no finite value for it."""
        v = self.metrics.get(metric)
        if v is None or not math.isfinite(float(v)):
            return None
        return float(v)


_DIRECTIONS = ("maximize", "minimize")


@dataclass(frozen=True)
class Objective:
    """A metric to optimize and its direction."""

    metric: str = "accuracy"
    direction: str = "maximize"

    def __post_init__(self) -> None:
        if self.direction not in _DIRECTIONS:
            raise ConfigError(
                f"objective direction {self.direction!r} is not allowed; allowed: 'maximize', 'minimize'"
            )

    def __str__(self) -> str:
        return f"{self.direction[:3]}:{self.metric}"

    @property
    def sign(self) -> float:
        """+1 for maximize, -1 for minimize: ``sign * value`` is always 'higher is better'."""
        return 1.0 if self.direction == "maximize" else -1.0

    def score(self, trial: Trial) -> float | None:
        """'Higher is better' score of a finished OK trial, or None."""
        if not trial.ok:
            return None
        v = trial.value(self.metric)
        return None if v is None else self.sign * v

    @classmethod
    def parse(cls, text: str) -> Objective:
        """Parse ``"accuracy"``, ``"max:accuracy"``, ``"min:params"`` or ``"params:minimize"``."""
        text = text.strip()
        if ":" not in text:
            return cls(text, "maximize")
        a, b = (p.strip() for p in text.split(":", 1))
        aliases = {"max": "maximize", "min": "minimize", "maximize": "maximize", "minimize": "minimize"}
        if a in aliases:
            return cls(b, aliases[a])
        if b in aliases:
            return cls(a, aliases[b])
        raise ConfigError(
            f"cannot parse objective {text!r}; write METRIC, max:METRIC or min:METRIC"
        )


def fidelity_rank(trial: Trial, objective: Objective) -> tuple[float, float] | None:
    """How good a trial is, higher better: ``(fidelity, score)``, or None when it has no score.

    The fidelity comes first: under a multi-fidelity scheduler a one-epoch result is no rival for
    a fully trained one. Every ranking of trials (the experiment's best, ``search``'s top list,
    reports, exports, the final stage's candidates) uses this one order; ties go to the lower
    trial number.
    """
    score = objective.score(trial)
    if score is None:
        return None
    return (float("-inf") if trial.fidelity is None else float(trial.fidelity), score)


def best_trial(trials: Sequence[Trial], objective: Objective) -> Trial | None:
    """The best trial by :func:`fidelity_rank` (lowest number wins ties), or None.

    Only trials at the highest fidelity that any scored trial reached compete: under a
    multi-fidelity scheduler a one-epoch result is no rival for a fully trained one.
    """
    best: Trial | None = None
    best_key: tuple[float, float] | None = None
    for t in trials:
        key = fidelity_rank(t, objective)
        if key is not None and (best_key is None or key > best_key
                                or (key == best_key and best is not None
                                    and t.number < best.number)):
            best, best_key = t, key
    return best


def ranked_trials(trials: Sequence[Trial], objective: Objective) -> list[Trial]:
    """The scored trials, best first by :func:`fidelity_rank` (ties: lower number first)."""
    keyed = [(k, t) for t in trials if (k := fidelity_rank(t, objective)) is not None]
    keyed.sort(key=lambda kt: (-kt[0][0], -kt[0][1], kt[1].number))
    return [t for _, t in keyed]


def as_objectives(objectives: Objective | str | Sequence[Objective | str] | None) -> tuple[Objective, ...]:
    """Normalize the many ways a user can name objectives to a tuple of :class:`Objective`."""
    if objectives is None:
        return (Objective(),)
    if isinstance(objectives, (Objective, str)):
        objectives = [objectives]
    out = tuple(o if isinstance(o, Objective) else Objective.parse(o) for o in objectives)
    if not out:
        raise ConfigError("at least one objective is needed")
    return out


_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    ">": operator.gt,
}


@dataclass(frozen=True)
class Constraint:
    """A bound on one metric, e.g. ``Constraint("params", "<=", 1e6)``."""

    metric: str
    op: str
    bound: float

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise ConfigError(f"constraint operator {self.op!r} is not allowed; allowed: {', '.join(_OPS)}")

    def satisfied(self, metrics: Mapping[str, float]) -> bool | None:
        """True/False, or None when the metric is not known yet."""
        if self.metric not in metrics:
            return None
        return _OPS[self.op](float(metrics[self.metric]), self.bound)

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.bound:g}"

    @classmethod
    def parse(cls, text: str) -> Constraint:
        """Parse ``"params <= 1e6"`` (operators: <=, <, >=, >)."""
        m = re.fullmatch(r"\s*([A-Za-z_][\w.]*)\s*(<=|>=|<|>)\s*([-+0-9.eE]+)\s*", text)
        if not m:
            raise ConfigError(
                f"cannot parse constraint {text!r}; write e.g. 'params <= 1e6' (operators <=, <, >=, >)"
            )
        try:
            bound = float(m.group(3))
        except ValueError:
            raise ConfigError(f"constraint {text!r}: {m.group(3)!r} is not a number") from None
        return cls(m.group(1), m.group(2), bound)


def as_constraints(constraints: Sequence[Constraint | str] | None) -> tuple[Constraint, ...]:
    """Normalize constraints given as objects or strings."""
    if not constraints:
        return ()
    return tuple(c if isinstance(c, Constraint) else Constraint.parse(c) for c in constraints)


def metric_uses(
    objectives: Sequence[Objective], constraints: Sequence[Constraint] = ()
) -> dict[str, list[str]]:
    """Metric name -> what names it (``"objective max:accuracy"``, ``"constraint params <= 1e+06"``).

    Every name here must be in a successful trial's metrics, so the experiment checks them up front
    (against what the evaluator declares) and on every result.
    """
    uses: dict[str, list[str]] = {}
    for o in objectives:
        uses.setdefault(o.metric, []).append(f"objective {o}")
    for c in constraints:
        uses.setdefault(c.metric, []).append(f"constraint {c}")
    return uses
