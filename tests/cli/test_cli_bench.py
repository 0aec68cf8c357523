"""``nasforge bench`` on a few seeds: table, JSON, plot, strategy options and errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nasforge.cli.bench import parse_strategy_options
from nasforge.cli.main import main
from nasforge.errors import ConfigError


def _bench(nb201_dir: Path, *extra: str) -> list[str]:
    return ["bench", "--benchmark", "nb201", "--data", str(nb201_dir), "--jobs", "1", *extra]


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--budget-seconds" in out and "--strategy-option" in out and "--json" in out
    # The description is not %-formatted by argparse, so a doubled %% would show as is.
    assert "95% confidence" in " ".join(out.split()) and "%%" not in out


def test_json_output(nb201_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    code = main(_bench(nb201_dir, "--strategies", "random,rea", "--seeds", "3",
                       "--budget-seconds", "3000", "--json", str(out)))
    assert code == 0
    stdout = capsys.readouterr().out  # results go to stdout (`nasforge bench ... > table.txt`)
    assert "95% CI" in stdout and "Welch" in stdout and "Mann-Whitney" in stdout
    data = json.loads(out.read_text())
    assert data["protocol"]["max_cost"] == 3000.0 and data["protocol"]["dataset"] == "cifar10"
    methods = {m["strategy"]: m for m in data["methods"]}
    assert set(methods) == {"random", "rea"}
    assert sorted(m["rank"] for m in methods.values()) == [1, 2]
    for name, m in methods.items():
        finals = [r["final"] for r in data["runs"][name]]
        assert m["runs"] == 3 and len(finals) == 3
        assert m["mean"] == pytest.approx(sum(finals) / 3)
        assert m["best"] == max(finals) and m["worst"] == min(finals)
        assert m["ci_low"] <= m["mean"] <= m["ci_high"]
        assert all(r["cost"] >= 3000.0 for r in data["runs"][name])
    assert {data["test"]["a"], data["test"]["b"]} == {"random", "rea"}
    assert 0.0 <= data["test"]["welch_p"] <= 1.0 and 0.0 <= data["test"]["mannwhitney_p"] <= 1.0


def test_json_to_stdout_trial_budget_options_and_plot(
    nb201_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plot = tmp_path / "anytime.png"
    code = main(_bench(nb201_dir, "--strategies", "rea", "--seeds", "2", "--budget-trials", "12",
                       "--strategy-option", "rea.population_size=4",
                       "--strategy-option", "rea.sample_size=2", "--plot", str(plot), "--json"))
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    (method,) = data["methods"]
    assert method["strategy"] == "rea(population_size=4,sample_size=2)"
    assert method["queries_min"] == method["queries_max"] == 12
    assert data["protocol"]["max_cost"] is None and data["test"] is None
    assert plot.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--strategies", "random,nope"], "unknown strategy 'nope'"),
        (["--dataset", "mnist"], "unknown NAS-Bench-201 dataset 'mnist'"),
        (["--dataset", "cifar100"], "no training times for dataset 'cifar100'"),
        (["--fidelity", "50"], "fidelity 50; available"),
        (["--strategy-option", "rea.population_size=3", "--strategies", "random"],
         "not among --strategies"),
        (["--strategy-option", "population_size=3"], "NAME.KEY=VALUE"),
        (["--seeds", "0"], "--seeds must be >= 1"),
        (["--jobs", "0"], "--jobs must be >= 1"),
    ],
)
def test_user_errors_are_one_clean_line(
    nb201_dir: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    base = ["bench", "--data", str(nb201_dir), "--seeds", "1", "--quiet"]
    code = main(base + args) if "--jobs" in args else main([*base, "--jobs", "1", *args])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("nasforge: error:") and message in err
    assert "Traceback" not in err


def test_missing_data_names_where_it_looked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NASFORGE_NB201", raising=False)
    assert main(["bench", "--seeds", "1", "--jobs", "1", "--quiet"]) == 2
    assert "NASFORGE_NB201" in capsys.readouterr().err
    assert main(["bench", "--data", str(tmp_path), "--seeds", "1", "--jobs", "1", "--quiet"]) == 2
    assert str(tmp_path) in capsys.readouterr().err


def test_cifar100_by_trials_works(nb201_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(_bench(nb201_dir, "--dataset", "cifar100", "--strategies", "random", "--seeds", "2",
                       "--budget-trials", "10", "--json", "--quiet"))
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["methods"][0]["queries_mean"] == 10 and data["methods"][0]["cost_mean"] == 0.0


def test_parse_strategy_options() -> None:
    assert parse_strategy_options(["rea.population_size=20", "rea.sample_size=5"], ["rea"]) == {
        "rea": {"population_size": 20, "sample_size": 5}
    }
    with pytest.raises(ConfigError, match=r"NAME\.KEY=VALUE"):
        parse_strategy_options(["rea.population_size"], ["rea"])
