"""Figures for the one-shot supernets: DARTS search-step time and peak memory, and how well
supernet-inherited accuracy ranks architectures.

    .venv/bin/python benchmarks/supernet_darts.py [--speed-spaces nb201 [darts]] [--steps 5]
        [--speed-C 16] [--speed-batch 64] [--device auto] [--skip-rank] [--rank-epochs 5] [--rank-subset 1600]
        [--rank-archs 20] [--standalone-archs 12] [--standalone-epochs 1] [--rank-C 8]
        [--rank-N 1] [--nb201 DIR] [--data DIR]

The defaults run the ranking section only, about 7 minutes on 2 shared CPU cores. The speed
section is opt-in (``--speed-spaces``): one DARTS step of these paper-sized networks takes from
about half a minute (NAS-Bench-201, first order) to several minutes (DARTS, second order) there.

1. Speed and memory. DARTS search steps (architecture step on a validation batch, then weight
   step on a training batch) of the paper's search networks, batch 64, 32x32x3 inputs, random data,
   interleaved with plain weight steps of the same supernet (forward, cross-entropy, backward, SGD,
   written in plain PyTorch: the reference that prices the architecture step). After one warm-up
   step of each, ``--steps`` of each alternate (DARTS, plain, plain, DARTS, ...); printed are the
   median wall and CPU time per step with its spread (IQR, min-max, n) and the median paired
   ratio DARTS / plain with a bootstrap 95% interval (``benchmarks/_measure.py``).
   ``--speed-C``/``--speed-batch`` shrink the networks for a quick check.
   ``--speed-spaces nb201``: the NAS-Bench-201 supernet (C=16, 5 cells per stage, as in the
   benchmark's DARTS baseline); ``darts``: the DARTS supernet (C=16, 8 cells, 4 nodes, 8 ops: the
   paper's search network; minutes per second-order step on a CPU); first and second order. Each
   configuration runs in its own process, so "peak memory" is that process's peak resident set
   size (CPU) or ``torch.cuda.max_memory_allocated`` (CUDA) — the whole step, model, activations
   and optimizer states included.
2. Ranking quality. A NAS-Bench-201 supernet (C=8, one cell per stage) is trained with SPOS
   (uniform single paths) on a Fashion-MNIST subset, half of it for training and half held out.
   A random sample of cells is scored with inherited weights (BatchNorm recalibrated per cell on
   two training batches, accuracy on the held-out half). The first ``--standalone-archs`` of them
   are also trained from scratch as stand-alone networks of the same size (the training evaluator,
   SGD with cosine schedule) on the same training images and scored on the same held-out images.
   The figure is the rank correlation (Kendall tau, Spearman rho) between inherited and
   stand-alone accuracy, also with the degenerate cells (constant output, chance accuracy on both
   sides, which inflates any correlation) left out. The stand-alone runs are short, so they are
   themselves a proxy of fully trained accuracy; raise ``--standalone-epochs`` and
   ``--rank-subset`` for a stricter reference. Secondary figure: the correlation of both with the
   cells' NAS-Bench-201 CIFAR-10 test accuracy after 200 epochs (another dataset, network size and
   budget, so it measures transfer of the ranking, not the supernet).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from typing import Any

import torch
import torch.nn.functional as F
from _measure import (
    Clock,
    Spread,
    Stopwatch,
    bootstrap_ci,
    clock_spreads,
    interleaved,
    load_average,
    paired,
    summarize,
    timed,
)


def measure(space_name: str, order: int, steps: int, device: str, C: int, batch: int) -> dict[str, Any]:
    """Time per DARTS step, interleaved with a plain weight step, and peak memory of one
    configuration (run in a fresh process)."""
    import nasforge
    from nasforge.data import DataSplits, from_tensors
    from nasforge.oneshot.darts import Darts
    from nasforge.supernet import seeded_supernet

    build = {"nb201": {"C": C, "N": 5}, "darts": {"C": C, "layers": 8}}[space_name]
    space = nasforge.create_space(space_name)
    gen = torch.Generator().manual_seed(0)
    n = batch * (2 * steps + 2)  # distinct batches for every timed step and the warm-up

    def data() -> Any:
        return from_tensors(
            torch.randn(n, 3, 32, 32, generator=gen), torch.randint(0, 10, (n,), generator=gen), num_classes=10
        )

    net = seeded_supernet(space, 0, **build)
    search = Darts(
        net, DataSplits(data(), data()), epochs=1, batch_size=batch, order=order, augment="none", device=device
    )
    dev = search.device
    batches = list(search.train_batches.epoch(0))
    valid = list(search.valid_batches.epoch(0))
    supernet = search.supernet
    supernet.train()
    search.start_epoch(0)
    # The reference: one plain PyTorch training step of the same supernet's weights (forward,
    # cross-entropy, backward, SGD with momentum), written here without nasforge's search code.
    # A DARTS step adds the architecture step (first order: one more forward/backward on a
    # validation batch; second order: the unrolled gradient), so the ratio prices that step.
    plain_opt = torch.optim.SGD(supernet.weight_parameters(), lr=0.025, momentum=0.9)

    def plain(b: tuple[torch.Tensor, torch.Tensor]) -> None:
        x, y = b
        loss = F.cross_entropy(supernet(x), y)
        plain_opt.zero_grad(set_to_none=True)
        loss.backward()
        plain_opt.step()

    sync = torch.cuda.synchronize if dev.type == "cuda" else None
    used = iter(range(len(batches)))

    def darts_case() -> Clock:
        i = next(used)
        return timed(lambda: search.train_step(batches[i], valid[i]), sync=sync)[1]

    def plain_case() -> Clock:
        i = next(used)
        return timed(lambda: plain(batches[i]), sync=sync)[1]

    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    # One warm-up round (allocator, kernels, optimizer state), then alternating steps.
    runs = interleaved({"darts": darts_case, "plain": plain_case}, steps)
    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
        kind = "cuda max_memory_allocated"
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        kind = "process peak RSS"
    params = sum(p.numel() for p in net.weight_parameters())
    ratio = paired([c.wall for c in runs["darts"]], [c.wall for c in runs["plain"]], lambda d, p: d / p)
    return {
        "space": space_name,
        "order": order,
        "device": str(dev),
        "threads": torch.get_num_threads(),
        "batch": batch,
        "steps": steps,
        "darts_s": {k: v.to_dict() for k, v in clock_spreads(runs["darts"]).items()},
        "plain_s": {k: v.to_dict() for k, v in clock_spreads(runs["plain"]).items()},
        "ratio": summarize(ratio).to_dict(),
        "ratio_ci": list(bootstrap_ci(ratio)),
        "peak_mib": peak,
        "memory": kind,
        "weights_m": params / 1e6,
        "build": build,
    }


def speed(args: argparse.Namespace) -> list[dict[str, Any]]:
    results = []
    for space_name in args.speed_spaces:
        for order in (1, 2):
            cmd = [
                sys.executable,
                __file__,
                "--measure",
                space_name,
                str(order),
                "--steps",
                str(args.steps),
                "--device",
                args.device,
                "--speed-C",
                str(args.speed_C),
                "--speed-batch",
                str(args.speed_batch),
            ]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=os.environ)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            results.append(r)
            darts = {k: Spread(**v) for k, v in r["darts_s"].items()}
            plain = {k: Spread(**v) for k, v in r["plain_s"].items()}
            ratio, (lo, hi) = Spread(**r["ratio"]), r["ratio_ci"]
            print(
                f"DARTS {'2nd' if order == 2 else '1st'} order, {space_name} supernet "
                f"{r['build']} ({r['weights_m']:.2f} M weights), batch {r['batch']}, 32x32, "
                f"{r['device']} x{r['threads']} threads; {r['steps']} steps of each, "
                f"interleaved with a plain weight step, after one warm-up round:",
                flush=True,
            )
            for kind in ("wall", "cpu"):
                print(f"  DARTS step {kind:4s} {darts[kind].text('.3f', 's')}")
                print(f"  plain step {kind:4s} {plain[kind].text('.3f', 's')}")
            print(
                f"  DARTS / plain step (paired, wall) {ratio.text('.2f', 'x')}, 95% CI "
                f"{lo:.2f}..{hi:.2f}; peak memory {r['peak_mib']:.0f} MiB ({r['memory']})",
                flush=True,
            )
    return results


def clock_text(clock: Clock, per: int = 1, unit: str = "") -> str:
    """``12.3 s wall, 11.9 s CPU`` (divided by ``per`` items, e.g. cells)."""
    return f"{clock.wall / per:.2f} s{unit} wall, {clock.cpu / per:.2f} s{unit} CPU"


def _correlation(label: str, xs: list[float], ys: list[float]) -> str:
    from scipy.stats import kendalltau, spearmanr

    if len(xs) < 3 or len(set(xs)) < 2 or len(set(ys)) < 2:
        return f"{label}: too few distinct values ({len(xs)} cells) for a rank correlation"
    tau, rho = kendalltau(xs, ys), spearmanr(xs, ys)
    return (
        f"{label} ({len(xs)} cells): Kendall tau {tau.statistic:.3f} (p={tau.pvalue:.2g}), "
        f"Spearman rho {rho.statistic:.3f} (p={rho.pvalue:.2g})"
    )


def ranking(args: argparse.Namespace) -> None:
    """Rank correlation between supernet-inherited and stand-alone accuracy on one data split."""
    import nasforge
    from nasforge.benchmarks import NB201Table
    from nasforge.cli.oneshot import nb201_table_path
    from nasforge.data import make_splits
    from nasforge.evaluators.base import EvalContext
    from nasforge.evaluators.training import TrainingEvaluator
    from nasforge.evaluators.weight_sharing import WeightSharingEvaluator
    from nasforge.oneshot.ranking import candidate_architectures
    from nasforge.oneshot.spos import Spos
    from nasforge.oneshot.supernet import seeded_supernet
    from nasforge.utils.device import resolve_device

    space = nasforge.create_space("nb201")
    half = args.rank_subset // 2
    build = {"C": args.rank_C, "N": args.rank_N}
    # One split for everything: the supernet and the stand-alone networks train on the same images
    # and are scored on the same held-out images.
    split = {"data_dir": args.data, "val_size": 0.5, "train_subset": half, "val_subset": half}
    splits = make_splits("fashion_mnist", seed=0, **split)
    net = seeded_supernet(space, 0, in_channels=1, **build)
    with Stopwatch() as training:
        Spos(
            net, splits, epochs=args.rank_epochs, batch_size=64, search_trials=1, bn_batches=1, device=args.device
        ).run()
    archs = candidate_architectures(space, args.rank_archs, seed=1)
    ev = WeightSharingEvaluator(supernet=net, splits=splits, batch_size=256, bn_batches=2, device=args.device)
    ev.bind(space)
    with Stopwatch() as scoring:
        inherited = [ev.evaluate(a).metrics["accuracy"] for a in archs]
    print(
        f"ranking: SPOS supernet (nb201, {build}) trained {args.rank_epochs} epochs on {half} "
        f"Fashion-MNIST images ({clock_text(training.clock)}); {len(archs)} random cells "
        f"scored with inherited weights + BN recalibration (2 batches of 256), accuracy on "
        f"{half} held-out images ({clock_text(scoring.clock, len(archs), '/cell')})",
        flush=True,
    )

    # Stand-alone reference: the first cells of the sample trained from scratch, same network
    # size, same training images, same validation images.
    sample = archs[: args.standalone_archs]
    trainer = TrainingEvaluator(
        "fashion_mnist",
        data_seed=0,
        epochs=args.standalone_epochs,
        batch_size=64,
        lr=0.05,
        build_kwargs=build,
        device=args.device,
        **split,
    )
    trainer.bind(space)
    ctx = EvalContext(seed=0, device=resolve_device(args.device))
    with Stopwatch() as alone_clock:
        alone = [trainer.evaluate(a, ctx).metrics["accuracy"] for a in sample]
    print(
        f"stand-alone: {len(sample)} of the cells trained from scratch ({build}, "
        f"{args.standalone_epochs} epoch(s), SGD lr 0.05 cosine, batch 64) on the same {half} "
        f"images ({clock_text(alone_clock.clock, len(sample), '/cell')})",
        flush=True,
    )
    print(_correlation("inherited vs stand-alone accuracy", inherited[: len(sample)], alone))
    degenerate = [bool(space.is_degenerate(a)) for a in archs]  # type: ignore[attr-defined]
    live = [i for i in range(len(sample)) if not degenerate[i]]
    # Degenerate cells sit at chance on both sides and inflate any correlation: report without them.
    print(
        "  " + _correlation("same, degenerate cells left out", [inherited[i] for i in live], [alone[i] for i in live])
    )
    print(
        f"  ({sum(degenerate[: len(sample)])} of the {len(sample)} cells are degenerate: constant "
        "output, chance accuracy on both sides)"
    )

    # Secondary: the published CIFAR-10 accuracy of the same cells (another dataset, another
    # network size and budget, so it measures transfer of the ranking, not the supernet).
    path = nb201_table_path(args.nb201)
    if path is None:
        print("NAS-Bench-201 table not found: table comparison skipped (--nb201 DIR)")
        return
    table = NB201Table.load(path)
    truth = [table.query(a, "cifar10", 200).test_acc for a in archs]
    print("secondary, NAS-Bench-201 cifar10_test_acc_200 as reference:")
    print("  " + _correlation("inherited vs table", inherited, truth))
    print("  " + _correlation("stand-alone vs table", alone, truth[: len(sample)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--steps",
        type=int,
        default=5,
        help="timed DARTS steps (and as many plain steps, interleaved) per "
        "configuration, after one warm-up step of each",
    )
    parser.add_argument(
        "--speed-C", type=int, default=16, help="channels of the speed section's supernets (16: the papers' size)"
    )
    parser.add_argument("--speed-batch", type=int, default=64, help="batch of the speed section (64: the papers' size)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    parser.add_argument("--skip-speed", action="store_true", help="no speed section (also without --speed-spaces)")
    parser.add_argument("--skip-rank", action="store_true")
    parser.add_argument(
        "--speed-spaces",
        nargs="+",
        default=[],
        choices=["nb201", "darts"],
        help="time DARTS steps of these paper-sized supernets (default none: minutes "
        "per step on 2 CPU cores; the table in docs/oneshot.md used nb201 darts)",
    )
    parser.add_argument("--rank-epochs", type=int, default=5, help="SPOS supernet training epochs")
    parser.add_argument(
        "--rank-subset",
        type=int,
        default=1600,
        help="Fashion-MNIST images, split half for training, half for validation",
    )
    parser.add_argument("--rank-archs", type=int, default=20, help="cells scored with inherited weights")
    parser.add_argument("--rank-C", type=int, default=8, help="channels of supernet and stand-alone nets")
    parser.add_argument("--rank-N", type=int, default=1, help="cells per stage of both")
    parser.add_argument(
        "--standalone-archs", type=int, default=12, help="of the scored cells, how many are also trained from scratch"
    )
    parser.add_argument("--standalone-epochs", type=int, default=1, help="epochs of each stand-alone run")
    parser.add_argument(
        "--nb201", default=None, help="NAS-Bench-201 table (default $NASFORGE_NB201 or ../shared/benchmarks/nb201)"
    )
    parser.add_argument("--data", default=None, help="Fashion-MNIST directory")
    parser.add_argument("--measure", nargs=2, metavar=("SPACE", "ORDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(
            json.dumps(
                measure(args.measure[0], int(args.measure[1]), args.steps, args.device, args.speed_C, args.speed_batch)
            )
        )
        return
    with Stopwatch(children=True) as total:  # the speed section's processes included
        if args.speed_spaces and not args.skip_speed:
            speed(args)
        if not args.skip_rank:
            ranking(args)
    print(f"total {clock_text(total.clock)}; load average at the end {load_average()}")


if __name__ == "__main__":
    main()
