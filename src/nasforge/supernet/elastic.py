"""The once-for-all supernet of the elastic space (Cai et al., "Once-for-All", ICLR 2020).

One network, the space's largest (:meth:`ElasticSpace.build_max`), runs any sub-network by
slicing its weights at forward time:

- elastic depth: a stage runs its first ``depth`` blocks;
- elastic width (expand ratio): a block uses its first ``hidden`` channels in the expansion conv,
  depthwise conv, BatchNorms and squeeze-excite, and the matching input channels of the projection;
- elastic kernel: the depthwise kernel is the centre of the larger one passed through a learned
  kernel transformation matrix per size step (7 -> 5 -> 3, initialized to the identity), as in OFA.

:meth:`ElasticSupernet.extract` makes the stand-alone network of an architecture with exactly these
weights (the space's own ``extract`` — centre crop, first channels, first blocks — then the
transformed kernels), so in eval mode both compute the same function.
:meth:`ElasticSupernet.sort_channels` reorders every block's hidden channels by importance (L1 norm
of the projection weights, OFA's re-organization before width shrinking) without changing the
function of the largest network.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nasforge.errors import ConfigError, allowed
from nasforge.space.architecture import Architecture
from nasforge.spaces.elastic import ElasticNetwork, ElasticSpace, MBConvBlock, make_divisible
from nasforge.supernet.base import Path, Supernet, register_supernet

_BUILD_OPTIONS = ("num_classes", "in_channels", "width_mult", "stem_stride", "dropout")


def hidden_width(block: MBConvBlock, expand: float) -> int:
    """Hidden channels of ``block`` at expand ratio ``expand`` (the space's rounding rule)."""
    return block.c_in if expand == 1 else make_divisible(round(block.c_in * expand))


def _batchnorm(x: torch.Tensor, bn: nn.Module, n: int) -> torch.Tensor:
    """BatchNorm over the first ``n`` channels of ``bn`` (running statistics updated in place)."""
    assert isinstance(bn, nn.BatchNorm2d)
    assert bn.running_mean is not None and bn.running_var is not None
    factor = 0.0
    if bn.training and bn.track_running_stats:
        assert bn.num_batches_tracked is not None
        bn.num_batches_tracked.add_(1)
        factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
    return F.batch_norm(
        x, bn.running_mean[:n], bn.running_var[:n],
        None if bn.weight is None else bn.weight[:n], None if bn.bias is None else bn.bias[:n],
        bn.training or not bn.track_running_stats, factor, bn.eps,
    )


class ElasticSupernet(Supernet):
    """Weight-sharing elastic network (see the module doc); no architecture parameters."""

    root = "net."

    def __init__(self, space: ElasticSpace, **build_kwargs: Any) -> None:
        super().__init__(space, build_kwargs)
        self.net: ElasticNetwork = space.build_max(**build_kwargs)
        self.kernels = tuple(space.kernel_sizes)
        # One matrix per block and size step, mapping the centre of the larger kernel (OFA).
        self.transforms = nn.ParameterDict()
        for s in range(len(self.net.stages)):
            for b in range(len(self.net.stage(s))):
                for big, small in zip(self.kernels[::-1], self.kernels[::-1][1:]):
                    self.transforms[self._transform_name(s, b, big, small)] = nn.Parameter(
                        torch.eye(small * small)
                    )
        self._arch: Architecture | None = space.max_arch()
        self.mode = "single_path"
        self._init_alphas()

    @property
    def espace(self) -> ElasticSpace:
        """The elastic space (typed)."""
        assert isinstance(self.space, ElasticSpace)
        return self.space

    @staticmethod
    def _transform_name(stage: int, block: int, big: int, small: int) -> str:
        return f"s{stage}b{block}_{big}to{small}"

    # ------------------------------------------------------------------ paths
    def set_mode(self, mode: str, path: Path | None = None) -> Supernet:
        """Only ``single_path`` exists here: one sub-network per forward pass."""
        if mode != "single_path":
            raise ConfigError(f"the elastic supernet runs one sub-network at a time; mode {mode!r} "
                              "is not available, only 'single_path'")
        return self.set_path(path)

    def set_path(self, path: Path | None) -> Supernet:
        """Fix the sub-network (an architecture's decisions); None samples one per forward."""
        self._arch = None if path is None else self.espace.make(dict(path))
        return self

    def set_arch(self, arch: Architecture) -> Supernet:
        self._arch = self.espace.validate(arch)
        return self

    @property
    def path(self) -> dict[str, Any] | None:
        return None if self._arch is None else dict(self._arch)

    def path_of(self, arch: Architecture) -> dict[str, Any]:
        """The architecture's own decisions."""
        return dict(self.espace.validate(arch))

    def derive(self, **options: Any) -> Architecture:
        """Not available: the elastic supernet has no architecture parameters to discretize."""
        raise ConfigError(
            "the elastic supernet has no architecture parameters; pick sub-networks with a search "
            "over the weight_sharing evaluator (what the 'ofa' method does after training)"
        )

    # ------------------------------------------------------------------ forward
    def active_kernel(self, stage: int, block: int, kernel: int) -> torch.Tensor:
        """Depthwise weights (all hidden channels) at ``kernel``: centre crops and transforms."""
        big_block = self.net.block(stage, block)
        weight: torch.Tensor = big_block.dw_conv.weight
        size = big_block.kernel
        if kernel not in self.kernels or kernel > size:
            raise ConfigError(f"kernel {kernel} is not one of {allowed(self.kernels)} up to {size}")
        for big, small in zip(self.kernels[::-1], self.kernels[::-1][1:]):
            if big > size or small < kernel:
                continue
            off = (big - small) // 2
            centre = weight[:, :, off:off + small, off:off + small]
            matrix = self.transforms[self._transform_name(stage, block, big, small)]
            weight = F.linear(centre.reshape(centre.shape[0], centre.shape[1], -1), matrix).reshape(
                centre.shape
            )
        return weight

    def _block(self, x: torch.Tensor, s: int, b: int, kernel: int, expand: float) -> torch.Tensor:
        block = self.net.block(s, b)
        h = hidden_width(block, expand)
        if h > block.hidden:
            raise ConfigError(f"expand ratio {expand} exceeds the largest block's width")
        out = x
        if block.expand_conv is not None and block.expand_bn is not None:
            out = F.conv2d(out, block.expand_conv.weight[:h])
            out = block.activation(_batchnorm(out, block.expand_bn, h))
        weight = self.active_kernel(s, b, kernel)[:h]
        out = F.conv2d(out, weight, None, block.stride, kernel // 2, 1, h)
        out = block.activation(_batchnorm(out, block.dw_bn, h))
        if block.se is not None:
            m = make_divisible(h // 4)
            w = F.adaptive_avg_pool2d(out, 1)
            se = block.se
            assert se.reduce.bias is not None and se.expand.bias is not None
            w = F.relu(F.conv2d(w, se.reduce.weight[:m, :h], se.reduce.bias[:m]))
            w = F.hardsigmoid(F.conv2d(w, se.expand.weight[:h, :m], se.expand.bias[:h]))
            out = out * w
        out = F.conv2d(out, block.project_conv.weight[:, :h])
        out = _batchnorm(out, block.project_bn, block.c_out)
        return x + out if block.residual else out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        arch = self._arch
        if arch is None:
            seed = int(torch.randint(2**62, (1,), generator=self.generator))
            arch = self.espace.sample(np.random.default_rng(seed))
        return self.run_arch(x, arch)

    def run_arch(self, x: torch.Tensor, arch: Architecture) -> torch.Tensor:
        """Forward pass of sub-network ``arch``."""
        net = self.net
        r = self.espace.resolution(arch)  # elastic resolution: the sub-network's input size
        if r is not None and tuple(x.shape[-2:]) != (r, r):
            x = F.interpolate(x, size=(r, r), mode="bilinear", align_corners=False)
        x = net.first_block(net.stem(x))
        for s, blocks in enumerate(self.espace.plan(arch)):
            for b, (kernel, expand) in enumerate(blocks):
                x = self._block(x, s, b, kernel, float(expand))
        x = net.final_expand(x)
        x = net.feature_mix(F.adaptive_avg_pool2d(x, 1))
        logits: torch.Tensor = net.classifier(torch.flatten(x, 1))
        return logits

    def body(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)

    # ------------------------------------------------------------------ sub-networks
    def extract(self, arch: Architecture, **build_overrides: Any) -> nn.Module:
        """The stand-alone network of ``arch`` with the weights this supernet runs it with."""
        if build_overrides:
            raise ConfigError(
                f"an elastic sub-network keeps the supernet's build options; got {sorted(build_overrides)}"
            )
        sub = self.espace.extract(self.net, arch)
        with torch.no_grad():
            for s, blocks in enumerate(self.espace.plan(arch)):
                for b, (kernel, _) in enumerate(blocks):
                    block = sub.block(s, b)
                    block.dw_conv.weight.copy_(self.active_kernel(s, b, kernel)[: block.hidden])
        return sub.to(next(self.parameters()).device)

    def derived_state_dict(self, arch: Architecture) -> dict[str, torch.Tensor]:
        return dict(self.extract(arch).state_dict())

    @torch.no_grad()
    def sort_channels(self, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Order each block's hidden channels by importance, keeping the largest network's function.

        Importance is the L1 norm of the projection weights reading the channel (OFA); the SE
        bottleneck channels are ordered the same way by their expansion weights. Momentum buffers
        of ``optimizer`` are permuted with their parameters.
        """
        for s in range(len(self.net.stages)):
            for b in range(len(self.net.stage(s))):
                block = self.net.block(s, b)
                order = block.project_conv.weight.abs().sum(dim=(0, 2, 3)).argsort(descending=True)
                if block.expand_conv is not None and block.expand_bn is not None:
                    _permute(optimizer, [(block.expand_conv.weight, 0)], order)
                    _permute_bn(optimizer, block.expand_bn, order)
                _permute(optimizer, [(block.dw_conv.weight, 0)], order)
                _permute_bn(optimizer, block.dw_bn, order)
                if block.se is not None:
                    se = block.se
                    assert se.reduce.bias is not None and se.expand.bias is not None
                    _permute(optimizer, [(se.reduce.weight, 1), (se.expand.weight, 0),
                                         (se.expand.bias, 0)], order)
                    mid = se.expand.weight.abs().sum(dim=(0, 2, 3)).argsort(descending=True)
                    _permute(optimizer, [(se.reduce.weight, 0), (se.reduce.bias, 0),
                                         (se.expand.weight, 1)], mid)
                _permute(optimizer, [(block.project_conv.weight, 1)], order)


def _permute(optimizer: torch.optim.Optimizer | None, items: Iterable[tuple[torch.Tensor, int]],
             order: torch.Tensor) -> None:
    for tensor, dim in items:
        tensor.copy_(tensor.index_select(dim, order))
        if optimizer is not None:
            buf = optimizer.state.get(tensor, {}).get("momentum_buffer")
            if buf is not None:
                buf.copy_(buf.index_select(dim, order))


def _permute_bn(optimizer: torch.optim.Optimizer | None, bn: nn.Module, order: torch.Tensor) -> None:
    assert isinstance(bn, nn.BatchNorm2d)
    items = [(t, 0) for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var) if t is not None]
    _permute(optimizer, items, order)


@register_supernet("elastic")
def elastic_supernet(space: ElasticSpace, **kwargs: Any) -> ElasticSupernet:
    """Once-for-all supernet of the elastic space; options as :meth:`ElasticSpace.build`."""
    unknown = sorted(set(kwargs) - set(_BUILD_OPTIONS))
    if unknown:
        raise ConfigError(
            f"unknown supernet option(s) {unknown} for space 'elastic'; allowed: "
            + ", ".join(repr(o) for o in _BUILD_OPTIONS)
        )
    if space.stage_widths:
        raise ConfigError("the elastic supernet shares weights across depth, expand ratio, kernel and "
                          "resolution, not per-stage widths; create the space without stage_widths "
                          f"(got {list(space.stage_widths)}) for once-for-all training")
    return ElasticSupernet(space, **kwargs)


__all__ = ["ElasticSupernet", "elastic_supernet", "hidden_width"]
