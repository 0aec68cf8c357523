"""Checks for the options of spaces and their ``build`` methods, shared by the space modules."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from nasforge.errors import ConfigError


def positive_int(label: str, value: Any) -> int:
    """``value`` if it is an int >= 1 (bools refused), else a ConfigError naming ``label``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{label} must be a positive integer, got {value!r}")
    return value


def flag(label: str, value: Any) -> bool:
    """``value`` if it is a bool, else a ConfigError naming ``label``."""
    if not isinstance(value, bool):
        raise ConfigError(f"{label} must be true or false, got {value!r}")
    return value


def reject_unknown(space: str, extra: Mapping[str, Any], names: Iterable[str]) -> None:
    """Raise a ConfigError listing the allowed build options when ``extra`` is not empty."""
    if extra:
        raise ConfigError(
            f"unknown build option(s) {', '.join(map(repr, sorted(extra)))} for space {space!r}; "
            f"allowed: {', '.join(map(repr, names))}"
        )
