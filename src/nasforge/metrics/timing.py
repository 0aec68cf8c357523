"""The timing protocol behind every latency figure: warm-up, interleaved repeats until the
confidence interval of the median is tight, and a flag when the machine is too noisy to measure.

A single timed run on a shared machine can be off by orders of magnitude (another process takes
the core for a while), so one figure, or the mean of a few, is noise. The protocol here:

* **warm-up** runs first (caches, lazy initialization, cuDNN autotuning), untimed;
* **interleaved repeats**: when several things are timed together (the kernels of a latency
  table, the networks of a benchmark), each round times every one of them once, in a freshly
  shuffled (seeded) order, so a burst of load hits all of them alike instead of one of them;
* **a stopping rule**: after ``min_repeats``, a candidate stops when the distribution-free 95%
  confidence interval of its median (order statistics; exact binomial ranks, e.g. Conover,
  *Practical Nonparametric Statistics*, 1980, sec. 3.2) is within ``± rel_tol`` of the median.
  It also stops at ``max_repeats`` or after ``max_seconds`` of its own timed runs; then, if the
  interval is still wide, the result is flagged ``noisy`` (and a warning is logged);
* **two clocks**: wall time (``time.perf_counter``) and CPU time. CPU time hardly depends on
  other processes: with one torch thread it is ``time.thread_time`` (the calling thread runs the
  whole forward pass), with several it is ``time.process_time`` (all threads: then it is the sum
  over threads, larger than the wall time). ``clock`` chooses which one the stopping rule and the
  reported median use; both medians are always reported. On CUDA the wall time comes from CUDA
  events around the work (GPU time, no host synchronisation inside the timed region) and there
  is no CPU clock.

The median and the order-statistic interval ignore outliers by construction: a few runs slowed
down 1000x move neither.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from nasforge.errors import ConfigError, allowed

log = logging.getLogger("nasforge.metrics")

#: The clocks a protocol can stop on and report (see the module docstring).
CLOCKS = ("wall", "cpu")

#: Binomial ranks of the 95% median interval are computed exactly up to this many samples, with
#: the normal approximation above (both agree to a rank there).
_EXACT_RANKS_UP_TO = 1000
#: The fewest runs with a 95% interval of the median (min..max of 6 covers it with 96.9%).
_MIN_CI_SAMPLES = 6


@dataclass(frozen=True)
class TimingProtocol:
    """How long to time something: see the module docstring."""

    warmup: int = 5
    min_repeats: int = 20
    max_repeats: int = 200
    max_seconds: float = 2.0
    rel_tol: float = 0.05
    clock: str = "wall"

    def __post_init__(self) -> None:
        if self.warmup < 0 or self.min_repeats < 1 or self.max_repeats < 1:
            raise ConfigError(
                f"need warmup >= 0, repeats >= 1 and max_repeats >= 1; got {self.warmup}, "
                f"{self.min_repeats}, {self.max_repeats}"
            )
        if not self.max_seconds > 0 or not self.rel_tol > 0:
            raise ConfigError(f"need max_seconds > 0 and rel_tol > 0; got {self.max_seconds!r}, "
                              f"{self.rel_tol!r}")
        if self.clock not in CLOCKS:
            raise ConfigError(f"unknown clock {self.clock!r}; allowed: {allowed(CLOCKS)}")

    @property
    def repeat_cap(self) -> int:
        """The most timed runs of one candidate (never fewer than ``min_repeats``)."""
        return max(self.min_repeats, self.max_repeats)


@dataclass(frozen=True)
class Timing:
    """Summary of the timed runs of one candidate, in milliseconds, on the protocol's clock
    (``wall_ms`` and ``cpu_ms`` are the medians of both clocks; ``cpu_ms`` is NaN without one)."""

    median_ms: float
    ci_low_ms: float
    ci_high_ms: float
    q1_ms: float
    q3_ms: float
    p90_ms: float
    min_ms: float
    wall_ms: float
    cpu_ms: float
    repeats: int
    clock: str
    #: Still wider than ``± rel_tol`` when a cap stopped the repeats.
    noisy: bool

    @property
    def iqr_ms(self) -> float:
        """Interquartile range, the spread of the runs."""
        return self.q3_ms - self.q1_ms

    @property
    def rel_half_width(self) -> float:
        """Half the confidence interval relative to the median (inf when it is not known)."""
        return relative_half_width(self.median_ms, self.ci_low_ms, self.ci_high_ms)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able copy."""
        return asdict(self)


class Timer(Protocol):
    """Runs ``fn`` once and returns its ``(wall_ms, cpu_ms)``; ``cpu_ms`` is NaN when unknown."""

    def __call__(self, fn: Callable[[], object]) -> tuple[float, float]: ...


def cpu_timer(threads: int) -> Timer:
    """Wall time by ``perf_counter``; CPU time by ``thread_time`` (one thread) or
    ``process_time`` (several: the intra-op workers' CPU time counts too)."""
    cpu_clock = time.thread_time if threads <= 1 else time.process_time

    def timer(fn: Callable[[], object]) -> tuple[float, float]:
        c0, t0 = cpu_clock(), time.perf_counter()
        fn()
        t1, c1 = time.perf_counter(), cpu_clock()
        return (t1 - t0) * 1000.0, (c1 - c0) * 1000.0

    return timer


def cuda_timer(device: Any) -> Timer:
    """GPU time of ``fn`` from CUDA events recorded around it (no CPU clock on a GPU)."""
    import torch

    def timer(fn: Callable[[], object]) -> tuple[float, float]:
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize(device)
        return float(start.elapsed_time(end)), math.nan

    return timer


def median_ci_ranks(n: int, confidence: float = 0.95) -> tuple[int, int] | None:
    """0-based ranks ``(lo, hi)`` of the sorted sample bounding a ``confidence`` interval of
    the median, or None when ``n`` is too small for one (n <= 5 at 95%).

    The interval ``[x_(k), x_(n-k+1)]`` (1-based) covers the median with probability
    ``1 - 2 P(Bin(n, 1/2) < k)``; ``k`` is the largest rank keeping that at least ``confidence``.
    """
    alpha = (1.0 - confidence) / 2.0
    if n <= _EXACT_RANKS_UP_TO:
        k, cdf, total = 0, 0.0, 2.0 ** n
        # cdf = P(Bin < k+1); grow k while P(Bin < k+1) stays within alpha
        while k < n and cdf + math.comb(n, k) / total <= alpha:
            cdf += math.comb(n, k) / total
            k += 1
    else:
        z = statistics_normal_quantile(1.0 - alpha)
        k = math.floor((n - z * math.sqrt(n)) / 2.0)
    if k < 1:
        return None
    return k - 1, n - k


def statistics_normal_quantile(p: float) -> float:
    """Standard normal quantile (``statistics.NormalDist`` without importing it per call)."""
    from statistics import NormalDist

    return NormalDist().inv_cdf(p)


def relative_half_width(median: float, low: float, high: float) -> float:
    """``(high - low) / 2 / median``; inf when the interval is unknown or the median is 0."""
    if not (math.isfinite(low) and math.isfinite(high)) or median <= 0:
        return math.inf
    return (high - low) / 2.0 / median


def _quantile(ordered: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile of a sorted sample (numpy's default method)."""
    pos = q * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summarize(samples: Sequence[tuple[float, float]], protocol: TimingProtocol,
              capped: bool) -> Timing:
    """The :class:`Timing` of ``(wall_ms, cpu_ms)`` samples; ``capped``: a cap ended them."""
    if not samples:
        raise ConfigError("no timed runs to summarize")
    wall = sorted(s[0] for s in samples)
    cpu = sorted(s[1] for s in samples)
    main = cpu if protocol.clock == "cpu" else wall
    med = _quantile(main, 0.5)
    ranks = median_ci_ranks(len(main))
    low, high = (main[ranks[0]], main[ranks[1]]) if ranks else (math.nan, math.nan)
    noisy = capped and relative_half_width(med, low, high) > protocol.rel_tol
    return Timing(
        median_ms=med, ci_low_ms=low, ci_high_ms=high, q1_ms=_quantile(main, 0.25),
        q3_ms=_quantile(main, 0.75), p90_ms=_quantile(main, 0.9), min_ms=main[0],
        wall_ms=_quantile(wall, 0.5), cpu_ms=_quantile(cpu, 0.5), repeats=len(main),
        clock=protocol.clock, noisy=noisy,
    )


def _converged(samples: list[tuple[float, float]], protocol: TimingProtocol) -> bool:
    if len(samples) < protocol.min_repeats:
        return False
    main = sorted(s[1] if protocol.clock == "cpu" else s[0] for s in samples)
    ranks = median_ci_ranks(len(main))
    if ranks is None:
        return False
    med = _quantile(main, 0.5)
    return relative_half_width(med, main[ranks[0]], main[ranks[1]]) <= protocol.rel_tol


def time_interleaved(fns: Sequence[Callable[[], object]], protocol: TimingProtocol,
                     timer: Timer, seed: int = 0, what: str = "runs") -> list[Timing]:
    """Time every callable in ``fns`` under ``protocol``, interleaved; one :class:`Timing` each.

    Each round times every candidate that has not stopped yet once, in an order shuffled by a
    ``random.Random(seed)``. ``what`` names the candidates in the noisy-machine warning.
    """
    for fn in fns:
        for _ in range(protocol.warmup):
            fn()
    samples: list[list[tuple[float, float]]] = [[] for _ in fns]
    spent = [0.0] * len(fns)
    capped = [False] * len(fns)
    active = list(range(len(fns)))
    rng = random.Random(seed)
    while active:
        rng.shuffle(active)
        for i in active:
            wall_ms, cpu_ms = timer(fns[i])
            samples[i].append((wall_ms, cpu_ms))
            spent[i] += wall_ms / 1000.0
        still = []
        for i in active:
            if _converged(samples[i], protocol):
                continue
            # the time cap waits for the smallest sample with a 95% interval (6 runs)
            if len(samples[i]) >= protocol.repeat_cap or (
                    spent[i] >= protocol.max_seconds and len(samples[i]) >= _MIN_CI_SAMPLES):
                capped[i] = True
                continue
            still.append(i)
        active = sorted(still)  # sorted before shuffling: the order depends on the seed only
    out = [summarize(s, protocol, c) for s, c in zip(samples, capped, strict=True)]
    noisy = [t for t in out if t.noisy]
    if noisy:
        worst = max(t.rel_half_width for t in noisy)
        log.warning(
            "the machine is too noisy to time %d of %d %s within ±%.0f%% (widest 95%% interval "
            "±%.0f%% of the median after the cap of %d repeats / %.1f s); close other programs, "
            "use clock='cpu', or raise the caps", len(noisy), len(out), what,
            100 * protocol.rel_tol, 100 * worst if math.isfinite(worst) else math.inf,
            protocol.repeat_cap, protocol.max_seconds,
        )
    return out
