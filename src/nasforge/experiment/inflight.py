"""A trial between its ask and its tell, and the stored trial that its outcome becomes.

Split out of the experiment loop: the loop decides *when* a result is told; this module decides
*what* is stored for it (retries of a lost worker, metric checks, where it ran, the fidelity it
spent).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nasforge.experiment.executors import JobOutcome
from nasforge.experiment.metric_checks import MetricChecks
from nasforge.experiment.schedulers.base import PARENT
from nasforge.experiment.scheduling import SPENT, TrialPlan
from nasforge.trial import Trial


@dataclass(eq=False)
class InFlight:
    """A trial that was asked and is not told yet: running, or finished and waiting its turn."""

    trial: Trial
    done: Trial | None = None
    attempts: int = 0
    cheap: dict[str, float] | None = None  # cheap_metrics of the architecture, once computed
    #: Where earlier attempts died and why (stored with the trial as ``info["lost_attempts"]``).
    lost: list[dict[str, Any]] = field(default_factory=list)

    def retry(self, outcome: JobOutcome, retries: int) -> bool:
        """True when ``outcome`` is a lost worker and the trial may run again (then counted
        and recorded); False when the outcome is to be stored."""
        if not outcome.worker_died or self.attempts >= retries:
            return False
        self.attempts += 1
        reason = (outcome.result.error or "").strip().splitlines()
        self.lost.append({**outcome.where, "error": reason[0] if reason else ""})
        return True

    def finish(self, outcome: JobOutcome, checks: MetricChecks, plan: TrialPlan,
               trials: dict[int, Trial]) -> tuple[Trial, list[str]]:
        """The finished trial to store for ``outcome``, and the required metrics it lacks that no
        result ever had (the loop stops on those: every further trial would lack them too).

        ``trials`` are the experiment's trials so far (a promotion's spent epochs depend on its
        parent's fidelity).
        """
        t, result = self.trial, outcome.result
        # The schedule's keys (rung, config, parent) win over an evaluator's own info keys;
        # where it ran (node, worker) comes from the executor.
        info = {**result.info, **outcome.where, **t.info}
        metrics = dict(result.metrics)
        if self.attempts:
            info["attempts"] = self.attempts + 1
        if self.lost:
            info["lost_attempts"] = list(self.lost)
        status, error, never_seen = checks.result_problems(
            result.status, metrics, result.error, lambda: self._cheap(checks))
        cost = (result.cost if result.cost is not None
                else max(outcome.finished_at - outcome.started_at, 0.0))
        parent = trials.get(t.info[PARENT]) if t.info.get(PARENT) is not None else None
        info[SPENT] = plan.spent(t, info, parent.fidelity if parent is not None else None)
        self.done = Trial(number=t.number, arch=t.arch, status=status, metrics=metrics,
                          cost=float(cost), error=error, info=info, seed=t.seed,
                          fidelity=t.fidelity, started_at=outcome.started_at,
                          finished_at=outcome.finished_at)
        return self.done, never_seen

    def _cheap(self, checks: MetricChecks) -> dict[str, float]:
        # Computed only when a required metric is missing from the result, and only once.
        if self.cheap is None:
            self.cheap = checks.cheap_or_empty(self.trial.arch, self.trial.number)
        return self.cheap
