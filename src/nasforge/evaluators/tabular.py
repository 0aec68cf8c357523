"""Tabular evaluation: look an architecture up in NAS-Bench-201 instead of training it.

The result is what training would have given (validation accuracy after ``fidelity`` epochs as the
search signal, the test accuracy papers report) and what it would have cost, in simulated seconds,
following NAS-Bench-201's ``simulate_train_eval`` (Dong & Yang, ICLR 2020): ``fidelity`` epochs of
training plus one pass over the validation set. An experiment budget in cost seconds then reproduces
the paper's protocol in milliseconds of real time.
"""

from __future__ import annotations

import os
from typing import Any

from nasforge.benchmarks import nats_format
from nasforge.benchmarks.nb201 import NB201Record, NB201Table
from nasforge.errors import ConfigError, InvalidArchitectureError
from nasforge.evaluators.base import EvalContext, Evaluator
from nasforge.registry import EVALUATORS
from nasforge.space.architecture import Architecture
from nasforge.space.base import SearchSpace
from nasforge.trial import Result


@EVALUATORS.register("nb201")
class TabularEvaluator(Evaluator):
    """NAS-Bench-201 lookup with simulated training cost (space ``nb201`` only).

    Metrics: ``accuracy`` (search signal: validation accuracy, %), ``test_accuracy`` (%, to
    report, never to search on), ``params`` (parameter count), and ``flops`` (millions) when the
    data has it.
    ``ctx.fidelity``, when set, overrides ``fidelity`` per trial (multi-fidelity strategies).

    ``data`` is the table's path (default ``$NASFORGE_NB201``). When the table has no training times
    for ``dataset`` (``nb201.csv`` has them for cifar10 only), construction fails unless
    ``charge_cost=False``, which charges nothing per query; then budget by trials, not cost.
    """

    name = "nb201"
    deterministic = True
    simulated_cost = True
    supports_fidelity = True
    #: The 12- and 200-epoch columns come from separate training runs with their own schedules,
    #: so a promotion cannot continue a rung: each rung is charged its full simulated cost.
    can_resume = False
    fidelity_unit = "epochs"

    def __init__(
        self,
        data: str | os.PathLike[str] | None = None,
        dataset: str = "cifar10",
        fidelity: int = 12,
        charge_cost: bool = True,
        table: NB201Table | None = None,
    ) -> None:
        super().__init__()
        self._table: NB201Table | None = table if table is not None else NB201Table.load(data)
        self.data = str(self._table.source)
        self.dataset, self.fidelity = self._table.check(dataset, fidelity)
        self.charge_cost = bool(charge_cost)
        if self.charge_cost and not self._table.has_cost(self.dataset):
            raise ConfigError(
                f"{self.data!r} has no training times for dataset {self.dataset!r}, so the cost "
                "of a query cannot be simulated; use a dataset with times "
                f"({', '.join(d for d in self._table.datasets() if self._table.has_cost(d))}), the "
                "official NATS-Bench files, or charge_cost=False with a trial budget"
            )

    @property
    def table(self) -> NB201Table:
        """The benchmark table (reloaded from the process cache after unpickling)."""
        if self._table is None:
            self._table = NB201Table.load(self.data)
        return self._table

    def __getstate__(self) -> dict[str, Any]:
        # Process executors pickle the evaluator: send the path, not 15,625 rows of arrays.
        state = dict(self.__dict__)
        state["_table"] = None
        return state

    def bind(self, space: SearchSpace) -> TabularEvaluator:
        if space.name != "nb201":
            raise ConfigError(
                "the 'nb201' evaluator has results only for the 'nb201' search space, "
                f"not {space.name!r}"
            )
        super().bind(space)
        return self

    def _check_arch(self, arch: Architecture) -> None:
        if not isinstance(arch, Architecture) or arch.space != "nb201":
            got = arch.space if isinstance(arch, Architecture) else type(arch).__name__
            raise InvalidArchitectureError(
                f"the 'nb201' evaluator needs an architecture of space 'nb201', got {got!r}"
            )

    def record(self, arch: Architecture, fidelity: int | None = None) -> NB201Record:
        """The table's record for ``arch`` at ``fidelity`` (default: the evaluator's)."""
        self._check_arch(arch)
        text = self.space.to_string(arch) if self.space is not None else arch
        return self.table.query(text, self.dataset, self.fidelity if fidelity is None else fidelity)

    def evaluate(self, arch: Architecture, ctx: EvalContext) -> Result:
        fidelity = None if ctx.fidelity is None else int(ctx.fidelity)
        rec = self.record(arch, fidelity)
        metrics = {"accuracy": rec.val_acc, "test_accuracy": rec.test_acc,
                   "params": float(rec.params)}
        if rec.flops_m is not None:
            metrics["flops"] = rec.flops_m
        if self.charge_cost:
            assert rec.cost is not None  # checked at construction
            cost = rec.cost
        else:
            cost = 0.0
        info = {"index": rec.index, "arch": rec.arch, "dataset": rec.dataset,
                "fidelity": rec.fidelity, "test_epochs": rec.test_epochs}
        return Result(metrics=metrics, cost=cost, info=info)

    supports_final = True

    def final_evaluate(self, arch: Architecture, seed: int, fidelity: float | None,
                       device: str = "cpu") -> Result:
        """The table's test accuracy after the full schedule on the full training set (CIFAR-10:
        ``cifar10_test_acc_200``, trained on train + validation, as the paper reports). The table
        holds the mean over the benchmark's training seeds: every ``seed`` gives the same value."""
        rec = self.record(arch, self.fidelity)
        return Result(metrics={"test_accuracy": rec.test_acc, "params": float(rec.params)},
                      cost=0.0, info={"test_epochs": rec.test_epochs, "seed_mean": True})

    def profile(self, arch: Architecture) -> dict[str, float]:
        """Parameters and FLOPs of the benchmark's network, from the table (FLOPs as a count, like
        every evaluator's profile, although this evaluator's ``flops`` metric is in millions)."""
        rec = self.record(arch, self.fidelity)
        out = {"params": float(rec.params)}
        if rec.flops_m is not None:
            out["flops"] = float(rec.flops_m) * 1e6
        return out

    def fidelity_levels(self) -> tuple[float, ...]:
        """The epochs the table has a search signal for on this dataset (cifar10: 12 and 200)."""
        return tuple(float(f) for f in sorted(self.table.datasets()[self.dataset]))

    def default_fidelity(self) -> float:
        """The configured ``fidelity``."""
        return float(self.fidelity)

    def produced_metrics(self) -> frozenset[str]:
        """``accuracy``, ``test_accuracy``, ``params``, and ``flops`` when the table has them."""
        names = {"accuracy", "test_accuracy", "params"}
        if nats_format.NATS_DATASETS[self.dataset].flops_column in self.table.columns:
            names.add("flops")
        return frozenset(names)

    def cheap_metrics(self, arch: Architecture) -> dict[str, float]:
        """The parameter count, known without 'training' (constraints are checked first)."""
        self._check_arch(arch)
        return {"params": float(round(self.table.params_m(arch, self.dataset) * 1e6))}

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "data": self.data, "dataset": self.dataset,
                "fidelity": self.fidelity, "charge_cost": self.charge_cost}


__all__ = ["TabularEvaluator"]
