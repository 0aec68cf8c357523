"""Pieces shared by several subcommands: option parsing, progress display, JSON output."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from nasforge.experiment.events import Callback
from nasforge.trial import Trial, TrialStatus

console = Console(stderr=True)
"""Progress, notes and logs go to stderr, so that stdout carries only results."""

out = Console()
"""Results (tables, the best architecture) go to stdout, so ``nasforge show DB > file`` keeps
them. A command writing ``--json`` to stdout prints no tables there (it uses ``console``)."""


#: Width of results written to a file or a pipe (a terminal's own width is used otherwise).
PIPE_WIDTH = 200


def print_result(*objects: Any) -> None:
    """Print results (text, tables) to stdout. Written to a file or a pipe, they get
    ``PIPE_WIDTH`` columns (or ``$COLUMNS``) instead of rich's 80, so tables are not squeezed."""
    if not out.is_terminal and not os.environ.get("COLUMNS"):
        out.width = PIPE_WIDTH
    out.print(*objects)


def write_json(data: Any, target: str | None) -> None:
    """Write ``data`` as JSON to ``target`` ('-' = stdout)."""
    text = json.dumps(data, indent=2, sort_keys=False, default=str)
    if target in (None, "-"):
        sys.stdout.write(text + "\n")
    else:
        Path(str(target)).parent.mkdir(parents=True, exist_ok=True)
        Path(str(target)).write_text(text + "\n")


def fmt_metric(value: float) -> str:
    """Short human form of a metric value."""
    if abs(value) >= 1e5 or (abs(value) >= 1000 and float(value).is_integer()):
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.1f}"
    return f"{value:.4g}"


class ProgressCallback(Callback):
    """A rich progress bar over the experiment's budget, with the best value so far."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.progress: Progress | None = None
        self.task: Any = None
        self.best: float | None = None
        self.failed = 0

    def on_experiment_start(self, experiment: Any) -> None:
        if self.quiet:
            return
        self.progress = Progress(
            TextColumn("[bold]search[/bold]"),
            BarColumn(),
            MofNCompleteColumn() if experiment.budget.max_trials else TextColumn(""),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.progress.start()
        total = experiment.budget.max_trials or 1000
        self.task = self.progress.add_task("search", total=total, status="")
        self._update(experiment)

    def _update(self, experiment: Any) -> None:
        if self.progress is None:
            return
        trials, seconds, cost = experiment.usage
        budget = experiment.budget
        done = trials if budget.max_trials else budget.fraction(trials, seconds, cost) * 1000
        best = "-" if self.best is None else fmt_metric(self.best)
        status = f"best {experiment.objective.metric}={best}"
        if self.failed:
            status += f" [red]{self.failed} failed[/red]"
        self.progress.update(self.task, completed=done, status=status)

    def on_trial_end(self, experiment: Any, trial: Trial) -> None:
        if trial.status is TrialStatus.FAILED:
            self.failed += 1
        value = experiment.objective.score(trial)
        if value is not None:
            value *= experiment.objective.sign
            if self.best is None or experiment.objective.sign * (value - self.best) > 0:
                self.best = value
        self._update(experiment)

    def on_experiment_end(self, experiment: Any) -> None:
        if self.progress is not None:
            self._update(experiment)
            self.progress.stop()
            self.progress = None
