"""Experiments: the search loop, budgets, storage, executors and events."""

from nasforge.experiment.budget import Budget
from nasforge.experiment.events import (
    Callback,
    Event,
    EventKind,
    FunctionCallback,
    LoggingCallback,
    as_callback,
)
from nasforge.experiment.executors import (
    Executor,
    ExecutorError,
    InlineExecutor,
    JobOutcome,
    TrialJob,
    make_executor,
    run_job,
)
from nasforge.experiment.loop import Experiment
from nasforge.experiment.process_pool import ProcessExecutor
from nasforge.experiment.ray_executor import RayExecutor
from nasforge.experiment.storage import (
    MemoryStorage,
    SQLiteStorage,
    Storage,
    StoredTrial,
    open_storage,
)
from nasforge.trial import best_trial

__all__ = [
    "Budget",
    "Callback",
    "Event",
    "EventKind",
    "Executor",
    "ExecutorError",
    "Experiment",
    "FunctionCallback",
    "InlineExecutor",
    "JobOutcome",
    "LoggingCallback",
    "MemoryStorage",
    "ProcessExecutor",
    "RayExecutor",
    "SQLiteStorage",
    "Storage",
    "StoredTrial",
    "TrialJob",
    "as_callback",
    "best_trial",
    "make_executor",
    "open_storage",
    "run_job",
]
