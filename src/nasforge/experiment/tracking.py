"""Experiment tracking where people already look: MLflow and TensorBoard callbacks.

Both are :class:`~nasforge.experiment.events.Callback` objects: pass them in ``callbacks=`` (or
use ``nasforge search --mlflow DIR --tensorboard DIR``). For every trial that ends they log its
metrics, its learning curve (the values the evaluator reported per step, ``info["reports"]``), its
architecture (the space's human form, and each decision as a parameter) and its status.

* :class:`MLflowCallback` writes one MLflow run per trial into a local store in a directory:
  the SQLite file ``DIR/mlflow.db`` (MLflow 3 refuses new runs in its older plain-file store
  unless told otherwise; SQLite is the local backend it recommends; no server either way),
  readable with ``mlflow ui --backend-store-uri sqlite:///DIR/mlflow.db`` or ``MlflowClient``.
* :class:`TensorBoardCallback` writes event files: ``DIR/search`` holds each metric per trial
  number, the best value so far and the architectures as text; ``DIR/trial_NNNNN`` each trial's
  learning curve, so TensorBoard overlays the curves of all trials.

MLflow and TensorBoard are optional (``pip install 'nasforge[mlflow]'`` / ``'nasforge[tensorboard]'``)
and imported only when a callback is created; a missing one fails with the extra to install.
"""

from __future__ import annotations

import importlib
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nasforge.errors import ConfigError
from nasforge.experiment.events import Callback
from nasforge.trial import Trial, TrialStatus

if TYPE_CHECKING:
    from nasforge.experiment.loop import Experiment


def _require(module: str, extra: str, what: str) -> Any:
    """Import ``module`` or fail naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"{what} needs the {module.split('.')[0]!r} package: "
                          f"pip install 'nasforge[{extra}]'") from None


def learning_curve(trial: Trial) -> list[tuple[int, float]]:
    """The trial's reported ``(step, value)`` pairs with finite values (steps as integers, as
    both trackers want); a malformed record yields what can be read of it."""
    out = []
    for item in trial.info.get("reports") or ():
        try:
            step, value = item
            step, value = round(float(step)), float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(value):
            out.append((step, value))
    return out


def finite_metrics(trial: Trial) -> dict[str, float]:
    """The trial's metrics that are finite numbers (trackers refuse NaN/inf)."""
    out = {}
    for key, value in trial.metrics.items():
        try:
            v = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(v):
            out[str(key)] = v
    return out


class _TrialLogger(Callback):
    """What both trackers share: the architecture's text, and logging each ended trial once."""

    def arch_text(self, experiment: Experiment, trial: Trial) -> str:
        """The architecture in its space's human form."""
        return str(experiment.space.to_string(trial.arch))

    def on_trial_end(self, experiment: Experiment, trial: Trial) -> None:
        self.log_trial(experiment, trial)

    def log_trial(self, experiment: Experiment, trial: Trial) -> None:  # pragma: no cover
        raise NotImplementedError


class MLflowCallback(_TrialLogger):
    """One MLflow run per trial in the local store ``directory/mlflow.db`` (created if missing;
    a tracking URI such as ``file:...`` or ``sqlite:///...`` is used as given).

    A run holds the metrics (the learning curve as ``curve/<metric>`` with the report steps), the
    decisions as parameters, and tags ``architecture``, ``trial``, ``status`` (and ``error`` for
    failed trials); the runs belong to the MLflow experiment ``experiment_name``.
    """

    def __init__(self, directory: str | Path, experiment_name: str = "nasforge") -> None:
        # MLflow reports usage data over the internet unless told not to. Logging to a local
        # store must not phone home on the user's behalf: off unless they set it themselves.
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        self.mlflow = _require("mlflow", "mlflow", "logging to MLflow")
        if ":" in str(directory) and not Path(directory).exists():
            self.uri = str(directory)  # a tracking URI (file:, sqlite:, ...)
        else:
            folder = Path(directory).resolve()
            folder.mkdir(parents=True, exist_ok=True)
            self.uri = f"sqlite:///{folder / 'mlflow.db'}"
        self.client = self.mlflow.tracking.MlflowClient(tracking_uri=self.uri)
        found = self.client.get_experiment_by_name(experiment_name)
        self.experiment_id = (found.experiment_id if found is not None
                              else self.client.create_experiment(experiment_name))

    def log_trial(self, experiment: Experiment, trial: Trial) -> None:
        from mlflow.entities import Metric, Param, RunTag

        metric = experiment.objective.metric
        text = self.arch_text(experiment, trial)
        run = self.client.create_run(self.experiment_id, run_name=f"trial {trial.number}",
                                     start_time=int(trial.started_at * 1000) or None)
        stamp = int((trial.finished_at or trial.started_at) * 1000)
        metrics = [Metric(k, v, stamp, 0) for k, v in finite_metrics(trial).items()]
        metrics += [Metric(f"curve/{metric}", v, stamp, step) for step, v in learning_curve(trial)]
        metrics.append(Metric("cost_seconds", float(trial.cost), stamp, 0))
        params = [Param(str(k), str(v)) for k, v in trial.arch.items()]
        if trial.fidelity is not None:
            params.append(Param("fidelity", str(trial.fidelity)))
        tags = [RunTag("architecture", text), RunTag("space", experiment.space.name),
                RunTag("trial", str(trial.number)), RunTag("status", trial.status.value),
                RunTag("seed", str(trial.seed))]
        if trial.error:
            tags.append(RunTag("error", trial.error[-5000:]))  # MLflow caps tag values
        # MLflow caps one batch at 1000 metrics; a long curve goes in several.
        for start in range(0, max(len(metrics), 1), 1000):
            self.client.log_batch(run.info.run_id, metrics=metrics[start:start + 1000],
                                  params=params if start == 0 else [],
                                  tags=tags if start == 0 else [])
        end = int(trial.finished_at * 1000) if trial.finished_at else None
        self.client.set_terminated(run.info.run_id,
                                   "FAILED" if trial.status is TrialStatus.FAILED else "FINISHED",
                                   end_time=end)


class TensorBoardCallback(_TrialLogger):
    """TensorBoard event files under ``directory``: ``search`` (metrics per trial number, best so
    far, architectures as text) and ``trial_NNNNN`` (each trial's learning curve)."""

    def __init__(self, directory: str | Path) -> None:
        _require("tensorboard", "tensorboard", "logging to TensorBoard")
        self.writer_cls = _require("torch.utils.tensorboard", "tensorboard",
                                   "logging to TensorBoard").SummaryWriter
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.search: Any = None

    def on_experiment_start(self, experiment: Experiment) -> None:
        self.search = self.writer_cls(str(self.directory / "search"))

    def log_trial(self, experiment: Experiment, trial: Trial) -> None:
        if self.search is None:
            self.on_experiment_start(experiment)
        metric = experiment.objective.metric
        n = trial.number
        for key, value in finite_metrics(trial).items():
            self.search.add_scalar(f"trial/{key}", value, n)
        best = experiment.best()
        best_value = best.value(metric) if best is not None else None
        if best_value is not None:
            self.search.add_scalar(f"best/{metric}", best_value, n)
        status = trial.status.value + (f": {trial.error.splitlines()[-1]}"
                                       if trial.error else "")
        self.search.add_text("architecture",
                             f"trial {n} ({status}): `{self.arch_text(experiment, trial)}`", n)
        self.search.flush()
        curve = learning_curve(trial)
        if curve:
            with self.writer_cls(str(self.directory / f"trial_{n:05d}")) as writer:
                for step, v in curve:
                    writer.add_scalar(f"curve/{metric}", v, step)

    def on_experiment_end(self, experiment: Experiment) -> None:
        if self.search is not None:
            self.search.close()
            self.search = None


__all__ = ["MLflowCallback", "TensorBoardCallback", "finite_metrics", "learning_curve"]
