"""``nasforge export DB``: write the best architectures of a search as JSON, text and Python."""

from __future__ import annotations

import argparse
from typing import Any

from rich.table import Table

from nasforge.cli.common import console, fmt_metric, write_json


def register(sub: Any) -> None:
    """Add the ``export`` subcommand."""
    p: argparse.ArgumentParser = sub.add_parser(
        "export",
        help="write the best architectures of a search as JSON, text and rebuild scripts",
        description="Write the K best architectures of a stored search (one per distinct "
        "architecture, by the primary objective) to a folder: rankN.json (the input of "
        "`nasforge train`), rankN.txt (the space's human form) and rankN.py (a script that "
        "rebuilds the network with nasforge), plus index.json.",
    )
    p.add_argument("db", metavar="DB", help="experiment database (SQLite file)")
    p.add_argument("--top", type=int, metavar="K",
                   help="how many architectures (default 5; with --pareto: the whole front)")
    p.add_argument("--pareto", action="store_true",
                   help="export the Pareto front of all objectives instead of the top K")
    p.add_argument("-o", "--output", default="export", metavar="DIR",
                   help="output folder (default ./export)")
    p.add_argument("--json", nargs="?", const="-", metavar="FILE",
                   help="write what was exported as JSON (stdout if no FILE)")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the export command."""
    from nasforge.export import export_architectures

    top = args.top if args.top is not None else (None if args.pareto else 5)
    exported = export_architectures(args.db, args.output, top=top, pareto=args.pareto)
    rows = [e.to_dict() for e in exported]
    if not args.quiet and args.json != "-":
        table = Table(title=f"{len(rows)} architecture(s) exported to {args.output}")
        for col in ("rank", "trial", "metrics", "file"):
            table.add_column(col, justify="right" if col in ("rank", "trial") else "left")
        for r in rows:
            metrics = ", ".join(f"{k}={fmt_metric(v)}" for k, v in r["metrics"].items())
            table.add_row(str(r["rank"]), str(r["trial"]), metrics, r["json"])
        console.print(table)
        console.print(f"retrain the best with: nasforge train {rows[0]['json']} --epochs 10")
    if args.json:
        write_json({"db": args.db, "out_dir": args.output, "architectures": rows}, args.json)
    return 0
