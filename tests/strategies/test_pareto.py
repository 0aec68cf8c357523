"""nasforge.pareto on hand-made points: dominance, fronts, crowding, hypervolume, trial fronts."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nasforge import pareto
from nasforge.errors import ConfigError
from nasforge.pareto import (
    crowding_distance,
    dominates,
    hypervolume,
    non_dominated_sort,
    pareto_front,
    pareto_mask,
    pareto_ranks,
)
from nasforge.space.architecture import Architecture
from nasforge.trial import Objective, Trial, TrialStatus

POINTS = [(1, 5), (2, 3), (3, 1), (2, 4), (4, 4), (5, 5)]


def test_dominates_minimize_and_maximize() -> None:
    assert dominates((1, 2), (2, 3))
    assert dominates((1, 3), (2, 3))
    assert not dominates((1, 3), (2, 2)) and not dominates((2, 2), (1, 3))
    assert not dominates((1, 1), (1, 1))  # equal points do not dominate each other
    assert dominates((2, 3), (1, 2), directions=["maximize", "maximize"])
    assert dominates((90.0, 1e5), (80.0, 2e5), directions=["maximize", "minimize"])


def test_non_dominated_sort_fronts_and_ranks() -> None:
    fronts = non_dominated_sort(POINTS)
    assert [f.tolist() for f in fronts] == [[0, 1, 2], [3], [4], [5]]
    assert pareto_ranks(POINTS).tolist() == [0, 0, 0, 1, 2, 3]
    assert pareto_mask(POINTS).tolist() == [True, True, True, False, False, False]
    # Maximizing both objectives turns the order around: (5, 5) alone is best.
    assert non_dominated_sort(POINTS, ["maximize", "maximize"])[0].tolist() == [5]
    assert non_dominated_sort([]) == []


def test_duplicates_share_a_front() -> None:
    assert [f.tolist() for f in non_dominated_sort([(1, 1), (1, 1), (2, 2)])] == [[0, 1], [2]]


def test_crowding_distance() -> None:
    d = crowding_distance([(1, 5), (2, 3), (3, 1)])
    assert np.isinf(d[0]) and np.isinf(d[2])
    assert d[1] == pytest.approx(2.0)  # (3-1)/(3-1) + (5-1)/(5-1)
    d = crowding_distance([(0, 10), (1, 9), (5, 5), (10, 0)])
    assert d[1] == pytest.approx(5 / 10 + 5 / 10)
    assert d[2] == pytest.approx(9 / 10 + 9 / 10)
    assert np.isinf(crowding_distance([(1, 2), (3, 4)])).all()


def test_hypervolume_2d_hand_computed() -> None:
    # Slabs of the staircase: 3*1 + 2*2 + 1*2 = 9 (dominated points add nothing).
    assert hypervolume(POINTS, (4, 6)) == pytest.approx(9.0)
    assert hypervolume([(1, 5), (2, 3), (3, 1)], (4, 6)) == pytest.approx(9.0)
    assert hypervolume([(5, 5)], (4, 6)) == 0.0  # beyond the reference point
    assert hypervolume([], (1, 1)) == 0.0
    assert hypervolume([(2,)], (5,)) == pytest.approx(3.0)


def test_hypervolume_mixed_directions() -> None:
    # (maximize accuracy, minimize params) against reference (accuracy 0, params 10).
    pts = [(90.0, 6.0), (80.0, 2.0)]
    # As minimization: (-90, 6), (-80, 2), reference (0, 10): 90*4 + 80*4 = 680.
    assert hypervolume(pts, (0.0, 10.0), ["maximize", "minimize"]) == pytest.approx(680.0)


def test_hypervolume_3d_hand_computed() -> None:
    assert hypervolume([(1, 1, 1)], (2, 2, 2)) == pytest.approx(1.0)
    # Boxes 2*2*1 and 1*1*2 overlap in a unit cube: 4 + 2 - 1.
    assert hypervolume([(0, 0, 1), (1, 1, 0)], (2, 2, 2)) == pytest.approx(5.0)


@pytest.mark.parametrize("m", [2, 3, 4])
def test_hypervolume_matches_counting_unit_cells(m: int) -> None:
    rng = np.random.default_rng(m)
    pts = rng.integers(0, 5, size=(8, m))
    ref = np.full(m, 5)
    cells = sum(
        1 for c in itertools.product(range(5), repeat=m)
        if any(np.all(p <= np.array(c)) for p in pts)
    )
    assert hypervolume(pts, ref) == pytest.approx(float(cells))


def test_bad_inputs_raise_config_errors() -> None:
    with pytest.raises(ConfigError, match="direction"):
        non_dominated_sort(POINTS, ["up", "down"])
    with pytest.raises(ConfigError, match="2 objective"):
        non_dominated_sort(POINTS, ["minimize"])
    with pytest.raises(ConfigError, match="NaN"):
        pareto_mask([(1.0, float("nan"))])
    with pytest.raises(ConfigError, match="reference"):
        hypervolume(POINTS, (1, 2, 3))


def test_pareto_front_of_trials_skips_failed_and_infeasible() -> None:
    def trial(n: int, status: TrialStatus, acc: float, params: float) -> Trial:
        arch = Architecture("toy", {"x": n})
        return Trial(number=n, arch=arch, status=status,
                     metrics={"accuracy": acc, "params": params})

    trials = [
        trial(0, TrialStatus.OK, 90, 5e6),
        trial(1, TrialStatus.OK, 85, 1e6),
        trial(2, TrialStatus.OK, 84, 2e6),  # dominated by 1
        trial(3, TrialStatus.INFEASIBLE, 99, 1e5),  # would dominate all, but broke a constraint
        trial(4, TrialStatus.FAILED, 0, 0),
        Trial(number=5, arch=Architecture("toy", {"x": 5}), status=TrialStatus.OK,
              metrics={"accuracy": 95.0}),  # lacks params
    ]
    front = pareto_front(trials, [Objective("accuracy"), Objective("params", "minimize")])
    assert [t.number for t in front] == [0, 1]
    assert [t.number for t in pareto_front(trials, "accuracy")] == [5]


# ---------------------------------------------------------------------------------- fast sorts
def reference_fronts(points: np.ndarray) -> list[list[int]]:
    """The textbook definition, all pairs at once: front r holds the points that only points of
    earlier fronts dominate."""
    pts = np.asarray(points, dtype=float)
    le = np.all(pts[:, None, :] <= pts[None, :, :], axis=2)
    lt = np.any(pts[:, None, :] < pts[None, :, :], axis=2)
    dom = le & lt  # dom[i, j]: i dominates j
    left = set(range(len(pts)))
    fronts = []
    while left:
        front = sorted(j for j in left if not any(dom[i, j] for i in left))
        fronts.append(front)
        left -= set(front)
    return fronts


def point_sets(max_m: int = 4) -> st.SearchStrategy[np.ndarray]:
    # Small integers make ties and duplicates common; floats cover the general case.
    values = st.one_of(st.integers(0, 4).map(float),
                       st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False))
    return st.integers(1, max_m).flatmap(lambda m: st.lists(
        st.lists(values, min_size=m, max_size=m), min_size=0, max_size=40
    ).map(lambda rows, m=m: np.asarray(rows, dtype=float).reshape(len(rows), m)))


@settings(max_examples=300, deadline=None, database=None)
@given(point_sets())
def test_non_dominated_sort_matches_the_definition(points: np.ndarray) -> None:
    expected = reference_fronts(points)
    assert [f.tolist() for f in non_dominated_sort(points)] == expected
    ranks = pareto_ranks(points)
    assert all(ranks[i] == r for r, front in enumerate(expected) for i in front)
    assert pareto_mask(points).tolist() == [i in (expected[0] if expected else []) for i in
                                            range(len(points))]


@settings(max_examples=100, deadline=None, database=None)
@given(point_sets())
def test_chunked_comparison_matches_with_tiny_chunks(points: np.ndarray) -> None:
    # Chunks of one or two rows: every chunk boundary of the >2-objective path is exercised.
    original = pareto._CHUNK_ELEMENTS
    pareto._CHUNK_ELEMENTS = 2 * max(points.size, 1)
    try:
        assert [f.tolist() for f in non_dominated_sort(points)] == reference_fronts(points)
    finally:
        pareto._CHUNK_ELEMENTS = original


def test_ten_thousand_points_sort_quickly_in_little_memory() -> None:
    import time
    import tracemalloc

    rng = np.random.default_rng(0)
    pts = rng.integers(0, 1000, size=(10_000, 2)).astype(float)
    tracemalloc.start()
    t0 = time.perf_counter()
    fronts = non_dominated_sort(pts)
    elapsed = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert sum(len(f) for f in fronts) == 10_000
    assert peak < 20e6  # the all-pairs matrix alone would be 10,000^2 booleans = 100 MB
    assert elapsed < 5.0  # about 0.05 s; generous for a loaded machine
