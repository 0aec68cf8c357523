"""``nasforge search``: run (or resume) one architecture search and print the best architecture."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from nasforge.cli.common import (
    ProgressCallback,
    console,
    fmt_metric,
    print_final_stage,
    print_result,
    write_json,
)
from nasforge.config import (
    SearchConfig,
    accepts,
    build_experiment,
    default_storage_path,
    final_stage,
    load_yaml_config,
    make_config,
    parse_options,
)
from nasforge.errors import ConfigError
from nasforge.experiment import Experiment, SQLiteStorage
from nasforge.registry import EVALUATORS
from nasforge.trial import ranked_trials

# CLI flag -> SearchConfig field, for flags that map one to one.
_FLAGS = {
    "space": "space", "preset": "preset", "strategy": "strategy", "evaluator": "evaluator", "seed": "seed",
    "budget_trials": "budget_trials", "budget_seconds": "budget_seconds",
    "budget_cost": "budget_cost", "storage": "storage", "durability": "durability",
    "executor": "executor",
    "workers": "workers", "device": "device", "trial_timeout": "trial_timeout",
    "address": "ray_address", "retries": "retries", "ray_num_cpus": "ray_num_cpus",
    "ray_num_gpus": "ray_num_gpus", "budget_fidelity": "budget_fidelity",
    "scheduler": "scheduler", "pruner": "pruner", "final": "final", "top_k": "top_k",
    "reeval_seeds": "reeval_seeds", "final_seeds": "final_seeds",
    "final_fidelity": "final_fidelity", "baseline": "baseline",
    "mlflow": "mlflow", "tensorboard": "tensorboard",
}

# Settings that only the Ray executor uses (dropped from stored settings when --executor changes).
_RAY_FIELDS = ("ray_address", "ray_num_cpus", "ray_num_gpus")


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
    p.add_argument("--preset", help="task preset of a space (see `nasforge spaces`), e.g. "
                   "image_classification; sets the space and its options (--space-option overrides)")
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
    p.add_argument("--budget-fidelity", type=float, metavar="E",
                   help="stop after E fidelity units (training epochs) spent in total")
    p.add_argument("--scheduler", help="multi-fidelity scheduler: sh, hyperband, asha, bohb "
                   "(default: none, every trial at one fidelity)")
    p.add_argument("--scheduler-option", action="append", metavar="K=V",
                   help="scheduler option (min_fidelity, max_fidelity, eta, rungs, ...), repeatable")
    p.add_argument("--pruner", help="stop bad trials early: median, percentile, threshold")
    p.add_argument("--pruner-option", action="append", metavar="K=V", help="pruner option, repeatable")
    p.add_argument("--final", action=argparse.BooleanOptionalAction, default=None,
                   help="after the search: re-evaluate the top-k with fresh seeds, retrain the "
                   "pick and a baseline on train+val, test both, and give a verdict")
    p.add_argument("--top-k", type=int, metavar="K", help="candidates re-evaluated in the final stage (default 3)")
    p.add_argument("--reeval-seeds", type=int, metavar="N", help="fresh seeds per candidate (default 2)")
    p.add_argument("--final-seeds", type=int, metavar="N", help="seeds of the final training (default 3)")
    p.add_argument("--final-fidelity", type=float, metavar="E",
                   help="epochs of the final training (default: the search's highest fidelity)")
    p.add_argument("--baseline", metavar="ARCH",
                   help="baseline for the verdict: 'reference' (the space's, default), an "
                   "architecture in the space's text form, or 'none'")
    p.add_argument("--seed", type=int, help="random seed (same seed, same search), default 0")
    p.add_argument("--storage", metavar="DB", help="SQLite file for the trials (default runs/<...>.db)")
    p.add_argument("--durability", choices=["normal", "full"],
                   help="normal (default): stored trials survive a crash of the process; full: "
                   "they also survive a power loss (SQLite synchronous=FULL, slower commits)")
    p.add_argument("--executor", choices=["inline", "process", "ray"],
                   help="where trials run (default: inline for 1 worker, process pool for more)")
    p.add_argument("--workers", type=int, metavar="N", help="parallel trials (process pool when > 1)")
    p.add_argument("--address", metavar="ADDR",
                   help="Ray cluster address for --executor ray: auto, ray://HOST:PORT (default: start a local Ray)")
    p.add_argument("--ray-num-cpus", type=float, metavar="N",
                   help="CPUs each trial reserves on Ray (default 1; fractions allowed)")
    p.add_argument("--ray-num-gpus", type=float, metavar="N",
                   help="GPUs each trial reserves on Ray (default 0; 0.5 packs two trials per GPU)")
    p.add_argument("--retries", type=int, metavar="N", help="re-run a trial whose worker died up to N times")
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:N")
    p.add_argument("--trial-timeout", type=float, metavar="S", help="fail a trial after S seconds")
    p.add_argument("--top", type=int, default=5, metavar="K", help="how many top trials to list (default 5)")
    p.add_argument("--json", nargs="?", const="-", metavar="FILE", help="write the result as JSON (stdout if no FILE)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or tables")
    p.add_argument("--mlflow", metavar="DIR",
                   help="also log every trial (metrics, learning curve, architecture) to an MLflow "
                   "store in DIR (DIR/mlflow.db; pip install 'nasforge[mlflow]'; view: mlflow ui "
                   "--backend-store-uri sqlite:///DIR/mlflow.db)")
    p.add_argument("--tensorboard", metavar="DIR",
                   help="also log every trial to TensorBoard event files in DIR "
                   "(pip install 'nasforge[tensorboard]'; view: tensorboard --logdir DIR)")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> SearchConfig:
    """Merge, in increasing priority: stored config (--resume), YAML (--config), then flags."""
    return config_and_sources(args)[0]


def config_and_sources(args: argparse.Namespace) -> tuple[SearchConfig, dict[str, str]]:
    """:func:`config_from_args` plus where each setting came from (``"seed"`` -> ``"run.yaml"``,
    ``"strategy_options.population_size"`` -> ``"--strategy-option"``), for error messages."""
    data: dict[str, Any] = {}
    sources: dict[str, str] = {}

    def take(values: dict[str, Any], origin: str) -> None:
        for key, value in values.items():
            data[key] = value
            sources[str(key)] = origin
            if isinstance(value, dict):
                sources.update({f"{key}.{k}": origin for k in value})

    if args.resume:
        path = Path(args.resume)
        reader = SQLiteStorage(path, readonly=True)
        try:
            stored = reader.get_meta("search_config")
        finally:
            reader.close()
        if stored is None:
            raise ConfigError(f"{str(path)!r} holds no stored search settings to resume from")
        take(dict(stored), f"{path} (stored settings)")
        data["storage"] = str(path)
    if args.config:
        take(load_yaml_config(args.config), str(args.config))
    for flag, field in _FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            data[field] = value
            sources[field] = "--" + flag.replace("_", "-")
    if args.executor not in (None, "ray"):
        for field in _RAY_FIELDS:  # stored Ray settings do not carry over to another executor
            if sources.get(field, "").endswith("(stored settings)"):
                data.pop(field, None)
    for flag, field in (("space_option", "space_options"), ("strategy_option", "strategy_options"),
                        ("evaluator_option", "evaluator_options"),
                        ("scheduler_option", "scheduler_options"),
                        ("pruner_option", "pruner_options")):
        if getattr(args, flag):
            options = parse_options(getattr(args, flag))
            data[field] = {**_as_dict(data.get(field, {}), field, sources), **options}
            sources.update({f"{field}.{k}": "--" + flag.replace("_", "-") for k in options})
    if args.objective:
        data["objectives"] = args.objective
        sources["objectives"] = "--objective"
    if args.constraint:
        data["constraints"] = args.constraint
        sources["constraints"] = "--constraint"
    if args.data is not None or args.dataset is not None:
        data["evaluator_options"] = _data_options(
            str(data.get("evaluator", "train")),
            _as_dict(data.get("evaluator_options", {}), "evaluator_options", sources), args, sources,
        )
    cfg = make_config(data, "command line", sources)
    if (cfg.budget_trials is None and cfg.budget_seconds is None and cfg.budget_cost is None
            and cfg.budget_fidelity is None):
        cfg = cfg.model_copy(update={"budget_trials": 20})
    return cfg, sources


def _as_dict(value: Any, field: str, sources: dict[str, str]) -> dict[str, Any]:
    """An ``*_options`` setting as a dict, or a clear error naming where it was set."""
    if not isinstance(value, dict):
        raise ConfigError(f"{sources.get(field, 'settings')}: {field}: expected a mapping of "
                          f"option names to values, got {value!r}")
    return dict(value)


def _data_options(evaluator: str, options: dict[str, Any], args: argparse.Namespace,
                  sources: dict[str, str]) -> dict[str, Any]:
    """Route --data/--dataset to whichever option names the evaluator takes."""
    factory = EVALUATORS.get(evaluator)
    if args.data is not None:
        # A named parameter wins over **kwargs, which may collect unrelated options.
        names = [n for n in ("data", "data_dir", "path") if accepts(factory, n, explicit=True)]
        names = names or [n for n in ("data", "data_dir", "path") if accepts(factory, n)]
        if not names:
            raise ConfigError(f"evaluator {evaluator!r} takes no data path; drop --data")
        options[names[0]] = args.data
        sources[f"evaluator_options.{names[0]}"] = "--data"
    if args.dataset is not None:
        if not accepts(factory, "dataset"):
            raise ConfigError(f"evaluator {evaluator!r} takes no dataset; drop --dataset")
        options["dataset"] = args.dataset
        sources["evaluator_options.dataset"] = "--dataset"
    return options


def summarize(exp: Experiment, top: int) -> dict[str, Any]:
    """A JSON-able summary: counts, best trial, top trials."""
    trials = exp.trials
    ranked = ranked_trials(trials, exp.objective)
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


def _trackers(cfg: SearchConfig, storage_path: Path) -> list[Any]:
    """The MLflow / TensorBoard callbacks the settings ask for (``--mlflow`` / ``--tensorboard``,
    or ``mlflow:`` / ``tensorboard:`` in a config; a resumed search keeps logging to them)."""
    from nasforge.experiment.tracking import MLflowCallback, TensorBoardCallback

    out: list[Any] = []
    if cfg.mlflow:
        # One MLflow experiment per search, named after its database (runs/search.db -> search).
        out.append(MLflowCallback(cfg.mlflow, experiment_name=storage_path.stem))
    if cfg.tensorboard:
        out.append(TensorBoardCallback(cfg.tensorboard))
    return out


def run(args: argparse.Namespace) -> int:
    """Run the search command."""
    cfg, sources = config_and_sources(args)
    storage_path = Path(cfg.storage) if cfg.storage else default_storage_path(cfg)
    cfg = cfg.model_copy(update={"storage": str(storage_path)})
    progress = ProgressCallback(quiet=args.quiet or args.json == "-")
    exp = build_experiment(cfg, callbacks=[progress, *_trackers(cfg, storage_path)],
                           sources=sources)
    # Refuse a database holding another experiment before writing anything into it: storing these
    # settings first would make `--resume` rebuild the refused experiment forever.
    exp.check_config()
    stored = exp.storage.count()
    exp.storage.set_meta("search_config", cfg.model_dump(mode="json"))
    if stored and not args.quiet:
        console.print(f"resuming {storage_path}: {stored} stored trial(s)")
    exp.run()
    if exp.replay_mismatches:
        console.print(
            f"[yellow]warning[/yellow]: on resume, strategy {exp.strategy.name!r} proposed "
            f"{exp.replay_mismatches} architecture(s) other than the stored ones: its restored "
            "state does not predict the same future (an unseeded strategy, or a state_dict that "
            "misses a field), so this run may differ from an uninterrupted one")
    summary = summarize(exp, args.top)
    summary["replay_mismatches"] = exp.replay_mismatches
    summary["storage"] = str(storage_path)
    emit = console.print if args.json == "-" else print_result
    if not args.quiet:
        # Results go to stdout, unless stdout carries the JSON.
        _print_summary(exp, summary, emit)
    if cfg.final and summary["best"] is not None:
        from nasforge.experiment.selection import run_final_stage

        def say(message: str) -> None:
            if not args.quiet and args.json != "-":
                console.print(f"[dim]{escape(message)}[/dim]")

        if not args.quiet:
            console.print("final stage: top-k re-evaluation, final training and test next to "
                          "the baseline")
        summary["final_stage"] = run_final_stage(exp, final_stage(cfg), say)
        if not args.quiet:
            print_final_stage(summary["final_stage"], exp.objective.metric, emit)
    if args.json:
        write_json(summary, args.json)
    if summary["best"] is None:
        # Said even with --quiet: an exit status of 1 with no word would leave the user guessing.
        failed = [t for t in exp.trials if t.error]
        reason = f"; the last error: {last_line(failed[-1].error)}" if failed else ""
        console.print(f"nasforge: no trial finished successfully{reason}; see `nasforge show "
                      f"{storage_path} --errors`", soft_wrap=True, markup=False, highlight=False)
    return 0 if summary["best"] is not None else 1


def last_line(error: str | None) -> str:
    """The line of a stored traceback that says what went wrong (its last non-empty one)."""
    lines = [ln.strip() for ln in (error or "").splitlines() if ln.strip()]
    return lines[-1] if lines else "unknown"


def _print_summary(exp: Experiment, summary: dict[str, Any], emit: Callable[..., None]) -> None:
    status = ", ".join(f"{n} {k}" for k, n in summary["status"].items())
    emit(f"{summary['trials']} trials ({status}) in {summary['elapsed_seconds']:.1f} s; "
         f"stored in {summary['storage']}")
    if summary["best"] is None:
        return  # run() says why, also under --quiet
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
                                          for m in metrics], f"{r['cost']:.1f}", escape(r["arch"]))
    emit(table)
    best = summary["best"]
    emit("[bold]best architecture[/bold]: " + escape(best["arch"]))
    emit("  " + ", ".join(f"{k}={fmt_metric(v)}" for k, v in best["metrics"].items()))
    # soft_wrap: a path broken over two lines could not be copied as a command.
    console.print(f"show all trials: nasforge show {summary['storage']}; "
                  f"report: nasforge report {summary['storage']}", soft_wrap=True)
