"""``nasforge train ARCH.json``: retrain an exported architecture and save the final model."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from nasforge.cli.common import console, fmt_metric, write_json
from nasforge.config import parse_options
from nasforge.errors import ConfigError


def register(sub: Any) -> None:
    """Add the ``train`` subcommand."""
    p: argparse.ArgumentParser = sub.add_parser(
        "train",
        help="retrain an exported architecture longer and save the model (+ ONNX)",
        description="Train an architecture from scratch (the final training after a search) and "
        "save model.pt (weights, architecture, metrics, learning curve), model.pt2 (a "
        "torch.export program that plain PyTorch loads without nasforge), arch.json, metrics.json "
        "and, when onnx and onnxruntime are installed, model.onnx, both checked against PyTorch. "
        "Data, "
        "network size and training recipe default to what the search used; flags override them.",
    )
    p.add_argument("arch", metavar="ARCH.json", help="architecture file from `nasforge export`")
    p.add_argument("--epochs", type=int, default=10, metavar="N", help="epochs (default 10)")
    p.add_argument("--dataset", help="dataset name (default: the one the search used)")
    p.add_argument("--data", metavar="DIR", help="directory holding the dataset files")
    p.add_argument("--train-subset", type=float, metavar="N",
                   help="train on N images (or a fraction if < 1) instead of the whole split")
    p.add_argument("--val-size", type=float, metavar="N",
                   help="images (or fraction) held out of training for validation (default 0.1)")
    p.add_argument("--test-subset", type=float, metavar="N",
                   help="score on N test images (or a fraction) instead of the whole test split")
    p.add_argument("--build-option", action="append", metavar="K=V",
                   help="network option for space.build, e.g. C=16 (repeatable)")
    p.add_argument("--train-option", action="append", metavar="K=V",
                   help="training option, e.g. lr=0.05, batch_size=256, optimizer=adamw "
                   "(repeatable)")
    p.add_argument("-o", "--out", metavar="DIR",
                   help="output folder (default: <ARCH>-trained beside the architecture file)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--no-onnx", action="store_true", help="do not write model.onnx")
    p.add_argument("--no-pt2", action="store_true",
                   help="do not write model.pt2 (the torch.export program)")
    p.add_argument("--json", nargs="?", const="-", metavar="FILE",
                   help="write the metrics and paths as JSON (stdout if no FILE)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=run)


def _count(value: float | None, flag: str) -> int | float | None:
    """``--train-subset 2000`` -> 2000 (images); ``0.5`` -> 0.5 (fraction)."""
    if value is None:
        return None
    if value <= 0:
        raise ConfigError(f"{flag} must be positive, got {value:g}")
    return int(value) if value >= 1 and float(value).is_integer() else value


def run(args: argparse.Namespace) -> int:
    """Run the train command."""
    from nasforge.train import EpochStats, load_arch_file, retrain

    if args.epochs < 1:
        raise ConfigError(f"--epochs must be >= 1, got {args.epochs}")
    af = load_arch_file(args.arch)
    out = Path(args.out) if args.out else Path(args.arch).with_name(Path(args.arch).stem
                                                                     + "-trained")
    quiet = args.quiet or args.json == "-"
    progress = None if quiet else Progress(
        TextColumn("[bold]train[/bold] epoch"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TimeRemainingColumn(),
        console=console,
    )
    task = None

    def on_epoch(stats: EpochStats) -> None:
        if progress is not None and task is not None:
            acc = "-" if stats.val_accuracy is None else f"{stats.val_accuracy:.2f}%"
            progress.update(task, advance=1,
                            status=f"loss {stats.train_loss:.3f} val acc {acc}")

    if progress is not None:
        progress.start()
        task = progress.add_task("train", total=args.epochs, status="loading data")
    try:
        result = retrain(
            af, out, epochs=args.epochs, dataset=args.dataset, data_dir=args.data,
            train_subset=_count(args.train_subset, "--train-subset"),
            val_size=_count(args.val_size, "--val-size"),
            test_subset=_count(args.test_subset, "--test-subset"),
            build_kwargs=parse_options(args.build_option),
            train_options=parse_options(args.train_option), device=args.device, seed=args.seed,
            onnx=not args.no_onnx, on_epoch=on_epoch, program=not args.no_pt2,
        )
    finally:
        if progress is not None:
            progress.stop()
    if not quiet:
        m = result.metrics
        shown = {k: m[k] for k in ("test_accuracy", "test_map", "test_map_50", "val_accuracy", "params", "seconds")
                 if m.get(k) is not None}
        console.print("trained: " + ", ".join(f"{k}={fmt_metric(v)}" for k, v in shown.items()))
        console.print(f"saved {result.checkpoint}"
                      + "".join(f", {p}" for p in (result.program, result.onnx) if p)
                      + f" (+ arch.json, metrics.json in {result.out_dir})")
        if result.onnx_skipped and not args.no_onnx:
            console.print(f"no ONNX file: {result.onnx_skipped}")
        if result.program_skipped and not args.no_pt2:
            console.print(f"no model.pt2: {result.program_skipped}")
    if args.json:
        write_json(result.to_dict(), args.json)
    return 0
