"""Multi-objective utilities: Pareto dominance, non-dominated sorting, crowding distance,
hypervolume and the Pareto front of a list of trials.

Points are rows of an ``(n, m)`` array, one column per objective. By default every objective is
*minimized* (the textbook convention of Deb et al., 2002); pass ``directions`` (one
``"minimize"``/``"maximize"`` per column) to mix directions. Internally everything is turned into
minimization by negating the maximized columns.

References: Deb, Pratap, Agarwal & Meyarivan, "A fast and elitist multiobjective genetic
algorithm: NSGA-II", IEEE TEC 2002 (non-dominated sorting, crowding distance); While, Hingston,
Barone & Huband, "A faster algorithm for calculating hypervolume", IEEE TEC 2006 (hypervolume by
slicing objectives, exact for any number of objectives, fast for 2-3).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import numpy as np

from nasforge.errors import ConfigError, allowed
from nasforge.trial import Objective, Trial, as_objectives

_DIRECTIONS = ("minimize", "maximize")
ArrayLike = Sequence[Sequence[float]] | np.ndarray


def as_minimization(points: ArrayLike, directions: Sequence[str] | None = None) -> np.ndarray:
    """``points`` as a float ``(n, m)`` array in which every column is to be minimized."""
    arr = np.asarray(points, dtype=float)
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1) if arr.size else arr.reshape(0, 1)
    if arr.ndim != 2:
        raise ConfigError(f"points must be a 2-D array (n points x m objectives), got shape "
                          f"{arr.shape}")
    if np.isnan(arr).any():
        raise ConfigError("points contain NaN; drop failed trials before computing fronts")
    if directions is None:
        return arr
    dirs = list(directions)
    if len(dirs) != arr.shape[1]:
        raise ConfigError(f"{len(dirs)} direction(s) given for {arr.shape[1]} objective(s)")
    bad = [d for d in dirs if d not in _DIRECTIONS]
    if bad:
        raise ConfigError(f"unknown direction(s) {allowed(bad)}; allowed: {allowed(_DIRECTIONS)}")
    sign = np.array([-1.0 if d == "maximize" else 1.0 for d in dirs])
    out: np.ndarray = arr * sign
    return out


def dominates(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray,
              directions: Sequence[str] | None = None) -> bool:
    """Whether ``a`` Pareto-dominates ``b``: no worse in every objective, better in one."""
    pts = as_minimization([list(np.ravel(a)), list(np.ravel(b))], directions)
    return bool(np.all(pts[0] <= pts[1]) and np.any(pts[0] < pts[1]))


#: Elements (points x points x objectives) compared at once by the chunked dominance test of three
#: or more objectives: bounds its memory (a few MB) whatever the number of points.
_CHUNK_ELEMENTS = 1 << 22


def _dominated_by(pts: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """For every point, how many of the points ``pts[rows]`` dominate it (minimization).

    Compares a chunk of rows against all points at a time, so memory stays at
    ``_CHUNK_ELEMENTS`` booleans instead of the n x n x m of one broadcast.
    """
    n, m = pts.shape
    count = np.zeros(n, dtype=np.int64)
    step = max(1, _CHUNK_ELEMENTS // max(n * m, 1))
    for start in range(0, len(rows), step):
        sub = pts[rows[start:start + step]][:, None, :]
        dom = np.all(sub <= pts[None, :, :], axis=2) & np.any(sub < pts[None, :, :], axis=2)
        count += dom.sum(axis=0)
    return count


def _ranks_2d(pts: np.ndarray) -> np.ndarray:
    """Front number of every point of a two-objective set, by a sweep in O(n log n).

    Points are visited in lexicographic order, so every dominator of a point comes before it.
    Each front keeps the key (second objective, first objective) of the last point it received;
    that point has the front's smallest second objective, so the front dominates a new point
    exactly when its key is lexicographically below the point's own (an identical point does
    not dominate). The keys stay sorted from front to front, so the point's front is the first
    one whose key is not below, found by bisection.
    """
    ranks = np.empty(len(pts), dtype=np.int64)
    keys: list[tuple[float, float]] = []
    xs, ys = pts[:, 0].tolist(), pts[:, 1].tolist()
    for i in np.lexsort((pts[:, 1], pts[:, 0])).tolist():
        key = (ys[i], xs[i])
        k = bisect.bisect_left(keys, key)
        if k == len(keys):
            keys.append(key)
        else:
            keys[k] = key
        ranks[i] = k
    return ranks


def _ranks(pts: np.ndarray) -> np.ndarray:
    """Front number (0 = non-dominated) of every point of a non-empty minimization set."""
    n, m = pts.shape
    if m == 1:
        # Equal values share a front; each distinct value is its own front.
        out: np.ndarray = np.unique(pts[:, 0], return_inverse=True)[1].reshape(n)
        return out
    if m == 2:
        return _ranks_2d(pts)
    # Three or more objectives: Deb et al.'s peeling, with domination counts computed in chunks.
    ranks = np.full(n, -1, dtype=np.int64)
    count = _dominated_by(pts, np.arange(n))
    current = np.flatnonzero(count == 0)
    r = 0
    while current.size:
        ranks[current] = r
        count = count - _dominated_by(pts, current)
        count[current] = -1  # placed: never selected again
        current = np.flatnonzero(count == 0)
        r += 1
    return ranks


def non_dominated_sort(points: ArrayLike, directions: Sequence[str] | None = None
                       ) -> list[np.ndarray]:
    """Fronts of point indices: front 0 is the non-dominated set, front 1 is non-dominated once
    front 0 is removed, and so on (Deb et al.'s fast non-dominated sort).
    Each front lists indices in increasing order; equal points share a front.

    Two objectives take a sort-based sweep (O(n log n) time, O(n) memory); more objectives compare
    points in chunks (O(n^2 m) time, bounded memory)."""
    pts = as_minimization(points, directions)
    if len(pts) == 0:
        return []
    ranks = _ranks(pts)
    order = np.argsort(ranks, kind="stable")  # stable: indices stay increasing within a front
    bounds = np.flatnonzero(np.diff(ranks[order])) + 1
    return list(np.split(order, bounds))


def pareto_ranks(points: ArrayLike, directions: Sequence[str] | None = None) -> np.ndarray:
    """Front number of every point (0 = non-dominated)."""
    pts = as_minimization(points, directions)
    if len(pts) == 0:
        return np.zeros(0, dtype=int)
    return np.asarray(_ranks(pts), dtype=int)


def pareto_mask(points: ArrayLike, directions: Sequence[str] | None = None) -> np.ndarray:
    """Boolean mask of the non-dominated points."""
    pts = as_minimization(points, directions)
    if len(pts) == 0:
        return np.zeros(0, dtype=bool)
    if pts.shape[1] <= 2:
        return np.asarray(_ranks(pts) == 0, dtype=bool)
    return np.asarray(_dominated_by(pts, np.arange(len(pts))) == 0, dtype=bool)


def crowding_distance(points: ArrayLike, directions: Sequence[str] | None = None) -> np.ndarray:
    """NSGA-II crowding distance of each point within ``points`` (usually one front).

    Per objective, the points are sorted; the two extremes get infinity and every other point adds
    the gap between its neighbours divided by the objective's range. Larger means lonelier, which
    NSGA-II prefers to keep the front spread out. Directions do not change the result.
    """
    pts = as_minimization(points, directions)
    n, m = pts.shape
    dist = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for k in range(m):
        order = np.argsort(pts[:, k], kind="stable")
        col = pts[order, k]
        span = col[-1] - col[0]
        dist[order[0]] = dist[order[-1]] = np.inf
        if span > 0:
            dist[order[1:-1]] += (col[2:] - col[:-2]) / span
    return dist


def hypervolume(points: ArrayLike, reference: Sequence[float] | np.ndarray,
                directions: Sequence[str] | None = None) -> float:
    """Exact hypervolume dominated by ``points`` and bounded by ``reference``.

    The reference point is given in the same directions as the points (e.g. for
    (maximize accuracy, minimize params) a reference like ``(0.0, 5e6)``). Points that do not
    strictly dominate the reference add nothing. 1 and 2 objectives use a sweep; more use
    hypervolume-by-slicing-objectives (exact, fast enough for hundreds of points in 3-D).
    """
    pts = as_minimization(points, directions)
    ref = as_minimization([list(np.ravel(np.asarray(reference, dtype=float)))], directions)[0]
    if pts.shape[0] and pts.shape[1] != ref.shape[0]:
        raise ConfigError(f"reference has {ref.shape[0]} value(s) for {pts.shape[1]} objective(s)")
    if pts.shape[0] == 0:
        return 0.0
    pts = pts[np.all(pts < ref, axis=1)]
    if len(pts) == 0:
        return 0.0
    pts = pts[pareto_mask(pts)]
    return float(_hv(np.unique(pts, axis=0), ref))


def _hv(pts: np.ndarray, ref: np.ndarray) -> float:
    """Hypervolume of non-dominated minimization points that all lie strictly below ``ref``."""
    m = pts.shape[1]
    if m == 1:
        return float(ref[0] - pts[:, 0].min())
    if m == 2:
        order = np.argsort(pts[:, 0], kind="stable")
        total, best_y = 0.0, ref[1]
        for x, y in pts[order]:
            if y < best_y:  # dominated points (y >= best so far) add nothing
                total += (ref[0] - x) * (best_y - y)
                best_y = y
        return total
    # Slice along the last objective: between consecutive values z_i < z_{i+1}, the region is the
    # (m-1)-dimensional hypervolume of the points with last value <= z_i, times the slab height.
    order = np.argsort(pts[:, -1], kind="stable")
    pts = pts[order]
    total = 0.0
    for i in range(len(pts)):
        top = pts[i + 1, -1] if i + 1 < len(pts) else ref[-1]
        height = top - pts[i, -1]
        if height <= 0:
            continue
        sub = pts[: i + 1, :-1]
        sub = sub[pareto_mask(sub)]
        total += _hv(sub, ref[:-1]) * height
    return total


def objective_matrix(trials: Sequence[Trial], objectives: Objective | str | Sequence[Objective | str]
                     ) -> tuple[list[Trial], np.ndarray]:
    """The OK trials that have every objective's metric, and their values ``(n, m)`` as measured
    (not sign-flipped); pair it with ``[o.direction for o in objectives]``."""
    objs = as_objectives(objectives)
    kept: list[Trial] = []
    rows: list[list[float]] = []
    for t in trials:
        if not t.ok:
            continue
        values = [t.value(o.metric) for o in objs]
        if any(v is None for v in values):
            continue
        kept.append(t)
        rows.append([float(v) for v in values if v is not None])
    return kept, np.asarray(rows, dtype=float).reshape(len(rows), len(objs))


def pareto_front(trials: Sequence[Trial], objectives: Objective | str | Sequence[Objective | str]
                 ) -> list[Trial]:
    """The non-dominated OK trials (failed and infeasible ones never belong), in the given order.

    Trials with identical objective values are all kept.
    """
    objs = as_objectives(objectives)
    kept, values = objective_matrix(trials, objs)
    if not kept:
        return []
    mask = pareto_mask(values, [o.direction for o in objs])
    return [t for t, keep in zip(kept, mask) if keep]


__all__ = [
    "as_minimization",
    "crowding_distance",
    "dominates",
    "hypervolume",
    "non_dominated_sort",
    "objective_matrix",
    "pareto_front",
    "pareto_mask",
    "pareto_ranks",
]
