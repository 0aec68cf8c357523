"""Zero-cost-assisted ranking: inherited accuracy and zero-cost proxies vote (oneshot/assisted.py)."""

from __future__ import annotations

import pytest
from oneshot_helpers import tiny_splits, tiny_supernet

from nasforge.errors import ConfigError, UnknownNameError
from nasforge.oneshot.assisted import assisted_votes, proxy_scores
from nasforge.oneshot.ranking import candidate_architectures, rank_architectures
from nasforge.proxies import vote


def test_the_supernet_is_one_more_voter() -> None:
    inherited = [80.0, 70.0, 60.0, 50.0]
    naswot = [1.0, 4.0, 3.0, 2.0]  # disagrees with the supernet on everything but the last place
    # Borda: supernet ranks 4 3 2 1, naswot 1 4 3 2 -> 5 7 5 3
    assert assisted_votes(inherited, {"naswot": naswot}).tolist() == [5.0, 7.0, 5.0, 3.0]
    # Weight 0 leaves the proxy alone; a large weight leaves the supernet's order.
    alone = assisted_votes(inherited, {"naswot": naswot}, supernet_weight=0.0)
    assert alone.tolist() == vote({"naswot": naswot}).tolist()
    heavy = assisted_votes(inherited, {"naswot": naswot}, supernet_weight=10.0)
    assert sorted(range(4), key=lambda i: -heavy[i]) == [0, 1, 2, 3]
    assert assisted_votes(inherited, {"naswot": naswot}, method="majority").tolist() == [0.0, 2.0, 0.0, -2.0]


def test_bad_assist_options_name_the_value() -> None:
    with pytest.raises(UnknownNameError, match="nosuch"):
        assisted_votes([1.0, 2.0], {"nosuch": [1.0, 2.0]})
    with pytest.raises(ConfigError, match="vote method must be one of sum, majority, got 'borda'"):
        assisted_votes([1.0, 2.0], {"naswot": [1.0, 2.0]}, method="borda")
    with pytest.raises(ConfigError, match="supernet_weight must be a finite number >= 0, got -1"):
        assisted_votes([1.0, 2.0], {"naswot": [1.0, 2.0]}, supernet_weight=-1)
    with pytest.raises(ConfigError, match="same candidates"):
        assisted_votes([1.0, 2.0, 3.0], {"naswot": [1.0, 2.0]})


def test_proxy_scores_are_those_of_the_untrained_networks_and_repeat() -> None:
    space, net = tiny_supernet("nb201")
    archs = candidate_architectures(space, 4, seed=0)
    splits = tiny_splits()
    first = proxy_scores(space, archs, ["synflow", "naswot"], splits, net.build_kwargs, batch_size=16, device="cpu")
    again = proxy_scores(space, archs, ["synflow", "naswot"], splits, net.build_kwargs, batch_size=16, device="cpu")
    assert first == again and set(first) == {"synflow", "naswot"}
    assert all(len(v) == 4 for v in first.values())
    assert len(set(first["synflow"])) > 1  # the cells differ, so do their scores
    small = proxy_scores(space, archs[:1], ["naswot"], tiny_splits(8, 8), net.build_kwargs, device="cpu")
    assert len(small["naswot"]) == 1  # a split smaller than the batch lends all its images


def test_assisted_ranking_orders_by_the_vote_and_keeps_inherited_accuracy() -> None:
    space, net = tiny_supernet("nb201")
    archs = candidate_architectures(space, 6, seed=0)
    splits = tiny_splits()
    plain = rank_architectures(net, splits, archs, bn_batches=1, device="cpu")
    assisted = rank_architectures(net, splits, archs, bn_batches=1, device="cpu", proxies=["synflow"])
    assert [r["rank"] for r in assisted] == list(range(1, 7))
    votes = [r["vote"] for r in assisted]
    assert votes == sorted(votes, reverse=True)
    by_arch = {r["arch_string"]: r["inherited_accuracy"] for r in plain}
    assert {r["arch_string"]: r["inherited_accuracy"] for r in assisted} == by_arch
    # The vote is exactly that of the records' own accuracies and proxy scores.
    expected = assisted_votes(
        [r["inherited_accuracy"] for r in assisted], {"synflow": [r["proxies"]["synflow"] for r in assisted]}
    )
    assert votes == expected.tolist()
    assert "vote" not in plain[0] and "proxies" not in plain[0]
