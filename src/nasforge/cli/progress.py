"""The search progress bar: budget used, an ETA, the best value so far and trials by status.

Rich's own remaining-time column estimates speed over a 30-second window of bar advances, and a
search bar advances only when a trial ends: with trials of 30-100 s it shows ``-:--:--`` for the
whole run. :class:`BudgetEta` estimates instead from the budget itself: for each limit that is set
(trials, wall seconds, evaluation cost, fidelity) how fast this run is using it up, so the ETA is
known after the first finished trial (at once for a wall-time budget) and counts down between
trials. With several workers the rate already reflects the parallelism.

Under the bar, :class:`TrialTicks` keeps one line per running trial with its latest report
(``trial 7: epoch 3/9 accuracy 81.2 (0:00:42)``), fed by the ``trial_reported`` events that the
evaluator's ``ctx.report`` calls produce, the values the pruners see.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rich.console import Console, RenderableType
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


@dataclass
class _Running:
    started: float
    total: float | None
    step: int | None = None
    value: float | None = None


class TrialTicks:
    """The display model of the running trials: one line each, with its latest report.

    ``unit`` is the evaluator's ``fidelity_unit``: ``"epochs"`` shows steps as ``epoch 3/9``
    (out of the trial's fidelity), anything else as ``step 3``. ``metric`` names the reported
    value (the evaluator's ``reports_metric``). A trial gets a line from its start when
    ``announce`` (the evaluator declares that it reports), else from its first report, so
    instant trials that never report do not flicker. At most ``max_lines`` lines; the rest are
    counted on one more.
    """

    def __init__(self, unit: str | None = None, metric: str | None = None,
                 announce: bool = False, max_lines: int = 6) -> None:
        self.epochs = unit == "epochs"
        self.metric = metric or "value"
        self.announce = announce
        self.max_lines = max_lines
        self.running: dict[int, _Running] = {}

    def start(self, number: int, total: float | None, now: float) -> None:
        """Trial ``number`` started; it will train up to ``total`` (its fidelity, if known)."""
        self.running[number] = _Running(now, total)

    def report(self, number: int, step: int, value: float) -> None:
        """Trial ``number`` reported ``value`` at ``step``."""
        r = self.running.get(number)
        if r is not None:
            r.step, r.value = step, value

    def end(self, number: int) -> None:
        """Trial ``number`` ended (or was retried from scratch: its old reports are void)."""
        self.running.pop(number, None)

    def line(self, number: int, now: float) -> str | None:
        """``trial 7: epoch 3/9 accuracy 81.2 (0:00:42)``; None while there is nothing to show."""
        r = self.running[number]
        elapsed = f"({format_duration(now - r.started)})"
        if r.step is None or r.value is None:
            return f"trial {number}: started {elapsed}" if self.announce else None
        if self.epochs:
            total = "" if r.total is None else f"/{r.total:g}"
            where = f"epoch {r.step}{total}"
        else:
            where = f"step {r.step}"
        return f"trial {number}: {where} {self.metric} {_fmt(r.value)} {elapsed}"

    def lines(self, now: float) -> list[str]:
        """The lines to show under the bar, lowest trial number first."""
        shown = [text for n in sorted(self.running) if (text := self.line(n, now)) is not None]
        if len(shown) > self.max_lines:
            more = len(shown) - self.max_lines + 1
            shown = [*shown[:self.max_lines - 1], f"... {more} more running trials"]
        return shown


class _SearchProgress(Progress):
    """Rich's progress table, followed by the running trials' lines."""

    def __init__(self, *columns: ProgressColumn | str, ticks: TrialTicks, **kwargs: Any) -> None:
        self.ticks = ticks
        super().__init__(*columns, **kwargs)

    def get_renderables(self) -> Iterable[RenderableType]:
        """The bar, then one line per running trial that has something to show."""
        yield from super().get_renderables()
        for text in self.ticks.lines(time.time()):
            yield Text(text, no_wrap=True, overflow="ellipsis")


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
        self.ticks = TrialTicks()
        self.default_fidelity: float | None = None

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
        evaluator = experiment.evaluator
        self.ticks = TrialTicks(evaluator.fidelity_unit, evaluator.reports_metric,
                                announce=evaluator.reports_metric is not None)
        self.default_fidelity = evaluator.default_fidelity()
        if self.quiet:
            return
        from nasforge.cli.common import console

        self.progress = _SearchProgress(
            TextColumn("[bold]search[/bold]"),
            BarColumn(bar_width=20),
            MofNCompleteColumn() if experiment.budget.max_trials else TextColumn(""),
            TimeElapsedColumn(),
            EtaColumn(),
            TextColumn("{task.fields[status]}"),
            console=self.console or console,
            transient=False,
            ticks=self.ticks,
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
        self._start_ticks(trial)
        self._update(experiment)

    def on_trial_retry(self, experiment: Any, trial: Trial, reason: str) -> None:
        self._start_ticks(trial)  # it starts over

    def _start_ticks(self, trial: Trial) -> None:
        total = trial.fidelity if trial.fidelity is not None else self.default_fidelity
        self.ticks.start(trial.number, total, time.time())

    def on_trial_report(self, experiment: Any, trial: Trial, step: int, value: float) -> None:
        # Shown at rich's next refresh (10 a second), not re-rendered here: a trial may report
        # far more often than that.
        self.ticks.report(trial.number, step, value)

    def on_trial_end(self, experiment: Any, trial: Trial) -> None:
        self.counts["running"] = max(0, self.counts["running"] - 1)
        self.ticks.end(trial.number)
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


__all__ = ["STATUS_ORDER", "BudgetEta", "EtaColumn", "ProgressCallback", "TrialTicks",
           "format_duration"]
