"""The SearchSpace base class: decisions plus the generic operators strategies rely on.

Strategies only ever call the methods defined here (sample, mutate, neighbors, crossover, encode,
validate, ...), so any space that declares its decisions works with every strategy. Spaces override
a method only where they know better (e.g. NAS-Bench-201's path encoding).
"""

from __future__ import annotations

import inspect
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from nasforge.errors import ConfigError, InvalidArchitectureError, allowed
from nasforge.registry import SUPERNETS
from nasforge.space.architecture import Architecture
from nasforge.space.decision import Choice, Value
from nasforge.utils.rng import RngLike, as_rng

if TYPE_CHECKING:
    import torch


class SearchSpace(ABC):
    """A finite set of architectures described by an ordered list of decisions.

    Subclasses set :attr:`name` and implement :meth:`_declare` (the decisions, in order: a
    conditional decision's parents come first) and :meth:`build`. Everything else has a generic
    implementation that honours conditional decisions.
    """

    name: str = "space"

    small_build_kwargs: ClassVar[Mapping[str, Any]] = {}
    """Options for :meth:`build` that give a small, fast network of this space (fewer cells,
    narrower layers). Generic tests build every registered space with them; spaces whose default
    network is already small leave it empty."""

    builtin_residuals: ClassVar[bool] = False
    """Whether every network of this space has identity (residual) connections built in, whatever
    the architecture (e.g. MobileNet blocks' shortcuts). The design checks read it: a space with
    neither identity ops nor skip decisions is only warned about when this is False."""

    graph_parts: ClassVar[tuple[str, ...]] = ()
    """The parts of an architecture that are drawn separately (DARTS: ``("normal", "reduce")``),
    each passed to :meth:`graph` as ``part``. Empty (the default) when :meth:`graph` describes the
    whole architecture at once; reports then draw one picture per architecture."""

    def __init__(self) -> None:
        self._decisions: tuple[Choice, ...] = tuple(self._declare())
        seen: dict[str, Choice] = {}
        for d in self._decisions:
            if d.name in seen:
                raise ConfigError(f"space {self.name!r} declares decision {d.name!r} twice")
            for c in d.conditions:
                if c.decision not in seen:
                    raise ConfigError(
                        f"decision {d.name!r} depends on {c.decision!r}, which is not declared before it"
                    )
                # A condition value its parent cannot take is almost surely a typo: refuse it.
                for value in c.values:
                    try:
                        seen[c.decision].index(value)
                    except ConfigError as exc:
                        raise ConfigError(f"condition of decision {d.name!r}: {exc}") from None
            seen[d.name] = d
        self._by_name = {d.name: d for d in self._decisions}
        self._offsets: dict[str, int] = {}
        offset = 0
        for d in self._decisions:
            self._offsets[d.name] = offset
            offset += d.size
        self._encoding_size = offset

    # ------------------------------------------------------------------ declaration
    @abstractmethod
    def _declare(self) -> Sequence[Choice]:
        """The decisions of this space, parents before the decisions that depend on them."""

    @abstractmethod
    def build(self, arch: Architecture, **kwargs: Any) -> Any:
        """Build a plain ``torch.nn.Module`` for ``arch``."""

    @property
    def decisions(self) -> tuple[Choice, ...]:
        """All decisions, conditional ones included, in declaration order."""
        return self._decisions

    def decision_patterns(self) -> str:
        """The decision names; for many, numbered families folded: ``'layer<i>/op'``."""
        if len(self._by_name) <= 12:
            return ", ".join(map(repr, self._by_name))
        seen: dict[str, None] = {}
        for name in self._by_name:
            parts = re.split(r"\d+", name)  # 'layer3/skip1' -> 'layer<i>/skip<j>'
            seen["".join(p + (f"<{'ijklmn'[min(k, 5)]}>" if k < len(parts) - 1 else "")
                         for k, p in enumerate(parts))] = None
        return ", ".join(map(repr, seen))

    def decision(self, name: str) -> Choice:
        """One decision by name (clear error listing the names when unknown)."""
        if name not in self._by_name:
            raise ConfigError(
                f"space {self.name!r} has no decision {name!r}; it has: {', '.join(self._by_name)}"
            )
        return self._by_name[name]

    @property
    def is_conditional(self) -> bool:
        """Whether some decisions exist only for some values of others."""
        return any(d.conditions for d in self._decisions)

    def active_decisions(self, arch: Mapping[str, Value]) -> list[Choice]:
        """The decisions that exist for ``arch`` (in order)."""
        return [d for d in self._decisions if d.active(arch)]

    # ------------------------------------------------------------------ construction
    def make(self, values: Mapping[str, Value]) -> Architecture:
        """Make and validate an architecture of this space from a plain mapping."""
        return self.validate(Architecture(self.name, values))

    def _complete(
        self, values: Mapping[str, Value], rng: np.random.Generator | None
    ) -> Architecture:
        """Fill in the decisions that ``values`` lacks and drop those that are inactive.

        Missing active decisions are sampled with ``rng``, or take their first option when ``rng``
        is None (deterministic, used by :meth:`neighbors`).
        """
        out: dict[str, Value] = {}
        for d in self._decisions:
            if not d.active(out):
                continue
            if d.name in values:
                out[d.name] = values[d.name]
            elif rng is None:
                out[d.name] = d.options[0]
            else:
                out[d.name] = d.options[int(rng.integers(d.size))]
        return self._repair(Architecture(self.name, out), rng)

    def complete(self, values: Mapping[str, Value], rng: RngLike | bool = False) -> Architecture:
        """A valid architecture from per-decision values that may be partial or break rules
        beyond the decisions (e.g. DARTS' distinct, ordered node inputs).

        Inactive decisions are dropped; missing active ones take their first option
        (``rng=False``, deterministic) or a random one (``rng`` a Generator, seed or None); then
        the space's own repair rule applies. Strategies that choose decisions one by one
        (REINFORCE, TPE) use it to turn their choices into a member of the space.
        """
        if isinstance(rng, bool):
            if rng:
                raise ConfigError("complete(rng=True) is not allowed; pass False, a Generator, "
                                  "an int seed or None")
            return self._complete(values, None)
        return self._complete(values, as_rng(rng))

    def reference_architecture(self) -> Architecture | None:
        """A hand-designed architecture of this space: the baseline a search must beat.

        The final stage of a search retrains it with exactly the winner's recipe and says whether
        the search found something better (NB201: the ResNet cell; DARTS: DARTS_V2). None when
        the space has no sensible default; users can always name their own baseline.
        """
        return None

    def _repair(self, arch: Architecture, rng: np.random.Generator | None) -> Architecture:
        """Hook for spaces with constraints beyond their decisions; the default returns ``arch``."""
        return arch

    def sample(self, rng: RngLike = None) -> Architecture:
        """A uniformly random architecture (each active decision uniform over its options)."""
        return self._complete({}, as_rng(rng))

    def validate(self, arch: Architecture) -> Architecture:
        """Return ``arch`` if it belongs to this space, else raise an error naming what is wrong."""
        if not isinstance(arch, Architecture):
            raise InvalidArchitectureError(
                f"expected an Architecture of space {self.name!r}, got {type(arch).__name__}"
            )
        if arch.space != self.name:
            raise InvalidArchitectureError(
                f"architecture belongs to space {arch.space!r}, not {self.name!r}"
            )
        unknown_keys = [k for k in arch if k not in self._by_name]
        if unknown_keys:
            shown = ", ".join(map(repr, unknown_keys[:5]))
            more = f" and {len(unknown_keys) - 5} more" if len(unknown_keys) > 5 else ""
            raise InvalidArchitectureError(
                f"space {self.name!r} has no decision(s) {shown}{more}; allowed: "
                f"{self.decision_patterns()}"
            )
        for d in self._decisions:
            active = d.active(arch)
            if active and d.name not in arch:
                raise InvalidArchitectureError(f"architecture lacks decision {d.name!r}")
            if not active and d.name in arch:
                raise InvalidArchitectureError(
                    f"decision {d.name!r} does not exist for this architecture (its condition "
                    f"{d.conditions!r} does not hold) but has a value"
                )
            if active:
                try:
                    d.index(arch[d.name])
                except ConfigError as exc:
                    raise InvalidArchitectureError(str(exc)) from None
        self._check(arch)
        return arch

    def _check(self, arch: Architecture) -> None:  # noqa: B027 - optional hook, empty on purpose
        """Hook for space-specific validity rules; raise InvalidArchitectureError."""

    def is_valid(self, arch: Architecture) -> bool:
        """``validate`` as a boolean."""
        try:
            self.validate(arch)
        except InvalidArchitectureError:
            return False
        return True

    # ------------------------------------------------------------------ operators
    def mutate(self, arch: Architecture, rng: RngLike = None) -> Architecture:
        """Change one active decision to a different option (newly needed decisions are sampled)."""
        gen = as_rng(rng)
        candidates = [d for d in self.active_decisions(arch) if d.size > 1]
        if not candidates:
            return arch
        d = candidates[int(gen.integers(len(candidates)))]
        current = d.index(arch[d.name])
        new = int(gen.integers(d.size - 1))
        new = new + 1 if new >= current else new
        values = dict(arch)
        values[d.name] = d.options[new]
        return self._complete(values, gen)

    def neighbors(self, arch: Architecture) -> list[Architecture]:
        """All architectures that differ from ``arch`` in exactly one active decision.

        Decisions that become active through the change take their first option, so the list is
        deterministic. Duplicates (possible after repair) are removed, order is kept.
        """
        out: dict[Architecture, None] = {}
        for d in self.active_decisions(arch):
            current = d.index(arch[d.name])
            for i, option in enumerate(d.options):
                if i == current:
                    continue
                values = dict(arch)
                values[d.name] = option
                cand = self._complete(values, None)
                if cand != arch:
                    out[cand] = None
        return list(out)

    def crossover(self, a: Architecture, b: Architecture, rng: RngLike = None) -> Architecture:
        """Uniform crossover: each decision's value comes from ``a`` or ``b`` with equal chance."""
        gen = as_rng(rng)
        self.validate(a)
        self.validate(b)
        values: dict[str, Value] = {}
        for d in self._decisions:
            if not d.active(values):
                continue
            pool = [p[d.name] for p in (a, b) if d.name in p]
            if pool:
                values[d.name] = pool[int(gen.integers(len(pool)))]
        return self._complete(values, gen)

    # ------------------------------------------------------------------ encodings
    @property
    def encoding_size(self) -> int:
        """Length of :meth:`encode`'s vector."""
        return self._encoding_size

    def encode(self, arch: Architecture) -> np.ndarray:
        """A numeric vector for predictors: one-hot per decision, zeros for inactive decisions."""
        vec = np.zeros(self._encoding_size, dtype=np.float32)
        for d in self._decisions:
            if d.name in arch:
                vec[self._offsets[d.name] + d.index(arch[d.name])] = 1.0
        return vec

    # ------------------------------------------------------------------ text forms
    def to_string(self, arch: Architecture) -> str:
        """The space's human form of ``arch`` (default: compact JSON of the choices)."""
        self.validate(arch)
        # Declaration order, not the mapping's insertion order: an architecture read back from
        # storage must print exactly as the one that was sampled.
        values = {d.name: arch[d.name] for d in self._decisions if d.name in arch}
        return json.dumps(values, separators=(",", ":"))

    def from_string(self, text: str) -> Architecture:
        """Parse the human form written by :meth:`to_string`."""
        try:
            values = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidArchitectureError(f"cannot parse {text!r:.200} for space {self.name!r}: {exc}") from None
        if not isinstance(values, dict):
            raise InvalidArchitectureError(f"expected a JSON object for space {self.name!r}, got {text!r:.200}")
        return self.make(values)

    # ------------------------------------------------------------------ size and enumeration
    def size(self) -> int:
        """Exact number of distinct architectures (counts conditional decisions correctly)."""

        def count(index: int, assignment: dict[str, Value]) -> int:
            # Only parents of conditions need to be enumerated; others multiply in directly.
            total = 1
            for j in range(index, len(self._decisions)):
                d = self._decisions[j]
                if not d.active(assignment):
                    continue
                if d.name in self._parents:
                    return total * sum(
                        count(j + 1, {**assignment, d.name: o}) for o in d.options
                    )
                total *= d.size
            return total

        return count(0, {})

    @property
    def _parents(self) -> frozenset[str]:
        return frozenset(c.decision for d in self._decisions for c in d.conditions)

    def enumerate(self) -> Iterator[Architecture]:
        """Every architecture of the space, in a fixed order (only sensible for small spaces)."""

        def rec(index: int, assignment: dict[str, Value]) -> Iterator[dict[str, Value]]:
            if index == len(self._decisions):
                yield dict(assignment)
                return
            d = self._decisions[index]
            if not d.active(assignment):
                yield from rec(index + 1, assignment)
                return
            for option in d.options:
                assignment[d.name] = option
                yield from rec(index + 1, assignment)
                del assignment[d.name]

        for values in rec(0, {}):
            arch = Architecture(self.name, values)
            if self.is_valid(arch):
                yield arch

    def example_input(self, batch: int = 2, seed: int = 0) -> torch.Tensor:
        """A seeded random input batch for this space's networks: ``(batch, 3, 32, 32)`` here.

        Spaces whose networks take another input shape override this; generic tests and tools
        (FLOPs, latency, zero-cost proxies) use it to run a built network.
        """
        import torch  # deferred: the space core stays importable without loading torch

        gen = torch.Generator().manual_seed(seed)
        return torch.randn(batch, 3, 32, 32, generator=gen)

    # ------------------------------------------------------------------ hooks for tools
    def options(self) -> dict[str, Any] | None:
        """The constructor options of this space as plain JSON data, or None when unknown.

        ``SPACES.create(self.name, **space.options())`` must make the same space again; one-shot
        checkpoints record them to rebuild their supernet and to refuse a different space. The
        default is ``{}`` for a space whose constructor takes no arguments and None otherwise
        (its options cannot be read back), so a space with constructor options overrides this.
        """
        params = [
            p for name, p in inspect.signature(type(self).__init__).parameters.items()
            if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        return None if params else {}

    def is_degenerate(self, arch: Architecture) -> bool | None:
        """Whether the network of ``arch`` has an output that cannot depend on its input (e.g.
        every path from the input crosses a ``none`` op), decided from the architecture alone.

        None (the default) means the space has no such rule: the design checks then run the
        network on two random inputs instead (:func:`nasforge.space.checks.generic_is_degenerate`).
        Spaces with ``none``-like options override it with an exact, cheap rule.
        """
        return None

    def graph(self, arch: Architecture, part: str | None = None) -> dict[str, Any] | None:
        """A drawable description of ``arch`` (or of its ``part``, one of :attr:`graph_parts`),
        or None (the default) when the space cannot be drawn.

        The description is plain data, drawn by :mod:`nasforge.report.diagrams`::

            {"title": "Normal cell", "layout": "dag" | "chain",
             "nodes": [{"id": "0", "label": "c_{k-2}", "kind": "input" | "node" | "output"}, ...],
             "edges": [{"src": "0", "dst": "2", "label": "sep_conv_3x3", "kind": "" | "skip"}, ...]}

        ``dag`` graphs (cells) are laid out in layers from the inputs; ``chain`` graphs (whole
        networks) are a column with ``skip`` edges drawn as arcs. A space with parts raises a
        ConfigError for a ``part`` it does not have.
        """
        return None

    def supernet(self, **kwargs: Any) -> Any:
        """A weight-sharing supernet of this space (a :class:`nasforge.supernet.Supernet`).

        Spaces get one by registering a builder in :data:`nasforge.registry.SUPERNETS` (with
        :func:`nasforge.supernet.register_supernet`) or by overriding this method; others raise
        a ConfigError naming the spaces that have one.
        """
        if self.name not in SUPERNETS:  # the lookup loads the built-in supernets (and torch)
            raise ConfigError(
                f"space {self.name!r} has no weight-sharing supernet; spaces with one: "
                f"{allowed(SUPERNETS.names())}"
            )
        return SUPERNETS.get(self.name)(self, **kwargs)

    def describe(self) -> dict[str, Any]:
        """A short JSON-able summary: name, number of decisions, size."""
        return {"name": self.name, "decisions": len(self._decisions), "size": self.size()}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, decisions={len(self._decisions)})"


def product_size(decisions: Sequence[Choice]) -> int:
    """Product of option counts (size of a space without conditions)."""
    return int(np.prod([d.size for d in decisions], dtype=object)) if decisions else 1


__all__ = ["SearchSpace", "product_size"]
