"""Measuring helpers shared by the benchmark scripts.

Every script measures the same way: the variants it compares run **interleaved** (each repeat runs
every variant once, the order rotating from repeat to repeat: A B, B A, A B, ...), so a change in
the machine's load hits all of them alike; it reports the **median over repeats with its spread**
(interquartile range, min-max and n), **CPU time beside wall time**, and a relative claim as the
median of the **paired** per-repeat differences or ratios with a bootstrap confidence interval.
A threshold check gives a verdict only when that interval lies on one side of the threshold.

The scripts import this file as ``_measure`` (``benchmarks/`` is the script's directory, hence on
``sys.path`` when a script runs).
"""

from __future__ import annotations

import math
import os
import resource
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import TypeVar

import numpy as np

T = TypeVar("T")

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive at this noise"


# ------------------------------------------------------------------------------------ clocks
def cpu_seconds(children: bool = False) -> float:
    """CPU seconds (user + system) of this process, all threads; with ``children``, plus those of
    the child processes that have ended and been waited for (a process pool's workers after it
    shut down)."""
    own = time.process_time()
    if not children:
        return own
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own + ru.ru_utime + ru.ru_stime


@dataclass(frozen=True)
class Clock:
    """Wall and CPU seconds of one timed piece of work."""

    wall: float
    cpu: float


class Stopwatch:
    """Wall and CPU time of a block::

    with Stopwatch() as sw:
        work()
    sw.clock.wall, sw.clock.cpu
    """

    def __init__(self, children: bool = False, sync: Callable[[], None] | None = None) -> None:
        self.children = children
        # Called before each reading, e.g. torch.cuda.synchronize, so queued device work counts.
        self.sync = sync
        self.clock = Clock(math.nan, math.nan)

    def _now(self) -> tuple[float, float]:
        if self.sync is not None:
            self.sync()
        return time.perf_counter(), cpu_seconds(self.children)

    def __enter__(self) -> Stopwatch:
        self._start = self._now()
        return self

    def __exit__(self, *exc: object) -> None:
        wall, cpu = self._now()
        self.clock = Clock(wall - self._start[0], cpu - self._start[1])


def timed(fn: Callable[[], T], children: bool = False, sync: Callable[[], None] | None = None) -> tuple[T, Clock]:
    """``fn()``'s result and the wall/CPU time it took."""
    with Stopwatch(children, sync) as sw:
        out = fn()
    return out, sw.clock


# ------------------------------------------------------------------------------------ repeats
def rotation(names: Sequence[str], repeat: int) -> list[str]:
    """The order of the variants in repeat ``repeat``: rotated by one each repeat, so every
    variant runs first, second, ... equally often (A B, B A, ... for two)."""
    k = len(names)
    shift = repeat % k if k else 0
    return list(names[shift:]) + list(names[:shift])


def interleaved(
    cases: Mapping[str, Callable[[], T]],
    repeats: int,
    warmup: int = 1,
    on_repeat: Callable[[int, dict[str, T]], None] | None = None,
) -> dict[str, list[T]]:
    """Run every case once per repeat, in rotating order, after ``warmup`` discarded rounds.

    Returns name -> the ``repeats`` results in repeat order, so ``out[a][i]`` and ``out[b][i]``
    come from the same repeat (pair them for differences or ratios). ``on_repeat(i, results)``
    is called after each kept repeat (progress lines).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    names = list(cases)
    out: dict[str, list[T]] = {n: [] for n in names}
    for r in range(warmup + repeats):
        this: dict[str, T] = {}
        for name in rotation(names, r):
            this[name] = cases[name]()
        if r >= warmup:
            for name in names:
                out[name].append(this[name])
            if on_repeat is not None:
                on_repeat(r - warmup, this)
    return out


# ------------------------------------------------------------------------------------ statistics
@dataclass(frozen=True)
class Spread:
    """Median of repeated measurements with their spread."""

    median: float
    q1: float
    q3: float
    min: float
    max: float
    n: int

    def text(self, fmt: str = ".1f", unit: str = "") -> str:
        """``12.3 us (IQR 11.9-12.8, min-max 11.5-13.0, n=5)``."""
        u = f" {unit}" if unit else ""
        if self.n == 1:
            return f"{self.median:{fmt}}{u} (n=1, no spread)"
        return (
            f"{self.median:{fmt}}{u} (IQR {self.q1:{fmt}}..{self.q3:{fmt}}, "
            f"min-max {self.min:{fmt}}..{self.max:{fmt}}, n={self.n})"
        )

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def summarize(values: Sequence[float]) -> Spread:
    """Median, quartiles (linear interpolation), min, max and count of ``values``."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("no values to summarize")
    q1, med, q3 = np.percentile(x, [25, 50, 75])
    return Spread(float(med), float(q1), float(q3), float(x.min()), float(x.max()), int(x.size))


def bootstrap_ci(
    values: Sequence[float],
    statistic: Callable[[np.ndarray], float] = np.median,
    level: float = 0.95,
    rounds: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` (median by default) over ``values``.

    Resampling is seeded, so the same values give the same interval. With one value the
    interval is that value (no spread is known).
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("no values to bootstrap")
    if x.size == 1:
        return float(x[0]), float(x[0])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(rounds, x.size))
    stats = np.array([statistic(x[i]) for i in idx], dtype=float)
    tail = 50.0 * (1.0 - level)
    lo, hi = np.percentile(stats, [tail, 100.0 - tail])
    return float(lo), float(hi)


def paired(a: Sequence[float], b: Sequence[float], op: Callable[[float, float], float]) -> list[float]:
    """``op(a[i], b[i])`` for each repeat ``i`` (both lists from :func:`interleaved`)."""
    if len(a) != len(b):
        raise ValueError(f"paired values need equal lengths, got {len(a)} and {len(b)}")
    return [op(x, y) for x, y in zip(a, b)]


def verdict(ci: tuple[float, float], threshold: float, good_below: bool = True) -> str:
    """``PASS`` when the whole interval is on the good side of ``threshold``, ``FAIL`` when the
    whole interval is on the bad side, else ``INCONCLUSIVE``."""
    lo, hi = ci
    if good_below:
        return PASS if hi < threshold else FAIL if lo >= threshold else INCONCLUSIVE
    return PASS if lo > threshold else FAIL if hi <= threshold else INCONCLUSIVE


# ------------------------------------------------------------------------------------ context
def load_average() -> str:
    """The machine's 1/5/15-minute load averages (printed beside every timing)."""
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


@contextmanager
def load_window() -> Iterator[dict[str, str]]:
    """Record the load average before and after a block: ``{"before": ..., "after": ...}``."""
    seen = {"before": load_average()}
    try:
        yield seen
    finally:
        seen["after"] = load_average()


def clock_spreads(clocks: Sequence[Clock], scale: float = 1.0) -> dict[str, Spread]:
    """``{"wall": Spread, "cpu": Spread}`` of ``clocks``, each time multiplied by ``scale``
    (e.g. ``1e6 / trials`` for microseconds per trial)."""
    return {"wall": summarize([c.wall * scale for c in clocks]), "cpu": summarize([c.cpu * scale for c in clocks])}
