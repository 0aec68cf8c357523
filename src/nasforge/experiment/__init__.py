"""Experiments: the search loop, budgets, storage, executors and events."""

from nasforge.experiment.budget import Budget
from nasforge.experiment.events import Callback, LoggingCallback
from nasforge.experiment.executors import Executor, InlineExecutor, JobOutcome, TrialJob, run_job
from nasforge.experiment.loop import Experiment, best_trial
from nasforge.experiment.storage import MemoryStorage, SQLiteStorage, Storage, open_storage

__all__ = [
    "Budget",
    "Callback",
    "Executor",
    "Experiment",
    "InlineExecutor",
    "JobOutcome",
    "LoggingCallback",
    "MemoryStorage",
    "SQLiteStorage",
    "Storage",
    "TrialJob",
    "best_trial",
    "open_storage",
    "run_job",
]
