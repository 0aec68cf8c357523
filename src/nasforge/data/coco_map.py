"""COCO mean average precision of detections: mAP@[.5:.95] and mAP@.5.

The numbers are COCO's own evaluation (``pycocotools.cocoeval.COCOeval``, bbox), fed in memory:
101-point interpolated precision, averaged over IoU thresholds 0.50:0.05:0.95 and over classes
that have ground truth. (torchmetrics' ``MeanAveragePrecision`` wraps the same code but needs
torchvision, which does not load beside the pinned CPU build of torch.) Public as
:func:`nasforge.metrics.detection.mean_average_precision`; it lives in ``data`` so that the
detector's training code in ``nasforge.train`` can score a test split (``metrics`` imports
``train``, so ``train`` cannot import ``metrics``).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from nasforge.errors import ConfigError

Boxes = Mapping[str, torch.Tensor]


def mean_average_precision(predictions: Sequence[Boxes], targets: Sequence[Boxes],
                           num_classes: int) -> dict[str, float]:
    """``{"map": mAP@[.5:.95], "map_50": mAP@.5}`` of ``predictions`` (``boxes``, ``scores``,
    ``labels`` per image) against ``targets`` (``boxes``, ``labels``); boxes are ``x1, y1, x2, y2``.

    Both are 0.0 when nothing is detected; -1 is never returned for images with ground truth.
    """
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:  # pragma: no cover - a dependency of nasforge
        raise ConfigError("mean average precision needs pycocotools: pip install pycocotools") from None
    if len(predictions) != len(targets):
        raise ConfigError(f"{len(predictions)} predictions for {len(targets)} images")
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    detections: list[dict[str, Any]] = []
    for i, (p, t) in enumerate(zip(predictions, targets)):
        images.append({"id": i})
        for box, label in zip(t["boxes"].tolist(), t["labels"].tolist()):
            w, h = box[2] - box[0], box[3] - box[1]
            annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": int(label),
                                "bbox": [box[0], box[1], w, h], "area": w * h, "iscrowd": 0})
        for box, score, label in zip(p["boxes"].tolist(), p["scores"].tolist(), p["labels"].tolist()):
            detections.append({"image_id": i, "category_id": int(label), "score": float(score),
                               "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]]})
    if not annotations:
        raise ConfigError("mean average precision needs at least one ground-truth box")
    if not detections:
        return {"map": 0.0, "map_50": 0.0}
    gt = COCO()
    gt.dataset = {"images": images, "annotations": annotations,
                  "categories": [{"id": c} for c in range(num_classes)]}
    with contextlib.redirect_stdout(io.StringIO()):  # COCO prints progress lines
        gt.createIndex()
        dt = gt.loadRes(detections)
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {"map": max(float(ev.stats[0]), 0.0), "map_50": max(float(ev.stats[1]), 0.0)}


__all__ = ["mean_average_precision"]
