"""Single-stage detection parts: a feature pyramid, anchors, a RetinaNet head, its losses and
box post-processing, written on plain PyTorch.

The design follows the papers: the feature pyramid network of Lin et al. (CVPR 2017, "Feature
Pyramid Networks for Object Detection": 1x1 lateral convs, nearest-neighbour top-down additions,
3x3 output convs), and RetinaNet of Lin et al. (ICCV 2017, "Focal Loss for Dense Object
Detection": per level 3 sizes ``scale * 2^(k/3)`` x 3 aspect ratios, class and box subnets of
3x3 convs, the prior-probability bias 0.01, anchors with IoU >= 0.5 positive and < 0.4 negative,
sigmoid focal loss with alpha 0.25 and gamma 2, normalized by the number of positive anchors).
Box deltas are those of Faster R-CNN (Ren et al., NeurIPS 2015). torchvision has the same parts
(``FeaturePyramidNetwork``, ``AnchorGenerator``, ``RetinaNet``), but no torchvision build loads
beside the pinned CPU build of torch, so these are nasforge's own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

ASPECT_RATIOS = (0.5, 1.0, 2.0)
OCTAVES = (0.0, 1.0 / 3.0, 2.0 / 3.0)
#: Deltas larger than this (log of a size ratio) are clipped before exp() when decoding.
_MAX_LOG_RATIO = math.log(1000.0 / 16)


class FeaturePyramid(nn.Module):
    """FPN: lateral 1x1 convs to ``channels``, top-down sum (nearest upsampling), 3x3 smoothing."""

    def __init__(self, in_channels: Sequence[int], channels: int) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels)
        self.output = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in in_channels)

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Pyramid maps for ``features`` (finest first); each keeps its input's resolution."""
        top = self.lateral[-1](features[-1])
        outs = [self.output[-1](top)]
        for i in range(len(features) - 2, -1, -1):
            lat = self.lateral[i](features[i])
            top = lat + F.interpolate(top, size=lat.shape[-2:], mode="nearest")
            outs.insert(0, self.output[i](top))
        return outs


def level_anchors(size: tuple[int, int], stride: int, scale: float, device: torch.device) -> torch.Tensor:
    """Anchors ``(H * W * 9, 4)`` as ``x1, y1, x2, y2`` centred on each cell of one level.

    Order: location-major, then the 9 shapes (3 octave sizes x 3 aspect ratios), matching the
    head's ``(A, K)`` channel layout.
    """
    shapes = []
    for octave in OCTAVES:
        area = (scale * 2.0**octave) ** 2
        for ratio in ASPECT_RATIOS:  # ratio = height / width
            w = math.sqrt(area / ratio)
            shapes.append((-w / 2, -w * ratio / 2, w / 2, w * ratio / 2))
    base = torch.tensor(shapes, dtype=torch.float32, device=device)
    ys = (torch.arange(size[0], dtype=torch.float32, device=device) + 0.5) * stride
    xs = (torch.arange(size[1], dtype=torch.float32, device=device) + 0.5) * stride
    cy, cx = torch.meshgrid(ys, xs, indexing="ij")
    centres = torch.stack([cx, cy, cx, cy], dim=-1).reshape(-1, 1, 4)
    return (centres + base).reshape(-1, 4)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU of boxes ``a (N, 4)`` and ``b (M, 4)`` in ``x1, y1, x2, y2`` form."""
    area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
    area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    lt = torch.max(a[:, None, :2], b[None, :, :2])
    rb = torch.min(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=-1)
    return inter / (area_a[:, None] + area_b[None, :] - inter).clamp(min=1e-9)


def encode_boxes(boxes: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """Faster R-CNN deltas ``(dx, dy, dw, dh)`` of ``boxes`` relative to ``anchors``."""
    aw, ah = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    ax, ay = anchors[:, 0] + aw / 2, anchors[:, 1] + ah / 2
    bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    bx, by = boxes[:, 0] + bw / 2, boxes[:, 1] + bh / 2
    return torch.stack([(bx - ax) / aw, (by - ay) / ah, torch.log(bw / aw), torch.log(bh / ah)], dim=1)


def decode_boxes(deltas: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`encode_boxes`."""
    aw, ah = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    ax, ay = anchors[:, 0] + aw / 2, anchors[:, 1] + ah / 2
    cx, cy = ax + deltas[:, 0] * aw, ay + deltas[:, 1] * ah
    w = aw * torch.exp(deltas[:, 2].clamp(max=_MAX_LOG_RATIO))
    h = ah * torch.exp(deltas[:, 3].clamp(max=_MAX_LOG_RATIO))
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=1)


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression: indices of the kept boxes, highest score first."""
    order = scores.argsort(descending=True)
    keep: list[int] = []
    iou = box_iou(boxes[order], boxes[order])
    suppressed = torch.zeros(len(order), dtype=torch.bool, device=boxes.device)
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= iou[i] > iou_threshold
    return order[torch.tensor(keep, dtype=torch.long, device=boxes.device)]


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor,
                iou_threshold: float) -> torch.Tensor:
    """NMS within each class: boxes of different labels are shifted apart so they never overlap."""
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    offsets = labels.to(boxes.dtype) * (boxes.max() + 1)
    return nms(boxes + offsets[:, None], scores, iou_threshold)


def sigmoid_focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25,
                       gamma: float = 2.0) -> torch.Tensor:
    """Summed focal loss ``-alpha_t (1 - p_t)^gamma log(p_t)`` (Lin et al., ICCV 2017)."""
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
    return (alpha_t * (1 - p_t) ** gamma * ce).sum()


class RetinaHead(nn.Module):
    """Class and box subnets shared by every pyramid level: ``convs`` 3x3 ReLU convs each."""

    def __init__(self, channels: int, num_classes: int, convs: int, num_anchors: int = 9) -> None:
        super().__init__()

        def tower() -> nn.Sequential:
            layers: list[nn.Module] = []
            for _ in range(convs):
                layers += [nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=False)]
            return nn.Sequential(*layers)

        self.num_classes, self.num_anchors = num_classes, num_anchors
        self.cls_tower, self.box_tower = tower(), tower()
        self.cls_out = nn.Conv2d(channels, num_anchors * num_classes, 3, padding=1)
        self.box_out = nn.Conv2d(channels, num_anchors * 4, 3, padding=1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.zeros_(m.bias)  # type: ignore[arg-type]
        # Every anchor starts at foreground probability 0.01, so the many easy negatives do not
        # swamp the first steps of training.
        nn.init.constant_(self.cls_out.bias, -math.log((1 - 0.01) / 0.01))  # type: ignore[arg-type]

    def forward(self, maps: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Class logits ``(B, anchors, K)`` and box deltas ``(B, anchors, 4)`` over all levels."""
        logits, deltas = [], []
        for x in maps:
            b, _, h, w = x.shape
            c = self.cls_out(self.cls_tower(x)).view(b, self.num_anchors, self.num_classes, h, w)
            d = self.box_out(self.box_tower(x)).view(b, self.num_anchors, 4, h, w)
            logits.append(c.permute(0, 3, 4, 1, 2).reshape(b, -1, self.num_classes))
            deltas.append(d.permute(0, 3, 4, 1, 2).reshape(b, -1, 4))
        return torch.cat(logits, dim=1), torch.cat(deltas, dim=1)


def match_anchors(anchors: torch.Tensor, boxes: torch.Tensor, fg: float = 0.5, bg: float = 0.4
                  ) -> torch.Tensor:
    """For each anchor: the index of its ground-truth box, -1 for background, -2 to ignore.

    Each box also keeps the anchors that overlap it most, even below ``fg`` (small objects would
    otherwise have no positive anchor at all).
    """
    matched = torch.full((len(anchors),), -1, dtype=torch.long, device=anchors.device)
    if len(boxes) == 0:
        return matched
    iou = box_iou(boxes, anchors)  # (G, A)
    best, idx = iou.max(dim=0)
    matched = torch.where(best >= fg, idx, matched)
    matched[(best >= bg) & (best < fg)] = -2
    best_per_box = iou.max(dim=1, keepdim=True).values
    gt, anchor = torch.nonzero((iou == best_per_box) & (best_per_box > 0), as_tuple=True)
    matched[anchor] = gt
    return matched


__all__ = [
    "ASPECT_RATIOS",
    "FeaturePyramid",
    "RetinaHead",
    "batched_nms",
    "box_iou",
    "decode_boxes",
    "encode_boxes",
    "level_anchors",
    "match_anchors",
    "nms",
    "sigmoid_focal_loss",
]
