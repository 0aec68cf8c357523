"""Compare search strategies on a tabular benchmark, with honest statistics.

The protocol is NAS-Bench-201's (Dong & Yang, ICLR 2020, section 5): each run searches on the
12-epoch validation accuracy (``accuracy``), is charged each query's simulated training time, stops
once 12,000 simulated seconds are spent (the query that crosses the limit still counts) and reports
the test accuracy (``test_accuracy``, 200 epochs) of the architecture with the best search signal.
Runs use the public loop (``nasforge.Experiment`` with in-memory storage), one per seed, spread
over a pool of processes. A trial budget ("after N queries") is supported as well.

Per strategy we give mean, sample standard deviation, median, best, worst, a t-based 95% confidence
interval of the mean and the number of queries; strategies are ranked by mean, and the top two are
compared with Welch's t-test and the Mann-Whitney U test (two-sided).
"""

from __future__ import annotations

import math
import multiprocessing
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nasforge.errors import ConfigError, allowed
from nasforge.experiment import Budget, Experiment
from nasforge.registry import EVALUATORS, SPACES, STRATEGIES

#: Benchmark name -> (space, evaluator) registered names.
BENCHMARKS: dict[str, tuple[str, str]] = {"nb201": ("nb201", "nb201")}


@dataclass(frozen=True)
class Protocol:
    """How each run is set up and scored (defaults: NAS-Bench-201's CIFAR-10 protocol)."""

    benchmark: str = "nb201"
    data: str | None = None
    dataset: str = "cifar10"
    fidelity: int = 12
    max_cost: float | None = 12_000.0
    max_trials: int | None = None
    signal: str = "accuracy"
    report: str = "test_accuracy"

    def __post_init__(self) -> None:
        if self.benchmark not in BENCHMARKS:
            raise ConfigError(
                f"unknown benchmark {self.benchmark!r}; allowed: {allowed(BENCHMARKS)}"
            )
        self.budget()  # validates the limits

    def budget(self) -> Budget:
        """The per-run budget."""
        return Budget(max_trials=self.max_trials, max_cost=self.max_cost)

    def make_evaluator(self) -> Any:
        """The benchmark's evaluator. It charges simulated cost whenever the data has training
        times; without them only a trial budget is possible (a cost budget fails clearly)."""
        _, name = BENCHMARKS[self.benchmark]
        options = {"data": self.data, "dataset": self.dataset, "fidelity": self.fidelity}
        evaluator = EVALUATORS.create(name, charge_cost=False, **options)
        if self.max_cost is not None or evaluator.table.has_cost(evaluator.dataset):
            evaluator = EVALUATORS.create(name, charge_cost=True, **options)
        return evaluator


@dataclass(frozen=True)
class RunResult:
    """One seed of one strategy."""

    strategy: str
    seed: int
    #: Reported metric (test accuracy) of the architecture with the best search signal.
    final: float
    signal: float
    arch: str
    queries: int
    cost: float
    #: Cumulative cost after each trial, and the incumbent's reported metric after each trial.
    costs: tuple[float, ...] = field(repr=False)
    incumbent: tuple[float, ...] = field(repr=False)
    #: Distinct architectures among the queries (``queries - distinct`` repeats were charged).
    distinct: int | None = None


def _strategy_key(name: str, options: Mapping[str, Any]) -> str:
    if not options:
        return name
    return name + "(" + ",".join(f"{k}={v}" for k, v in options.items()) + ")"


# Evaluators are built once per process: loading the table is the expensive part.
_EVALUATORS: dict[Protocol, Any] = {}


def run_one(strategy: str, seed: int, protocol: Protocol,
            options: Mapping[str, Any] | None = None) -> RunResult:
    """Run ``strategy`` with ``seed`` under ``protocol`` through :class:`nasforge.Experiment`."""
    space_name, _ = BENCHMARKS[protocol.benchmark]
    evaluator = _EVALUATORS.get(protocol)
    if evaluator is None:
        evaluator = _EVALUATORS[protocol] = protocol.make_evaluator()
    space = SPACES.create(space_name)
    strat = STRATEGIES.create(strategy, space, seed=seed, objectives=protocol.signal,
                              **dict(options or {}))
    exp = Experiment(space, strat, evaluator, budget=protocol.budget(), objectives=protocol.signal,
                     storage=None, seed=seed, device="cpu")
    exp.run()
    costs: list[float] = []
    incumbent: list[float] = []
    total = 0.0
    best_signal = -math.inf
    best_report = math.nan
    best_arch = ""
    for t in exp.trials:  # in trial-number order, which is evaluation order for the inline executor
        total += t.cost
        sig = t.value(protocol.signal)
        if t.ok and sig is not None and sig > best_signal:  # strict: the earliest wins ties
            best_signal = sig
            best_report = float(t.metrics.get(protocol.report, math.nan))
            best_arch = str(t.info.get("arch", t.arch.to_json()))
        costs.append(total)
        incumbent.append(best_report)
    return RunResult(strategy=_strategy_key(strategy, options or {}), seed=seed, final=best_report,
                     signal=best_signal, arch=best_arch, queries=len(costs), cost=total,
                     costs=tuple(costs), incumbent=tuple(incumbent),
                     distinct=len({t.arch for t in exp.trials}))


def _run_task(task: tuple[str, int, Protocol, dict[str, Any]]) -> RunResult:
    name, seed, protocol, options = task
    return run_one(name, seed, protocol, options)


# ---------------------------------------------------------------------------------- statistics
def confidence_interval(
    values: Sequence[float] | np.ndarray, confidence: float = 0.95
) -> tuple[float, float]:
    """Two-sided t-distribution confidence interval of the mean (NaNs for fewer than 2 values)."""
    from scipy import stats

    x = np.asarray(values, dtype=float)
    n = x.size
    mean = float(x.mean()) if n else math.nan
    if n < 2:
        return (mean, mean) if n == 1 else (math.nan, math.nan)
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * float(x.std(ddof=1)) / math.sqrt(n)
    return mean - half, mean + half


@dataclass(frozen=True)
class MethodStats:
    """Summary of one strategy's runs (``std`` is the sample standard deviation, ddof=1)."""

    strategy: str
    runs: int
    mean: float
    std: float
    median: float
    best: float
    worst: float
    ci_low: float
    ci_high: float
    queries_mean: float
    queries_min: int
    queries_max: int
    cost_mean: float
    rank: int = 0


def summarize(strategy: str, runs: Sequence[RunResult], confidence: float = 0.95) -> MethodStats:
    """Statistics of ``runs`` (all of one strategy)."""
    if not runs:
        raise ConfigError(f"no runs to summarize for strategy {strategy!r}")
    x = np.array([r.final for r in runs], dtype=float)
    q = np.array([r.queries for r in runs])
    lo, hi = confidence_interval(x, confidence)
    return MethodStats(
        strategy=strategy, runs=x.size, mean=float(x.mean()),
        std=float(x.std(ddof=1)) if x.size > 1 else 0.0, median=float(np.median(x)),
        best=float(x.max()), worst=float(x.min()), ci_low=lo, ci_high=hi,
        queries_mean=float(q.mean()), queries_min=int(q.min()), queries_max=int(q.max()),
        cost_mean=float(np.mean([r.cost for r in runs])),
    )


@dataclass(frozen=True)
class PairTest:
    """Two-sided tests of "strategies ``a`` and ``b`` report the same accuracy"."""

    a: str
    b: str
    mean_diff: float
    welch_t: float
    welch_p: float
    mannwhitney_u: float
    mannwhitney_p: float


def compare_pair(a: str, xa: Sequence[float], b: str, xb: Sequence[float]) -> PairTest:
    """Welch's t-test (unequal variances) and Mann-Whitney U between two samples (scipy)."""
    from scipy import stats

    va, vb = np.asarray(xa, dtype=float), np.asarray(xb, dtype=float)
    if va.size < 2 or vb.size < 2:
        raise ConfigError(f"a test between {a!r} and {b!r} needs at least 2 runs of each "
                          f"(got {va.size} and {vb.size})")
    if np.ptp(np.concatenate([va, vb])) == 0:
        t, pt = 0.0, 1.0  # identical samples: no evidence of a difference (scipy would give NaN)
    else:
        welch = stats.ttest_ind(va, vb, equal_var=False)
        t, pt = float(welch.statistic), float(welch.pvalue)
    mwu = stats.mannwhitneyu(va, vb, alternative="two-sided")
    return PairTest(a=a, b=b, mean_diff=float(va.mean() - vb.mean()), welch_t=t, welch_p=pt,
                    mannwhitney_u=float(mwu.statistic), mannwhitney_p=float(mwu.pvalue))


# ---------------------------------------------------------------------------------- anytime curves
@dataclass(frozen=True)
class AnytimeCurves:
    """Mean over seeds of the incumbent's reported metric on a common grid.

    ``axis`` is ``"cost"`` (simulated seconds) or ``"queries"``. Before a run's first trial ends its
    value is missing; ``count[i]`` says how many runs have a value at ``grid[i]``.
    """

    axis: str
    grid: np.ndarray
    mean: dict[str, np.ndarray]
    sem: dict[str, np.ndarray]
    count: dict[str, np.ndarray]


def _curve_on_grid(run: RunResult, grid: np.ndarray, axis: str) -> np.ndarray:
    xs = np.asarray(run.costs) if axis == "cost" else np.arange(1, run.queries + 1, dtype=float)
    ys = np.asarray(run.incumbent, dtype=float)
    # Value at x is the incumbent after the last trial finished at or before x.
    pos = np.searchsorted(xs, grid, side="right") - 1
    out = np.full(grid.shape, np.nan)
    ok = pos >= 0
    out[ok] = ys[pos[ok]]
    return out


def anytime_curves(runs: Mapping[str, Sequence[RunResult]], axis: str = "cost",
                   points: int = 121, limit: float | None = None) -> AnytimeCurves:
    """Best-so-far reported metric (of the best-by-signal architecture) against cost or queries."""
    if axis not in ("cost", "queries"):
        raise ConfigError(f"unknown anytime axis {axis!r}; allowed: 'cost', 'queries'")
    all_runs = [r for rs in runs.values() for r in rs]
    if not all_runs:
        raise ConfigError("no runs to draw curves for")
    if limit is None:
        limit = max(r.cost if axis == "cost" else r.queries for r in all_runs)
    if axis == "cost":
        grid = np.linspace(0.0, float(limit), points)
    else:
        grid = np.arange(1, int(limit) + 1, dtype=float)
    mean: dict[str, np.ndarray] = {}
    sem: dict[str, np.ndarray] = {}
    count: dict[str, np.ndarray] = {}
    for name, rs in runs.items():
        mat = np.vstack([_curve_on_grid(r, grid, axis) for r in rs])
        n = np.sum(~np.isnan(mat), axis=0)
        total = np.nansum(mat, axis=0)
        m = np.divide(total, n, out=np.full(grid.shape, np.nan), where=n > 0)
        dev = np.where(np.isnan(mat), 0.0, mat - m) ** 2
        var = np.divide(dev.sum(axis=0), n - 1, out=np.full(grid.shape, np.nan), where=n > 1)
        mean[name] = m
        sem[name] = np.sqrt(var / np.maximum(n, 1))
        count[name] = n
    return AnytimeCurves(axis=axis, grid=grid, mean=mean, sem=sem, count=count)


def plot_anytime(curves: AnytimeCurves, path: str | os.PathLike[str], title: str = "") -> Path:
    """Save the curves as a PNG (mean and a 95% band of the mean) with matplotlib's Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.figure import Figure

    fig: Figure = plt.figure(figsize=(7, 4.5))
    try:
        ax = fig.add_subplot(1, 1, 1)
        for name, m in curves.mean.items():
            band = 1.96 * curves.sem[name]
            (line,) = ax.plot(curves.grid, m, label=name)
            ax.fill_between(curves.grid, m - band, m + band, alpha=0.2, color=line.get_color())
        ax.set_xlabel("simulated training seconds" if curves.axis == "cost" else "queries")
        ax.set_ylabel("test accuracy (%) of the best-by-signal arch")
        finite = np.concatenate([m[np.isfinite(m)] for m in curves.mean.values()])
        if finite.size:  # start the y axis where the curves get interesting, not at the first query
            lo = float(np.percentile(finite, 5))
            hi = float(finite.max())
            ax.set_ylim(lo - 0.1 * (hi - lo + 1e-9), hi + 0.1 * (hi - lo + 1e-9))
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
        if title:
            ax.set_title(title)
        fig.tight_layout()
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=120)
    finally:
        plt.close(fig)
    return out


# ---------------------------------------------------------------------------------- comparison
@dataclass
class Comparison:
    """All runs of several strategies under one protocol, with their statistics."""

    protocol: Protocol
    runs: dict[str, list[RunResult]]
    options: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def stats(self) -> list[MethodStats]:
        """Per-strategy statistics, best mean first, with ``rank`` set (1 = best)."""
        rows = [summarize(name, rs) for name, rs in self.runs.items()]
        rows.sort(key=lambda s: -s.mean)
        return [MethodStats(**{**asdict(s), "rank": i + 1}) for i, s in enumerate(rows)]

    def test_top_two(self) -> PairTest | None:
        """Welch's t and Mann-Whitney U between the two best strategies (None if < 2 strategies)."""
        ranked = self.stats
        if len(ranked) < 2 or min(ranked[0].runs, ranked[1].runs) < 2:
            return None
        a, b = ranked[0].strategy, ranked[1].strategy
        return compare_pair(a, [r.final for r in self.runs[a]], b, [r.final for r in self.runs[b]])

    def anytime(self, points: int = 121) -> AnytimeCurves:
        """Anytime curves on the protocol's budget axis."""
        p = self.protocol
        if p.max_cost is not None:
            return anytime_curves(self.runs, "cost", points, p.max_cost)
        return anytime_curves(self.runs, "queries", points, p.max_trials)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary: protocol, per-strategy statistics, the test and per-seed results."""
        test = self.test_top_two()
        return {
            "protocol": asdict(self.protocol),
            "methods": [asdict(s) for s in self.stats],
            "test": None if test is None else asdict(test),
            "runs": {name: [{"seed": r.seed, "final": r.final, "signal": r.signal, "arch": r.arch,
                             "queries": r.queries, "cost": r.cost} for r in rs]
                     for name, rs in self.runs.items()},
            "options": self.options,
            # The mean anytime curves, so reports can draw them from the JSON alone.
            "anytime": _anytime_dict(self.anytime()),
        }


def _anytime_dict(curves: AnytimeCurves) -> dict[str, Any]:
    """JSON form of :class:`AnytimeCurves` (NaN, before a run's first result, becomes null)."""

    def floats(a: np.ndarray) -> list[float | None]:
        return [float(v) if math.isfinite(v) else None for v in a.tolist()]

    return {"axis": curves.axis, "grid": floats(curves.grid),
            "mean": {k: floats(v) for k, v in curves.mean.items()},
            "sem": {k: floats(v) for k, v in curves.sem.items()},
            "count": {k: [int(n) for n in v.tolist()] for k, v in curves.count.items()}}


def compare(
    strategies: Sequence[str],
    seeds: int | Iterable[int],
    protocol: Protocol | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    jobs: int = 2,
    on_run: Callable[[RunResult], None] | None = None,
) -> Comparison:
    """Run every strategy for every seed and collect the results.

    ``seeds`` is a count (seeds 0..N-1) or the seeds themselves; ``options[name]`` are keyword
    options of strategy ``name``; ``jobs`` processes run seeds in parallel (1: in this process).
    The result does not depend on ``jobs``. ``on_run`` is called in this process after each run.
    """
    protocol = protocol if protocol is not None else Protocol()
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list:
        raise ConfigError("at least one seed is needed")
    if not strategies:
        raise ConfigError(
            f"at least one strategy is needed; allowed: {allowed(STRATEGIES.names())}"
        )
    if len(set(strategies)) != len(strategies):
        raise ConfigError(f"strategies are listed more than once: {list(strategies)}")
    if jobs < 1:
        raise ConfigError(f"jobs must be >= 1, got {jobs}")
    opts = {name: dict((options or {}).get(name, {})) for name in strategies}
    unused = set(options or {}) - set(strategies)
    if unused:
        raise ConfigError(
            f"options given for strategies that are not compared: {allowed(sorted(unused))}"
        )
    # Fail here, with one clear message, rather than in every worker.
    space = SPACES.create(BENCHMARKS[protocol.benchmark][0])
    for name in strategies:
        STRATEGIES.create(name, space, seed=0, **opts[name])
    _EVALUATORS[protocol] = protocol.make_evaluator()

    tasks = [(name, seed, protocol, opts[name]) for name in strategies for seed in seed_list]
    results: list[RunResult] = []
    if jobs == 1:
        for task in tasks:
            results.append(_run_task(task))
            if on_run is not None:
                on_run(results[-1])
    else:
        # spawn: safe with threads and torch in the parent, and the same on every OS.
        ctx = multiprocessing.get_context("spawn")
        chunk = max(1, min(25, len(tasks) // (jobs * 8)))
        with ctx.Pool(processes=min(jobs, len(tasks))) as pool:
            for res in pool.imap_unordered(_run_task, tasks, chunksize=chunk):
                results.append(res)
                if on_run is not None:
                    on_run(res)
    keys = {name: _strategy_key(name, opts[name]) for name in strategies}
    runs: dict[str, list[RunResult]] = {keys[name]: [] for name in strategies}
    for r in results:
        runs[r.strategy].append(r)
    for rs in runs.values():
        rs.sort(key=lambda r: r.seed)
    return Comparison(protocol=protocol, runs=runs, options={keys[n]: opts[n] for n in strategies})


__all__ = [
    "BENCHMARKS",
    "AnytimeCurves",
    "Comparison",
    "MethodStats",
    "PairTest",
    "Protocol",
    "RunResult",
    "anytime_curves",
    "compare",
    "compare_pair",
    "confidence_interval",
    "plot_anytime",
    "run_one",
    "summarize",
]
