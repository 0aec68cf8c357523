"""Detection evaluator: train a detector of the detection space briefly, report its COCO mAP.

Each evaluation builds ``space.build(arch)`` (a backbone, an FPN and a RetinaNet head, see
:mod:`nasforge.spaces.detection`), trains it with AdamW on the composed Fashion-MNIST detection set
(:mod:`nasforge.data.detection`) for ``epochs`` epochs (the fidelity), and measures mAP@[.5:.95]
(``map``, the objective to maximize) and mAP@.5 (``map_50``) on held-out composed images. The
recipe and the splits are :class:`~nasforge.train.detection.DetectionRecipe`'s: training scenes
from Fashion-MNIST's training split, validation scenes from the first half of its test split and
test scenes (final stage only) from the second half, so no item is seen in two splits.

With ``data`` (a COCO annotations file or directory, or a Pascal VOC directory; see
:mod:`nasforge.data.detection_files`) it trains and measures on that dataset instead, resized to
``canvas`` pixels: a fixed split, 10% test (from 3 images on), 20% validation, the rest training
(at most ``train_images``, ``val_images`` and ``test_images`` images).

The final stage (:meth:`DetectionEvaluator.final_evaluate`) trains on training + validation scenes
and tests once on the test scenes: ``test_map`` and ``test_map_50`` are in AP points (mAP x 100,
as COCO tables print them), so the verdict's differences read as AP points.
"""

from __future__ import annotations

import math
import time
from typing import Any

from nasforge.data.detection import DetectionSet
from nasforge.errors import ConfigError
from nasforge.evaluators.base import EvalContext, Evaluator, TrialPruned, _never_prune
from nasforge.registry import EVALUATORS
from nasforge.space.architecture import Architecture
from nasforge.train.detection import (
    DetectionRecipe,
    DetectionSplits,
    measure_detector,
    train_detector,
)
from nasforge.trial import Result
from nasforge.utils.device import resolve_device
from nasforge.utils.rng import derive_seed


@EVALUATORS.register("detection")
class DetectionEvaluator(Evaluator):
    """Train a detector briefly on composed Fashion-MNIST scenes; metrics ``map`` and ``map_50``."""

    name = "detection"
    supports_fidelity = True
    integer_fidelity = True
    fidelity_unit = "epochs"
    reports_metric = "map"
    supports_final = True
    final_metric = "test_map"

    def __init__(self, epochs: int = 3, train_images: int = 256, val_images: int = 64, canvas: int = 128,
                 max_objects: int = 3, batch_size: int = 16, lr: float = 2e-3, weight_decay: float = 1e-4,
                 width_mult: float = 0.25, data_dir: str | None = None, data: str | None = None,
                 test_images: int = 64) -> None:
        super().__init__()
        self.recipe = DetectionRecipe(epochs, train_images, val_images, test_images, canvas, max_objects,
                                      batch_size, lr, weight_decay, width_mult, data_dir, data)
        self.epochs = epochs
        self._splits: DetectionSplits | None = None

    def splits(self) -> DetectionSplits:
        """The training, validation and test sets, made once (fixed seeds)."""
        if self._splits is None:
            self._splits = self.recipe.load_splits()
        return self._splits

    def data(self) -> tuple[DetectionSet, DetectionSet]:
        """The (training, validation) detection sets the search uses."""
        s = self.splits()
        return s.train, s.val

    def check_ready(self) -> None:
        """Fail up front when the Fashion-MNIST files are missing or the space cannot detect."""
        if self.space is not None and not hasattr(self.space, "anchor_scales"):
            raise ConfigError(f"evaluator 'detection' needs space 'detection' (boxes and anchors), "
                              f"not {self.space.name!r}")
        self.splits()

    def default_fidelity(self) -> float:
        """Epochs of an evaluation without a fidelity."""
        return float(self.epochs)

    def produced_metrics(self) -> frozenset[str]:
        """``map``, ``map_50``, ``params``, ``loss``."""
        return frozenset({"map", "map_50", "params", "loss"})

    def measure(self, model: Any, data: DetectionSet, device: str) -> dict[str, float]:
        """mAP of ``model`` on ``data``."""
        return measure_detector(model, data, self.recipe.batch_size, device)

    def _checked_space(self) -> Any:
        if self.space is None:
            raise ConfigError("the detection evaluator is not bound to a space")
        self.check_ready()
        return self.space

    def evaluate(self, arch: Architecture, ctx: EvalContext) -> Result:
        """Train ``ctx.fidelity`` epochs (default ``epochs``) and measure mAP on held-out scenes."""
        space = self._checked_space()
        start = time.time()
        train, val = self.data()
        epochs = int(ctx.fidelity) if ctx.fidelity is not None else self.epochs
        device = resolve_device(ctx.device)
        model = self.recipe.build(space, arch, train, ctx.seed).to(device)
        curve: list[float] = []

        def on_epoch(epoch: int, loss: float) -> bool:
            if epoch < epochs and ctx.reporter is not _never_prune:  # mAP costs time: only for a pruner
                curve.append(self.measure(model, val, device)["map"])
                if ctx.report(epoch, curve[-1]):
                    raise TrialPruned(info={"epochs_trained": epoch})
            return False

        loss_value, ran = train_detector(model, train, self.recipe, epochs, ctx.seed, device, on_epoch)
        if not math.isfinite(loss_value):
            return Result.failed(f"training diverged (loss {loss_value}) at epoch {ran}", cost=time.time() - start)
        metrics = self.measure(model, val, device)
        params = float(sum(p.numel() for p in model.parameters()))
        return Result(metrics={**metrics, "params": params, "loss": loss_value}, cost=time.time() - start,
                      info={"epochs": epochs, "curve": [*curve, metrics["map"]]})

    def final_evaluate(self, arch: Architecture, seed: int, fidelity: float | None,
                       device: str = "cpu") -> Result:
        """Train on training + validation scenes for ``fidelity`` epochs (default ``epochs``), test once:
        ``test_map`` / ``test_map_50`` in AP points (mAP x 100)."""
        space = self._checked_space()
        start = time.time()
        splits = self.splits()
        if splits.test is None:
            raise ConfigError(f"{self.recipe.data!r} has too few images for a test split (the final "
                              "stage needs at least 3)")
        train = splits.train.concat(splits.val)
        epochs = int(fidelity) if fidelity is not None else self.epochs
        dev = resolve_device(device)
        model = self.recipe.build(space, arch, train, derive_seed(seed, "init")).to(dev)
        loss_value, ran = train_detector(model, train, self.recipe, epochs, derive_seed(seed, "train"), dev)
        if not math.isfinite(loss_value):
            return Result.failed(f"training diverged (loss {loss_value}) at epoch {ran}", cost=time.time() - start)
        test = self.measure(model, splits.test, dev)
        return Result(
            metrics={"test_map": 100.0 * test["map"], "test_map_50": 100.0 * test["map_50"],
                     "params": float(sum(p.numel() for p in model.parameters())), "loss": loss_value},
            cost=time.time() - start,
            info={"epochs": epochs, "train_images": len(train), "test_images": len(splits.test)})

    def profile(self, arch: Architecture) -> dict[str, float]:
        """Parameters of the detector (as built for the search's data)."""
        space = self._checked_space()
        model = self.recipe.build(space, arch, self.data()[0], 0)
        return {"params": float(sum(p.numel() for p in model.parameters()))}

    def model_info(self) -> dict[str, Any]:
        """What rebuilding a searched network needs besides its architecture: ``num_classes``,
        ``in_channels`` and ``build_kwargs`` (composed scenes: 10 classes, 1 channel, known
        without reading them; a file set is read)."""
        if self.recipe.data is None:
            classes, channels = 10, 1
        else:
            train = self.splits().train
            classes, channels = train.num_classes, int(train.images.shape[1])
        return {"dataset": None, "num_classes": classes, "in_channels": channels,
                "build_kwargs": {"width_mult": self.recipe.width_mult}}

    def describe(self) -> dict[str, Any]:
        """JSON-able description stored with the experiment: the task and the recipe."""
        return {"name": self.name, "task": "detection", **self.recipe.to_dict()}


__all__ = ["DetectionEvaluator"]
