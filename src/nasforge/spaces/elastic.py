"""Elastic (once-for-all) space: MobileNetV3-style networks with elastic depth, width and kernel
(Cai, Gan, Wang, Zhang & Han, "Once-for-All: Train One Network and Specialize it for Efficient
Deployment", ICLR 2020; blocks from Howard et al., "Searching for MobileNetV3", ICCV 2019).

The network is a stem (3x3 conv, stride 2, 16 channels, h-swish), a fixed first block (3x3
depthwise, expand 1), five stages of inverted-residual (MBConv) blocks, a 1x1 conv to 6x the last
width, global pooling, a 1x1 conv to 1280 features and a linear classifier, as in OFA's
MobileNetV3 space. Stage widths, strides, activations and squeeze-excite follow MobileNetV3-Large
(:data:`OFA_STAGES`); they are fixed, and ``width_mult`` scales every width at build time.

Decisions, for every stage ``s``: ``stage{s}/depth`` (default {2, 3, 4}) and, per block ``b``,
``stage{s}/block{b}/kernel`` ({3, 5, 7}) and ``stage{s}/block{b}/expand`` ({3, 4, 6}). A block's
decisions exist only when the stage is deep enough (conditional decisions), so
``size() = (sum_d (|K| |E|)^d)^5 = 7371^5 ~ 2.2e19``, OFA's "more than 10^19 sub-networks".

Simpler variants: ``se=False`` drops squeeze-excite, ``hswish=False`` uses ReLU everywhere.

Two more decisions on request (without them the space is unchanged):

* ``resolutions=(128, 160, 192, 224)`` adds ``resolution``, the input resolution the network runs
  at (OFA's elastic resolution, 128-224 in steps of 32 for ImageNet). The built network resizes
  its input (bilinear) to that size first, so every evaluator, FLOPs and latency see the cost of
  the chosen resolution with no change to the data.
* ``stage_widths=(0.75, 1.0, 1.25)`` adds ``stage{s}/width``: a width multiplier per stage instead
  of only the one global ``width_mult`` (MnasNet-style per-stage widths, Tan et al., CVPR 2019).
  Stage ``s`` gets ``make_divisible(width_s * multiplier * width_mult)`` channels.

Weight sharing: :func:`extract_block` cuts a smaller block out of a larger one with its weights
(OFA's elastic kernel: the centre of the depthwise kernel; elastic width: the first hidden
channels), and :meth:`ElasticSpace.extract` builds any architecture's stand-alone network from the
network of :meth:`ElasticSpace.build_max` (elastic depth: a stage keeps its first blocks). OFA also
learns kernel transformation matrices and sorts channels by importance before cutting; a
supernet trainer adds those on top of these functions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from nasforge.errors import ConfigError, allowed
from nasforge.registry import SPACES
from nasforge.space.architecture import Architecture
from nasforge.space.base import SearchSpace
from nasforge.space.decision import Choice, Condition, Value
from nasforge.spaces._options import flag, positive_int, reject_unknown


@dataclass(frozen=True)
class StageSpec:
    """One stage of the network: output width, stride of its first block, activation, SE."""

    width: int
    stride: int
    act: str
    se: bool


OFA_STAGES: tuple[StageSpec, ...] = (
    StageSpec(24, 2, "relu", False),
    StageSpec(40, 2, "relu", True),
    StageSpec(80, 2, "hswish", False),
    StageSpec(112, 1, "hswish", True),
    StageSpec(160, 2, "hswish", True),
)
"""MobileNetV3-Large's stages as used by OFA (widths 24-160, SE in stages 2, 4, 5)."""

FIRST_WIDTH = 16
FINAL_EXPAND = 6
FEATURE_DIM = 1280
ACTIVATIONS = ("relu", "hswish")


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a width to a multiple of ``divisor`` without losing more than 10% (MobileNet rule)."""
    out = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if out < 0.9 * value:
        out += divisor
    return out


def _act(name: str) -> nn.Module:
    return nn.Hardswish() if name == "hswish" else nn.ReLU(inplace=True)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation with a hard-sigmoid gate (MobileNetV3); ``mid`` ~ channels / 4."""

    def __init__(self, channels: int, mid: int | None = None) -> None:
        super().__init__()
        self.mid = mid if mid is not None else make_divisible(channels // 4)
        self.reduce = nn.Conv2d(channels, self.mid, 1)
        self.expand = nn.Conv2d(self.mid, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = nn.functional.adaptive_avg_pool2d(x, 1)
        w = nn.functional.hardsigmoid(self.expand(nn.functional.relu(self.reduce(w))))
        return x * w


class MBConvBlock(nn.Module):
    """Inverted residual block: 1x1 expand -> kxk depthwise -> (SE) -> 1x1 project, plus identity
    when the shape is kept. ``expand == 1`` omits the expansion conv."""

    def __init__(
        self, c_in: int, c_out: int, kernel: int, expand: float, stride: int, act: str, se: bool
    ) -> None:
        super().__init__()
        self.c_in, self.c_out, self.kernel, self.expand = c_in, c_out, kernel, expand
        self.stride, self.act, self.use_se = stride, act, se
        self.hidden = c_in if expand == 1 else make_divisible(round(c_in * expand))
        self.expand_conv: nn.Conv2d | None = None
        self.expand_bn: nn.BatchNorm2d | None = None
        if expand != 1:
            self.expand_conv = nn.Conv2d(c_in, self.hidden, 1, bias=False)
            self.expand_bn = nn.BatchNorm2d(self.hidden)
        self.dw_conv = nn.Conv2d(self.hidden, self.hidden, kernel, stride, kernel // 2,
                                 groups=self.hidden, bias=False)
        self.dw_bn = nn.BatchNorm2d(self.hidden)
        self.activation = _act(act)
        self.se: SqueezeExcite | None = SqueezeExcite(self.hidden) if se else None
        self.project_conv = nn.Conv2d(self.hidden, c_out, 1, bias=False)
        self.project_bn = nn.BatchNorm2d(c_out)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        if self.expand_conv is not None and self.expand_bn is not None:
            h = self.activation(self.expand_bn(self.expand_conv(h)))
        h = self.activation(self.dw_bn(self.dw_conv(h)))
        if self.se is not None:
            h = self.se(h)
        h = self.project_bn(self.project_conv(h))
        return x + h if self.residual else h


def _copy_bn(dst: nn.BatchNorm2d, src: nn.BatchNorm2d, n: int | None = None) -> None:
    take = slice(None) if n is None else slice(0, n)
    for name in ("weight", "bias", "running_mean", "running_var"):
        target, source = getattr(dst, name), getattr(src, name)
        if target is not None and source is not None:
            target.copy_(source[take])
    if src.num_batches_tracked is not None and dst.num_batches_tracked is not None:
        dst.num_batches_tracked.copy_(src.num_batches_tracked)


def _bias(conv: nn.Conv2d) -> torch.Tensor:
    assert conv.bias is not None  # the SE convs are built with biases
    return conv.bias


def extract_block(block: MBConvBlock, kernel: int, expand: float) -> MBConvBlock:
    """A stand-alone copy of ``block`` at a smaller ``kernel`` / ``expand`` with inherited weights.

    Elastic kernel: the depthwise weights are the centre ``kernel x kernel`` of the larger kernel.
    Elastic width: the sub-block keeps the first hidden channels (and the first SE channels).
    """
    if kernel > block.kernel or kernel % 2 == 0:
        raise ConfigError(
            f"cannot cut kernel {kernel} out of a {block.kernel}x{block.kernel} block (it must be "
            "odd and not larger)"
        )
    sub = MBConvBlock(block.c_in, block.c_out, kernel, expand, block.stride, block.act,
                      block.use_se)
    if sub.hidden > block.hidden or (sub.expand_conv is None) != (block.expand_conv is None):
        raise ConfigError(
            f"cannot cut expand ratio {expand} (hidden {sub.hidden}) out of a block with expand "
            f"{block.expand} (hidden {block.hidden})"
        )
    h = sub.hidden
    off = (block.kernel - kernel) // 2
    with torch.no_grad():
        if sub.expand_conv is not None and block.expand_conv is not None:
            assert sub.expand_bn is not None and block.expand_bn is not None
            sub.expand_conv.weight.copy_(block.expand_conv.weight[:h])
            _copy_bn(sub.expand_bn, block.expand_bn, h)
        sub.dw_conv.weight.copy_(block.dw_conv.weight[:h, :, off:off + kernel, off:off + kernel])
        _copy_bn(sub.dw_bn, block.dw_bn, h)
        if sub.se is not None and block.se is not None:
            m = sub.se.mid
            sub.se.reduce.weight.copy_(block.se.reduce.weight[:m, :h])
            _bias(sub.se.reduce).copy_(_bias(block.se.reduce)[:m])
            sub.se.expand.weight.copy_(block.se.expand.weight[:h, :m])
            _bias(sub.se.expand).copy_(_bias(block.se.expand)[:h])
        sub.project_conv.weight.copy_(block.project_conv.weight[:, :h])
        _copy_bn(sub.project_bn, block.project_bn)
    return sub


BlockPlan = Sequence[Sequence[tuple[int, float]]]
"""Per stage, the ``(kernel, expand)`` of each block."""


@dataclass(frozen=True)
class NetworkConfig:
    """Everything but the block plan that defines an :class:`ElasticNetwork`."""

    stages: tuple[StageSpec, ...] = OFA_STAGES
    num_classes: int = 10
    in_channels: int = 3
    width_mult: float = 1.0
    stem_stride: int = 2
    dropout: float = 0.0
    hswish: bool = True
    #: The square input size the network resizes its input to (None: as given).
    resolution: int | None = None


class ElasticNetwork(nn.Module):
    """A MobileNetV3-like network: stem, first block, stages of MBConv blocks, head."""

    def __init__(self, plan: BlockPlan, config: NetworkConfig | None = None) -> None:
        super().__init__()
        cfg = config or NetworkConfig()
        if len(plan) != len(cfg.stages):
            raise ConfigError(f"the plan has {len(plan)} stages, the network {len(cfg.stages)}")
        self.config = cfg
        top_act = "hswish" if cfg.hswish else "relu"
        first = make_divisible(FIRST_WIDTH * cfg.width_mult)
        self.stem = nn.Sequential(
            nn.Conv2d(cfg.in_channels, first, 3, cfg.stem_stride, 1, bias=False),
            nn.BatchNorm2d(first),
            _act(top_act),
        )
        self.first_block = MBConvBlock(first, first, 3, 1, 1, "relu", False)
        self.stages = nn.ModuleList()
        c_in = first
        for spec, blocks in zip(cfg.stages, plan):
            width = make_divisible(spec.width * cfg.width_mult)
            act = spec.act if cfg.hswish else "relu"
            self.stages.append(nn.ModuleList(
                MBConvBlock(c_in if b == 0 else width, width, kernel, expand,
                            spec.stride if b == 0 else 1, act, spec.se)
                for b, (kernel, expand) in enumerate(blocks)
            ))
            c_in = width
        final = make_divisible(c_in * FINAL_EXPAND)
        features = make_divisible(FEATURE_DIM * cfg.width_mult)
        self.final_expand = nn.Sequential(
            nn.Conv2d(c_in, final, 1, bias=False), nn.BatchNorm2d(final), _act(top_act)
        )
        self.feature_mix = nn.Sequential(nn.Conv2d(final, features, 1, bias=False), _act(top_act))
        self.classifier = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(features,
                                                                   cfg.num_classes))

    def stage(self, s: int) -> nn.ModuleList:
        """The blocks of stage ``s``."""
        stage = self.stages[s]
        assert isinstance(stage, nn.ModuleList)
        return stage

    def block(self, s: int, b: int) -> MBConvBlock:
        """Block ``b`` of stage ``s``."""
        block = self.stage(s)[b]
        assert isinstance(block, MBConvBlock)
        return block

    def resize(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` resized (bilinear) to the network's input resolution, when it has one."""
        r = self.config.resolution
        if r is None or tuple(x.shape[-2:]) == (r, r):
            return x
        return nn.functional.interpolate(x, size=(r, r), mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first_block(self.stem(self.resize(x)))
        for s in range(len(self.stages)):
            for block in self.stage(s):
                x = block(x)
        x = self.final_expand(x)
        x = self.feature_mix(nn.functional.adaptive_avg_pool2d(x, 1))
        return self.classifier(torch.flatten(x, 1))


def _positive_ints(label: str, values: Sequence[Any]) -> tuple[int, ...]:
    values = tuple(values)
    if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
        raise ConfigError(f"{label} must be positive integers, got {allowed(values)}")
    if len(set(values)) != len(values):
        raise ConfigError(f"{label} has repeated values: {allowed(values)}")
    return tuple(sorted(values))


def _stage(spec: StageSpec | Mapping[str, Any]) -> StageSpec:
    if not isinstance(spec, StageSpec):
        fields = dict(spec)
        try:
            spec = StageSpec(**fields)
        except TypeError as exc:
            raise ConfigError(
                f"bad stage {fields!r}: needs width, stride, act, se ({exc})"
            ) from None
    if spec.act not in ACTIVATIONS:
        raise ConfigError(
            f"stage activation {spec.act!r} is not allowed; allowed: {allowed(ACTIVATIONS)}"
        )
    if spec.width < 1 or spec.stride not in (1, 2):
        raise ConfigError(f"stage {spec!r}: width must be positive and stride 1 or 2")
    return spec


@SPACES.register("elastic")
class ElasticSpace(SearchSpace):
    """Once-for-all space (Cai et al., ICLR 2020): elastic depth, expand ratio, kernel size."""

    name = "elastic"
    small_build_kwargs = {"width_mult": 0.25}
    #: Every block keeps an identity shortcut when its shape allows (design checks read this).
    builtin_residuals = True

    def __init__(
        self,
        depths: Sequence[int] = (2, 3, 4),
        expand_ratios: Sequence[int] = (3, 4, 6),
        kernel_sizes: Sequence[int] = (3, 5, 7),
        stages: Sequence[StageSpec | Mapping[str, Any]] = OFA_STAGES,
        se: bool = True,
        hswish: bool = True,
        resolutions: Sequence[int] = (),
        stage_widths: Sequence[float] = (),
    ) -> None:
        self.depths = _positive_ints("depths", depths)
        self.resolutions = _positive_ints("resolutions", resolutions) if tuple(resolutions) else ()
        if any(r < 16 for r in self.resolutions):
            raise ConfigError(f"resolutions must be at least 16 pixels, got {allowed(self.resolutions)}")
        widths = tuple(stage_widths)
        if any(isinstance(w, bool) or not isinstance(w, (int, float)) or not 0 < w <= 4 for w in widths) \
                or len(set(widths)) != len(widths):
            raise ConfigError(f"stage_widths must be distinct multipliers in (0, 4], got {allowed(widths)}")
        self.stage_widths = tuple(sorted(float(w) for w in widths))
        self.expand_ratios = _positive_ints("expand_ratios", expand_ratios)
        self.kernel_sizes = _positive_ints("kernel_sizes", kernel_sizes)
        if any(k % 2 == 0 for k in self.kernel_sizes):
            raise ConfigError(f"kernel_sizes must be odd, got {allowed(self.kernel_sizes)}")
        self.stages = tuple(_stage(s) for s in stages)
        if not self.stages:
            raise ConfigError("the elastic space needs at least one stage")
        self.se, self.hswish = flag("se", se), flag("hswish", hswish)
        if not se:
            self.stages = tuple(StageSpec(s.width, s.stride, s.act, False) for s in self.stages)
        super().__init__()

    def reference_architecture(self) -> Architecture:
        """The middle of every choice (depth 3, kernel 5, expansion 4 with the default options):
        a MobileNetV3-like network of medium size, as hand-designed mobile networks are."""
        values = {}
        for d in self.decisions:
            values[d.name] = d.options[len(d.options) // 2]
        return self.complete(values)

    def options(self) -> dict[str, Any]:
        """The constructor options of this space (JSON-able; ``SPACES.create("elastic", **o)``
        makes the same space again, so supernet checkpoints can rebuild it)."""
        return {
            "depths": list(self.depths),
            "expand_ratios": list(self.expand_ratios),
            "kernel_sizes": list(self.kernel_sizes),
            "stages": [{"width": s.width, "stride": s.stride, "act": s.act, "se": s.se}
                       for s in self.stages],
            "se": self.se,
            "hswish": self.hswish,
            # Only when set, so options stored before these decisions existed compare equal.
            **({"resolutions": list(self.resolutions)} if self.resolutions else {}),
            **({"stage_widths": list(self.stage_widths)} if self.stage_widths else {}),
        }

    @staticmethod
    def depth_name(stage: int) -> str:
        """Decision name of a stage's depth."""
        return f"stage{stage}/depth"

    @staticmethod
    def width_name(stage: int) -> str:
        """Decision name of a stage's width multiplier (with ``stage_widths``)."""
        return f"stage{stage}/width"

    @staticmethod
    def block_name(stage: int, block: int, what: str) -> str:
        """Decision name of a block's ``kernel`` or ``expand``."""
        return f"stage{stage}/block{block}/{what}"

    def _declare(self) -> Sequence[Choice]:
        out: list[Choice] = []
        if self.resolutions:
            out.append(Choice("resolution", self.resolutions, doc="input resolution"))
        for s in range(len(self.stages)):
            out.append(Choice(self.depth_name(s), self.depths))
            if self.stage_widths:
                out.append(Choice(self.width_name(s), self.stage_widths, doc="stage width multiplier"))
            for b in range(max(self.depths)):
                cond: tuple[Condition, ...] = ()
                if b >= min(self.depths):
                    cond = (Condition(self.depth_name(s), tuple(d for d in self.depths if d > b)),)
                out.append(Choice(self.block_name(s, b, "kernel"), self.kernel_sizes, cond))
                out.append(Choice(self.block_name(s, b, "expand"), self.expand_ratios, cond))
        return out

    def plan(self, arch: Mapping[str, Value]) -> list[list[tuple[int, float]]]:
        """Per stage, ``(kernel, expand)`` of each block of ``arch``."""
        out: list[list[tuple[int, float]]] = []
        for s in range(len(self.stages)):
            blocks = []
            for b in range(int(arch[self.depth_name(s)])):
                kernel = arch[self.block_name(s, b, "kernel")]
                expand = arch[self.block_name(s, b, "expand")]
                assert not isinstance(kernel, str) and not isinstance(expand, str)
                blocks.append((int(kernel), float(expand)))
            out.append(blocks)
        return out

    def resolution(self, arch: Mapping[str, Value]) -> int | None:
        """The input resolution of ``arch`` (None without a ``resolution`` decision)."""
        value = arch.get("resolution")
        return None if value is None else int(value)

    def stage_specs(self, arch: Mapping[str, Value]) -> tuple[StageSpec, ...]:
        """The stages of ``arch``: the space's, with widths times the chosen stage multipliers."""
        out = []
        for s, spec in enumerate(self.stages):
            mult = float(arch.get(self.width_name(s), 1.0))
            out.append(spec if mult == 1.0 else StageSpec(max(1, round(spec.width * mult)), spec.stride,
                                                          spec.act, spec.se))
        return tuple(out)

    def max_arch(self) -> Architecture:
        """The largest architecture: deepest stages, largest kernels, expand ratios, resolution
        and stage widths."""
        values: dict[str, Value] = {}
        if self.resolutions:
            values["resolution"] = max(self.resolutions)
        for s in range(len(self.stages)):
            values[self.depth_name(s)] = max(self.depths)
            if self.stage_widths:
                values[self.width_name(s)] = max(self.stage_widths)
            for b in range(max(self.depths)):
                values[self.block_name(s, b, "kernel")] = max(self.kernel_sizes)
                values[self.block_name(s, b, "expand")] = max(self.expand_ratios)
        return self.make(values)

    def is_degenerate(self, arch: Architecture) -> bool:
        """Never: every block is a real operation and every network depends on its input."""
        self.validate(arch)
        return False

    def build(
        self,
        arch: Architecture,
        num_classes: int = 10,
        in_channels: int = 3,
        width_mult: float = 1.0,
        stem_stride: int = 2,
        dropout: float = 0.0,
        **kwargs: Any,
    ) -> ElasticNetwork:
        """The stand-alone network of ``arch`` (``width_mult`` scales every width)."""
        reject_unknown(self.name, kwargs, ("num_classes", "in_channels", "width_mult",
                                           "stem_stride", "dropout"))
        self.validate(arch)
        positive_int("num_classes", num_classes)
        positive_int("in_channels", in_channels)
        if not width_mult > 0:
            raise ConfigError(f"width_mult must be positive, got {width_mult!r}")
        if stem_stride not in (1, 2):
            raise ConfigError(f"stem_stride must be 1 or 2, got {stem_stride!r}")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {dropout!r}")
        config = NetworkConfig(self.stage_specs(arch), num_classes, in_channels, float(width_mult),
                               stem_stride, float(dropout), self.hswish, self.resolution(arch))
        return ElasticNetwork(self.plan(arch), config)

    def build_max(self, **kwargs: Any) -> ElasticNetwork:
        """The network of :meth:`max_arch`, whose weights every sub-network can inherit."""
        return self.build(self.max_arch(), **kwargs)

    def extract(self, max_net: ElasticNetwork, arch: Architecture) -> ElasticNetwork:
        """The stand-alone network of ``arch`` with weights cut out of ``max_net``.

        Each stage keeps its first ``depth`` blocks (elastic depth); each kept block is cut to the
        chosen kernel and expand ratio by :func:`extract_block`.
        """
        self.validate(arch)
        if self.stage_widths:
            raise ConfigError("sub-networks with per-stage widths cannot be cut out of the max network "
                              "(elastic width here is the expand ratio); create the space without "
                              "stage_widths for weight sharing")
        plan = self.plan(arch)
        if len(max_net.stages) != len(plan) or any(
            len(blocks) > len(max_net.stage(s)) for s, blocks in enumerate(plan)
        ):
            raise ConfigError("max_net is not a max network of this space (too few blocks)")
        sub = ElasticNetwork(plan, replace(max_net.config, resolution=self.resolution(arch)))
        sub.stem.load_state_dict(max_net.stem.state_dict())
        sub.first_block.load_state_dict(max_net.first_block.state_dict())
        for s, blocks in enumerate(plan):
            for b, (kernel, expand) in enumerate(blocks):
                sub.stage(s)[b] = extract_block(max_net.block(s, b), kernel, expand)
        sub.final_expand.load_state_dict(max_net.final_expand.state_dict())
        sub.feature_mix.load_state_dict(max_net.feature_mix.state_dict())
        sub.classifier.load_state_dict(max_net.classifier.state_dict())
        return sub

    def graph(self, arch: Architecture, part: str | None = None) -> dict[str, Any]:
        """A drawable chain of blocks (``MB{expand} {k}x{k}``) grouped by stage."""
        self.validate(arch)
        nodes = [{"id": "stem", "label": "stem 3x3 + MB1 3x3", "kind": "input"}]
        edges = []
        prev = "stem"
        for s, blocks in enumerate(self.plan(arch)):
            for b, (kernel, expand) in enumerate(blocks):
                nid = f"s{s}b{b}"
                nodes.append({"id": nid, "label": f"stage {s}: MB{expand:g} {kernel}x{kernel} "
                              f"({self.stage_specs(arch)[s].width})", "kind": "node"})
                edges.append({"src": prev, "dst": nid, "label": ""})
                prev = nid
        nodes.append({"id": "out", "label": "1x1 conv, pool, classifier", "kind": "output"})
        edges.append({"src": prev, "dst": "out", "label": ""})
        res = self.resolution(arch)
        title = "Elastic MobileNetV3 network" + (f" at {res}x{res}" if res is not None else "")
        return {"title": title, "layout": "chain", "nodes": nodes,
                "edges": edges}


__all__ = [
    "OFA_STAGES",
    "ElasticNetwork",
    "ElasticSpace",
    "MBConvBlock",
    "NetworkConfig",
    "SqueezeExcite",
    "StageSpec",
    "extract_block",
    "make_divisible",
]
