"""The timing protocol (warm-up, interleaved repeats, median interval stopping rule, noisy flag)
with scripted timers, and the spread it stores beside ``latency_ms``."""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Iterator

import pytest
import torch
from torch import nn

from nasforge.errors import ConfigError
from nasforge.metrics import compute_metrics, list_metrics, measure_latency
from nasforge.metrics.registry import check_metric_names
from nasforge.metrics.timing import (
    TimingProtocol,
    median_ci_ranks,
    summarize,
    time_interleaved,
)


def scripted(values: Iterator[float], cpu: Iterator[float] | None = None,
             calls: list[object] | None = None) -> Callable[[Callable[[], object]], tuple[float, float]]:
    """A timer that runs the work and reports the next scripted (wall, cpu) milliseconds."""

    def timer(fn: Callable[[], object]) -> tuple[float, float]:
        out = fn()
        if calls is not None:
            calls.append(out)
        wall = next(values)
        return wall, next(cpu) if cpu is not None else wall

    return timer


def test_median_interval_ranks_are_the_binomial_ones() -> None:
    assert median_ci_ranks(5) is None  # min..max of 5 covers the median only 93.75% of the time
    assert median_ci_ranks(6) == (0, 5)
    assert median_ci_ranks(20) == (5, 14)  # 6th and 15th values (tables of Conover 1980)
    assert median_ci_ranks(100) == (39, 60)
    lo, hi = median_ci_ranks(2000) or (0, 0)  # normal approximation beyond 1000 samples
    assert abs(lo - (1000 - 1.96 * math.sqrt(2000) / 2)) <= 2 and lo + hi == 1999


def test_steady_runs_stop_at_the_minimum_with_a_tight_interval() -> None:
    protocol = TimingProtocol(warmup=2, min_repeats=10, max_repeats=100, rel_tol=0.05)
    ran: list[object] = []
    [t] = time_interleaved([lambda: "run"], protocol, scripted(itertools.repeat(2.0), calls=ran))
    assert t.repeats == 10 and len(ran) == 10  # warm-up runs are untimed
    assert t.median_ms == t.ci_low_ms == t.ci_high_ms == 2.0 and t.iqr_ms == 0.0
    assert t.noisy is False


def test_outliers_move_neither_median_nor_interval() -> None:
    # every 5th run is 1000x slower (another process took the core): the median stays
    values = (624.0 if i % 5 == 0 else 0.58 for i in itertools.count(1))
    protocol = TimingProtocol(warmup=0, min_repeats=20, rel_tol=0.05)
    [t] = time_interleaved([lambda: None], protocol, scripted(values))
    assert t.median_ms == pytest.approx(0.58) and t.ci_high_ms == pytest.approx(0.58)
    assert t.repeats == 20 and not t.noisy
    assert t.p90_ms == pytest.approx(624.0)  # the tail is still visible in the spread


def test_a_noisy_machine_is_flagged_and_logged_at_the_cap(caplog: pytest.LogCaptureFixture) -> None:
    values = itertools.cycle([1.0, 3.0])  # half fast, half slow: the median's interval never closes
    protocol = TimingProtocol(warmup=0, min_repeats=10, max_repeats=40, rel_tol=0.05)
    with caplog.at_level(logging.WARNING, logger="nasforge.metrics"):
        [t] = time_interleaved([lambda: None], protocol, scripted(values), what="networks")
    assert t.repeats == 40 and t.noisy is True and t.rel_half_width > 0.05
    assert "too noisy to time 1 of 1 networks within ±5%" in caplog.text


def test_the_time_cap_stops_slow_runs_after_six() -> None:
    values = itertools.cycle([100.0, 300.0])  # 0.2 s per pair: the 0.5 s cap hits after 6 runs
    protocol = TimingProtocol(warmup=0, min_repeats=1, max_repeats=1000, max_seconds=0.5)
    [t] = time_interleaved([lambda: None], protocol, scripted(values))
    assert t.repeats == 6 and t.noisy  # 6 runs: the fewest with a 95% interval of the median


def test_cpu_clock_decides_when_asked() -> None:
    wall = itertools.cycle([1.0, 9.0])  # wall time swings with the load
    cpu = itertools.repeat(0.5)  # CPU time does not
    protocol = TimingProtocol(warmup=0, min_repeats=10, max_repeats=50, clock="cpu")
    [t] = time_interleaved([lambda: None], protocol, scripted(wall, cpu))
    assert t.clock == "cpu" and t.median_ms == 0.5 and t.repeats == 10 and not t.noisy
    assert t.wall_ms == pytest.approx(5.0) and t.cpu_ms == 0.5


def test_rounds_interleave_every_candidate_in_a_seeded_order() -> None:
    def order(seed: int) -> list[str]:
        ran: list[object] = []
        protocol = TimingProtocol(warmup=0, min_repeats=6, max_repeats=6)
        time_interleaved([lambda: "a", lambda: "b", lambda: "c"], protocol,
                         scripted(itertools.repeat(1.0), calls=ran), seed=seed)
        return [str(x) for x in ran]

    runs = order(0)
    rounds = [runs[i:i + 3] for i in range(0, 18, 3)]
    assert all(sorted(r) == ["a", "b", "c"] for r in rounds)  # each round times each once
    assert len({tuple(r) for r in rounds}) > 1  # in shuffled orders
    assert order(0) == runs and order(1) != runs  # the seed alone decides


def test_protocol_rejects_bad_settings_naming_them() -> None:
    with pytest.raises(ConfigError, match="unknown clock 'gpu'; allowed: 'wall', 'cpu'"):
        TimingProtocol(clock="gpu")
    with pytest.raises(ConfigError, match=r"max_seconds > 0 and rel_tol > 0; got 1\.0, 0"):
        TimingProtocol(max_seconds=1.0, rel_tol=0)
    with pytest.raises(ConfigError, match="no timed runs"):
        summarize([], TimingProtocol(), capped=False)


def test_measure_latency_uses_the_protocol_on_a_model() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    outputs: list[object] = []
    lat = measure_latency(model, (3, 8, 8), batch_size=2, warmup=1, repeats=8,
                          timer=scripted(itertools.repeat(1.5), calls=outputs))
    assert lat.median_ms == 1.5 and lat.repeats == 8 and lat.noisy is False
    assert isinstance(outputs[0], torch.Tensor) and outputs[0].shape == (2, 4, 6, 6)
    assert lat.as_metrics() == {"latency_ms": 1.5, "latency_ms_ci_low": 1.5,
                                "latency_ms_ci_high": 1.5, "latency_ms_iqr": 0.0,
                                "latency_ms_cpu": 1.5, "latency_ms_noisy": 0.0}
    with pytest.raises(ConfigError, match="batch_size >= 1"):
        measure_latency(model, (3, 8, 8), batch_size=0)


def test_latency_metric_stores_its_spread_for_constraints() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    out = compute_metrics(model, ["latency_ms_ci_high"], (3, 8, 8), latency_repeats=6,
                          latency_max_repeats=12, latency_clock="cpu")
    assert set(out) == {"latency_ms", "latency_ms_ci_low", "latency_ms_ci_high",
                        "latency_ms_iqr", "latency_ms_cpu", "latency_ms_noisy"}
    assert out["latency_ms_ci_low"] <= out["latency_ms"] <= out["latency_ms_ci_high"]
    assert out["latency_ms_noisy"] in (0.0, 1.0)
    assert "latency_ms_iqr" in list_metrics() and "latency_pred_ms" in list_metrics()
    check_metric_names(["latency_ms_noisy"])
    with pytest.raises(ConfigError, match="unknown clock 'gpu'"):
        compute_metrics(model, ["latency_ms"], (3, 8, 8), latency_clock="gpu")
