"""Hyperband (Li et al., JMLR 2018): successive halving over brackets that trade breadth for depth."""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from nasforge.errors import ConfigError
from nasforge.evaluators.base import Evaluator
from nasforge.experiment.schedulers._brackets import BracketScheduler
from nasforge.registry import SCHEDULERS
from nasforge.trial import Objective


def bracket_size(top: int, s: int, eta: float) -> int:
    """Configurations of bracket ``s``: ``ceil((top + 1) / (s + 1) * eta**s)`` (Li et al.),
    computed exactly (with floats, e.g. ``11 / 9 * 3**8`` rounds up to 8020 instead of 8019)."""
    if float(eta).is_integer():
        return math.ceil(Fraction(top + 1, s + 1) * int(eta) ** s)
    return math.ceil((top + 1) * eta ** s / (s + 1) - 1e-9)


@SCHEDULERS.register("hyperband")
class Hyperband(BracketScheduler):
    """Cycle through ``brackets`` brackets; bracket ``s`` starts ``ceil((S+1)/(s+1) eta^s)``
    configurations at rung ``S - s`` (``S`` = number of rungs - 1), from the most exploratory
    (``s = S``: many configurations at the lowest fidelity) to plain full evaluation (``s = 0``).

    ``brackets`` (default ``S + 1``, all of them) keeps only the most exploratory ones.
    """

    name = "hyperband"

    def __init__(self, *, brackets: int | None = None, min_fidelity: float | None = None,
                 max_fidelity: float | None = None, eta: float = 3,
                 rungs: Sequence[float] | None = None, tell: str = "entry") -> None:
        if brackets is not None and (isinstance(brackets, bool) or not isinstance(brackets, int)
                                     or brackets < 1):
            raise ConfigError(
                f"scheduler {self.name!r}: brackets must be a whole number >= 1, got {brackets!r}"
            )
        self.brackets_wanted = brackets
        super().__init__(min_fidelity=min_fidelity, max_fidelity=max_fidelity, eta=eta,
                         rungs=rungs, tell=tell)

    def configure(self, evaluator: Evaluator, objective: Objective) -> None:
        super().configure(evaluator, objective)
        most = len(self.rungs)
        if self.brackets_wanted is not None and self.brackets_wanted > most:
            raise ConfigError(
                f"scheduler {self.name!r}: brackets={self.brackets_wanted} is more than the "
                f"{most} the rungs allow ({', '.join(f'{r:g}' for r in self.rungs)}: one bracket "
                f"per starting rung); use brackets <= {most} or add rungs"
            )

    def brackets_to_finish(self) -> int:
        """The brackets asked for explicitly must all fit in the budget."""
        return self.brackets_wanted or 1

    @property
    def n_brackets(self) -> int:
        """Brackets per Hyperband iteration."""
        return self.brackets_wanted or len(self.rungs)

    def bracket_plan(self, index: int) -> tuple[int, int]:
        top = len(self.rungs) - 1
        s = top - (index % self.n_brackets)
        return top - s, bracket_size(top, s, self.eta)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "brackets": self.brackets_wanted}
