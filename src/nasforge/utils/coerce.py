"""Options checked against their declared types: the schema of every ``K=V`` and YAML option.

Options reach factories from YAML files, ``--x-option K=V`` flags and Python. A number that
arrives as text (``"1e-3"``, a quoted YAML value) is converted to the declared ``int``/``float``;
a value that is not one (``C: eight``, ``lr: [1]``, ``epochs: 2.5``) is refused with a ConfigError
naming the option, the value and the type allowed, instead of a TypeError deep inside training.
Only lossless conversions are made (``2`` -> ``2.0``, ``"3"`` -> ``3``, ``4.0`` -> ``4``); anything
else is left to the factory's own checks, so a value is never silently changed.

The declared type is read from the annotation (a type, ``X | None``, or its string form under
``from __future__ import annotations``); annotations other than ``int``, ``float``, ``bool``,
``str`` and ``None`` unions are not checked here.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import re
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

from nasforge.errors import ConfigError

_SIMPLE: dict[str, type] = {"int": int, "float": float, "bool": bool, "str": str,
                            "None": type(None), "NoneType": type(None)}
_INT_TEXT = re.compile(r"^[-+]?[0-9][0-9_]*$")


def simple_types(annotation: Any) -> frozenset[type] | None:
    """The set of plain types an annotation allows, or None when it is anything richer."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return None
    if isinstance(annotation, str):
        text = annotation.strip()
        optional = text.startswith("Optional[") and text.endswith("]")
        parts = [p.strip() for p in (text[9:-1] if optional else text).split("|")]
        parts += ["None"] if optional else []
        if any(p not in _SIMPLE for p in parts):
            return None
        return frozenset(_SIMPLE[p] for p in parts)
    if annotation is None:
        return frozenset({type(None)})
    if isinstance(annotation, type):
        return frozenset({annotation}) if annotation in _SIMPLE.values() else None
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        out: set[type] = set()
        for arg in typing.get_args(annotation):
            sub = simple_types(arg)
            if sub is None:
                return None
            out |= sub
        return frozenset(out)
    return None


def _kind(allowed: frozenset[type]) -> str:
    names = [n for n, t in (("an integer", int), ("a number", float), ("true or false", bool),
                            ("text", str), ("null", type(None))) if t in allowed]
    if float in allowed and int in allowed:
        names.remove("an integer")
    return " or ".join(names)


def coerce_value(name: str, value: Any, allowed: frozenset[type] | None) -> Any:
    """``value`` converted to one of the ``allowed`` types, or a ConfigError naming ``name``."""
    if allowed is None or type(value) in allowed:
        return value
    numeric = bool(allowed & {int, float})
    bad = ConfigError(f"{name} must be {_kind(allowed)}; got {value!r}")
    if value is None:
        raise bad  # null for a setting that has no "unset" meaning
    if isinstance(value, bool):
        raise bad  # True is an int to Python, never a number to a user
    if str in allowed and not numeric:
        return value  # text fields take their value as written (the factory checks it)
    if isinstance(value, str) and numeric:
        text = value.strip()
        try:
            number: int | float = int(text) if _INT_TEXT.match(text) else float(text)
        except ValueError:
            if str in allowed:  # e.g. ``int | str`` taking "auto"
                return value
            raise bad from None
        return coerce_value(name, number, allowed)
    if isinstance(value, int) and float in allowed:
        return float(value)
    if isinstance(value, float) and int in allowed and math.isfinite(value) and value.is_integer():
        return int(value)
    if str in allowed:
        return value
    raise bad


def coerce_options(factory: Callable[..., Any], options: Mapping[str, Any],
                   label: Callable[[str], str] = str) -> dict[str, Any]:
    """``options`` checked against the annotations of ``factory``'s keyword parameters.

    ``label(key)`` names an option in error messages (e.g. with the file it came from).
    """
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return dict(options)
    return {k: coerce_value(label(k), v, simple_types(params[k].annotation) if k in params else None)
            for k, v in options.items()}


def coerce_fields(obj: Any) -> None:
    """Convert a dataclass instance's fields in place to their declared plain types."""
    for field in dataclasses.fields(obj):
        value = getattr(obj, field.name)
        new = coerce_value(field.name, value, simple_types(field.type))
        if new is not value:
            setattr(obj, field.name, new)


__all__ = ["coerce_fields", "coerce_options", "coerce_value", "simple_types"]
