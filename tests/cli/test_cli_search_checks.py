"""`nasforge search`/`show` on bad settings: refused runs change nothing, errors name their source,
results go to stdout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nasforge.cli.main import main

Capsys = pytest.CaptureFixture[str]


def _nb201(nb201_dir: Path, db: Path, *extra: str) -> list[str]:
    return ["search", "--space", "nb201", "--evaluator", "nb201", "--data", str(nb201_dir),
            "--storage", str(db), "--budget-trials", "3", "--quiet", *extra]


def test_refused_search_keeps_resume_working(tmp_path: Path, nb201_dir: Path,
                                             capsys: Capsys) -> None:
    db = tmp_path / "x.db"
    assert main(_nb201(nb201_dir, db)) == 0
    # The same database with another strategy is refused ...
    assert main(_nb201(nb201_dir, db, "--strategy", "random")) == 2
    assert "different experiment" in capsys.readouterr().err
    # ... and leaves the stored settings alone, so --resume rebuilds the stored experiment.
    out = tmp_path / "r.json"
    assert main(["search", "--resume", str(db), "--budget-trials", "5", "--quiet",
                 "--json", str(out)]) == 0, capsys.readouterr().err
    summary = json.loads(out.read_text())
    assert summary["strategy"] == "rea" and summary["trials"] == 5


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--objective", "acuracy"], "evaluator 'nb201' does not produce the metric(s) 'acuracy' "
         "(named by objective max:acuracy); its metrics are: accuracy, params, test_accuracy"),
        (["--constraint", "flops <= 1"], "'flops' (named by constraint flops <= 1)"),
        (["--seed", "-1"], "--seed: seed: seed must be an integer >= 0 (got -1)"),
        (["--strategy-option", "population_sizee=4"],
         "--strategy-option: strategy_options.population_sizee: bad options for strategy 'rea': "
         "unknown option(s) 'population_sizee'; allowed: 'population_size', 'sample_size'"),
        (["--space-option", "foo=1"], "--space-option: space_options.foo: bad options for space "
         "'nb201': unknown option(s) 'foo'; allowed: none"),
        (["--evaluator-option", "fidelity=200", "--evaluator-option", "epochs=4"],
         "--evaluator-option: evaluator_options.epochs: bad options for evaluator 'nb201'"),
        (["--executor", "process", "--workers", "2", "--ray-num-gpus", "1"],
         "--ray-num-gpus: ray_num_gpus is only used by executor 'ray'"),
    ],
)
def test_invalid_settings_fail_up_front_and_leave_no_files(
    tmp_path: Path, nb201_dir: Path, capsys: Capsys, extra: list[str], needle: str
) -> None:
    db = tmp_path / "new.db"
    assert main(_nb201(nb201_dir, db, *extra)) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # no empty database, no .db.lock


def test_yaml_option_errors_name_the_file_and_key(tmp_path: Path, nb201_dir: Path,
                                                  capsys: Capsys) -> None:
    cfg = tmp_path / "search.yaml"
    cfg.write_text(f"evaluator: nb201\nevaluator_options: {{data: {nb201_dir}}}\n"
                   "strategy_options: {population_sizee: 4}\n")
    assert main(["search", "--config", str(cfg), "--storage", str(tmp_path / "e.db")]) == 2
    err = capsys.readouterr().err
    assert f"{cfg}: strategy_options.population_sizee: bad options for strategy 'rea'" in err
    assert "allowed: 'population_size', 'sample_size'" in err
    cfg.write_text("evaluator: train\nevaluator_options: {epochs: four}\n")
    assert main(["search", "--config", str(cfg), "--storage", str(tmp_path / "e.db")]) == 2
    assert (f"{cfg}: evaluator_options.epochs: epochs must be an integer; got 'four'"
            in capsys.readouterr().err)
    assert not (tmp_path / "e.db").exists()


def test_missing_dataset_fails_before_the_first_trial(tmp_path: Path, capsys: Capsys,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # CIFAR-10 has no system-wide install to fall back on; the cache is empty too.
    monkeypatch.delenv("NASFORGE_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    empty = tmp_path / "data"
    empty.mkdir()
    db = tmp_path / "e.db"
    code = main(["search", "--evaluator", "train", "--dataset", "cifar10", "--data",
                 str(empty), "--storage", str(db), "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert "cifar10 (train split) not found" in err and str(empty) in err
    assert "Traceback" not in err and not db.exists()


def test_ray_resources_from_flags_and_resume(tmp_path: Path, nb201_dir: Path) -> None:
    """The flags reach the stored settings (and so RayExecutor) and a resume may drop them."""
    from nasforge.cli.main import build_parser
    from nasforge.cli.search import config_from_args
    from nasforge.config import ray_options

    parser = build_parser()
    args = parser.parse_args(_nb201(nb201_dir, tmp_path / "e.db", "--executor", "ray",
                                    "--ray-num-cpus", "2", "--ray-num-gpus", "0.25"))
    cfg = config_from_args(args)
    assert ray_options(cfg) == {"num_cpus": 2.0, "num_gpus": 0.25}
    # Run it inline (no Ray here), then resume it with the stored Ray settings on another executor.
    db = tmp_path / "e.db"
    assert main(_nb201(nb201_dir, db)) == 0
    from nasforge.experiment import SQLiteStorage

    s = SQLiteStorage(db)
    s.set_meta("search_config", {**s.get_meta("search_config"), **cfg.model_dump(
        mode="json", include={"executor", "ray_num_cpus", "ray_num_gpus"})})
    s.close()
    resumed = config_from_args(parser.parse_args(["search", "--resume", str(db),
                                                  "--executor", "inline"]))
    assert resumed.executor == "inline" and resumed.ray_num_gpus is None


def test_show_writes_results_to_stdout(tmp_path: Path, nb201_dir: Path, capsys: Capsys,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)  # as when redirected: `nasforge show DB > file`
    db = tmp_path / "x.db"
    assert main(_nb201(nb201_dir, db)) == 0
    capsys.readouterr()
    assert main(["show", str(db)]) == 0
    out, err = capsys.readouterr()
    assert "3 trial(s)" in out and "accuracy" in out and "params" in out
    assert out.count("|+|") == 6  # each NB201 cell string, whole (not cut at 80 columns)
    assert err == ""


def test_search_results_on_stdout_and_json_stays_clean(tmp_path: Path, nb201_dir: Path,
                                                       capsys: Capsys) -> None:
    db = tmp_path / "x.db"
    base = ["search", "--space", "nb201", "--evaluator", "nb201", "--data", str(nb201_dir),
            "--storage", str(db), "--budget-trials", "3"]
    assert main(base) == 0
    out, _ = capsys.readouterr()
    assert "best architecture" in out and "top 3 by maximize accuracy" in out
    assert main([*base, "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["trials"] == 3  # nothing but the JSON on stdout
    assert "best architecture" in err


def test_show_errors_lists_missing_metric_failures(tmp_path: Path, capsys: Capsys,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    import nasforge
    from nasforge.errors import ConfigError
    from nasforge.evaluators.function import FunctionEvaluator

    db = tmp_path / "e.db"
    space = nasforge.create_space("nb201")
    exp = nasforge.Experiment(space, nasforge.create_strategy("random", space, seed=0),
                              FunctionEvaluator(lambda a, c: {"score": 1.0}),
                              objectives=["acuracy"], budget=nasforge.Budget(max_trials=5),
                              storage=str(db))
    with pytest.raises(ConfigError):
        exp.run()
    capsys.readouterr()
    assert main(["show", str(db), "--errors"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "failed" in out and "no metric 'acuracy'" in out and "it has: score" in out
