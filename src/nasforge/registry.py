"""Name -> factory registries for spaces, strategies and evaluators (timm-style).

Registering a class puts it under the generic tests that loop over every registered name, so a
registry is also the list of things the test suite checks.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from nasforge.errors import ConfigError, unknown
from nasforge.utils.coerce import coerce_options

T = TypeVar("T")


@dataclass(frozen=True)
class OptionSource:
    """Where a set of options came from, for error messages.

    ``field`` is the settings key holding the options (``"strategy_options"``), ``origin`` where
    they were read (``"search.yaml"``, ``"--strategy-option"``), and ``origins`` overrides it per
    option name when options were merged from several places (a file, then flags).
    ``label("population_size")`` gives ``"search.yaml: strategy_options.population_size"``.
    """

    field: str = "options"
    origin: str = "options"
    origins: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def label(self, key: str | None) -> str:
        """``"<origin>: <field>.<key>"`` (just ``<field>`` when the key is not known)."""
        if key is None:
            return f"{self.origin}: {self.field}"
        return f"{self.origins.get(key, self.origin)}: {self.field}.{key}"

    def prefix(self, key: str | None) -> str:
        """:meth:`label` followed by ``": "``, to start an error message with."""
        return self.label(key) + ": "


class _NoSource(OptionSource):
    """Options passed in Python: messages need no "where" prefix."""

    def prefix(self, key: str | None) -> str:
        return ""


_NO_SOURCE = _NoSource()


def _short(options: Mapping[str, Any]) -> str:
    text = ", ".join(f"{k}={v!r}" for k, v in options.items())
    return text if len(text) <= 200 else text[:197] + "..."


def _named_option(message: str, options: Mapping[str, Any]) -> str | None:
    """The one option a factory's error message names (as a word), or None when unclear."""
    if len(options) == 1:
        return next(iter(options))
    hits = [k for k in options if re.search(rf"(?<![\w.]){re.escape(k)}(?![\w])", message)]
    return hits[0] if len(hits) == 1 else None


class Registry(Generic[T]):
    """A named collection of factories that build objects of one kind."""

    def __init__(self, kind: str, providers: Sequence[str] = ()) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}
        self._docs: dict[str, str] = {}
        # Modules that register the built-in entries, imported by name on the first lookup (like
        # entry points): a registry sits in the lowest layer and never imports its providers.
        self._providers = tuple(providers)
        self._loaded = not self._providers

    def _load_providers(self) -> None:
        """Import the built-in provider modules once, before the first lookup."""
        if self._loaded:
            return
        self._loaded = True  # set first: a provider's own lookups while importing must not recurse
        try:
            for module in self._providers:
                importlib.import_module(module)
        except BaseException:
            self._loaded = False
            raise

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
        self._load_providers()
        key = name.lower().replace("-", "_") if name not in self._factories else name
        if key not in self._factories:
            raise unknown(self.kind, name, self._factories)
        return self._factories[key]

    def create(self, name: str, *args: Any, **kwargs: Any) -> T:
        """Build the object registered under ``name``.

        Options the factory does not take are reported with the name of the thing being built and
        the options it accepts, instead of Python's bare ``TypeError``.
        """
        return self.build(name, args, options=kwargs)

    def build(
        self,
        name: str,
        args: Sequence[Any] = (),
        fixed: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        *,
        source: OptionSource | None = None,
    ) -> T:
        """Build ``name`` from positional ``args``, ``fixed`` keywords (set by the caller) and the
        user's ``options``; errors about the options name ``source`` (file and key path).

        Unknown options list the accepted names (read from the factory's signature). A
        ConfigError a factory raises about an option's value gets the same prefix.
        """
        factory = self.get(name)
        fixed = dict(fixed or {})
        options = dict(options or {})
        where = source or _NO_SOURCE
        taken = sorted(set(fixed) & set(options))
        if taken:
            raise ConfigError(
                f"{where.prefix(taken[0])}option {taken[0]!r} of {self.kind} {name!r} is set by "
                "the experiment itself; set it at the top level instead"
            )
        self._check_call(name, factory, args, fixed, options, where)
        # Numbers written as text ("1e-3") become numbers; a value of the wrong kind is refused.
        options = coerce_options(
            factory, options, lambda k: f"{where.prefix(k)}option {k!r} of {self.kind} {name!r}")
        try:
            return factory(*args, **fixed, **options)
        except ConfigError as exc:
            if source is None or not options:
                raise
            raise type(exc)(f"{where.prefix(_named_option(str(exc), options))}{exc}") from exc
        except (TypeError, ValueError) as exc:
            # The call matched the signature, so this is an option value of the wrong kind
            # (``population_size: abc``) tripping up the factory's own code.
            if source is None or not options:
                raise
            raise ConfigError(
                f"{where.prefix(_named_option(str(exc), options))}bad value for {self.kind} "
                f"{name!r} (options {_short(options)}): {type(exc).__name__}: {exc}"
            ) from exc

    def _check_call(self, name: str, factory: Callable[..., T], args: Sequence[Any],
                    fixed: Mapping[str, Any], options: Mapping[str, Any],
                    where: OptionSource) -> None:
        """Raise a ConfigError when the factory cannot be called with these options."""
        try:
            sig = inspect.signature(factory)
        except (TypeError, ValueError):  # a builtin without a signature: let the call decide
            return
        params = sig.parameters
        takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
        named = [n for n, p in params.items()
                 if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        # What the caller passes itself (positionally or by keyword) is not the user's to set.
        accepted = [n for n in named[len(args):] if n not in fixed]
        bad = [k for k in options if k not in named] if not takes_any else []
        if bad:
            allowed_text = ", ".join(map(repr, accepted)) or "none"
            raise ConfigError(
                f"{where.prefix(bad[0])}bad options for {self.kind} {name!r}: unknown option(s) "
                f"{', '.join(map(repr, bad))}; allowed: {allowed_text}"
            )
        try:
            sig.bind(*args, **fixed, **options)
        except TypeError as exc:
            raise ConfigError(f"{where.prefix(None)}bad options for {self.kind} {name!r}: {exc}") from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        self._load_providers()
        return sorted(self._factories)

    def describe(self) -> dict[str, str]:
        """Name -> one-line description."""
        return {n: self._docs[n] for n in self.names()}

    def __contains__(self, name: object) -> bool:
        self._load_providers()
        return name in self._factories


# The public registries. They are typed loosely here because the concrete base classes import
# this module (registering is the first thing a space/strategy/evaluator module does). Each names
# the package that registers its built-in entries, imported on the first lookup, so that
# ``SPACES.names()`` is complete however little of nasforge was imported before.
SPACES: Registry[Any] = Registry("space", providers=("nasforge.spaces",))
STRATEGIES: Registry[Any] = Registry("strategy", providers=("nasforge.strategies",))
EVALUATORS: Registry[Any] = Registry("evaluator", providers=("nasforge.evaluators",))
SCHEDULERS: Registry[Any] = Registry("scheduler", providers=("nasforge.experiment.schedulers",))
PRUNERS: Registry[Any] = Registry("pruner", providers=("nasforge.experiment.pruners",))
#: Space name -> ``builder(space, **build_kwargs) -> Supernet``; ``SearchSpace.supernet()`` looks
#: its space up here. Register with :func:`nasforge.supernet.register_supernet`.
SUPERNETS: Registry[Any] = Registry("supernet", providers=("nasforge.supernet",))
