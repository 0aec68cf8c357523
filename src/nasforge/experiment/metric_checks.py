"""Checks of the metrics objectives and constraints name: before the search, before each
evaluation (constraints on metrics known without training) and on every result.

Split out of the experiment loop so that the loop only schedules, stores and tells.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from nasforge.errors import ConfigError
from nasforge.evaluators.base import Evaluator
from nasforge.trial import Constraint, Objective, Result, Trial, TrialStatus, metric_uses

log = logging.getLogger("nasforge.experiment")

#: ``Trial.info`` key marking a proposal rejected by a constraint before any evaluation; such
#: trials cost nothing and do not count against ``Budget.max_trials``.
REJECTED = "rejected_before_evaluation"

#: Give up when the constraints reject this many proposals in a row (they are probably too tight).
MAX_REJECTED_IN_A_ROW = 10_000


class MetricChecks:
    """What the objectives and constraints need from the evaluator, checked at every stage.

    Every metric an objective or constraint names must be in a successful result. The evaluator
    is asked to compute them (:meth:`Evaluator.request_metrics`); when it declares what it
    produces, an unknown name is refused at once (:meth:`check_names`). Otherwise a result
    without the metric fails its trial, and :meth:`result_problems` says when no result has
    ever had it (a typo: the experiment stops instead of spending its budget).
    """

    def __init__(self, evaluator: Evaluator, objectives: Sequence[Objective],
                 constraints: Sequence[Constraint]) -> None:
        self.evaluator = evaluator
        self.constraints = tuple(constraints)
        #: Metric -> the objectives and constraints that name it.
        self.uses = metric_uses(objectives, self.constraints)
        self.seen: set[str] = set()  # every metric name some trial's result had
        self.rejected_in_a_row = 0
        evaluator.request_metrics(self.uses)
        self.check_names()

    def restore(self, trials: Sequence[Trial]) -> None:
        """Start from the stored trials: the metrics seen so far, no rejections in a row."""
        self.seen = {m for t in trials for m in t.metrics}
        self.rejected_in_a_row = 0

    def check_names(self) -> None:
        """Refuse objective/constraint metrics the evaluator declares it cannot produce."""
        produced = self.evaluator.produced_metrics()
        if produced is None:
            return
        unknown = [m for m in self.uses if m not in produced]
        if unknown:
            raise ConfigError(
                f"evaluator {self.evaluator.name!r} does not produce the metric(s) "
                f"{self.describe(unknown)}; its metrics are: {', '.join(sorted(produced))}"
            )

    def describe(self, names: list[str]) -> str:
        """``'acuracy' (named by objective max:acuracy); ...`` for error messages."""
        return "; ".join(f"{m!r} (named by {', '.join(self.uses[m])})" for m in names)

    def precheck(self, arch: Any) -> tuple[dict[str, float] | None, Result | None]:
        """``(cheap_metrics, rejection)``: the rejection Result is None when no constraint is
        broken by the metrics known before evaluation (a crash of ``cheap_metrics`` is a failed
        Result: the same failure would hit the evaluation)."""
        try:
            cheap = dict(self.evaluator.cheap_metrics(arch))
        except Exception as exc:
            text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            return None, Result(status=TrialStatus.FAILED, cost=0.0,
                                error=f"cheap_metrics failed: {type(exc).__name__}: {exc}\n{text}")
        broken = [c for c in self.constraints if c.satisfied(cheap) is False]
        if not broken:
            return cheap, None
        return cheap, Result(metrics=cheap, cost=0.0, status=TrialStatus.INFEASIBLE,
                             error="violates " + ", ".join(map(str, broken)),
                             info={REJECTED: True})

    def cheap_or_empty(self, arch: Any, number: int) -> dict[str, float]:
        """``cheap_metrics(arch)``, or {} when it fails (the result then lacks the metric)."""
        try:
            return dict(self.evaluator.cheap_metrics(arch))
        except Exception as exc:
            log.debug("cheap_metrics failed for trial %d: %s", number, exc)
            return {}

    def result_problems(
        self, status: TrialStatus, metrics: dict[str, float], error: str | None,
        cheap: Callable[[], dict[str, float]],
    ) -> tuple[TrialStatus, str | None, list[str]]:
        """Check a result: ``(status, error, never_seen)``. Required metrics a successful result
        lacks are filled from ``cheap()`` when known there, else the trial fails; ``never_seen``
        lists missing metrics no result ever had. Broken constraints make it ``infeasible``."""
        never_seen: list[str] = []
        if status is TrialStatus.OK:
            missing = [m for m in self.uses if m not in metrics]
            if missing:
                known = cheap()
                metrics.update({m: known[m] for m in missing if m in known})
                missing = [m for m in missing if m not in metrics]
            if missing:
                status = TrialStatus.FAILED
                error = (f"the result has no metric {self.describe(missing)}; it has: "
                         f"{', '.join(sorted(metrics)) or '(no metrics)'}")
                never_seen = [m for m in missing if m not in self.seen]
        self.seen.update(metrics)
        if status is TrialStatus.OK and self.constraints:
            broken = [c for c in self.constraints if c.satisfied(metrics) is False]
            if broken:
                status, error = TrialStatus.INFEASIBLE, "violates " + ", ".join(map(str, broken))
        return status, error, never_seen

    def count_proposal(self, rejected: bool) -> None:
        """Count a proposal; refuse to go on when the constraints rejected too many in a row."""
        self.rejected_in_a_row = self.rejected_in_a_row + 1 if rejected else 0
        if self.rejected_in_a_row >= MAX_REJECTED_IN_A_ROW:
            raise ConfigError(
                f"the constraints rejected {MAX_REJECTED_IN_A_ROW:,} proposals in a row: "
                + ", ".join(map(str, self.constraints)) + "; loosen them"
            )

    def never_seen_error(self, number: int, never_seen: list[str],
                         metrics: Mapping[str, float]) -> ConfigError:
        """The error that stops a run whose result lacks a metric no result ever had: a typo
        or a metric this evaluator never produces, which every further trial would lack too."""
        return ConfigError(
            f"stopped after trial {number}: its result has no metric "
            f"{', '.join(map(repr, never_seen))}, which "
            f"{'; '.join(u for m in never_seen for u in self.uses[m])} names; "
            f"the evaluator produced: {', '.join(sorted(metrics)) or '(no metrics)'}. "
            "Fix the objective or constraint, or make the evaluator return that metric"
        )
