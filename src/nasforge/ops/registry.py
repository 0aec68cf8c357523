"""The operation registry and the standard cell operations of DARTS and NAS-Bench-201.

Definitions follow Liu et al. (ICLR 2019, DARTS) and Dong & Yang (ICLR 2020, NAS-Bench-201):
``ReLU -> Conv -> BN`` ordering, separable convs applied twice, factorized reduce for strided skips.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from nasforge.errors import unknown

OpFactory = Callable[[int, int, int, bool], nn.Module]
OPS: dict[str, OpFactory] = {}


def register_op(name: str) -> Callable[[OpFactory], OpFactory]:
    """Decorator: register an op factory ``(C_in, C_out, stride, affine) -> nn.Module``."""

    def deco(factory: OpFactory) -> OpFactory:
        OPS[name] = factory
        return factory

    return deco


def create_op(name: str, c_in: int, c_out: int, stride: int = 1, affine: bool = True) -> nn.Module:
    """Build the op registered as ``name`` (clear error listing the registered ops)."""
    if name not in OPS:
        raise unknown("operation", name, OPS)
    return OPS[name](c_in, c_out, stride, affine)


def list_ops() -> list[str]:
    """Registered op names, sorted."""
    return sorted(OPS)


class ReLUConvBN(nn.Sequential):
    """ReLU -> Conv(k, stride, dilation) -> BatchNorm."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int,
                 dilation: int = 1, affine: bool = True) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, dilation=dilation, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class DilConv(nn.Sequential):
    """ReLU -> depthwise dilated conv -> pointwise conv -> BN (DARTS ``dil_conv``)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, dilation: int,
                 affine: bool = True) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel, stride=stride, padding=padding, dilation=dilation,
                      groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class SepConv(nn.Sequential):
    """Two stacked DilConv(dilation=1); only the first is strided (DARTS ``sep_conv``)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int,
                 affine: bool = True) -> None:
        super().__init__(
            DilConv(c_in, c_in, kernel, stride, padding, 1, affine),
            DilConv(c_in, c_out, kernel, 1, padding, 1, affine),
        )


class Identity(nn.Module):
    """Returns its input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Zero(nn.Module):
    """The ``none`` op: zeros of the output shape (spatially strided when ``stride > 1``)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.c_out = c_out
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if x.shape[1] != self.c_out:
            # Derived from x (not new_zeros) so the result stays in the autograd graph: a loss
            # that depends only on this op must still be able to call backward().
            return x[:, :1].mul(0.0).repeat(1, self.c_out, 1, 1)
        return x.mul(0.0)


class FactorizedReduce(nn.Module):
    """Halve the resolution with two offset 1x1 stride-2 convs, concatenated (DARTS)."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True) -> None:
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even number of output channels, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        # The second conv sees the input shifted by one pixel so both halves cover all positions.
        shifted = nn.functional.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


class Pool(nn.Module):
    """3x3 average/max pooling, with a 1x1 ReLUConvBN first when channels change (NAS-Bench-201)."""

    def __init__(self, kind: str, c_in: int, c_out: int, stride: int, affine: bool) -> None:
        super().__init__()
        self.preprocess = None if c_in == c_out else ReLUConvBN(c_in, c_out, 1, 1, 0, 1, affine)
        if kind == "avg":
            self.pool: nn.Module = nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
        else:
            self.pool = nn.MaxPool2d(3, stride=stride, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.preprocess is not None:
            x = self.preprocess(x)
        return self.pool(x)


def _skip(c_in: int, c_out: int, stride: int, affine: bool) -> nn.Module:
    if stride == 1 and c_in == c_out:
        return Identity()
    if stride == 2:
        return FactorizedReduce(c_in, c_out, affine)
    return ReLUConvBN(c_in, c_out, 1, stride, 0, 1, affine)


OPS.update({
    "none": lambda ci, co, s, a: Zero(ci, co, s),
    "skip_connect": _skip,
    "avg_pool_3x3": lambda ci, co, s, a: Pool("avg", ci, co, s, a),
    "max_pool_3x3": lambda ci, co, s, a: Pool("max", ci, co, s, a),
    # NAS-Bench-201's plain convolutions.
    "nor_conv_1x1": lambda ci, co, s, a: ReLUConvBN(ci, co, 1, s, 0, 1, a),
    "nor_conv_3x3": lambda ci, co, s, a: ReLUConvBN(ci, co, 3, s, 1, 1, a),
    # DARTS' separable and dilated convolutions.
    "sep_conv_3x3": lambda ci, co, s, a: SepConv(ci, co, 3, s, 1, a),
    "sep_conv_5x5": lambda ci, co, s, a: SepConv(ci, co, 5, s, 2, a),
    "sep_conv_7x7": lambda ci, co, s, a: SepConv(ci, co, 7, s, 3, a),
    "dil_conv_3x3": lambda ci, co, s, a: DilConv(ci, co, 3, s, 2, 2, a),
    "dil_conv_5x5": lambda ci, co, s, a: DilConv(ci, co, 5, s, 4, 2, a),
    "conv_7x1_1x7": lambda ci, co, s, a: nn.Sequential(
        nn.ReLU(inplace=False),
        nn.Conv2d(ci, ci, (1, 7), stride=(1, s), padding=(0, 3), bias=False),
        nn.Conv2d(ci, co, (7, 1), stride=(s, 1), padding=(3, 0), bias=False),
        nn.BatchNorm2d(co, affine=a),
    ),
})


# Plain-convolution and single depthwise-separable ops for chain-structured (macro) spaces
# (layer ops of ENAS' macro space, Pham et al., ICML 2018): ReLU -> conv -> BN like the cell ops, so
# one op vocabulary serves every space. ``dwsep_conv`` is one depthwise+pointwise stack, unlike
# DARTS' ``sep_conv`` which applies it twice.
OPS.update({
    "nor_conv_5x5": lambda ci, co, s, a: ReLUConvBN(ci, co, 5, s, 2, 1, a),
    "nor_conv_7x7": lambda ci, co, s, a: ReLUConvBN(ci, co, 7, s, 3, 1, a),
    "dwsep_conv_3x3": lambda ci, co, s, a: DilConv(ci, co, 3, s, 1, 1, a),
    "dwsep_conv_5x5": lambda ci, co, s, a: DilConv(ci, co, 5, s, 2, 1, a),
})


class GlobalPool(nn.Module):
    """Global average pooling inside a network: squeeze to 1x1, then broadcast back.

    A layer in the middle of a chain must keep a spatial map for the layers after it, so the
    pooled per-channel means are repeated over the output resolution (the input's, halved when
    strided). The result carries only global context, as the squeeze of a squeeze-and-excitation
    block (Hu et al., CVPR 2018) does; a 1x1 ReLU-conv-BN adapts the width first when it changes.
    """

    def __init__(self, c_in: int, c_out: int, stride: int, affine: bool) -> None:
        super().__init__()
        self.preprocess = None if c_in == c_out else ReLUConvBN(c_in, c_out, 1, 1, 0, 1, affine)
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.preprocess is not None:
            x = self.preprocess(x)
        # ceil, like a padded 3x3 stride-2 conv, so every op of a layer gives the same size.
        h = -(-int(x.shape[-2]) // self.stride)
        w = -(-int(x.shape[-1]) // self.stride)
        return x.mean(dim=(-2, -1), keepdim=True).expand(-1, -1, h, w)


def _depthwise(ci: int, co: int, s: int, a: bool) -> nn.Module:
    # One 3x3 filter per channel (Howard et al., MobileNets, 2017). When the width changes, the
    # groups are the widths' greatest common divisor: each group still sees only its own input
    # channels (a channel multiplier when ``co`` is a multiple of ``ci``), never all of them.
    return nn.Sequential(
        nn.ReLU(inplace=False),
        nn.Conv2d(ci, co, 3, stride=s, padding=1, groups=math.gcd(ci, co), bias=False),
        nn.BatchNorm2d(co, affine=a),
    )


# Operations of the task presets (spaces/presets.py): a lone depthwise conv, a full-width atrous
# (dilated) conv as in DeepLab (Chen et al., TPAMI 2018), and global pooling.
OPS.update({
    "dw_conv_3x3": _depthwise,
    "atrous_conv_3x3": lambda ci, co, s, a: ReLUConvBN(ci, co, 3, s, 2, 2, a),
    "global_pool": lambda ci, co, s, a: GlobalPool(ci, co, s, a),
})
