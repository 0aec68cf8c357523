"""NAS-Bench-201 cell space (Dong & Yang, ICLR 2020, "NAS-Bench-201: Extending the Scope of
Reproducible Neural Architecture Search").

A cell is a DAG of 4 nodes; each of the 6 edges ``j -> i`` (j < i) carries one of 5 operations.
Decision ``edge_i_j`` is the op on the edge from node ``j`` to node ``i``; the official string
``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` lists node 1's, 2's and 3's inputs in that order.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from nasforge.errors import InvalidArchitectureError
from nasforge.registry import SPACES
from nasforge.space.architecture import Architecture
from nasforge.space.base import SearchSpace
from nasforge.space.decision import Choice

NB201_OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NB201_EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))


def edge_name(to: int, frm: int) -> str:
    """Decision name of the edge from node ``frm`` to node ``to``."""
    return f"edge_{to}_{frm}"


_NODE_RE = re.compile(r"\|([^|~]+)~(\d+)")


@SPACES.register("nb201")
class NB201Space(SearchSpace):
    """The 15,625-cell NAS-Bench-201 topology space (6 edges x 5 ops)."""

    name = "nb201"

    def _declare(self) -> Sequence[Choice]:
        return [Choice(edge_name(i, j), NB201_OPS) for i, j in NB201_EDGES]

    def to_string(self, arch: Architecture) -> str:
        """The official string form, e.g. ``|nor_conv_3x3~0|+|nor_conv_3x3~0|...|``."""
        self.validate(arch)
        nodes = []
        for i in (1, 2, 3):
            nodes.append("|" + "|".join(f"{arch[edge_name(i, j)]}~{j}" for j in range(i)) + "|")
        return "+".join(nodes)

    def from_string(self, text: str) -> Architecture:
        """Parse the official string form (clear error naming the bad part)."""
        text = text.strip()
        parts = text.split("+")
        if len(parts) != 3:
            raise InvalidArchitectureError(
                f"NAS-Bench-201 string {text!r} must have 3 nodes separated by '+', "
                "e.g. '|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|'"
            )
        values: dict[str, Any] = {}
        for i, part in enumerate(parts, start=1):
            found = _NODE_RE.findall(part)
            if not (part.startswith("|") and part.endswith("|")) or len(found) != i:
                raise InvalidArchitectureError(
                    f"node {i} of {text!r} is {part!r}; it must list {i} input(s) as '|op~j|'"
                )
            for k, (op, src) in enumerate(found):
                if int(src) != k:
                    raise InvalidArchitectureError(
                        f"node {i} of {text!r}: input {k} names node {src}; inputs must be listed as ~0..~{i - 1}"
                    )
                values[edge_name(i, k)] = op
        return self.make(values)

    def build(self, arch: Architecture, **kwargs: Any) -> Any:
        """Build the benchmark's network (implemented with the cell network in this module)."""
        raise NotImplementedError("NB201Space.build is being written")
