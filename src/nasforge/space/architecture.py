"""Architecture: an immutable, hashable value naming one point of a search space."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from nasforge.errors import ConfigError
from nasforge.space.decision import Value


class Architecture(Mapping[str, Value]):
    """A frozen mapping ``decision name -> chosen option`` plus the name of its space.

    Two architectures are equal when they come from the same space and make the same choices;
    they hash alike, so they can be dictionary keys and set members. An Architecture is a value,
    never a live module: build one with ``space.build(arch)``.
    """

    __slots__ = ("_hash", "_space", "_values")
    _hash: int
    _space: str
    _values: dict[str, Value]

    def __init__(self, space: str, values: Mapping[str, Value]) -> None:
        for key, value in values.items():
            if not isinstance(key, str):
                raise ConfigError(f"decision names must be strings, not {key!r}")
            if not isinstance(value, (str, int, float, bool)):
                raise ConfigError(f"decision {key!r} has value {value!r}; values must be JSON scalars")
        object.__setattr__(self, "_space", str(space))
        object.__setattr__(self, "_values", dict(values))
        # Type is part of the key so that True and 1 stay different choices.
        items = frozenset((k, type(v).__name__, v) for k, v in self._values.items())
        object.__setattr__(self, "_hash", hash((self._space, items)))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Architecture is immutable; use .replace(...) to make a changed copy")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Architecture is immutable")

    @property
    def space(self) -> str:
        """Name of the search space this architecture belongs to."""
        return self._space

    def __getitem__(self, key: str) -> Value:
        try:
            return self._values[key]
        except KeyError:
            raise KeyError(f"architecture of space {self._space!r} has no decision {key!r}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Architecture):
            return NotImplemented
        if self._hash != other._hash or self._space != other._space:
            return False
        if self._values.keys() != other._values.keys():
            return False
        return all(
            type(v) is type(other._values[k]) and v == other._values[k] for k, v in self._values.items()
        )

    def __hash__(self) -> int:
        return self._hash

    def __reduce__(self) -> tuple[type[Architecture], tuple[str, dict[str, Value]]]:
        # Pickle through __init__ (the default would call the blocked __setattr__), so trial jobs
        # can travel to worker processes.
        return (Architecture, (self._space, dict(self._values)))

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self._values.items())
        return f"Architecture({self._space!r}, {{{inner}}})"

    def replace(self, **changes: Value) -> Architecture:
        """A copy with some decisions changed (not validated: pass it through ``space.validate``)."""
        values = dict(self._values)
        values.update(changes)
        return Architecture(self._space, values)

    def with_values(self, values: Mapping[str, Value]) -> Architecture:
        """A new architecture of the same space with exactly ``values``."""
        return Architecture(self._space, values)

    def to_dict(self) -> dict[str, Any]:
        """``{"space": name, "choices": {...}}``: the JSON form."""
        return {"space": self._space, "choices": dict(self._values)}

    def to_json(self) -> str:
        """Compact, key-ordered JSON (stable text for storage and hashing)."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Architecture:
        """Inverse of :meth:`to_dict`, with a clear error for malformed input."""
        if not isinstance(data, Mapping) or "space" not in data or "choices" not in data:
            raise ConfigError(
                "an architecture's JSON must be an object with keys 'space' and 'choices', "
                f"got {data!r:.200}"
            )
        choices = data["choices"]
        if not isinstance(choices, Mapping):
            raise ConfigError(f"'choices' must be an object, got {choices!r:.200}")
        return cls(str(data["space"]), dict(choices))

    @classmethod
    def from_json(cls, text: str) -> Architecture:
        """Inverse of :meth:`to_json`."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"not valid architecture JSON: {exc}") from exc
        return cls.from_dict(data)
