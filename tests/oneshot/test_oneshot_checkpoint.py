"""Supernet checkpoints: an interrupted and resumed search equals an uninterrupted one (CPU)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from oneshot_helpers import one_thread, state_equal, tiny_splits, tiny_supernet

from nasforge.errors import ConfigError, DataNotFoundError
from nasforge.oneshot.checkpoint import load_checkpoint, supernet_from_checkpoint
from nasforge.oneshot.methods import create_search
from nasforge.oneshot.search import OneShotResult, OneShotSearch

__all__ = ["one_thread"]


class Interrupted(Exception):
    """Stands for a crash or Ctrl-C between two steps."""


CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "darts2": ("nb201", {}),
    "gdas": ("nb201", {}),
    "spos": ("nb201", {"search_trials": 4, "bn_batches": 1, "eval_batch_size": 32}),
    "enas": ("nb201", {"controller": "rea", "controller_steps": 3, "derive_samples": 2}),
    "ofa": ("elastic", {"search_trials": 3, "bn_batches": 1, "eval_batch_size": 32,
                        "phase_epochs": [0, 1, 0, 1]}),
}


def _search(method: str, checkpoint: Path | None) -> OneShotSearch:
    space_name, extra = CASES[method]
    _, net = tiny_supernet(space_name, seed=5)
    size = 16 if space_name == "elastic" else 12
    return create_search(method, net, tiny_splits(size=size), epochs=2, batch_size=16, seed=5,
                         checkpoint_every=1, device="cpu", checkpoint=checkpoint, **extra)


def _compare(a: OneShotResult, b: OneShotResult, sa: OneShotSearch, sb: OneShotSearch) -> None:
    assert a.arch == b.arch
    assert a.history == b.history
    assert a.steps == b.steps == 8
    assert not state_equal(sa.supernet.state_dict(), sb.supernet.state_dict())
    assert a.info == b.info


@pytest.mark.parametrize("method", sorted(CASES))
def test_interrupted_and_resumed_equals_uninterrupted(method: str, tmp_path: Path) -> None:
    straight = _search(method, tmp_path / "straight.pt")
    expected = straight.run()

    path = tmp_path / "run.pt"
    first = _search(method, path)

    def crash(search: OneShotSearch, stats: dict[str, float]) -> None:
        if search.global_step == 5:  # second step of the second epoch
            raise Interrupted

    with pytest.raises(Interrupted):
        first.run(on_step=crash)
    assert load_checkpoint(path)["position"] == {"epoch": 1, "step": 1, "global": 5}

    resumed = _search(method, path)  # a fresh process would build everything again
    result = resumed.run(resume=True)
    _compare(expected, result, straight, resumed)


def test_checkpoint_holds_everything_and_rebuilds_the_supernet(tmp_path: Path) -> None:
    search = _search("darts2", tmp_path / "c.pt")
    search.run()
    state = load_checkpoint(tmp_path / "c.pt")
    assert {"model", "w_opt", "w_sched", "a_opt", "rng", "position", "history", "config",
            "supernet", "extra"} <= set(state)
    assert state["position"] == {"epoch": 2, "step": 0, "global": 8}
    assert any(k.startswith("alphas.") for k in state["model"])
    rebuilt = supernet_from_checkpoint(state)
    assert not state_equal(rebuilt.state_dict(), search.supernet.state_dict())
    assert rebuilt.derive() == search.supernet.derive()


def test_resume_refuses_other_settings_and_other_files(tmp_path: Path) -> None:
    path = tmp_path / "c.pt"
    _search("gdas", path).run()
    _, net = tiny_supernet("nb201", seed=5)
    other = create_search("gdas", net, tiny_splits(), epochs=3, batch_size=16, seed=5,
                          device="cpu", checkpoint=path)
    with pytest.raises(ConfigError, match=r"other settings.*epochs: checkpoint 2 vs now 3"):
        other.run(resume=True)
    darts = create_search("darts", net, tiny_splits(), epochs=2, batch_size=16, device="cpu",
                          checkpoint=path)
    with pytest.raises(ConfigError, match="method 'gdas', not 'darts'"):
        darts.run(resume=True)
    junk = tmp_path / "junk.pt"
    torch.save({"hello": 1}, junk)
    with pytest.raises(ConfigError, match="not a nasforge supernet checkpoint"):
        load_checkpoint(junk)
    with pytest.raises(DataNotFoundError, match="no supernet checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(ConfigError, match="resume=True needs a checkpoint"):
        create_search("gdas", net, tiny_splits(), batch_size=16).run(resume=True)


def test_resume_without_a_checkpoint_file_starts_fresh(tmp_path: Path) -> None:
    a = _search("gdas", tmp_path / "a.pt").run()
    b = _search("gdas", tmp_path / "b.pt").run(resume=True)
    assert a.arch == b.arch and a.history == b.history
