"""The README's main job (configs/demo.yaml) is a valid multi-fidelity search with a final stage."""

from __future__ import annotations

from pathlib import Path

from nasforge.config import build_experiment, final_stage, load_yaml_config, make_config

ROOT = Path(__file__).resolve().parents[2]


def test_demo_config_builds_the_whole_pipeline(tmp_path: Path, fashion_mnist_dir: Path) -> None:
    data = load_yaml_config(ROOT / "configs" / "demo.yaml")
    cfg = make_config({**data, "storage": str(tmp_path / "demo.db")}, "demo.yaml")
    exp = build_experiment(cfg)
    try:
        assert exp.scheduler is not None and exp.scheduler.name == "asha"
        assert exp.scheduler.rungs == (2.0, 4.0, 8.0)
        assert exp.pruner is not None and exp.pruner.name == "median"
        assert exp.budget.max_fidelity == cfg.budget_fidelity
        assert cfg.final and final_stage(cfg).top_k == 4
        baseline = exp.space.reference_architecture()
        assert exp.space.to_string(baseline).startswith("|nor_conv_3x3~0|+|none~0|")
    finally:
        exp.storage.close()
