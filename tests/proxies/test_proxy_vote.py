"""Voting over proxies: sum of ranks (Borda) and pairwise majority (Copeland)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nasforge.errors import ConfigError
from nasforge.proxies import vote, vote_ranks


def test_sum_of_ranks() -> None:
    scores = {"a": [1.0, 2.0, 3.0], "b": [30.0, 10.0, 20.0]}
    # ranks a: 1 2 3, b: 3 1 2 -> sums 4 3 5
    assert vote(scores, "sum").tolist() == [4.0, 3.0, 5.0]
    assert vote_ranks(scores, "sum").tolist() == [2, 3, 1]


def test_majority_counts_pairwise_wins() -> None:
    scores = {"p": [3.0, 2.0, 1.0], "q": [3.0, 1.0, 2.0], "r": [1.0, 3.0, 2.0]}
    # 0 beats 1 (p, q) and 2 (p, q); 1 vs 2: p, r prefer 1 -> 1 beats 2.
    assert vote(scores, "majority").tolist() == [2.0, 0.0, -2.0]
    assert vote_ranks(scores, "majority").tolist() == [1, 2, 3]


def test_nan_scores_rank_last_and_ties_share_a_rank() -> None:
    scores = {"a": [math.nan, 1.0, 1.0, 5.0]}
    assert vote_ranks(scores).tolist() == [4, 2, 2, 1]
    assert vote_ranks({"a": [math.nan, 1.0], "b": [math.nan, 0.0]}, "majority").tolist() == [2, 1]


def test_one_proxy_vote_is_its_own_ranking() -> None:
    values = np.random.default_rng(0).normal(size=20)
    order = vote_ranks({"x": values})
    assert np.array_equal(np.argsort(order), np.argsort(-values))


def test_bad_votes_are_rejected() -> None:
    with pytest.raises(ConfigError, match="'sum', 'majority'"):
        vote({"a": [1.0]}, "borda")
    with pytest.raises(ConfigError, match="same candidates"):
        vote({"a": [1.0, 2.0], "b": [1.0]})
    with pytest.raises(ConfigError, match="at least one proxy"):
        vote({})


def test_weights_scale_a_criterions_say() -> None:
    scores = {"a": [1.0, 2.0, 3.0], "b": [30.0, 10.0, 20.0]}
    # ranks a: 1 2 3, b: 3 1 2; a counts 3 times -> 3+3=6, 6+1=7, 9+2=11
    assert vote(scores, "sum", weights={"a": 3.0}).tolist() == [6.0, 7.0, 11.0]
    # b alone decides the majority when a weighs nothing; equal weights are the unweighted vote.
    assert vote_ranks(scores, "majority", weights={"a": 0.0}).tolist() == [1, 3, 2]
    assert vote(scores, "majority", weights={"a": 1.0, "b": 1.0}).tolist() == vote(scores, "majority").tolist()
    with pytest.raises(ConfigError, match=r"not scored; scored: \['a', 'b'\]"):
        vote(scores, weights={"c": 1.0})
    with pytest.raises(ConfigError, match="weight of 'a' must be a finite number >= 0, got -1"):
        vote(scores, weights={"a": -1})
