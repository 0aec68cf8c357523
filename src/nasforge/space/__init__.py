"""Search-space core: decisions, architectures and the SearchSpace base class."""

from nasforge.space.architecture import Architecture
from nasforge.space.base import SearchSpace, product_size
from nasforge.space.decision import Choice, Condition, Value, choice

__all__ = ["Architecture", "Choice", "Condition", "SearchSpace", "Value", "choice", "product_size"]
