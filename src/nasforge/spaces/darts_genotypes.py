"""DARTS-style genotypes: the human form of a two-cell architecture, its text codec, and the
published cells.

A :class:`Genotype` lists, for the normal and the reduction cell, two ``(op, input)`` edges per
intermediate node (node ``i`` of a cell may read nodes ``0 .. i-1``; nodes 0 and 1 are the outputs
of the two previous cells) and which nodes are concatenated into the cell's output. Its text form
is the one printed by the DARTS code (Liu et al., ICLR 2019)::

    Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=[2, 3, 4, 5],
             reduce=[...], reduce_concat=[2, 3, 4, 5])

:func:`parse_genotype` reads that text without ``eval``: it parses the expression with
:mod:`ast` and accepts only literals (and ``range(a, b)`` for the concat lists, which the DARTS code
prints), so a malicious string can never run code.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from typing import NamedTuple

from nasforge.errors import InvalidArchitectureError, unknown

Edge = tuple[str, int]
"""One incoming edge of a node: ``(op name, index of the input node)``."""


class Genotype(NamedTuple):
    """A two-cell architecture in DARTS' form (edges are listed two per intermediate node)."""

    normal: tuple[Edge, ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[Edge, ...]
    reduce_concat: tuple[int, ...]

    def __repr__(self) -> str:
        return format_genotype(self)

    def nodes(self, cell: str) -> list[tuple[Edge, Edge]]:
        """The edges of ``cell`` (``"normal"`` or ``"reduce"``) grouped in pairs, one per node."""
        edges = self.cell_edges(cell)
        return [(edges[k], edges[k + 1]) for k in range(0, len(edges) - 1, 2)]

    def cell_edges(self, cell: str) -> tuple[Edge, ...]:
        """The flat edge list of ``cell``."""
        if cell == "normal":
            return self.normal
        if cell == "reduce":
            return self.reduce
        raise unknown("cell", cell, ("normal", "reduce"))

    def concat(self, cell: str) -> tuple[int, ...]:
        """The concatenated nodes of ``cell``."""
        if cell == "normal":
            return self.normal_concat
        if cell == "reduce":
            return self.reduce_concat
        raise unknown("cell", cell, ("normal", "reduce"))


def make_genotype(
    normal: Sequence[Sequence[object]],
    normal_concat: Sequence[int],
    reduce: Sequence[Sequence[object]],
    reduce_concat: Sequence[int],
) -> Genotype:
    """Build a :class:`Genotype` from lists (as written in papers), checking the shapes."""
    return Genotype(
        _edges("normal", normal),
        _concat("normal_concat", normal_concat),
        _edges("reduce", reduce),
        _concat("reduce_concat", reduce_concat),
    )


def _edges(field: str, value: object) -> tuple[Edge, ...]:
    if not isinstance(value, (list, tuple)):
        raise InvalidArchitectureError(
            f"genotype field {field!r} must be a list of (op, input) pairs"
        )
    out: list[Edge] = []
    for item in value:
        if (
            not isinstance(item, (list, tuple))
            or len(item) != 2
            or not isinstance(item[0], str)
            or not isinstance(item[1], int)
            or isinstance(item[1], bool)
        ):
            raise InvalidArchitectureError(
                f"genotype field {field!r}: {item!r} is not an (op name, input index) pair"
            )
        out.append((item[0], item[1]))
    if not out or len(out) % 2:
        raise InvalidArchitectureError(
            f"genotype field {field!r} has {len(out)} edges; it needs two per node "
            "(an even number > 0)"
        )
    return tuple(out)


def _concat(field: str, value: object) -> tuple[int, ...]:
    if isinstance(value, range):
        value = list(value)
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise InvalidArchitectureError(f"genotype field {field!r} must be a list of node indices")
    return tuple(value)


def format_genotype(genotype: Genotype) -> str:
    """The DARTS text form, with lists (``normal_concat=[2, 3, 4, 5]``)."""

    def edges(es: Sequence[Edge]) -> str:
        return "[" + ", ".join(f"({op!r}, {j})" for op, j in es) + "]"

    def ints(xs: Sequence[int]) -> str:
        return "[" + ", ".join(str(x) for x in xs) + "]"

    return (
        f"Genotype(normal={edges(genotype.normal)}, normal_concat={ints(genotype.normal_concat)}, "
        f"reduce={edges(genotype.reduce)}, reduce_concat={ints(genotype.reduce_concat)})"
    )


_FIELDS = Genotype._fields


def _literal(node: ast.expr, field: str) -> object:
    """A literal value, or ``range(a, b)`` with int literals (what DARTS prints for concat)."""
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "range"
        and not node.keywords
        and 1 <= len(node.args) <= 3
    ):
        bounds = [_literal(a, field) for a in node.args]
        ints = [b for b in bounds if isinstance(b, int) and not isinstance(b, bool)]
        if len(ints) == len(bounds):
            return list(range(*ints))
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError) as exc:
        raise InvalidArchitectureError(
            f"genotype field {field!r} must be a literal list, got {ast.unparse(node)!r:.120}"
        ) from exc


def parse_genotype(text: str) -> Genotype:
    """Parse ``Genotype(normal=[...], normal_concat=[...], reduce=[...], reduce_concat=[...])``.

    Fields may be given by keyword (any order) or positionally; ``range(2, 6)`` is accepted for
    the concat lists. Nothing is evaluated: only literals are read.
    """
    source = text.strip()
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        raise InvalidArchitectureError(
            f"cannot parse genotype {source!r:.200}: {exc.msg}"
        ) from None
    call = tree.body
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)
            and call.func.id == "Genotype"):
        raise InvalidArchitectureError(
            f"a genotype must look like 'Genotype(normal=[...], normal_concat=[...], reduce=[...], "
            f"reduce_concat=[...])' or be a published name ({', '.join(PUBLISHED)}); "
            f"got {source!r:.200}"
        )
    values: dict[str, object] = {}
    if len(call.args) > len(_FIELDS):
        raise InvalidArchitectureError(
            f"Genotype takes {len(_FIELDS)} fields, got {len(call.args)}"
        )
    for field, arg in zip(_FIELDS, call.args):
        values[field] = _literal(arg, field)
    for kw in call.keywords:
        if kw.arg not in _FIELDS:
            raise InvalidArchitectureError(
                f"unknown genotype field {kw.arg!r}; allowed: {', '.join(_FIELDS)}"
            )
        if kw.arg in values:
            raise InvalidArchitectureError(f"genotype field {kw.arg!r} is given twice")
        values[kw.arg] = _literal(kw.value, kw.arg)
    missing = [f for f in _FIELDS if f not in values]
    if missing:
        raise InvalidArchitectureError(f"genotype lacks field(s) {', '.join(missing)}")
    return make_genotype(
        values["normal"],  # type: ignore[arg-type]
        values["normal_concat"],  # type: ignore[arg-type]
        values["reduce"],  # type: ignore[arg-type]
        values["reduce_concat"],  # type: ignore[arg-type]
    )


# ---------------------------------------------------------------------------- published cells
# The cells below are reported in the DARTS paper (Liu et al., ICLR 2019, Fig. 4/5 and its code
# release): NASNet-A (Zoph et al., CVPR 2018) and AmoebaNet-A (Real et al., AAAI 2019) as
# re-expressed there with five intermediate nodes, which may read the same input twice and whose
# output concatenates the nodes no other node reads ("loose ends").

NASNET = make_genotype(
    normal=[
        ("sep_conv_5x5", 1), ("sep_conv_3x3", 0),
        ("sep_conv_5x5", 0), ("sep_conv_3x3", 0),
        ("avg_pool_3x3", 1), ("skip_connect", 0),
        ("avg_pool_3x3", 0), ("avg_pool_3x3", 0),
        ("sep_conv_3x3", 1), ("skip_connect", 1),
    ],
    normal_concat=[2, 3, 4, 5, 6],
    reduce=[
        ("sep_conv_5x5", 1), ("sep_conv_7x7", 0),
        ("max_pool_3x3", 1), ("sep_conv_7x7", 0),
        ("avg_pool_3x3", 1), ("sep_conv_5x5", 0),
        ("skip_connect", 3), ("avg_pool_3x3", 2),
        ("sep_conv_3x3", 2), ("max_pool_3x3", 1),
    ],
    reduce_concat=[4, 5, 6],
)

AMOEBANET = make_genotype(
    normal=[
        ("avg_pool_3x3", 0), ("max_pool_3x3", 1),
        ("sep_conv_3x3", 0), ("sep_conv_5x5", 2),
        ("sep_conv_3x3", 0), ("avg_pool_3x3", 3),
        ("sep_conv_3x3", 1), ("skip_connect", 1),
        ("skip_connect", 0), ("avg_pool_3x3", 1),
    ],
    normal_concat=[4, 5, 6],
    reduce=[
        ("avg_pool_3x3", 0), ("sep_conv_3x3", 1),
        ("max_pool_3x3", 0), ("sep_conv_7x7", 2),
        ("sep_conv_7x7", 0), ("avg_pool_3x3", 1),
        ("max_pool_3x3", 0), ("max_pool_3x3", 1),
        ("conv_7x1_1x7", 0), ("sep_conv_3x3", 5),
    ],
    reduce_concat=[3, 4, 6],
)

# DARTS' own cells: first-order (V1) and second-order (V2) search, CIFAR-10.
DARTS_V1 = make_genotype(
    normal=[
        ("sep_conv_3x3", 1), ("sep_conv_3x3", 0),
        ("skip_connect", 0), ("sep_conv_3x3", 1),
        ("skip_connect", 0), ("sep_conv_3x3", 1),
        ("sep_conv_3x3", 0), ("skip_connect", 2),
    ],
    normal_concat=[2, 3, 4, 5],
    reduce=[
        ("max_pool_3x3", 0), ("max_pool_3x3", 1),
        ("skip_connect", 2), ("max_pool_3x3", 0),
        ("max_pool_3x3", 0), ("skip_connect", 2),
        ("skip_connect", 2), ("avg_pool_3x3", 0),
    ],
    reduce_concat=[2, 3, 4, 5],
)

DARTS_V2 = make_genotype(
    normal=[
        ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
        ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
        ("sep_conv_3x3", 1), ("skip_connect", 0),
        ("skip_connect", 0), ("dil_conv_3x3", 2),
    ],
    normal_concat=[2, 3, 4, 5],
    reduce=[
        ("max_pool_3x3", 0), ("max_pool_3x3", 1),
        ("skip_connect", 2), ("max_pool_3x3", 1),
        ("max_pool_3x3", 0), ("skip_connect", 2),
        ("skip_connect", 2), ("max_pool_3x3", 1),
    ],
    reduce_concat=[2, 3, 4, 5],
)

PUBLISHED: dict[str, Genotype] = {
    "DARTS_V1": DARTS_V1,
    "DARTS_V2": DARTS_V2,
    "DARTS": DARTS_V2,
    "NASNet": NASNET,
    "AmoebaNet": AMOEBANET,
}
"""Published cells by name (``"DARTS"`` is DARTS_V2, as in the DARTS code)."""


def published(name: str) -> Genotype:
    """A published genotype by name (case-insensitive); error lists the names."""
    for key, genotype in PUBLISHED.items():
        if key.lower() == name.strip().lower():
            return genotype
    raise unknown("published genotype", name, PUBLISHED)


def is_published_name(text: str) -> bool:
    """Whether ``text`` names a published genotype."""
    return any(key.lower() == text.strip().lower() for key in PUBLISHED)


__all__ = [
    "AMOEBANET",
    "DARTS_V1",
    "DARTS_V2",
    "NASNET",
    "PUBLISHED",
    "Edge",
    "Genotype",
    "format_genotype",
    "is_published_name",
    "make_genotype",
    "parse_genotype",
    "published",
]
