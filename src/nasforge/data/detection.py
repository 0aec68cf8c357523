"""A small, deterministic object-detection set composed from real Fashion-MNIST items.

Each image is a black ``canvas x canvas`` picture onto which 1..``max_objects`` Fashion-MNIST items
are pasted, each cropped to its non-zero pixels, resized to a random size and placed at a random
position where it does not overlap earlier items. The boxes are exact (the pasted patch's extent)
and the labels are the items' Fashion-MNIST classes. Everything is drawn from one seeded generator,
so the same seed gives the same set; no download is needed beyond the Fashion-MNIST files that
:func:`nasforge.data.load_dataset` finds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from nasforge.data.dataset import ArrayDataset, load_dataset
from nasforge.errors import ConfigError


@dataclass
class DetectionSet:
    """Images ``(N, C, H, W)`` (uint8) with per-image ``boxes`` (``(G, 4)`` float, ``x1, y1, x2,
    y2`` pixels) and ``labels`` (``(G,)`` int64); ``num_classes`` object classes."""

    images: torch.Tensor
    boxes: list[torch.Tensor]
    labels: list[torch.Tensor]
    num_classes: int
    class_names: tuple[str, ...] = ()

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, indices: torch.Tensor | list[int]) -> DetectionSet:
        """The images at ``indices`` with their boxes and labels."""
        idx = [int(i) for i in indices]
        return DetectionSet(self.images[idx], [self.boxes[i] for i in idx], [self.labels[i] for i in idx],
                            self.num_classes, self.class_names)

    def concat(self, other: DetectionSet) -> DetectionSet:
        """This set followed by ``other`` (same classes and image shape)."""
        if other.num_classes != self.num_classes or other.images.shape[1:] != self.images.shape[1:]:
            raise ConfigError(f"cannot join detection sets of {self.num_classes} and {other.num_classes} "
                              f"classes, images {tuple(self.images.shape[1:])} and {tuple(other.images.shape[1:])}")
        return DetectionSet(torch.cat([self.images, other.images]), self.boxes + other.boxes,
                            self.labels + other.labels, self.num_classes, self.class_names)

    def targets(self, indices: torch.Tensor | list[int]) -> list[dict[str, torch.Tensor]]:
        """The ``{"boxes", "labels"}`` targets of the images at ``indices``."""
        return [{"boxes": self.boxes[int(i)], "labels": self.labels[int(i)]} for i in indices]


def compose(items: ArrayDataset, num_images: int, canvas: int = 128, max_objects: int = 3,
            min_size: int = 20, max_size: int = 56, seed: int = 0) -> DetectionSet:
    """Paste random items of ``items`` (single-channel, e.g. Fashion-MNIST) onto ``num_images``
    canvases (see the module docstring); sizes are the longer side of each pasted item."""
    for label, value in (("num_images", num_images), ("canvas", canvas), ("max_objects", max_objects),
                         ("min_size", min_size), ("max_size", max_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{label} must be a positive integer, got {value!r}")
    if not 4 <= min_size <= max_size <= canvas:
        raise ConfigError(f"need 4 <= min_size <= max_size <= canvas, got min_size {min_size}, "
                          f"max_size {max_size}, canvas {canvas}")
    if items.images.shape[1] != 1:
        raise ConfigError(f"compose pastes single-channel items, got {items.images.shape[1]} channels")
    rng = np.random.default_rng(seed)
    images = torch.zeros(num_images, 1, canvas, canvas, dtype=torch.uint8)
    all_boxes, all_labels = [], []
    for n in range(num_images):
        boxes: list[list[float]] = []
        labels: list[int] = []
        for _ in range(int(rng.integers(1, max_objects + 1))):
            k = int(rng.integers(len(items)))
            item = items.images[k, 0]
            ys, xs = torch.nonzero(item > 0, as_tuple=True)
            if len(ys) == 0:
                continue
            crop = item[int(ys.min()):int(ys.max()) + 1, int(xs.min()):int(xs.max()) + 1]
            side = int(rng.integers(min_size, max_size + 1))
            ratio = side / max(crop.shape)
            h, w = max(1, round(crop.shape[0] * ratio)), max(1, round(crop.shape[1] * ratio))
            patch = F.interpolate(crop[None, None].float(), size=(h, w), mode="bilinear",
                                  align_corners=False)[0, 0].round().clamp(0, 255).to(torch.uint8)
            for _attempt in range(20):  # a free spot: no overlap with the items already pasted
                y, x = int(rng.integers(canvas - h + 1)), int(rng.integers(canvas - w + 1))
                if all(x >= b[2] or x + w <= b[0] or y >= b[3] or y + h <= b[1] for b in boxes):
                    images[n, 0, y:y + h, x:x + w] = patch
                    boxes.append([float(x), float(y), float(x + w), float(y + h)])
                    labels.append(int(items.labels[k]))
                    break
        all_boxes.append(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
        all_labels.append(torch.tensor(labels, dtype=torch.long))
    return DetectionSet(images, all_boxes, all_labels, items.info.num_classes, tuple(items.info.classes or ()))


def fashion_mnist_detection(split: str = "train", num_images: int = 256, canvas: int = 128,
                            max_objects: int = 3, seed: int = 0,
                            data_dir: str | os.PathLike[str] | None = None) -> DetectionSet:
    """:func:`compose` over the Fashion-MNIST ``split`` found by :func:`load_dataset`."""
    return compose(load_dataset("fashion_mnist", split, data_dir), num_images, canvas=canvas,
                   max_objects=max_objects, seed=seed)


__all__ = ["DetectionSet", "compose", "fashion_mnist_detection"]
