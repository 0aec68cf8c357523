"""Figures for the NAS-Bench-201 benchmark: table load time, lookup speed, and the reproduction of
the paper's random search / REA results (Dong & Yang, ICLR 2020, Table 5, CIFAR-10 test accuracy).

    .venv/bin/python benchmarks/nb201_protocol.py --data /path/to/nb201 [--seeds 500] [--jobs 2]

Prints each speed figure (cold and cached table load, one evaluator lookup, one trial through
``Experiment`` with random search and with REA) as the median of ``--repeats`` repeats, in wall
and in CPU time, with its spread (IQR, min-max, n); the figures run interleaved in rotating
order after a warm-up round (``benchmarks/_measure.py``). The reproduction uses exactly what ``nasforge bench`` uses
(``nasforge.report.compare``). It also prints the sensitivity to one protocol detail: the paper's
reference code drops the query that would cross the 12,000 s budget, nasforge's Budget counts it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np
from _measure import Clock, clock_spreads, interleaved, load_window, timed

import nasforge
from nasforge.benchmarks import NB201Table, clear_cache
from nasforge.report.compare import Protocol, compare

# Published numbers (mean, std over 500 runs) from the NAS-Bench-201 paper.
PAPER = {"random": (93.70, 0.36), "rea": (93.92, 0.30)}
WINDOW = 0.15


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="nb201 directory (default $NASFORGE_NB201)")
    parser.add_argument("--seeds", type=int, default=500)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repeats of the speed figures (default 5)")
    parser.add_argument("--lookups", type=int, default=2000, help="lookups per repeat")
    parser.add_argument("--trials", type=int, default=2000, help="loop trials per repeat")
    args = parser.parse_args()

    space = nasforge.create_space("nb201")
    table = NB201Table.load(args.data)
    ev = nasforge.create_evaluator("nb201", table=table).bind(space)
    archs = [space.sample(i) for i in range(args.lookups)]

    def cold_load() -> Clock:
        clear_cache()
        return timed(lambda: NB201Table.load(args.data))[1]

    def cached_load() -> Clock:
        return timed(lambda: NB201Table.load(args.data))[1]

    def lookups() -> Clock:
        return timed(lambda: [ev.evaluate(a, nasforge.EvalContext()) for a in archs])[1]

    def loop(name: str) -> Callable[[], Clock]:
        def run() -> Clock:
            strategy = nasforge.create_strategy(name, space, seed=0)
            exp = nasforge.Experiment(
                space, strategy, ev, budget=nasforge.Budget(max_trials=args.trials), storage=None, device="cpu"
            )
            return timed(exp.run)[1]

        return run

    # Every figure is timed once per repeat, interleaved in rotating order after a warm-up round.
    cases: dict[str, tuple[Callable[[], Clock], float, str]] = {
        "table load (cold, CSV)": (cold_load, 1.0, "s"),
        "table load (cached)": (cached_load, 1e3, "ms"),
        "evaluator lookup": (lookups, 1e6 / len(archs), "us/query"),
        "Experiment loop, random": (loop("random"), 1e3 / args.trials, "ms/trial"),
        "Experiment loop, rea": (loop("rea"), 1e3 / args.trials, "ms/trial"),
    }
    with load_window() as load:
        runs = interleaved({k: c[0] for k, c in cases.items()}, args.repeats)
    print(
        f"{len(table)} rows ({table.format}); median of {args.repeats} interleaved repeats "
        f"(IQR, min-max, n) [load {load['before']} -> {load['after']}]:"
    )
    for label, (_, scale, unit) in cases.items():
        for kind, spread in clock_spreads(runs[label], scale).items():
            print(f"  {label:26s} {kind:4s} {spread.text('.3f', unit)}")

    protocol = Protocol(data=str(table.source))
    # Children included: the pool's workers have been joined when compare() returns.
    comp, clock = timed(lambda: compare(list(PAPER), args.seeds, protocol, jobs=args.jobs), children=True)
    print(
        f"reproduction: {args.seeds} seeds x {len(PAPER)} strategies in {clock.wall:.1f} s "
        f"wall, {clock.cpu:.1f} s CPU ({args.jobs} processes)"
    )
    for s in comp.stats:
        mean, std = PAPER[s.strategy]
        ok = abs(s.mean - mean) <= WINDOW
        print(
            f"  {s.strategy:7s} {s.mean:.2f} +- {s.std:.2f} "
            f"(95% CI {s.ci_low:.2f}-{s.ci_high:.2f}, {s.queries_mean:.1f} queries); "
            f"paper {mean:.2f} +- {std:.2f}; "
            f"difference {s.mean - mean:+.2f} -> {'within' if ok else 'OUTSIDE'} {WINDOW}"
        )
    test = comp.test_top_two()
    if test is not None:
        print(f"  {test.a} vs {test.b}: Welch p = {test.welch_p:.3g}, Mann-Whitney p = {test.mannwhitney_p:.3g}")
    # Sensitivity: the reference code does not count the query that crosses the budget.
    for name, runs in comp.runs.items():
        dropped = np.array([r.incumbent[-2] if r.queries > 1 else r.final for r in runs])
        print(f"  {name:7s} without the budget-crossing query: {dropped.mean():.2f} +- {dropped.std(ddof=1):.2f}")


if __name__ == "__main__":
    main()
