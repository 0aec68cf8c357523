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


def test_negative_seed_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"run.yaml: seed: seed must be an integer >= 0 \(got -1\)"):
        make_config({"seed": -1}, "run.yaml")


def test_ray_resources_are_routed_to_the_ray_executor() -> None:
    from nasforge.config import ray_options
    from nasforge.experiment import make_executor
    from nasforge.experiment.ray_executor import RayExecutor

    cfg = make_config({"executor": "ray", "workers": 2, "ray_num_cpus": 2, "ray_num_gpus": 0.5,
                       "ray_address": "auto"})
    assert ray_options(cfg) == {"address": "auto", "num_cpus": 2.0, "num_gpus": 0.5}
    ex = make_executor(cfg.executor, workers=cfg.workers, **ray_options(cfg))  # starts no Ray
    assert isinstance(ex, RayExecutor)
    assert (ex.num_cpus, ex.num_gpus, ex.address, ex.capacity) == (2.0, 0.5, "auto", 2)
    assert ray_options(make_config({"executor": "ray"})) == {}  # the executor's own defaults
    assert "ray_num_cpus" not in IDENTITY_FIELDS  # new reservations may resume an experiment


def test_ray_resources_need_ray_and_sane_values() -> None:
    with pytest.raises(ConfigError, match=r"s.yaml: ray_num_gpus is only used by executor 'ray', "
                       r"but the executor is 'process'"):
        make_config({"executor": "process", "ray_num_gpus": 1}, "s.yaml")
    with pytest.raises(ConfigError, match=r"ray_num_cpus: must be a number >= 0"):
        make_config({"executor": "ray", "ray_num_cpus": -1})
    with pytest.raises(ConfigError, match="a trial needs some resource"):
        make_config({"executor": "ray", "ray_num_cpus": 0})
    make_config({"executor": "ray", "ray_num_cpus": 0, "ray_num_gpus": 1})


def test_mixed_sources_are_named_per_key() -> None:
    with pytest.raises(ConfigError, match=r"--seed: seed: .*\n  run.yaml: workers: "):
        make_config({"seed": -2, "workers": 0}, "command line",
                    {"seed": "--seed", "workers": "run.yaml"})


def _build(options: dict, sources: dict) -> None:  # type: ignore[type-arg]
    from nasforge.config import build_experiment

    build_experiment(make_config(options), sources=sources)


def test_option_errors_name_the_file_key_and_allowed_names(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as info:
        _build({"evaluator": "function", "strategy_options": {"population_sizee": 4}},
                {"strategy_options": "search.yaml", "strategy_options.population_sizee": "search.yaml"})
    assert str(info.value) == (
        "search.yaml: strategy_options.population_sizee: bad options for strategy 'rea': "
        "unknown option(s) 'population_sizee'; allowed: 'population_size', 'sample_size'")
    with pytest.raises(ConfigError, match=r"^--space-option: space_options.foo: bad options for "
                       r"space 'nb201': unknown option\(s\) 'foo'; allowed: none$"):
        _build({"space_options": {"foo": 1}}, {"space_options.foo": "--space-option"})
    # A value the factory itself refuses gets the same prefix.
    with pytest.raises(ConfigError, match=r"^s.yaml: evaluator_options.epochs: epochs must be an "
                       r"integer; got 'four'$"):
        _build({"evaluator_options": {"epochs": "four", "train_subset": 10}},
               {"evaluator_options": "s.yaml"})
    with pytest.raises(ConfigError, match=r"^s.yaml: strategy_options.sample_size: sample_size "):
        _build({"strategy_options": {"sample_size": 99}}, {"strategy_options": "s.yaml"})
    # A value of the wrong type that trips the factory's code is a clear error, not a TypeError.
    with pytest.raises(ConfigError, match=r"^s.yaml: strategy_options.population_size: option "
                       r"'population_size' of strategy 'rea' must be an integer; got 'abc'$"):
        _build({"strategy_options": {"population_size": "abc"}}, {"strategy_options": "s.yaml"})
    # Settings the experiment passes itself cannot be options.
    with pytest.raises(ConfigError, match="option 'seed' of strategy 'rea' is set by the experiment"):
        _build({"strategy_options": {"seed": 3}}, {"strategy_options": "s.yaml"})


def test_python_option_errors_list_allowed_names() -> None:
    import nasforge

    space = nasforge.create_space("nb201")
    with pytest.raises(ConfigError, match=r"^bad options for strategy 'rea': unknown option\(s\) "
                       r"'populaton_size'; allowed: 'seed', 'objectives', 'population_size', "
                       r"'sample_size'$"):
        nasforge.create_strategy("rea", space, populaton_size=3)
    with pytest.raises(ConfigError, match="missing a required argument: 'fn'"):
        nasforge.create_evaluator("function")
