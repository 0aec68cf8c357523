"""Performance estimators; each module registers its evaluators in ``nasforge.registry.EVALUATORS``."""

from nasforge.evaluators.base import EvalContext, Evaluator, TrialPruned

__all__ = ["EvalContext", "Evaluator", "TrialPruned"]

# Importing a module registers its evaluators (one import per file, sorted).
from nasforge.evaluators import detection as detection
from nasforge.evaluators import distill as distill
from nasforge.evaluators import function as function
from nasforge.evaluators import proxies as proxies
from nasforge.evaluators import tabular as tabular
from nasforge.evaluators import training as training
from nasforge.evaluators import weight_sharing as weight_sharing
