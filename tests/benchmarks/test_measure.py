"""The benchmarks' shared measuring helpers (benchmarks/_measure.py): interleaving order, median and
spread, bootstrap intervals, verdicts and the CPU/wall stopwatch."""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "_measure.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_measure", PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["_measure"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


m = _load()


def test_interleaved_rotates_the_order_and_drops_warmup() -> None:
    calls: list[str] = []

    def case(name: str):  # type: ignore[no-untyped-def]
        def run() -> int:
            calls.append(name)
            return len(calls)

        return run

    out = m.interleaved({"a": case("a"), "b": case("b"), "c": case("c")}, repeats=3, warmup=1)
    # Warm-up round, then repeats; each round runs every case once, rotated by one each time.
    assert calls == ["a", "b", "c", "b", "c", "a", "c", "a", "b", "a", "b", "c"]
    # Results are in repeat order per case (the warm-up's are dropped) and paired by repeat.
    assert out == {"a": [6, 8, 10], "b": [4, 9, 11], "c": [5, 7, 12]}


def test_two_cases_alternate_abba() -> None:
    assert [m.rotation(["a", "b"], r) for r in range(4)] == [["a", "b"], ["b", "a"], ["a", "b"], ["b", "a"]]


def test_interleaved_rejects_bad_counts() -> None:
    with pytest.raises(ValueError, match="repeats"):
        m.interleaved({"a": lambda: 1}, repeats=0)
    with pytest.raises(ValueError, match="warmup"):
        m.interleaved({"a": lambda: 1}, repeats=1, warmup=-1)


def test_summarize_gives_median_quartiles_and_range() -> None:
    s = m.summarize([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (s.median, s.q1, s.q3, s.min, s.max, s.n) == (3.0, 2.0, 4.0, 1.0, 5.0, 5)
    # A real median: the mean of the middle two for an even count, not the larger one.
    assert m.summarize([1.0, 10.0]).median == 5.5
    assert "IQR 2.0..4.0" in s.text() and "n=5" in s.text()
    assert "no spread" in m.summarize([7.0]).text()
    with pytest.raises(ValueError):
        m.summarize([])


def test_bootstrap_ci_is_seeded_and_brackets_the_median() -> None:
    x = np.random.default_rng(1).normal(10.0, 1.0, size=40)
    lo, hi = m.bootstrap_ci(x, seed=3)
    assert (lo, hi) == m.bootstrap_ci(x, seed=3)
    assert lo < float(np.median(x)) < hi
    assert hi - lo < 1.5  # about 4 standard errors of a median of 40 unit-normal values
    # A wider level gives a wider interval; one value has no spread.
    lo99, hi99 = m.bootstrap_ci(x, level=0.99, seed=3)
    assert lo99 <= lo and hi99 >= hi
    assert m.bootstrap_ci([2.5]) == (2.5, 2.5)
    with pytest.raises(ValueError, match="level"):
        m.bootstrap_ci(x, level=1.5)


def test_paired_and_verdict() -> None:
    assert m.paired([3.0, 5.0], [1.0, 2.0], lambda a, b: a - b) == [2.0, 3.0]
    with pytest.raises(ValueError, match="equal lengths"):
        m.paired([1.0], [1.0, 2.0], lambda a, b: a - b)
    assert m.verdict((1.0, 4.0), 5.0) == m.PASS
    assert m.verdict((5.0, 9.0), 5.0) == m.FAIL
    assert m.verdict((3.0, 7.0), 5.0) == m.INCONCLUSIVE
    assert m.verdict((6.0, 7.0), 5.0, good_below=False) == m.PASS
    assert m.verdict((1.0, 5.0), 5.0, good_below=False) == m.FAIL


def test_stopwatch_counts_cpu_apart_from_wall() -> None:
    import time

    with m.Stopwatch() as sleeping:
        time.sleep(0.05)
    assert sleeping.clock.wall >= 0.045 and sleeping.clock.cpu < 0.04

    def spin() -> int:
        t0 = time.process_time()
        while time.process_time() - t0 < 0.05:
            pass
        return 1

    out, clock = m.timed(spin)
    assert out == 1 and clock.cpu >= 0.045 and clock.wall >= clock.cpu * 0.5


def test_children_cpu_is_counted_once_they_are_waited_for() -> None:
    before = m.cpu_seconds(children=True)
    code = "import time\nt=time.process_time()\nwhile time.process_time()-t<0.1: pass"
    with m.Stopwatch(children=True) as sw:
        subprocess.run([sys.executable, "-c", code], check=True)
    assert sw.clock.cpu >= 0.09
    assert m.cpu_seconds(children=True) - before >= 0.09
    assert not math.isnan(m.clock_spreads([sw.clock])["cpu"].median)
