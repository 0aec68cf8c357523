"""YAML reading with YAML 1.2 numbers.

PyYAML resolves plain scalars by YAML 1.1, where a float needs a dot: ``1e-3`` and ``5E4`` are read
as *strings*, so ``lr: 1e-3`` in a settings file would reach the trainer as text. YAML 1.2 (and
every other YAML library) reads them as floats. :func:`load_yaml` is ``yaml.safe_load`` (no
arbitrary objects) with that one resolver added; every settings file and ``K=V`` option goes
through it.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

# YAML 1.2 core-schema floats that YAML 1.1 misses: an exponent without a dot (1e-3, -2E+5, 1e3).
_EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads exponent-only numbers as floats."""


class _Dumper(yaml.SafeDumper):
    """SafeDumper that quotes the text ``"1e-3"`` (else it would read back as a float)."""


for _cls in (_Loader, _Dumper):
    _cls.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT_FLOAT, list("-+0123456789"))


def load_yaml(text: str) -> Any:
    """Parse YAML text safely, reading ``1e-3`` as a float (raises ``yaml.YAMLError``)."""
    return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: no arbitrary objects


def dump_yaml(data: Any, **options: Any) -> str:
    """YAML text that :func:`load_yaml` reads back as ``data`` (``yaml.safe_dump`` otherwise)."""
    return str(yaml.dump(data, Dumper=_Dumper, **options))


__all__ = ["dump_yaml", "load_yaml"]
