"""Figures for the one-shot supernets: DARTS search-step time and peak memory, and how well
supernet-inherited accuracy ranks architectures.

    .venv/bin/python benchmarks/supernet_darts.py [--steps 3] [--device auto] [--skip-rank]
        [--rank-epochs 8] [--rank-subset 6000] [--rank-archs 50] [--nb201 DIR] [--data DIR]

1. Speed and memory. One DARTS search step (architecture step on a validation batch, then weight
   step on a training batch) of the paper's search networks, batch 64, 32x32x3 inputs, random data:
   the NAS-Bench-201 supernet (C=16, 5 cells per stage, as in the benchmark's DARTS baseline) and
   the DARTS supernet (C=16, 8 cells, 4 nodes, 8 ops: the paper's search network); first and
   second order. Each configuration runs in its own process, so "peak memory" is that process's
   peak resident set size (CPU) or ``torch.cuda.max_memory_allocated`` (CUDA) — the whole step,
   model, activations and optimizer states included.
2. Ranking quality. A NAS-Bench-201 supernet (C=8, one cell per stage) is trained with SPOS
   (uniform single paths) on a Fashion-MNIST subset; a random sample of cells is scored with
   inherited weights (BatchNorm recalibrated per cell) and the scores are correlated (Kendall tau,
   Spearman rho) with the stand-alone accuracy of the same cells: their NAS-Bench-201 CIFAR-10 test
   accuracy after 200 epochs (``cifar10_test_acc_200``), which is the only honest stand-alone
   reference available here (training every sampled cell from scratch is out of reach on a CPU).
   The supernet sees another dataset (Fashion-MNIST) and a much smaller network and budget than the
   table's, so the figure measures transfer of the ranking, not the supernet's ceiling.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from typing import Any

import torch


def measure(space_name: str, order: int, steps: int, device: str) -> dict[str, Any]:
    """Time per DARTS step and peak memory of one configuration (run in a fresh process)."""
    import nasforge
    from nasforge.data import DataSplits, from_tensors
    from nasforge.oneshot.darts import Darts
    from nasforge.oneshot.supernet import seeded_supernet

    build = {"nb201": {"C": 16, "N": 5}, "darts": {"C": 16, "layers": 8}}[space_name]
    space = nasforge.create_space(space_name)
    gen = torch.Generator().manual_seed(0)
    n = 64 * (steps + 1)

    def data() -> Any:
        return from_tensors(torch.randn(n, 3, 32, 32, generator=gen), torch.randint(0, 10, (n,), generator=gen),
                            num_classes=10)

    net = seeded_supernet(space, 0, **build)
    search = Darts(net, DataSplits(data(), data()), epochs=1, batch_size=64, order=order,
                   augment="none", device=device)
    dev = search.device
    batches = list(search.train_batches.epoch(0))
    valid = list(search.valid_batches.epoch(0))
    search.supernet.train()
    search.start_epoch(0)
    search.train_step(batches[0], valid[0])  # warm-up (allocator, kernels, optimizer state)
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for i in range(1, steps + 1):
        t0 = time.perf_counter()
        search.train_step(batches[i], valid[i])
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
        kind = "cuda max_memory_allocated"
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        kind = "process peak RSS"
    params = sum(p.numel() for p in net.weight_parameters())
    return {"space": space_name, "order": order, "device": str(dev), "threads": torch.get_num_threads(),
            "step_s": sorted(times)[len(times) // 2], "peak_mib": peak, "memory": kind,
            "weights_m": params / 1e6, "build": build}


def speed(args: argparse.Namespace) -> None:
    for space_name in ("nb201", "darts"):
        for order in (1, 2):
            cmd = [sys.executable, __file__, "--measure", space_name, str(order), "--steps",
                   str(args.steps), "--device", args.device]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=os.environ)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"DARTS {'2nd' if order == 2 else '1st'} order, {space_name} supernet "
                  f"{r['build']} ({r['weights_m']:.2f} M weights), batch 64, 32x32, {r['device']}"
                  f" x{r['threads']} threads: {r['step_s']:.3f} s/step (median of {args.steps}), "
                  f"peak memory {r['peak_mib']:.0f} MiB ({r['memory']})", flush=True)


def ranking(args: argparse.Namespace) -> None:
    from scipy.stats import kendalltau, spearmanr

    import nasforge
    from nasforge.benchmarks import NB201Table
    from nasforge.cli.oneshot import nb201_table_path
    from nasforge.data import make_splits
    from nasforge.evaluators.weight_sharing import WeightSharingEvaluator
    from nasforge.oneshot.spos import Spos
    from nasforge.oneshot.supernet import seeded_supernet

    # --nb201, else $NASFORGE_NB201, else ../shared/benchmarks/nb201 beside the project.
    table = NB201Table.load(nb201_table_path(args.nb201))
    space = nasforge.create_space("nb201")
    half = args.rank_subset // 2
    splits = make_splits("fashion_mnist", data_dir=args.data, val_size=0.5, train_subset=half,
                         val_subset=half, seed=0)
    net = seeded_supernet(space, 0, C=8, N=1, in_channels=1)
    t0 = time.perf_counter()
    spos = Spos(net, splits, epochs=args.rank_epochs, batch_size=64, search_trials=1, bn_batches=1,
                device=args.device)
    spos.run()
    train_s = time.perf_counter() - t0
    rng = torch.Generator().manual_seed(1)
    archs: list[nasforge.Architecture] = []
    while len(archs) < args.rank_archs:
        arch = space.sample(int(torch.randint(2**31, (1,), generator=rng)))
        if arch not in archs:
            archs.append(arch)
    ev = WeightSharingEvaluator(supernet=net, splits=splits, batch_size=256, bn_batches=4,
                                device=args.device)
    ev.bind(space)
    t0 = time.perf_counter()
    inherited = [ev.evaluate(a).metrics["accuracy"] for a in archs]
    eval_s = (time.perf_counter() - t0) / len(archs)
    truth = [table.query(a, "cifar10", 200).test_acc for a in archs]
    tau = kendalltau(inherited, truth)
    rho = spearmanr(inherited, truth)
    print(f"ranking: SPOS supernet (nb201, C=8, N=1) trained {args.rank_epochs} epochs on "
          f"{half} Fashion-MNIST images ({train_s:.0f} s); {len(archs)} random cells scored with "
          f"inherited weights + BN recalibration ({eval_s:.2f} s/cell, {half} validation images)")
    print(f"ranking vs stand-alone NAS-Bench-201 cifar10_test_acc_200: Kendall tau "
          f"{tau.statistic:.3f} (p={tau.pvalue:.2g}), Spearman rho {rho.statistic:.3f} "
          f"(p={rho.pvalue:.2g})")
    degenerate = sum(space.is_degenerate(a) for a in archs)  # type: ignore[attr-defined]
    print(f"  ({degenerate} of the cells are degenerate: constant output, ~10 % on both sides)")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--steps", type=int, default=2, help="timed steps per configuration")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-rank", action="store_true")
    parser.add_argument("--rank-epochs", type=int, default=8)
    parser.add_argument("--rank-subset", type=int, default=6000)
    parser.add_argument("--rank-archs", type=int, default=50)
    parser.add_argument("--nb201", default=None,
                        help="NAS-Bench-201 table (default $NASFORGE_NB201 or ../shared/benchmarks/nb201)")
    parser.add_argument("--data", default=None, help="Fashion-MNIST directory")
    parser.add_argument("--measure", nargs=2, metavar=("SPACE", "ORDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure[0], int(args.measure[1]), args.steps, args.device)))
        return
    if not args.skip_speed:
        speed(args)
    if not args.skip_rank:
        ranking(args)


if __name__ == "__main__":
    main()
