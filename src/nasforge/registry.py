"""Name -> factory registries for spaces, strategies and evaluators (timm-style).

Registering a class puts it under the generic tests that loop over every registered name, so a
registry is also the list of things the test suite checks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from nasforge.errors import ConfigError, unknown

T = TypeVar("T")


class Registry(Generic[T]):
    """A named collection of factories that build objects of one kind."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}
        self._docs: dict[str, str] = {}

    def register(self, name: str, *, doc: str | None = None) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator: register ``factory`` under ``name`` (lower-case, unique)."""

        def deco(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._factories and self._factories[name] is not factory:
                raise ConfigError(f"{self.kind} {name!r} is already registered")
            self._factories[name] = factory
            text = doc if doc is not None else (factory.__doc__ or "")
            self._docs[name] = text.strip().splitlines()[0] if text.strip() else ""
            return factory

        return deco

    def get(self, name: str) -> Callable[..., T]:
        """The factory registered under ``name``; raises an error listing the allowed names."""
        key = name.lower().replace("-", "_") if name not in self._factories else name
        if key not in self._factories:
            raise unknown(self.kind, name, self._factories)
        return self._factories[key]

    def create(self, name: str, *args: Any, **kwargs: Any) -> T:
        """Build the object registered under ``name``.

        Unknown keyword options are reported with the name of the thing being built, instead of
        Python's bare ``TypeError``.
        """
        factory = self.get(name)
        try:
            return factory(*args, **kwargs)
        except TypeError as exc:
            if "unexpected keyword argument" in str(exc) or "positional argument" in str(exc):
                raise ConfigError(f"bad options for {self.kind} {name!r}: {exc}") from exc
            raise

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._factories)

    def describe(self) -> dict[str, str]:
        """Name -> one-line description."""
        return {n: self._docs[n] for n in self.names()}

    def __contains__(self, name: object) -> bool:
        return name in self._factories


# The three public registries. They are typed loosely here because the concrete base classes import
# this module (registering is the first thing a space/strategy/evaluator module does).
SPACES: Registry[Any] = Registry("space")
STRATEGIES: Registry[Any] = Registry("strategy")
EVALUATORS: Registry[Any] = Registry("evaluator")
