"""How much time the experiment loop itself adds per trial (microseconds).

With a tabular evaluator a trial costs microseconds, so the loop's own work (storage writes,
bookkeeping, events, snapshots) is what limits how fast a strategy can be benchmarked. We time:

* ``bare``: the irreducible work, ``strategy.ask() -> evaluator.evaluate() -> strategy.tell()`` in
  a plain Python loop (no Experiment);
* ``memory``: ``Experiment`` with MemoryStorage and the inline executor;
* ``sqlite``: ``Experiment`` with an SQLite file (WAL, synchronous=NORMAL), inline executor.

The loop's overhead is ``(experiment - bare) / trials``. A last row compares the per-trial time of
the first and the last 10% of the SQLite run, which would grow if any step were O(n) in the number
of stored trials.

Uses the NAS-Bench-201 tabular evaluator (``create_evaluator("nb201", data=...)``) when its table is
found (``$NASFORGE_NB201`` or ../shared/benchmarks/nb201), else a dict-lookup FunctionEvaluator.

    nice -n 10 .venv/bin/python benchmarks/loop_overhead.py --trials 5000
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import nasforge
from nasforge.evaluators.base import EvalContext, Evaluator
from nasforge.evaluators.function import FunctionEvaluator
from nasforge.experiment import Budget, Event, EventKind, Experiment, MemoryStorage, SQLiteStorage
from nasforge.space.architecture import Architecture
from nasforge.trial import Trial

ROOT = Path(__file__).resolve().parents[1]


def find_nb201() -> Path | None:
    env = os.environ.get("NASFORGE_NB201")
    for c in ([Path(env)] if env else []) + [ROOT.parent / "shared" / "benchmarks" / "nb201"]:
        if (c / "nb201.csv").is_file():
            return c
    return None


class DictLookup:
    """Accuracy looked up in a dict built once for the whole space (a stand-in for a table)."""

    def __init__(self, space: nasforge.SearchSpace) -> None:
        rng = np.random.default_rng(0)
        self.table = {a: float(rng.uniform(10, 95)) for a in space.enumerate()}

    def __call__(self, arch: Architecture, ctx: EvalContext) -> dict[str, float]:
        return {"accuracy": self.table[arch]}


def make_evaluator(space: nasforge.SearchSpace) -> tuple[Evaluator, str]:
    data = find_nb201()
    if data is not None:
        try:
            ev = nasforge.create_evaluator("nb201", data=str(data))
            return ev.bind(space), f"tabular nb201 ({data})"
        except Exception as exc:  # the tabular evaluator is optional for this benchmark
            print(f"(tabular evaluator unavailable: {exc}; using a dict lookup)")
    return FunctionEvaluator(DictLookup(space)).bind(space), "dict lookup FunctionEvaluator"


def bare(space: nasforge.SearchSpace, strategy_name: str, evaluator: Evaluator,
         trials: int) -> float:
    strategy = nasforge.create_strategy(strategy_name, space, seed=0)
    t0 = time.perf_counter()
    for n in range(trials):
        arch = strategy.ask()
        result = evaluator.evaluate(arch, EvalContext(seed=n, trial_number=n))
        strategy.tell(Trial(number=n, arch=arch).finish(result, 0.0))
    return time.perf_counter() - t0


def experiment(space: nasforge.SearchSpace, strategy_name: str, evaluator: Evaluator,
               trials: int, storage: Any) -> tuple[float, list[float]]:
    strategy = nasforge.create_strategy(strategy_name, space, seed=0)
    stamps: list[float] = []

    def stamp(event: Event) -> None:
        if event.kind is EventKind.TRIAL_FINISHED:
            stamps.append(time.perf_counter())

    exp = Experiment(space, strategy, evaluator, budget=Budget(max_trials=trials),
                     storage=storage, device="cpu", callbacks=[stamp])
    t0 = time.perf_counter()
    exp.run()
    return time.perf_counter() - t0, stamps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=5000)
    parser.add_argument("--strategy", default="random", help="random (cheapest) or rea")
    parser.add_argument("--repeats", type=int, default=3, help="best of N timings")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args()

    space = nasforge.create_space("nb201")
    evaluator, what = make_evaluator(space)
    n = args.trials
    print(f"loop overhead: {n} trials, strategy {args.strategy!r}, evaluator: {what}")

    t_bare = min(bare(space, args.strategy, evaluator, n) for _ in range(args.repeats))
    t_mem = min(experiment(space, args.strategy, evaluator, n, MemoryStorage())[0]
                for _ in range(args.repeats))
    sqlite_runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            sqlite_runs.append(experiment(space, args.strategy, evaluator, n,
                                          SQLiteStorage(Path(tmp) / f"e{i}.db")))
    t_sql, stamps = min(sqlite_runs, key=lambda r: r[0])

    us = 1e6 / n
    tenth = max(1, n // 10)
    first = (stamps[tenth] - stamps[0]) / tenth * 1e6
    last = (stamps[-1] - stamps[-1 - tenth]) / tenth * 1e6
    figures = {
        "trials": n,
        "bare_us_per_trial": t_bare * us,
        "memory_us_per_trial": t_mem * us,
        "sqlite_us_per_trial": t_sql * us,
        "memory_overhead_us": (t_mem - t_bare) * us,
        "sqlite_overhead_us": (t_sql - t_bare) * us,
        "sqlite_first_10pct_us": first,
        "sqlite_last_10pct_us": last,
    }
    print(f"  bare ask/evaluate/tell       {figures['bare_us_per_trial']:8.1f} us/trial")
    print(f"  Experiment, MemoryStorage    {figures['memory_us_per_trial']:8.1f} us/trial  "
          f"(loop overhead {figures['memory_overhead_us']:.1f} us)")
    print(f"  Experiment, SQLiteStorage    {figures['sqlite_us_per_trial']:8.1f} us/trial  "
          f"(loop overhead {figures['sqlite_overhead_us']:.1f} us)")
    print(f"  SQLite first 10% / last 10%  {first:8.1f} / {last:.1f} us/trial")
    if args.json:
        print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
