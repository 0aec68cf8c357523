"""Property-based tests over user input: settings files, ``K=V`` options, architecture strings and
JSON of every space, and storage paths. Every input must either work as written or raise a
NasforgeError (a ConfigError where the input is a value) that names the bad value; never a raw
traceback, never a silent change."""

from __future__ import annotations

import json
import string
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import nasforge
from nasforge.config import SearchConfig, load_yaml_config, make_config, parse_option
from nasforge.errors import ConfigError, NasforgeError
from nasforge.experiment.storage import SQLiteStorage
from nasforge.registry import SPACES, STRATEGIES, OptionSource
from nasforge.space.architecture import Architecture
from nasforge.train.config import TrainConfig
from nasforge.utils.yamlio import dump_yaml

FAST = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["1e-3", "5E4", "0.5", "3", "abc", "", "true", "null", "-1"]),
)
values = st.one_of(scalars, st.lists(scalars, max_size=3),
                   st.dictionaries(st.text(string.ascii_lowercase, min_size=1, max_size=6),
                                   scalars, max_size=3))


def _named(exc: Exception, *names: object) -> bool:
    text = str(exc)
    return any(str(n) in text or repr(n) in text for n in names)


# ---------------------------------------------------------------------------------- settings files
@FAST
@given(st.dictionaries(st.sampled_from(sorted(SearchConfig.model_fields)), values, max_size=4))
def test_settings_either_validate_or_name_the_key(data: dict[str, Any]) -> None:
    try:
        cfg = make_config(data, "s.yaml")
    except ConfigError as exc:
        assert str(exc).startswith("invalid configuration:") and "s.yaml" in str(exc)
        return
    for key, value in data.items():  # what was accepted is kept, as given or as the same number
        got = getattr(cfg, key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
            assert got == value


@FAST
@given(st.dictionaries(st.sampled_from(["seed", "budget_trials", "budget_seconds", "strategy",
                                        "evaluator_options", "objectives", "durability"]),
                       values, max_size=3))
def test_settings_files_round_trip_through_yaml(data: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.yaml"
        path.write_text(dump_yaml(data))
        loaded = load_yaml_config(path)
        assert json.dumps(loaded, sort_keys=True) == json.dumps(data, sort_keys=True)
        try:
            make_config(loaded, str(path))
        except ConfigError as exc:
            assert str(path) in str(exc)


# ---------------------------------------------------------------------------------- K=V options
@FAST
@given(st.text(max_size=30))
def test_any_option_text_parses_or_is_refused(text: str) -> None:
    try:
        key, _ = parse_option(text)
    except ConfigError as exc:
        assert _named(exc, text, text.split("=", 1)[0].strip())
        return
    assert key.isidentifier() and text.split("=", 1)[0].strip() == key


@FAST
@given(st.sampled_from(["population_size", "sample_size"]), values)
def test_strategy_options_build_or_name_the_option(option: str, value: Any) -> None:
    space = SPACES.create("nb201")
    where = OptionSource("strategy_options", "--strategy-option")
    try:
        strategy = STRATEGIES.build("rea", (space,), {"seed": 0}, {option: value}, source=where)
    except ConfigError as exc:
        assert f"strategy_options.{option}" in str(exc)
        return
    got = getattr(strategy, option)
    assert isinstance(got, int) and float(got) == float(str(value).strip())


@FAST
@given(st.sampled_from(["lr", "epochs", "momentum", "grad_clip", "weight_decay", "amp"]), values)
def test_training_options_are_kept_or_refused(option: str, value: Any) -> None:
    try:
        cfg = TrainConfig(**{option: value})
    except ConfigError as exc:
        assert option in str(exc)
        return
    got = getattr(cfg, option)
    if value is None or isinstance(value, bool):
        assert got is value
    else:  # a number, or text that reads as exactly that number
        assert isinstance(got, (int, float)) and got == float(str(value).strip())


# ---------------------------------------------------------------------------------- architectures
SPACE_NAMES = ["nb201", "darts", "macro", "elastic"]


@pytest.mark.parametrize("space_name", SPACE_NAMES)
def test_architecture_strings_parse_exactly_or_are_refused(space_name: str) -> None:
    space = nasforge.create_space(space_name)
    base = space.to_string(space.sample(np.random.default_rng(0)))

    @FAST
    @given(st.integers(0, len(base)), st.integers(0, 6), st.text(max_size=6))
    def check(at: int, cut: int, insert: str) -> None:
        text = base[:at] + insert + base[at + cut:]
        try:
            arch = space.from_string(text)
        except ConfigError:
            return
        space.validate(arch)
        assert space.from_string(space.to_string(arch)) == arch  # what was read is what it says

    check()


@pytest.mark.parametrize("space_name", SPACE_NAMES)
def test_architecture_json_validates_or_names_the_decision(space_name: str) -> None:
    space = nasforge.create_space(space_name)
    arch = space.sample(np.random.default_rng(1))
    names = list(arch)

    @FAST
    @given(st.sampled_from(names), values, st.booleans())
    def check(name: str, value: Any, rename: bool) -> None:
        choices = dict(arch)
        if rename:
            choices[name + "x"] = choices.pop(name)
        else:
            choices[name] = value
        text = json.dumps({"space": space_name, "choices": choices})
        try:
            parsed = Architecture.from_json(text)
            space.validate(parsed)
        except ConfigError as exc:
            assert _named(exc, name, name + "x", value) or "decision" in str(exc)
            return
        assert dict(parsed) == choices  # accepted only as written

    check()


# ---------------------------------------------------------------------------------- storage paths
@settings(max_examples=30, deadline=None)
@given(st.text(st.characters(codec="utf-8", exclude_characters="/"), min_size=1, max_size=20))
def test_storage_paths_are_plain_file_names(name: str) -> None:
    assume(name not in (".", ".."))
    with tempfile.TemporaryDirectory() as tmp:
        try:
            storage = SQLiteStorage(Path(tmp) / name)
        except NasforgeError as exc:  # a NUL, an unusable name: said, naming it
            assert isinstance(exc, ConfigError) or "cannot" in str(exc)
            return
        storage.set_meta("k", 1)
        storage.close()
        made = {p.name for p in Path(tmp).iterdir()} - {name + "-wal", name + "-shm"}
        assert made == {name}
