"""``nasforge report DB``: a self-contained HTML report of a search (or of ``nasforge bench``)."""

from __future__ import annotations

import argparse
from typing import Any

from nasforge.cli.common import console, write_json
from nasforge.errors import ConfigError


def register(sub: Any) -> None:
    """Add the ``report`` subcommand."""
    p: argparse.ArgumentParser = sub.add_parser(
        "report",
        help="write an HTML report with plots of a search (or of a strategy comparison)",
        description="Write one self-contained HTML file (plots inlined, no network needed) with "
        "the best-so-far curve, the Pareto front of multi-objective runs, the top architectures "
        "drawn as diagrams, metric distributions and a sortable table of every trial. The plots "
        "are also saved as PNGs in a <name>_files/ folder beside the HTML. With --bench, report "
        "the JSON written by `nasforge bench --json FILE` instead.",
    )
    p.add_argument("db", nargs="?", metavar="DB", help="experiment database (SQLite file)")
    p.add_argument("--bench", metavar="RESULTS.json",
                   help="report a strategy comparison written by `nasforge bench --json FILE`")
    p.add_argument("-o", "--output", metavar="REPORT.html",
                   help="where to write the report (default: beside the input, .html)")
    p.add_argument("--top", type=int, default=5, metavar="K",
                   help="list the K best architectures (default 5)")
    p.add_argument("--diagrams", type=int, default=3, metavar="N",
                   help="draw the N best architectures as diagrams (default 3)")
    p.add_argument("--title", help="report title")
    p.add_argument("--json", nargs="?", const="-", metavar="FILE",
                   help="write the paths written as JSON (stdout if no FILE)")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the report command."""
    from nasforge.report.html import write_bench_report, write_report

    if (args.db is None) == (args.bench is None):
        raise ConfigError("give either an experiment database (nasforge report DB) or "
                          "--bench RESULTS.json, not both or neither")
    if args.diagrams < 0:
        raise ConfigError(f"--diagrams must be >= 0, got {args.diagrams}")
    if args.bench is not None:
        files = write_bench_report(args.bench, args.output, title=args.title)
    else:
        files = write_report(args.db, args.output, top=args.top, diagrams=args.diagrams,
                             title=args.title)
    if not args.quiet and args.json != "-":
        console.print(f"report written to [bold]{files.html}[/bold] "
                      f"({len(files.images)} plot(s) also in {files.html.stem}_files/)")
        for what, why in files.skipped.items():
            console.print(f"  not shown: {what} ({why})")
    if args.json:
        write_json(files.to_dict(), args.json)
    return 0
