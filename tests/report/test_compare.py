"""Method comparison: statistics against hand-computed values, runs, curves, plots."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from nasforge.benchmarks import NB201Table
from nasforge.errors import ConfigError, UnknownNameError
from nasforge.report.compare import (
    Comparison,
    Protocol,
    RunResult,
    anytime_curves,
    compare,
    compare_pair,
    confidence_interval,
    plot_anytime,
    run_one,
    summarize,
)


def _run(name: str, seed: int, final: float, costs: tuple[float, ...] = (1.0,),
         incumbent: tuple[float, ...] | None = None) -> RunResult:
    inc = incumbent if incumbent is not None else (final,) * len(costs)
    return RunResult(strategy=name, seed=seed, final=final, signal=0.0, arch="", queries=len(costs),
                     cost=costs[-1], costs=costs, incumbent=inc)


# ---------------------------------------------------------------------------------- statistics
def test_confidence_interval_by_hand() -> None:
    # mean 3, sample sd sqrt(2.5), t(0.975, df=4) = 2.776445 -> half width 1.963243
    lo, hi = confidence_interval([1, 2, 3, 4, 5])
    assert lo == pytest.approx(3 - 1.963243, abs=1e-6)
    assert hi == pytest.approx(3 + 1.963243, abs=1e-6)
    _, hi90 = confidence_interval([1, 2, 3, 4, 5], confidence=0.90)  # t(0.95, 4) = 2.131847
    assert hi90 - 3 == pytest.approx(2.131847 * math.sqrt(2.5) / math.sqrt(5), abs=1e-6)
    assert confidence_interval([7.0]) == (7.0, 7.0)
    assert all(math.isnan(v) for v in confidence_interval([]))


def test_summarize_by_hand() -> None:
    runs = [_run("a", i, v, costs=(10.0 * q,) * 1) for i, (v, q) in
            enumerate([(93.0, 1), (94.0, 2), (92.0, 3), (95.0, 4)])]
    s = summarize("a", runs)
    assert (s.runs, s.mean, s.median, s.best, s.worst) == (4, 93.5, 93.5, 95.0, 92.0)
    assert s.std == pytest.approx(math.sqrt(5 / 3))  # sample sd of 92..95
    assert s.queries_mean == 1.0 and s.cost_mean == 25.0
    with pytest.raises(ConfigError, match="no runs"):
        summarize("b", [])


def test_welch_and_mann_whitney_by_hand() -> None:
    a, b = [1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0, 8.0, 10.0]
    res = compare_pair("a", a, "b", b)
    va, vb = np.var(a, ddof=1) / 4, np.var(b, ddof=1) / 5
    t = (2.5 - 6.0) / math.sqrt(va + vb)
    assert res.welch_t == pytest.approx(t)  # -2.2485
    df = (va + vb) ** 2 / (va**2 / 3 + vb**2 / 4)  # Welch-Satterthwaite
    from scipy import stats

    assert res.welch_p == pytest.approx(2 * stats.t.sf(abs(t), df))
    assert res.mean_diff == pytest.approx(-3.5)
    # Completely separated samples of 3: U = 0 and the exact two-sided p is 2 / C(6, 3) = 0.1
    sep = compare_pair("x", [1, 2, 3], "y", [4, 5, 6])
    assert sep.mannwhitney_u == 0.0 and sep.mannwhitney_p == pytest.approx(0.1)
    same = compare_pair("x", [1, 1, 1], "y", [1, 1])
    assert same.welch_p == 1.0 and same.welch_t == 0.0
    with pytest.raises(ConfigError, match="at least 2 runs"):
        compare_pair("x", [1.0], "y", [1.0, 2.0])


def test_ranking_and_test_of_the_top_two() -> None:
    runs = {
        "low": [_run("low", i, v) for i, v in enumerate([90.0, 91.0, 90.5])],
        "high": [_run("high", i, v) for i, v in enumerate([94.0, 93.0, 93.5])],
        "mid": [_run("mid", i, v) for i, v in enumerate([92.0, 92.5, 91.5])],
    }
    comp = Comparison(protocol=Protocol(data="unused"), runs=runs)
    assert [(s.strategy, s.rank) for s in comp.stats] == [("high", 1), ("mid", 2), ("low", 3)]
    test = comp.test_top_two()
    assert test is not None and (test.a, test.b) == ("high", "mid")
    d = comp.to_dict()
    assert [m["strategy"] for m in d["methods"]] == ["high", "mid", "low"]
    assert d["test"]["a"] == "high" and len(d["runs"]["low"]) == 3


def test_anytime_curves_by_hand() -> None:
    runs = {"s": [_run("s", 0, 92.0, costs=(10.0, 30.0, 60.0), incumbent=(90.0, 92.0, 92.0)),
                  _run("s", 1, 91.0, costs=(20.0, 40.0), incumbent=(89.0, 91.0))]}
    c = anytime_curves(runs, "cost", points=7, limit=60.0)
    assert c.grid.tolist() == [0, 10, 20, 30, 40, 50, 60]
    assert np.isnan(c.mean["s"][0])
    expected = [90.0, (90 + 89) / 2, (92 + 89) / 2, (92 + 91) / 2, 91.5, 91.5]
    assert c.mean["s"][1:].tolist() == expected
    assert c.count["s"].tolist() == [0, 1, 2, 2, 2, 2, 2]
    assert c.sem["s"][3] == pytest.approx(np.std([92, 89], ddof=1) / math.sqrt(2))
    q = anytime_curves(runs, "queries")
    assert q.grid.tolist() == [1, 2, 3]
    # a run that has ended keeps its final incumbent (seed 1 made only 2 queries)
    assert q.mean["s"].tolist() == [89.5, 91.5, (92.0 + 91.0) / 2]
    with pytest.raises(ConfigError, match="axis"):
        anytime_curves(runs, "time")


def test_plot_writes_a_png(tmp_path: Path) -> None:
    runs = {"s": [_run("s", 0, 92.0, costs=(10.0, 30.0), incumbent=(90.0, 92.0))]}
    curves = anytime_curves(runs, "cost", points=5)
    out = plot_anytime(curves, tmp_path / "sub" / "p.png", title="t")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------------- real runs
def test_run_one_follows_the_protocol(nb201_dir: Path) -> None:
    protocol = Protocol(data=str(nb201_dir), max_cost=3000.0)
    run = run_one("random", 4, protocol)
    assert run.cost >= 3000.0 and run.costs[-2] < 3000.0  # stops right after crossing
    assert len(run.costs) == run.queries == len(run.incumbent)
    table = NB201Table.load(nb201_dir)
    rec = table.query(run.arch)
    assert (rec.val_acc, rec.test_acc) == (run.signal, run.final)
    # the incumbent only ever changes to an architecture with a better signal
    assert run.incumbent[-1] == run.final
    assert run_one("random", 4, protocol) == run  # same seed, same run


def test_trial_budget(nb201_dir: Path) -> None:
    protocol = Protocol(data=str(nb201_dir), max_cost=None, max_trials=15)
    comp = compare(["random", "rea"], 3, protocol,
                   options={"rea": {"population_size": 5, "sample_size": 2}}, jobs=1)
    assert set(comp.runs) == {"random", "rea(population_size=5,sample_size=2)"}
    assert all(r.queries == 15 for rs in comp.runs.values() for r in rs)
    assert all(r.cost > 0 for rs in comp.runs.values() for r in rs)  # cost still simulated
    assert [r.seed for r in comp.runs["random"]] == [0, 1, 2]
    curves = comp.anytime()
    assert curves.axis == "queries" and curves.grid.tolist() == list(range(1, 16))


def test_compare_validates_its_inputs(nb201_dir: Path) -> None:
    protocol = Protocol(data=str(nb201_dir), max_cost=500.0)
    with pytest.raises(UnknownNameError, match="unknown strategy 'nope'"):
        compare(["nope"], 2, protocol, jobs=1)
    with pytest.raises(ConfigError, match="bad options for strategy 'rea'"):
        compare(["rea"], 2, protocol, options={"rea": {"populaton_size": 3}}, jobs=1)
    with pytest.raises(ConfigError, match="not compared"):
        compare(["random"], 2, protocol, options={"rea": {}}, jobs=1)
    with pytest.raises(ConfigError, match="more than once"):
        compare(["random", "random"], 2, protocol, jobs=1)
    with pytest.raises(ConfigError, match="seed"):
        compare(["random"], 0, protocol, jobs=1)
    with pytest.raises(ConfigError, match="unknown benchmark"):
        Protocol(benchmark="nb101")
    with pytest.raises(ConfigError, match="at least one limit"):
        Protocol(max_cost=None, max_trials=None)
    with pytest.raises(ConfigError, match="no training times"):
        compare(["random"], 1, Protocol(data=str(nb201_dir), dataset="cifar100"), jobs=1)


@pytest.mark.slow
def test_process_pool_gives_the_same_results(nb201_dir: Path) -> None:
    protocol = Protocol(data=str(nb201_dir), max_cost=2000.0)
    one = compare(["random", "rea"], 4, protocol, jobs=1)
    seen: list[RunResult] = []
    two = compare(["random", "rea"], 4, protocol, jobs=2, on_run=seen.append)
    assert one.runs == two.runs
    assert len(seen) == 8
