"""Zero-cost proxies on NAS-Bench-201: rank correlation with the benchmark's accuracies, and speed.

    nice -n 10 .venv/bin/python benchmarks/proxies_nb201.py --data /path/to/nb201 \
        [--samples 1000] [--workers 2] [--timing-cells 40] [--timing-repeats 5]
        [--data-samples 100] [--json out.json]

1. A seeded sample of ``--samples`` distinct NAS-Bench-201 cells (default 1,000 of 15,625).
2. synflow of each cell's benchmark network (C=16, N=5, 10 classes, BatchNorm removed, all-ones
   1x3x32x32 input, float64; Abdelfattah et al., ICLR 2021), every network initialized under its
   own seed, with the ``proxy`` evaluator (fast NB201 path), in ``--workers`` processes of one
   thread each: wall time with and without the workers' start-up, and the workers' CPU time.
3. Speed against an independent reference: ``--timing-repeats`` repeats, each scoring the next
   ``--timing-cells`` cells by three paths, interleaved in rotating order after a warm-up round
   (``benchmarks/_measure.py``): the fast path; the independent reference (the evaluator's
   seeded network, then :func:`reference_synflow`, synflow as the papers define it, in plain
   PyTorch apart from nasforge's proxy code); and nasforge's plain path (build the module, the
   generic autograd synflow). Printed: median cells/s (wall) and CPU ms per cell of each with its
   spread, the median paired speed-up per repeat with a bootstrap 95% interval, and the largest
   relative difference between the paths' scores on the same cells. Measured, not extrapolated.
4. The other data-free proxies (params, flops) of the same networks, through the same evaluator.
   Then the Spearman correlation of every data-free proxy with every accuracy column of the table
   (one 10-class synflow score serves all columns), the published values below each table
   (Abdelfattah et al., ICLR 2021, NAS-Bench-201, CIFAR-10, against the 200-epoch validation
   accuracy of all 15,625 cells: synflow 0.737, jacob_cov 0.731, snip 0.596, grad_norm 0.594,
   grasp 0.514, fisher 0.360), and a bootstrap 95% interval of synflow's rho. A sample's rho
   scatters around the full space's, so the check judges the interval: it must reach the window
   +0.737 +- 0.03 (signed), else the script exits with status 1 (after printing everything).
5. Unless ``--data-samples 0``: the data-based proxies (snip, grad_norm, jacob_cov, naswot,
   fisher, grasp) on the first ``--data-samples`` cells with one batch of ``--data-batch`` real
   training images (CIFAR-10 when its files are found, else Fashion-MNIST, labelled as such).

The machine's load average is printed with every speed figure: on a shared machine wall times
vary with it, CPU times much less.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, NamedTuple

import numpy as np
from _measure import bootstrap_ci, interleaved, load_average, load_window, paired, summarize
from scipy.stats import spearmanr

#: Published Spearman rho with ``cifar10_valid_val_acc_200`` over all 15,625 cells, proxies
#: scored on CIFAR-10 batches: Abdelfattah, Mehrotra, Dudziak & Lane, "Zero-Cost Proxies for
#: Lightweight NAS", ICLR 2021, NAS-Bench-201 table, CIFAR-10 column.
PUBLISHED = {"synflow": 0.737, "jacob_cov": 0.731, "snip": 0.596, "grad_norm": 0.594, "grasp": 0.514, "fisher": 0.360}
REFERENCE = "Abdelfattah et al., ICLR 2021"
TOLERANCE = 0.03
#: Speed comparison: the fast path against the independent reference and nasforge's plain path.
PATHS = ("fast", "reference", "plain")
PATH_LABELS = {
    "fast": "fast path ('proxy' evaluator, NB201 synflow)    ",
    "reference": "independent reference (build + reference_synflow)",
    "plain": "nasforge plain path (build + generic synflow)   ",
}
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
        ev = nasforge.create_evaluator("proxy", proxy=list(proxies), fast_nb201=fast, dataset=dataset, batch_size=batch)
        ev.bind(space)
        _EVALUATORS[key] = ev
    return _EVALUATORS[key]


def reference_synflow(model: Any, input_shape: tuple[int, ...]) -> float:
    """SynFlow as Tanaka et al. (NeurIPS 2020) define it and Abdelfattah et al. (ICLR 2021) apply it
    to NAS-Bench-201, written here in plain PyTorch, apart from nasforge's proxy code, as the
    independent reference of the speed and score comparison: BatchNorm replaced by identity,
    every parameter replaced by its absolute value, float64, one all-ones input;
    ``R = sum(f(1))``, score ``sum |w * dR/dw|`` over the conv and linear weights."""
    import torch
    from torch import nn

    def strip(module: nn.Module) -> None:
        for name, child in module.named_children():
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                setattr(module, name, nn.Identity())
            else:
                strip(child)

    strip(model)
    model.double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.abs_()
    out = model(torch.ones((1, *input_shape), dtype=torch.float64))
    (out[0] if isinstance(out, (tuple, list)) else out).sum().backward()
    with torch.no_grad():
        return float(
            sum(
                (m.weight * m.weight.grad).abs().sum()
                for m in model.modules()
                if isinstance(m, (nn.Conv2d, nn.Linear)) and m.weight.grad is not None
            )
        )


def _score(job: tuple[str, int, tuple[str, ...], str, str | None, int]) -> tuple[dict[str, float], float]:
    """Scores of one cell by ``path`` ("fast": the proxy evaluator's NB201 path, "plain": the
    evaluator without it, "reference": :func:`reference_synflow` of the evaluator's seeded
    network) and the CPU seconds this process spent on it, build included."""
    cpu = time.process_time()
    arch_string, seed, proxies, path, dataset, batch = job
    ev = _evaluator(proxies, path == "fast", dataset, batch)
    arch = ev.space.from_string(arch_string)
    if path == "reference":
        scores = {"synflow": reference_synflow(ev.build(arch, seed), tuple(ev.input_shape()))}
    else:
        scores = ev.scores(arch, seed, "cpu")
    return scores, time.process_time() - cpu


# --------------------------------------------------------------------------- main side
class Timed(NamedTuple):
    scores: dict[str, np.ndarray]
    seconds: float  # wall time of the whole batch of jobs
    cpu_per_cell: float  # mean CPU seconds per cell inside the workers

    def rate(self) -> float:
        return len(next(iter(self.scores.values()))) / self.seconds


def _run(
    pool: ProcessPoolExecutor,
    archs: Sequence[str],
    seeds: Sequence[int],
    proxies: tuple[str, ...],
    path: str = "fast",
    dataset: str | None = None,
    batch: int = 1,
) -> Timed:
    jobs = [(a, s, proxies, path, dataset, batch) for a, s in zip(archs, seeds)]
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


def _print_table(title: str, scores: dict[str, np.ndarray], cols: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
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
    # The reference values next to ours (their data: CIFAR-10 batches, all 15,625 cells).
    print(
        "published".ljust(width)
        + "".join(f"{PUBLISHED[p]:>11.3f}" if p in PUBLISHED else f"{'-':>11}" for p in scores)
        + f"   ({REFERENCE}, cifar10_valid_val_acc_200)"
    )
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
    parser.add_argument(
        "--timing-cells", type=int, default=40, help="cells per path and repeat in the speed comparison (default 40)"
    )
    parser.add_argument(
        "--timing-repeats", type=int, default=5, help="interleaved repeats of the speed comparison (default 5; 0 skips)"
    )
    parser.add_argument(
        "--size-samples", type=int, default=None, help="cells for params/flops (default: all sampled cells)"
    )
    parser.add_argument(
        "--data-samples", type=int, default=100, help="cells for the data-based proxies (default 100; 0 skips them)"
    )
    parser.add_argument("--data-batch", type=int, default=64, help="images per batch (64)")
    parser.add_argument(
        "--dataset",
        default="auto",
        help="images for data-based proxies: auto (cifar10 if found, else fashion_mnist) or a dataset name",
    )
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
    print(f"{os.cpu_count()} CPUs, {args.workers} worker processes x 1 thread; load average at start: {load_average()}")

    ctx = mp.get_context("spawn")  # no forking of a process that already runs torch threads
    t_start = time.perf_counter()
    with ProcessPoolExecutor(args.workers, mp_context=ctx, initializer=_worker_init) as pool:
        list(pool.map(_ready, range(args.workers * 4)))
        startup = time.perf_counter() - t_start
        # Warm each worker's evaluators (and the flop counter's one-time import) outside timing.
        warm = archs[: args.workers * 2]
        _run(pool, warm, seeds[: len(warm)], ("synflow", "params", "flops"))
        for path in PATHS[1:]:
            _run(pool, warm[:2], seeds[:2], ("synflow",), path=path)

        # -- synflow, fast path, all cells (the scores for the correlations)
        with load_window() as load:
            syn = _run(pool, archs, seeds, ("synflow",))
        rate = syn.rate()
        print(
            f"\nsynflow, nasforge 'proxy' evaluator (fast NB201 path): {len(archs)} cells in "
            f"{syn.seconds:.1f} s wall = {rate:.1f} cells/s; {len(archs) / (syn.seconds + startup):.1f}"
            f" cells/s counting the workers' start-up ({startup:.1f} s); CPU time "
            f"{syn.cpu_per_cell * 1e3:.1f} ms per cell (mean, in the workers) [load "
            f"{load['before']} -> {load['after']}]"
        )
        speed: dict[str, Any] = {
            "synflow_cells_per_s": rate,
            "synflow_seconds": syn.seconds,
            "synflow_cells_per_s_with_startup": len(archs) / (syn.seconds + startup),
            "synflow_cpu_ms_per_cell": syn.cpu_per_cell * 1e3,
            "startup_seconds": startup,
        }

        # -- speed against the independent reference (and nasforge's plain path): the same cells
        # through each path, interleaved per repeat in rotating order, paired by repeat.
        k = min(args.timing_cells, len(archs))
        if k and args.timing_repeats:
            chunks = [
                (archs[(r * k) % len(archs) :][:k], seeds[(r * k) % len(archs) :][:k])
                for r in range(args.timing_repeats + 1)
            ]
            turn = {path: iter(chunks) for path in PATHS}

            def case(path: str) -> Callable[[], Timed]:
                return lambda: _run(pool, *next(turn[path]), ("synflow",), path=path)

            with load_window() as load:
                timed_runs = interleaved({path: case(path) for path in PATHS}, args.timing_repeats)
            print(
                f"speed, {args.timing_repeats} repeats of {k} cells per path, interleaved "
                f"(rotating order, after one warm-up round) [load {load['before']} -> "
                f"{load['after']}]; median (IQR, min-max, n):"
            )
            cells: dict[str, Any] = {}
            for path in PATHS:
                wall_rate = summarize([t.rate() for t in timed_runs[path]])
                cpu_ms = summarize([t.cpu_per_cell * 1e3 for t in timed_runs[path]])
                cells[path] = {"cells_per_s": wall_rate.to_dict(), "cpu_ms_per_cell": cpu_ms.to_dict()}
                print(
                    f"  {PATH_LABELS[path]}: {wall_rate.text('.1f', 'cells/s')} wall; "
                    f"{cpu_ms.text('.1f', 'ms')} CPU per cell"
                )
            for base in PATHS[1:]:
                for clock, key in (("wall", "seconds"), ("CPU", "cpu_per_cell")):
                    ratio = paired(
                        [getattr(t, key) for t in timed_runs[base]],
                        [getattr(t, key) for t in timed_runs["fast"]],
                        lambda b, f: b / f,
                    )
                    lo, hi = bootstrap_ci(ratio)
                    cells[f"speedup_vs_{base}_{clock.lower()}"] = {**summarize(ratio).to_dict(), "ci95": [lo, hi]}
                    print(
                        f"  speed-up of the fast path over the {base} path, {clock}: "
                        f"{summarize(ratio).text('.2f', 'x')}, 95% CI {lo:.2f}..{hi:.2f}"
                    )
            # Same cells, same seeds: the scores must agree, the independent reference included.
            for base in PATHS[1:]:
                ref = np.concatenate([t.scores["synflow"] for t in timed_runs[base]])
                fast = np.concatenate([t.scores["synflow"] for t in timed_runs["fast"]])
                rel = float((np.abs(ref - fast) / np.maximum(np.abs(ref), 1e-300)).max())
                cells[f"max_rel_diff_fast_vs_{base}"] = rel
                print(f"  largest relative difference, fast vs {base} scores: {rel:.1e}")
            speed["paths"] = cells

        # -- params and flops (nasforge.metrics through the same evaluator)
        n_size = len(archs) if args.size_samples is None else min(args.size_samples, len(archs))
        free = {"synflow": syn.scores["synflow"]}
        if n_size:
            with load_window() as load:
                size = _run(pool, archs[:n_size], seeds[:n_size], ("params", "flops"))
            print(
                f"params + flops (built module, FlopCounterMode): {n_size} cells in "
                f"{size.seconds:.1f} s wall = {size.rate():.1f} cells/s [load {load['before']} "
                f"-> {load['after']}]; CPU time {size.cpu_per_cell * 1e3:.1f} ms per cell"
            )
            speed["params_flops_cells_per_s"] = size.rate()
            free.update(size.scores)
        report["speed"] = speed

        # -- correlations of the data-free proxies
        report["data_free"] = _print_table(
            f"Spearman rho, data-free proxies vs NAS-Bench-201 accuracy ({len(idx)} cells)", free, cols
        )
        rho = report["data_free"]["synflow"]["cifar10_valid_val_acc_200"]
        lo, hi = _bootstrap(syn.scores["synflow"], cols["cifar10_valid_val_acc_200"], args.seed)
        # A sample's rho scatters around the full space's: judge the interval, not the point.
        # Consistent when the 95% interval reaches the window published +- TOLERANCE; signed, so
        # a flipped sign fails.
        window = (PUBLISHED["synflow"] - TOLERANCE, PUBLISHED["synflow"] + TOLERANCE)
        ok = bool(np.isfinite(rho)) and lo <= window[1] and hi >= window[0]
        print(
            f"\nsynflow vs cifar10_valid_val_acc_200: rho = {rho:.3f} (bootstrap 95% "
            f"interval {lo:.3f}..{hi:.3f}, {len(idx)} cells); published {PUBLISHED['synflow']} "
            f"over all 15,625 ({REFERENCE}): the interval "
            f"{'reaches' if ok else 'lies outside'} {window[0]:.3f}..{window[1]:.3f}"
        )
        report["synflow_check"] = {
            "rho": rho,
            "ci95": [lo, hi],
            "published": PUBLISHED["synflow"],
            "window": list(window),
            "consistent": ok,
            "reference": REFERENCE,
        }

        # -- data-based proxies on real images
        if args.data_samples > 0:
            dataset, note = _find_image_data(args.dataset)
            n = min(args.data_samples, len(archs))
            label = (
                f"one batch of {args.data_batch} {dataset} training images "
                f"({note}NAS-Bench-201's accuracies are on CIFAR/ImageNet16)"
            )
            with load_window() as load:
                data = _run(pool, archs[:n], seeds[:n], DATA_PROXIES, dataset=dataset, batch=args.data_batch)
            print(
                f"\ndata-based proxies: {n} cells in {data.seconds:.1f} s wall = "
                f"{data.rate():.2f} cells/s (all six proxies per cell) [load {load['before']} "
                f"-> {load['after']}]; CPU time {data.cpu_per_cell:.1f} s per cell"
            )
            sub = {c: v[:n] for c, v in cols.items()}
            both = {**data.scores, "synflow": syn.scores["synflow"][:n]}
            report["data_based"] = _print_table(f"Spearman rho on the first {n} cells, data: {label}", both, sub)
            report["data_based_label"] = label

    print(f"\nload average at the end: {load_average()}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=2)
    if not report["synflow_check"]["consistent"]:
        print(
            f"FAILED: synflow rho {report['synflow_check']['rho']:.3f}: its 95% interval lies "
            f"outside {TOLERANCE} of the published +{PUBLISHED['synflow']}"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
