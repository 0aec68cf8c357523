"""The declared SearchSpace hooks: their types on every registered space, their defaults on a space
that defines none, and that no code outside ``nasforge/spaces/`` tells spaces apart by name.

Hooks: ``options()``, ``is_degenerate(arch)``, ``graph(arch, part)``, ``graph_parts``,
``builtin_residuals`` (and ``small_build_kwargs``, ``example_input``, ``reference_architecture``).
Tools call them directly, so a space draws and describes itself.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import nasforge
from nasforge.errors import ConfigError
from nasforge.registry import SPACES
from nasforge.report.diagrams import ArchGraph, arch_graph, draw
from nasforge.space import Architecture, Choice, SearchSpace
from nasforge.space.checks import check_degenerate, check_identity

SPACE_NAMES = nasforge.list_spaces()


# ---------------------------------------------------------------------------- registered spaces
@pytest.mark.parametrize("name", SPACE_NAMES)
def test_hooks_of_registered_spaces_return_the_declared_types(name: str) -> None:
    space = nasforge.create_space(name)
    options = space.options()
    # Registered spaces are re-created from their options (reports, checkpoints): they know them.
    assert isinstance(options, dict)
    json.dumps(options)  # plain JSON data
    again = SPACES.create(name, **options)
    assert again.options() == options and again.size() == space.size()

    assert isinstance(space.builtin_residuals, bool)
    assert isinstance(space.graph_parts, tuple)
    assert all(isinstance(p, str) and p for p in space.graph_parts)
    assert all(isinstance(k, str) for k in space.small_build_kwargs)

    for seed in range(3):
        arch = space.sample(seed)
        degenerate = space.is_degenerate(arch)
        assert degenerate is None or isinstance(degenerate, bool)
        for part in space.graph_parts or (None,):
            graph = space.graph(arch, part=part)
            assert graph is None or isinstance(graph, dict)
            if graph is not None:
                drawn = ArchGraph.from_dict(graph)
                assert drawn.nodes and drawn.title
    reference = space.reference_architecture()
    assert reference is None or space.is_valid(reference)


def test_the_builtin_spaces_draw_themselves() -> None:
    # Every space shipped with nasforge can be drawn, and says which parts it has.
    for name in SPACE_NAMES:
        space = nasforge.create_space(name)
        arch = space.sample(0)
        for part in space.graph_parts or (None,):
            assert space.graph(arch, part=part) is not None, (name, part)
    assert nasforge.create_space("darts").graph_parts == ("normal", "reduce")
    assert nasforge.create_space("nb201").graph_parts == ()
    nb201 = nasforge.create_space("nb201")
    with pytest.raises(ConfigError, match="no parts; got part 'reduce'"):
        nb201.graph(nb201.sample(0), part="reduce")


# ---------------------------------------------------------------------------- defaults
class Minimal(SearchSpace):
    """A space that defines only its decisions and networks: every hook has its default."""

    name = "minimal_hooks"

    def _declare(self) -> Sequence[Choice]:
        return [Choice("width", (4, 8)), Choice("act", ("relu", "tanh"))]

    def build(self, arch: Architecture, **kwargs: Any) -> Any:
        from torch import nn

        act = nn.ReLU() if arch["act"] == "relu" else nn.Tanh()
        width = int(arch["width"])
        return nn.Sequential(nn.Conv2d(3, width, 3, padding=1), act, nn.AdaptiveAvgPool2d(1),
                             nn.Flatten(), nn.Linear(width, 10))


class WithOptions(Minimal):
    """A constructor option but no ``options()``: its options cannot be read back."""

    name = "minimal_with_options"

    def __init__(self, wide: bool = False) -> None:
        self.wide = wide
        super().__init__()


class Drawable(Minimal):
    """Only the ``graph`` hook: one picture per architecture."""

    name = "minimal_drawable"

    def graph(self, arch: Architecture, part: str | None = None) -> dict[str, Any]:
        return {"title": f"width {arch['width']}", "layout": "chain",
                "nodes": [{"id": "in", "kind": "input"}, {"id": "conv", "label": "conv 3x3"},
                          {"id": "out", "kind": "output"}],
                "edges": [{"src": "in", "dst": "conv"},
                          {"src": "conv", "dst": "out", "label": str(arch["act"])}]}


def test_a_space_without_hooks_gets_the_defaults() -> None:
    space = Minimal()
    arch = space.sample(0)
    assert space.options() == {}  # no constructor options
    assert WithOptions().options() is None  # options it cannot report
    assert space.is_degenerate(arch) is None  # no rule of its own: checks run the network
    assert space.graph(arch) is None
    assert space.graph_parts == ()
    assert space.builtin_residuals is False
    assert space.small_build_kwargs == {}
    assert space.reference_architecture() is None
    assert tuple(space.example_input(2, 0).shape) == (2, 3, 32, 32)


def test_design_checks_use_the_defaults() -> None:
    space = Minimal()
    archs = [space.sample(s) for s in range(2)]
    found = check_degenerate(space, archs, None, seed=0)
    assert found.level == "ok" and found.data["method"] == "two-input forward"
    assert check_identity(space).level == "warn"


def test_a_space_without_graph_cannot_be_drawn_but_says_so(tmp_path: Path) -> None:
    space = Minimal()
    with pytest.raises(ConfigError, match="'minimal_hooks' cannot be drawn"):
        arch_graph(space, space.sample(0))
    drawable = Drawable()
    graph = arch_graph(drawable, drawable.sample(0))
    assert graph.layout == "chain" and [n.id for n in graph.nodes] == ["in", "conv", "out"]
    assert draw(drawable, drawable.sample(0), tmp_path / "d.svg")[0].is_file()


def _run(db: Path, space: SearchSpace) -> Path:
    def fn(arch: Architecture, ctx: Any) -> dict[str, float]:
        return {"accuracy": float(arch["width"]) + (arch["act"] == "relu")}

    strategy = nasforge.create_strategy("random", space, seed=0)
    evaluator = nasforge.create_evaluator("function", fn=fn)
    nasforge.Experiment(space, strategy, evaluator, budget=nasforge.Budget(max_trials=4),
                        storage=str(db)).run()
    return db


@pytest.mark.parametrize("cls", [Minimal, Drawable])
def test_reports_show_custom_spaces(cls: type[SearchSpace], tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from nasforge.cli.main import main
    from nasforge.report.html import write_report

    monkeypatch.setitem(SPACES._factories, cls.name, cls)
    db = _run(tmp_path / "custom.db", cls())
    files = write_report(db, tmp_path / "custom.html", top=2, diagrams=2)
    html = files.html.read_text()
    assert "Top 2 architectures" in html
    drawn = [p.name for p in files.images if p.name.startswith("arch")]
    if cls is Drawable:
        assert drawn == ["arch1.png", "arch2.png"]  # no parts: one picture each
        assert "architecture diagrams" not in files.skipped
    else:
        assert drawn == []
        assert "cannot be drawn" in files.skipped["architecture diagrams"]
    assert main(["report", str(db), "-o", str(tmp_path / "cli.html"), "--quiet"]) == 0
    assert (tmp_path / "cli.html").is_file()


# ---------------------------------------------------------------------------- no name checks
SRC = Path(nasforge.__file__).resolve().parent
# Code that may compare a space's name with a built-in one, and why.
ALLOWED: dict[str, str] = {
    # The 'nb201' evaluator looks results up in the NAS-Bench-201 table, which has entries only for
    # the 'nb201' space; it refuses any other space (a benchmark table, not space behaviour).
    "evaluators/tabular.py": "benchmark table of one space",
}


def _is_space_name(node: ast.expr) -> bool:
    """``x.name`` / ``x.space_name`` / ``space_name``: an expression naming a space."""
    if isinstance(node, ast.Attribute):
        return node.attr in ("name", "space_name")
    return isinstance(node, ast.Name) and node.id == "space_name"


def _builtin_names(node: ast.expr, names: frozenset[str]) -> set[str]:
    """The built-in space names ``node`` spells: a string, or a tuple/list/set of strings."""
    items = node.elts if isinstance(node, (ast.Tuple, ast.List, ast.Set)) else [node]
    return {i.value for i in items
            if isinstance(i, ast.Constant) and isinstance(i.value, str) and i.value in names}


def name_checks(source: str, names: frozenset[str]) -> list[tuple[int, str]]:
    """Line and name of every comparison of a space's name with a built-in space name."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        if not any(_is_space_name(o) for o in operands):
            continue
        for o in operands:
            found += [(node.lineno, n) for n in sorted(_builtin_names(o, names))]
    return sorted(found)


NAMES = frozenset(SPACE_NAMES) | {"nb201", "darts"}


def test_the_name_check_finds_what_it_should() -> None:
    bad = ('if space.name == "nb201":\n    pass\n'
           'parts = ("a",) if space.name == "darts" else ()\n'
           'ok = exp.space_name in ("macro", "x")\n'
           'other = arch.space_name != "elastic"\n')
    assert name_checks(bad, NAMES) == [(1, "nb201"), (3, "darts"), (4, "macro"), (5, "elastic")]
    fine = ('SPACES.create("nb201")\nif args.evaluator == "nb201":\n    pass\n'
            'table = {"darts": 1}[key]\nif space.name == other.name:\n    pass\n')
    assert name_checks(fine, NAMES) == []


def test_no_code_outside_spaces_checks_a_space_name() -> None:
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel.startswith("spaces/") or rel in ALLOWED:
            continue
        offenders += [f"{rel}:{line} compares a space's name with {name!r}"
                      for line, name in name_checks(path.read_text(encoding="utf-8"), NAMES)]
    assert not offenders, ("code outside nasforge/spaces/ must not tell spaces apart by name; "
                           "declare a SearchSpace hook instead:\n" + "\n".join(offenders))
