"""The weight_sharing evaluator: inherited-weight accuracy, BN recalibration, ranking, experiments."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from oneshot_helpers import state_equal, tiny_splits, tiny_supernet

import nasforge
from nasforge.data import make_splits
from nasforge.errors import ConfigError
from nasforge.evaluators.weight_sharing import WeightSharingEvaluator
from nasforge.oneshot.evaluation import evaluate_arch, recalibrate_batchnorm
from nasforge.oneshot.methods import create_search
from nasforge.oneshot.supernet import Supernet, seeded_supernet

Trained = tuple[nasforge.SearchSpace, Supernet]


@pytest.fixture(scope="module")
def trained() -> Iterator[Trained]:
    """A tiny NAS-Bench-201 supernet trained for two SPOS epochs."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    space, net = tiny_supernet("nb201", seed=1)
    create_search("spos", net, tiny_splits(), epochs=2, batch_size=16, search_trials=1,
                  bn_batches=1, eval_batch_size=32, device="cpu").run()
    torch.set_num_threads(before)
    yield space, net


def test_evaluate_is_deterministic_and_leaves_the_supernet_unchanged(trained: Trained) -> None:
    space, net = trained
    before = {k: v.clone() for k, v in net.state_dict().items()}
    ev = nasforge.create_evaluator("weight_sharing", supernet=net, splits=tiny_splits(),
                                   batch_size=32, bn_batches=2).bind(space)
    arch = space.sample(7)
    a, b = ev.evaluate(arch), ev.evaluate(arch)
    assert a.metrics == b.metrics
    assert 0.0 <= a.metrics["accuracy"] <= 100.0 and a.metrics["loss"] > 0
    assert a.metrics["params"] == sum(p.numel() for p in space.build(arch, **net.build_kwargs).parameters())
    assert not state_equal(before, net.state_dict())
    assert a.info["eval_samples"] == 64


def test_accuracy_is_that_of_the_extracted_network_after_recalibration(trained: Trained) -> None:
    space, net = trained
    splits = tiny_splits()
    arch = space.sample(3)
    ev = WeightSharingEvaluator(supernet=net, splits=splits, batch_size=32, bn_batches=2)
    got = ev.evaluate(arch).metrics["accuracy"]
    derived = net.extract(arch)
    bn = [(x, y) for x, y in [(splits.train.images[i:i + 32], splits.train.labels[i:i + 32])
                              for i in (0, 32)]]
    recalibrate_batchnorm(derived, bn)
    with torch.no_grad():
        pred = derived(splits.val.images).argmax(1)
    assert got == pytest.approx(100.0 * float((pred == splits.val.labels).float().mean()))
    # Without recalibration the loss is that of the stored (mixed-path) statistics.
    derived_stale = net.extract(arch).eval()
    with torch.no_grad():
        stale_loss = torch.nn.functional.cross_entropy(derived_stale(splits.val.images), splits.val.labels)
    _, loss = evaluate_arch(net, arch, [(splits.val.images, splits.val.labels)], None)
    assert loss == pytest.approx(float(stale_loss), rel=1e-5)


def test_rank_exports_the_top_k_as_json(trained: Trained, tmp_path: Path) -> None:
    space, net = trained
    ev = WeightSharingEvaluator(supernet=net, splits=tiny_splits(), batch_size=32, bn_batches=1)
    archs = [space.sample(s) for s in range(6)]
    ranking = ev.rank(archs + archs[:2], top_k=3, path=tmp_path / "top.json")
    assert [r["rank"] for r in ranking] == [1, 2, 3]
    accs = [r["accuracy"] for r in ranking]
    assert accs == sorted(accs, reverse=True)
    everything = ev.rank(archs)
    assert len(everything) == 6 and everything[0]["accuracy"] == accs[0]
    assert json.loads((tmp_path / "top.json").read_text()) == ranking
    assert space.from_string(ranking[0]["arch_string"]) == nasforge.Architecture.from_dict(ranking[0]["arch"])
    with pytest.raises(ConfigError, match="top_k must be a positive integer"):
        ev.rank(archs, top_k=0)


def test_any_strategy_searches_on_the_supernet(trained: Trained) -> None:
    space, net = trained
    ev = WeightSharingEvaluator(supernet=net, splits=tiny_splits(), batch_size=32, bn_batches=1)
    exp = nasforge.Experiment(space, nasforge.create_strategy("random", space, seed=0), ev,
                              budget=nasforge.Budget(max_trials=4), constraints=["params <= 1e9"],
                              device="cpu").run()
    assert len(exp.trials) == 4 and all(t.ok for t in exp.trials)
    best = exp.best()
    assert best is not None and best.metrics["accuracy"] == max(t.metrics["accuracy"] for t in exp.trials)


def test_from_a_checkpoint_with_its_recorded_split(fashion_mnist_dir: Path, tmp_path: Path) -> None:
    spec = {"dataset": "fashion_mnist", "data_dir": str(fashion_mnist_dir), "val_size": 0.5,
            "train_subset": 64, "val_subset": 48, "seed": 0}
    splits = make_splits(spec["dataset"], data_dir=spec["data_dir"], val_size=0.5, train_subset=64,
                         val_subset=48, seed=0)
    space = nasforge.create_space("nb201")
    net = seeded_supernet(space, 0, C=4, N=1, in_channels=1)
    ckpt = tmp_path / "s.pt"
    create_search("spos", net, splits, epochs=1, batch_size=16, search_trials=1, bn_batches=1,
                  device="cpu", checkpoint=ckpt, data_spec=spec).run()
    arch = space.sample(0)
    from_ckpt = nasforge.create_evaluator("weight_sharing", checkpoint=str(ckpt), batch_size=16,
                                          bn_batches=2).bind(space)
    direct = WeightSharingEvaluator(supernet=net, splits=splits, batch_size=16, bn_batches=2).bind(space)
    result = from_ckpt.evaluate(arch)
    assert result.metrics == direct.evaluate(arch).metrics
    assert result.info["eval_samples"] == 48
    assert from_ckpt.describe()["checkpoint"] == str(ckpt)


def test_bad_arguments_are_named(trained: Trained, tmp_path: Path) -> None:
    space, net = trained
    with pytest.raises(ConfigError, match="exactly one of supernet= or checkpoint="):
        WeightSharingEvaluator()
    with pytest.raises(ConfigError, match="bn_batches must be an integer >= 0"):
        WeightSharingEvaluator(supernet=net, bn_batches=-1)
    with pytest.raises(ConfigError, match="supernet is of space 'nb201', not 'darts'"):
        WeightSharingEvaluator(supernet=net).bind(nasforge.create_space("darts"))
    with pytest.raises(ConfigError, match="needs data"):
        WeightSharingEvaluator(supernet=net).bind(space).evaluate(space.sample(0))
    with pytest.raises(nasforge.DataNotFoundError):
        WeightSharingEvaluator(checkpoint=tmp_path / "none.pt")
