"""The final stage: top-k re-evaluation, final training next to a baseline, and the verdict."""

from __future__ import annotations

import json
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import nasforge
from nasforge.config import build_experiment, make_config
from nasforge.errors import ConfigError
from nasforge.evaluators.base import EvalContext, Evaluator
from nasforge.experiment.schedulers import create_scheduler
from nasforge.experiment.selection import (
    META_KEY,
    FinalStage,
    paired_interval,
    resolve_baseline,
    run_final_stage,
    stored_final_stage,
    top_candidates,
    verdict_text,
)
from nasforge.space.architecture import Architecture
from nasforge.trial import Objective, Result


def _h(arch: Architecture, salt: str = "") -> float:
    return (zlib.crc32((arch.to_json() + salt).encode()) % 10_000) / 10_000


class NoisyEvaluator(Evaluator):
    """True quality q(arch) in [50, 90]; every measurement adds seed noise of +-``noise``.

    The search value of a few architectures is inflated on purpose (``lucky``), as a maximum over
    noisy measurements is: the final stage must not be fooled by it.
    """

    name = "noisy"
    supports_fidelity = True
    supports_final = True
    integer_fidelity = True

    def __init__(self, noise: float = 1.0, lucky: dict[Architecture, float] | None = None) -> None:
        super().__init__()
        self.noise = noise
        self.lucky = dict(lucky or {})
        self.calls: list[tuple[str, int]] = []

    def quality(self, arch: Architecture) -> float:
        return 50.0 + 40.0 * _h(arch)

    def _noise(self, arch: Architecture, seed: int) -> float:
        return self.noise * (2 * _h(arch, str(seed)) - 1)

    def evaluate(self, arch: Architecture, ctx: EvalContext) -> Result:
        self.calls.append(("evaluate", ctx.seed))
        value = self.quality(arch) + self._noise(arch, ctx.seed)
        if ctx.trial_number >= 0:  # a search trial (re-evaluations use -1)
            value += self.lucky.get(arch, 0.0)
        return Result(metrics={"accuracy": value, "params": 1000.0 * _h(arch, "p")}, cost=1.0)

    def default_fidelity(self) -> float:
        return 1.0

    def final_evaluate(self, arch: Architecture, seed: int, fidelity: float | None,
                       device: str = "cpu") -> Result:
        self.calls.append(("final", seed))
        return Result(metrics={"test_accuracy": self.quality(arch) + self._noise(arch, seed + 7)})


def _experiment(evaluator: Evaluator, trials: int = 12, storage: Any = None) -> nasforge.Experiment:
    space = nasforge.create_space("nb201")
    strategy = nasforge.create_strategy("random", space, seed=0)
    exp = nasforge.Experiment(space, strategy, evaluator, budget=nasforge.Budget(max_trials=trials),
                              storage=storage)
    return exp.run()


# ---------------------------------------------------------------------- baselines
@pytest.mark.parametrize("name", ["nb201", "darts", "macro", "elastic"])
def test_every_builtin_space_names_a_buildable_reference(name: str) -> None:
    space = nasforge.create_space(name)
    ref = space.reference_architecture()
    assert ref is not None and ref.space == name
    assert resolve_baseline(space, "reference") == ref
    assert space.from_string(space.to_string(ref)) == ref


def test_nb201_reference_is_the_resnet_cell() -> None:
    space = nasforge.create_space("nb201")
    assert space.to_string(space.reference_architecture()) == (
        "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|")


def test_baselines_named_by_the_user_and_bad_ones() -> None:
    space = nasforge.create_space("nb201")
    text = "|skip_connect~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"
    assert space.to_string(resolve_baseline(space, text)) == text
    assert resolve_baseline(space, "none") is None and resolve_baseline(space, None) is None
    darts = nasforge.create_space("darts").reference_architecture()
    with pytest.raises(ConfigError, match=r"space 'darts'.*search space is 'nb201'"):
        resolve_baseline(space, darts)
    with pytest.raises(ConfigError, match="not an architecture of space 'nb201'"):
        resolve_baseline(space, "|bogus~0|")


@pytest.mark.parametrize("bad, match", [
    ({"top_k": 0}, "top_k"), ({"final_seeds": 0}, "final_seeds"), ({"reeval_seeds": -1}, "reeval"),
    ({"final_fidelity": -2}, "final_fidelity"), ({"confidence": 1.0}, "confidence"),
])
def test_final_stage_settings_are_checked(bad: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        FinalStage(**bad)


# ---------------------------------------------------------------------- statistics and words
def test_paired_interval_matches_a_t_interval() -> None:
    a, b = [80.0, 81.0, 82.5], [79.0, 79.5, 80.0]
    d = paired_interval(a, b, 0.95)
    diffs = np.subtract(a, b)
    assert d["mean"] == pytest.approx(diffs.mean())
    half = 4.302652729911275 * diffs.std(ddof=1) / np.sqrt(3)  # t(0.975, 2)
    assert d["low"] == pytest.approx(diffs.mean() - half)
    assert d["high"] == pytest.approx(diffs.mean() + half)


def test_verdict_words_follow_the_interval() -> None:
    better = {"mean": 1.0, "low": 0.2, "high": 1.8, "n": 3, "std": 0.3}
    worse = {"mean": -1.0, "low": -1.8, "high": -0.2, "n": 3, "std": 0.3}
    unsure = {"mean": 0.5, "low": -0.4, "high": 1.4, "n": 3, "std": 0.4}
    assert verdict_text(better, 0.95, False, False)[0] == "better"
    assert "beat the baseline by +1.00" in verdict_text(better, 0.95, False, False)[1]
    assert verdict_text(worse, 0.95, False, False)[0] == "worse"
    outcome, text = verdict_text(unsure, 0.95, False, False)
    assert outcome == "inconclusive" and "includes zero" in text and "do not show" in text
    assert verdict_text(better, 0.95, True, False)[0] == "same"
    single = {"mean": 0.3, "low": None, "high": None, "n": 1, "std": 0.0}
    assert verdict_text(single, 0.95, False, False)[0] == "no-spread"
    assert "no seed spread" in verdict_text(single, 0.95, False, True)[1]


# ---------------------------------------------------------------------- the stage itself
def test_reevaluation_defeats_the_winners_curse(tmp_path: Path) -> None:
    space = nasforge.create_space("nb201")
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(12)]
    plain = NoisyEvaluator(noise=0.0)
    worst = min(archs, key=plain.quality)
    ev = NoisyEvaluator(noise=0.5, lucky={worst: 100.0})  # a fluke that tops the search
    exp = _experiment(ev, storage=str(tmp_path / "x.db"))
    assert exp.best().arch == worst
    summary = run_final_stage(exp, FinalStage(top_k=3, reeval_seeds=2, final_seeds=3))
    ranked = summary["candidates"]
    assert len(ranked) == 3
    assert ranked[0]["trial"] != exp.best().number, "the fluke must not be chosen"
    means = [c["reevaluated"]["mean"] for c in ranked]
    assert means == sorted(means, reverse=True)
    assert ranked[-1]["search_value"] > 100  # shown beside the fresh values, not averaged in
    chosen, base = summary["final"]["chosen"], summary["final"]["baseline"]
    assert chosen["n"] == base["n"] == 3
    assert summary["verdict"]["outcome"] in ("better", "worse", "inconclusive")
    assert summary["verdict"]["difference"]["n"] == 3


def test_final_stage_is_stored_and_resumes_without_repeating(tmp_path: Path) -> None:
    db = str(tmp_path / "x.db")
    ev = NoisyEvaluator()
    exp = _experiment(ev, storage=db)
    first = run_final_stage(exp, FinalStage(top_k=2, reeval_seeds=2, final_seeds=2))
    done = len(ev.calls)
    again = run_final_stage(exp, FinalStage(top_k=2, reeval_seeds=2, final_seeds=2))
    assert len(ev.calls) == done, "stored measurements are reused"
    assert again == json.loads(json.dumps(first))
    reader = nasforge.SQLiteStorage(db, readonly=True)
    try:
        assert stored_final_stage(reader)["verdict"] == first["verdict"]
        assert reader.get_meta(META_KEY)["measurements"]
    finally:
        reader.close()


def test_top_candidates_prefer_the_highest_fidelity() -> None:
    space = nasforge.create_space("nb201")
    a, b = space.sample(1), space.sample(2)
    trials = [nasforge.Trial(0, a, nasforge.TrialStatus.OK, {"accuracy": 99.0}, fidelity=1.0),
              nasforge.Trial(1, b, nasforge.TrialStatus.OK, {"accuracy": 70.0}, fidelity=9.0),
              nasforge.Trial(2, b, nasforge.TrialStatus.OK, {"accuracy": 60.0}, fidelity=1.0)]
    assert [t.number for t in top_candidates(trials, Objective(), 3)] == [1, 0]


def test_tabular_final_stage_says_the_table_has_no_spread(nb201_dir: Path) -> None:
    space = nasforge.create_space("nb201")
    ev = nasforge.create_evaluator("nb201", data=str(nb201_dir))
    exp = nasforge.Experiment(space, nasforge.create_strategy("rea", space, seed=0), ev,
                              budget=nasforge.Budget(max_cost=20_000),
                              scheduler=create_scheduler("hyperband"))
    exp.run()
    summary = run_final_stage(exp, FinalStage(top_k=2, reeval_seeds=1, final_seeds=2))
    base = summary["final"]["baseline"]
    assert base["mean"] == pytest.approx(ev.table.query(
        space.reference_architecture(), "cifar10", 200).test_acc)
    assert "no seed spread" in summary["verdict"]["text"]


# ---------------------------------------------------------------------- settings refused up front
@pytest.mark.parametrize("settings, match", [
    ({"evaluator": "proxy", "final": True}, "cannot train and test"),
    ({"final": True, "baseline": "|bogus~0|"}, "not an architecture of space 'nb201'"),
    ({"scheduler_options": {"eta": 3}}, "without a scheduler"),
    ({"scheduler": "hyperband", "scheduler_options": {"eta": 1}}, "eta"),
    ({"scheduler": "sh", "scheduler_options": {"min_fidelity": 5, "max_fidelity": 2}},
     "below min_fidelity"),
    ({"scheduler": "hyperband", "scheduler_options": {"brackets": 9, "max_fidelity": 9}},
     "brackets=9"),
    ({"scheduler": "asha", "evaluator": "proxy"}, "needs an evaluator with a fidelity"),
    ({"pruner": "median", "objectives": ["min:params"]}, "primary objective"),
])
def test_bad_settings_are_refused_before_the_database_exists(
        tmp_path: Path, settings: dict[str, Any], match: str) -> None:
    db = tmp_path / "never.db"
    cfg = make_config({"evaluator_options": {"dataset": "fashion_mnist", "train_subset": 100,
                                             "val_subset": 50}, "budget_trials": 2,
                       "storage": str(db), **settings})
    if cfg.evaluator == "proxy":
        cfg = cfg.model_copy(update={"evaluator_options": {}})
    with pytest.raises(ConfigError, match=match):
        build_experiment(cfg)
    assert not db.exists()


def test_cli_search_with_a_scheduler_and_final_stage(nb201_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    out = subprocess.run(
        [sys.executable, "-m", "nasforge.cli.main", "search", "--space", "nb201", "--evaluator", "nb201",
         "--data", str(nb201_dir), "--scheduler", "hyperband", "--budget-cost", "20000",
         "--final", "--top-k", "2", "--final-seeds", "2", "--storage", str(db), "--json", "-"],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    stage = data["final_stage"]
    assert stage["final"]["baseline"]["arch"].startswith("|nor_conv_3x3~0|+|none~0|")
    assert len(stage["candidates"]) == 2
    assert stage["verdict"]["outcome"] in ("better", "worse", "inconclusive", "same")
    assert {t["info"]["rung"] for t in [data["best"]]} == {1}


@pytest.mark.slow
def test_final_stage_on_a_process_pool_equals_inline(tmp_path: Path) -> None:
    from nasforge.experiment import ProcessExecutor

    def stage(executor: Any, name: str) -> dict[str, Any]:
        space = nasforge.create_space("nb201")
        exp = nasforge.Experiment(
            space, nasforge.create_strategy("random", space, seed=0), NoisyEvaluator(),
            budget=nasforge.Budget(max_trials=8), storage=str(tmp_path / name), executor=executor)
        exp.run()
        return run_final_stage(exp, FinalStage(top_k=3, reeval_seeds=2, final_seeds=3))

    inline = stage(None, "a.db")
    pooled = stage(ProcessExecutor(2), "b.db")
    assert pooled["candidates"] == inline["candidates"]
    assert pooled["final"]["chosen"]["values"] == inline["final"]["chosen"]["values"]
    assert pooled["verdict"] == inline["verdict"]


def test_a_failed_final_training_is_an_error_and_is_retried(tmp_path: Path) -> None:
    class Flaky(NoisyEvaluator):
        fail = True

        def final_evaluate(self, arch: Architecture, seed: int, fidelity: float | None,
                           device: str = "cpu") -> Result:
            if Flaky.fail:
                raise RuntimeError("out of memory")
            return super().final_evaluate(arch, seed, fidelity, device)

    exp = _experiment(Flaky(), storage=str(tmp_path / "f.db"))
    with pytest.raises(nasforge.NasforgeError,
                       match=r"final training of the chosen failed.*out of memory"):
        run_final_stage(exp, FinalStage(top_k=1, reeval_seeds=1, final_seeds=2))
    Flaky.fail = False
    assert run_final_stage(exp, FinalStage(top_k=1, reeval_seeds=1, final_seeds=2))["final"]
