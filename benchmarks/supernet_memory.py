"""Peak memory and time of one first-order DARTS search step: nasforge's variants beside the original code.

    nice -n 10 .venv/bin/python benchmarks/supernet_memory.py --original /work/ref/darts \
        [--batch 64] [--repeats 3] [--variants ours ours_mixed_op ours_cell pcdarts original]
        [--threads 1] [--json out.json]

The setting of issue 16: the DARTS search network with C=16 and 8 cells, batch 64 of 32x32x3
random images, 10 classes, on the CPU. One step is what DARTS' first-order search does per batch:
an architecture step (Adam on the alphas, gradient of the loss on a validation batch), then a
weight step (SGD with momentum, gradient clipping at 5) on a training batch.

Variants:

- ``ours``: nasforge's default (faithful) DARTS supernet and its ``darts`` step;
- ``ours_mixed_op`` / ``ours_cell``: the same with activation checkpointing per mixed op / per cell;
- ``pcdarts``: the ``pcdarts`` step on a supernet with partial channels (K=4) and edge
  normalization (Xu et al., ICLR 2020);
- ``original``: the original DARTS code (``model_search.Network`` and its ``Architect`` with
  ``unrolled=False``, then the weight step of its ``train_search.py``), imported from the
  checkout given by ``--original`` (its ``cnn/`` folder); the row is skipped without it. Nothing
  of it is copied here: the script calls it.

Each measurement runs in a fresh process (``--measure``), one at a time: build the network, one
``--warmup`` untimed steps (default 1: allocator, optimizer states), ``--steps`` timed steps (wall and CPU time). Memory
is the process's peak resident set size after the steps (``ru_maxrss``) minus its resident size
just before building the network (the interpreter, torch and the data), so it counts the network,
the optimizer states and the step's activations. Repeats are interleaved (the order of the
variants rotates from repeat to repeat) and reported as median with min-max; ratios to the
original are paired per repeat. The original step needs ~9.4 GiB: never run two of these at once
on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _measure

VARIANTS = ("ours", "ours_mixed_op", "ours_cell", "pcdarts", "original")
C, LAYERS, CLASSES, SIZE = 16, 8, 10, 32
W_LR, W_MOMENTUM, W_DECAY, CLIP = 0.025, 0.9, 3e-4, 5.0
A_LR, A_BETAS, A_DECAY = 3e-4, (0.5, 0.999), 1e-3


def rss_mib() -> float:
    """Current resident set size of this process (MiB)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def data(batch: int, count: int) -> list[Any]:
    """``count`` (train x, train y, valid x, valid y) batches of random data (seeded)."""
    import torch

    gen = torch.Generator().manual_seed(0)
    return [
        (
            torch.randn(batch, 3, SIZE, SIZE, generator=gen),
            torch.randint(0, CLASSES, (batch,), generator=gen),
            torch.randn(batch, 3, SIZE, SIZE, generator=gen),
            torch.randint(0, CLASSES, (batch,), generator=gen),
        )
        for _ in range(count)
    ]


def ours_step(variant: str, batch: int) -> tuple[Callable[[Any], None], int]:
    """The step function of a nasforge variant and its number of weights."""
    import nasforge
    from nasforge.data import DataSplits, from_tensors
    from nasforge.oneshot.methods import create_search
    from nasforge.supernet import seeded_supernet

    space = nasforge.create_space("darts")
    build: dict[str, Any] = {"C": C, "layers": LAYERS, "num_classes": CLASSES}
    method = "darts"
    if variant == "pcdarts":
        build.update(partial_channels=4, edge_normalization=True)
        method = "pcdarts"
    elif variant != "ours":
        build["checkpointing"] = variant.removeprefix("ours_")
    net = seeded_supernet(space, 0, **build)
    # The search needs splits; the step is fed the benchmark's own batches below.
    import torch

    tiny = from_tensors(torch.zeros(batch, 3, SIZE, SIZE), torch.zeros(batch, dtype=torch.long), num_classes=CLASSES)
    options: dict[str, Any] = {"warmup_epochs": 0} if method == "pcdarts" else {}
    search = create_search(
        method, net, DataSplits(tiny, tiny), epochs=1, batch_size=batch, augment="none", device="cpu", **options
    )
    search.supernet.train()
    search.start_epoch(0)

    def step(b: Any) -> None:
        xt, yt, xv, yv = b
        search.train_step((xt, yt), (xv, yv))

    return step, sum(p.numel() for p in net.weight_parameters())


def original_step(path: Path, batch: int) -> tuple[Callable[[Any], None], int]:
    """The original DARTS code's first-order step (its Architect, then its weight update)."""
    import types

    import torch
    from torch import nn

    # The original moves tensors with .cuda(); on a CPU-only machine that must be a no-op.
    torch.Tensor.cuda = lambda self, *a, **k: self  # type: ignore[method-assign,assignment]
    sys.path.insert(0, str(path / "cnn"))
    from architect import Architect  # type: ignore[import-not-found]
    from model_search import Network  # type: ignore[import-not-found]

    torch.manual_seed(0)
    criterion = nn.CrossEntropyLoss()
    model = Network(C, CLASSES, LAYERS, criterion)
    optimizer = torch.optim.SGD(model.parameters(), W_LR, momentum=W_MOMENTUM, weight_decay=W_DECAY)
    args = types.SimpleNamespace(
        momentum=W_MOMENTUM, weight_decay=W_DECAY, arch_learning_rate=A_LR, arch_weight_decay=A_DECAY
    )
    architect = Architect(model, args)
    model.train()

    def step(b: Any) -> None:
        xt, yt, xv, yv = b
        architect.step(xt, yt, xv, yv, W_LR, optimizer, unrolled=False)
        optimizer.zero_grad()
        loss = criterion(model(xt), yt)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        optimizer.step()

    return step, sum(p.numel() for p in model.parameters())


def measure(variant: str, batch: int, steps: int, warmup: int, threads: int, original: str | None) -> dict[str, Any]:
    """One configuration in this (fresh) process: memory and per-step wall/CPU time."""
    import torch

    torch.set_num_threads(threads)
    batches = data(batch, steps + warmup)
    base = rss_mib()
    if variant == "original":
        assert original is not None
        step, weights = original_step(Path(original), batch)
    else:
        step, weights = ours_step(variant, batch)
    for b in batches[:warmup]:
        step(b)
    wall, cpu = [], []
    for b in batches[warmup:]:
        t0, c0 = time.perf_counter(), time.process_time()
        step(b)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {
        "variant": variant,
        "weights": weights,
        "batch": batch,
        "threads": threads,
        "rss_before_mib": base,
        "peak_rss_mib": peak,
        "peak_mib": peak - base,
        "wall_s": wall,
        "cpu_s": cpu,
    }


def run_one(variant: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        "--measure",
        variant,
        "--batch",
        str(args.batch),
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
        "--threads",
        str(args.threads),
    ]
    if args.original:
        cmd += ["--original", args.original]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    print(
        f"  {variant}: {result['peak_mib'] / 1024:.2f} GiB, "
        f"{sum(result['wall_s']) / len(result['wall_s']):.1f} s wall, "
        f"{sum(result['cpu_s']) / len(result['cpu_s']):.1f} s CPU per step (load {_measure.load_average()})",
        flush=True,
    )
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--original", help="checkout of the original DARTS code (its cnn/ folder is imported)")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=1, help="timed steps per process")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps before them (0: time the first step)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", help="write every measurement to this file")
    p.add_argument("--measure", choices=VARIANTS, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.batch, args.steps, args.warmup, args.threads, args.original)))
        return
    variants = list(args.variants)
    if "original" in variants and not (args.original and (Path(args.original) / "cnn" / "model_search.py").is_file()):
        print(f"no original DARTS code at {args.original!r} (--original): its row is skipped")
        variants.remove("original")
    print(
        f"DARTS first-order step, C={C}, {LAYERS} cells, batch {args.batch}, {SIZE}x{SIZE}, CPU x{args.threads} "
        f"thread(s); {args.warmup} warm-up + {args.steps} timed step(s) per process; {args.repeats} "
        f"interleaved repeats; load {_measure.load_average()}",
        flush=True,
    )
    results: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    for r in range(args.repeats):
        print(f"repeat {r + 1}/{args.repeats}", flush=True)
        for v in _measure.rotation(variants, r):
            results[v].append(run_one(v, args))
    report(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


def report(results: dict[str, list[dict[str, Any]]]) -> None:
    print(
        "\n| variant | weights | peak memory GiB | vs original | s/step wall | s/step CPU | vs original (wall / CPU) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    ref = results.get("original")
    for v, rs in results.items():
        mem = _measure.summarize([r["peak_mib"] / 1024 for r in rs])
        wall = _measure.summarize([_median(r["wall_s"]) for r in rs])
        cpu = _measure.summarize([_median(r["cpu_s"]) for r in rs])
        mem_ratio = time_ratio = "—"
        if ref is not None and v != "original":
            m = _measure.summarize(
                _measure.paired([r["peak_mib"] for r in rs], [r["peak_mib"] for r in ref], lambda a, b: a / b)
            )
            t = _measure.summarize(
                _measure.paired(
                    [_median(r["wall_s"]) for r in rs], [_median(r["wall_s"]) for r in ref], lambda a, b: a / b
                )
            )
            c = _measure.summarize(
                _measure.paired(
                    [_median(r["cpu_s"]) for r in rs], [_median(r["cpu_s"]) for r in ref], lambda a, b: a / b
                )
            )
            mem_ratio = f"{m.median:.2f} ({m.min:.2f}..{m.max:.2f})"
            time_ratio = f"{t.median:.2f} ({t.min:.2f}..{t.max:.2f}) / {c.median:.2f} ({c.min:.2f}..{c.max:.2f})"
        print(
            f"| {v} | {rs[0]['weights']:,} | {mem.median:.2f} ({mem.min:.2f}..{mem.max:.2f}) | {mem_ratio} | "
            f"{wall.median:.1f} ({wall.min:.1f}..{wall.max:.1f}) | {cpu.median:.1f} ({cpu.min:.1f}..{cpu.max:.1f}) | "
            f"{time_ratio} |"
        )


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


if __name__ == "__main__":
    main()
