"""Multi-fidelity schedulers against fixed-fidelity search on NAS-Bench-201 CIFAR-10, at equal cost.

    .venv/bin/python benchmarks/multifidelity_nb201.py [--data DIR] [--seeds 200] [--jobs 2]
        [--budgets 12000,36000] [--etas 3,16.67] [--methods rea,bananas,...] [--full]
        [--json out.json] [--plot out.png]

Every run goes through the public loop (``nasforge.Experiment``, in-memory storage) with the
``nb201`` evaluator, which offers two fidelities on CIFAR-10: 12 epochs (search signal
``cifar10_valid_val_acc_12``) and 200 epochs (``cifar10_valid_val_acc_200``). Each query is charged
its simulated cost, ``epochs x seconds per epoch + one validation pass``; the two columns come
from separate training runs, so a promotion from 12 to 200 epochs pays the full 200 epochs (about
16x a 12-epoch query). A run stops once ``--budgets`` simulated seconds are spent (the query that
crosses the limit counts, as in NAS-Bench-201's protocol: a 200-epoch query started just before
the limit can overshoot it by ~2,000 s, so the table shows the cost actually spent).

Methods (``--methods``):

* ``rea``, ``bananas``, ``tpe``, ``random``: no scheduler, every query at 12 epochs (the paper's
  protocol). ``bananas`` costs ~28 ms per query of its own time, so without ``--full`` it runs at
  the 12,000 s budget only.
* ``sh``, ``hyperband``, ``asha``: the scheduler with uniform random proposals.
* ``bohb+<strategy>``: the model-based Hyperband, new configurations proposed by the strategy
  (1/3 of them uniform, BOHB's default), the strategy told the highest rung each one reached.
  ``bohb+bananas`` is not in the default list (its predictor makes it the slowest row).

Every scheduled method runs once per ``--etas`` value. The rungs are the evaluator's fidelities,
12 and 200 epochs, whatever eta is: eta sets how many configurations a bracket starts at 12 epochs
for one 200-epoch evaluation (3 with eta 3; 17 with 200/12 = 16.67).

The reported number is ``exp.best()``'s ``test_accuracy`` (``cifar10_test_acc_200``, never seen by
a strategy): the best trial at the highest fidelity the run reached, i.e. the best 200-epoch
validation accuracy when any configuration was promoted, else the best 12-epoch one. Per method
and budget: mean +- sample std, t-based 95% CI of the mean, median, evaluations (at 12 / 200
epochs), simulated cost spent, the wall time of the method's runs over the pool and their CPU time
(summed over the worker processes), and the difference from REA at the same budget with Welch's
t-test (two-sided). ``nb201.csv`` holds the mean over training seeds, so the search signal has no
noise here (the paper drew one seed per query).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

import nasforge
from nasforge.experiment.schedulers import create_scheduler
from nasforge.report.compare import RunResult, anytime_curves, compare_pair, plot_anytime, summarize
from nasforge.trial import best_trial

sys.path.insert(0, str(Path(__file__).resolve().parent))
from strategies_nb201 import OPTIMUM, base_parser, fmt

#: Published CIFAR-10 test accuracies at 12,000 s (NAS-Bench-201, mean, std over 500 runs).
PAPER = {"random": (93.70, 0.36), "rea": (93.92, 0.30), "bohb": (93.61, 0.52)}
#: Method -> (scheduler or None, proposing strategy).
METHODS: dict[str, tuple[str | None, str]] = {
    "rea": (None, "rea"), "bananas": (None, "bananas"), "tpe": (None, "tpe"),
    "random": (None, "random"),
    "sh": ("sh", "random"), "hyperband": ("hyperband", "random"), "asha": ("asha", "random"),
    "bohb+random": ("bohb", "random"), "bohb+tpe": ("bohb", "tpe"), "bohb+rea": ("bohb", "rea"),
    "bohb+bananas": ("bohb", "bananas"),
}
#: Fixed-fidelity methods run only at budgets up to 12,000 s unless --full (their own time).
SLOW = {"bananas"}
BASELINE = "rea"


@dataclass(frozen=True)
class Task:
    row: str
    method: str
    eta: float | None
    budget: float
    seed: int
    data: str


@dataclass(frozen=True)
class Run:
    result: RunResult
    evals_low: int  # evaluations at 12 epochs
    evals_high: int  # evaluations at 200 epochs
    best_fidelity: float
    pick_low: float  # test accuracy of the best 12-epoch signal among all 12-epoch evaluations
    cpu: float  # CPU seconds of this run in its worker


_EVALUATORS: dict[str, Any] = {}  # one per process and data path: loading the table is the cost


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)  # BANANAS' small networks: the processes are the parallelism


def run_task(task: Task) -> Run:
    """One seed of one method through ``nasforge.Experiment``."""
    cpu0 = time.process_time()
    evaluator = _EVALUATORS.get(task.data)
    if evaluator is None:
        evaluator = _EVALUATORS[task.data] = nasforge.create_evaluator("nb201", data=task.data)
    scheduler_name, strategy = METHODS[task.method]
    space = nasforge.create_space("nb201")
    scheduler = (None if scheduler_name is None
                 else create_scheduler(scheduler_name, eta=task.eta))
    exp = nasforge.Experiment(space, nasforge.create_strategy(strategy, space, seed=task.seed),
                              evaluator, budget=nasforge.Budget(max_cost=task.budget),
                              scheduler=scheduler, storage=None, seed=task.seed, device="cpu")
    exp.run()
    trials = exp.trials
    best = exp.best()
    assert best is not None
    # Anytime: the incumbent by exp.best()'s rule (highest fidelity first) after each trial.
    costs, incumbent, inc, spent = [], [], None, 0.0
    for t in trials:
        spent += t.cost
        inc = best_trial([inc, t] if inc is not None else [t], exp.objective)
        costs.append(spent)
        incumbent.append(float("nan") if inc is None else float(inc.metrics["test_accuracy"]))
    low = [t for t in trials if t.fidelity is None or t.fidelity <= 12]
    pick_low = best_trial(low, exp.objective)
    result = RunResult(strategy=task.row, seed=task.seed,
                       final=float(best.metrics["test_accuracy"]),
                       signal=float(best.metrics["accuracy"]), arch=str(best.info.get("arch", "")),
                       queries=len(trials), cost=spent, costs=tuple(costs),
                       incumbent=tuple(incumbent))
    return Run(result, len(low), len(trials) - len(low), float(best.fidelity or 12),
               float("nan") if pick_low is None else float(pick_low.metrics["test_accuracy"]),
               time.process_time() - cpu0)


def row_name(method: str, eta: float | None) -> str:
    return method if eta is None else f"{method} eta={eta:.4g}"


def plan_rows(methods: Sequence[str], etas: Sequence[float], budgets: Sequence[float],
              full: bool) -> list[tuple[str, str, float | None, float]]:
    """``(row, method, eta, budget)`` of every row to run, budget by budget."""
    rows: list[tuple[str, str, float | None, float]] = []
    for budget in budgets:
        for m in methods:
            if METHODS[m][0] is None:
                if m in SLOW and budget > 12_000 and not full:
                    continue
                rows.append((row_name(m, None), m, None, budget))
            else:
                rows.extend((row_name(m, eta), m, eta, budget) for eta in etas)
    return rows


def summarize_row(row: str, method: str, eta: float | None, budget: float, runs: list[Run],
                  wall: float, rea: list[float] | None) -> dict[str, Any]:
    stats = summarize(row, [r.result for r in runs])
    finals = [r.result.final for r in runs]
    out: dict[str, Any] = {
        "row": row, "method": method, "scheduler": METHODS[method][0],
        "strategy": METHODS[method][1], "eta": eta, "budget": budget, **asdict(stats),
        "text": fmt(finals),
        "evals_12": float(np.mean([r.evals_low for r in runs])),
        "evals_200": float(np.mean([r.evals_high for r in runs])),
        "share_best_at_200": float(np.mean([r.best_fidelity > 12 for r in runs])),
        "pick_12": float(np.mean([r.pick_low for r in runs])),
        "found_optimum": float(np.mean([abs(v - OPTIMUM) < 0.005 for v in finals])),
        "wall_s": wall, "cpu_s": float(sum(r.cpu for r in runs)),
        "finals": finals,
    }
    if rea is not None and method != BASELINE:
        test = compare_pair(row, finals, BASELINE, rea)
        out.update(diff_vs_rea=test.mean_diff, welch_t=test.welch_t, welch_p=test.welch_p)
    return out


def print_table(budget: float, rows: list[dict[str, Any]]) -> None:
    head = (f"{'method':22s} {'test acc %':>15s} {'95% CI':>13s} {'median':>6s} "
            f"{'evals 12/200':>12s} {'sim s':>6s} {'pick12':>6s} {'wall s':>6s} {'CPU s':>6s} "
            f"{'vs REA':>6s} {'Welch p':>8s}")
    print(f"\nbudget {budget:,.0f} simulated s")
    print(head)
    print("-" * len(head))
    for r in sorted(rows, key=lambda r: -r["mean"]):
        diff = f"{r['diff_vs_rea']:+6.2f}" if "diff_vs_rea" in r else f"{'':6s}"
        p = f"{r['welch_p']:8.2g}" if "welch_p" in r else f"{'':8s}"
        evals = f"{r['evals_12']:.1f}/{r['evals_200']:.1f}"
        print(f"{r['row']:22s} {r['text']:>15s} {r['ci_low']:6.2f}-{r['ci_high']:6.2f} "
              f"{r['median']:6.2f} {evals:>12s} {r['cost_mean']:6.0f} "
              f"{r['pick_12']:6.2f} {r['wall_s']:6.1f} {r['cpu_s']:6.1f} {diff} {p}")


def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--budgets", default="12000,36000",
                        help="simulated seconds per run, comma-separated (default 12000,36000)")
    parser.add_argument("--etas", default="3,16.67",
                        help="eta values of every scheduled method (default 3,16.67; 16.67 is "
                             "200/12, which the script uses exactly)")
    parser.add_argument("--methods", default="rea,bananas,tpe,random,sh,hyperband,asha,"
                        "bohb+random,bohb+tpe,bohb+rea",
                        help=f"comma-separated, from: {', '.join(METHODS)} (default: all but "
                             "bohb+bananas, about 1.3 s of CPU per seed over both etas and "
                             "budgets)")
    parser.add_argument("--full", action="store_true",
                        help=f"also run {', '.join(sorted(SLOW))} without a scheduler above "
                             "12,000 s (about 10 s of CPU per run at 36,000 s)")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    parser.add_argument("--plot", default=None,
                        help="also save the anytime curves of the first budget as a PNG")
    args = parser.parse_args()
    if not args.data:
        parser.error("no NAS-Bench-201 data: pass --data or set $NASFORGE_NB201")
    methods = args.methods.split(",")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        parser.error(f"unknown method(s) {unknown}; allowed: {', '.join(METHODS)}")
    budgets = [float(b) for b in args.budgets.split(",")]
    # 16.67 stands for the 12 -> 200 epoch ratio itself.
    etas = [200 / 12 if abs(float(e) - 200 / 12) < 0.01 else float(e)
            for e in args.etas.split(",")]
    plan = plan_rows(methods, etas, budgets, args.full)

    t0 = time.perf_counter()
    pool = (multiprocessing.get_context("spawn").Pool(args.jobs, _worker_init)
            if args.jobs > 1 else None)
    results: dict[float, list[dict[str, Any]]] = {b: [] for b in budgets}
    runs_by_row: dict[tuple[str, float], list[Run]] = {}
    walls: dict[tuple[str, float], float] = {}
    try:
        if pool is not None:  # start the workers (imports, table) before any row is timed
            pool.map(run_task, [Task("warm-up", "rea", None, 1.0, s, args.data)
                                for s in range(args.jobs)])
        startup = time.perf_counter() - t0
        for row, method, eta, budget in plan:
            tasks = [Task(row, method, eta, budget, s, args.data) for s in range(args.seeds)]
            w0 = time.perf_counter()
            if pool is None:
                runs = [run_task(t) for t in tasks]
            else:
                runs = pool.map(run_task, tasks, chunksize=max(1, len(tasks) // (8 * args.jobs)))
            walls[row, budget] = time.perf_counter() - w0
            runs_by_row[row, budget] = runs
            print(f"  {row} @ {budget:,.0f} s: {fmt([r.result.final for r in runs])} "
                  f"({walls[row, budget]:.1f} s wall)", flush=True)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    total = time.perf_counter() - t0
    for row, method, eta, budget in plan:
        rea = runs_by_row.get((BASELINE, budget))
        results[budget].append(summarize_row(
            row, method, eta, budget, runs_by_row[row, budget], walls[row, budget],
            None if rea is None else [r.result.final for r in rea]))

    print(f"\nNAS-Bench-201 CIFAR-10, {args.seeds} seeds per row; {total:.0f} s wall in all "
          f"({args.jobs} process(es), {startup:.1f} s of it starting them), "
          f"{sum(r['cpu_s'] for rs in results.values() for r in rs):.0f} s CPU in the runs. "
          f"Test accuracy (%) of exp.best() (200 epochs; optimum {OPTIMUM}).")
    print("evals: mean evaluations at 12 / 200 epochs; sim s: mean simulated cost spent; pick12: "
          "mean test accuracy had the run picked the best 12-epoch signal instead (all its 12-epoch "
          "evaluations); vs REA: difference of means and Welch's t-test p (two-sided). Signal: "
          "table means over training seeds (no noise).")
    print("paper, 12,000 s, 500 runs: " + ", ".join(
        f"{k} {m:.2f} +- {s:.2f}" for k, (m, s) in PAPER.items()))
    for budget in budgets:
        print_table(budget, results[budget])
    skipped = [m for m in methods if m in SLOW] if not args.full else []
    if skipped and any(b > 12_000 for b in budgets):
        print(f"\n({', '.join(skipped)} without a scheduler ran at 12,000 s only; --full adds "
              "the larger budgets)")
    if args.plot:
        first = budgets[0]
        curves = anytime_curves({r: [x.result for x in runs]
                                 for (r, b), runs in runs_by_row.items() if b == first},
                                "cost")
        print(f"anytime curves: {plot_anytime(curves, args.plot, f'NB201, {first:,.0f} s')}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"seeds": args.seeds, "jobs": args.jobs, "wall_s": total,
                       "startup_s": startup, "etas": etas, "budgets": budgets,
                       "cpus": os.cpu_count(), "rows": [r for rs in results.values() for r in rs]},
                      f, indent=1)


if __name__ == "__main__":
    main()
