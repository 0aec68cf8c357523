"""Figures for the NAS-Bench-201 benchmark: table load time, lookup speed, and the reproduction of
the paper's random search / REA results (Dong & Yang, ICLR 2020, Table 5, CIFAR-10 test accuracy).

    .venv/bin/python benchmarks/nb201_protocol.py --data /path/to/nb201 [--seeds 500] [--jobs 2]

Prints one line per figure. The reproduction uses exactly what ``nasforge bench`` uses
(``nasforge.report.compare``). It also prints the sensitivity to one protocol detail: the paper's
reference code drops the query that would cross the 12,000 s budget, nasforge's Budget counts it.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

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
    args = parser.parse_args()

    clear_cache()
    t0 = time.perf_counter()
    table = NB201Table.load(args.data)
    print(f"table load ({table.format}, {len(table)} rows): {time.perf_counter() - t0:.3f} s")
    t0 = time.perf_counter()
    NB201Table.load(args.data)
    print(f"table load again (cached): {(time.perf_counter() - t0) * 1e3:.3f} ms")

    space = nasforge.create_space("nb201")
    ev = nasforge.create_evaluator("nb201", table=table).bind(space)
    archs = [space.sample(i) for i in range(2000)]
    t0 = time.perf_counter()
    for a in archs:
        ev.evaluate(a, nasforge.EvalContext())
    per = (time.perf_counter() - t0) / len(archs)
    print(f"evaluator lookup: {per * 1e6:.1f} us per query")
    for name in ("random", "rea"):
        strategy = nasforge.create_strategy(name, space, seed=0)
        t0 = time.perf_counter()
        exp = nasforge.Experiment(space, strategy, ev, budget=nasforge.Budget(max_trials=2000),
                                  storage=None, device="cpu").run()
        per = (time.perf_counter() - t0) / len(exp.trials)
        print(f"Experiment loop with {name}: {per * 1e3:.3f} ms per trial")

    protocol = Protocol(data=str(table.source))
    t0 = time.perf_counter()
    comp = compare(list(PAPER), args.seeds, protocol, jobs=args.jobs)
    wall = time.perf_counter() - t0
    print(f"reproduction: {args.seeds} seeds x {len(PAPER)} strategies in {wall:.1f} s "
          f"({args.jobs} processes)")
    for s in comp.stats:
        mean, std = PAPER[s.strategy]
        ok = abs(s.mean - mean) <= WINDOW
        print(f"  {s.strategy:7s} {s.mean:.2f} +- {s.std:.2f} "
              f"(95% CI {s.ci_low:.2f}-{s.ci_high:.2f}, {s.queries_mean:.1f} queries); "
              f"paper {mean:.2f} +- {std:.2f}; "
              f"difference {s.mean - mean:+.2f} -> {'within' if ok else 'OUTSIDE'} {WINDOW}")
    test = comp.test_top_two()
    if test is not None:
        print(f"  {test.a} vs {test.b}: Welch p = {test.welch_p:.3g}, "
              f"Mann-Whitney p = {test.mannwhitney_p:.3g}")
    # Sensitivity: the reference code does not count the query that crosses the budget.
    for name, runs in comp.runs.items():
        dropped = np.array([r.incumbent[-2] if r.queries > 1 else r.final for r in runs])
        print(f"  {name:7s} without the budget-crossing query: {dropped.mean():.2f} +- "
              f"{dropped.std(ddof=1):.2f}")


if __name__ == "__main__":
    main()
