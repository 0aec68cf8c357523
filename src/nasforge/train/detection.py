"""How a detector of the detection space is trained and measured: the recipe, its three data
splits, the training loop and COCO mAP.

One recipe (:class:`DetectionRecipe`) serves the search (the ``detection`` evaluator trains on
``train`` and measures on ``val``), the final stage (train on ``train`` + ``val``, test once on
``test``) and ``nasforge train`` (the same, then saved and exported), so the three train a detector
the same way.

Splits. The composed Fashion-MNIST scenes (:mod:`nasforge.data.detection`) take their items from
disjoint parts of Fashion-MNIST: training scenes from its training split, validation scenes from
the first half of its test split and test scenes from the second half, so no item is seen in two
splits. A COCO / Pascal VOC directory (``data``) is split once with a fixed seed: 10% test (when it
has at least 3 images), 20% validation, the rest training.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn

from nasforge.data.coco_map import mean_average_precision
from nasforge.data.dataset import load_dataset
from nasforge.data.detection import DetectionSet, compose
from nasforge.data.detection_files import load_detection_files
from nasforge.errors import ConfigError


@dataclass(frozen=True)
class DetectionSplits:
    """Training, validation and test scenes (``test`` is None for a file set under 3 images)."""

    train: DetectionSet
    val: DetectionSet
    test: DetectionSet | None


@dataclass(frozen=True)
class DetectionRecipe:
    """Data and training settings of a detector (AdamW, one-cycle schedule, focal + L1 losses).

    ``epochs`` is the default training length; ``*_images`` cap the splits; ``canvas`` is the
    image side (composed scenes, or the size files are resized to); ``width_mult`` scales the
    backbone and pyramid widths; ``data`` is a COCO/VOC path (None: composed Fashion-MNIST
    scenes from the files in ``data_dir``).
    """

    epochs: int = 3
    train_images: int = 256
    val_images: int = 64
    test_images: int = 64
    canvas: int = 128
    max_objects: int = 3
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-4
    width_mult: float = 0.25
    data_dir: str | None = None
    data: str | None = None

    def __post_init__(self) -> None:
        for label in ("epochs", "train_images", "val_images", "test_images", "batch_size"):
            value = getattr(self, label)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{label} must be a positive integer, got {value!r}")
        if not self.lr > 0 or not self.width_mult > 0 or self.weight_decay < 0:
            raise ConfigError(f"lr and width_mult must be positive and weight_decay >= 0, got lr {self.lr!r}, "
                              f"width_mult {self.width_mult!r}, weight_decay {self.weight_decay!r}")

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> DetectionRecipe:
        """A recipe from stored options; unknown keys are refused, naming the known ones."""
        known = {f.name for f in fields(cls)}
        bad = sorted(set(options) - known)
        if bad:
            raise ConfigError(f"unknown detection training option(s) {', '.join(map(repr, bad))}; "
                              f"known: {', '.join(sorted(known))}")
        return cls(**options)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able settings."""
        return asdict(self)

    def load_splits(self) -> DetectionSplits:
        """The three splits (see the module docstring); fixed seeds, so always the same scenes."""
        if self.data is not None:
            full = load_detection_files(self.data, image_size=self.canvas)
            if len(full) < 2:
                raise ConfigError(f"{self.data!r} has {len(full)} image(s); a split needs at least 2")
            order = torch.randperm(len(full), generator=torch.Generator().manual_seed(0)).tolist()
            n_test = (len(full) // 10 or 1) if len(full) >= 3 else 0
            n_val = max(1, len(full) // 5)
            test = full.subset(order[:n_test][:self.test_images]) if n_test else None
            val = full.subset(order[n_test:n_test + n_val][:self.val_images])
            return DetectionSplits(full.subset(order[n_test + n_val:][:self.train_images]), val, test)
        items = load_dataset("fashion_mnist", "train", self.data_dir)
        held_out = load_dataset("fashion_mnist", "test", self.data_dir)
        half = len(held_out) // 2

        def scenes(source: Any, n: int, seed: int) -> DetectionSet:
            return compose(source, n, canvas=self.canvas, max_objects=self.max_objects, seed=seed)

        return DetectionSplits(scenes(items, self.train_images, 1),
                               scenes(held_out.subset(range(half)), self.val_images, 2),
                               scenes(held_out.subset(range(half, len(held_out))), self.test_images, 3))

    def build(self, space: Any, arch: Any, data: DetectionSet, seed: int) -> nn.Module:
        """The detector of ``arch`` for ``data``'s classes and channels, initialized from ``seed``."""
        torch.manual_seed(seed)
        model: nn.Module = space.build(arch, num_classes=data.num_classes,
                                       in_channels=int(data.images.shape[1]), width_mult=self.width_mult)
        return model


def as_input(images: torch.Tensor, device: str) -> torch.Tensor:
    """Stored uint8 images as the detector takes them: float pixels in [0, 1] (no normalization)."""
    return images.to(device).float() / 255.0


def train_detector(model: nn.Module, data: DetectionSet, recipe: DetectionRecipe, epochs: int, seed: int,
                   device: str, on_epoch: Callable[[int, float], bool] | None = None) -> tuple[float, int]:
    """Train ``model`` (a :class:`~nasforge.spaces.detection.DetectionNetwork`) on ``data``.

    AdamW with a one-cycle schedule over all ``epochs`` (so a short run still anneals), gradients
    clipped at norm 10. ``on_epoch(epoch, last_loss)`` returning True stops training (pruning);
    training also stops at an epoch whose loss is not finite. Returns ``(last loss, epochs run)``.
    """
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    steps = epochs * math.ceil(len(data) / recipe.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=max(steps, 1), pct_start=0.2)
    gen = torch.Generator().manual_seed(seed)
    loss_value = float("nan")
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(data), generator=gen)
        for b in range(0, len(data), recipe.batch_size):
            idx = order[b:b + recipe.batch_size]
            targets = [{k: v.to(device) for k, v in t.items()} for t in data.targets(idx)]
            losses = model.loss(as_input(data.images[idx], device), targets)  # type: ignore[operator]
            loss = losses["classification"] + losses["box_regression"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            opt.step()
            sched.step()
            loss_value = float(loss.detach())
        if not math.isfinite(loss_value) or (on_epoch is not None and on_epoch(epoch, loss_value)):
            return loss_value, epoch
    return loss_value, epochs


@torch.no_grad()
def measure_detector(model: nn.Module, data: DetectionSet, batch_size: int, device: str) -> dict[str, float]:
    """COCO ``map`` (mAP@[.5:.95]) and ``map_50`` of ``model``'s detections on ``data``."""
    model.eval()
    preds = []
    for start in range(0, len(data), batch_size):
        images = as_input(data.images[start:start + batch_size], device)
        preds += [{k: v.cpu() for k, v in p.items()} for p in model.detect(images)]  # type: ignore[operator]
    return mean_average_precision(preds, data.targets(list(range(len(data)))), data.num_classes)


class DecodedDetector(nn.Module):
    """The exportable form of a detector: ``images`` in [0, 1] -> ``(boxes, scores)``.

    ``boxes`` ``(B, A, 4)``: every anchor's decoded box (``x1, y1, x2, y2`` pixels, clipped to the
    image); ``scores`` ``(B, A, K)``: per-class sigmoid probabilities. What
    :meth:`~nasforge.spaces.detection.DetectionNetwork.detect` adds on top, and a consumer of the
    export does itself: keep scores above a threshold (0.05), then per-class NMS (IoU 0.5).
    """

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Decoded boxes and class scores of every anchor."""
        return self.network.decoded(images)  # type: ignore[operator]


__all__ = ["DecodedDetector", "DetectionRecipe", "DetectionSplits", "as_input", "measure_detector",
           "train_detector"]
