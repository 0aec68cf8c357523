"""Decisions: one named choice among a finite list of options, possibly conditional."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Union

from nasforge.errors import ConfigError

Value = Union[str, int, float, bool]  # noqa: UP007 - a runtime alias must work on Python 3.10
"""The type of one option: JSON scalars only, so architectures round-trip through JSON."""


@dataclass(frozen=True)
class Condition:
    """A decision exists only while another decision's value is one of ``values``.

    Example: in a macro space, ``layer9/op`` exists only when ``num_layers`` is 10 or more, i.e.
    ``Condition("num_layers", (10, 11, 12, ...))``.
    """

    decision: str
    values: tuple[Value, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.decision, str) or not self.decision:
            raise ConfigError(
                f"a condition needs the name of its parent decision, got {self.decision!r}"
            )
        if not isinstance(self.values, tuple):
            object.__setattr__(self, "values", tuple(self.values))
        if len(self.values) == 0:
            raise ConfigError(
                f"condition on {self.decision!r} has no values, so its decision could never exist"
            )

    def holds(self, assignment: Mapping[str, Value]) -> bool:
        """True when the parent decision is assigned and its value is one of ``values``."""
        return self.decision in assignment and assignment[self.decision] in self.values


@dataclass(frozen=True)
class Choice:
    """One named decision with a finite tuple of options.

    ``conditions`` (all must hold) make the decision conditional; a decision's conditions may only
    refer to decisions declared before it in the space, so one pass in order resolves them all.
    """

    name: str
    options: tuple[Value, ...]
    conditions: tuple[Condition, ...] = field(default=())
    doc: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("a decision needs a non-empty name")
        if not isinstance(self.options, tuple):
            object.__setattr__(self, "options", tuple(self.options))
        if len(self.options) == 0:
            raise ConfigError(f"decision {self.name!r} has no options")
        # Types first: an unhashable option would otherwise fail the repeat check with a TypeError.
        for option in self.options:
            if not isinstance(option, (str, int, float, bool)):
                raise ConfigError(
                    f"decision {self.name!r}: option {option!r} is a {type(option).__name__}; "
                    "options must be str, int, float or bool"
                )
        if len(set(self.options)) != len(self.options):
            raise ConfigError(f"decision {self.name!r} has repeated options: {self.options!r}")

    @property
    def size(self) -> int:
        """Number of options."""
        return len(self.options)

    def active(self, assignment: Mapping[str, Value]) -> bool:
        """Whether this decision exists given the values of earlier decisions."""
        return all(c.holds(assignment) for c in self.conditions)

    def index(self, value: Value) -> int:
        """Position of ``value`` among the options (raises a clear error when absent)."""
        for i, option in enumerate(self.options):
            # bool is an int in Python: keep True distinct from 1 so JSON round trips stay exact.
            if option == value and type(option) is type(value):
                return i
        for i, option in enumerate(self.options):
            if option == value and not isinstance(value, bool) and not isinstance(option, bool):
                return i
        raise ConfigError(
            f"{value!r} is not an option of decision {self.name!r}; allowed: "
            + ", ".join(repr(o) for o in self.options)
        )


def choice(name: str, options: Sequence[Value], *conditions: Condition, doc: str = "") -> Choice:
    """Shorthand for :class:`Choice` with a list of options."""
    return Choice(name, tuple(options), tuple(conditions), doc)
