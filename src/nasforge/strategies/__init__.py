"""Multi-trial search strategies (ask/tell); each module registers itself in ``STRATEGIES``."""

from nasforge.strategies._common import propose_unique
from nasforge.strategies.base import Strategy

__all__ = ["Strategy", "propose_unique"]

# Importing a module registers its strategy (one import per file, sorted).
from nasforge.strategies import bananas as bananas
from nasforge.strategies import ga as ga
from nasforge.strategies import local_search as local_search
from nasforge.strategies import nsga2 as nsga2
from nasforge.strategies import optuna_nsga2 as optuna_nsga2
from nasforge.strategies import pareto_rea as pareto_rea
from nasforge.strategies import progressive as progressive
from nasforge.strategies import random_search as random_search
from nasforge.strategies import rea as rea
from nasforge.strategies import reinforce as reinforce
from nasforge.strategies import tpe as tpe
