"""Design checks on toy spaces with known flaws, on the registered spaces, and `nasforge spaces`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import nasforge
from nasforge.cli.main import main
from nasforge.errors import ConfigError, UnknownNameError
from nasforge.registry import SPACES
from nasforge.space import Architecture, Choice, SearchSpace
from nasforge.space.checks import (
    CHECKS,
    Finding,
    check_channels,
    check_space,
    width_profile,
    worst_level,
)
from nasforge.spaces.macro import layer_filters, layer_op, layer_skip


class Gate(nn.Module):
    """Multiplies by a fixed gate, so gate 0 makes the output independent of the input."""

    def __init__(self, gate: float) -> None:
        super().__init__()
        self.gate = gate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate


class ToySpace(SearchSpace):
    """op in {nor_conv_3x3, skip_connect} x gate in {0, 1}; narrows from 16 to 4 channels."""

    name = "toy"

    def _declare(self) -> Sequence[Choice]:
        return [Choice("op", ("nor_conv_3x3", "skip_connect")), Choice("gate", (0, 1))]

    def build(self, arch: Architecture, **kwargs: Any) -> nn.Module:
        return nn.Sequential(
            Gate(float(arch["gate"])),
            nn.Conv2d(3, 16, 3, padding=1),
            nn.Conv2d(16, 4, 3, stride=2, padding=1),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(4, kwargs.get("num_classes", 10)),
        )


class ToyWithHook(ToySpace):
    """Same space, but it knows its degenerate architectures (and says gate 1 is the bad one)."""

    def is_degenerate(self, arch: Architecture) -> bool:
        return arch["gate"] == 1


class OnePoint(SearchSpace):
    """A single architecture and no operations: every static check should complain."""

    name = "one"

    def _declare(self) -> Sequence[Choice]:
        return [Choice("colour", ("red",))]

    def build(self, arch: Architecture, **kwargs: Any) -> nn.Module:
        raise RuntimeError("this space cannot build anything")


class Kernels(SearchSpace):
    """Only numeric choices, residuals built in."""

    name = "kernels"
    builtin_residuals = True

    def _declare(self) -> Sequence[Choice]:
        return [Choice(f"block{i}/kernel", (3, 5, 7)) for i in range(8)]

    def build(self, arch: Architecture, **kwargs: Any) -> nn.Module:
        return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.AdaptiveAvgPool2d(1),
                             nn.Flatten(), nn.Linear(8, 10))


def by_check(findings: list[Finding]) -> dict[str, Finding]:
    return {f.check: f for f in findings}


def test_toy_space_flaws_are_found() -> None:
    found = by_check(check_space(ToySpace(), samples=40, seed=0))
    assert list(found) == list(CHECKS)
    assert found["expressiveness"].level == "warn"
    assert found["expressiveness"].data["ops"] == ["nor_conv_3x3", "skip_connect"]
    assert found["identity"].level == "ok"
    assert found["channels"].level == "warn" and "16x16:4" in found["channels"].message
    assert found["size"].level == "warn" and found["size"].data["size"] == "4"
    degenerate = found["degenerate"]
    assert degenerate.data["method"] == "two-input forward"
    rng = np.random.default_rng(0)
    expected = sum(ToySpace().sample(rng)["gate"] == 0 for _ in range(40))
    assert degenerate.data["degenerate"] == expected and 0 < expected < 40
    assert degenerate.level == ("warn" if expected < 20 else "fail")
    assert '"gate":0' in degenerate.data["example"]


def test_space_hook_replaces_the_generic_degeneracy_test() -> None:
    found = by_check(check_space(ToyWithHook(), samples=40, seed=0, checks=["degenerate"]))
    assert found["degenerate"].data["method"] == "is_degenerate"
    assert '"gate":1' in found["degenerate"].data["example"]


def test_single_point_space_fails_and_crashing_builds_are_findings() -> None:
    found = by_check(check_space(OnePoint(), samples=3))
    assert found["expressiveness"].level == "fail"
    assert found["identity"].level == "warn"
    assert found["size"].level == "fail"
    for name in ("channels", "degenerate"):
        assert found[name].level == "fail"
        assert "cannot build anything" in found[name].message
    assert worst_level(list(found.values())) == "fail"


def test_numeric_spaces_and_builtin_residuals_are_fine() -> None:
    found = by_check(check_space(Kernels(), samples=5))
    assert found["expressiveness"].level == "ok"
    assert found["expressiveness"].data["numeric"] == {"kernel": [3, 5, 7]}
    assert found["identity"].level == "ok" and "built into" in found["identity"].message
    assert found["size"].data["size"] == str(3**8) and found["size"].level == "ok"
    assert worst_level(list(found.values())) == "ok"


def test_width_profile_records_every_resolution() -> None:
    model = ToySpace().build(ToySpace().sample(0))
    profile = width_profile(model, torch.randn(1, 3, 8, 8))
    assert profile == {(8, 8): 16, (4, 4): 4, (1, 1): 4}


def test_bad_arguments() -> None:
    with pytest.raises(UnknownNameError, match="design check 'speed'"):
        check_space(ToySpace(), checks=["speed"])
    with pytest.raises(ConfigError, match="samples"):
        check_space(ToySpace(), samples=0)
    with pytest.raises(ConfigError, match="finding level"):
        Finding("size", "bad", "message")


def _macro(layers: list[tuple[str, int]], skips: set[tuple[int, int]]) -> Architecture:
    values: dict[str, Any] = {"num_layers": len(layers)}
    for j, (op, filters) in enumerate(layers):
        values[layer_op(j)] = op
        values[layer_filters(j)] = filters
        values.update({layer_skip(j, i): (i, j) in skips for i in range(j - 1)})
    return nasforge.create_space("macro").make(values)


@pytest.mark.parametrize("skips", [set(), {(0, 4), (1, 5), (2, 7), (0, 8)}])
def test_a_network_that_narrows_after_a_reduction_warns(skips: set[tuple[int, int]]) -> None:
    """64 filters, then 16 after the reduction: side branches (the 64-wide inputs of skip
    projections, a strided pool's 64-wide output before its 1x1 projection) must not hide it."""
    space = nasforge.create_space("macro")
    layers = [("nor_conv_3x3", 64)] * 3 + [("max_pool_3x3", 16)] + [("nor_conv_3x3", 16)] * 5
    arch = _macro(layers, skips)
    finding = check_channels(space, [arch], {"width_mult": 0.25}, seed=0)
    assert finding.level == "warn", finding
    assert finding.data["measured"] == ["main path"]
    assert "32x32:16, 16x16:4, 8x8:4" in finding.message
    widening = _macro([("nor_conv_3x3", 16)] * 3 + [("max_pool_3x3", 32)] * 3 + [("nor_conv_3x3", 64)] * 3,
                      skips)
    assert check_channels(space, [widening], {"width_mult": 0.25}, seed=0).level == "ok"


def test_width_profile_of_given_modules_counts_only_their_outputs() -> None:
    model = ToySpace().build(ToySpace().sample(0))
    # Only the stride-2 conv: its 16-channel input at 8x8 is not counted.
    strided = list(model.children())[2]
    assert width_profile(model, torch.randn(1, 3, 8, 8), [strided]) == {(4, 4): 4}


def test_registered_spaces() -> None:
    results = {name: by_check(check_space(nasforge.create_space(name), samples=4))
               for name in ("darts", "macro", "elastic")}
    # Default macro layers pick widths freely, so some sample networks narrow after a reduction.
    assert results["macro"]["channels"].level == "warn"
    results["macro monotone"] = by_check(check_space(
        nasforge.create_space("macro", monotone_filters=True), samples=4))
    for name, found in results.items():
        for check in ("expressiveness", "identity", "channels", "size"):
            if (name, check) != ("macro", "channels"):
                assert found[check].level == "ok", (name, found[check])
    assert results["darts"]["degenerate"].level == "ok"
    assert results["elastic"]["identity"].message.startswith("residual")
    # The macro space has 'none' layers but repairs the networks they would cut off.
    macro = by_check(check_space(nasforge.create_space("macro"), samples=40,
                                 checks=["degenerate"]))["degenerate"]
    assert macro.level == "ok", macro


# ---------------------------------------------------------------------------- CLI
def test_cli_lists_spaces_with_exact_sizes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["spaces", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["spaces"]}
    assert {"darts", "macro", "elastic", "nb201"} <= set(rows)
    for name in ("darts", "macro", "elastic"):
        assert int(rows[name]["size"]) == nasforge.create_space(name).size()
    assert main(["spaces"]) == 0
    assert "darts" in capsys.readouterr().err


def test_cli_check(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["spaces", "check", "darts", "--samples", "3", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["space"] == "darts" and len(report["findings"]) == len(CHECKS)
    assert main(["spaces", "check", "darts", "--samples", "2",
                 "--space-option", "allow_none=true"]) == 0
    assert "expressiveness" in capsys.readouterr().err
    monkeypatch.setitem(SPACES._factories, "one", OnePoint)
    assert main(["spaces", "check", "one", "--samples", "2"]) == 1  # a failing check
    assert main(["spaces", "check"]) == 2
    assert "needs a space name" in capsys.readouterr().err


def test_cli_draw_refuses_parts_the_space_does_not_have(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "m.svg")
    assert main(["spaces", "draw", "macro", "sample:0", "-o", out, "--part", "reduce"]) == 2
    assert "space 'macro' draws its whole network and has no parts; drop --part 'reduce'" in (
        capsys.readouterr().err)
    assert main(["spaces", "draw", "darts", "sample:0", "-o", out, "--part", "cell"]) == 2
    assert "unknown part of space 'darts' 'cell'; allowed: 'normal', 'reduce'" in capsys.readouterr().err
    assert main(["spaces", "draw", "darts", "sample:0", "-o", out, "--part", "reduce", "--json"]) == 0
