"""Task presets: in Python, in the settings (YAML keys) and on the command line."""

from __future__ import annotations

import json

import pytest

import nasforge
from nasforge.cli.main import main
from nasforge.config import identity, make_config
from nasforge.errors import ConfigError
from nasforge.spaces.macro import MacroSpace
from nasforge.spaces.presets import PRESETS, get_preset


def test_image_classification_preset_is_the_guides_macro_space() -> None:
    space = nasforge.create_space("macro", preset="image_classification")
    assert isinstance(space, MacroSpace)
    assert space.max_layers == 20 and space.filters == (16, 32, 64, 128, 256, 512) and space.skips
    assert set(space.ops) == {"nor_conv_3x3", "nor_conv_5x5", "dw_conv_3x3", "nor_conv_1x1",
                              "max_pool_3x3", "avg_pool_3x3", "global_pool", "skip_connect"}
    assert space.activations == ("relu", "relu6", "swish")
    arch = space.sample(0)
    assert any(k.endswith("/act") for k in arch)
    # Options given beside the preset win.
    assert nasforge.create_space("macro", preset="image_classification", max_layers=10).max_layers == 10
    with pytest.raises(ConfigError, match="configures space 'macro', not 'nb201'"):
        nasforge.create_space("nb201", preset="image_classification")
    with pytest.raises(ConfigError, match="unknown preset 'segmentation'"):
        get_preset("segmentation")


def test_settings_resolve_the_preset_into_the_stored_space_options() -> None:
    cfg = make_config({"preset": "image_classification", "space_options": {"max_layers": 12}})
    assert cfg.space == "macro" and cfg.space_options["max_layers"] == 12
    assert cfg.space_options["activations"] == ["relu", "relu6", "swish"]
    stored = identity(cfg)
    assert stored["preset"] == "image_classification"
    again = make_config(stored)  # a resume rebuilds the same settings
    assert again.space_options == cfg.space_options
    assert "preset" not in identity(make_config({}))  # older experiments still resume
    with pytest.raises(ConfigError, match="preset 'object_detection' configures space 'detection'"):
        make_config({"space": "macro", "preset": "object_detection"})


def test_cli_lists_presets_and_takes_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["spaces", "--json"]) == 0
    listed = {p["name"]: p for p in json.loads(capsys.readouterr().out)["presets"]}
    assert set(listed) == set(PRESETS)
    assert listed["object_detection"]["space"] == "detection"
    assert int(listed["image_classification"]["size"]) == nasforge.create_space(
        preset="image_classification").size()
    assert main(["spaces", "check", "--preset", "image_classification", "--samples", "2",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["space"] == "macro"
    from nasforge.cli.main import build_parser
    from nasforge.cli.search import config_from_args

    args = build_parser().parse_args(["search", "--preset", "object_detection", "--evaluator", "detection",
                                      "--objective", "map", "--space-option", "anchor_scales=[16, 32, 64]"])
    cfg = config_from_args(args)
    assert cfg.space == "detection" and cfg.preset == "object_detection"
    assert cfg.space_options["anchor_scales"] == [16, 32, 64] and cfg.space_options["max_layers"] == 30
