"""Shared pieces of the strategy tests: a toy conditional space, cheap deterministic objectives
and tiny per-strategy options (so every strategy reaches its main phase within a few trials)."""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Sequence
from typing import Any

from nasforge.errors import InvalidArchitectureError
from nasforge.space.architecture import Architecture
from nasforge.space.base import SearchSpace
from nasforge.space.decision import Choice, Condition
from nasforge.strategies.base import Strategy
from nasforge.trial import Trial, TrialStatus

#: Options that make each strategy leave its warm-up phase within ~6 trials. Strategies that are
#: not listed run with their defaults (new strategies are still tested).
TINY: dict[str, dict[str, Any]] = {
    "bananas": {"num_init": 3, "num_candidates": 8, "init_steps": 10, "retrain_steps": 3,
                "hidden": (8,)},
    "ga": {"population_size": 3, "tournament_size": 2},
    "nsga2": {"population_size": 3},
    "optuna_nsga2": {"population_size": 3},
    "pareto_rea": {"population_size": 3, "sample_size": 2},
    "progressive": {"stage_trials": 3, "population_size": 3, "sample_size": 2, "carry": 2},
    "rea": {"population_size": 3, "sample_size": 2},
    "reinforce": {"hidden_size": 8},
    "tpe": {"n_startup_trials": 3},
}

OBJECTIVES = ("accuracy", "min:params")


class ToyConditionalSpace(SearchSpace):
    """``depth`` in 1..3 decides how many ``layerK/op`` decisions exist; ``layerK/wide`` exists
    only for conv layers; a rule beyond the decisions forbids two pools in a row (repaired)."""

    name = "toy_conditional"

    def _declare(self) -> Sequence[Choice]:
        out = [Choice("depth", (1, 2, 3))]
        for k in range(3):
            cond = () if k == 0 else (Condition("depth", tuple(range(k + 1, 4))),)
            out.append(Choice(f"layer{k}/op", ("conv", "pool", "skip"), cond))
            out.append(Choice(f"layer{k}/wide", (False, True),
                              (*cond, Condition(f"layer{k}/op", ("conv",)))))
        return out

    def _check(self, arch: Architecture) -> None:
        ops = [arch[f"layer{k}/op"] for k in range(3) if f"layer{k}/op" in arch]
        if any(a == b == "pool" for a, b in itertools.pairwise(ops)):
            raise InvalidArchitectureError("two pool layers in a row")

    def _repair(self, arch: Architecture, rng: Any) -> Architecture:
        values = dict(arch)
        for k in range(1, 3):
            if values.get(f"layer{k}/op") == "pool" and values.get(f"layer{k - 1}/op") == "pool":
                values[f"layer{k}/op"] = "skip"
        return arch.with_values(values)

    def build(self, arch: Architecture, **kwargs: Any) -> Any:
        raise NotImplementedError("the toy space has no networks")


def crc(arch: Architecture) -> int:
    """A stable (cross-process) integer from an architecture."""
    return zlib.crc32(arch.to_json().encode())


def toy_metrics(space: SearchSpace, arch: Architecture) -> dict[str, float]:
    """Deterministic accuracy (a smooth part plus a hash part) and a params count."""
    decisions = space.active_decisions(arch)
    smooth = sum(d.index(arch[d.name]) / max(d.size - 1, 1) for d in decisions)
    accuracy = 50.0 + 40.0 * smooth / max(len(decisions), 1) + (crc(arch) % 100) / 100.0
    return {"accuracy": accuracy, "params": float(1000 + crc(arch) % 5000)}


def toy_trial(space: SearchSpace, arch: Architecture, number: int) -> Trial:
    """A finished trial: mostly OK, sometimes FAILED or INFEASIBLE (deterministically)."""
    h = crc(arch) % 13
    if h == 0:
        return Trial(number=number, arch=arch, status=TrialStatus.FAILED, error="boom")
    metrics = toy_metrics(space, arch)
    status = TrialStatus.INFEASIBLE if h == 1 else TrialStatus.OK
    return Trial(number=number, arch=arch, status=status, metrics=metrics)


def drive(strategy: Strategy, steps: int, start: int = 0, batch: int = 2
          ) -> list[Architecture]:
    """``steps`` rounds of ask_batch(batch) then tell each; returns every asked architecture."""
    asked: list[Architecture] = []
    number = start
    for _ in range(steps):
        archs = strategy.ask_batch(batch)
        asked += archs
        for a in archs:
            strategy.tell(toy_trial(strategy.space, a, number))
            number += 1
    return asked
