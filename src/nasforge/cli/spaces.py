"""``nasforge spaces``: list the search spaces, run design checks on one, draw an architecture.

    nasforge spaces [--json]                      registered spaces with their sizes
    nasforge spaces check NAME [--json]           design-check findings for one space
    nasforge spaces draw NAME ARCH -o FILE        a picture (PNG/SVG) of one architecture
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from rich.table import Table

from nasforge.cli.common import console, write_json
from nasforge.config import parse_options
from nasforge.errors import ConfigError, NasforgeError, unknown
from nasforge.registry import SPACES
from nasforge.space.base import SearchSpace

ACTIONS = ("list", "check", "draw")
_STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red"}


def register(sub: Any) -> None:
    """Add the ``spaces`` subcommand."""
    p: argparse.ArgumentParser = sub.add_parser(
        "spaces", help="list search spaces, check a space's design, draw an architecture",
        description="Without arguments: list the registered search spaces and their sizes. "
        "'check NAME': design checks (operations, identity option, channel progression, size, "
        "degenerate architectures). 'draw NAME ARCH -o FILE': draw one architecture (the space's "
        "string form, e.g. a DARTS Genotype or 'DARTS_V2', or 'sample:SEED').",
    )
    p.add_argument("action", nargs="?", default="list", choices=ACTIONS,
                   help="what to do (default list)")
    p.add_argument("name", nargs="?", metavar="NAME", help="space name (check, draw)")
    p.add_argument("arch", nargs="?", metavar="ARCH", help="architecture to draw (draw)")
    p.add_argument("--space-option", action="append", metavar="K=V",
                   help="space option, repeatable")
    p.add_argument("--preset", help="task preset of the space (check, draw)")
    p.add_argument("--samples", type=int, default=20, metavar="N",
                   help="architectures sampled by the checks (default 20)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the sampled architectures (default 0)")
    p.add_argument("--part", help="which part to draw, for spaces that have parts (DARTS: normal or "
                   "reduce); others draw the whole network")
    p.add_argument("-o", "--output", metavar="FILE", help="picture file for draw (.png or .svg)")
    p.add_argument("--json", nargs="?", const="-", metavar="FILE",
                   help="write the result as JSON (stdout if no FILE)")
    p.set_defaults(func=run)


def _size_text(size: int | None) -> str:
    if size is None:
        return "?"
    return f"{size:,}" if size < 10**9 else f"{size:.2e}"


def list_spaces() -> list[dict[str, Any]]:
    """Name, description, decision count and exact size of every registered space (defaults)."""
    rows = []
    for name, doc in SPACES.describe().items():
        row: dict[str, Any] = {"name": name, "description": doc}
        try:
            space = SPACES.create(name)
            size = int(space.size())
            row.update(decisions=len(space.decisions), size=str(size),
                       log10=round(math.log10(size), 2) if size > 0 else None)
        except NasforgeError as exc:
            row.update(decisions=None, size=None, error=str(exc))
        rows.append(row)
    return rows


def _make_space(args: argparse.Namespace) -> Any:
    if not args.name and not args.preset:
        raise ConfigError(f"'nasforge spaces {args.action}' needs a space name; allowed: "
                          + ", ".join(SPACES.names()))
    options = parse_options(args.space_option)
    if args.preset:
        from nasforge.spaces.presets import resolve_preset

        name, options = resolve_preset(args.name, args.preset, options)
        return SPACES.create(name, **options)
    return SPACES.create(args.name, **options)


def run(args: argparse.Namespace) -> int:
    """Run the spaces command."""
    if args.action == "list":
        return _run_list(args)
    if args.action == "check":
        return _run_check(args)
    return _run_draw(args)


def list_preset_rows() -> list[dict[str, Any]]:
    """Every task preset with its space, description and the exact size of its space."""
    from nasforge.spaces.presets import list_presets

    rows = []
    for p in list_presets():
        space = SPACES.create(p["space"], **p["options"])
        rows.append({**p, "size": str(int(space.size()))})
    return rows


def _run_list(args: argparse.Namespace) -> int:
    rows = list_spaces()
    presets = list_preset_rows()
    if args.json:
        write_json({"spaces": rows, "presets": presets}, args.json)
        return 0
    table = Table(title="search spaces")
    for col in ("name", "size", "decisions", "description"):
        table.add_column(col, justify="right" if col in ("size", "decisions") else "left")
    for r in rows:
        size = int(r["size"]) if r.get("size") is not None else None
        table.add_row(r["name"], _size_text(size), str(r.get("decisions") or "?"),
                      r.get("error") or r["description"])
    console.print(table)
    table = Table(title="task presets (--preset NAME, preset: NAME)")
    for col in ("name", "space", "size", "description"):
        table.add_column(col, justify="right" if col == "size" else "left")
    for p in presets:
        table.add_row(p["name"], p["space"], _size_text(int(p["size"])), p["description"])
    console.print(table)
    return 0


def _run_check(args: argparse.Namespace) -> int:
    from nasforge.space.checks import check_space, worst_level

    space = _make_space(args)
    findings = check_space(space, samples=args.samples, seed=args.seed)
    worst = worst_level(findings)
    if args.json:
        write_json({"space": space.name, "worst": worst,
                    "findings": [f.to_dict() for f in findings]}, args.json)
    else:
        table = Table(title=f"design checks: {space.name}")
        table.add_column("level")
        table.add_column("check")
        table.add_column("finding")
        for f in findings:
            table.add_row(f"[{_STYLE[f.level]}]{f.level}[/]", f.check, f.message)
        console.print(table)
    # Failing checks make the exit status non-zero, so CI can guard a space's design.
    return 1 if worst == "fail" else 0


def _check_part(space: SearchSpace, part: str | None) -> None:
    """Refuse a ``--part`` the space does not have (spaces list theirs in ``graph_parts``)."""
    if part is None:
        return
    parts = space.graph_parts
    if not parts:
        raise ConfigError(f"space {space.name!r} draws its whole network and has no parts; drop "
                          f"--part {part!r}")
    if part not in parts:
        raise unknown(f"part of space {space.name!r}", part, parts)


def _run_draw(args: argparse.Namespace) -> int:
    from nasforge.report.diagrams import draw

    space = _make_space(args)
    _check_part(space, args.part)
    if not args.arch:
        raise ConfigError("'nasforge spaces draw NAME ARCH' needs an architecture (or sample:SEED)")
    if not args.output:
        raise ConfigError("'nasforge spaces draw' needs -o FILE (.png or .svg)")
    if args.arch.startswith("sample:"):
        try:
            seed = int(args.arch.split(":", 1)[1])
        except ValueError:
            raise ConfigError(
                f"ARCH {args.arch!r}: write sample:SEED with an integer seed"
            ) from None
        arch = space.sample(seed)
    else:
        arch = space.from_string(args.arch)
    paths = draw(space, arch, args.output, part=args.part)
    if args.json:
        write_json({"space": space.name, "arch": space.to_string(arch),
                    "files": [str(p) for p in paths]}, args.json)
    else:
        for p in paths:
            console.print(f"wrote {p}")
    return 0
