"""Zero-cost proxies on NAS-Bench-201: rank correlation with the benchmark's accuracies, and speed.

    nice -n 10 .venv/bin/python benchmarks/proxies_nb201.py --data /path/to/nb201 \
        [--samples 1000] [--workers 2] [--data-samples 100] [--json out.json]

1. A seeded sample of ``--samples`` distinct NAS-Bench-201 cells (default 1,000 of 15,625).
2. synflow of each cell's benchmark network (C=16, N=5, 10 classes, BatchNorm removed, all-ones
   1x3x32x32 input, float64; Abdelfattah et al., ICLR 2021), every network initialized under its
   own seed, with the ``proxy`` evaluator (fast NB201 path), in ``--workers`` processes of one
   thread each. Printed: architectures per second end to end (weights drawn and scored), with and
   without the workers' start-up, against the plain one-at-a-time path (build the module, generic
   autograd synflow) timed on the same workers, and the largest relative difference between the
   two paths' scores on the cells both scored.
3. The other data-free proxies (params, flops) of the same networks, through the same evaluator.
4. Spearman correlation of every data-free proxy with every accuracy column of the table (one
   10-class synflow score serves all columns), a bootstrap 95% interval for synflow's, and the
   check against the published value (Abdelfattah et al., ICLR 2021, NAS-Bench-201 CIFAR-10):
   rho(synflow, cifar10_valid_val_acc_200) = +0.737 over all 15,625 cells; ours, signed, must be
   within 0.03 of it, else the script exits with status 1 (after printing everything).
5. Unless ``--data-samples 0``: the data-based proxies (snip, grad_norm, jacob_cov, naswot,
   fisher, grasp) on the first ``--data-samples`` cells with one batch of ``--data-batch`` real
   training images (CIFAR-10 when its files are found, else Fashion-MNIST, labelled as such).

The machine's load average is printed with every speed figure: on a shared machine they vary.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, NamedTuple

import numpy as np
from scipy.stats import spearmanr

PUBLISHED_SYNFLOW = 0.737
TOLERANCE = 0.03
ACCURACY_COLUMNS = (
    "cifar10_valid_val_acc_200", "cifar10_valid_test_acc_200", "cifar10_test_acc_200",
    "cifar10_valid_val_acc_12", "cifar10_test_acc_12", "cifar100_val_acc_12",
    "cifar100_test_acc_12", "imagenet16_val_acc_12", "imagenet16_test_acc_12",
)  # fmt: skip
DATA_PROXIES = ("snip", "grad_norm", "jacob_cov", "naswot", "fisher", "grasp")

# --------------------------------------------------------------------------- worker side
_EVALUATORS: dict[tuple[Any, ...], Any] = {}


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)  # one thread per process: the processes are the parallelism


def _ready(_: int) -> int:
    # Warm-up: imports done, one tiny scoring run, so that timing starts with ready workers.
    import nasforge

    return len(nasforge.list_evaluators())


def _evaluator(proxies: tuple[str, ...], fast: bool, dataset: str | None, batch: int) -> Any:
    key = (proxies, fast, dataset, batch)
    if key not in _EVALUATORS:
        import nasforge

        space = nasforge.create_space("nb201")
        ev = nasforge.create_evaluator("proxy", proxy=list(proxies), fast_nb201=fast,
                                       dataset=dataset, batch_size=batch)
        ev.bind(space)
        _EVALUATORS[key] = ev
    return _EVALUATORS[key]


def _score(job: tuple[str, int, tuple[str, ...], bool, str | None, int]
           ) -> tuple[dict[str, float], float]:
    """Scores of one cell and the CPU seconds this process spent on it (a figure that, unlike
    wall time, hardly depends on what else runs on the machine)."""
    cpu = time.process_time()
    arch_string, seed, proxies, fast, dataset, batch = job
    ev = _evaluator(proxies, fast, dataset, batch)
    arch = ev.space.from_string(arch_string)
    scores: dict[str, float] = ev.scores(arch, seed, "cpu")
    return scores, time.process_time() - cpu


# --------------------------------------------------------------------------- main side
def _load() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


class Timed(NamedTuple):
    scores: dict[str, np.ndarray]
    seconds: float  # wall time of the whole batch of jobs
    cpu_per_cell: float  # mean CPU seconds per cell inside the workers

    def rate(self) -> float:
        return len(next(iter(self.scores.values()))) / self.seconds


def _run(pool: ProcessPoolExecutor, archs: Sequence[str], seeds: Sequence[int],
         proxies: tuple[str, ...], fast: bool = True, dataset: str | None = None,
         batch: int = 1) -> Timed:
    jobs = [(a, s, proxies, fast, dataset, batch) for a, s in zip(archs, seeds)]
    chunk = max(1, min(16, len(jobs) // 16))  # few round trips, yet balanced ends
    t0 = time.perf_counter()
    results = list(pool.map(_score, jobs, chunksize=chunk))
    seconds = time.perf_counter() - t0
    scores = {p: np.array([r[p] for r, _ in results]) for p in proxies}
    return Timed(scores, seconds, float(np.mean([c for _, c in results])))


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    ok = np.isfinite(x) & np.isfinite(y)
    return float(spearmanr(x[ok], y[ok]).statistic) if ok.sum() > 2 else float("nan")


def _bootstrap(x: np.ndarray, y: np.ndarray, seed: int, rounds: int = 1000) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    vals = [_spearman(x[i], y[i]) for i in (rng.integers(0, len(x), len(x)) for _ in range(rounds))]
    lo, hi = np.percentile(vals, [2.5, 97.5])
    return float(lo), float(hi)


def _print_table(title: str, scores: dict[str, np.ndarray], cols: dict[str, np.ndarray]
                 ) -> dict[str, dict[str, float]]:
    """Spearman rho of every proxy with every column; a proxy scored on fewer cells (the first
    ``len(scores)`` of the sample) is correlated on those."""
    print(f"\n{title}")
    width = max(len(c) for c in cols)
    print(" " * width + "".join(f"{p:>11}" for p in scores))
    print("cells".ljust(width) + "".join(f"{len(s):>11}" for s in scores.values()))
    out: dict[str, dict[str, float]] = {p: {} for p in scores}
    for col, acc in cols.items():
        row = ""
        for p, s in scores.items():
            out[p][col] = rho = _spearman(s, acc[: len(s)])
            row += f"{rho:>11.3f}"
        print(f"{col:<{width}}{row}")
    return out


def _find_image_data(choice: str) -> tuple[str, str]:
    """(dataset name, note) for the data-based proxies."""
    from nasforge.data import load_dataset
    from nasforge.errors import NasforgeError

    if choice != "auto":
        return choice, ""
    try:
        load_dataset("cifar10", "train")
        return "cifar10", ""
    except NasforgeError:
        return "fashion_mnist", "CIFAR-10 files were not found on this machine; "


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="nb201 directory (default $NASFORGE_NB201)")
    parser.add_argument("--samples", type=int, default=1000, help="cells sampled (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="sample and init seed (default 0)")
    parser.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    parser.add_argument("--baseline", type=int, default=40,
                        help="cells scored the plain way for the speed comparison (default 40)")
    parser.add_argument("--size-samples", type=int, default=None,
                        help="cells for params/flops (default: all sampled cells)")
    parser.add_argument("--data-samples", type=int, default=100,
                        help="cells for the data-based proxies (default 100; 0 skips them)")
    parser.add_argument("--data-batch", type=int, default=64, help="images per batch (64)")
    parser.add_argument("--dataset", default="auto",
                        help="images for data-based proxies: auto (cifar10 if found, else "
                             "fashion_mnist) or a dataset name")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()

    from nasforge.benchmarks import NB201Table
    from nasforge.utils.rng import derive_seed

    table = NB201Table.load(args.data)
    rng = np.random.default_rng(args.seed)
    idx = rng.choice(len(table), size=min(args.samples, len(table)), replace=False)
    archs = [table.arch_string(int(i)) for i in idx]
    seeds = [derive_seed(args.seed, "init", int(i)) for i in idx]
    cols = {c: np.asarray(table.column(c))[idx] for c in ACCURACY_COLUMNS if c in table.columns}
    report: dict[str, Any] = {"samples": len(idx), "seed": args.seed, "workers": args.workers}
    print(f"{len(idx)} NAS-Bench-201 cells sampled with seed {args.seed} from {table.source}")
    print(f"{os.cpu_count()} CPUs, {args.workers} worker processes x 1 thread; "
          f"load average at start: {_load()}")

    ctx = mp.get_context("spawn")  # no forking of a process that already runs torch threads
    t_start = time.perf_counter()
    with ProcessPoolExecutor(args.workers, mp_context=ctx, initializer=_worker_init) as pool:
        list(pool.map(_ready, range(args.workers * 4)))
        startup = time.perf_counter() - t_start
        # Warm each worker's evaluator (and the flop counter's one-time import) outside timing.
        warm = archs[: args.workers * 2]
        _run(pool, warm, seeds[: len(warm)], ("synflow", "params", "flops"))
        _run(pool, warm[:2], seeds[:2], ("synflow",), fast=False)

        # -- synflow, fast path, all cells
        load_before = _load()
        syn = _run(pool, archs, seeds, ("synflow",))
        rate = syn.rate()
        print(f"\nsynflow, nasforge 'proxy' evaluator (fast NB201 path): {len(archs)} cells in "
              f"{syn.seconds:.1f} s = {rate:.1f} cells/s; {len(archs) / (syn.seconds + startup):.1f}"
              f" cells/s counting the workers' start-up ({startup:.1f} s) [load {load_before} -> "
              f"{_load()}]; CPU time {syn.cpu_per_cell * 1e3:.1f} ms per cell, i.e. "
              f"{args.workers / syn.cpu_per_cell:.0f} cells/s on {args.workers} idle cores")
        speed: dict[str, Any] = {
            "synflow_cells_per_s": rate, "synflow_seconds": syn.seconds,
            "synflow_cpu_ms_per_cell": syn.cpu_per_cell * 1e3, "startup_seconds": startup}

        # -- the plain way on the same workers: build the module, autograd synflow
        n_plain = min(args.baseline, len(archs))
        if n_plain:
            load_before = _load()
            plain = _run(pool, archs[:n_plain], seeds[:n_plain], ("synflow",), fast=False)
            ref = plain.scores["synflow"]
            rel = np.abs(ref - syn.scores["synflow"][:n_plain]) / np.maximum(np.abs(ref), 1e-300)
            print(f"synflow, plain (build module + autograd, one at a time): {n_plain} cells in "
                  f"{plain.seconds:.1f} s = {plain.rate():.1f} cells/s [load {load_before} -> "
                  f"{_load()}]; CPU time {plain.cpu_per_cell * 1e3:.1f} ms per cell; speed-up "
                  f"{rate / plain.rate():.1f}x wall, {plain.cpu_per_cell / syn.cpu_per_cell:.1f}x "
                  f"CPU; largest relative difference between the two paths' scores: "
                  f"{rel.max():.1e}")
            speed.update({"plain_cells": n_plain, "plain_cells_per_s": plain.rate(),
                          "plain_cpu_ms_per_cell": plain.cpu_per_cell * 1e3,
                          "max_rel_diff_fast_vs_plain": float(rel.max())})

        # -- params and flops (nasforge.metrics through the same evaluator)
        n_size = len(archs) if args.size_samples is None else min(args.size_samples, len(archs))
        free = {"synflow": syn.scores["synflow"]}
        if n_size:
            load_before = _load()
            size = _run(pool, archs[:n_size], seeds[:n_size], ("params", "flops"))
            print(f"params + flops (built module, FlopCounterMode): {n_size} cells in "
                  f"{size.seconds:.1f} s = {size.rate():.1f} cells/s [load {load_before} -> "
                  f"{_load()}]; CPU time {size.cpu_per_cell * 1e3:.1f} ms per cell")
            speed["params_flops_cells_per_s"] = size.rate()
            free.update(size.scores)
        report["speed"] = speed

        # -- correlations of the data-free proxies
        report["data_free"] = _print_table(
            f"Spearman rho, data-free proxies vs NAS-Bench-201 accuracy ({len(idx)} cells)",
            free, cols)
        rho = report["data_free"]["synflow"]["cifar10_valid_val_acc_200"]
        lo, hi = _bootstrap(syn.scores["synflow"], cols["cifar10_valid_val_acc_200"], args.seed)
        # Signed: the published correlation is positive, so a flipped sign is a failure.
        ok = bool(np.isfinite(rho)) and abs(rho - PUBLISHED_SYNFLOW) <= TOLERANCE
        print(f"\nsynflow vs cifar10_valid_val_acc_200: rho = {rho:.3f} (bootstrap 95% "
              f"interval {lo:.3f}..{hi:.3f}, {len(idx)} cells); published {PUBLISHED_SYNFLOW} "
              f"over all 15,625: {'within' if ok else 'NOT within'} {TOLERANCE}")
        report["synflow_check"] = {"rho": rho, "ci95": [lo, hi], "published": PUBLISHED_SYNFLOW,
                                   "within_tolerance": ok}

        # -- data-based proxies on real images
        if args.data_samples > 0:
            dataset, note = _find_image_data(args.dataset)
            n = min(args.data_samples, len(archs))
            label = (f"one batch of {args.data_batch} {dataset} training images "
                     f"({note}NAS-Bench-201's accuracies are on CIFAR/ImageNet16)")
            load_before = _load()
            data = _run(pool, archs[:n], seeds[:n], DATA_PROXIES, dataset=dataset,
                        batch=args.data_batch)
            print(f"\ndata-based proxies: {n} cells in {data.seconds:.1f} s = {data.rate():.2f} "
                  f"cells/s (all six proxies per cell) [load {load_before} -> {_load()}]; CPU "
                  f"time {data.cpu_per_cell:.1f} s per cell")
            sub = {c: v[:n] for c, v in cols.items()}
            both = {**data.scores, "synflow": syn.scores["synflow"][:n]}
            report["data_based"] = _print_table(
                f"Spearman rho on the first {n} cells, data: {label}", both, sub)
            report["data_based_label"] = label

    print(f"\nload average at the end: {_load()}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=2)
    if not report["synflow_check"]["within_tolerance"]:
        print(f"FAILED: synflow rho {report['synflow_check']['rho']:.3f} is not within "
              f"{TOLERANCE} of the published +{PUBLISHED_SYNFLOW}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
