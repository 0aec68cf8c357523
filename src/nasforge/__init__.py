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

import importlib
import importlib.util
import pkgutil
from typing import TYPE_CHECKING, Any

from nasforge.errors import (
    ConfigError,
    DataNotFoundError,
    InvalidArchitectureError,
    NasforgeError,
    StorageError,
    UnknownNameError,
)
from nasforge.registry import EVALUATORS, SPACES, STRATEGIES
from nasforge.space import Architecture, Choice, Condition, SearchSpace, choice
from nasforge.trial import Constraint, Objective, Result, Trial, TrialStatus

if TYPE_CHECKING:
    from nasforge.evaluators.base import EvalContext, Evaluator, TrialPruned
    from nasforge.experiment import Budget, Callback, Experiment, MemoryStorage, SQLiteStorage, best_trial
    from nasforge.strategies.base import Strategy

# Names that need torch (or the experiment machinery) are imported on first use, so that
# ``import nasforge`` and ``import nasforge.space`` stay light; the registries load the built-in
# spaces, strategies and evaluators on their first lookup.
_LAZY: dict[str, str] = {
    "EvalContext": "nasforge.evaluators.base",
    "Evaluator": "nasforge.evaluators.base",
    "TrialPruned": "nasforge.evaluators.base",
    "Budget": "nasforge.experiment",
    "Callback": "nasforge.experiment",
    "Experiment": "nasforge.experiment",
    "MemoryStorage": "nasforge.experiment",
    "SQLiteStorage": "nasforge.experiment",
    "best_trial": "nasforge.experiment",
    "Strategy": "nasforge.strategies.base",
}


def __getattr__(name: str) -> Any:
    """``nasforge.Experiment``, ``nasforge.strategies``, ...: imported on first access."""
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    elif not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, *(m.name for m in pkgutil.iter_modules(__path__))})


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


def create_space(name: str | None = None, *, preset: str | None = None, **options: Any) -> SearchSpace:
    """Create a registered search space, e.g. ``create_space("nb201")``.

    ``preset`` names a task preset (``create_space("macro", preset="image_classification")``, or
    ``create_space(preset="object_detection")``): its options, overridden by ``options``.
    """
    if preset is not None:
        from nasforge.spaces.presets import resolve_preset

        name, options = resolve_preset(name, preset, options)
    if name is None:
        raise ConfigError(f"create_space needs a space name or a preset; spaces: {', '.join(list_spaces())}")
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
