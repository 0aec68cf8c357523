"""Predicted against measured latency: the per-device kernel table on sampled networks.

For each space, ``--networks`` architectures (default 100) plus ``--calibration`` more (default
10) are sampled with a fixed seed and built at small settings (CPU, batch 1, 3x32x32 input).
Then:

1. **the table is built** from nothing in a fresh directory: every distinct kernel of all the
   networks is timed once (:class:`nasforge.metrics.LatencyTable`), and the time this takes is
   reported (wall and CPU seconds; the shared machine's load inflates the wall figure);
2. **every network is timed whole** with :func:`nasforge.metrics.measure_latencies`
   (interleaved, stopping on the CPU clock), the reference;
3. the per-network overhead is fitted on the calibration networks only, and the
   evaluation networks are predicted: the plain kernel sum and the calibrated prediction.

Printed per space and clock (wall, CPU time): Spearman's rho and the mean absolute percentage
error, each with a 95% bootstrap interval (2000 resamples of the networks), and how many whole
networks the machine was too noisy to time within the tolerance.

    nice -n 10 python benchmarks/latency_predictor.py                 # all four spaces
    python benchmarks/latency_predictor.py --spaces nb201 --networks 30 --json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr

import nasforge
from nasforge.metrics import LatencyTable, measure_latencies
from nasforge.metrics.latency_table import device_description

#: Small build settings so that 110 networks per space are timed in minutes on a CPU.
BUILD: dict[str, dict[str, Any]] = {
    "nb201": {"C": 8, "N": 1},
    "darts": {"C": 8, "layers": 5},
    "macro": {"width_mult": 0.5},
    "elastic": {"width_mult": 0.5},
}
SHAPE = (3, 32, 32)


def bootstrap(stat: Any, x: np.ndarray, y: np.ndarray, seed: int = 0,
              n: int = 2000) -> tuple[float, float, float]:
    """``stat(x, y)`` and its 95% percentile bootstrap interval over resampled networks."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(n, len(x)))
    values = np.array([stat(x[i], y[i]) for i in idx])
    low, high = np.nanpercentile(values, [2.5, 97.5])
    return float(stat(x, y)), float(low), float(high)


def rho(pred: np.ndarray, true: np.ndarray) -> float:
    return float(spearmanr(pred, true).statistic)


def mape(pred: np.ndarray, true: np.ndarray) -> float:
    return float(np.mean(np.abs(pred - true) / true) * 100.0)


def sample_models(name: str, count: int, seed: int) -> list[torch.nn.Module]:
    """``count`` distinct architectures of space ``name``, built with seeded weights."""
    space = nasforge.create_space(name)
    rng = np.random.default_rng(seed)
    seen, models = set(), []
    for _ in range(count * 20):
        arch = space.sample(rng)
        if arch in seen:
            continue
        seen.add(arch)
        torch.manual_seed(len(models))
        models.append(space.build(arch, **BUILD[name]))
        if len(models) == count:
            break
    return models


def run_space(name: str, networks: int, calibration: int, cache_dir: str,
              seed: int) -> dict[str, Any]:
    models = sample_models(name, networks + calibration, seed)
    calib, evals = models[:calibration], models[calibration:]
    description = device_description("cpu", 1, SHAPE)
    table = LatencyTable(description, path=f"{cache_dir}/{name}.json")
    w0, c0 = time.perf_counter(), time.process_time()
    calls = [table.calls(m) for m in models]
    kernels = sum(table.measure(c) for c in calls)
    build = {"kernels": kernels, "wall_s": time.perf_counter() - w0,
             "cpu_s": time.process_time() - c0, "noisy_kernels":
             sum(bool(k["noisy"]) for k in table.kernels.values())}
    table.save()
    w0, c0 = time.perf_counter(), time.process_time()
    lats = measure_latencies(models, SHAPE, 1, "cpu", clock="cpu", seed=seed)
    measure = {"wall_s": time.perf_counter() - w0, "cpu_s": time.process_time() - c0,
               "noisy_networks": sum(lat.noisy for lat in lats[calibration:])}
    out: dict[str, Any] = {"space": name, "build": BUILD[name], "networks": len(evals),
                           "calibration": len(calib), "table": build, "measure": measure,
                           "calls_per_network": float(np.mean([len(c) for c in calls]))}
    for clock in ("wall", "cpu"):
        true_all = np.array([lat.wall_ms if clock == "wall" else lat.cpu_ms for lat in lats])
        fit = table.calibrate(calib, clock, measured_ms=list(true_all[:calibration]))
        true = true_all[calibration:]
        raw = np.array([table.kernel_sum(c, clock) for c in calls[calibration:]])
        pred = np.array([table.predict(m, clock).latency_ms for m in evals])
        out[clock] = {
            "median_measured_ms": float(np.median(true)),
            "fit": fit,
            "sum": {"spearman": bootstrap(rho, raw, true, seed), "mape": bootstrap(mape, raw, true, seed)},
            "calibrated": {"spearman": bootstrap(rho, pred, true, seed),
                           "mape": bootstrap(mape, pred, true, seed)},
        }
    return out


def show(r: dict[str, Any]) -> None:
    t, m = r["table"], r["measure"]
    print(f"\n{r['space']} {r['build']}: {r['networks']} networks (+{r['calibration']} for the fit), "
          f"{r['calls_per_network']:.0f} kernel calls each")
    print(f"  table: {t['kernels']} kernels in {t['wall_s']:.1f} s wall / {t['cpu_s']:.1f} s CPU "
          f"({t['noisy_kernels']} noisy); whole networks timed in {m['wall_s']:.1f} s wall / "
          f"{m['cpu_s']:.1f} s CPU ({m['noisy_networks']} noisy)")
    for clock in ("wall", "cpu"):
        c = r[clock]
        for kind in ("sum", "calibrated"):
            s, e = c[kind]["spearman"], c[kind]["mape"]
            print(f"  {clock:>4} {kind:>10}: Spearman {s[0]:.3f} [{s[1]:.3f}, {s[2]:.3f}]   "
                  f"MAPE {e[0]:5.1f}% [{e[1]:.1f}, {e[2]:.1f}]   (median {c['median_measured_ms']:.2f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spaces", default="nb201,darts,macro,elastic")
    parser.add_argument("--networks", type=int, default=100)
    parser.add_argument("--calibration", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object at the end")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = []
    with tempfile.TemporaryDirectory() as cache_dir:  # a fresh table: its build time counts
        for name in args.spaces.split(","):
            results.append(run_space(name, args.networks, args.calibration, cache_dir, args.seed))
            if not args.json:
                show(results[-1])
    if args.json:
        print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
