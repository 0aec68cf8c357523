"""The NAS-Bench-201 supernet: the benchmark's network with every cell edge a mixed op.

It is built from the derived network itself (:class:`nasforge.spaces.nb201.NB201Network`): the
network of any architecture is made and each cell edge is replaced by a :class:`MixedOp` holding
all five candidates built by the operation registry with the edge's own channels and stride. So the
stem, the residual blocks, the classifier and the module names are those of ``space.build(arch)``
by construction, and extracting a sub-network is a rename of the chosen candidates' weights.

All cells share one set of architecture logits per edge (the architecture is one cell), as in the
NAS-Bench-201 paper's one-shot baselines (Dong & Yang, ICLR 2020).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from nasforge.errors import ConfigError
from nasforge.ops.cells import DAGCell
from nasforge.ops.registry import create_op
from nasforge.space.architecture import Architecture
from nasforge.spaces.nb201 import NB201_EDGES, NB201_OPS, NB201Space, edge_name
from nasforge.supernet.base import Supernet, check_arch, register_supernet
from nasforge.supernet.mixed import MixedOp

_BUILD_OPTIONS = ("num_classes", "C", "N", "in_channels", "affine", "checkpointing")


class NB201Supernet(Supernet):
    """Weight-sharing NAS-Bench-201 network; decision keys are the space's ``edge_i_j`` names.

    ``affine`` sets the candidate ops' BatchNorm affinity. It defaults to False, as in the
    benchmark's weight-sharing baselines (and DARTS' search network): with architecture weights
    scaling every op, a learnable BN scale would only duplicate them.
    """

    root = "net."

    def __init__(self, space: NB201Space, affine: bool = False, **build_kwargs: Any) -> None:
        super().__init__(space, {**build_kwargs})
        self.affine = bool(affine)
        reference = space.make({edge_name(i, j): "skip_connect" for i, j in NB201_EDGES})
        self.net: nn.Module = space.build(reference, **build_kwargs)
        for cell in self.net.modules():
            if not isinstance(cell, DAGCell):
                continue
            for to, frm, key in cell.plan:
                c_in, stride = (cell.c_in, cell.stride) if frm == 0 else (cell.c_out, 1)
                cell.ops[key] = MixedOp(
                    edge_name(to, frm),
                    {op: create_op(op, c_in, cell.c_out, stride, self.affine) for op in NB201_OPS},
                )
        self._init_alphas()

    def cells(self) -> list[nn.Module]:
        return [m for m in self.net.modules() if isinstance(m, DAGCell)]

    def body(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x)
        return out

    def path_of(self, arch: Architecture) -> dict[str, str]:
        """Each edge's op: the path is the architecture itself."""
        check_arch(self.space, arch)
        return {edge_name(i, j): str(arch[edge_name(i, j)]) for i, j in NB201_EDGES}

    def derive(self, exclude_none: bool = False, **options: Any) -> Architecture:
        """Argmax of each edge's logits over all five ops, ``none`` included.

        That is how the NAS-Bench-201 paper derives DARTS/GDAS/ENAS cells (its reported DARTS result,
        the all-``skip_connect`` cell at 54.30 %, comes from it). ``exclude_none=True`` gives DARTS'
        own rule for its cells (strongest op other than ``none``).
        """
        if options:
            raise ConfigError(
                f"unknown derive option(s) {sorted(options)} for nb201; allowed: 'exclude_none'"
            )
        values = {}
        for key in self.keys:
            logits = self.alpha(key).detach().clone()
            names = self.candidates(key)
            if exclude_none:
                logits[names.index("none")] = float("-inf")
            values[key] = names[int(logits.argmax())]
        return self.space.make(values)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info["kwargs"]["affine"] = self.affine
        return info


@register_supernet("nb201")
def nb201_supernet(space: NB201Space, **kwargs: Any) -> NB201Supernet:
    """Supernet of the NAS-Bench-201 space; options as :meth:`NB201Space.build` plus ``affine`` and
    ``checkpointing`` (:meth:`Supernet.set_checkpointing`)."""
    unknown = sorted(set(kwargs) - set(_BUILD_OPTIONS))
    if unknown:
        raise ConfigError(
            f"unknown supernet option(s) {unknown} for space 'nb201'; allowed: "
            + ", ".join(repr(o) for o in _BUILD_OPTIONS)
        )
    affine = kwargs.pop("affine", False)
    checkpointing = kwargs.pop("checkpointing", "none")
    if not isinstance(affine, bool):
        raise ConfigError(f"affine must be True or False, got {affine!r}")
    net = NB201Supernet(space, affine=affine, **kwargs)
    net.set_checkpointing(checkpointing)
    return net


__all__ = ["NB201Supernet", "nb201_supernet"]
