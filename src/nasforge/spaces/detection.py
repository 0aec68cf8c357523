"""Object-detection search space: a macro backbone, a feature pyramid and a RetinaNet head.

The backbone is a :class:`~nasforge.spaces.macro.MacroSpace` network (the same decisions: layer
count, op, width, activation, skips) whose resolution halves ``R`` times. A feature pyramid
(:class:`~nasforge.ops.detection.FeaturePyramid`) reads the outputs of its last stages, one level
per anchor scale, and a RetinaNet head predicts classes and boxes on every level. Two more
decisions shape the detector: ``fpn/channels`` (the pyramid's width) and ``head/convs`` (3x3 convs
in each head subnet; RetinaNet uses 4).

Anchor scales and strides: level ``i`` gets anchors of size ``anchor_scales[i]`` (times
``2^(k/3)``, 3 aspect ratios) on a grid of stride ``anchor_scales[i] / 4``, as RetinaNet pairs 32
pixel anchors with stride 8. The scales must double from level to level, so the backbone halves
its resolution ``R = log2(anchor_scales[-1] / 4)`` times (the stem keeps full resolution) and the
levels read the stages at strides ``anchor_scales[i] / 4``. The defaults are the
``object_detection`` preset's (32-512 pixel anchors, for images of about 512 pixels and more);
small images need smaller scales (the demo set of 128-pixel canvases uses 16, 32, 64).

``build(arch)`` gives a :class:`DetectionNetwork`. Called on images it returns image-level class
logits (the strongest anchor's logit per class), the shape every space's network gives;
:meth:`DetectionNetwork.loss` and :meth:`DetectionNetwork.detect` are the detector's training
and inference.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from nasforge.errors import ConfigError, allowed
from nasforge.ops.detection import (
    FeaturePyramid,
    RetinaHead,
    batched_nms,
    decode_boxes,
    encode_boxes,
    level_anchors,
    match_anchors,
    sigmoid_focal_loss,
)
from nasforge.registry import SPACES
from nasforge.space.architecture import Architecture
from nasforge.space.decision import Choice, Value
from nasforge.spaces._options import positive_int, reject_unknown
from nasforge.spaces.macro import MacroNetwork, MacroSpace, reduction_positions, scaled_width

DETECTION_OPS: tuple[str, ...] = (
    "nor_conv_3x3", "nor_conv_5x5", "dw_conv_3x3", "atrous_conv_3x3", "max_pool_3x3",
    "avg_pool_3x3", "skip_connect",
)
"""The object_detection preset's backbone ops (conv3x3, conv5x5, depthwise, atrous, pools, identity)."""

Target = Mapping[str, torch.Tensor]

#: The name ``from_string`` accepts for the hand-designed reference (final-stage baseline).
REFERENCE_NAME = "VGG_RETINANET"


class DetectionNetwork(nn.Module):
    """Backbone stages -> feature pyramid -> RetinaNet head, with its loss and inference."""

    def __init__(self, backbone: MacroNetwork, taps: Sequence[int], widths: Sequence[int],
                 strides: Sequence[int], scales: Sequence[float], fpn_channels: int, head_convs: int,
                 num_classes: int) -> None:
        super().__init__()
        # The backbone's classifier is never used here: dropped, so every parameter gets a gradient.
        backbone.classifier = nn.Identity()  # type: ignore[assignment]
        self.backbone = backbone
        self.taps, self.strides, self.scales = list(taps), list(strides), list(scales)
        self.fpn = FeaturePyramid(widths, fpn_channels)
        self.head = RetinaHead(fpn_channels, num_classes, head_convs)
        self.num_classes = num_classes

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The pyramid maps, finest first."""
        outs = self.backbone.layer_outputs(images)
        return self.fpn([outs[t] for t in self.taps])

    def _predict(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[int]]:
        """Class logits, box deltas, anchors (all levels) and the number of anchors per level."""
        maps = self.features(images)
        logits, deltas = self.head(maps)
        per_level = [level_anchors((int(m.shape[-2]), int(m.shape[-1])), s, a, images.device)
                     for m, s, a in zip(maps, self.strides, self.scales)]
        return logits, deltas, torch.cat(per_level), [len(a) for a in per_level]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Image-level class logits ``(B, K)``: each class's strongest anchor."""
        return self._predict(images)[0].max(dim=1).values

    def loss(self, images: torch.Tensor, targets: Sequence[Target]) -> dict[str, torch.Tensor]:
        """Focal classification loss and L1 box-delta loss, each divided by the positive anchors.

        ``targets[i]`` holds ``boxes`` (``(G, 4)`` pixels, ``x1, y1, x2, y2``) and ``labels``
        (``(G,)``, ``0 .. num_classes - 1``).
        """
        logits, deltas, anchors, _ = self._predict(images)
        cls_loss = logits.new_zeros(())
        box_loss = logits.new_zeros(())
        positives = 0
        for i, t in enumerate(targets):
            boxes = t["boxes"].to(anchors)
            matched = match_anchors(anchors, boxes)
            pos = matched >= 0
            valid = matched != -2
            onehot = torch.zeros_like(logits[i])
            if pos.any():
                onehot[pos, t["labels"].to(images.device)[matched[pos]]] = 1.0
                target_deltas = encode_boxes(boxes[matched[pos]], anchors[pos])
                box_loss = box_loss + (deltas[i][pos] - target_deltas).abs().sum()
            cls_loss = cls_loss + sigmoid_focal_loss(logits[i][valid], onehot[valid])
            positives += int(pos.sum())
        norm = max(positives, 1)
        return {"classification": cls_loss / norm, "box_regression": box_loss / norm}

    def decoded(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every anchor's decoded box ``(B, A, 4)`` (pixels, clipped to the image) and its class
        probabilities ``(B, A, K)``: the detector before thresholding and NMS (what an ONNX export
        gives)."""
        logits, deltas, anchors, _ = self._predict(images)
        b, a = deltas.shape[:2]
        boxes = decode_boxes(deltas.reshape(-1, 4), anchors.repeat(b, 1)).reshape(b, a, 4)
        h, w = images.shape[-2:]
        limit = torch.tensor([w, h, w, h], dtype=boxes.dtype, device=boxes.device)
        return torch.minimum(boxes.clamp(min=0), limit), torch.sigmoid(logits)

    @torch.no_grad()
    def detect(self, images: torch.Tensor, score_threshold: float = 0.05, nms_threshold: float = 0.5,
               max_detections: int = 100, candidates_per_level: int = 1000) -> list[dict[str, torch.Tensor]]:
        """Boxes, scores and labels per image: top candidates per level, decoded, clipped, NMS."""
        logits, deltas, anchors, per_level = self._predict(images)
        h, w = images.shape[-2:]
        out = []
        for i in range(len(images)):
            boxes_all, scores_all, labels_all = [], [], []
            start = 0
            for n in per_level:
                scores = torch.sigmoid(logits[i, start:start + n]).flatten()
                keep = scores > score_threshold
                idx = torch.nonzero(keep).flatten()
                top = scores[idx].topk(min(candidates_per_level, len(idx))).indices
                idx = idx[top]
                anchor_idx, label = idx // self.num_classes, idx % self.num_classes
                boxes = decode_boxes(deltas[i, start + anchor_idx], anchors[start + anchor_idx])
                boxes[:, 0::2] = boxes[:, 0::2].clamp(0, float(w))
                boxes[:, 1::2] = boxes[:, 1::2].clamp(0, float(h))
                boxes_all.append(boxes)
                scores_all.append(scores[idx])
                labels_all.append(label)
                start += n
            boxes, scores, labels = torch.cat(boxes_all), torch.cat(scores_all), torch.cat(labels_all)
            keep = batched_nms(boxes, scores, labels, nms_threshold)[:max_detections]
            out.append({"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]})
        return out


@SPACES.register("detection")
class DetectionSpace(MacroSpace):
    """Object detection: a macro backbone, an FPN over its stages and a RetinaNet head."""

    name = "detection"
    small_build_kwargs = {"width_mult": 0.0625}

    def __init__(
        self,
        min_layers: int = 8,
        max_layers: int = 30,
        filters: Sequence[int] = (32, 64, 128, 256, 512, 1024),
        ops: Sequence[str] = DETECTION_OPS,
        skips: bool = True,
        monotone_filters: bool = False,
        activations: Sequence[str] = ("relu",),
        fpn_channels: Sequence[int] = (64, 128, 256),
        head_convs: Sequence[int] = (1, 2, 4),
        anchor_scales: Sequence[float] = (32, 64, 128, 256, 512),
    ) -> None:
        scales = tuple(anchor_scales)
        if (not scales or any(isinstance(s, bool) or not isinstance(s, (int, float)) for s in scales)
                or scales[0] < 8 or math.log2(scales[0] / 4) % 1
                or any(b != 2 * a for a, b in itertools.pairwise(scales))):
            raise ConfigError(f"anchor_scales must start at a power of two >= 8 and double from level to "
                              f"level (e.g. 32, 64, 128), got {allowed(scales)}")
        self.anchor_scales = scales
        self.reductions = int(math.log2(scales[-1] / 4))
        if min_layers < self.reductions + 1:
            raise ConfigError(f"min_layers must be at least {self.reductions + 1} for anchor_scales up to "
                              f"{scales[-1]:g} (the backbone halves its resolution {self.reductions} times), "
                              f"got {min_layers}")
        for label, values in (("fpn_channels", fpn_channels), ("head_convs", head_convs)):
            if not tuple(values):
                raise ConfigError(f"{label} must list at least one value")
            for v in values:
                positive_int(label, v)
        self.fpn_channels, self.head_convs = tuple(fpn_channels), tuple(head_convs)
        super().__init__(min_layers, max_layers, filters, ops, skips, monotone_filters, activations)

    def options(self) -> dict[str, Any]:
        """The constructor options of this space (JSON-able)."""
        out = super().options()
        out.update(fpn_channels=list(self.fpn_channels), head_convs=list(self.head_convs),
                   anchor_scales=list(self.anchor_scales))
        return out

    def _declare(self) -> Sequence[Choice]:
        return [*super()._declare(),
                Choice("fpn/channels", self.fpn_channels, doc="feature pyramid width"),
                Choice("head/convs", self.head_convs, doc="3x3 convs per head subnet")]

    def size(self) -> int:
        """Exact count: the backbone's connected architectures times the FPN and head choices."""
        return super().size() * len(self.fpn_channels) * len(self.head_convs)

    def reference_architecture(self) -> Architecture:
        """``VGG_RETINANET``, the hand-designed baseline: a VGG-style backbone (plain 3x3 convs,
        widths growing stage by stage, no skips, the first activation), a 128-wide FPN when offered
        and RetinaNet's 4 head convs when offered (else the most)."""
        base = dict(super().reference_architecture())
        n = max(int(base["num_layers"]), self.min_layers)
        base["num_layers"] = n
        fpn = 128 if 128 in self.fpn_channels else self.fpn_channels[0]
        convs = 4 if 4 in self.head_convs else self.head_convs[-1]
        values: dict[str, Value] = {**base, "fpn/channels": fpn, "head/convs": convs}
        widths = sorted(self.filters)
        conv = base["layer0/op"]
        for j in range(n):
            values[f"layer{j}/op"] = conv
            values[f"layer{j}/filters"] = widths[min(j * len(widths) // n, len(widths) - 1)]
        return self.complete(values)

    def from_string(self, text: str) -> Architecture:
        """The JSON form of :meth:`to_string`, or ``"VGG_RETINANET"``: the hand-designed reference."""
        if text.strip().upper() == REFERENCE_NAME:
            return self.reference_architecture()
        return super().from_string(text)

    def level_layers(self, num_layers: int) -> tuple[list[int], list[int]]:
        """``(taps, strides)``: which layer outputs feed the pyramid levels, and their strides."""
        positions = reduction_positions(num_layers, self.reductions)
        stage_ends = [p - 1 for p in positions] + [num_layers - 1]  # stage r ends at stride 2^r
        strides = [int(s) // 4 for s in self.anchor_scales]
        taps = [stage_ends[int(math.log2(s))] for s in strides]
        return taps, strides

    def example_input(self, batch: int = 2, seed: int = 0) -> torch.Tensor:
        """Images big enough for the coarsest level: ``(batch, 3, S, S)``, ``S = max(64, 2^R)``."""
        side = max(64, 2**self.reductions)
        gen = torch.Generator().manual_seed(seed)
        return torch.randn(batch, 3, side, side, generator=gen)

    def graph(self, arch: Architecture, part: str | None = None) -> dict[str, Any]:
        """The backbone chain (as the macro space draws it) ending in the FPN + head."""
        backbone = Architecture("macro", {k: v for k, v in arch.items() if k.startswith(("layer", "num_"))})
        g = MacroSpace.graph(_as_macro(self), backbone, part)
        g["title"] = f"Detection backbone ({arch['num_layers']} layers) + FPN {arch['fpn/channels']}"
        g["nodes"][-1]["label"] = f"FPN {arch['fpn/channels']} + head x{arch['head/convs']}"
        return g

    def build(  # type: ignore[override]
        self,
        arch: Architecture,
        num_classes: int = 10,
        in_channels: int = 3,
        width_mult: float = 1.0,
        **kwargs: Any,
    ) -> DetectionNetwork:
        """The detector of ``arch`` for ``num_classes`` object classes; ``width_mult`` scales the
        backbone and the pyramid widths (kept even, at least 2)."""
        reject_unknown(self.name, kwargs, ("num_classes", "in_channels", "width_mult"))
        backbone = super().build(arch, num_classes=1, in_channels=in_channels,
                                 reductions=self.reductions, width_mult=width_mult)
        taps, strides = self.level_layers(int(arch["num_layers"]))
        widths = [scaled_width(f, width_mult) for _, f, _, _ in self.layers(arch)]
        return DetectionNetwork(backbone, taps, [widths[t] for t in taps], strides, self.anchor_scales,
                                scaled_width(int(arch["fpn/channels"]), width_mult),
                                int(arch["head/convs"]), num_classes)


def _as_macro(space: DetectionSpace) -> MacroSpace:
    """A macro space with the same backbone decisions (to draw the backbone)."""
    return MacroSpace(space.min_layers, space.max_layers, space.filters, space.ops, space.skips,
                      space.monotone_filters, space.activations)


__all__ = ["DETECTION_OPS", "REFERENCE_NAME", "DetectionNetwork", "DetectionSpace"]
