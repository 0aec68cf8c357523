"""``--config FILE`` for commands whose settings are plain flags (``nasforge bench``).

A YAML file maps flag names (``seeds: 20``, ``budget-seconds: 12000`` or ``budget_seconds``) to
values; flags given on the command line win. Values are checked against the flag's type and
choices, and errors name the file, the key, the bad value and what is allowed.

A command opts in by giving its parser to :func:`add_config_flag` and leaving the defaults of
its flags at None (their real defaults go to :func:`apply_config`), so that "not given on the
command line" can be told apart from "given with the default value".
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from nasforge.errors import ConfigError

# Flags that make no sense in a settings file.
_SKIP = {"help", "config", "func", "_parser"}


def add_config_flag(parser: argparse.ArgumentParser) -> None:
    """Add ``--config FILE`` to ``parser`` and remember the parser for :func:`apply_config`."""
    parser.add_argument("--config", metavar="FILE",
                        help="YAML file of settings, keys named like the flags (flags override it)")
    parser.set_defaults(_parser=parser)


def _actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {a.dest: a for a in parser._actions if a.dest not in _SKIP}


def _flatten(value: Mapping[str, Any], prefix: str = "") -> list[str]:
    """``{"rea": {"population_size": 20}}`` -> ``["rea.population_size=20"]``."""
    from nasforge.utils.yamlio import dump_yaml

    out = []
    for k, v in value.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out += _flatten(v, key + ".")
        else:
            text = dump_yaml(v, default_flow_style=True).strip()
            out.append(f"{key}={text.removesuffix(chr(10) + '...').strip()}")
    return out


def _convert(action: argparse.Action, key: str, value: Any, where: str) -> Any:
    def bad(expected: str) -> ConfigError:
        return ConfigError(f"{where}: {key}: expected {expected}, got {value!r}")

    if isinstance(action, argparse._StoreTrueAction):
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if isinstance(action, argparse._AppendAction):
        if isinstance(value, Mapping):
            return _flatten(value)
        if isinstance(value, (list, tuple)):
            return [str(v) for v in value]
        return [str(value)]
    if action.type in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("an integer" if action.type is int else "a number")
        if action.type is int and float(value) != int(value):
            raise bad("an integer")
        value = action.type(value)
    elif isinstance(value, (list, tuple)):
        value = ",".join(str(v) for v in value)  # e.g. strategies: [random, rea]
    elif isinstance(value, Mapping):
        raise bad("a single value")
    elif value is not None:
        value = str(value)
    if action.choices is not None and value not in action.choices:
        allowed = ", ".join(repr(c) for c in action.choices)
        raise ConfigError(f"{where}: {key}: {value!r} is not allowed; allowed: {allowed}")
    return value


def apply_config(args: argparse.Namespace, defaults: Mapping[str, Any]) -> argparse.Namespace:
    """Fill the flags not given on the command line from ``args.config`` (when set), then from
    ``defaults``; returns ``args`` (modified in place)."""
    from nasforge.config import load_yaml_config

    parser: argparse.ArgumentParser | None = getattr(args, "_parser", None)
    path = getattr(args, "config", None)
    if path is not None:
        if parser is None:
            raise ConfigError("this command does not read --config files")
        actions = _actions(parser)
        for raw_key, value in load_yaml_config(path).items():
            key = str(raw_key).replace("-", "_")
            action = actions.get(key)
            if action is None:
                allowed = ", ".join(sorted(actions))
                raise ConfigError(f"{path}: unknown key {raw_key!r} (value {value!r}); "
                                  f"allowed keys: {allowed}")
            current = getattr(args, key, None)
            if current is None or current is False:  # not given on the command line
                setattr(args, key, _convert(action, str(raw_key), value, str(path)))
    for key, value in defaults.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    return args


__all__ = ["add_config_flag", "apply_config"]
