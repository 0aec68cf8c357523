"""Option values are checked against their declared types: YAML 1.2 numbers (``1e-3`` is a float),
numbers written as text converted losslessly, values of the wrong kind refused with the name."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nasforge.config import load_yaml_config, parse_option
from nasforge.data.dataset import from_tensors
from nasforge.errors import ConfigError
from nasforge.registry import EVALUATORS, SPACES, STRATEGIES, OptionSource
from nasforge.supernet.batches import EpochBatches
from nasforge.train.config import TrainConfig
from nasforge.utils.coerce import coerce_value, simple_types
from nasforge.utils.yamlio import load_yaml


@pytest.mark.parametrize(("text", "value"), [
    ("1e-3", 0.001), ("5E4", 50000.0), ("-2e+5", -200000.0), ("1.5e-3", 0.0015), ("3", 3),
    ("0.1", 0.1), ("true", True), ("[16, 32]", [16, 32]), ("name", "name"), ("'1e-3'", "1e-3"),
    ("1e", "1e"), ("e3", "e3"),
])
def test_yaml_numbers_follow_yaml_1_2(text: str, value: object) -> None:
    loaded = load_yaml(f"x: {text}")["x"]
    assert loaded == value and type(loaded) is type(value)
    assert parse_option(f"x={text}") == ("x", value)


def test_config_file_reads_exponent_floats(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text("evaluator_options:\n  lr: 1e-3\n  weight_decay: 5E-4\nbudget_seconds: 1e3\n")
    data = load_yaml_config(f)
    assert data["evaluator_options"] == {"lr": 0.001, "weight_decay": 0.0005}
    assert data["budget_seconds"] == 1000.0
    f.write_bytes(b"\xff\xfe not text")
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        load_yaml_config(f)


@pytest.mark.parametrize(("annotation", "value", "expected"), [
    ("float", "1e-3", 0.001), ("float", 2, 2.0), ("int", "3", 3), ("int", 4.0, 4),
    ("int | None", None, None), ("float | None", "0.5", 0.5), ("int | str", "auto", "auto"),
    ("int | str", "7", "7"), ("str", 5, 5), ("list[int]", "x", "x"), (bool, True, True),
])
def test_lossless_conversions(annotation: object, value: object, expected: object) -> None:
    out = coerce_value("opt", value, simple_types(annotation))
    assert out == expected and type(out) is type(expected)


@pytest.mark.parametrize(("annotation", "value", "needle"), [
    ("float", "abc", "opt must be a number; got 'abc'"),
    ("int", 2.5, "opt must be an integer; got 2.5"),
    ("int", True, "opt must be an integer; got True"),
    ("float | None", [1], r"opt must be a number or null; got \[1\]"),
    ("bool", "yes", "opt must be true or false; got 'yes'"),
])
def test_wrong_kinds_are_refused_with_the_name(annotation: str, value: object, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        coerce_value("opt", value, simple_types(annotation))


def test_registry_options_are_coerced_and_named() -> None:
    space = SPACES.create("nb201")
    rea = STRATEGIES.build("rea", (space,), {"seed": 0}, {"population_size": "12"})
    assert rea.population_size == 12
    where = OptionSource("strategy_options", "--strategy-option")
    with pytest.raises(ConfigError, match=r"^--strategy-option: strategy_options.sample_size: "
                       r"option 'sample_size' of strategy 'rea' must be an integer; got 'ten'$"):
        STRATEGIES.build("rea", (space,), {"seed": 0}, {"sample_size": "ten"}, source=where)


def test_training_options_read_as_numbers() -> None:
    assert TrainConfig(lr="1e-3", epochs="3", grad_clip="5").lr == 0.001  # type: ignore[arg-type]
    evaluator = EVALUATORS.build("train", options={"lr": "1e-3", "epochs": 2.0})
    assert evaluator.train_config.lr == 0.001 and evaluator.train_config.epochs == 2
    with pytest.raises(ConfigError, match="lr must be a number; got 'fast'"):
        EVALUATORS.build("train", options={"lr": "fast"})


def test_steps_per_epoch_beyond_the_data_is_refused() -> None:
    data = from_tensors(torch.zeros(40, 1, 4, 4), torch.arange(40) % 2)
    assert len(EpochBatches(data, 16, seed=0, name="train", max_batches=2, augment="none")) == 2
    with pytest.raises(ConfigError, match=r"steps_per_epoch=3 but the train split has only 2 full "
                       r"batch\(es\) of 16 \(40 samples"):
        EpochBatches(data, 16, seed=0, name="train", max_batches=3, augment="none")
