"""SearchConfig validation: errors name the source, the key, the bad value and what is allowed."""

from __future__ import annotations

import pytest

from nasforge.config import (
    IDENTITY_FIELDS,
    SearchConfig,
    load_yaml_config,
    make_config,
    parse_option,
    parse_options,
)
from nasforge.errors import ConfigError


def test_defaults_are_valid() -> None:
    cfg = make_config({})
    assert cfg.space == "nb201" and cfg.strategy == "rea" and cfg.objectives == ["accuracy"]


def test_unknown_space_names_value_and_allowed() -> None:
    with pytest.raises(ConfigError) as info:
        make_config({"space": "nope"}, "my.yaml")
    text = str(info.value)
    assert "my.yaml" in text and "space" in text and "'nope'" in text and "nb201" in text


def test_unknown_key_lists_allowed_keys() -> None:
    with pytest.raises(ConfigError) as info:
        make_config({"strategyy": "rea"}, "cfg.yaml")
    assert "strategyy" in str(info.value) and "strategy_options" in str(info.value)


def test_bad_constraint_and_objective_and_executor() -> None:
    with pytest.raises(ConfigError, match="params <<= 3"):
        make_config({"constraints": ["params <<= 3"]})
    with pytest.raises(ConfigError, match="sideways"):
        make_config({"objectives": ["sideways:params"]})
    with pytest.raises(ConfigError, match="'gpu-farm'"):
        make_config({"executor": "gpu-farm"})
    with pytest.raises(ConfigError, match="workers"):
        make_config({"workers": 0})


def test_parse_option_yaml_values() -> None:
    assert parse_option("epochs=3") == ("epochs", 3)
    assert parse_option("lr=0.05") == ("lr", 0.05)
    assert parse_option("widths=[16, 32]") == ("widths", [16, 32])
    assert parse_option("flag=true") == ("flag", True)
    assert parse_option("name=cifar10") == ("name", "cifar10")
    assert parse_options(["a=1", "b=x"]) == {"a": 1, "b": "x"}
    with pytest.raises(ConfigError, match="key=value"):
        parse_option("epochs")
    with pytest.raises(ConfigError, match="not a valid name"):
        parse_option("9x=1")


def test_yaml_file_errors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="does not exist"):
        load_yaml_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("space: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml_config(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_yaml_config(listy)
    good = tmp_path / "good.yaml"
    good.write_text("space: nb201\nbudget_trials: 3\n")
    assert make_config(load_yaml_config(good)).budget_trials == 3


def test_identity_fields_exist() -> None:
    assert set(SearchConfig.model_fields) >= IDENTITY_FIELDS
    assert "budget_trials" not in IDENTITY_FIELDS and "storage" not in IDENTITY_FIELDS
