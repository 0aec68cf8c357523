"""``nasforge bench``: compare search strategies on a tabular benchmark over many seeds.

Example (NAS-Bench-201's protocol, 500 runs each)::

    nasforge bench --benchmark nb201 --data /path/to/nb201 --dataset cifar10 \\
        --strategies random,rea --seeds 500 --budget-seconds 12000
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from rich import box
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from nasforge.cli.common import console, print_result, write_json
from nasforge.cli.yaml_flags import add_config_flag, apply_config
from nasforge.config import parse_option
from nasforge.errors import ConfigError
from nasforge.registry import STRATEGIES
from nasforge.report.compare import (
    BENCHMARKS,
    Comparison,
    Protocol,
    RunResult,
    compare,
    plot_anytime,
)

# Defaults of the flags a --config file may set (the flags themselves default to None).
_DEFAULTS = {"benchmark": "nb201", "dataset": "cifar10", "fidelity": 12,
             "strategies": "random,rea", "seeds": 100, "jobs": 2}


def register(sub: Any) -> None:
    """Add the ``bench`` subcommand."""
    p: argparse.ArgumentParser = sub.add_parser(
        "bench",
        help="compare search strategies on a tabular benchmark over many seeds",
        description="Run each strategy once per seed on a tabular benchmark (simulated training "
        "cost), then report mean, std, 95% confidence interval, median, best, worst and queries "
        "per strategy, the ranking, and Welch's t / Mann-Whitney U tests between the top two. "
        "Defaults follow NAS-Bench-201's protocol: search on 12-epoch validation accuracy, stop at "
        "12,000 simulated seconds, report the 200-epoch test accuracy of the best-by-validation "
        "architecture.",
    )
    p.add_argument("--benchmark", choices=sorted(BENCHMARKS),
                   help="tabular benchmark (default nb201)")
    p.add_argument("--data", metavar="PATH",
                   help="benchmark data: directory with nb201.csv or the NATS-Bench files "
                   "(default $NASFORGE_NB201)")
    p.add_argument("--dataset", help="cifar10 (default), cifar100 or imagenet16")
    p.add_argument("--fidelity", type=int, metavar="EPOCHS",
                   help="epochs behind the search signal: 12 (default) or 200")
    p.add_argument("--strategies", metavar="A,B,...",
                   help="comma-separated strategy names (default random,rea)")
    p.add_argument("--seeds", type=int, metavar="N",
                   help="runs per strategy, seeds 0..N-1 (default 100)")
    p.add_argument("--budget-seconds", type=float, metavar="S",
                   help="simulated training seconds per run "
                   "(default 12000 unless --budget-trials is given)")
    p.add_argument("--budget-trials", type=int, metavar="N", help="queries per run (e.g. 100)")
    p.add_argument("--strategy-option", action="append", metavar="NAME.KEY=VALUE",
                   help="option of one strategy, e.g. rea.population_size=20 (repeatable)")
    p.add_argument("--jobs", type=int, metavar="K",
                   help="parallel processes (default 2)")
    p.add_argument("--json", nargs="?", const="-", metavar="FILE",
                   help="write the results as JSON to FILE (stdout if no FILE)")
    p.add_argument("--plot", metavar="OUT.png",
                   help="save the anytime curves (mean over seeds) as a PNG")
    p.add_argument("--quiet", action="store_true", help="no progress bar or tables")
    add_config_flag(p)
    p.set_defaults(func=run)


def parse_strategy_options(
    items: list[str] | None, strategies: list[str]
) -> dict[str, dict[str, Any]]:
    """``["rea.population_size=20"]`` -> ``{"rea": {"population_size": 20}}``."""
    out: dict[str, dict[str, Any]] = {}
    for item in items or []:
        name, sep, rest = item.partition(".")
        if not sep or "=" not in rest or "=" in name:
            raise ConfigError(
                f"strategy option {item!r} must look like NAME.KEY=VALUE, "
                "e.g. rea.population_size=20"
            )
        if name not in strategies:
            raise ConfigError(
                f"strategy option {item!r} is for {name!r}, which is not among --strategies "
                f"({', '.join(strategies)})"
            )
        key, value = parse_option(rest)
        out.setdefault(name, {})[key] = value
    return out


def _protocol(args: argparse.Namespace) -> Protocol:
    if args.seeds is None or args.seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {args.seeds}")
    max_cost = args.budget_seconds
    if max_cost is None and args.budget_trials is None:
        max_cost = 12_000.0
    return Protocol(benchmark=args.benchmark, data=args.data, dataset=args.dataset,
                    fidelity=args.fidelity, max_cost=max_cost, max_trials=args.budget_trials)


def _fmt(x: float, digits: int = 2) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def _print(comp: Comparison) -> None:
    p = comp.protocol
    limits = []
    if p.max_cost is not None:
        limits.append(f"{p.max_cost:g} simulated s")
    if p.max_trials is not None:
        limits.append(f"{p.max_trials} queries")
    table = Table(title=f"{p.benchmark} {p.dataset}: search on {p.signal} @ {p.fidelity} epochs, "
                  f"budget {' or '.join(limits)}, report {p.report}",
                  box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1), collapse_padding=True)
    for col in ("rank", "strategy", "runs", "mean", "std", "95% CI", "median", "best", "worst",
                "queries"):
        table.add_column(col, justify="left" if col == "strategy" else "right", no_wrap=True)
    for s in comp.stats:
        table.add_row(str(s.rank), s.strategy, str(s.runs), _fmt(s.mean), _fmt(s.std),
                      f"{_fmt(s.ci_low)}-{_fmt(s.ci_high)}", _fmt(s.median), _fmt(s.best),
                      _fmt(s.worst), f"{s.queries_mean:.1f}")
    print_result(table)
    test = comp.test_top_two()
    if test is not None:
        print_result(
            f"{test.a} vs {test.b}: difference of means {test.mean_diff:+.3f}; "
            f"Welch's t = {test.welch_t:.3f}, p = {test.welch_p:.3g}; "
            f"Mann-Whitney U = {test.mannwhitney_u:.1f}, p = {test.mannwhitney_p:.3g} (two-sided)"
        )


def run(args: argparse.Namespace) -> int:
    """Run the bench command."""
    apply_config(args, _DEFAULTS)
    strategies = [s.strip() for s in str(args.strategies).split(",") if s.strip()]
    if not strategies:
        raise ConfigError(f"--strategies is empty; allowed: {', '.join(STRATEGIES.names())}")
    for name in strategies:
        STRATEGIES.get(name)  # unknown name -> error listing the registered strategies
    options = parse_strategy_options(args.strategy_option, strategies)
    if args.jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {args.jobs}")
    protocol = _protocol(args)
    quiet = args.quiet or args.json == "-"
    total = len(strategies) * args.seeds
    progress = None if quiet else Progress(
        TextColumn("[bold]bench[/bold]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console, transient=True,
    )

    task = progress.add_task("bench", total=total) if progress is not None else None

    def on_run(_: RunResult) -> None:
        if progress is not None and task is not None:
            progress.advance(task)

    if progress is not None:
        progress.start()
    try:
        comp = compare(strategies, args.seeds, protocol, options, jobs=args.jobs, on_run=on_run)
    finally:
        if progress is not None:
            progress.stop()
    if not quiet:
        _print(comp)
    if args.plot:
        path = plot_anytime(comp.anytime(), args.plot,
                            title=f"{protocol.benchmark} {protocol.dataset}, {args.seeds} seeds")
        if not quiet:
            console.print(f"anytime plot saved to {path}")
    if args.json:
        write_json(comp.to_dict(), args.json)
    return 0
