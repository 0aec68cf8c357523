"""The search progress bar: budget used, an ETA, the best value so far and trials by status.

Rich's own remaining-time column estimates speed over a 30-second window of bar advances, and a
search bar advances only when a trial ends: with trials of 30-100 s it shows ``-:--:--`` for the
whole run. :class:`BudgetEta` estimates instead from the budget itself: for each limit that is set
(trials, wall seconds, evaluation cost, fidelity) how fast this run is using it up, so the ETA is
known after the first finished trial (at once for a wall-time budget) and counts down between
trials. With several workers the rate already reflects the parallelism.
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from nasforge.experiment.budget import Budget
from nasforge.experiment.events import Callback
from nasforge.trial import Trial, TrialStatus

#: Trial counts are shown in this order (``running`` last: it changes most).
STATUS_ORDER = ("ok", "failed", "pruned", "infeasible", "running")


def format_duration(seconds: float) -> str:
    """``h:mm:ss`` (what rich's time columns show)."""
    s = max(0, round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class BudgetEta:
    """When the budget will run out, from how fast this run has used each limit.

    Built at the start of a run with the fractions already used (a resumed search starts part
    way); :meth:`finish_time` extrapolates each limit linearly from what this run used in the
    wall time it took, and the budget ends at the first limit reached.
    """

    def __init__(self, budget: Budget, used: tuple[int, float, float, float], now: float) -> None:
        self.budget = budget
        self.start = now
        self.start_fractions = budget.fractions(*used)

    def finish_time(self, used: tuple[int, float, float, float], now: float) -> float | None:
        """Estimated wall-clock time (``time.time()`` scale) at which the budget is spent, or
        None while nothing has been used yet by this run."""
        spent = now - self.start
        estimates = []
        for name, fraction in self.budget.fractions(*used).items():
            if name == "max_seconds" and self.budget.max_seconds is not None:
                # Wall time needs no estimate: it runs out at a known moment.
                estimates.append(now + self.budget.max_seconds * (1.0 - fraction))
                continue
            gained = fraction - self.start_fractions.get(name, 0.0)
            if gained > 0 and spent > 0:
                estimates.append(now + (1.0 - fraction) * spent / gained)
        return min(estimates) if estimates else None


class EtaColumn(ProgressColumn):
    """``ETA h:mm:ss`` counting down to the task's ``eta_at`` field (``-:--:--`` while unknown)."""

    def render(self, task: Task) -> Text:
        """The remaining time at this refresh."""
        eta_at = task.fields.get("eta_at")
        if eta_at is None:
            return Text("ETA -:--:--", style="progress.remaining")
        return Text(f"ETA {format_duration(eta_at - time.time())}", style="progress.remaining")


class ProgressCallback(Callback):
    """A rich progress bar over the experiment's budget: ETA, best value, trials by status."""

    def __init__(self, quiet: bool = False, console: Console | None = None) -> None:
        self.quiet = quiet
        self.console = console
        self.progress: Progress | None = None
        self.task: Any = None
        self.best: float | None = None
        self.counts: dict[str, int] = dict.fromkeys(STATUS_ORDER, 0)
        self.eta: BudgetEta | None = None

    @staticmethod
    def _used(experiment: Any) -> tuple[int, float, float, float]:
        trials, seconds, cost = experiment.usage
        return trials, seconds, cost, experiment.fidelity_spent

    def on_experiment_start(self, experiment: Any) -> None:
        # A resumed search starts with its stored trials counted.
        for t in experiment.trials:
            if t.status.finished:
                self.counts[t.status.value] += 1
        best = experiment.best()
        if best is not None:
            self.best = best.value(experiment.objective.metric)
        self.eta = BudgetEta(experiment.budget, self._used(experiment), time.time())
        if self.quiet:
            return
        from nasforge.cli.common import console

        self.progress = Progress(
            TextColumn("[bold]search[/bold]"),
            BarColumn(bar_width=20),
            MofNCompleteColumn() if experiment.budget.max_trials else TextColumn(""),
            TimeElapsedColumn(),
            EtaColumn(),
            TextColumn("{task.fields[status]}"),
            console=self.console or console,
            transient=False,
        )
        self.progress.start()
        total = experiment.budget.max_trials or 1000
        self.task = self.progress.add_task("search", total=total, status="", eta_at=None)
        self._update(experiment)

    def status_text(self, metric: str) -> str:
        """``best accuracy=91.2 | ok 3 failed 1 running 2``: ok and running always, the other
        statuses once they occur (an 80-column terminal keeps the line whole)."""
        best = "-" if self.best is None else _fmt(self.best)
        counts = " ".join(f"{k} {self.counts[k]}" for k in STATUS_ORDER
                          if self.counts[k] or k in ("ok", "running"))
        return f"best {metric}={best} | {counts}"

    def _update(self, experiment: Any) -> None:
        if self.progress is None:
            return
        used = self._used(experiment)
        budget = experiment.budget
        done = used[0] if budget.max_trials else budget.fraction(*used) * 1000
        eta_at = self.eta.finish_time(used, time.time()) if self.eta is not None else None
        self.progress.update(self.task, completed=done, eta_at=eta_at,
                             status=self.status_text(experiment.objective.metric))

    def on_trial_start(self, experiment: Any, trial: Trial) -> None:
        self.counts["running"] += 1
        self._update(experiment)

    def on_trial_end(self, experiment: Any, trial: Trial) -> None:
        self.counts["running"] = max(0, self.counts["running"] - 1)
        if trial.status is not TrialStatus.RUNNING:
            self.counts[trial.status.value] += 1
        # The experiment's best: under a scheduler only the highest fidelity reached competes.
        best = experiment.best()
        if best is not None:
            self.best = best.value(experiment.objective.metric)
        self._update(experiment)

    def on_experiment_end(self, experiment: Any) -> None:
        if self.progress is not None:
            self._update(experiment)
            self.progress.update(self.task, eta_at=time.time())
            self.progress.stop()
            self.progress = None


def _fmt(value: float) -> str:
    from nasforge.cli.common import fmt_metric

    return fmt_metric(value)


__all__ = ["STATUS_ORDER", "BudgetEta", "EtaColumn", "ProgressCallback", "format_duration"]
