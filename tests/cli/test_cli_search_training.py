"""`nasforge search` with the training evaluator on real Fashion-MNIST, for the cell and macro spaces,
with random search and regularized evolution (tiny settings: two trials each)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nasforge.cli.main import main

SMALL = {
    "darts": "{C: 4, layers: 3}",
    "macro": "{width_mult: 0.25}",
    "nb201": "{C: 4, N: 1}",
}


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["random", "rea"])
@pytest.mark.parametrize("space", ["darts", "macro", "nb201"])
def test_search_trains_on_fashion_mnist(space: str, strategy: str, tmp_path: Path,
                                        fashion_mnist_dir: Path) -> None:
    out = tmp_path / "out.json"
    extra = ["--strategy-option", "population_size=1", "--strategy-option", "sample_size=1"] \
        if strategy == "rea" else []
    code = main([
        "search", "--space", space, "--strategy", strategy, "--evaluator", "train",
        "--dataset", "fashion_mnist", "--data", str(fashion_mnist_dir), "--budget-trials", "2",
        "--storage", str(tmp_path / "exp.db"), "--quiet", "--json", str(out),
        "--evaluator-option", "train_subset=256", "--evaluator-option", "val_subset=128",
        "--evaluator-option", "epochs=1", "--evaluator-option", f"build_kwargs={SMALL[space]}",
        "--evaluator-option", "num_threads=1", *extra,
    ])
    assert code == 0
    summary = json.loads(out.read_text())
    assert summary["trials"] == 2 and summary["status"] == {"ok": 2}
    best = summary["best"]["metrics"]
    # Ten classes: a trained network is scored as a percentage with a real parameter count.
    assert 0.0 <= best["accuracy"] <= 100.0 and best["params"] > 0
