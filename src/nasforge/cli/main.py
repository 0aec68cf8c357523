"""Entry point of the ``nasforge`` command: builds the parser from one module per subcommand.

Each command module defines ``register(subparsers)``, which adds its parser and sets
``func=run`` (a function ``(args) -> int`` returning the exit code).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from nasforge.errors import NasforgeError, file_error

# Subcommand modules under nasforge.cli, in the order `nasforge --help` lists them.
COMMANDS: tuple[str, ...] = (
    "search",
    "bench",
    "show",
    "spaces",
    "oneshot",
    "init",
    "report",
    "export",
    "train",
    "predict",
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (used by ``main`` and by the docs tests)."""
    parser = argparse.ArgumentParser(
        prog="nasforge",
        description="Neural architecture search for PyTorch.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"nasforge.cli.{name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code: int = args.func(args)
    except NasforgeError as exc:
        # User errors get one clear line, not a traceback.
        print(f"nasforge: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nasforge: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except OSError as exc:
        # A file that cannot be read or written (a directory without permission, a full disk)
        # anywhere in a command: the file and the cause, not a traceback.
        print(f"nasforge: error: {file_error(exc, action='use')}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
