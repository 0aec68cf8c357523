"""Pieces shared by several subcommands: option parsing, progress display, JSON output."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from nasforge.errors import file_error

console = Console(stderr=True)
"""Progress, notes and logs go to stderr, so that stdout carries only results."""

out = Console()
"""Results (tables, the best architecture) go to stdout, so ``nasforge show DB > file`` keeps
them. A command writing ``--json`` to stdout prints no tables there (it uses ``console``)."""


#: Width of results written to a file or a pipe (a terminal's own width is used otherwise).
PIPE_WIDTH = 200


def print_result(*objects: Any) -> None:
    """Print results (text, tables) to stdout. Written to a file or a pipe, they get
    ``PIPE_WIDTH`` columns (or ``$COLUMNS``) instead of rich's 80, so tables are not squeezed."""
    if not out.is_terminal and not os.environ.get("COLUMNS"):
        out.width = PIPE_WIDTH
    out.print(*objects)


def write_json(data: Any, target: str | None) -> None:
    """Write ``data`` as JSON to ``target`` ('-' = stdout)."""
    text = json.dumps(data, indent=2, sort_keys=False, default=str)
    if target in (None, "-"):
        sys.stdout.write(text + "\n")
    else:
        path = Path(str(target))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text + "\n")
        except OSError as exc:  # a full disk, no permission: one line naming the file
            raise file_error(exc, path) from None


def fmt_metric(value: float) -> str:
    """Short human form of a metric value."""
    if abs(value) >= 1e5 or (abs(value) >= 1000 and float(value).is_integer()):
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.1f}"
    return f"{value:.4g}"


def print_final_stage(stage: dict[str, Any], metric: str, emit: Any) -> None:
    """The final stage's candidates, the final test of the pick and the baseline, the verdict."""
    from rich.markup import escape
    from rich.table import Table

    def pm(stats: dict[str, Any]) -> str:
        if stats.get("mean") is None:
            return "-"
        spread = f" ± {stats['std']:.2f}" if stats.get("n", 0) > 1 else ""
        return f"{stats['mean']:.2f}{spread} (n={stats['n']})"

    cand = Table(title=f"top-{len(stage['candidates'])} re-evaluated with fresh seeds "
                       f"({metric}, mean ± std)")
    for col in ("rank", "trial", "in search", "re-evaluated", "architecture"):
        cand.add_column(col, justify="left" if col == "architecture" else "right",
                        overflow="fold")
    for i, c in enumerate(stage["candidates"], 1):
        sv = c.get("search_value")
        cand.add_row(str(i), str(c["trial"]), "-" if sv is None else f"{sv:.2f}",
                     pm(c["reevaluated"]), escape(c["arch"]))
    emit(cand)
    final = stage["final"]
    fid = stage["settings"].get("final_fidelity")
    side0 = final.get("chosen") or {}
    n_train, n_test = side0.get("train_images"), side0.get("test_images")
    table = Table(title="final training on "
                        + (f"{n_train:,} training images" if n_train else "the training data")
                        + (f" for {fid:g} epochs" if fid else "")
                        + ", tested once per seed on "
                        + (f"{n_test:,} test images" if n_test else "the test split"))
    tested = str(stage["settings"].get("test_metric", "test_accuracy")).replace("_", " ")
    for col in ("", tested, "params", "FLOPs (M)", "latency ms", "architecture"):
        table.add_column(col, justify="left" if col in ("", "architecture") else "right",
                         overflow="fold")
    for label in ("chosen", "baseline"):
        side = final.get(label)
        if side is None:
            continue
        prof = side.get("profile", {})
        flops = prof.get("flops")
        table.add_row("search's pick" if label == "chosen" else "baseline", pm(side),
                      fmt_metric(prof["params"]) if "params" in prof else "-",
                      "-" if flops is None else f"{flops / 1e6:.2f}",
                      f"{prof['latency_ms']:.2f}" if "latency_ms" in prof else "-",
                      escape(side["arch"]))
    emit(table)
    emit("[bold]verdict[/bold]: " + escape(stage["verdict"]["text"]))


# The search progress bar lives in its own module; imported here, where the commands look for it.
from nasforge.cli.progress import ProgressCallback  # noqa: E402

__all__ = ["PIPE_WIDTH", "ProgressCallback", "console", "fmt_metric", "out", "print_final_stage",
           "print_result", "write_json"]
