"""Few-shot NAS: sub-supernets split on one decision, each trained on its own architectures."""

from __future__ import annotations

import numpy as np
import pytest
from oneshot_helpers import state_equal, tiny_splits, tiny_supernet

from nasforge.errors import ConfigError, UnknownNameError
from nasforge.oneshot.fewshot import split_supernet
from nasforge.oneshot.ranking import candidate_architectures, rank_architectures
from nasforge.oneshot.spos import fair_paths


def test_each_sub_supernet_inherits_the_weights_and_trains_only_its_option() -> None:
    space, net = tiny_supernet("nb201")
    before = {k: v.clone() for k, v in net.state_dict().items()}
    subs = split_supernet(net, tiny_splits(32, 32), decision="edge_2_1", epochs=1, batch_size=16, device="cpu")
    assert state_equal(net.state_dict(), before) == []  # the split leaves the supernet alone
    options = list(space.decision("edge_2_1").options)
    assert subs.decision == "edge_2_1" and list(subs.supernets) == options
    assert set(subs.history) == set(options) and all(len(h) == 1 for h in subs.history.values())
    changed = set(state_equal(subs.supernets["nor_conv_1x1"].state_dict(), before))
    # Every path of this sub-supernet takes nor_conv_1x1 on the split edge: that candidate and
    # the rest of the network train, the edge's other candidates keep the inherited weights.
    edge = [k for k in before if ".ops.edge_2_1.candidates." in k and k.endswith(".weight")]
    assert {k.split(".candidates.")[1].split(".")[0] for k in edge} == {"nor_conv_1x1", "nor_conv_3x3"}
    assert {k for k in edge if k in changed} == {k for k in edge if ".nor_conv_1x1." in k}
    assert any(".ops.edge_2_1." not in k for k in changed)  # the rest of the network trains


def test_architectures_are_scored_with_their_own_sub_supernet() -> None:
    space, net = tiny_supernet("nb201")
    splits = tiny_splits(32, 32)
    subs = split_supernet(net, splits, epochs=1, batch_size=16, device="cpu")
    assert subs.decision == space.decisions[0].name  # the first decision by default
    rng = np.random.default_rng(0)
    arch = space.complete({subs.decision: "nor_conv_3x3"}, rng)
    assert subs.supernet_for(arch) is subs.supernets["nor_conv_3x3"]
    archs = candidate_architectures(space, 8, seed=0)
    records = rank_architectures(subs, splits, archs, bn_batches=1, device="cpu")
    accuracies = [r["inherited_accuracy"] for r in records]
    assert [r["rank"] for r in records] == list(range(1, 9)) and accuracies == sorted(accuracies, reverse=True)
    for r in records:  # each record is its own sub-supernet's score
        a = space.from_string(r["arch_string"])
        alone = rank_architectures(subs.supernet_for(a), splits, [a], bn_batches=1, device="cpu")
        assert alone[0]["inherited_accuracy"] == pytest.approx(r["inherited_accuracy"], abs=1e-9)


def test_fair_paths_keep_the_fixed_decision() -> None:
    space, _ = tiny_supernet("nb201")
    paths = fair_paths(space, np.random.default_rng(0), {"edge_3_2": "skip_connect"})
    assert len(paths) == 5 and {p["edge_3_2"] for p in paths} == {"skip_connect"}
    for d in space.decisions:
        if d.name != "edge_3_2":
            assert sorted(p[d.name] for p in paths) == sorted(d.options)  # each option once


def test_bad_splits_are_refused() -> None:
    _, net = tiny_supernet("nb201")
    with pytest.raises(UnknownNameError, match="decision to split on 'edge_9_9'"):
        split_supernet(net, tiny_splits(32, 32), decision="edge_9_9", device="cpu")
    with pytest.raises(ConfigError, match="run no sub-network search: leave search_trials out"):
        split_supernet(net, tiny_splits(32, 32), device="cpu", search_trials=2)
    with pytest.raises(ConfigError, match="sampling must be one of uniform, fair, got 'x'"):
        split_supernet(net, tiny_splits(32, 32), device="cpu", sampling="x")
