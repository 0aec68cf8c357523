"""Strategy interface (ask/tell) shared by every multi-trial search strategy."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from nasforge.errors import ConfigError
from nasforge.space.architecture import Architecture
from nasforge.space.base import SearchSpace
from nasforge.trial import Objective, Trial, as_objectives
from nasforge.utils.rng import RngLike, as_rng, rng_from_state, rng_state


class Strategy(ABC):
    """Proposes architectures (``ask``) and learns from finished trials (``tell``).

    A strategy sees only the generic :class:`SearchSpace` interface. Its whole state must round-trip
    through :meth:`state_dict` / :meth:`load_state_dict` as JSON-able data, so an experiment can
    resume it exactly: after ``load_state_dict``, the strategy proposes the same future.

    Subclasses implement :meth:`_ask` and, when they learn, :meth:`_tell` (the public ``ask`` and
    ``tell`` keep :attr:`pending` up to date around them); they extend :meth:`state_dict` /
    :meth:`load_state_dict` with their own fields (calling ``super()``), and override
    :meth:`amend_last_ask` only when they keep their own record of pending asks. The rules a
    strategy keeps (no pending duplicates, tells of any status in any order, JSON-able state, a
    state round trip that predicts the same future, determinism per seed, consistent names) are
    written out and checked by :mod:`nasforge.testing` (``check_strategy``).
    """

    name: str = "strategy"

    def __init__(
        self,
        space: SearchSpace,
        seed: RngLike = None,
        objectives: Objective | str | Sequence[Objective | str] | None = None,
    ) -> None:
        if not isinstance(space, SearchSpace):
            raise ConfigError(f"a strategy needs a SearchSpace, got {type(space).__name__}")
        self.space = space
        self.rng: np.random.Generator = as_rng(seed)
        self.objectives = as_objectives(objectives)
        #: Architectures asked but not yet told, in ask order (batch asks can avoid duplicates).
        self.pending: list[Architecture] = []

    @property
    def objective(self) -> Objective:
        """The first (primary) objective."""
        return self.objectives[0]

    def score(self, trial: Trial) -> float | None:
        """'Higher is better' value of the primary objective, None for failed trials."""
        return self.objective.score(trial)

    # ------------------------------------------------------------------ ask / tell
    def ask(self) -> Architecture:
        """Propose the next architecture to evaluate."""
        arch = self._ask()
        self.pending.append(arch)
        return arch

    @abstractmethod
    def _ask(self) -> Architecture:
        """Subclass hook for :meth:`ask`."""

    def ask_batch(self, n: int) -> list[Architecture]:
        """Propose ``n`` architectures at once (each knows the earlier ones are pending)."""
        return [self.ask() for _ in range(n)]

    def amend_last_ask(self, arch: Architecture) -> None:
        """Replace the architecture of the newest pending ask by ``arch``.

        An experiment resuming by replay calls this when the strategy proposes something other
        than what the stored history records (an unseeded strategy): the record is authoritative,
        so the strategy's pending list must hold what was really evaluated.
        """
        if not self.pending:
            raise ConfigError("amend_last_ask: the strategy has no pending ask to amend")
        self.pending[-1] = arch

    def tell(self, trial: Trial) -> None:
        """Report a finished trial (its ``arch`` came from :meth:`ask`)."""
        for i, arch in enumerate(self.pending):
            if arch == trial.arch:
                del self.pending[i]
                break
        self._tell(trial)

    def _tell(self, trial: Trial) -> None:  # noqa: B027 - optional hook, empty on purpose
        """Subclass hook for :meth:`tell`; the default learns nothing."""

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """JSON-able state (rng and pending asks; subclasses add their own fields)."""
        return {
            "strategy": self.name,
            "rng": rng_state(self.rng),
            "pending": [a.to_dict() for a in self.pending],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        if state.get("strategy") != self.name:
            raise ConfigError(
                f"state_dict is for strategy {state.get('strategy')!r}, not {self.name!r}"
            )
        self.rng = rng_from_state(state["rng"])
        self.pending = [Architecture.from_dict(a) for a in state["pending"]]


def trial_to_state(trial: Trial) -> dict[str, Any]:
    """The part of a trial strategies keep in their state: arch, status and metrics."""
    return {"arch": trial.arch.to_dict(), "status": trial.status.value, "metrics": dict(trial.metrics),
            "number": trial.number}


def trial_from_state(data: dict[str, Any]) -> Trial:
    """Inverse of :func:`trial_to_state`."""
    from nasforge.trial import TrialStatus

    return Trial(number=int(data.get("number", 0)), arch=Architecture.from_dict(data["arch"]),
                 status=TrialStatus(data["status"]), metrics=dict(data["metrics"]))
