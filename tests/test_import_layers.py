"""The package's layers point one way (the design map: ``space``/``spaces``/``ops`` -> strategies,
evaluators, metrics, train, data -> experiment -> oneshot, report, export, cli).

Every module under ``src/nasforge`` is parsed with :mod:`ast`; every ``import`` it makes of another
nasforge module counts, at the top of the file *and* inside functions, methods and
``if TYPE_CHECKING:`` blocks. A module may import modules of its own layer or of a lower one,
never of a higher one, not even lazily.

The layers, lowest first:

0. **core** -- ``errors``, ``utils``, ``registry``, ``trial``, ``space``, ``spaces``, ``ops``:
   decisions, architectures, the search spaces and their operations, the name registries.
1. **components** -- ``strategies``, ``evaluators``, ``metrics``, ``train``, ``data``,
   ``proxies``, ``benchmarks``, ``pareto``, ``supernet``: the parts an experiment is made of, each
   usable on its own (``supernet`` holds the weight-shared networks of the spaces, which the
   weight-sharing evaluator and the one-shot methods share).
2. **experiment** -- ``experiment`` (loop, schedulers, pruners, storage, executors, selection).
3. **applications** -- ``oneshot``, ``report``, ``export``, ``cli``, ``config``, ``testing``
   and the package facade ``nasforge/__init__.py``: what drives experiments or presents them.

Inside a layer, packages may use each other, but not in a cycle (``test_no_package_cycles``).

Registries may load their built-in providers by module path (``Registry(..., providers=...)``):
that is data, like an entry point, and not an import of the layer above.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "nasforge"

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("core", ("errors", "utils", "registry", "trial", "space", "spaces", "ops")),
    ("components", ("strategies", "evaluators", "metrics", "train", "data", "proxies", "benchmarks",
                    "pareto", "supernet")),
    ("experiment", ("experiment",)),
    ("applications", ("oneshot", "report", "export", "cli", "config", "testing", "__main__", "")),
]
LAYER_OF: dict[str, int] = {part: i for i, (_, parts) in enumerate(LAYERS) for part in parts}


def module_names() -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package ``__init__``)."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        modules[".".join(parts)] = (path, is_package)
    return modules


MODULES = module_names()


def top_part(module: str) -> str:
    """``nasforge.spaces.nb201`` -> ``spaces``; the facade ``nasforge`` -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def imported_modules(module: str, is_package: bool, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The nasforge modules one import statement names (``from a import b``: ``a.b`` if a module)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join([*base, *([node.module] if node.module else [])])
    else:
        target = node.module or ""
    names = []
    for alias in node.names:
        candidate = f"{target}.{alias.name}"
        names.append(candidate if candidate in MODULES else target)
    return names


def import_edges() -> list[tuple[str, str, int]]:
    """(importer, imported, line) for every import of a nasforge module, wherever it sits."""
    edges = []
    for module, (path, is_package) in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in imported_modules(module, is_package, node):
                    if target == "nasforge" or target.startswith("nasforge."):
                        edges.append((module, target, node.lineno))
    return edges


def test_every_module_has_a_layer() -> None:
    unassigned = sorted({top_part(m) for m in MODULES} - set(LAYER_OF))
    assert not unassigned, (
        f"packages/modules without a layer: {unassigned}; add them to LAYERS in {Path(__file__).name} "
        "and to the package table of docs/architecture.md"
    )


def test_imports_point_down() -> None:
    upward: dict[str, None] = {}  # ordered set
    for importer, imported, line in import_edges():
        src, dst = LAYER_OF.get(top_part(importer)), LAYER_OF.get(top_part(imported))
        if src is None or dst is None or dst <= src:
            continue
        upward[f"{importer} (line {line}, layer {LAYERS[src][0]}) imports {imported} (layer {LAYERS[dst][0]})"] = None
    assert not upward, "imports that point to a higher layer:\n  " + "\n  ".join(upward)


def test_no_package_cycles() -> None:
    graph: dict[str, set[str]] = {}
    for importer, imported, _ in import_edges():
        a, b = top_part(importer), top_part(imported)
        if a and b and a != b:  # the facade may import anything
            graph.setdefault(a, set()).add(b)
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt == path[0]:
                cycles.append(" -> ".join([*path, nxt]))
            elif nxt not in path and nxt > path[0]:  # report each cycle once, from its smallest name
                visit(nxt, [*path, nxt])

    for start in sorted(graph):
        visit(start, [start])
    assert not cycles, "packages that import each other in a cycle:\n  " + "\n  ".join(cycles)


@pytest.mark.parametrize("module", ["nasforge", "nasforge.space", "nasforge.registry", "nasforge.trial"])
def test_core_imports_without_torch(module: str) -> None:
    code = f"import sys, {module}; assert 'torch' not in sys.modules, sorted(m for m in sys.modules if 'nasforge' in m)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
