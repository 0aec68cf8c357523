"""Combining several proxies by voting over a set of architectures.

A vote needs the scores of *all* candidates (ranks only exist within a set), so it is a function
of a score table, not of one architecture. Abdelfattah et al. (ICLR 2021) combine synflow,
jacob_cov and snip by majority vote and report a better rank correlation than any one of them.

Two rules:

* ``"sum"`` (Borda count): each proxy ranks the candidates (1 = lowest score); a candidate's
  vote is the sum of its ranks.
* ``"majority"`` (Copeland): candidate ``a`` beats ``b`` when more proxies score ``a`` higher
  than ``b`` than the other way round; a candidate's vote is its number of wins minus losses.

Higher votes are better. A NaN score (a proxy undefined for that network) counts as the worst.
``weights`` (``{name: weight}``, 1 for a name left out) scale a criterion's ranks in the sum and
its preferences in the majority, so one criterion can count more than another (e.g. a supernet's
accuracy against several proxies, :mod:`nasforge.oneshot.assisted`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from nasforge.errors import ConfigError, allowed

VOTE_METHODS: tuple[str, ...] = ("sum", "majority")
#: ``{proxy name: [score of each candidate]}``, every list in the same candidate order.
Scores = Mapping[str, "Sequence[float] | np.ndarray"]


def _table(scores: Scores) -> np.ndarray:
    if not scores:
        raise ConfigError("a vote needs the scores of at least one proxy")
    lengths = {name: len(values) for name, values in scores.items()}
    if len(set(lengths.values())) != 1:
        raise ConfigError(f"every proxy must score the same candidates; got lengths {lengths}")
    table = np.array([np.asarray(v, dtype=np.float64) for v in scores.values()], ndmin=2)
    # NaN -> -inf: undefined scores rank below every defined one.
    return np.where(np.isnan(table), -np.inf, table)


def _weights(scores: Scores, weights: Mapping[str, float] | None) -> np.ndarray:
    given = dict(weights or {})
    unknown = sorted(set(given) - set(scores))
    if unknown:
        raise ConfigError(f"vote weights for {unknown}, which are not scored; scored: {sorted(scores)}")
    for name, w in given.items():
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not np.isfinite(w) or w < 0:
            raise ConfigError(f"vote weight of {name!r} must be a finite number >= 0, got {w!r}")
    return np.array([float(given.get(name, 1.0)) for name in scores])


def vote(scores: Scores, method: str = "sum", weights: Mapping[str, float] | None = None) -> np.ndarray:
    """One vote per candidate from ``{proxy: [score of each candidate]}``; higher is better."""
    if method not in VOTE_METHODS:
        raise ConfigError(f"unknown vote method {method!r}; allowed: {allowed(VOTE_METHODS)}")
    w = _weights(scores, weights)
    # Per-proxy ranks (1 = lowest, ties averaged): finite even where scores are -inf.
    from scipy.stats import rankdata  # deferred: scipy.stats costs ~0.6 s at import

    ranks = np.array([rankdata(row, method="average") for row in _table(scores)])
    if method == "sum":
        return np.asarray((w[:, None] * ranks).sum(axis=0), dtype=np.float64)
    # prefer[p, a, b] is +1 when proxy p ranks a above b, -1 when below, 0 on a tie.
    prefer = np.sign(ranks[:, :, None] - ranks[:, None, :])
    majority = np.sign((w[:, None, None] * prefer).sum(axis=0))
    return np.asarray(majority.sum(axis=1), dtype=np.float64)


def vote_ranks(scores: Scores, method: str = "sum", weights: Mapping[str, float] | None = None) -> np.ndarray:
    """Competition ranks of the vote: 1 is the best candidate; equal votes share a rank."""
    votes = vote(scores, method, weights)
    from scipy.stats import rankdata

    return np.asarray(rankdata(-votes, method="min"), dtype=np.int64)


__all__ = ["VOTE_METHODS", "Scores", "vote", "vote_ranks"]
