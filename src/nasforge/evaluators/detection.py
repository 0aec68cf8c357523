"""Detection evaluator: train a detector of the detection space briefly, report its COCO mAP.

Each evaluation builds ``space.build(arch)`` (a backbone, an FPN and a RetinaNet head, see
:mod:`nasforge.spaces.detection`), trains it with AdamW on the composed Fashion-MNIST detection set
(:mod:`nasforge.data.detection`) for ``epochs`` epochs (the fidelity), and measures mAP@[.5:.95]
(``map``, the objective to maximize) and mAP@.5 (``map_50``) on held-out composed images. The
images are made from Fashion-MNIST's training split (training images) and test split
(validation images), so no item is seen in both.

With ``data`` (a COCO annotations file or directory, or a Pascal VOC directory; see
:mod:`nasforge.data.detection_files`) it trains and measures on that dataset instead, resized to
``canvas`` pixels: a fixed 80/20 split (at most ``train_images`` and ``val_images`` images).
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch

from nasforge.data.detection import DetectionSet, fashion_mnist_detection
from nasforge.data.detection_files import load_detection_files
from nasforge.errors import ConfigError
from nasforge.evaluators.base import EvalContext, Evaluator, TrialPruned, _never_prune
from nasforge.metrics.detection import mean_average_precision
from nasforge.registry import EVALUATORS
from nasforge.space.architecture import Architecture
from nasforge.trial import Result
from nasforge.utils.device import resolve_device


@EVALUATORS.register("detection")
class DetectionEvaluator(Evaluator):
    """Train a detector briefly on composed Fashion-MNIST scenes; metrics ``map`` and ``map_50``."""

    name = "detection"
    supports_fidelity = True
    integer_fidelity = True
    fidelity_unit = "epochs"
    reports_metric = "map"

    def __init__(self, epochs: int = 3, train_images: int = 256, val_images: int = 64, canvas: int = 128,
                 max_objects: int = 3, batch_size: int = 16, lr: float = 2e-3, weight_decay: float = 1e-4,
                 width_mult: float = 0.25, data_dir: str | None = None, data: str | None = None) -> None:
        super().__init__()
        for label, value in (("epochs", epochs), ("train_images", train_images), ("val_images", val_images),
                             ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{label} must be a positive integer, got {value!r}")
        if not lr > 0 or not width_mult > 0 or weight_decay < 0:
            raise ConfigError(f"lr and width_mult must be positive and weight_decay >= 0, got lr {lr!r}, "
                              f"width_mult {width_mult!r}, weight_decay {weight_decay!r}")
        self.epochs, self.train_images, self.val_images = epochs, train_images, val_images
        self.canvas, self.max_objects, self.batch_size = canvas, max_objects, batch_size
        self.lr, self.weight_decay, self.width_mult, self.data_dir = lr, weight_decay, width_mult, data_dir
        self.data_path = data
        self._data: tuple[DetectionSet, DetectionSet] | None = None

    def data(self) -> tuple[DetectionSet, DetectionSet]:
        """The (training, validation) detection sets, composed once (fixed seeds)."""
        if self._data is None and self.data_path is not None:
            full = load_detection_files(self.data_path, image_size=self.canvas)
            order = torch.randperm(len(full), generator=torch.Generator().manual_seed(0)).tolist()
            n_val = max(1, len(full) // 5)
            if len(full) < 2:
                raise ConfigError(f"{self.data_path!r} has {len(full)} image(s); a split needs at least 2")
            self._data = (full.subset(order[n_val:][:self.train_images]), full.subset(order[:n_val][:self.val_images]))
        if self._data is None:
            self._data = (
                fashion_mnist_detection("train", self.train_images, self.canvas, self.max_objects, seed=1,
                                        data_dir=self.data_dir),
                fashion_mnist_detection("test", self.val_images, self.canvas, self.max_objects, seed=2,
                                        data_dir=self.data_dir),
            )
        return self._data

    def check_ready(self) -> None:
        """Fail up front when the Fashion-MNIST files are missing or the space cannot detect."""
        if self.space is not None and not hasattr(self.space, "anchor_scales"):
            raise ConfigError(f"evaluator 'detection' needs space 'detection' (boxes and anchors), "
                              f"not {self.space.name!r}")
        self.data()

    def default_fidelity(self) -> float:
        """Epochs of an evaluation without a fidelity."""
        return float(self.epochs)

    def produced_metrics(self) -> frozenset[str]:
        """``map``, ``map_50``, ``params``, ``loss``."""
        return frozenset({"map", "map_50", "params", "loss"})

    def measure(self, model: torch.nn.Module, data: DetectionSet, device: str) -> dict[str, float]:
        """mAP of ``model`` on ``data``."""
        model.eval()
        preds = []
        for start in range(0, len(data), self.batch_size):
            images = data.images[start:start + self.batch_size].to(device).float() / 255.0
            preds += [{k: v.cpu() for k, v in p.items()} for p in model.detect(images)]  # type: ignore[operator]
        return mean_average_precision(preds, data.targets(list(range(len(data)))), data.num_classes)

    def evaluate(self, arch: Architecture, ctx: EvalContext) -> Result:
        """Train ``ctx.fidelity`` epochs (default ``epochs``) and measure mAP on held-out scenes."""
        if self.space is None:
            raise ConfigError("the detection evaluator is not bound to a space")
        self.check_ready()
        start = time.time()
        train, val = self.data()
        epochs = int(ctx.fidelity) if ctx.fidelity is not None else self.epochs
        device = resolve_device(ctx.device)
        torch.manual_seed(ctx.seed)
        model = self.space.build(arch, num_classes=train.num_classes, in_channels=int(train.images.shape[1]),
                                 width_mult=self.width_mult).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        steps = epochs * math.ceil(len(train) / self.batch_size)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.lr, total_steps=max(steps, 1),
                                                    pct_start=0.2)
        gen = torch.Generator().manual_seed(ctx.seed)
        loss_value = float("nan")
        curve = []
        for epoch in range(1, epochs + 1):
            model.train()
            order = torch.randperm(len(train), generator=gen)
            for b in range(0, len(train), self.batch_size):
                idx = order[b:b + self.batch_size]
                images = train.images[idx].to(device).float() / 255.0
                targets = [{k: v.to(device) for k, v in t.items()} for t in train.targets(idx)]
                losses = model.loss(images, targets)
                loss = losses["classification"] + losses["box_regression"]
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
                opt.step()
                sched.step()
                loss_value = float(loss.detach())
            if not math.isfinite(loss_value):
                return Result.failed(f"training diverged (loss {loss_value}) at epoch {epoch}",
                                     cost=time.time() - start)
            if epoch < epochs and ctx.reporter is not _never_prune:  # mAP costs time: only for a pruner
                value = self.measure(model, val, device)["map"]
                curve.append(value)
                if ctx.report(epoch, value):
                    raise TrialPruned(info={"epochs_trained": epoch})
        metrics = self.measure(model, val, device)
        params = float(sum(p.numel() for p in model.parameters()))
        return Result(metrics={**metrics, "params": params, "loss": loss_value}, cost=time.time() - start,
                      info={"epochs": epochs, "curve": [*curve, metrics["map"]]})

    def describe(self) -> dict[str, Any]:
        """JSON-able description stored with the experiment."""
        return {"name": self.name, "data": self.data_path, "epochs": self.epochs, "train_images": self.train_images,
                "val_images": self.val_images, "canvas": self.canvas, "width_mult": self.width_mult}


__all__ = ["DetectionEvaluator"]
