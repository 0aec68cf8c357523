"""Performance estimators; each module registers its evaluators in ``nasforge.registry.EVALUATORS``."""

from nasforge.evaluators.base import EvalContext, Evaluator, TrialPruned

__all__ = ["EvalContext", "Evaluator", "TrialPruned"]

# Importing a module registers its evaluators (keep one import per file, sorted).



# Importing a module registers its evaluators (one import per file, sorted).
from nasforge.evaluators import function as function  # noqa: E402
