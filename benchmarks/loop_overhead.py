"""How much time the experiment loop itself adds per trial (microseconds).

With a tabular evaluator a trial costs microseconds, so the loop's own work (storage writes,
bookkeeping, events, snapshots) is what limits how fast a strategy can be benchmarked. We time:

* ``bare``: the irreducible work, ``strategy.ask() -> evaluator.evaluate() -> strategy.tell()`` in
  a plain Python loop (no Experiment);
* ``memory``: ``Experiment`` with MemoryStorage and the inline executor;
* ``sqlite``: ``Experiment`` with an SQLite file (WAL, synchronous=NORMAL), inline executor;
* ``sqlite_full``: the same with ``durability="full"`` (synchronous=FULL: an fsync per commit, so
  told trials survive a power loss); its cost per trial is the paired difference to ``sqlite``:
  ``--cases sqlite,sqlite_full``.

The cases are a list (``CASES``); each repeat runs every case once, the order rotating from
repeat to repeat, after one warm-up round (``benchmarks/_measure.py``). Each case is reported as
the median time per trial over the repeats with its spread (IQR, min-max, n), in wall and in CPU
time. The loop's overhead is the paired difference ``(case - bare) / trials`` within each repeat,
reported the same way, so a load change between repeats cancels instead of showing up as a
negative overhead. For Experiment cases, the per-trial time of the first and the last 10% of the
trials (median over repeats) would grow if any step were O(n) in the number of stored trials.

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
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from _measure import Clock, Stopwatch, clock_spreads, interleaved, load_window, paired, summarize

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


@dataclass(frozen=True)
class Setup:
    """What every case runs: the space, strategy name, evaluator and trial count."""

    space: nasforge.SearchSpace
    strategy: str
    evaluator: Evaluator
    trials: int
    tmp: Path  # where storage cases put their database files


@dataclass(frozen=True)
class Run:
    """One timed run of a case: wall/CPU time of the whole run, and the wall-clock instant at
    which each trial finished (Experiment cases only)."""

    clock: Clock
    stamps: list[float]


def run_bare(setup: Setup) -> Run:
    """The irreducible work: ask -> evaluate -> tell in a plain Python loop."""
    strategy = nasforge.create_strategy(setup.strategy, setup.space, seed=0)
    with Stopwatch() as sw:
        for n in range(setup.trials):
            arch = strategy.ask()
            result = setup.evaluator.evaluate(arch, EvalContext(seed=n, trial_number=n))
            strategy.tell(Trial(number=n, arch=arch).finish(result, 0.0))
    return Run(sw.clock, [])


def run_experiment(setup: Setup, storage: Any) -> Run:
    """The same trials through ``Experiment`` with ``storage`` and the inline executor."""
    strategy = nasforge.create_strategy(setup.strategy, setup.space, seed=0)
    stamps: list[float] = []

    def stamp(event: Event) -> None:
        if event.kind is EventKind.TRIAL_FINISHED:
            stamps.append(time.perf_counter())

    exp = Experiment(
        setup.space,
        strategy,
        setup.evaluator,
        budget=Budget(max_trials=setup.trials),
        storage=storage,
        device="cpu",
        callbacks=[stamp],
    )
    with Stopwatch() as sw:
        exp.run()
    return Run(sw.clock, stamps)


def fresh_db(setup: Setup) -> Path:
    """A new database file for each run, so no run reads what an earlier one wrote."""
    return setup.tmp / f"run-{uuid.uuid4().hex}.db"


@dataclass(frozen=True)
class Case:
    """One setup to time: ``name`` keys the JSON, ``label`` is printed."""

    name: str
    label: str
    run: Callable[[Setup], Run]


#: The cases, timed interleaved; the first is the reference every overhead is paired with.
#: Add a setup by appending a Case.
CASES: list[Case] = [
    Case("bare", "bare ask/evaluate/tell", run_bare),
    Case("memory", "Experiment, MemoryStorage", lambda s: run_experiment(s, MemoryStorage())),
    Case("sqlite", "Experiment, SQLiteStorage", lambda s: run_experiment(s, SQLiteStorage(fresh_db(s)))),
    Case("sqlite_full", "Experiment, SQLite full",
         lambda s: run_experiment(s, SQLiteStorage(fresh_db(s), durability="full"))),
]


def growth(stamps: list[float]) -> tuple[float, float]:
    """Microseconds per trial over the first and over the last 10% of a run's trials."""
    tenth = max(1, len(stamps) // 10)
    first = (stamps[tenth] - stamps[0]) / tenth * 1e6
    last = (stamps[-1] - stamps[-1 - tenth]) / tenth * 1e6
    return first, last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=5000)
    parser.add_argument("--strategy", default="random", help="random (cheapest) or rea")
    parser.add_argument(
        "--repeats", type=int, default=5, help="interleaved repeats of every case (default 5, after one warm-up)"
    )
    parser.add_argument(
        "--cases",
        default=None,
        help=f"comma-separated case names (default all: {','.join(c.name for c in CASES)}; the first is the reference)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args()
    cases = CASES
    if args.cases:
        known = {c.name: c for c in CASES}
        wanted = args.cases.split(",")
        bad = [w for w in wanted if w not in known]
        if bad:
            parser.error(f"unknown case(s) {bad}; allowed: {sorted(known)}")
        cases = [known[w] for w in wanted]
    reference = cases[0]

    space = nasforge.create_space("nb201")
    evaluator, what = make_evaluator(space)
    n = args.trials
    print(
        f"loop overhead: {n} trials, strategy {args.strategy!r}, evaluator: {what}; "
        f"{len(cases)} cases interleaved, median of {args.repeats} repeats after one warm-up"
    )

    with tempfile.TemporaryDirectory() as tmp, load_window() as load:
        setup = Setup(space, args.strategy, evaluator, n, Path(tmp))
        runs = interleaved({c.name: (lambda c=c: c.run(setup)) for c in cases}, args.repeats)

    us = 1e6 / n
    figures: dict[str, Any] = {
        "trials": n,
        "repeats": args.repeats,
        "strategy": args.strategy,
        "reference": reference.name,
        "load_average": load,
        "cases": {},
    }
    print(f"  {'us per trial':30s} {'clock':5s} median (IQR, min-max, n)")
    for case in cases:
        clocks = [r.clock for r in runs[case.name]]
        row: dict[str, Any] = {"label": case.label}
        for kind, spread in clock_spreads(clocks, us).items():
            row[kind] = spread.to_dict()
            print(f"  {case.label:30s} {kind:5s} {spread.text('.1f')}")
        if case is not reference:
            # The overhead of each repeat is paired with the reference run of the same repeat.
            for kind in ("wall", "cpu"):
                diffs = paired(
                    [getattr(r.clock, kind) * us for r in runs[case.name]],
                    [getattr(r.clock, kind) * us for r in runs[reference.name]],
                    lambda a, b: a - b,
                )
                spread = summarize(diffs)
                row[f"overhead_{kind}"] = spread.to_dict()
                print(f"  {'  overhead vs ' + reference.name:30s} {kind:5s} {spread.text('+.1f')}")
        if runs[case.name][0].stamps:
            firsts, lasts = zip(*(growth(r.stamps) for r in runs[case.name]))
            row["first_10pct_us"] = summarize(firsts).to_dict()
            row["last_10pct_us"] = summarize(lasts).to_dict()
            print(f"  {'  first 10% of trials':30s} {'wall':5s} {summarize(firsts).text('.1f')}")
            print(f"  {'  last 10% of trials':30s} {'wall':5s} {summarize(lasts).text('.1f')}")
        figures["cases"][case.name] = row
    print(f"  load average before / after: {load['before']} / {load['after']}")
    if args.json:
        print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
