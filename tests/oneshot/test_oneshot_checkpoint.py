"""Supernet checkpoints: an interrupted and resumed search equals an uninterrupted one (CPU)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from oneshot_helpers import DARTS_TINY, state_equal, tiny_splits, tiny_supernet

import nasforge
from nasforge.errors import ConfigError, DataNotFoundError
from nasforge.evaluators.weight_sharing import WeightSharingEvaluator
from nasforge.oneshot.checkpoint import load_checkpoint, supernet_from_checkpoint
from nasforge.oneshot.methods import create_search
from nasforge.oneshot.search import OneShotResult, OneShotSearch
from nasforge.oneshot.supernet import seeded_supernet
from nasforge.spaces.darts import DartsSpace


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


def _darts_search(space: Any, path: Path) -> OneShotSearch:
    net = seeded_supernet(space, 0, **DARTS_TINY)
    return create_search("darts", net, tiny_splits(16, 16, size=16), epochs=1, batch_size=16,
                         device="cpu", checkpoint=path)


def test_checkpoint_records_the_space_options_and_rebuilds_with_them(tmp_path: Path) -> None:
    path = tmp_path / "few_ops.pt"
    search = _darts_search(DartsSpace(ops=["sep_conv_3x3", "skip_connect"]), path)
    search.run()
    state = load_checkpoint(path)
    assert state["supernet"]["space_options"]["ops"] == ["sep_conv_3x3", "skip_connect"]
    rebuilt = supernet_from_checkpoint(state)  # no space given: made from the stored options
    assert rebuilt.space.ops == ("sep_conv_3x3", "skip_connect")
    assert not state_equal(rebuilt.state_dict(), search.supernet.state_dict())
    # A space with other options is refused with the option named, not PyTorch's key list.
    with pytest.raises(ConfigError, match=r"other space options \(space option ops: checkpoint"):
        supernet_from_checkpoint(state, nasforge.create_space("darts"))
    ev = WeightSharingEvaluator(checkpoint=path)
    with pytest.raises(ConfigError, match="space option ops"):
        ev.bind(nasforge.create_space("darts"))
    ev.bind(DartsSpace(ops=("sep_conv_3x3", "skip_connect")))  # tuple or list: the same options


def test_resuming_with_other_space_options_names_them(tmp_path: Path) -> None:
    path = tmp_path / "c.pt"
    _darts_search(DartsSpace(ops=["sep_conv_3x3", "skip_connect"]), path).run()
    other = _darts_search(DartsSpace(ops=["sep_conv_3x3", "max_pool_3x3"]), path)
    with pytest.raises(ConfigError, match=r"another supernet \(space option ops: checkpoint \['sep_conv_3x3', "
                                          r"'skip_connect'\] vs now \['sep_conv_3x3', 'max_pool_3x3'\]\)"):
        other.run(resume=True)


def test_weights_that_do_not_fit_give_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "c.pt"
    _darts_search(DartsSpace(ops=["sep_conv_3x3", "skip_connect"]), path).run()
    state = load_checkpoint(path)
    # A checkpoint that does not record its space options (written before they were stored):
    # the default space is built and the weights cannot fit it.
    del state["supernet"]["space_options"]
    with pytest.raises(ConfigError, match=r"weights do not fit this 'darts' supernet \(missing \d+ .*"
                                          r"pass the space it was made with"):
        supernet_from_checkpoint(state)
    # Other build options: named before any weight is loaded.
    state = load_checkpoint(path)
    net = seeded_supernet(DartsSpace(ops=["sep_conv_3x3", "skip_connect"]), 0, **{**DARTS_TINY, "C": 6})
    search = create_search("darts", net, tiny_splits(16, 16, size=16), epochs=1, batch_size=16,
                           device="cpu", checkpoint=path)
    with pytest.raises(ConfigError, match="build option C: checkpoint 4 vs now 6"):
        search.run(resume=True)
    assert supernet_from_checkpoint(state).build_kwargs["C"] == 4


class SearchInterrupted(BaseException):
    """A crash inside the sub-network search (a BaseException, so no trial records it as failed)."""


@pytest.mark.parametrize("method", ["spos", "ofa"])
def test_subnet_search_resumes_from_its_database_and_a_fresh_run_clears_it(
    method: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trials = CASES[method][1]["search_trials"]
    expected = _search(method, tmp_path / "straight.pt").run()
    calls: list[Any] = []
    crash_at: list[int] = [3]  # the third evaluation of the first run crashes
    evaluate = WeightSharingEvaluator.evaluate

    def counting(self: WeightSharingEvaluator, arch: Any, ctx: Any = None) -> Any:
        calls.append(arch)
        if len(calls) in crash_at:
            raise SearchInterrupted
        return evaluate(self, arch, ctx)

    monkeypatch.setattr(WeightSharingEvaluator, "evaluate", counting)
    path = tmp_path / "run.pt"
    with pytest.raises(SearchInterrupted):
        _search(method, path).run()
    db = tmp_path / "run.pt.search.db"
    assert db.is_file()
    crash_at.clear()
    calls.clear()
    resumed = _search(method, path).run(resume=True)
    # Two trials were stored; only the interrupted one and those never started run again.
    assert len(calls) == trials - 2
    assert resumed.arch == expected.arch
    assert _plain_info(resumed) == _plain_info(expected)
    calls.clear()
    fresh = _search(method, path).run()  # not resumed: the old trials are deleted first
    assert len(calls) == trials
    assert fresh.arch == expected.arch and _plain_info(fresh) == _plain_info(expected)


def _plain_info(result: OneShotResult) -> dict[str, Any]:
    # Architectures read back from the trial database list their decisions in another order, and
    # the elastic space's JSON text form follows that order: compare the parsed architectures.
    space = tiny_supernet(CASES[result.method][0])[0]
    top = [{**t, "arch_string": space.from_string(t["arch_string"])} for t in result.info["top"]]
    return {**result.info, "top": top}
