"""COCO mean average precision of detections (mAP@[.5:.95] and mAP@.5), as a metric.

The implementation lives in :mod:`nasforge.data.coco_map` (beside the COCO readers), where the
detector's training code in :mod:`nasforge.train` can use it too (``metrics`` imports ``train``,
so ``train`` cannot import ``metrics``).
"""

from nasforge.data.coco_map import mean_average_precision

__all__ = ["mean_average_precision"]
