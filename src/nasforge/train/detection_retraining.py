"""The final training of a detection architecture: ``nasforge train ARCH.json`` for a detector.

An architecture file exported from a detection search records the search's recipe
(``training: {"task": "detection", ...}``, see :class:`~nasforge.train.detection.DetectionRecipe`).
:func:`retrain_detector` trains the detector from scratch the way the final stage does (on the
training + validation scenes for ``epochs`` epochs), tests it once on the test scenes (``test_map``
and ``test_map_50`` in AP points, mAP x 100) and saves it like a classifier's retraining:
``model.pt``, ``arch.json``, ``metrics.json`` and, when onnx and onnxruntime are installed,
``model.onnx``.

The ONNX model takes images in [0, 1] (``(N, C, canvas, canvas)``; the detector uses no
normalization) and outputs every anchor's decoded box and class scores before thresholding and
NMS (:class:`~nasforge.train.detection.DecodedDetector`): ``boxes`` ``(N, A, 4)`` as ``x1, y1, x2,
y2`` pixels clipped to the image, ``scores`` ``(N, A, K)`` sigmoid probabilities. To get
detections, keep the (anchor, class) pairs scoring above 0.05 and run per-class NMS at IoU 0.5,
as :meth:`~nasforge.spaces.detection.DetectionNetwork.detect` does. NMS stays outside the graph so
the file runs in any ONNX runtime without custom ops. The anchors are constants of the exported
image size, so the file takes that size only (the batch is dynamic); the metadata records it.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from nasforge.errors import ConfigError, NasforgeError
from nasforge.train.archfile import ArchFile
from nasforge.train.deployable import InputSpec, ModelCard
from nasforge.train.detection import DecodedDetector, DetectionRecipe, measure_detector, train_detector
from nasforge.train.trainer import EpochStats
from nasforge.utils.device import resolve_device
from nasforge.utils.rng import derive_seed

log = logging.getLogger("nasforge.export")

#: :func:`~nasforge.train.retraining.export_onnx_or_why`: ``(model, example, path, metadata,
#: output_names) -> (metrics, why not or None)``.
OnnxExport = Callable[..., tuple[dict[str, float], str | None]]

#: What the exported detector's outputs are, recorded in its ONNX metadata.
OUTPUTS_DOC = {
    "boxes": "(N, A, 4) every anchor's decoded box, x1 y1 x2 y2 in pixels, clipped to the image",
    "scores": "(N, A, K) per-class sigmoid probabilities",
    "postprocess": "keep scores > 0.05, then per-class NMS at IoU 0.5, at most 100 per image",
}


def recipe_of(af: ArchFile, overrides: Mapping[str, Any]) -> DetectionRecipe:
    """The recipe an architecture file recorded, with ``overrides`` on top."""
    options = {k: v for k, v in af.training.items() if k != "task"}
    options.update(overrides)
    return DetectionRecipe.from_options(options)


def retrain_detector(af: ArchFile, out_dir: str | Path, *, epochs: int, data_dir: str | None = None,
                     build_kwargs: Mapping[str, Any] | None = None,
                     train_options: Mapping[str, Any] | None = None, device: str = "auto", seed: int = 0,
                     onnx: bool = True, on_epoch: Callable[[EpochStats], None] | None = None,
                     checkpoint_format: str = "", export: OnnxExport | None = None,
                     onnx_missing: str | None = None) -> dict[str, Any]:
    """Train the detector of ``af`` on training + validation scenes, test it, save it.

    ``build_kwargs`` may set ``width_mult``; ``train_options`` any recipe field (``lr``,
    ``batch_size``, ``train_images``, ``canvas``, ...). ``checkpoint_format`` is the tag written
    into ``model.pt``, ``export`` :func:`~nasforge.train.retraining.export_onnx_or_why` and
    ``onnx_missing`` why it cannot run (None: it can); :func:`~nasforge.train.retraining.retrain`
    passes all three. Returns the pieces of a
    :class:`~nasforge.train.retraining.RetrainResult` as a dict.
    """
    extra_build = dict(build_kwargs or {})
    unknown = sorted(set(extra_build) - {"width_mult"})
    if unknown:
        raise ConfigError(f"build option(s) {', '.join(map(repr, unknown))} do not apply to a detector; "
                          "it takes width_mult")
    overrides: dict[str, Any] = {**dict(train_options or {}), **extra_build, "epochs": epochs}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    recipe = recipe_of(af, overrides)
    space = af.space()
    dev = resolve_device(device)
    started = time.time()
    splits = recipe.load_splits()
    if splits.test is None:
        raise ConfigError(f"{recipe.data!r} has too few images for a test split (at least 3 are needed)")
    train = splits.train.concat(splits.val)
    log.info("retraining detector %s on %d scenes for %d epoch(s) on %s", space.to_string(af.arch),
             len(train), epochs, dev)
    model = recipe.build(space, af.arch, train, derive_seed(seed, "init")).to(dev)
    curve: list[dict[str, Any]] = []

    def epoch_done(epoch: int, loss: float) -> bool:
        stats = EpochStats(epoch, loss, float("nan"), None, None, recipe.lr, time.time() - started)
        curve.append(stats.to_dict())
        log.info("epoch %d/%d: train loss %.4f", epoch, epochs, loss)
        if on_epoch is not None:
            on_epoch(stats)
        return False

    loss, ran = train_detector(model, train, recipe, epochs, derive_seed(seed, "train"), dev, epoch_done)
    if not math.isfinite(loss):
        raise NasforgeError(f"training diverged (loss {loss}) at epoch {ran}")
    test = measure_detector(model, splits.test, recipe.batch_size, dev)
    metrics: dict[str, Any] = {
        "test_map": 100.0 * test["map"], "test_map_50": 100.0 * test["map_50"], "train_loss": loss,
        "epochs": epochs, "params": float(sum(p.numel() for p in model.parameters())),
        "train_images": len(train), "test_images": len(splits.test), "seconds": time.time() - started}

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = model.to("cpu").float().eval()
    channels = int(train.images.shape[1])
    trained = ArchFile(
        arch=af.arch, space_options=af.space_options, num_classes=train.num_classes, in_channels=channels,
        build_kwargs={"width_mult": recipe.width_mult}, dataset=None,
        training={"task": "detection", **{k: v for k, v in recipe.to_dict().items() if k != "epochs"}},
        metrics={k: float(v) for k, v in metrics.items()},
        extra={"trained_from": af.extra.get("source"), "trial": af.extra.get("trial")})
    spec = InputSpec((channels, recipe.canvas, recipe.canvas))
    card = ModelCard(spec, list(train.class_names) or None, recipe.data or "fashion_mnist scenes",
                     dict(trained.metrics), space.to_string(af.arch), space.name)
    checkpoint = out / "model.pt"
    torch.save({"format": checkpoint_format, "task": "detection",
                "state_dict": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
                "arch": trained.to_dict(), "metrics": metrics, "curve": curve, "train_config": recipe.to_dict(),
                "input_shape": list(spec.shape), "deploy": card.to_dict(), "seed": seed}, checkpoint)
    trained.save(out / "arch.json")
    onnx_path: Path | None = None
    skipped = "not requested" if not onnx else onnx_missing
    if skipped is None and export is not None:
        example = splits.test.images[:4].float() / 255.0
        metadata = {**card.to_metadata(), "task": json.dumps("detection"), "outputs": json.dumps(OUTPUTS_DOC)}
        diff, skipped = export(DecodedDetector(model), example, out / "model.onnx", metadata, ("boxes", "scores"))
        metrics.update(diff)
        onnx_path = None if skipped else out / "model.onnx"
    (out / "metrics.json").write_text(json.dumps(
        {"metrics": metrics, "curve": curve, "onnx": str(onnx_path) if onnx_path else None,
         "onnx_skipped": skipped}, indent=2, default=str) + "\n")
    log.info("saved %s (test mAP %.2f)", checkpoint, metrics["test_map"])
    return {"out_dir": out, "checkpoint": checkpoint, "metrics": metrics, "curve": curve, "onnx": onnx_path,
            "onnx_skipped": skipped}


__all__ = ["OUTPUTS_DOC", "recipe_of", "retrain_detector"]
