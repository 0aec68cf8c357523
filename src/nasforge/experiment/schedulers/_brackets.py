"""Synchronous successive-halving brackets, shared by successive halving, Hyperband and BOHB.

A bracket starts ``n`` configurations at rung ``s``; when every trial of a rung has finished, the
best ``max(1, floor(n_k / eta))`` move to the next rung (Jamieson & Talwalkar, AISTATS 2016;
Li et al., JMLR 2018). Brackets run one after another, each opened when the previous one ended,
so workers wait at rung boundaries (ASHA is the scheduler that never waits). A rung whose trials
all failed ends its bracket early.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from dataclasses import dataclass, field

from nasforge.experiment.schedulers.base import Scheduler, Slot
from nasforge.trial import Trial


@dataclass
class _Bracket:
    id: int
    start: int  # the rung where its configurations enter
    sizes: list[int]  # planned trials per rung, from ``start`` to the top
    members: dict[int, list[int]] = field(default_factory=dict)  # rung -> trial numbers

    def planned(self, rung: int) -> int:
        return self.sizes[rung - self.start]


class BracketScheduler(Scheduler):
    """Runs synchronous brackets one after another; subclasses choose each bracket's shape."""

    synchronous = True

    @abstractmethod
    def bracket_plan(self, index: int) -> tuple[int, int]:
        """``(start rung, configurations)`` of the ``index``-th bracket (0, 1, ...)."""

    def plan_sizes(self, start: int, n: int) -> list[int]:
        """Trials per rung of a bracket that starts ``n`` configurations at rung ``start``."""
        sizes = [n]
        for _ in range(start + 1, len(self.rungs)):
            sizes.append(max(1, math.floor(sizes[-1] / self.eta)))
        return sizes

    def evaluations(self, brackets: int) -> int:
        """Evaluations the first ``brackets`` brackets make when nothing fails."""
        total = 0
        for i in range(brackets):
            start, n = self.bracket_plan(i)
            total += sum(self.plan_sizes(start, n))
        return total

    def brackets_to_finish(self) -> int:
        """Brackets the budget check asks for (one, unless a subclass says otherwise)."""
        return 1

    def reset(self) -> None:
        super().reset()
        self.brackets: list[_Bracket] = []

    def _bracket(self, index: int) -> _Bracket:
        while len(self.brackets) <= index:
            start, n = self.bracket_plan(len(self.brackets))
            self.brackets.append(_Bracket(len(self.brackets), start, self.plan_sizes(start, n)))
        return self.brackets[index]

    def _on_start(self, trial: Trial, sched: tuple[int, int, int, int | None]) -> None:
        rung, bracket, _, _ = sched
        self._bracket(bracket).members.setdefault(rung, []).append(trial.number)

    # ------------------------------------------------------------------ promotion rule
    def _target(self, b: _Bracket, rung: int) -> int:
        """Trials the rung will hold: as planned, or fewer when the rung below had fewer
        scored trials to promote (failures are never promoted)."""
        if rung == b.start:
            return b.planned(rung)
        below = b.members.get(rung - 1, [])
        if not self._rung_complete(b, rung - 1):
            return b.planned(rung)
        return min(b.planned(rung), len(self.ranked(below)))

    def _rung_complete(self, b: _Bracket, rung: int) -> bool:
        nums = b.members.get(rung, [])
        return len(nums) >= self._target(b, rung) and all(self.is_done(n) for n in nums)

    def _promoted(self, b: _Bracket, rung: int) -> list[int]:
        """The trials of a complete rung that go (or went) to the next rung, best first."""
        if rung + 1 >= len(self.rungs):
            return []
        return self.ranked(b.members.get(rung, []))[: b.planned(rung + 1)]

    def _bracket_done(self, b: _Bracket) -> bool:
        for rung in range(b.start, len(self.rungs)):
            if not self._rung_complete(b, rung):
                return False
            if not self._promoted(b, rung):
                return True  # the top rung, or nothing left to promote
        return True

    def next_slot(self) -> Slot | None:
        index = len(self.brackets) - 1 if self.brackets else 0
        b = self._bracket(index)
        while self._bracket_done(b):
            b = self._bracket(b.id + 1)
        start_members = b.members.get(b.start, [])
        if len(start_members) < b.planned(b.start):
            return Slot(rung=b.start, bracket=b.id)
        for rung in range(b.start, len(self.rungs) - 1):
            if not self._rung_complete(b, rung):
                return None  # wait for this rung to finish
            have = {self.config_of(n) for n in b.members.get(rung + 1, [])}
            for n in self._promoted(b, rung):
                if self.config_of(n) not in have:
                    return Slot(rung=rung + 1, bracket=b.id, parent=self.trials[n])
        return None  # the top rung is running

    # ------------------------------------------------------------------ what the strategy hears
    def _on_finish(self, trial: Trial, sched: tuple[int, int, int, int | None]) -> list[Trial]:
        if self.tell == "entry":
            return super()._on_finish(trial, sched)
        rung, bracket, _, _ = sched
        b = self._bracket(bracket)
        heard: list[Trial] = []
        if self.score(trial.number) is None:
            heard.append(trial)  # failed, pruned or infeasible: never promoted, its journey ends
        elif rung + 1 >= len(self.rungs):
            return [trial]  # finished the top rung
        if rung + 1 >= len(self.rungs) or not self._rung_complete(b, rung):
            return heard
        # The rung just completed (possibly by this failure): every scored member that is not
        # promoted ends here.
        going = set(self._promoted(b, rung))
        ending = [n for n in b.members.get(rung, [])
                  if n not in going and self.score(n) is not None]
        return heard + [self.trials[n] for n in sorted(ending)]

    def summary_brackets(self) -> list[dict[str, object]]:
        """Per bracket: its start rung and planned/started trials per rung."""
        return [{"bracket": b.id, "start_rung": b.start, "planned": b.sizes,
                 "started": [len(b.members.get(r, [])) for r in range(b.start, len(self.rungs))]}
                for b in self.brackets]
