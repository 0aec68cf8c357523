"""``nasforge show DB``: the trials of a stored experiment (readable while it runs)."""

from __future__ import annotations

import argparse
from typing import Any

from rich.markup import escape
from rich.table import Table

from nasforge.cli.common import fmt_metric, print_result, write_json
from nasforge.experiment import SQLiteStorage
from nasforge.trial import TrialStatus


def register(sub: Any) -> None:
    """Add the ``show`` subcommand."""
    p: argparse.ArgumentParser = sub.add_parser(
        "show", help="list the trials of a stored experiment",
        description="List the trials stored in an experiment database (safe while the search runs).",
    )
    p.add_argument("db", metavar="DB", help="experiment database (SQLite file)")
    p.add_argument("--status", choices=[s.value for s in TrialStatus], help="only trials with this status")
    p.add_argument("--sort", metavar="METRIC", help="sort by this metric (descending)")
    p.add_argument("--limit", type=int, metavar="N", help="show at most N trials")
    p.add_argument("--errors", action="store_true", help="show the full error text of failed trials")
    p.add_argument("--json", nargs="?", const="-", metavar="FILE", help="write the trials as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the show command."""
    storage = SQLiteStorage(args.db, readonly=True)
    trials = storage.trials()
    config = storage.get_meta("search_config") or storage.get_meta("config") or {}
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
    space = None
    try:
        import nasforge

        if isinstance(config, dict) and config.get("space"):
            space = nasforge.create_space(str(config["space"]), **dict(config.get("space_options") or {}))
    except Exception:  # the table is still useful without the space's human form
        space = None

    def arch_text(t: Any) -> str:
        if space is not None:
            try:
                return str(space.to_string(t.arch))
            except Exception:
                pass
        return t.arch.to_json()

    rows: list[dict[str, Any]] = [
        {"number": t.number, "status": t.status.value, "metrics": dict(t.metrics), "cost": t.cost,
         "duration": t.duration, "error": t.error, "arch": arch_text(t)}
        for t in trials
    ]
    if args.json:
        write_json({"db": args.db, "config": config, "trials": rows}, args.json)
        return 0
    metrics = sorted({k for r in rows for k in r["metrics"]})
    table = Table(title=f"{args.db}: {len(rows)} trial(s)")
    table.add_column("#", justify="right")
    table.add_column("status")
    for m in metrics:
        table.add_column(m, justify="right")
    table.add_column("cost s", justify="right")
    table.add_column("architecture / error", overflow="fold")
    for r in rows:
        # Architecture strings and tracebacks may hold "[...]", which rich would read as markup.
        text = escape(r["arch"])
        if r["status"] == "failed" and r["error"]:
            err = r["error"] if args.errors else r["error"].splitlines()[0]
            text = f"{text}\n[red]{escape(err)}[/red]"
        table.add_row(str(r["number"]), r["status"],
                      *[fmt_metric(r["metrics"][m]) if m in r["metrics"] else "-" for m in metrics],
                      f"{r['cost']:.1f}", text)
    print_result(table)
    return 0
