"""Fast, exact synflow for NAS-Bench-201 networks, without building a module.

:func:`nasforge.proxies.synflow.synflow` works on any model: copy it, strip BatchNorm, take
absolute weights, run forward and backward with autograd. Scoring thousands of NAS-Bench-201 cells
that way spends most of its time constructing modules and computing weight gradients. This scorer
computes the *same number* for the network ``NB201Space().build(arch, C, N, num_classes,
in_channels)`` initialized under ``torch.manual_seed(seed)``, by three exact shortcuts:

1. **Weights are drawn, not built.** The network's conv and linear weights are drawn from a
   private generator seeded with ``seed`` with the layers' own initializer
   (``kaiming_uniform_(a=sqrt(5))``, i.e. PyTorch's default), in the order the network
   constructs them, so they are bit-for-bit the weights ``build`` would create (BatchNorm layers
   draw nothing and synflow removes them anyway).
2. **One forward pass instead of forward + backward.** With non-negative weights, no BatchNorm
   and an all-ones input, every activation is >= 0, so every ReLU is the identity and the network
   is a positive multilinear function of its layers' weights. Then
   ``sum |theta * dR/dtheta| = sum theta * dR/dtheta = d/dt R((1 + t) theta)`` at ``t = 0`` (each
   weight scaled together), a single forward-mode derivative. It is carried as a second sample of
   the batch: a conv maps ``(value a, tangent da)`` to ``(W a, W da + W a)``; pools, sums and skips
   act on both alike; the score is the sum of the logits' tangent. (Tanaka et al. already note
   that synflow is a sum over input-output paths of the path's weight product; this sums those
   products weighted by the number of weighted layers on the path.)
3. **Dead operations are skipped.** An edge whose input is identically zero, or whose output
   reaches the cell output only through ``none`` edges, contributes exactly zero; a cell with no
   input-output path makes the whole score zero (as autograd also finds).

``tests/proxies`` check the result against the generic proxy on random cells (relative error
~1e-15). References: Tanaka et al., NeurIPS 2020 (SynFlow); Abdelfattah et al., ICLR 2021
(synflow on NAS-Bench-201: C=16, N=5, no BatchNorm, all-ones input, float64).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from nasforge.errors import ConfigError, InvalidArchitectureError
from nasforge.space.architecture import Architecture
from nasforge.spaces.nb201 import NB201_EDGES, NB201_OPS, NB201Space

Edge = tuple[int, int, str]
_OUTPUT_NODE = 3
_SQRT5 = math.sqrt(5.0)  # the ``a`` of nn.Conv2d / nn.Linear's default kaiming_uniform_


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return value


def live_edges(edges: Sequence[Edge]) -> list[Edge]:
    """The edges of a cell that carry signal from its input to its output, in topological order.

    An edge ``j -> i`` is live when its op is not ``none``, node ``j`` is reachable from the cell
    input and node ``i`` reaches the output over non-``none`` edges. Empty for a degenerate cell.
    """
    real = [(to, frm, op) for to, frm, op in edges if op != "none"]
    reach = {0}
    for to, frm, _ in sorted(real):  # sorted by destination: sources are final when used
        if frm in reach:
            reach.add(to)
    reaches_out = {_OUTPUT_NODE}
    for to, frm, _ in sorted(real, reverse=True):
        if to in reaches_out:
            reaches_out.add(frm)
    return [e for e in sorted(real) if e[1] in reach and e[0] in reaches_out]


class NB201Synflow:
    """Synflow of NAS-Bench-201 networks of one shape, scored from their cell alone.

    ``scorer(arch, seed)`` equals ``compute_proxy("synflow", model, x)`` for
    ``torch.manual_seed(seed); model = NB201Space().build(arch, num_classes, C, N, in_channels)``
    and an input ``x`` of ``in_channels x image_size x image_size`` (up to float64 rounding).
    The object holds no per-architecture state, so one scorer serves any number of cells.
    """

    def __init__(self, C: int = 16, N: int = 5, num_classes: int = 10, in_channels: int = 3,
                 image_size: int | tuple[int, int] = 32, device: str | torch.device = "cpu"
                 ) -> None:
        self.C = _positive_int("C", C)
        self.N = _positive_int("N", N)
        self.num_classes = _positive_int("num_classes", num_classes)
        self.in_channels = _positive_int("in_channels", in_channels)
        size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        if len(size) != 2:
            raise ConfigError(f"image_size must be an int or (height, width), got {image_size!r}")
        self.image_size: tuple[int, int] = (_positive_int("image_size", size[0]),
                                            _positive_int("image_size", size[1]))
        self.device = torch.device(device)
        self._space = NB201Space()
        self._inv_counts: dict[tuple[int, int], torch.Tensor] = {}

    # ------------------------------------------------------------------ weights
    def _draw(self, gen: torch.Generator, *shape: int) -> torch.Tensor:
        """The next layer's |weights|: drawn like the layer's own ``reset_parameters`` (float32,
        CPU generator), then made float64 and non-negative."""
        w = torch.empty(shape)
        nn.init.kaiming_uniform_(w, a=_SQRT5, generator=gen)
        return w.to(device=self.device, dtype=torch.float64).abs_()

    # ------------------------------------------------------------------ layers on (value, tangent)
    @staticmethod
    def _conv(x: torch.Tensor, w: torch.Tensor, stride: int = 1) -> torch.Tensor:
        """A conv on the stacked (value, tangent) pair; its weight's own tangent is itself."""
        y = nn.functional.conv2d(x, w, stride=stride, padding=w.shape[-1] // 2)
        y[1] += y[0]
        return y

    def _avg_pool3(self, x: torch.Tensor) -> torch.Tensor:
        """``avg_pool2d(x, 3, 1, 1, count_include_pad=False)`` as two padded 3-sums and a scale
        by the precomputed 1/count map: the same numbers, several times faster in float64."""
        h, w = x.shape[-2:]
        inv = self._inv_counts.get((h, w))
        if inv is None:
            ones = torch.ones((1, 1, h, w), dtype=x.dtype, device=x.device)
            count = nn.functional.avg_pool2d(ones, 3, 1, 1, divisor_override=1)
            inv = self._inv_counts[(h, w)] = 1.0 / count[0, 0]
        p = nn.functional.pad(x, (1, 1, 1, 1))
        rows = p[..., :, :-2] + p[..., :, 1:-1] + p[..., :, 2:]
        return (rows[..., :-2, :] + rows[..., 1:-1, :] + rows[..., 2:, :]).mul_(inv)

    def _cell(self, x: torch.Tensor, edges: Sequence[Edge], live: set[Edge], c: int,
              gen: torch.Generator) -> torch.Tensor:
        nodes: list[torch.Tensor | None] = [x, None, None, None]
        for edge in edges:  # construction order: every weighted op draws, live or not
            to, frm, op = edge
            w = None
            if op == "nor_conv_3x3":
                w = self._draw(gen, c, c, 3, 3)
            elif op == "nor_conv_1x1":
                w = self._draw(gen, c, c, 1, 1)
            if edge not in live:
                continue
            src = nodes[frm]
            assert src is not None  # live edges start at nodes reachable from the input
            if w is not None:
                out = self._conv(src, w)
            elif op == "avg_pool_3x3":
                out = self._avg_pool3(src)
            else:  # skip_connect between equal widths, stride 1: the identity
                out = src
            current = nodes[to]
            nodes[to] = out if current is None else current + out
        result = nodes[_OUTPUT_NODE]
        assert result is not None  # the cell has a live path (checked by the caller)
        return result

    # ------------------------------------------------------------------ public
    def edges_of(self, arch: Architecture | str | Sequence[Edge]) -> list[Edge]:
        """``(to, from, op)`` of a cell given as an Architecture, an NB201 string or edges."""
        if isinstance(arch, Architecture):
            return self._space.edges(arch)
        if isinstance(arch, str):
            return self._space.edges(self._space.from_string(arch))
        edges = [(int(to), int(frm), str(op)) for to, frm, op in arch]
        if sorted((to, frm) for to, frm, _ in edges) != sorted(NB201_EDGES) or any(
            op not in NB201_OPS for _, _, op in edges
        ):
            raise InvalidArchitectureError(
                f"{arch!r} is not a NAS-Bench-201 cell: it needs one (to, from, op) per edge "
                f"{list(NB201_EDGES)} with op in {list(NB201_OPS)}"
            )
        return edges

    def __call__(self, arch: Architecture | str | Sequence[Edge], seed: int = 0) -> float:
        """Synflow of ``arch``'s network initialized under ``seed``."""
        edges = sorted(self.edges_of(arch))  # DAGCell constructs its ops in this order
        live = set(live_edges(edges))
        if not live:
            return 0.0  # no input-output path: every weight's gradient is exactly zero
        gen = torch.Generator().manual_seed(int(seed))
        C = self.C
        with torch.inference_mode():
            ones = torch.ones((1, self.in_channels, *self.image_size), dtype=torch.float64,
                              device=self.device)
            stem = nn.functional.conv2d(ones, self._draw(gen, C, self.in_channels, 3, 3),
                                        padding=1)
            # Value and tangent of the stem output are equal: the input's tangent is zero.
            x = torch.cat([stem, stem])
            c = C
            for stage, width in enumerate((C, 2 * C, 4 * C)):
                if stage > 0:  # the ResNet reduction block, weights in construction order
                    w_a = self._draw(gen, width, c, 3, 3)
                    w_b = self._draw(gen, width, width, 3, 3)
                    w_s = self._draw(gen, width, c, 1, 1)
                    residual = self._conv(self._conv(x, w_a, stride=2), w_b)
                    x = residual + self._conv(nn.functional.avg_pool2d(x, 2, 2), w_s)
                    c = width
                for _ in range(self.N):
                    x = self._cell(x, edges, live, c, gen)
            features = x.mean(dim=(2, 3))
            logits = features @ self._draw(gen, self.num_classes, c).T
            return float((logits[0] + logits[1]).sum())


__all__ = ["NB201Synflow", "live_edges"]
