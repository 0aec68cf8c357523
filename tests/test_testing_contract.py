"""nasforge.testing: check_strategy and check_space pass on well-behaved strategies and spaces,
and each rule FAILS, with a message naming it, on one deliberately broken strategy or space."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from functools import cache
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import nasforge
from nasforge.registry import SPACES, STRATEGIES, Registry
from nasforge.space import Architecture, Choice, SearchSpace
from nasforge.strategies import Strategy, propose_unique
from nasforge.strategies.rea import RegularizedEvolution
from nasforge.testing import ContractError, check_space, check_strategy
from nasforge.trial import Trial


@cache
def nb201() -> SearchSpace:
    return nasforge.create_space("nb201")


@pytest.fixture
def temporary_registration(monkeypatch: pytest.MonkeyPatch
                           ) -> Callable[[Registry[Any], str, type], None]:
    """Register a class for one test only (collection-time lists of names stay untouched)."""

    def register(registry: Registry[Any], name: str, cls: type) -> None:
        monkeypatch.setitem(registry._factories, name, cls)
        monkeypatch.setitem(registry._docs, name, "")

    return register


def expect(rule: str, check: Callable[[], None]) -> ContractError:
    with pytest.raises(ContractError, match=f"rule '{rule}'") as info:
        check()
    assert isinstance(info.value, AssertionError)  # pytest reports it as a failed assertion
    assert info.value.rule == rule
    return info.value


# ====================================================================================== strategies
class HillClimb(Strategy):
    """The user guide's example (fixed): mutate the best architecture seen so far."""

    name = "test_hill_climb"

    def __init__(self, space: SearchSpace, seed: Any = None, objectives: Any = None,
                 init: int = 3) -> None:
        super().__init__(space, seed, objectives)
        self.init = init
        self.told = 0
        self.best: list[Any] | None = None

    def _ask(self) -> Architecture:
        return propose_unique(self._draw, set(self.pending))

    def _draw(self) -> Architecture:
        if self.told < self.init or self.best is None:
            return self.space.sample(self.rng)
        return self.space.mutate(Architecture.from_dict(self.best[1]), self.rng)

    def _tell(self, trial: Trial) -> None:
        self.told += 1
        score = self.score(trial)
        if score is not None and (self.best is None or score > self.best[0]):
            self.best = [score, trial.arch.to_dict()]

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "told": self.told, "best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.told = state["told"]
        self.best = state["best"]


class PendingRepeater(HillClimb):
    """Broken: the user guide's original example, mutating the best without avoiding pending
    architectures, so a batch (several mutations of one parent) repeats itself."""

    name = "pending_repeater"

    def _ask(self) -> Architecture:
        return self._draw()


class ForgetfulHillClimb(HillClimb):
    """Broken: leaves ``told`` out of its state, so a resumed copy restarts its random phase."""

    name = "forgetful_hill_climb"

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        del state["told"]
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        Strategy.load_state_dict(self, state)
        self.best = state["best"]


class NumpyState(HillClimb):
    """Broken: a numpy integer in its state (not JSON)."""

    name = "numpy_state"

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "told": np.int64(self.told)}


class IntKeys(HillClimb):
    """Broken: a dict with int keys in its state (JSON turns them into strings)."""

    name = "int_keys"

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "by_number": {1: "a"}}


class Unseeded(HillClimb):
    """Broken: draws from a fresh, unseeded generator instead of ``self.rng``."""

    name = "unseeded"

    def _draw(self) -> Architecture:
        return self.space.sample(np.random.default_rng())


class FailedTellCrash(HillClimb):
    """Broken: reads the accuracy of every trial, which FAILED trials do not have."""

    name = "failed_tell_crash"

    def _tell(self, trial: Trial) -> None:
        float(trial.metrics["accuracy"])
        super()._tell(trial)


class TellWithoutSuper(HillClimb):
    """Broken: overrides ``tell`` itself, so told architectures stay pending."""

    name = "tell_without_super"

    def tell(self, trial: Trial) -> None:
        self._tell(trial)


class AmendIgnored(HillClimb):
    """Broken: ignores amend_last_ask, so a replayed resume keeps the wrong pending ask."""

    name = "amend_ignored"

    def amend_last_ask(self, arch: Architecture) -> None:
        pass


class Unnamed(HillClimb):
    """Broken: no ``name`` of its own."""

    name = Strategy.name


class SharedREAName(RegularizedEvolution):
    """Broken: a variant of REA that keeps REA's registered name."""


def factory(cls: type[Strategy], **options: Any) -> Callable[[SearchSpace, int], Strategy]:
    def make(space: SearchSpace, seed: int) -> Strategy:
        return cls(space, seed=seed, **options)

    return make


def test_contract_error_is_an_assertion_error() -> None:
    assert issubclass(ContractError, AssertionError)


def test_a_well_behaved_strategy_passes() -> None:
    check_strategy(factory(HillClimb), nb201())


def test_pending_duplicates_fail() -> None:
    err = expect("no pending duplicates", lambda: check_strategy(factory(PendingRepeater), nb201()))
    assert "propose_unique" in str(err)  # the message says how to fix it


def test_a_field_left_out_of_the_state_fails_the_round_trip() -> None:
    err = expect("state round trip predicts the same future",
                 lambda: check_strategy(factory(ForgetfulHillClimb), nb201()))
    assert "told (original" in str(err)  # the attribute that differed after loading is named


def test_registered_name_differing_from_the_class_name_fails(
        temporary_registration: Callable[[Registry[Any], str, type], None]) -> None:
    temporary_registration(STRATEGIES, "misnamed_hill_climb", HillClimb)
    err = expect("consistent names", lambda: check_strategy(factory(HillClimb), nb201()))
    assert "misnamed_hill_climb" in str(err) and "test_hill_climb" in str(err)


def test_registered_under_its_own_name_passes(
        temporary_registration: Callable[[Registry[Any], str, type], None]) -> None:
    temporary_registration(STRATEGIES, HillClimb.name, HillClimb)
    check_strategy(factory(HillClimb), nb201(), seeds=(0,))


@pytest.mark.parametrize("cls", [Unnamed, SharedREAName])
def test_a_class_without_its_own_name_fails(cls: type[Strategy]) -> None:
    options = {"population_size": 3, "sample_size": 2} if cls is SharedREAName else {}
    expect("consistent names", lambda: check_strategy(factory(cls, **options), nb201()))


@pytest.mark.parametrize("cls", [NumpyState, IntKeys])
def test_state_that_is_not_json_fails(cls: type[Strategy]) -> None:
    expect("JSON-able state", lambda: check_strategy(factory(cls), nb201()))


def test_unseeded_randomness_fails_determinism() -> None:
    expect("determinism per seed", lambda: check_strategy(factory(Unseeded), nb201()))


@pytest.mark.parametrize("cls", [FailedTellCrash, TellWithoutSuper])
def test_broken_tells_fail(cls: type[Strategy]) -> None:
    expect("tells of finished trials", lambda: check_strategy(factory(cls), nb201()))


def test_ignoring_amend_last_ask_fails() -> None:
    expect("amend_last_ask", lambda: check_strategy(factory(AmendIgnored), nb201()))


def test_a_factory_that_returns_no_strategy_fails() -> None:
    expect("factory", lambda: check_strategy(lambda space, seed: object(),  # type: ignore[arg-type,return-value]
                                             nb201()))


def test_a_space_too_small_for_the_check_is_refused() -> None:
    with pytest.raises(ValueError, match="at least"):
        check_strategy(factory(HillClimb), SmallSpace())


# ====================================================================================== spaces
class SmallSpace(SearchSpace):
    """24 architectures and a tiny linear network: passes check_space."""

    name = "contract_small"

    def _declare(self) -> Sequence[Choice]:
        return [Choice("a", (1, 2, 3)), Choice("b", ("x", "y")), Choice("c", (0, 1, 2, 3))]

    def build(self, arch: Architecture, num_classes: int = 10, **kwargs: Any) -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, arch["a"] * 4), nn.ReLU(),
                             nn.Linear(arch["a"] * 4, num_classes))


class LossyText(SmallSpace):
    name = "lossy_text"

    def to_string(self, arch: Architecture) -> str:
        return f'{{"a": {arch["a"]}, "b": "{arch["b"]}", "c": 0}}'


class UnseededSample(SmallSpace):
    name = "unseeded_sample"

    def sample(self, rng: Any = None) -> Architecture:
        return super().sample(None)


class WrongSize(SmallSpace):
    name = "wrong_size"

    def size(self) -> int:
        return 25


class LenientValidate(SmallSpace):
    name = "lenient_validate"

    def validate(self, arch: Architecture) -> Architecture:
        return arch


class MutateOutside(SmallSpace):
    name = "mutate_outside"

    def mutate(self, arch: Architecture, rng: Any = None) -> Architecture:
        return arch.replace(a=7)


class ShortEncoding(SmallSpace):
    name = "short_encoding"

    def encode(self, arch: Architecture) -> np.ndarray:
        return super().encode(arch)[:-1]


class IgnoresNumClasses(SmallSpace):
    name = "ignores_num_classes"

    def build(self, arch: Architecture, num_classes: int = 10, **kwargs: Any) -> nn.Module:
        return super().build(arch, num_classes=3)


@pytest.fixture(autouse=True)
def _torch_seed_untouched() -> Iterator[None]:
    """check_space builds networks without changing torch's global random state."""
    before = torch.random.get_rng_state()
    yield
    assert torch.equal(torch.random.get_rng_state(), before)


def test_a_well_behaved_space_passes() -> None:
    check_space(SmallSpace())


def test_a_conditional_space_with_extra_rules_passes() -> None:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent / "strategies"))
    from strategy_helpers import ToyConditionalSpace

    space = ToyConditionalSpace()
    assert len(list(space.enumerate())) < space.size()  # `_check` refuses some assignments
    check_space(space, build=False)  # the toy space builds no networks


@pytest.mark.parametrize(("cls", "rule"), [
    (LossyText, "round trips"),
    (UnseededSample, "determinism per seed"),
    (WrongSize, "size"),
    (LenientValidate, "sample and validate"),
    (MutateOutside, "operators stay in the space"),
    (ShortEncoding, "encoding"),
    (IgnoresNumClasses, "build"),
])
def test_a_broken_space_fails(cls: type[SearchSpace], rule: str) -> None:
    expect(rule, lambda: check_space(cls()))


def test_space_registered_under_another_name_fails(
        temporary_registration: Callable[[Registry[Any], str, type], None]) -> None:
    temporary_registration(SPACES, "another_name", SmallSpace)
    err = expect("consistent names", lambda: check_space(SmallSpace()))
    assert "another_name" in str(err)
