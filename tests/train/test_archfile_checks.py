"""Architecture files and hand-edited inputs: what is not what it claims is refused, naming why."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import nasforge
from nasforge.benchmarks.nb201 import NB201Table
from nasforge.errors import ConfigError, InvalidArchitectureError
from nasforge.space.architecture import Architecture
from nasforge.train.archfile import ARCH_FORMAT, ArchFile, load_arch_file


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, dict]:  # type: ignore[type-arg]
    space = nasforge.create_space("nb201")
    arch = space.sample(np.random.default_rng(0))
    path = ArchFile(arch, num_classes=10, in_channels=1).save(tmp_path / "a.json")
    return path, json.loads(path.read_text())


def _edit(path: Path, data: dict, **changes: object) -> Path:  # type: ignore[type-arg]
    path.write_text(json.dumps({**data, **changes}))
    return path


def test_saved_file_reads_back(saved: tuple[Path, dict]) -> None:  # type: ignore[type-arg]
    path, data = saved
    assert data["format"] == ARCH_FORMAT
    assert load_arch_file(path).num_classes == 10


@pytest.mark.parametrize(("changes", "needle"), [
    ({"format": "nasforge-architecture/99"}, r"format 'nasforge-architecture/99' was written by a "
     r"newer nasforge \(this version reads up to 'nasforge-architecture/1'\)"),
    ({"format": "onnx/1"}, r"format 'onnx/1' is not an architecture file format; allowed"),
    ({"format": 3}, "format 3 is not an architecture file format"),
    ({"build": {"num_classes": -1}}, r"build.num_classes must be an integer >= 1, got -1"),
    ({"build": {"in_channels": "three"}}, r"build.in_channels must be an integer >= 1, got 'three'"),
    ({"build": {"kwargs": [1]}}, r"build.kwargs must be an object"),
    ({"text": "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"},
     r"'text' .* does not match its 'choices'"),
])
def test_bad_files_are_refused(saved: tuple[Path, dict], changes: dict, needle: str) -> None:  # type: ignore[type-arg]
    path, data = saved
    with pytest.raises(ConfigError, match=needle):
        load_arch_file(_edit(path, data, **changes))


def test_text_in_another_spelling_is_accepted(saved: tuple[Path, dict]) -> None:  # type: ignore[type-arg]
    path, data = saved
    del data["text"]
    assert load_arch_file(_edit(path, data)).arch == load_arch_file(saved[0]).arch


@pytest.mark.parametrize("space_name", ["macro", "nb201", "darts", "elastic"])
def test_unknown_decision_names_list_the_allowed_ones(space_name: str) -> None:
    space = nasforge.create_space(space_name)
    choices = dict(space.sample(np.random.default_rng(0)))
    first = next(iter(choices))
    choices["typo_" + first] = choices.pop(first)
    with pytest.raises(InvalidArchitectureError, match=rf"has no decision\(s\) 'typo_{first}'; "
                       r"allowed: '") as err:
        space.validate(Architecture(space_name, choices))
    if space_name == "macro":
        assert "'layer<i>/op'" in str(err.value) and "'num_layers'" in str(err.value)


def test_nb201_csv_values_out_of_range_are_refused(tmp_path: Path) -> None:
    csv = tmp_path / "nb201.csv"
    csv.write_text("index,arch,cifar10_test_acc_200,params_m\n0,|a~0|,93.5,1.2\n1,|b~0|,1e9,1.0\n")
    with pytest.raises(ConfigError, match=r"line 3: column 'cifar10_test_acc_200' holds 1000000000.0; "
                       r"it must be an accuracy in \[0, 100\]"):
        NB201Table.load(csv)
    csv.write_text("index,arch,cifar10_test_acc_200,params_m\n0,|a~0|,93.5,-1\n1,|b~0|,,1.0\n")
    with pytest.raises(ConfigError, match=r"column 'params_m' holds -1\.0; it must be a number >= 0"):
        NB201Table.load(csv)
    csv.write_text("index,arch,cifar10_test_acc_200,params_m\n0,|a~0|,93.5,1\n1,|b~0|,,1.0\n")
    assert len(NB201Table.load(csv)._archs) == 2  # a missing value (NaN) is allowed


def test_build_options_are_read_as_their_declared_types(saved: tuple[Path, dict]) -> None:  # type: ignore[type-arg]
    af = load_arch_file(saved[0])
    model = af.build(C="8", N=1)  # as given by --build-option C=8 quoted, or a hand-edited file
    assert sum(p.numel() for p in model.parameters()) == sum(
        p.numel() for p in af.build(C=8, N=1).parameters())
    with pytest.raises(ConfigError, match="build option 'C' must be an integer; got 'eight'"):
        af.build(C="eight")
