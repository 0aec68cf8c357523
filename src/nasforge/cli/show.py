"""``nasforge show DB``: the trials of a stored experiment (readable while it runs).

Under a multi-fidelity scheduler it also summarizes each rung and the pruned trials;
``--trial N`` shows one trial: its learning curve and the promotion chain of its configuration.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any

from rich.markup import escape
from rich.table import Table

from nasforge.cli.common import fmt_metric, print_final_stage, print_result, write_json
from nasforge.errors import ConfigError, NasforgeError
from nasforge.experiment import SQLiteStorage
from nasforge.experiment.selection import stored_final_stage
from nasforge.report import curves, timeline
from nasforge.report.stored import parse_objectives
from nasforge.trial import Objective, Trial, TrialStatus


def register(sub: Any) -> None:
    """Add the ``show`` subcommand."""
    p: argparse.ArgumentParser = sub.add_parser(
        "show", help="list the trials of a stored experiment",
        description="List the trials stored in an experiment database (safe while the search "
        "runs). Under a multi-fidelity scheduler, a summary of each rung and the number of pruned "
        "trials follow the list; --trial N shows one trial's learning curve and promotion chain.",
    )
    p.add_argument("db", metavar="DB", help="experiment database (SQLite file)")
    p.add_argument("--status", choices=[s.value for s in TrialStatus], help="only trials with this status")
    p.add_argument("--sort", metavar="METRIC", help="sort by this metric (descending)")
    p.add_argument("--limit", type=int, metavar="N", help="show at most N trials")
    p.add_argument("--errors", action="store_true", help="show the full error text of failed trials")
    p.add_argument("--trial", type=int, metavar="N",
                   help="show trial N only: its metrics, learning curve (every value it reported "
                        "per step), rung and the trials it was promoted from and to")
    p.add_argument("--json", nargs="?", const="-", metavar="FILE", help="write the trials as JSON")
    p.set_defaults(func=run)


def _fmt(value: float | None) -> str:
    return "-" if value is None else fmt_metric(value)


def _objective(search_config: Any, identity: Mapping[str, Any]) -> Objective:
    src = search_config if isinstance(search_config, Mapping) else identity
    try:
        return parse_objectives(src.get("objectives", identity.get("objectives")))[0]
    except NasforgeError:  # an unreadable record: rank by the default objective
        return Objective()


def _schedule_settings(key: str, identity: Mapping[str, Any],
                       search_config: Any) -> dict[str, Any] | None:
    found = curves.settings(identity, key)
    if found is None and isinstance(search_config, Mapping):
        found = curves.settings(search_config, key)
    return found


def run(args: argparse.Namespace) -> int:
    """Run the show command."""
    storage = SQLiteStorage(args.db, readonly=True)
    all_trials = storage.trials()
    search_config = storage.get_meta("search_config")
    identity = storage.get_meta("config")
    final_stage = stored_final_stage(storage)
    if not isinstance(identity, dict):
        identity = {}
    config = search_config or identity or {}
    objective = _objective(search_config, identity)
    scheduler = _schedule_settings("scheduler", identity, search_config)
    pruner = _schedule_settings("pruner", identity, search_config)
    scheduled = curves.is_scheduled(all_trials, {"scheduler": scheduler})
    rungs = (curves.rung_summary(all_trials, objective, curves.rung_fidelities(scheduler))
             if scheduled else [])
    pruned = sum(t.status is TrialStatus.PRUNED for t in all_trials)

    space = None
    try:
        import nasforge

        raw = config.get("space") if isinstance(config, dict) else None
        # Experiments run from Python store the space's describe() dict: its name and a summary
        # (not constructor options); `nasforge search` stores the name and its options.
        name = raw.get("name") if isinstance(raw, dict) else raw
        if name:
            options = {} if isinstance(raw, dict) else dict(config.get("space_options") or {})
            space = nasforge.create_space(str(name), **options)
    except Exception:  # the table is still useful without the space's human form
        space = None

    def arch_text(t: Any) -> str:
        if space is not None:
            try:
                return str(space.to_string(t.arch))
            except Exception:
                pass
        return t.arch.to_json()

    def row(t: Trial) -> dict[str, Any]:
        return {"number": t.number, "status": t.status.value, "metrics": dict(t.metrics),
                "cost": t.cost, "duration": t.duration, "error": t.error, "arch": arch_text(t),
                **curves.curve_record(t)}

    if args.trial is not None:
        return _show_trial(args, all_trials, row, objective, scheduler)

    trials = all_trials
    if args.status:
        trials = [t for t in trials if t.status.value == args.status]
    if args.sort:
        metric = args.sort

        def sort_key(t: Any) -> float:
            value = t.value(metric)
            return float("inf") if value is None else -value

        trials = sorted(trials, key=sort_key)
    if args.limit:
        trials = trials[: args.limit]

    rows = [row(t) for t in trials]
    if args.json:
        write_json({"db": args.db, "config": config, "objective": str(objective),
                    "scheduler": scheduler, "pruner": pruner, "pruned": pruned,
                    "rungs": [r.to_dict() for r in rungs], "trials": rows,
                    "workers": [lane.to_dict() for lane in timeline.lanes(all_trials)],
                    "final_stage": final_stage}, args.json)
        return 0
    metrics = sorted({k for r in rows for k in r["metrics"]})
    table = Table(title=f"{escape(args.db)}: {len(rows)} trial(s)")
    table.add_column("#", justify="right")
    table.add_column("status")
    if scheduled:
        table.add_column("rung", justify="right")
        table.add_column("fidelity", justify="right")
        table.add_column("from", justify="right")
    for m in metrics:
        table.add_column(escape(m), justify="right")
    table.add_column("cost s", justify="right")
    table.add_column("architecture / error", overflow="fold")
    for r in rows:
        # Architecture strings and tracebacks may hold "[...]", which rich would read as markup.
        text = escape(r["arch"])
        if r["status"] == "failed" and r["error"]:
            err = r["error"] if args.errors else r["error"].splitlines()[0]
            text = f"{text}\n[red]{escape(err)}[/red]"
        elif r["status"] == "pruned" and r["pruned_at"] is not None:
            text = f"{text}\n[dim]pruned at step {r['pruned_at']}[/dim]"
        sched = ([_int_text(r["rung"]), _fmt(r["fidelity"]), _int_text(r["parent"])]
                 if scheduled else [])
        table.add_row(str(r["number"]), r["status"], *sched,
                      *[fmt_metric(r["metrics"][m]) if m in r["metrics"] else "-" for m in metrics],
                      f"{r['cost']:.1f}", text)
    print_result(table)
    if scheduled:
        print_result(_rung_table(rungs, objective, scheduler))
    if scheduled or pruner is not None or pruned:
        line = f"{pruned} of {len(all_trials)} trial(s) pruned"
        line += f"; pruner: {escape(curves.describe_settings(pruner))}" if pruner else ""
        print_result(line)
    workers = timeline.lanes(all_trials)
    if workers:
        print_result(_worker_table(workers))
    if final_stage is not None:
        print_final_stage(final_stage, objective.metric, print_result)
    return 0


def _worker_table(workers: Sequence[timeline.Lane]) -> Table:
    """The per-worker timeline: which trials each worker ran, when, and how busy it was."""
    table = Table(title="trials per worker (seconds from the first start)")
    for name in ("node", "worker", "trials", "busy"):
        table.add_column(name, justify="left" if name == "node" else "right")
    table.add_column("timeline", overflow="fold")
    for lane in workers:
        table.add_row(escape(lane.node), str(lane.worker), str(len(lane.trials)),
                      f"{100 * lane.busy:.0f}%", escape(timeline.trial_list(lane)))
    return table


def _int_text(value: int | None) -> str:
    return "-" if value is None else str(value)


def _rung_table(rungs: Sequence[curves.RungSummary], objective: Objective,
                scheduler: Mapping[str, Any] | None) -> Table:
    title = "rungs"
    if scheduler:
        title += f" of {escape(curves.describe_settings(scheduler))}"
    table = Table(title=title)
    for name in ("rung", "fidelity", "started", "finished", "ok", "pruned", "failed", "promoted",
                 "best trial"):
        table.add_column(name, justify="right")
    table.add_column(f"best {escape(objective.metric)}", justify="right")
    for r in rungs:
        table.add_row(str(r.rung), _fmt(r.fidelity), str(r.started), str(r.finished), str(r.ok),
                      str(r.pruned), str(r.failed), str(r.promoted), _int_text(r.best_trial),
                      _fmt(r.best_value))
    return table


def _chain_entry(t: Trial, objective: Objective) -> dict[str, Any]:
    return {"number": t.number, "rung": curves.rung_of(t), "fidelity": t.fidelity,
            "status": t.status.value, "value": t.value(objective.metric),
            "pruned_at": curves.pruned_at(t)}


def _show_trial(args: argparse.Namespace, trials: Sequence[Trial], row: Any, objective: Objective,
                scheduler: Mapping[str, Any] | None) -> int:
    by_number = {t.number: t for t in trials}
    trial = by_number.get(args.trial)
    if trial is None:
        known = (f"trials are numbered {min(by_number)} to {max(by_number)}" if by_number
                 else "it has no trials yet")
        raise ConfigError(f"no trial {args.trial} in {args.db}: {known}")
    chain = curves.lineage(trial, by_number)
    children = curves.promotions(trial, trials)
    data = row(trial)
    data["chain"] = [_chain_entry(t, objective) for t in chain]
    data["promoted_to"] = [_chain_entry(t, objective) for t in children]
    if args.json:
        write_json({"db": args.db, "objective": str(objective), "scheduler": scheduler,
                    "trial": data}, args.json)
        return 0

    info = Table(title=f"{escape(args.db)}: trial {trial.number}", show_header=False)
    info.add_column("", style="bold")
    info.add_column("", overflow="fold")
    status = trial.status.value
    if trial.status is TrialStatus.PRUNED and data["pruned_at"] is not None:
        status += f" (at step {data['pruned_at']})"
    info.add_row("status", escape(status))
    for name, value in trial.metrics.items():
        info.add_row(escape(name), fmt_metric(value))
    if trial.fidelity is not None:
        info.add_row("fidelity", _fmt(trial.fidelity))
    if data["rung"] is not None:
        rung = str(data["rung"])
        rungs = curves.rung_fidelities(scheduler)
        if data["rung"] + 1 == len(rungs):
            rung += " (the top rung)"
        info.add_row("rung", rung)
        info.add_row("bracket", _int_text(data["bracket"]))
        info.add_row("configuration", f"first evaluated as trial {curves.config_of(trial)}")
    info.add_row("cost s", f"{trial.cost:.1f}")
    info.add_row("architecture", escape(data["arch"]))
    if trial.error:
        err = trial.error if args.errors or trial.status is TrialStatus.PRUNED \
            else trial.error.splitlines()[0]
        info.add_row("error" if trial.status is TrialStatus.FAILED else "reason",
                     escape(err))
    print_result(info)

    if data["rung"] is not None or len(chain) > 1 or children:
        # The configuration's trials, lowest rung first, then those promoted from this one.
        lineage = Table(title="promotion chain")
        for name in ("trial", "rung", "fidelity", "status"):
            lineage.add_column(name, justify="right" if name != "status" else "left")
        lineage.add_column(escape(objective.metric), justify="right")
        lineage.add_column("last reported (step)", justify="right")
        for t, what in [*[(t, "") for t in chain], *[(t, "promoted to") for t in children]]:
            entry = _chain_entry(t, objective)
            number = str(t.number)
            if t is trial:
                number = f"[bold]> {number}[/bold]"
            elif what:
                number = f"{what} {number}"
            last = curves.learning_curve(t)[-1:]
            lineage.add_row(number, _int_text(entry["rung"]), _fmt(entry["fidelity"]),
                            entry["status"], _fmt(entry["value"]),
                            f"{fmt_metric(last[0][1])} ({last[0][0]})" if last else "-")
        print_result(lineage)

    curve = data["curve"]
    if not curve:
        print_result("no learning curve: the evaluator reported no value while this trial ran")
        return 0
    table = Table(title="learning curve")
    table.add_column("step", justify="right")
    table.add_column("value", justify="right")
    table.add_column("")
    best = max(range(len(curve)), key=lambda i: (objective.sign * curve[i][1], -i))
    for i, (step, value) in enumerate(curve):
        note = []
        if i == best and len(curve) > 1:
            note.append("best")
        if data["pruned_at"] is not None and step == data["pruned_at"] and i == len(curve) - 1:
            note.append("[red]pruned here[/red]")
        table.add_row(str(step), fmt_metric(value), ", ".join(note))
    print_result(table)
    return 0
