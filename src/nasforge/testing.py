"""Contract checks for new search spaces and strategies: ``check_space`` and ``check_strategy``.

nasforge runs these checks on every registered space and strategy; call them from your own tests
when you write one::

    from nasforge.testing import check_space, check_strategy

    def test_my_space():
        check_space(MySpace())

    def test_my_strategy():
        check_strategy(lambda space, seed: MyStrategy(space, seed=seed), nasforge.create_space("nb201"))

A broken rule raises :class:`ContractError` (an ``AssertionError``, so pytest reports it as a
failed assertion) whose message starts with the rule's name, e.g.
``strategy contract, rule 'no pending duplicates': ...``.

**The strategy contract** (what the experiment loop, batch asks, parallel workers and resume rely
on). ``check_strategy(factory, space)`` drives strategies made by ``factory(space, seed)`` through
rounds of ``ask_batch`` and ``tell`` with synthetic, deterministic results and checks:

- *factory*: ``factory(space, seed)`` returns a :class:`~nasforge.strategies.base.Strategy`
  searching ``space``.
- *consistent names*: the class sets its own ``name``; a registered class is registered under its
  ``name`` (``STRATEGIES.register("x")`` on a class whose ``name`` is ``"x"``), and no other
  registered class uses that name; ``state_dict()["strategy"]`` is the name.
- *valid asks*: every proposal is an ``Architecture`` of ``space`` that ``space.validate`` accepts,
  and ``ask`` / ``ask_batch(n)`` record each proposal in ``strategy.pending`` (``ask_batch(n)``
  returns ``n`` of them).
- *no pending duplicates*: an ask never returns an architecture that is still pending (asked and
  not told yet), neither one asked earlier nor one earlier in the same batch: batch asks and
  parallel workers would evaluate it twice. Draw again instead, for example with
  :func:`nasforge.strategies.propose_unique` (``propose_unique(draw, set(self.pending))``).
- *tells of finished trials*: ``tell`` accepts finished trials of every status (OK, FAILED,
  PRUNED, INFEASIBLE), in any order (parallel workers finish out of order), and removes the
  architecture from ``pending``.
- *JSON-able state*: ``state_dict()`` is strict JSON: dicts with str keys, lists (or tuples),
  str, finite numbers, bools and None; no NaN or infinity, no numpy values, no int dict keys
  (JSON would silently turn them into strings). Experiments store it as JSON text.
- *state round trip predicts the same future*: ``state_dict()`` (taken while asks are pending) ->
  JSON -> a fresh strategy made with *another* seed -> ``load_state_dict`` restores the pending
  asks and proposes exactly what the original proposes under the same tells. A field that
  affects future asks but is left out of ``state_dict`` breaks this rule.
- *determinism per seed*: two strategies made with the same seed propose the same architectures
  under the same tells (all randomness comes from ``self.rng``).
- *amend_last_ask*: after ``amend_last_ask(arch)`` the newest pending ask is ``arch``; telling
  ``arch`` clears it and the strategy keeps following the rules above.

**The search-space contract**. ``check_space(space)`` checks, for a few seeded samples:

- *consistent names*: ``space.name`` is a non-empty string, a registered class is registered under
  its ``name``, samples carry ``arch.space == space.name``; the space has decisions.
- *sample and validate*: ``sample(seed)`` returns an ``Architecture`` that ``validate`` accepts
  (returning the same object); architectures of another space or with unknown decisions are
  refused with ``InvalidArchitectureError``.
- *determinism per seed*: ``sample``, ``mutate`` and ``crossover`` with the same seed give the
  same architecture, ``neighbors`` the same list.
- *operators stay in the space*: ``mutate``, ``neighbors`` (distinct, without the architecture
  itself) and ``crossover`` return valid architectures; ``crossover(a, a) == a``.
- *encoding*: ``encode`` gives a finite 1-D vector of length ``encoding_size``, equal for equal
  architectures.
- *round trips*: ``Architecture`` JSON (``to_json`` / ``from_json``) and the space's text form
  (``to_string`` / ``from_string``) give back an equal architecture with the same hash and
  encoding; equality does not depend on the order of the values.
- *size*: ``size()`` is a positive integer; for spaces of at most ``max_enumerate`` architectures,
  ``enumerate()`` yields exactly ``size()`` distinct valid architectures (fewer only when the space
  overrides ``_check`` to refuse some), and every sample is among them.
- *build* (when torch is installed and ``build=True``): ``build(arch, num_classes=10,
  **small_build_kwargs)`` returns a ``torch.nn.Module`` that maps ``example_input(batch=2)`` to
  finite ``(2, 10)`` logits, back-propagates finite gradients, and runs in eval mode on a batch
  of one.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
import zlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from nasforge.errors import InvalidArchitectureError
from nasforge.registry import SPACES, STRATEGIES, Registry
from nasforge.space.architecture import Architecture
from nasforge.space.base import SearchSpace
from nasforge.strategies._common import propose_unique
from nasforge.strategies.base import Strategy
from nasforge.trial import Trial, TrialStatus

__all__ = ["ContractError", "StrategyFactory", "check_space", "check_strategy"]

StrategyFactory = Callable[[SearchSpace, int], Strategy]
"""``factory(space, seed)`` -> a new strategy searching ``space``, seeded with ``seed``."""

# Rule names (the start of every ContractError message).
FACTORY = "factory"
NAMES = "consistent names"
VALID_ASKS = "valid asks"
NO_PENDING_DUPLICATES = "no pending duplicates"
TELLS = "tells of finished trials"
JSON_STATE = "JSON-able state"
STATE_ROUND_TRIP = "state round trip predicts the same future"
DETERMINISM = "determinism per seed"
AMEND = "amend_last_ask"
SAMPLE_VALIDATE = "sample and validate"
OPERATORS = "operators stay in the space"
ENCODING = "encoding"
ROUND_TRIPS = "round trips"
SIZE = "size"
BUILD = "build"

#: How many neighbours of one architecture ``check_space`` validates (some spaces have thousands).
MAX_NEIGHBORS = 64


class ContractError(AssertionError):
    """A space or strategy breaks a rule of its contract; ``rule`` names the rule."""

    def __init__(self, kind: str, rule: str, message: str) -> None:
        super().__init__(f"{kind} contract, rule {rule!r}: {message}")
        self.kind = kind
        self.rule = rule


def _strategy_error(rule: str, message: str) -> ContractError:
    return ContractError("strategy", rule, message)


def _space_error(rule: str, message: str) -> ContractError:
    return ContractError("space", rule, message)


def _show(space: SearchSpace, arch: object) -> str:
    """A short text form of ``arch`` for messages (never raises)."""
    try:
        text = space.to_string(arch) if isinstance(arch, Architecture) else repr(arch)
    except Exception:
        text = repr(arch)
    return text if len(text) <= 160 else text[:157] + "..."


def _registered_names(registry: Registry[Any], cls: type) -> list[str]:
    return [n for n in registry.names() if registry.get(n) is cls]


def _check_names(kind: str, registry: Registry[Any], obj: object, base: type) -> None:
    """The class sets its own ``name``, registered under that name and no other."""
    cls = type(obj)
    name = getattr(obj, "name", None)
    error = _strategy_error if kind == "strategy" else _space_error
    if not isinstance(name, str) or not name:
        raise error(NAMES, f"{cls.__name__}.name must be a non-empty string, got {name!r}")
    if name == getattr(base, "name", None):
        raise error(NAMES, f"{cls.__name__} does not set its own `name` (it inherits "
                           f"{name!r} from {base.__name__}): set `name = \"...\"` on the class")
    wrong = [n for n in _registered_names(registry, cls) if n != name]
    if wrong:
        raise error(NAMES, f"{cls.__name__} is registered as {wrong[0]!r} but its `name` is "
                           f"{name!r}: register it under its name (`@{kind.upper()}S.register"
                           f"({name!r})`) or rename it, so stored states and configs agree")
    if name in registry:
        factory = registry.get(name)
        if isinstance(factory, type) and factory is not cls:
            raise error(NAMES, f"{cls.__name__}.name is {name!r}, but {name!r} is registered to "
                               f"another class, {factory.__name__}: give {cls.__name__} its own "
                               "name")


# ====================================================================================== strategies
def _crc(text: str) -> int:
    return zlib.crc32(text.encode())


def _trial(strategy: Strategy, arch: Architecture, number: int) -> Trial:
    """A finished synthetic trial: metrics depend on the architecture only; the status cycles
    with ``number`` through OK, FAILED, INFEASIBLE and PRUNED (every kind a strategy must take)."""
    key = arch.to_json()
    metrics = {o.metric: 1.0 + (_crc(f"{o.metric}:{key}") % 10_000) / 100.0
               for o in strategy.objectives}
    phase = number % 8
    if phase == 3:
        return Trial(number=number, arch=arch, status=TrialStatus.FAILED, error="synthetic failure",
                     cost=1.0)
    status = {5: TrialStatus.INFEASIBLE, 7: TrialStatus.PRUNED}.get(phase, TrialStatus.OK)
    return Trial(number=number, arch=arch, status=status, metrics=metrics, cost=1.0)


class _Run:
    """Drives one strategy through asks and tells, checking the per-call rules, and records what it
    proposed (``asked``) for the cross-strategy rules."""

    def __init__(self, strategy: Strategy, space: SearchSpace, label: str) -> None:
        self.strategy = strategy
        self.space = space
        self.label = label
        self.asked: list[Architecture] = []
        self.number = 0

    def ask_batch(self, n: int) -> list[Architecture]:
        strat, space = self.strategy, self.space
        before = list(strat.pending)
        try:
            batch = list(strat.ask_batch(n))
        except Exception as exc:
            raise _strategy_error(VALID_ASKS, f"{self.label}: ask_batch({n}) raised "
                                              f"{type(exc).__name__}: {exc}") from exc
        if len(batch) != n:
            raise _strategy_error(VALID_ASKS, f"{self.label}: ask_batch({n}) returned {len(batch)} "
                                              "architectures")
        for i, arch in enumerate(batch):
            where = f"{self.label}: ask_batch({n}) item {i} (ask #{len(self.asked) + i})"
            if not isinstance(arch, Architecture):
                raise _strategy_error(VALID_ASKS, f"{where} is a {type(arch).__name__}, not an "
                                                  "Architecture")
            try:
                space.validate(arch)
            except InvalidArchitectureError as exc:
                raise _strategy_error(VALID_ASKS, f"{where} is not in space {space.name!r}: "
                                                  f"{exc}") from exc
            if arch in before or arch in batch[:i]:
                earlier = "in the same batch" if arch in batch[:i] else "by an earlier ask"
                raise _strategy_error(
                    NO_PENDING_DUPLICATES,
                    f"{where} proposed {_show(space, arch)}, which is still pending (proposed "
                    f"{earlier} and not told yet); pending: {len(before)} before the batch. A "
                    "strategy must never propose a pending architecture, or batch asks and "
                    "parallel workers evaluate it twice: draw again, e.g. with "
                    "nasforge.strategies.propose_unique(draw, set(self.pending))")
        if list(strat.pending) != before + batch:
            raise _strategy_error(VALID_ASKS, f"{self.label}: after ask_batch({n}), "
                                              "strategy.pending is not the earlier pending asks "
                                              "followed by the batch: ask() must record every "
                                              "proposal in `pending` (override _ask, not ask)")
        self.asked += batch
        return batch

    def tell(self, arch: Architecture) -> None:
        strat = self.strategy
        trial = _trial(strat, arch, self.number)
        self.number += 1
        count = strat.pending.count(arch)
        try:
            strat.tell(trial)
        except Exception as exc:
            raise _strategy_error(TELLS, f"{self.label}: tell of a {trial.status.value} trial "
                                         f"({_show(self.space, arch)}) raised "
                                         f"{type(exc).__name__}: {exc}") from exc
        if count and strat.pending.count(arch) != count - 1:
            raise _strategy_error(TELLS, f"{self.label}: telling {_show(self.space, arch)} did not "
                                         "remove it from strategy.pending (call super().tell, or "
                                         "override _tell instead of tell)")

    def rounds(self, sizes: Iterable[int]) -> None:
        """For each size: ask a batch, then tell it (every other batch in reverse order)."""
        for k, n in enumerate(sizes):
            batch = self.ask_batch(n)
            for arch in (reversed(batch) if k % 2 else batch):
                self.tell(arch)


def _state_text(run: _Run) -> str:
    """``state_dict()`` as strict JSON text, checking the JSON-able state rule."""
    strat = run.strategy
    try:
        state = strat.state_dict()
    except Exception as exc:
        raise _strategy_error(JSON_STATE, f"{run.label}: state_dict() raised "
                                          f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(state, dict):
        raise _strategy_error(JSON_STATE, f"{run.label}: state_dict() returned a "
                                          f"{type(state).__name__}, not a dict")
    try:
        text = json.dumps(state, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise _strategy_error(JSON_STATE, f"{run.label}: state_dict() is not strict JSON ({exc}); "
                                          f"{_json_culprit(state)}") from exc
    culprit = _json_culprit(state)
    if culprit:
        raise _strategy_error(JSON_STATE, f"{run.label}: state_dict() does not survive JSON: "
                                          f"{culprit} (JSON turns dict keys into strings)")
    if state.get("strategy") != strat.name:
        raise _strategy_error(NAMES, f"{run.label}: state_dict()['strategy'] is "
                                     f"{state.get('strategy')!r}, not the strategy's name "
                                     f"{strat.name!r}")
    return text


def _json_culprit(value: Any, path: str = "state") -> str:
    """Where in ``value`` the first non-JSON (or JSON-changing) item is."""
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                return f"{path} has a non-str key {k!r}"
            found = _json_culprit(v, f"{path}[{k!r}]")
            if found:
                return found
        return ""
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            found = _json_culprit(v, f"{path}[{i}]")
            if found:
                return found
        return ""
    if value is None or isinstance(value, (str, bool, int)):
        return ""
    if isinstance(value, float):
        return "" if math.isfinite(value) else f"{path} is {value!r}"
    return f"{path} is a {type(value).__name__} ({value!r:.80})"


def _plain(value: Any) -> bool:
    if isinstance(value, (list, tuple, set, frozenset)):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(_plain(k) and _plain(v) for k, v in value.items())
    return value is None or isinstance(value, (str, bool, int, float, Architecture))


def _differing_fields(original: Strategy, restored: Strategy) -> list[str]:
    """Plain attributes (numbers, strings, containers of architectures...) whose values differ
    between ``original`` and ``restored``: a hint at what ``state_dict`` leaves out."""
    out = []
    for key, value in vars(original).items():
        other = getattr(restored, key, None)
        if key == "rng":
            if isinstance(value, np.random.Generator) and isinstance(other, np.random.Generator) \
                    and value.bit_generator.state != other.bit_generator.state:
                out.append("rng")
            continue
        if not _plain(value):
            continue
        try:
            if value != other:
                out.append(f"{key} (original {value!r:.60}, restored {other!r:.60})")
        except Exception:
            continue
    return out


def _compare_asks(space: SearchSpace, rule: str, a: _Run, b: _Run, how: str, hint: str) -> None:
    for i, (x, y) in enumerate(itertools.zip_longest(a.asked, b.asked)):
        if x != y:
            raise _strategy_error(rule, f"{how}: ask #{i} differs: {a.label} proposed "
                                        f"{_show(space, x)}, {b.label} proposed "
                                        f"{_show(space, y)}. {hint}")


def _make(factory: StrategyFactory, space: SearchSpace, seed: int) -> Strategy:
    try:
        strategy = factory(space, seed)
    except Exception as exc:
        raise _strategy_error(FACTORY, f"factory(space, {seed}) raised {type(exc).__name__}: "
                                       f"{exc}") from exc
    if not isinstance(strategy, Strategy):
        raise _strategy_error(FACTORY, f"factory(space, {seed}) returned a "
                                       f"{type(strategy).__name__}, not a nasforge Strategy")
    if strategy.space is not space:
        raise _strategy_error(FACTORY, f"factory(space, {seed}) returned a strategy for another "
                                       "space object than the one given")
    return strategy


def check_strategy(
    factory: StrategyFactory,
    space: SearchSpace,
    *,
    seeds: Sequence[int] = (0, 1),
    rounds: Sequence[int] = (2, 2, 2, 2, 6),
    future: Sequence[int] = (2, 3, 2),
) -> None:
    """Check that strategies made by ``factory(space, seed)`` follow the strategy contract (see
    the module docstring for its rules); raise :class:`ContractError` naming the broken rule.

    For each seed in ``seeds``, two strategies with that seed are driven side by side: one
    ``ask_batch`` / ``tell`` round per size in ``rounds`` (past the warm-up phase of most
    strategies; pass the strategy's small options through ``factory`` so it gets there), then a
    snapshot taken with one ask pending, then the rounds in ``future``. A third strategy, made
    with another seed, loads the snapshot and must propose the same future. Results are
    synthetic and deterministic (the objectives' metrics from a hash of the architecture, some
    trials FAILED, INFEASIBLE or PRUNED).

    ``space`` should hold a few times more architectures than the check asks (about 50 with the
    defaults), so that avoiding pending duplicates is always possible; a ValueError says so
    otherwise.
    """
    needed = 2 * (sum(rounds) + 2 + sum(future) + 3)
    if space.size() < needed:
        raise ValueError(f"check_strategy needs a space of at least {needed} architectures, "
                         f"{space.name!r} has {space.size()}")
    for seed in seeds:
        _check_strategy_seed(factory, space, int(seed), rounds, future)


def _check_strategy_seed(factory: StrategyFactory, space: SearchSpace, seed: int,
                         rounds: Sequence[int], future: Sequence[int]) -> None:
    first = _Run(_make(factory, space, seed), space, f"strategy A (seed {seed})")
    twin = _Run(_make(factory, space, seed), space, f"strategy B (seed {seed})")
    _check_names("strategy", STRATEGIES, first.strategy, Strategy)
    _state_text(first)

    for run in (first, twin):
        run.rounds(rounds)
    _compare_asks(space, DETERMINISM, first, twin,
                  f"two strategies made by factory(space, {seed}) under the same tells",
                  "All randomness must come from self.rng (seeded from `seed`): no global "
                  "random state, time, or iteration over unordered sets of objects.")

    # Snapshot while asks are pending (a batch of two, the later one told first).
    for run in (first, twin):
        batch = run.ask_batch(2)
        run.tell(batch[1])
    text = _state_text(first)
    restored = _Run(_make(factory, space, seed + 1000), space,
                    f"the restored strategy (seed {seed + 1000}, state of A)")
    restored.number = first.number
    try:
        restored.strategy.load_state_dict(json.loads(text))
    except Exception as exc:
        raise _strategy_error(STATE_ROUND_TRIP, f"load_state_dict of A's state raised "
                                                f"{type(exc).__name__}: {exc}") from exc
    if restored.strategy.pending != first.strategy.pending:
        raise _strategy_error(STATE_ROUND_TRIP, "load_state_dict did not restore the pending asks "
                                                f"({len(first.strategy.pending)} pending in A, "
                                                f"{len(restored.strategy.pending)} restored)")
    hint = _differing_fields(first.strategy, restored.strategy)
    _state_text(restored)
    restored.asked = list(first.asked)

    for run in (first, twin, restored):
        run.tell(run.strategy.pending[0])
        run.rounds(future)
    _compare_asks(space, DETERMINISM, first, twin,
                  f"two strategies made by factory(space, {seed}) under the same tells",
                  "All randomness must come from self.rng (seeded from `seed`).")
    _compare_asks(space, STATE_ROUND_TRIP, first, restored,
                  "after state_dict -> JSON -> load_state_dict into a fresh strategy, under the "
                  "same tells",
                  "Does state_dict()/load_state_dict() hold every field that affects future asks? "
                  + (f"Attributes that differed right after loading: {', '.join(hint)}."
                     if hint else ""))

    _check_amend(first, seed)


def _check_amend(run: _Run, seed: int) -> None:
    strat, space = run.strategy, run.space
    asked = run.ask_batch(1)[0]
    rng = np.random.default_rng(seed)
    other = propose_unique(lambda: space.sample(rng), {asked, *strat.pending}, tries=200)
    if other == asked or other in strat.pending:
        return  # the space is too small to find a replacement; nothing to check
    try:
        strat.amend_last_ask(other)
    except Exception as exc:
        raise _strategy_error(AMEND, f"amend_last_ask raised {type(exc).__name__}: {exc}") from exc
    if not strat.pending or strat.pending[-1] != other or asked in strat.pending:
        raise _strategy_error(AMEND, "after amend_last_ask(arch), strategy.pending[-1] must be "
                                     "arch, and the replaced ask must no longer be pending")
    try:
        strat.tell(_trial(strat, other, run.number))
    except Exception as exc:
        raise _strategy_error(AMEND, f"telling the amended architecture raised "
                                     f"{type(exc).__name__}: {exc}") from exc
    run.number += 1
    if other in strat.pending:
        raise _strategy_error(AMEND, "telling the amended architecture did not clear it from "
                                     "strategy.pending")
    run.label += ", after amend_last_ask"
    run.rounds((2,))
    _state_text(run)


# ====================================================================================== spaces
def _validate(space: SearchSpace, arch: Architecture, rule: str, what: str) -> None:
    if not isinstance(arch, Architecture):
        raise _space_error(rule, f"{what} is a {type(arch).__name__}, not an Architecture")
    if arch.space != space.name:
        raise _space_error(NAMES, f"{what} has arch.space {arch.space!r}, not the space's name "
                                  f"{space.name!r}")
    try:
        space.validate(arch)
    except InvalidArchitectureError as exc:
        raise _space_error(rule, f"{what} ({_show(space, arch)}) is refused by validate: "
                                 f"{exc}") from exc


def check_space(
    space: SearchSpace,
    *,
    seeds: Sequence[int] = (0, 1, 2, 3),
    build: bool = True,
    max_enumerate: int = 20_000,
) -> None:
    """Check that ``space`` follows the search-space contract (see the module docstring for its
    rules) on samples drawn with ``seeds``; raise :class:`ContractError` naming the broken rule.

    ``build=False`` skips building networks (also skipped when torch is not installed); spaces of
    at most ``max_enumerate`` architectures are enumerated to check :meth:`SearchSpace.size`.
    """
    if not isinstance(space, SearchSpace):
        raise _space_error(NAMES, f"expected a SearchSpace, got {type(space).__name__}")
    _check_names("space", SPACES, space, SearchSpace)
    if len(space.decisions) == 0:
        raise _space_error(NAMES, f"space {space.name!r} declares no decisions")
    if space.encoding_size <= 0:
        raise _space_error(ENCODING, f"encoding_size is {space.encoding_size}")
    if not hasattr(space.small_build_kwargs, "keys"):
        raise _space_error(BUILD, "small_build_kwargs must be a mapping of build options")

    samples = [_check_sample(space, int(seed)) for seed in seeds]
    for seed, a, b in zip(seeds, samples, samples[1:] + samples[:1]):
        _check_operators(space, int(seed), a, b)
    _check_size(space, samples, max_enumerate)
    if build and importlib.util.find_spec("torch") is not None:
        for seed, arch in list(zip(seeds, samples))[:2]:
            _check_build(space, arch, int(seed))


def _check_sample(space: SearchSpace, seed: int) -> Architecture:
    arch = space.sample(seed)
    _validate(space, arch, SAMPLE_VALIDATE, f"sample({seed})")
    if space.validate(arch) is not arch:
        raise _space_error(SAMPLE_VALIDATE, "validate(arch) must return arch itself")
    if space.sample(seed) != arch or space.sample(np.random.default_rng(seed)) != \
            space.sample(np.random.default_rng(seed)):
        raise _space_error(DETERMINISM, f"sample({seed}) gives different architectures on "
                                        "different calls: draw only from the rng given")
    for bad, why in ((Architecture(space.name + "_other", dict(arch)), "of another space"),
                     (Architecture(space.name, {**dict(arch), "__no_such_decision__": 0}),
                      "with an unknown decision")):
        try:
            space.validate(bad)
        except InvalidArchitectureError:
            pass
        else:
            raise _space_error(SAMPLE_VALIDATE, f"validate accepts an architecture {why}; it must "
                                                "raise InvalidArchitectureError")

    vec = space.encode(arch)
    if not isinstance(vec, np.ndarray) or vec.shape != (space.encoding_size,):
        shape = getattr(vec, "shape", type(vec).__name__)
        raise _space_error(ENCODING, f"encode(sample({seed})) has shape {shape}, expected "
                                     f"({space.encoding_size},) (encoding_size)")
    if not np.issubdtype(vec.dtype, np.number) or not np.isfinite(vec).all():
        raise _space_error(ENCODING, f"encode(sample({seed})) is not a finite numeric vector")

    again = Architecture.from_json(arch.to_json())
    reordered = Architecture(arch.space, dict(reversed(list(arch.items()))))
    for other, how in ((again, "Architecture.from_json(arch.to_json())"),
                       (reordered, "the same values in another order")):
        if other != arch or hash(other) != hash(arch):
            raise _space_error(ROUND_TRIPS, f"{how} is not equal (or hashes differently) to "
                                            f"{_show(space, arch)}")
    text = space.to_string(arch)
    if not isinstance(text, str) or space.to_string(arch) != text:
        raise _space_error(ROUND_TRIPS, "to_string must return the same str on every call")
    try:
        parsed = space.from_string(text)
    except Exception as exc:
        raise _space_error(ROUND_TRIPS, f"from_string(to_string(arch)) raised "
                                        f"{type(exc).__name__}: {exc} (text {text!r:.160})") from exc
    if parsed != arch or hash(parsed) != hash(arch):
        raise _space_error(ROUND_TRIPS, f"from_string(to_string(arch)) gives {parsed!r:.160}, not "
                                        f"{arch!r:.160}")
    if not np.array_equal(space.encode(parsed), vec):
        raise _space_error(ENCODING, "equal architectures (one read back by from_string) encode "
                                     "differently")
    return arch


def _check_operators(space: SearchSpace, seed: int, a: Architecture, b: Architecture) -> None:
    child = space.mutate(a, np.random.default_rng(seed))
    _validate(space, child, OPERATORS, f"mutate(sample, rng {seed})")
    if space.mutate(a, np.random.default_rng(seed)) != child:
        raise _space_error(DETERMINISM, f"mutate with the same rng seed ({seed}) gives different "
                                        "architectures")

    nbrs = list(space.neighbors(a))
    if len(set(nbrs)) != len(nbrs):
        raise _space_error(OPERATORS, "neighbors(arch) lists an architecture twice")
    if a in nbrs:
        raise _space_error(OPERATORS, "neighbors(arch) contains arch itself")
    if list(space.neighbors(a)) != nbrs:
        raise _space_error(DETERMINISM, "neighbors(arch) gives different lists on different calls")
    for i, n in enumerate(nbrs[:MAX_NEIGHBORS]):
        _validate(space, n, OPERATORS, f"neighbors(arch)[{i}]")

    for x, y, what in ((a, b, "crossover(a, b)"), (b, a, "crossover(b, a)"),
                       (a, a, "crossover(a, a)")):
        mixed = space.crossover(x, y, np.random.default_rng(seed))
        _validate(space, mixed, OPERATORS, what)
        if space.crossover(x, y, np.random.default_rng(seed)) != mixed:
            raise _space_error(DETERMINISM, f"{what} with the same rng seed ({seed}) gives "
                                            "different architectures")
    if space.crossover(a, a, np.random.default_rng(seed)) != a:
        raise _space_error(OPERATORS, "crossover(a, a) must be a")


def _check_size(space: SearchSpace, samples: Sequence[Architecture], max_enumerate: int) -> None:
    size = space.size()
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size <= 0:
        raise _space_error(SIZE, f"size() must be a positive integer, got {size!r}")
    if size > max_enumerate:
        return
    members: set[Architecture] = set()
    for arch in space.enumerate():
        if arch in members:
            raise _space_error(SIZE, f"enumerate() yields {_show(space, arch)} twice")
        _validate(space, arch, SIZE, "an architecture from enumerate()")
        members.add(arch)
    checks_more = type(space)._check is not SearchSpace._check
    if len(members) > size or (len(members) < size and not checks_more):
        raise _space_error(SIZE, f"size() is {size} but enumerate() yields {len(members)} "
                                 "architectures")
    for arch in samples:
        if arch not in members:
            raise _space_error(SIZE, f"sample {_show(space, arch)} is not among enumerate()'s "
                                     "architectures")


def _check_build(space: SearchSpace, arch: Architecture, seed: int) -> None:
    import torch  # deferred: the checks of the space core do not need torch

    options = {"num_classes": 10, **space.small_build_kwargs}
    where = f"build(sample({seed}), **{options})"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            model = space.build(arch, **options)
        except Exception as exc:
            raise _space_error(BUILD, f"{where} raised {type(exc).__name__}: {exc}") from exc
        if not isinstance(model, torch.nn.Module):
            raise _space_error(BUILD, f"{where} returned a {type(model).__name__}, not a "
                                      "torch.nn.Module")
        model.train()
        x = space.example_input(batch=2)
        try:
            out = model(x)
        except Exception as exc:
            raise _space_error(BUILD, f"the network of {where} fails on example_input(batch=2) "
                                      f"(shape {tuple(x.shape)}): {type(exc).__name__}: {exc}; "
                                      "override example_input if the networks take another "
                                      "input") from exc
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, 10):
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise _space_error(BUILD, f"the network of {where} maps example_input(batch=2) to "
                                      f"{shape}, expected (2, 10) logits")
        if not torch.isfinite(out).all():
            raise _space_error(BUILD, f"the network of {where} gives non-finite logits")
        out.float().pow(2).mean().backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        if not grads or not all(torch.isfinite(g).all() for g in grads):
            raise _space_error(BUILD, f"the network of {where} gets no finite gradients")
        model.eval()
        with torch.no_grad():
            shape = tuple(model(space.example_input(batch=1)).shape)
        if shape != (1, 10):
            raise _space_error(BUILD, f"in eval mode the network of {where} maps a batch of one "
                                      f"to {shape}, expected (1, 10)")
