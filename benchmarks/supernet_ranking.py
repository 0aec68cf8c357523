"""How well one-shot estimates rank NAS-Bench-201 cells against stand-alone training, with CIs.

    nice -n 15 .venv/bin/python benchmarks/supernet_ranking.py [--cells 32] [--seeds 2]
        [--train-images 2000] [--val-images 1000] [--C 8] [--N 1] [--standalone-epochs 3]
        [--uniform-epochs 8] [--fair-epochs 4] [--fewshot-epochs 2] [--proxies naswot synflow jacob_cov]
        [--cache /tmp/nasforge_supernet_ranking.json] [--part all|standalone|estimates] [--cached-only] [--threads 1]
        [--device auto] [--data DIR] [--nb201 DIR]

Protocol (one Fashion-MNIST split for everything: ``--train-images`` of the training split for
training, ``--val-images`` held out of the same training split for scoring):

1. Ground truth. ``--cells`` NAS-Bench-201 cells drawn uniformly (seeded) are each trained from
   scratch as stand-alone networks (``C``, ``N``; the ``train`` evaluator: SGD lr 0.05, cosine,
   batch 64, ``--standalone-epochs`` epochs) with ``--seeds`` seeds; the reference accuracy of a
   cell is its mean over seeds. The Kendall tau between two seeds' accuracies is the ceiling:
   no estimate can agree with the reference much better than the reference agrees with itself.
2. Estimates, each correlated with the reference (Kendall tau with a bootstrap 95% interval over
   cells, Spearman rho), over all cells and with the degenerate ones (every input-output path
   crosses a ``none`` edge: constant output, chance accuracy on both sides, which inflates any
   correlation) left out:
   - SPOS, uniform single-path sampling (Guo et al., ECCV 2020), ``--uniform-epochs`` (8; ``8 40``
     adds a supernet with the compute of 8 fair epochs, which train 5 paths a step);
   - SPOS with FairNAS strict fairness (Chu et al., ICCV 2021), ``--fair-epochs``;
   - few-shot (Zhao et al., ICML 2021): the uniform supernet split on one edge's operations into
     sub-supernets that inherit its weights and train ``--fewshot-epochs`` more epochs each;
   - the zero-cost proxies of ``--proxies`` alone (untrained networks, one batch of 64 training
     images) and combined with each supernet's inherited accuracy by a rank vote
     (:mod:`nasforge.oneshot.assisted`).
   Inherited accuracy: the cell's path, BatchNorm recalibrated on 2 training batches of 256,
   accuracy on the held-out images.

Secondary reference (with the NAS-Bench-201 table, ``--nb201``): the cells' published CIFAR-10
test accuracy after 200 epochs, another dataset, network size and budget, so it measures how the
ranking transfers, not the supernet.

Every result (stand-alone runs and estimates) is cached in ``--cache`` under a key of its settings,
written after each piece of work, so an interrupted run continues and a rerun only prints.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _measure import Stopwatch, bootstrap_ci, load_average

DEFAULT_CACHE = "/tmp/nasforge_supernet_ranking.json"


class Cache:
    """A JSON file of finished results, keyed by the settings that produced them.

    Each write re-reads the file under a lock and adds one entry, so two runs of this script
    (e.g. the ground truth and the estimates at the same time) share one cache without losing
    each other's results.
    """

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.data: dict[str, Any] = self._read()

    def _read(self) -> dict[str, Any]:
        return json.loads(self.path.read_text()) if self.path.is_file() else {}

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def put(self, key: str, value: Any) -> None:
        with open(f"{self.path}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self.data = {**self._read(), key: value}
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.data, indent=1, sort_keys=True))
            tmp.replace(self.path)  # atomic: an interrupted write never loses the earlier results


def key_of(kind: str, settings: dict[str, Any]) -> str:
    digest = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    return f"{kind}:{digest}"


def kendall_with_ci(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, tuple[float, float], float]:
    """Kendall tau, its percentile-bootstrap 95% interval (cells resampled), Spearman rho."""
    from scipy.stats import kendalltau, spearmanr

    x, y = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)

    def tau_of(idx: np.ndarray) -> float:
        i = idx.astype(int)
        value = kendalltau(x[i], y[i]).statistic
        return 0.0 if np.isnan(value) else float(value)  # a resample of tied values: no order

    return float(kendalltau(x, y).statistic), bootstrap_ci(np.arange(x.size), tau_of), float(spearmanr(x, y).statistic)


def correlation_line(label: str, estimate: Sequence[float], truth: Sequence[float], live: Sequence[int]) -> str:
    parts = []
    known = [i for i in range(len(truth)) if np.isfinite(truth[i]) and np.isfinite(estimate[i])]
    live = [i for i in live if i in known]
    groups = [("all", known)]
    if len(live) < len(known):  # degenerate cells inflate a correlation: also without them
        groups.append(("live", list(live)))
    for name, idx in groups:
        if len(idx) < 3:
            parts.append(f"{name} ({len(idx)}): too few cells")
            continue
        tau, (lo, hi), rho = kendall_with_ci([estimate[i] for i in idx], [truth[i] for i in idx])
        parts.append(f"{name} ({len(idx)}): tau {tau:.3f} [{lo:.3f}, {hi:.3f}], rho {rho:.3f}")
    return f"{label:<34s} " + "; ".join(parts)


def standalone(args: argparse.Namespace, space: Any, archs: list[Any], cache: Cache) -> dict[int, list[float]]:
    """Accuracy of every cell trained from scratch, per seed (cached one run at a time)."""
    from nasforge.evaluators.base import EvalContext
    from nasforge.evaluators.training import TrainingEvaluator
    from nasforge.utils.device import resolve_device

    recipe = {"epochs": args.standalone_epochs, "batch_size": 64, "lr": 0.05}
    trainer = TrainingEvaluator(
        "fashion_mnist",
        args.data,
        data_seed=0,
        build_kwargs=build_of(args),
        device=args.device,
        **split_of(args),
        **recipe,
    )
    trainer.bind(space)
    out: dict[int, list[float]] = {}
    for seed in range(args.seeds):  # seed 0 of every cell first: a partial run is already usable
        accs = []
        for n, arch in enumerate(archs):
            key = key_of("standalone", {**settings_of(args), **recipe, "seed": seed, "arch": space.to_string(arch)})
            if cache.get(key) is None and args.cached_only:
                accs.append(float("nan"))  # not trained yet: left out of the correlations
                continue
            if cache.get(key) is None:
                with Stopwatch() as sw:
                    result = trainer.evaluate(arch, EvalContext(seed=seed, device=resolve_device(args.device)))
                cache.put(key, {"accuracy": result.metrics["accuracy"], "wall": sw.clock.wall, "cpu": sw.clock.cpu})
                print(
                    f"  stand-alone seed {seed} cell {n + 1}/{len(archs)}: "
                    f"{result.metrics['accuracy']:.2f} % ({sw.clock.cpu:.1f} s CPU)",
                    flush=True,
                )
            accs.append(float(cache.get(key)["accuracy"]))
        out[seed] = accs
    return out


def split_of(args: argparse.Namespace) -> dict[str, Any]:
    return {"val_size": 0.5, "train_subset": args.train_images, "val_subset": args.val_images}


def build_of(args: argparse.Namespace) -> dict[str, Any]:
    return {"C": args.C, "N": args.N}


def settings_of(args: argparse.Namespace) -> dict[str, Any]:
    return {**split_of(args), **build_of(args), "torch": torch.__version__}


def cpu_of(cache: Cache, keys: list[str]) -> float:
    return sum(float(cache.get(k).get("cpu", 0.0)) for k in keys if cache.get(k) is not None)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--cells", type=int, default=32, help="NAS-Bench-201 cells drawn uniformly (seed 1)")
    parser.add_argument("--seeds", type=int, default=2, help="stand-alone seeds per cell (2: the ceiling is measured)")
    parser.add_argument("--train-images", type=int, default=2000)
    parser.add_argument("--val-images", type=int, default=1000)
    parser.add_argument("--C", type=int, default=8)
    parser.add_argument("--N", type=int, default=1)
    parser.add_argument("--standalone-epochs", type=int, default=3)
    parser.add_argument(
        "--uniform-epochs",
        type=int,
        nargs="+",
        default=[8],
        help="SPOS uniform supernets trained this many epochs (default 8; 8 40 adds one with the compute of 8 "
        "fair epochs); the few-shot sub-supernets start from the first",
    )
    parser.add_argument(
        "--fair-epochs", type=int, default=4, help="SPOS fair-sampling epochs (5 paths a step: 4 cost about 20 uniform)"
    )
    parser.add_argument(
        "--fewshot-epochs",
        type=int,
        default=2,
        help="epochs of each few-shot sub-supernet (0: no few-shot); the default 8 + 5 x 2 epochs cost "
        "about as much as 18 uniform epochs",
    )
    parser.add_argument(
        "--proxies",
        nargs="*",
        default=["naswot", "synflow", "jacob_cov"],
        help="zero-cost proxies, alone and each combined with every supernet",
    )
    parser.add_argument("--cache", default=DEFAULT_CACHE, help=f"results cache (default {DEFAULT_CACHE})")
    parser.add_argument(
        "--part",
        choices=["all", "standalone", "estimates"],
        default="all",
        help="all (default); standalone or estimates: compute and cache that part only, so the two "
        "can run at once (a final run with all then prints from the cache)",
    )
    parser.add_argument(
        "--cached-only",
        action="store_true",
        help="compute nothing: print the correlations of what the cache holds (cells not trained yet left out)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: no spinning on a shared machine)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    parser.add_argument("--data", default=None, help="Fashion-MNIST directory")
    parser.add_argument(
        "--nb201", default=None, help="NAS-Bench-201 table (default $NASFORGE_NB201 or ../shared/benchmarks/nb201)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import nasforge
    from nasforge.oneshot.ranking import candidate_architectures

    cache = Cache(args.cache)
    space = nasforge.create_space("nb201")
    archs = candidate_architectures(space, args.cells, seed=1)
    live = [i for i, a in enumerate(archs) if not space.is_degenerate(a)]  # type: ignore[attr-defined]
    start = time.time()
    with Stopwatch() as total:
        print(
            f"{len(archs)} cells ({len(archs) - len(live)} degenerate); stand-alone "
            f"{args.standalone_epochs} epochs x {args.seeds} seeds on {args.train_images} images, "
            f"C={args.C}, N={args.N}",
            flush=True,
        )
        if args.part in ("all", "standalone"):
            per_seed = standalone(args, space, archs, cache)
        if args.part in ("all", "estimates"):
            report = estimates(args, space, archs, cache)
        if args.part == "all":
            with np.errstate(invalid="ignore"):  # a cell no seed has trained yet stays NaN
                table = np.array([per_seed[s] for s in per_seed])
                counts = np.isfinite(table).sum(axis=0)
                truth = list(np.where(counts > 0, np.nansum(table, axis=0) / np.maximum(counts, 1), np.nan))
            if args.seeds >= 2:
                print(correlation_line("ceiling: stand-alone seed 0 vs 1", per_seed[0], per_seed[1], live))
            print(
                f"Kendall tau [bootstrap 95% CI over cells] and Spearman rho against the mean stand-alone "
                f"accuracy of {args.seeds} seed(s):"
            )
            for label, values in report.items():
                print(correlation_line(label, values, truth, live))
            table = nb201_accuracy(args, archs)
            if table is not None:
                print(
                    "secondary: NAS-Bench-201 cifar10_test_acc_200 of the same cells as the reference (another "
                    "dataset, network size and budget: transfer of the ranking, not the supernet):"
                )
                print(correlation_line("stand-alone (this protocol)", truth, table, live))
                for label, values in report.items():
                    print(correlation_line(label, values, table, live))
    print(
        f"total {total.clock.wall:.0f} s wall, {total.clock.cpu:.0f} s CPU this run "
        f"({time.time() - start:.0f} s); load average {load_average()}"
    )


def nb201_accuracy(args: argparse.Namespace, archs: list[Any]) -> list[float] | None:
    """The published CIFAR-10 test accuracy (200 epochs) of each cell, None without the table."""
    from nasforge.benchmarks import NB201Table
    from nasforge.cli.oneshot import nb201_table_path

    path = nb201_table_path(args.nb201)
    if path is None:
        print("NAS-Bench-201 table not found: the secondary reference is skipped (--nb201 DIR)")
        return None
    table = NB201Table.load(path)
    return [float(table.query(a, "cifar10", 200).test_acc) for a in archs]


def inherited_accuracy(net: Any, splits: Any, archs: list[Any], device: str) -> list[float]:
    """Inherited accuracy of every cell, in the order of ``archs``."""
    from nasforge.oneshot.ranking import rank_architectures

    records = rank_architectures(net, splits, archs, bn_batches=2, batch_size=256, device=device)
    by_string = {r["arch_string"]: r["inherited_accuracy"] for r in records}
    return [float(by_string[net.space.to_string(a)]) for a in archs]


def few_shot(
    args: argparse.Namespace,
    space: Any,
    archs: list[Any],
    splits: Any,
    base: dict[str, Any],
    uniform_weights: Path,
    cache: Cache,
    rows: dict[str, list[float]],
    spent: dict[str, str],
) -> None:
    """Few-shot sub-supernets split from the first uniform supernet (cached)."""
    from nasforge.oneshot.fewshot import split_supernet
    from nasforge.supernet import seeded_supernet

    if args.fewshot_epochs > 0:
        epochs = args.uniform_epochs[0]
        key = key_of("fewshot", {**base, "from": epochs, "epochs": args.fewshot_epochs})
        if cache.get(key) is None and args.cached_only:
            return
        if cache.get(key) is None:
            net = seeded_supernet(space, 0, in_channels=1, **build_of(args))
            net.load_state_dict(torch.load(uniform_weights, weights_only=True))
            with Stopwatch() as sw:
                subs = split_supernet(net, splits, epochs=args.fewshot_epochs, batch_size=64, device=args.device)
                accs = inherited_accuracy(subs, splits, archs, args.device)
            cache.put(key, {"inherited": accs, "decision": subs.decision, "wall": sw.clock.wall, "cpu": sw.clock.cpu})
            print(f"  few-shot: {args.fewshot_epochs} epochs x 5 sub-supernets ({sw.clock.cpu:.0f} s CPU)", flush=True)
        rows[f"few-shot ({epochs} + 5 x {args.fewshot_epochs} ep)"] = cache.get(key)["inherited"]
        spent["few-shot"] = key


def estimates(args: argparse.Namespace, space: Any, archs: list[Any], cache: Cache) -> dict[str, list[float]]:
    """Every estimate of every cell, ``{label: [value of each cell]}`` (each estimate cached)."""
    from nasforge.data import make_splits
    from nasforge.oneshot.assisted import assisted_votes, proxy_scores
    from nasforge.oneshot.spos import Spos
    from nasforge.supernet import seeded_supernet

    splits = make_splits("fashion_mnist", data_dir=args.data, seed=0, **split_of(args))
    strings = [space.to_string(a) for a in archs]
    base = {**settings_of(args), "archs": strings}
    rows: dict[str, list[float]] = {}
    spent: dict[str, str] = {}  # label -> cache key, for the CPU time each estimate took
    uniform_weights = Path(f"{args.cache}.uniform{args.uniform_epochs[0]}.pt")
    key = key_of("proxies", {**base, "proxies": args.proxies})
    if cache.get(key) is None and args.cached_only:
        args.proxies = []
    elif cache.get(key) is None:
        with Stopwatch() as sw:
            scores = proxy_scores(
                space, archs, args.proxies, splits, {**build_of(args), "in_channels": 1}, device=args.device
            )
        cache.put(key, {"scores": scores, "wall": sw.clock.wall, "cpu": sw.clock.cpu})
    if args.proxies:
        scores = cache.get(key)["scores"]
        spent["proxies"] = key
    # Cheapest first: uniform supernets, the few-shot split of the first, then fair sampling.
    runs = [("uniform", e) for e in args.uniform_epochs] + [("few-shot", 0), ("fair", args.fair_epochs)]
    for n, (sampling, epochs) in enumerate(runs):
        if sampling == "few-shot":
            few_shot(args, space, archs, splits, base, uniform_weights, cache, rows, spent)
            continue
        first = n == 0  # the few-shot sub-supernets start from this one's weights
        key = key_of(f"spos-{sampling}", {**base, "epochs": epochs})
        if cache.get(key) is None and args.cached_only:
            continue
        if cache.get(key) is None or (first and not uniform_weights.is_file()):
            net = seeded_supernet(space, 0, in_channels=1, **build_of(args))
            with Stopwatch() as sw:
                Spos(
                    net,
                    splits,
                    epochs=epochs,
                    batch_size=64,
                    sampling=sampling,
                    search_trials=1,
                    bn_batches=1,
                    device=args.device,
                ).run()
                accs = inherited_accuracy(net, splits, archs, args.device)
            if first:
                torch.save(net.state_dict(), uniform_weights)
            cache.put(key, {"inherited": accs, "wall": sw.clock.wall, "cpu": sw.clock.cpu})
            print(f"  SPOS {sampling}: {epochs} epochs ({sw.clock.cpu:.0f} s CPU)", flush=True)
        rows[f"SPOS {sampling} ({epochs} ep)"] = cache.get(key)["inherited"]
        spent[f"SPOS {sampling} {epochs}"] = key

    report = dict(rows)
    report.update({f"{name} alone": scores[name] for name in args.proxies})
    for label, accs in rows.items():
        for names in [[n] for n in args.proxies] + ([args.proxies] if len(args.proxies) > 1 else []):
            votes = assisted_votes(accs, {n: scores[n] for n in names})
            report[f"{label} + {'+'.join(names)}"] = list(votes)
    print(
        "CPU seconds of the estimates (when they were computed): "
        + ", ".join(f"{label} {cache.get(k)['cpu']:.0f}" for label, k in spent.items())
    )
    return report


if __name__ == "__main__":
    main()
