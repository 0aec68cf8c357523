"""The detection evaluator: options, wrong spaces, a search from the command line with resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import nasforge
from nasforge.cli.main import main
from nasforge.errors import ConfigError, NasforgeError


@pytest.mark.parametrize(("options", "match"), [
    ({"epochs": 0}, "epochs must be a positive integer"),
    ({"batch_size": 2.5}, "batch_size"),
    ({"lr": 0}, "lr and width_mult must be positive"),
])
def test_bad_options(options: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        nasforge.create_evaluator("detection", **options)


def test_refuses_a_space_without_anchors() -> None:
    ev = nasforge.create_evaluator("detection").bind(nasforge.create_space("macro"))
    with pytest.raises(ConfigError, match="needs space 'detection'"):
        ev.check_ready()
    assert ev.produced_metrics() >= {"map", "map_50"} and ev.default_fidelity() == 3.0


@pytest.mark.slow
def test_cli_search_over_the_detection_space_resumes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        nasforge.create_evaluator("detection", train_images=1, val_images=1).data()
    except NasforgeError as exc:
        pytest.skip(f"Fashion-MNIST files not found: {exc}")
    db = tmp_path / "det.db"
    args = ["search", "--preset", "object_detection", "--space-option", "anchor_scales=[16, 32, 64]",
            "--space-option", "filters=[16, 32]", "--space-option", "min_layers=5",
            "--space-option", "max_layers=6", "--evaluator", "detection",
            "--evaluator-option", "train_images=16", "--evaluator-option", "val_images=8",
            "--evaluator-option", "epochs=1", "--evaluator-option", "canvas=64", "--objective", "map",
            "--strategy", "rea",
            "--storage", str(db), "--quiet"]
    assert main([*args, "--budget-trials", "2"]) == 0
    assert main(["show", str(db), "--json"]) == 0
    first = json.loads(capsys.readouterr().out)["trials"]
    assert main([*args, "--budget-trials", "3"]) == 0  # resumes: one more trial
    assert main(["show", str(db), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    trials = shown["trials"]
    assert len(first) == 2 and len(trials) == 3
    assert [t["arch"] for t in trials[:2]] == [t["arch"] for t in first]
    assert all(0.0 <= t["metrics"]["map"] <= 1.0 and "map_50" in t["metrics"] for t in trials)
    assert shown["config"]["space"] == "detection" and shown["config"]["preset"] == "object_detection"
