"""``nasforge search``: run (or resume) one architecture search and print the best architecture."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.table import Table

from nasforge.cli.common import ProgressCallback, console, fmt_metric, write_json
from nasforge.config import (
    SearchConfig,
    accepts,
    build_experiment,
    default_storage_path,
    load_yaml_config,
    make_config,
    parse_options,
)
from nasforge.errors import ConfigError
from nasforge.experiment import Experiment, SQLiteStorage
from nasforge.registry import EVALUATORS

# CLI flag -> SearchConfig field, for flags that map one to one.
_FLAGS = {
    "space": "space", "strategy": "strategy", "evaluator": "evaluator", "seed": "seed",
    "budget_trials": "budget_trials", "budget_seconds": "budget_seconds",
    "budget_cost": "budget_cost", "storage": "storage", "executor": "executor",
    "workers": "workers", "device": "device", "trial_timeout": "trial_timeout",
    "address": "ray_address", "retries": "retries",
}


def register(sub: Any) -> None:
    """Add the ``search`` subcommand."""
    p: argparse.ArgumentParser = sub.add_parser(
        "search",
        help="run an architecture search (resumes when its database already exists)",
        description="Run an architecture search: a space, a strategy and an evaluator under a budget. "
        "Trials are stored in an SQLite file; running the same command again resumes the search.",
    )
    p.add_argument("--config", metavar="FILE", help="YAML file with search settings (flags override it)")
    p.add_argument("--resume", metavar="DB", help="resume the experiment stored in DB with its stored settings")
    p.add_argument("--space", help="search space (see `nasforge spaces`), default nb201")
    p.add_argument("--space-option", action="append", metavar="K=V", help="space option, repeatable")
    p.add_argument("--strategy", help="search strategy, default rea")
    p.add_argument("--strategy-option", action="append", metavar="K=V", help="strategy option, repeatable")
    p.add_argument("--evaluator", help="performance estimator, default train")
    p.add_argument("--evaluator-option", action="append", metavar="K=V", help="evaluator option, repeatable")
    p.add_argument("--data", metavar="PATH", help="data directory for the evaluator (dataset files or benchmark table)")
    p.add_argument("--dataset", help="dataset name for the evaluator (e.g. fashion_mnist, cifar10)")
    p.add_argument("--objective", action="append", metavar="[max:|min:]METRIC",
                   help="objective, repeatable (several give a Pareto front); default accuracy")
    p.add_argument("--constraint", action="append", metavar="EXPR", help="constraint such as 'params <= 1e6'")
    p.add_argument("--budget-trials", type=int, metavar="N", help="stop after N trials")
    p.add_argument("--budget-seconds", type=float, metavar="S", help="stop after S wall-clock seconds")
    p.add_argument("--budget-cost", type=float, metavar="S",
                   help="stop after S seconds of evaluation cost (simulated for tabular benchmarks)")
    p.add_argument("--seed", type=int, help="random seed (same seed, same search), default 0")
    p.add_argument("--storage", metavar="DB", help="SQLite file for the trials (default runs/<...>.db)")
    p.add_argument("--executor", choices=["inline", "process", "ray"],
                   help="where trials run (default: inline for 1 worker, process pool for more)")
    p.add_argument("--workers", type=int, metavar="N", help="parallel trials (process pool when > 1)")
    p.add_argument("--address", metavar="ADDR",
                   help="Ray cluster address for --executor ray: auto, ray://HOST:PORT (default: start a local Ray)")
    p.add_argument("--retries", type=int, metavar="N", help="re-run a trial whose worker died up to N times")
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:N")
    p.add_argument("--trial-timeout", type=float, metavar="S", help="fail a trial after S seconds")
    p.add_argument("--top", type=int, default=5, metavar="K", help="how many top trials to list (default 5)")
    p.add_argument("--json", nargs="?", const="-", metavar="FILE", help="write the result as JSON (stdout if no FILE)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or tables")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> SearchConfig:
    """Merge, in increasing priority: stored config (--resume), YAML (--config), then flags."""
    data: dict[str, Any] = {}
    source = "command line"
    if args.resume:
        path = Path(args.resume)
        stored = SQLiteStorage(path, readonly=True).get_meta("search_config")
        if stored is None:
            raise ConfigError(f"{str(path)!r} holds no stored search settings to resume from")
        data.update(stored)
        data["storage"] = str(path)
        source = f"{path}"
    if args.config:
        data.update(load_yaml_config(args.config))
        source = args.config
    for flag, field in _FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            data[field] = value
    for flag, field in (("space_option", "space_options"), ("strategy_option", "strategy_options"),
                        ("evaluator_option", "evaluator_options")):
        if getattr(args, flag):
            data[field] = {**data.get(field, {}), **parse_options(getattr(args, flag))}
    if args.objective:
        data["objectives"] = args.objective
    if args.constraint:
        data["constraints"] = args.constraint
    if args.data is not None or args.dataset is not None:
        data["evaluator_options"] = _data_options(
            str(data.get("evaluator", "train")), dict(data.get("evaluator_options", {})), args
        )
    cfg = make_config(data, source)
    if cfg.budget_trials is None and cfg.budget_seconds is None and cfg.budget_cost is None:
        cfg = cfg.model_copy(update={"budget_trials": 20})
    return cfg


def _data_options(evaluator: str, options: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Route --data/--dataset to whichever option names the evaluator takes."""
    factory = EVALUATORS.get(evaluator)
    if args.data is not None:
        # A named parameter wins over **kwargs, which may collect unrelated options.
        names = [n for n in ("data", "data_dir", "path") if accepts(factory, n, explicit=True)]
        names = names or [n for n in ("data", "data_dir", "path") if accepts(factory, n)]
        if not names:
            raise ConfigError(f"evaluator {evaluator!r} takes no data path; drop --data")
        options[names[0]] = args.data
    if args.dataset is not None:
        if not accepts(factory, "dataset"):
            raise ConfigError(f"evaluator {evaluator!r} takes no dataset; drop --dataset")
        options["dataset"] = args.dataset
    return options


def summarize(exp: Experiment, top: int) -> dict[str, Any]:
    """A JSON-able summary: counts, best trial, top trials."""
    trials = exp.trials
    ranked = sorted(
        (t for t in trials if exp.objective.score(t) is not None),
        key=lambda t: -(exp.objective.score(t) or 0.0),
    )
    by_status: dict[str, int] = {}
    for t in trials:
        by_status[t.status.value] = by_status.get(t.status.value, 0) + 1

    def row(t: Any) -> dict[str, Any]:
        return {"number": t.number, "arch": exp.space.to_string(t.arch), "metrics": dict(t.metrics),
                "cost": t.cost, "info": {k: v for k, v in t.info.items() if k != "curve"}}

    return {
        "space": exp.space.name,
        "strategy": exp.strategy.name,
        "evaluator": exp.evaluator.name,
        "objective": [exp.objective.metric, exp.objective.direction],
        "trials": len(trials),
        "status": by_status,
        "elapsed_seconds": exp.elapsed,
        "best": row(ranked[0]) if ranked else None,
        "top": [row(t) for t in ranked[:top]],
        "best_architecture": ranked[0].arch.to_dict() if ranked else None,
    }


def run(args: argparse.Namespace) -> int:
    """Run the search command."""
    cfg = config_from_args(args)
    storage_path = Path(cfg.storage) if cfg.storage else default_storage_path(cfg)
    cfg = cfg.model_copy(update={"storage": str(storage_path)})
    progress = ProgressCallback(quiet=args.quiet or args.json == "-")
    exp = build_experiment(cfg, callbacks=[progress])
    stored = exp.storage.count()
    exp.storage.set_meta("search_config", cfg.model_dump(mode="json"))
    if stored and not args.quiet:
        console.print(f"resuming {storage_path}: {stored} stored trial(s)")
    exp.run()
    summary = summarize(exp, args.top)
    summary["storage"] = str(storage_path)
    if not args.quiet:
        _print_summary(exp, summary)
    if args.json:
        write_json(summary, args.json)
    return 0 if summary["best"] is not None else 1


def _print_summary(exp: Experiment, summary: dict[str, Any]) -> None:
    status = ", ".join(f"{n} {k}" for k, n in summary["status"].items())
    console.print(f"{summary['trials']} trials ({status}) in {summary['elapsed_seconds']:.1f} s; "
                  f"stored in {summary['storage']}")
    if summary["best"] is None:
        console.print("[red]no trial finished successfully[/red]; see `nasforge show "
                      f"{summary['storage']}` for the errors")
        return
    present = {k for r in summary["top"] for k in r["metrics"]}
    # The objectives first, then the usual size/speed metrics; the rest is in --json and `show`.
    wanted = [o.metric for o in exp.objectives] + ["test_accuracy", "params", "flops", "latency_ms"]
    metrics = [m for i, m in enumerate(wanted) if m in present and m not in wanted[:i]]
    table = Table(title=f"top {len(summary['top'])} by {exp.objective.direction} {exp.objective.metric}")
    table.add_column("trial", justify="right")
    for m in metrics:
        table.add_column(m, justify="right")
    table.add_column("cost s", justify="right")
    table.add_column("architecture", overflow="fold", min_width=24)
    for r in summary["top"]:
        table.add_row(str(r["number"]), *[fmt_metric(r["metrics"][m]) if m in r["metrics"] else "-"
                                          for m in metrics], f"{r['cost']:.1f}", r["arch"])
    console.print(table)
    best = summary["best"]
    console.print("[bold]best architecture[/bold]: " + best["arch"])
    console.print("  " + ", ".join(f"{k}={fmt_metric(v)}" for k, v in best["metrics"].items()))
    console.print(f"show all trials: nasforge show {summary['storage']}; report: nasforge report {summary['storage']}")
