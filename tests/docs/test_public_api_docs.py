"""Every public name of ``nasforge`` has a docstring, and library code never prints."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import nasforge

SRC = Path(nasforge.__file__).resolve().parent


def test_every_public_name_has_a_docstring() -> None:
    missing = []
    for name in nasforge.__all__:
        if name == "__version__":
            continue
        obj = getattr(nasforge, name)
        if inspect.isclass(obj):
            doc = obj.__dict__.get("__doc__")  # its own, not one inherited from a base class
        elif callable(obj):
            doc = obj.__doc__
        else:  # an instance such as the registries: its class says what it is
            doc = type(obj).__doc__ if type(obj).__module__.startswith("nasforge") else None
        if not (doc and doc.strip()):
            missing.append(name)
    assert not missing, f"public names without a docstring: {missing}"


def test_library_code_does_not_print() -> None:
    """Libraries log (logging.getLogger("nasforge...")); only the command line prints."""
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if "cli" in path.relative_to(SRC).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id == "print"):
                offenders.append(f"{path.relative_to(SRC.parent)}:{node.lineno}")
    assert not offenders, f"print() in library code (use logging): {offenders}"
