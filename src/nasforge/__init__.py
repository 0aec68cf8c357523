"""nasforge: neural architecture search for PyTorch.

Describe a search space, pick a strategy and a performance estimator, and run a resumable
experiment whose results are plain ``torch.nn.Module`` s::

    import nasforge
    space = nasforge.create_space("nb201")
    arch = space.sample(0)
    model = space.build(arch, num_classes=10)
    strategy = nasforge.create_strategy("rea", space, seed=0)
"""

from __future__ import annotations

from typing import Any

from nasforge import evaluators as _evaluators  # noqa: F401  (registers evaluators)
from nasforge import spaces as _spaces  # noqa: F401  (registers spaces)
from nasforge import strategies as _strategies  # noqa: F401  (registers strategies)
from nasforge.errors import (
    ConfigError,
    DataNotFoundError,
    InvalidArchitectureError,
    NasforgeError,
    StorageError,
    UnknownNameError,
)
from nasforge.evaluators.base import EvalContext, Evaluator, TrialPruned
from nasforge.experiment import (
    Budget,
    Callback,
    Experiment,
    MemoryStorage,
    SQLiteStorage,
    best_trial,
)
from nasforge.registry import EVALUATORS, SPACES, STRATEGIES
from nasforge.space import Architecture, Choice, Condition, SearchSpace, choice
from nasforge.strategies.base import Strategy
from nasforge.trial import Constraint, Objective, Result, Trial, TrialStatus

__version__ = "0.1.0"


def list_spaces() -> list[str]:
    """Names of the registered search spaces."""
    return SPACES.names()


def list_strategies() -> list[str]:
    """Names of the registered search strategies."""
    return STRATEGIES.names()


def list_evaluators() -> list[str]:
    """Names of the registered evaluators (performance estimators)."""
    return EVALUATORS.names()


def create_space(name: str, **options: Any) -> SearchSpace:
    """Create a registered search space, e.g. ``create_space("nb201")``."""
    space: SearchSpace = SPACES.create(name, **options)
    return space


def create_strategy(name: str, space: SearchSpace, **options: Any) -> Strategy:
    """Create a registered strategy for ``space``, e.g. ``create_strategy("rea", space, seed=0)``."""
    strategy: Strategy = STRATEGIES.create(name, space, **options)
    return strategy


def create_evaluator(name: str, **options: Any) -> Evaluator:
    """Create a registered evaluator, e.g. ``create_evaluator("nb201", data="path/to/nb201")``."""
    evaluator: Evaluator = EVALUATORS.create(name, **options)
    return evaluator


__all__ = [
    "EVALUATORS",
    "SPACES",
    "STRATEGIES",
    "Architecture",
    "Budget",
    "Callback",
    "Choice",
    "Condition",
    "ConfigError",
    "Constraint",
    "DataNotFoundError",
    "EvalContext",
    "Evaluator",
    "Experiment",
    "InvalidArchitectureError",
    "MemoryStorage",
    "NasforgeError",
    "Objective",
    "Result",
    "SQLiteStorage",
    "SearchSpace",
    "StorageError",
    "Strategy",
    "Trial",
    "TrialPruned",
    "TrialStatus",
    "UnknownNameError",
    "__version__",
    "best_trial",
    "choice",
    "create_evaluator",
    "create_space",
    "create_strategy",
    "list_evaluators",
    "list_spaces",
    "list_strategies",
]
