"""Executor overhead per trial (inline, process pool, Ray) and training throughput (1 vs 2 workers).

Part 1 runs the NAS-Bench-201 tabular evaluator (a trial costs microseconds), so the time per trial
is the executor's own overhead: queueing, pickling the job, the round trip to a worker and back.
Start-up (spawning workers, starting Ray) is reported separately from the steady state.

Part 2 trains small networks: the NB201 cell network (C=8, one cell per stage) for one epoch on a
1,024-image Fashion-MNIST subset through ``create_evaluator("train", ...)``, or, when that data is
missing, the same network on synthetic tensors inside a FunctionEvaluator. It compares trials per
minute with one worker (all cores) and two workers (cores // 2 torch threads each).

    nice -n 10 .venv/bin/python benchmarks/executors.py            # everything (~2-4 minutes)
    nice -n 10 .venv/bin/python benchmarks/executors.py --no-ray   # without Ray
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import nasforge
from nasforge.evaluators.base import EvalContext, Evaluator
from nasforge.evaluators.function import FunctionEvaluator
from nasforge.experiment import (
    Budget,
    Event,
    EventKind,
    Executor,
    Experiment,
    InlineExecutor,
    MemoryStorage,
    ProcessExecutor,
    RayExecutor,
)
from nasforge.space.architecture import Architecture

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loop_overhead import find_nb201, make_evaluator

FASHION = Path("/usr/share/datasets/fashion-mnist")


def timed_run(space: nasforge.SearchSpace, evaluator: Evaluator, executor: Executor,
              trials: int) -> dict[str, float]:
    """Run ``trials`` trials; return start-up seconds and steady-state seconds per trial."""
    stamps: list[float] = []
    started: list[float] = []

    def on_event(event: Event) -> None:
        if event.kind is EventKind.EXPERIMENT_STARTED:
            started.append(time.perf_counter())
        elif event.kind in (EventKind.TRIAL_FINISHED, EventKind.TRIAL_FAILED):
            stamps.append(time.perf_counter())

    strategy = nasforge.create_strategy("random", space, seed=0)
    t0 = time.perf_counter()
    exp = Experiment(space, strategy, evaluator, budget=Budget(max_trials=trials),
                     storage=MemoryStorage(), executor=executor, device="cpu",
                     callbacks=[on_event])
    exp.run()
    failed = [t for t in exp.trials if not t.ok]
    if failed:
        raise RuntimeError(f"{len(failed)} trial(s) failed, e.g.: {failed[0].error}")
    # Skip the first few results: workers warm up (imports, first allocations).
    skip = min(len(stamps) // 5, 20)
    steady = (stamps[-1] - stamps[skip]) / max(1, len(stamps) - 1 - skip)
    return {"startup_s": stamps[0] - t0, "steady_s_per_trial": steady,
            "total_s": time.perf_counter() - t0}


def tiny_training(arch: Architecture, ctx: EvalContext) -> dict[str, float]:
    """Fallback: train the small NB201 network for a few steps on synthetic 28x28 images."""
    import torch

    torch.manual_seed(ctx.seed % 2**31)
    model = nasforge.create_space("nb201").build(arch, num_classes=10, C=8, N=1, in_channels=1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x = torch.randn(1024, 1, 28, 28)
    y = torch.randint(0, 10, (1024,))
    model.train()
    for i in range(0, 1024, 128):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x[i:i + 128]), y[i:i + 128])
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(x[:256]).argmax(1) == y[:256]).float().mean().item()
    return {"accuracy": 100.0 * acc}


def training_evaluator() -> tuple[Evaluator, str]:
    if (FASHION / "train-images-idx3-ubyte.gz").exists() or (
            FASHION / "train-images-idx3-ubyte").exists():
        try:
            ev = nasforge.create_evaluator(
                "train", dataset="fashion_mnist", data_dir=str(FASHION), train_subset=1024,
                val_subset=256, epochs=1, batch_size=128, augment="none",
                build_kwargs={"C": 8, "N": 1})
            return ev, "create_evaluator('train', fashion_mnist 1024 images, 1 epoch, C=8 N=1)"
        except Exception as exc:  # fall back to synthetic data
            print(f"(training evaluator unavailable: {exc}; using synthetic data)")
    return FunctionEvaluator(tiny_training), "NB201 C=8 N=1 on synthetic data (FunctionEvaluator)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=1000, help="tabular trials per executor")
    parser.add_argument("--ray-trials", type=int, default=300)
    parser.add_argument("--train-trials", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-ray", action="store_true")
    parser.add_argument("--no-train", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    space = nasforge.create_space("nb201")
    figures: dict[str, Any] = {"cpu_cores": os.cpu_count()}
    evaluator, what = make_evaluator(space)
    if find_nb201() is None:
        print("note: NAS-Bench-201 table not found; the dict lookup stands in for it")
    print(f"part 1: executor overhead, evaluator: {what}")
    w = args.workers
    runs: list[tuple[str, Any, int]] = [
        ("inline", InlineExecutor(), args.trials),
        (f"process x{w}", ProcessExecutor(workers=w), args.trials),
    ]
    if not args.no_ray:
        runs.append((f"ray x{w} (local)", RayExecutor(workers=w), args.ray_trials))
    for name, executor, n in runs:
        r = timed_run(space, evaluator, executor, n)
        figures[f"overhead/{name}"] = r
        print(f"  {name:18s} {r['steady_s_per_trial'] * 1e6:9.0f} us/trial steady state, "
              f"start-up {r['startup_s']:.1f} s ({n} trials)")

    if not args.no_train:
        train_ev, what = training_evaluator()
        print(f"part 2: training throughput, {args.train_trials} trials, evaluator: {what}")
        # One worker with all cores, one worker with one thread (separates the effect of torch's
        # thread count from that of running two trials at once), and ``w`` workers.
        for workers, threads in ((1, None), (1, 1), (w, None)):
            executor = ProcessExecutor(workers=workers, threads=threads)
            r = timed_run(space, train_ev, executor, args.train_trials)
            per_min = 60.0 / r["steady_s_per_trial"]
            key = f"train/process x{workers}, {executor.threads} thread(s)"
            figures[key] = {**r, "trials_per_min": per_min}
            print(f"  process x{workers} ({executor.threads} thread(s) each) "
                  f"{per_min:7.1f} trials/min steady state, start-up {r['startup_s']:.1f} s")
    if args.json:
        print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
