"""`nasforge search` and `nasforge show` end to end on the tabular benchmark (fast, no training)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nasforge.cli.main import main


def _search(tmp_path: Path, nb201_dir: Path, *extra: str) -> dict:  # type: ignore[type-arg]
    out = tmp_path / "out.json"
    code = main([
        "search", "--space", "nb201", "--strategy", "rea", "--evaluator", "nb201",
        "--data", str(nb201_dir), "--dataset", "cifar10", "--storage", str(tmp_path / "exp.db"),
        "--quiet", "--json", str(out), *extra,
    ])
    assert code == 0
    return json.loads(out.read_text())  # type: ignore[no-any-return]


def test_search_resume_and_extend(tmp_path: Path, nb201_dir: Path) -> None:
    first = _search(tmp_path, nb201_dir, "--budget-trials", "30", "--seed", "3")
    assert first["trials"] == 30 and first["status"] == {"ok": 30}
    assert first["best"]["metrics"]["accuracy"] >= max(t["metrics"]["accuracy"] for t in first["top"])
    # The same command again finds the budget spent and evaluates nothing new.
    again = _search(tmp_path, nb201_dir, "--budget-trials", "30", "--seed", "3")
    assert again["trials"] == 30 and again["best"] == first["best"]
    # A larger budget continues the same experiment.
    more = _search(tmp_path, nb201_dir, "--budget-trials", "45", "--seed", "3")
    assert more["trials"] == 45
    # --resume needs only the database.
    out = tmp_path / "resumed.json"
    assert main(["search", "--resume", str(tmp_path / "exp.db"), "--budget-trials", "50", "--quiet",
                 "--json", str(out)]) == 0
    assert json.loads(out.read_text())["trials"] == 50


def test_search_same_seed_same_result(tmp_path: Path, nb201_dir: Path) -> None:
    a = _search(tmp_path / "a", nb201_dir, "--budget-trials", "25", "--seed", "7")
    b = _search(tmp_path / "b", nb201_dir, "--budget-trials", "25", "--seed", "7")
    assert a["top"] == b["top"]


def test_different_settings_on_same_db_are_refused(tmp_path: Path, nb201_dir: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    _search(tmp_path, nb201_dir, "--budget-trials", "5", "--seed", "1")
    code = main(["search", "--space", "nb201", "--strategy", "random", "--evaluator", "nb201",
                 "--data", str(nb201_dir), "--storage", str(tmp_path / "exp.db"), "--budget-trials", "5",
                 "--seed", "1", "--quiet"])
    assert code == 2
    assert "different experiment" in capsys.readouterr().err


def test_show_lists_trials_as_json(tmp_path: Path, nb201_dir: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    _search(tmp_path, nb201_dir, "--budget-trials", "6")
    capsys.readouterr()
    assert main(["show", str(tmp_path / "exp.db"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["trials"]) == 6
    assert all(t["arch"].startswith("|") for t in data["trials"])  # NB201's own string form
    assert main(["show", str(tmp_path / "exp.db"), "--sort", "accuracy", "--limit", "2"]) == 0


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["search", "--space", "nope"], "unknown space 'nope'"),
        (["search", "--strategy", "nope"], "unknown strategy 'nope'"),
        (["search", "--constraint", "params << 3"], "cannot parse constraint"),
        (["show", "/nonexistent/exp.db"], "no experiment database"),
    ],
)
def test_bad_input_gives_one_clear_line(args: list[str], needle: str, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
