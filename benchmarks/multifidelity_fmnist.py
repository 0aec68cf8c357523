"""Multi-fidelity NAS with real training on Fashion-MNIST, at equal budgets counted in epochs.

    .venv/bin/python benchmarks/multifidelity_fmnist.py [--seeds 3] [--jobs 2] [--budget 108]
        [--scheduler asha] [--epochs 9] [--train-subset 1500] [--val-subset 500] [--json out.json]
    .venv/bin/python benchmarks/multifidelity_fmnist.py --smoke      # tiny settings, ~1 minute

Space: NAS-Bench-201 cells (6 edges x 5 ops), built small (``C=8, N=1`` by default) and trained
by the ``train`` evaluator on Fashion-MNIST: ``--train-subset`` images of the 60k training split
for training, ``--val-subset`` images held out of the same split for the search signal (validation
accuracy), and the official 10k test split touched only by the final training's single test.
Every method's search is charged the training epochs it actually ran (``Budget(max_fidelity=...)``;
a promoted trial continues its rung's checkpoint and pays only its extra epochs, a pruned trial
only the epochs it trained); as in NAS-Bench-201's protocol, the trial that crosses the limit still
counts, so the table shows the epochs actually spent. Every trial's learning-rate schedule is
``--epochs`` long (the top fidelity), so a low rung is the start of the full run.

Methods (``--methods``), each run once per search seed ``0 .. --seeds-1``:

* ``pipeline``: ``--scheduler`` (ASHA by default; sh, hyperband, bohb) with REA proposing, rungs
  ``--min-epochs`` .. ``--epochs`` with ratio ``--eta``, at ``--budget`` epochs;
* ``pipeline-half``: the same at half the budget (``--half-budget``);
* ``rea-full``: REA, every candidate trained the full ``--epochs`` (no scheduler), ``--budget``;
* ``optuna``: Optuna's TPE sampler with Optuna's HyperbandPruner (min/max resource and reduction
  factor as the pipeline's rungs) on the same evaluator: the objective samples the six edge ops with
  ``trial.suggest_categorical`` (``nasforge.strategies.optuna_bridge.suggest_architecture``), trains
  ``--epochs`` epochs through ``evaluator.evaluate`` with an ``EvalContext`` whose reporter calls
  ``trial.report`` / ``trial.should_prune`` (a pruned trial raises ``optuna.TrialPruned``), and the
  study stops once ``--budget`` epochs are spent. Optuna's defaults otherwise (TPE's 10 random
  start-up trials, no multivariate model; a repeated architecture is trained again);
* ``baseline``: the hand-designed NAS-Bench-201 ResNet cell, trained by the final recipe only.

The same final stage follows every search (``nasforge.experiment.selection``): the ``--top-k``
best distinct architectures at the highest fidelity reached are re-evaluated with
``--reeval-seeds`` fresh seeds at that fidelity and ranked by those fresh values, and the pick is
trained on training + validation data for ``--final-epochs`` with ``--final-seeds`` seeds and tested
once on the test split. Optuna's complete trials go through the same code (``FinalStageRunner``
reads only trials, objective, seed, space, evaluator and a storage). The re-evaluation's epochs are
NOT counted in the search budget; they are the same for every method and shown in their own column.
The baseline is trained once per search seed with exactly the final seeds the stage uses
(``derive_seed(seed, "final", j)``), so every method is paired with it seed by seed.

Reported per method: the final test accuracy (%) of its pick, one value per search seed (the mean
over the final seeds): mean +- sample std, t-based 95% CI of the mean, median and range; the epochs
spent in search (mean), trials (mean), trials trained to the top fidelity, the final stage's
epochs; wall and CPU seconds of the search and of the final stage (means per run, one process per
run, ``--threads`` torch threads). Then the comparisons the issue asks for, with Welch's t-test
(two-sided) and the 95% CI of the difference of means: the pipeline at half the budget against
full-training REA (goal: matches or beats it), the pipeline against Optuna TPE + Hyperband at the
same budget (goal: beats it), the pipeline against REA at the same budget, and every method against
the baseline (paired by seed). With a handful of seeds only large differences are detectable: a
CI that straddles zero means "not told apart", never "equal".

Sizing: the defaults (3 seeds, 1,500/500 images, batch 64, 9 epochs, 108-epoch budget, top-3 x 1
seed re-evaluation, 2 final seeds of 9 epochs) are about 2.8 M training image-epochs: at the ~1.3 ms
of CPU per image-epoch measured here for C=8, N=1 (validation included; one torch thread), about
3,700-4,000 CPU seconds, i.e. 32-38 minutes on 2 otherwise idle cores with ``--jobs 2``. The
script prints the CPU milliseconds per training image-epoch it measured, to size other runs.
``--smoke`` (2 seeds, 256/128 images, 3 epochs, 9-epoch budget) takes about a minute of CPU.
The main run in docs/benchmarks.md (``--train-subset 3000 --val-subset 1000 --min-epochs 3
--final-subset 8000``, 3 seeds) took 10,020 CPU seconds (1.83 ms per image-epoch); ``--runs FILE``
keeps each finished run, so a long benchmark can be stopped and continued.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

import nasforge
from nasforge.evaluators.base import EvalContext, Evaluator, TrialPruned
from nasforge.experiment.pruners import create_pruner
from nasforge.experiment.schedulers import create_scheduler
from nasforge.experiment.selection import (
    FinalStage,
    FinalStageRunner,
    paired_interval,
    verdict_text,
)
from nasforge.experiment.storage import MemoryStorage, Storage
from nasforge.report.compare import compare_pair, confidence_interval
from nasforge.space.base import SearchSpace
from nasforge.trial import Objective, Trial, TrialStatus
from nasforge.utils.rng import derive_seed

sys.path.insert(0, str(Path(__file__).resolve().parent))
from strategies_nb201 import fmt

METHODS = ("pipeline", "pipeline-half", "rea-full", "optuna", "baseline")
#: The settings of ``--smoke``: a run of about a minute that goes through every code path.
SMOKE = {"seeds": 2, "train_subset": 256, "val_subset": 128, "test_subset": 512, "epochs": 3,
         "min_epochs": 1, "budget": 9.0, "top_k": 2, "reeval_seeds": 1, "final_seeds": 1}


@dataclass(frozen=True)
class Settings:
    """Everything a worker needs to run one (method, seed) task (picklable)."""

    train_subset: int = 1500
    val_subset: int = 500
    test_subset: int | None = None
    C: int = 8
    N: int = 1
    batch_size: int = 64
    epochs: int = 9
    min_epochs: int = 1
    eta: float = 3.0
    budget: float = 108.0
    half_budget: float = 54.0
    scheduler: str = "asha"
    pruner: str | None = None
    top_k: int = 3
    reeval_seeds: int = 1
    final_seeds: int = 2
    final_epochs: int = 9
    #: Images of the official training split for the final training (0: as many as the search's
    #: training + validation parts, so the final stage costs what it did per image).
    final_subset: int = 0
    threads: int = 1

    def stage(self) -> FinalStage:
        """The final stage of every method (the baseline is trained separately, paired by seed)."""
        return FinalStage(top_k=self.top_k, reeval_seeds=self.reeval_seeds,
                          final_seeds=self.final_seeds, final_fidelity=self.final_epochs,
                          baseline=None)


@dataclass(frozen=True)
class Task:
    method: str
    seed: int
    settings: Settings


@dataclass
class SearchOutcome:
    """What a search leaves for the final stage (duck-types the parts of ``nasforge.Experiment``
    that :class:`FinalStageRunner` reads)."""

    space: SearchSpace
    evaluator: Evaluator
    trials: list[Trial]
    seed: int
    epochs_spent: float
    device: str = "cpu"
    objective: Objective = field(default_factory=Objective)
    storage: Storage = field(default_factory=MemoryStorage)


_EVALUATORS: dict[Settings, Evaluator] = {}  # one per process: the data is loaded once


def evaluator_for(s: Settings) -> Evaluator:
    ev = _EVALUATORS.get(s)
    if ev is None:
        ev = _EVALUATORS[s] = nasforge.create_evaluator(
            "train", dataset="fashion_mnist", train_subset=s.train_subset,
            val_subset=s.val_subset, test_subset=s.test_subset, epochs=s.epochs,
            batch_size=s.batch_size, build_kwargs={"C": s.C, "N": s.N},
            final_subset=s.final_subset or s.train_subset + s.val_subset)
    return ev


def worker_init(threads: int) -> None:
    torch.set_num_threads(threads)


# ---------------------------------------------------------------------------------- searches
def nasforge_search(s: Settings, seed: int, budget: float, scheduled: bool) -> SearchOutcome:
    """REA through ``nasforge.Experiment``: under the scheduler, or every trial at full epochs."""
    space = nasforge.create_space("nb201")
    evaluator = evaluator_for(s)
    strategy = nasforge.create_strategy("rea", space, seed=seed)
    if scheduled:
        extra: dict[str, Any] = {
            "scheduler": create_scheduler(s.scheduler, min_fidelity=s.min_epochs,
                                          max_fidelity=s.epochs, eta=s.eta),
            "pruner": create_pruner(s.pruner) if s.pruner else None}
    else:
        extra = {"fidelity": s.epochs}
    exp = nasforge.Experiment(space, strategy, evaluator,
                              budget=nasforge.Budget(max_fidelity=budget), storage=None,
                              seed=seed, device="cpu", **extra)
    exp.run()
    return SearchOutcome(space, evaluator, exp.trials, seed, exp.fidelity_spent)


def optuna_search(s: Settings, seed: int, budget: float) -> SearchOutcome:
    """Optuna TPE + HyperbandPruner on the same training, stopped once ``budget`` epochs are spent."""
    import optuna

    from nasforge.strategies.optuna_bridge import quiet_optuna, suggest_architecture

    space = nasforge.create_space("nb201")
    evaluator = evaluator_for(s).bind(space)
    spent = 0.0
    complete: list[Trial] = []
    counts = {"pruned": 0, "failed": 0}

    def objective(trial: optuna.Trial) -> float:
        nonlocal spent
        arch = suggest_architecture(trial, space)
        reported = 0

        def reporter(step: int, value: float) -> bool:
            nonlocal reported
            reported += 1  # one report per trained epoch
            trial.report(value, step)
            return trial.should_prune()

        ctx = EvalContext(seed=derive_seed(seed, trial.number), device="cpu", fidelity=s.epochs,
                          trial_number=trial.number, reporter=reporter)
        try:
            result = evaluator.evaluate(arch, ctx)
        except TrialPruned:
            spent += reported
            counts["pruned"] += 1
            raise optuna.TrialPruned() from None
        spent += float(result.info.get("epochs_trained", reported))
        if result.status is not TrialStatus.OK:
            counts["failed"] += 1
            return math.nan  # Optuna records a NaN objective as a failed trial
        complete.append(Trial(number=trial.number, arch=arch, status=TrialStatus.OK,
                              metrics=dict(result.metrics), cost=float(result.cost or 0.0),
                              seed=ctx.seed, fidelity=float(s.epochs)))
        return float(result.metrics["accuracy"])

    def stop_when_spent(study: optuna.Study, _: optuna.trial.FrozenTrial) -> None:
        if spent >= budget:
            study.stop()

    with quiet_optuna():
        # A fixed name: HyperbandPruner assigns brackets by hashing the study name with the
        # trial number, so Optuna's random default name would make runs irreproducible.
        study = optuna.create_study(
            study_name=f"fmnist-nb201-seed{seed}", direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed),
            pruner=optuna.pruners.HyperbandPruner(min_resource=s.min_epochs,
                                                  max_resource=s.epochs,
                                                  reduction_factor=int(s.eta)))
        study.optimize(objective, callbacks=[stop_when_spent])
    out = SearchOutcome(space, evaluator, complete, seed, spent)
    out.storage.set_meta("optuna", {"trials": len(study.trials), **counts})
    return out


# ---------------------------------------------------------------------------------- one task
def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w0, time.process_time() - c0


def run_task(task: Task) -> dict[str, Any]:
    """One search seed of one method: search, then the final stage (or the baseline's training)."""
    s, seed, method = task.settings, task.seed, task.method
    row: dict[str, Any] = {"method": method, "seed": seed}
    seeds = [derive_seed(seed, "final", j) for j in range(s.final_seeds)]
    if method == "baseline":
        space = nasforge.create_space("nb201")
        evaluator = evaluator_for(s).bind(space)
        ref = space.reference_architecture()
        assert ref is not None
        results, wall, cpu = timed(lambda: [evaluator.final_evaluate(ref, x, s.final_epochs)
                                            for x in seeds])
        values = [float(r.metrics["test_accuracy"]) for r in results]
        row.update(arch=space.to_string(ref), final_values=values, search_epochs=0.0, trials=0, top_trials=0,
                   stage_epochs=0.0, search_wall=0.0, search_cpu=0.0, final_wall=wall,
                   final_cpu=cpu, final_train_epochs=float(s.final_epochs * len(seeds)))
        row["test"] = float(np.mean(values))
        return row
    budget = s.half_budget if method == "pipeline-half" else s.budget

    def search() -> SearchOutcome:
        if method == "optuna":
            return optuna_search(s, seed, budget)
        return nasforge_search(s, seed, budget, scheduled=method != "rea-full")

    outcome, search_wall, search_cpu = timed(search)
    summary, final_wall, final_cpu = timed(lambda: FinalStageRunner(outcome, s.stage()).run())
    chosen = summary["final"]["chosen"]
    # Every candidate is re-evaluated at the highest fidelity among them (the list is in the
    # re-evaluation's ranking order, so a pick searched at a low rung can come first).
    top_fid = max(float(c["fidelity"]) for c in summary["candidates"])
    reeval = sum(c["reevaluated"]["n"] for c in summary["candidates"]) * top_fid
    trials = outcome.trials
    row.update(
        arch=chosen["arch"], final_values=chosen["values"], test=float(chosen["mean"]),
        search_value=summary["candidates"][0]["search_value"],
        search_fidelity=summary["candidates"][0]["fidelity"],
        search_epochs=float(outcome.epochs_spent),
        trials=len(trials), top_trials=sum(1 for t in trials if t.fidelity == s.epochs),
        stage_epochs=reeval, final_train_epochs=float(s.final_epochs * len(seeds)),
        search_wall=search_wall, search_cpu=search_cpu, final_wall=final_wall,
        final_cpu=final_cpu, candidates=summary["candidates"])
    optuna_meta = outcome.storage.get_meta("optuna")
    if optuna_meta:
        row["optuna"] = optuna_meta  # counts every Optuna trial, pruned and failed ones too
        row["trials"] = optuna_meta["trials"]
    return row


# ---------------------------------------------------------------------------------- statistics
def welch(a: list[float], b: list[float]) -> dict[str, Any] | None:
    """Difference of means, Welch's two-sided p and the 95% CI of the difference (None for n < 2)."""
    from scipy import stats

    if len(a) < 2 or len(b) < 2:
        return None
    test = compare_pair("a", a, "b", b)
    if np.ptp(np.concatenate([a, b])) == 0:
        low = high = 0.0
    else:
        ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
        low, high = float(ci.low), float(ci.high)
    return {"diff": test.mean_diff, "p": test.welch_p, "low": low, "high": high}


def judge(w: dict[str, Any] | None, goal: str) -> str:
    """Honest reading of a Welch comparison for goal ``"match"`` (>=) or ``"beat"`` (>)."""
    if w is None:
        return "n < 2 on a side: no test"
    significant = w["p"] < 0.05
    if significant and w["diff"] > 0:
        return "met: significantly better (p < 0.05)"
    if significant:
        return "MISSED: significantly worse (p < 0.05)"
    if goal == "beat":
        return "not shown: the difference is not significant"
    if w["diff"] >= 0:
        return "not contradicted: mean at least as high, difference not significant"
    return "not contradicted, but the mean is lower; difference not significant"


def summarize_method(label: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    x = [r["test"] for r in rows]
    low, high = confidence_interval(x)

    def mean(key: str) -> float:
        return float(np.mean([r[key] for r in rows]))

    return {
        "method": label, "n": len(x), "tests": x, "mean": float(np.mean(x)),
        "std": float(np.std(x, ddof=1)) if len(x) > 1 else 0.0, "median": float(np.median(x)),
        "min": float(np.min(x)), "max": float(np.max(x)), "ci_low": low, "ci_high": high,
        "text": fmt(x), "search_epochs": mean("search_epochs"), "trials": mean("trials"),
        "top_trials": mean("top_trials"), "stage_epochs": mean("stage_epochs"),
        "search_wall": mean("search_wall"), "search_cpu": mean("search_cpu"),
        "final_wall": mean("final_wall"), "final_cpu": mean("final_cpu"),
        "archs": [r["arch"] for r in rows],
    }


def versus_baseline(rows: list[dict[str, Any]], base: list[dict[str, Any]]) -> dict[str, Any]:
    """Paired (by search seed, each side the mean over the same final seeds) interval and verdict."""
    by_seed = {r["seed"]: r for r in base}
    pairs = [(r["test"], by_seed[r["seed"]]["test"]) for r in rows if r["seed"] in by_seed]
    diff = paired_interval([a for a, _ in pairs], [b for _, b in pairs], 0.95)
    same = all(r["arch"] == by_seed[r["seed"]]["arch"] for r in rows if r["seed"] in by_seed)
    outcome, text = verdict_text(diff, 0.95, same, False)
    return {"difference": diff, "outcome": outcome, "text": text}


# ---------------------------------------------------------------------------------- output
def print_table(stats: dict[str, dict[str, Any]], labels: dict[str, str]) -> None:
    head = (f"{'method':24s} {'test acc %':>14s} {'95% CI':>13s} {'median':>6s} {'range':>11s} "
            f"{'epochs':>6s} {'trials':>6s} {'@top':>5s} {'fs ep':>5s} {'wall s':>7s} "
            f"{'CPU s':>7s} {'final w':>7s} {'final C':>7s}")
    print(head)
    print("-" * len(head))
    for m, r in sorted(stats.items(), key=lambda kv: -kv[1]["mean"]):
        ci = (f"{r['ci_low']:5.2f}-{r['ci_high']:5.2f}" if r["n"] > 1 else f"{'n=1':>11s}")
        print(f"{labels[m]:24s} {r['text']:>14s} {ci:>13s} {r['median']:6.2f} "
              f"{r['min']:5.2f}-{r['max']:5.2f} {r['search_epochs']:6.1f} {r['trials']:6.1f} "
              f"{r['top_trials']:5.1f} {r['stage_epochs']:5.0f} {r['search_wall']:7.1f} "
              f"{r['search_cpu']:7.1f} {r['final_wall']:7.1f} {r['final_cpu']:7.1f}")


def comparisons(stats: dict[str, dict[str, Any]], labels: dict[str, str],
                rows: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The issue's goals, then every method against the baseline."""
    plan = [("pipeline-half", "rea-full", "match",
             "goal: the pipeline at half the epochs matches or beats full-training REA"),
            ("pipeline", "optuna", "beat",
             "goal: the pipeline beats Optuna TPE + Hyperband at the same epochs"),
            ("pipeline", "rea-full", "match", "the pipeline against full-training REA, same epochs"),
            ("pipeline-half", "optuna", "match",
             "the pipeline at half the epochs against Optuna TPE + Hyperband")]
    out = []
    for a, b, goal, title in plan:
        if a not in stats or b not in stats:
            continue
        w = welch(stats[a]["tests"], stats[b]["tests"])
        out.append({"a": a, "b": b, "goal": goal, "title": title, "welch": w,
                    "reading": judge(w, goal)})
    if "baseline" in rows:
        for m in stats:
            if m != "baseline":
                out.append({"a": m, "b": "baseline", "title": f"{labels[m]} vs the ResNet cell",
                            **versus_baseline(rows[m], rows["baseline"])})
    return out


def print_comparisons(items: list[dict[str, Any]], labels: dict[str, str]) -> None:
    for c in items:
        if "welch" in c:
            w = c["welch"]
            nums = ("" if w is None else f"{labels[c['a']]} - {labels[c['b']]} = "
                    f"{w['diff']:+.2f} points, 95% CI [{w['low']:+.2f}, {w['high']:+.2f}], "
                    f"Welch p = {w['p']:.3g}")
            print(f"* {c['title']}:\n    {nums}\n    -> {c['reading']}")
        else:
            print(f"* {c['title']} (paired by seed): {c['text']}")


# ---------------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, Settings, list[str]]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    d = Settings()
    p.add_argument("--smoke", action="store_true",
                   help="tiny settings to check that everything runs (about a minute): "
                        + ", ".join(f"{k}={v}" for k, v in SMOKE.items()))
    p.add_argument("--seeds", type=int, default=3, help="search seeds per method (default 3)")
    p.add_argument("--jobs", type=int, default=2, help="worker processes (1: this process)")
    p.add_argument("--threads", type=int, default=d.threads, help="torch threads per process")
    p.add_argument("--methods", default=",".join(METHODS), help=f"from: {', '.join(METHODS)}")
    p.add_argument("--train-subset", type=int, default=d.train_subset)
    p.add_argument("--val-subset", type=int, default=d.val_subset)
    p.add_argument("--test-subset", type=int, default=0,
                   help="images of the official test split (0: all 10,000; default)")
    p.add_argument("--C", type=int, default=d.C, help="NB201 network width (default 8)")
    p.add_argument("--N", type=int, default=d.N, help="cells per stage (default 1)")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--epochs", type=int, default=d.epochs,
                   help="top fidelity: REA's and Optuna's epochs per trial, the top rung")
    p.add_argument("--min-epochs", type=int, default=d.min_epochs, help="lowest rung")
    p.add_argument("--eta", type=float, default=d.eta, help="reduction factor (default 3)")
    p.add_argument("--budget", type=float, default=d.budget,
                   help="search budget in training epochs (default 108: 12 full trainings)")
    p.add_argument("--half-budget", type=float, default=None,
                   help="budget of pipeline-half (default --budget / 2)")
    p.add_argument("--scheduler", default=d.scheduler,
                   choices=["asha", "hyperband", "sh", "bohb"], help="the pipeline's scheduler")
    p.add_argument("--pruner", default=None, choices=["median", "percentile", "threshold"],
                   help="also prune inside the pipeline's rungs (default: none)")
    p.add_argument("--top-k", type=int, default=d.top_k)
    p.add_argument("--reeval-seeds", type=int, default=d.reeval_seeds)
    p.add_argument("--final-seeds", type=int, default=d.final_seeds)
    p.add_argument("--final-epochs", type=int, default=None,
                   help="epochs of the final training on train+val (default --epochs)")
    p.add_argument("--final-subset", type=int, default=0,
                   help="images of the training split for the final training (default: "
                   "train-subset + val-subset)")
    p.add_argument("--json", default=None, help="also write the results to this file")
    p.add_argument("--runs", default=None,
                   help="append each finished (method, seed) run to this JSON-lines file and skip "
                        "the runs it already holds for the same settings (a long run survives "
                        "being stopped: rerun the same command to continue)")
    if p.parse_args(argv).smoke:  # the smoke settings are defaults: explicit flags still win
        p.set_defaults(**SMOKE)
    args = p.parse_args(argv)
    methods = args.methods.split(",")
    bad = [m for m in methods if m not in METHODS]
    if bad:
        p.error(f"unknown method(s) {bad}; allowed: {', '.join(METHODS)}")
    if args.seeds < 1:
        p.error("--seeds must be >= 1")
    settings = Settings(
        train_subset=args.train_subset, val_subset=args.val_subset,
        test_subset=args.test_subset or None, C=args.C, N=args.N, batch_size=args.batch_size,
        epochs=args.epochs, min_epochs=args.min_epochs, eta=args.eta, budget=args.budget,
        half_budget=args.half_budget if args.half_budget is not None else args.budget / 2,
        scheduler=args.scheduler, pruner=args.pruner, top_k=args.top_k,
        reeval_seeds=args.reeval_seeds, final_seeds=args.final_seeds,
        final_epochs=args.final_epochs or args.epochs, final_subset=args.final_subset,
        threads=args.threads)
    settings.stage()  # bad final-stage settings fail here, not in a worker
    return args, settings, methods


def load_runs(path: str, s: Settings) -> list[dict[str, Any]]:
    """The runs a ``--runs`` file holds for these settings (other settings' lines are ignored)."""
    if not os.path.exists(path):
        return []
    want = asdict(s)
    runs = []
    with open(path) as f:
        for line in f:
            if line.strip():
                rec = json.loads(line)
                if rec.pop("settings", None) == want:
                    runs.append(rec)
    return runs


def task_weight(t: Task) -> float:
    """Rough epochs of a task, to start the longest first."""
    s = t.settings
    final = s.final_seeds * s.final_epochs * (s.train_subset + s.val_subset) / s.train_subset
    search = {"baseline": 0.0, "pipeline-half": s.half_budget}.get(t.method, s.budget)
    reeval = 0.0 if t.method == "baseline" else s.top_k * s.reeval_seeds * s.epochs
    return search + reeval + final


def main(argv: list[str] | None = None) -> None:
    args, s, methods = parse_args(argv)
    labels = {"pipeline": f"{s.scheduler}+REA @ {s.budget:g} ep",
              "pipeline-half": f"{s.scheduler}+REA @ {s.half_budget:g} ep",
              "rea-full": f"REA full @ {s.budget:g} ep",
              "optuna": f"Optuna TPE+HB @ {s.budget:g} ep",
              "baseline": "ResNet cell (reference)"}
    # Seed by seed (longest first within a seed), so a run stopped early (see --runs) holds
    # every method for its first seeds rather than a few methods for all of them.
    tasks = sorted((Task(m, seed, s) for m in methods for seed in range(args.seeds)),
                   key=lambda t: (t.seed, -task_weight(t)))
    done: list[dict[str, Any]] = load_runs(args.runs, s) if args.runs else []
    done = [r for r in done if r["method"] in methods and r["seed"] < args.seeds]
    finished = {(r["method"], r["seed"]) for r in done}
    tasks = [t for t in tasks if (t.method, t.seed) not in finished]
    if finished:
        print(f"{len(finished)} run(s) already in {args.runs}", flush=True)
    print(f"{len(tasks)} runs ({', '.join(methods)} x {args.seeds} seeds) on {args.jobs} "
          f"process(es), {s.threads} torch thread(s) each", flush=True)
    t0 = time.perf_counter()

    def report(r: dict[str, Any]) -> None:
        if args.runs:
            with open(args.runs, "a") as f:
                f.write(json.dumps({"settings": asdict(s), **r}) + "\n")
        print(f"  {r['method']:14s} seed {r['seed']}: test {r['test']:.2f}%, "
              f"{r['search_epochs']:.0f} search epochs, "
              f"{r['search_wall'] + r['final_wall']:.0f} s wall  {r['arch']}", flush=True)

    if args.jobs > 1:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(args.jobs, initializer=worker_init, initargs=(s.threads,)) as pool:
            for r in pool.imap_unordered(run_task, tasks):
                report(r)
                done.append(r)
    else:
        worker_init(s.threads)
        for t in tasks:
            r = run_task(t)
            report(r)
            done.append(r)
    wall = time.perf_counter() - t0
    cpu = sum(r["search_cpu"] + r["final_cpu"] for r in done)

    rows = {m: sorted((r for r in done if r["method"] == m), key=lambda r: r["seed"])
            for m in methods}
    stats = {m: summarize_method(labels[m], rows[m]) for m in methods}
    # Training image-epochs, to size other runs: search and re-evaluation on the training part,
    # final trainings on training + validation (validation and test passes ride along).
    image_epochs = sum((r["search_epochs"] + r["stage_epochs"]) * s.train_subset
                       + r["final_train_epochs"] * (s.train_subset + s.val_subset) for r in done)
    ms = 1e3 * cpu / image_epochs if image_epochs else math.nan

    print(f"\nFashion-MNIST, NB201 cells (C={s.C}, N={s.N}), {s.train_subset} train / "
          f"{s.val_subset} val images, test: {s.test_subset or 'all 10,000'} official test images; "
          f"batch {s.batch_size}; top fidelity {s.epochs} epochs, {s.scheduler} rungs from "
          f"{s.min_epochs} with eta {s.eta:g}{f', pruner {s.pruner}' if s.pruner else ''}.")
    print(f"Final stage for every search: top-{s.top_k} re-evaluated with {s.reeval_seeds} fresh "
          f"seed(s) at the top fidelity, pick trained {s.final_epochs} epochs on "
          f"{s.final_subset or s.train_subset + s.val_subset} training images with "
          f"{s.final_seeds} seed(s), tested once; the baseline trained the same way with the same "
          f"seeds. {args.seeds} search seeds; {wall:.0f} s wall, {cpu:.0f} s CPU in the runs "
          f"({ms:.2f} ms CPU per training image-epoch).")
    print("test acc: final test accuracy of the pick (mean over final seeds) per search seed, "
          "mean +- std over search seeds; epochs: search epochs spent (mean); trials: mean; @top: "
          "trials trained to the top fidelity; fs ep: the final stage's re-evaluation epochs (not "
          "in the budget); wall s / CPU s: search, per run; final w / final C: the final stage.\n")
    print_table(stats, labels)
    print()
    items = comparisons(stats, labels, rows)
    print_comparisons(items, labels)
    if args.seeds < 5:
        print(f"\n(With {args.seeds} seeds per method only large differences are detectable; "
              "a CI that straddles zero does not show the methods are equal.)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"settings": asdict(s), "seeds": args.seeds, "jobs": args.jobs,
                       "smoke": args.smoke, "cpus": os.cpu_count(), "wall_s": wall, "cpu_s": cpu,
                       "cpu_ms_per_image_epoch": ms, "labels": labels, "methods": stats,
                       "comparisons": items, "runs": done}, f, indent=1)
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
