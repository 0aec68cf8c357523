"""Predict with a deployed model: ``model.onnx`` (onnxruntime), ``model.pt2`` (a ``torch.export``
program) or ``model.pt`` (a nasforge checkpoint).

:func:`load_deployed` opens any of them with its :class:`~nasforge.train.deployable.ModelCard`;
:func:`read_inputs` turns image files (PNG/JPEG, read with Pillow), IDX files (``.gz`` too) and
``.npy`` batches into one float batch scaled to [0, 1] in the model's input shape;
:meth:`DeployedModel.predict` returns class indices and probabilities. ``nasforge predict`` runs
them from the command line.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from nasforge.data.idx import read_idx
from nasforge.errors import ConfigError
from nasforge.train.deployable import InputSpec, ModelCard, check_input_shape

log = logging.getLogger("nasforge.predict")

#: File endings read as images (with Pillow).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


class _Runner(Protocol):
    def __call__(self, batch: np.ndarray) -> np.ndarray: ...


@dataclass
class Prediction:
    """The predicted class of one input."""

    source: str
    index: int
    name: str
    probability: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"input": self.source, "class": self.index, "name": self.name,
                "probability": self.probability}


@dataclass
class DeployedModel:
    """A loaded model file and its card; :meth:`logits` runs it on a [0, 1] float batch."""

    path: Path
    card: ModelCard
    run: _Runner
    backend: str

    def logits(self, batch: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Logits for ``batch`` of shape ``(N, *card.input.shape)``, run ``batch_size`` at a time."""
        check_input_shape(batch.shape[1:], self.card.input, str(self.path))
        parts = [self.run(np.ascontiguousarray(batch[i:i + batch_size], dtype=np.float32))
                 for i in range(0, len(batch), batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)

    def predict(self, batch: np.ndarray, sources: Sequence[str] | None = None,
                batch_size: int = 256) -> list[Prediction]:
        """The most likely class of every image, with its softmax probability."""
        logits = self.logits(batch, batch_size).astype(np.float64)
        shifted = logits - logits.max(axis=1, keepdims=True)  # stable softmax
        probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
        names = list(sources) if sources is not None else [str(i) for i in range(len(batch))]
        best = probs.argmax(axis=1)
        return [Prediction(names[i], int(k), self.card.class_name(int(k)), float(probs[i, k]))
                for i, k in enumerate(best)]


def _load_onnx(path: Path) -> DeployedModel:
    try:
        import onnxruntime as ort
    except ImportError:
        raise ConfigError(f"reading {str(path)!r} needs onnxruntime (pip install "
                          "'nasforge[export]'), or use the model.pt beside it") from None
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    card = ModelCard.from_metadata(session.get_modelmeta().custom_metadata_map)
    name = session.get_inputs()[0].name

    def run(batch: np.ndarray) -> np.ndarray:
        out: np.ndarray = session.run(None, {name: batch})[0]
        return out

    return DeployedModel(path, card, run, "onnxruntime")


def _load_torch(path: Path) -> DeployedModel:
    import torch

    from nasforge.train.deployable import Deployable
    from nasforge.train.retraining import load_checkpoint

    model, ckpt = load_checkpoint(path)
    if not isinstance(model, Deployable):
        raise ConfigError(f"{str(path)!r} records no named dataset, so its input (shape, "
                          "normalization) is unknown; load it with nasforge.train.load_checkpoint")
    card = (ModelCard.from_dict(ckpt["deploy"]) if "deploy" in ckpt
            else ModelCard.for_dataset(model.spec, ckpt["arch"].get("dataset")))

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out: np.ndarray = model(torch.from_numpy(batch)).float().numpy()
        return out

    return DeployedModel(path, card, run, "torch")


def _load_program(path: Path) -> DeployedModel:
    import torch

    from nasforge.train.program import load_program

    model, card = load_program(path)
    if "input" not in card:
        raise ConfigError(f"{str(path)!r} holds no model card, so its input (shape, "
                          "normalization) is unknown; load it with torch.export.load")

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out: np.ndarray = model(torch.from_numpy(batch)).float().numpy()
        return out

    return DeployedModel(path, ModelCard.from_dict(card), run, "torch.export")


def load_deployed(path: str | Path) -> DeployedModel:
    """Open ``model.onnx``, ``model.pt2`` or ``model.pt`` as written by ``nasforge train``."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"model file {str(p)!r} does not exist")
    if p.suffix == ".onnx":
        return _load_onnx(p)
    if p.suffix == ".pt2":
        return _load_program(p)
    if p.suffix in (".pt", ".pth"):
        return _load_torch(p)
    raise ConfigError(f"unknown model file {str(p)!r}; allowed: a .onnx, .pt2 or .pt file "
                      "written by `nasforge train`")


def _scaled(array: np.ndarray, source: str) -> np.ndarray:
    """uint8 pixels -> [0, 1]; float pixels must already be in [0, 1]."""
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if not np.issubdtype(array.dtype, np.floating):
        raise ConfigError(f"{source}: pixels of type {array.dtype}; allowed: uint8 (0-255) or "
                          "floats scaled to [0, 1]")
    lo, hi = (float(array.min()), float(array.max())) if array.size else (0.0, 1.0)
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise ConfigError(f"{source}: float pixels range from {lo:g} to {hi:g}; the model takes "
                          "pixels scaled to [0, 1] (divide 0-255 values by 255)")
    return array.astype(np.float32)


def _as_batch(array: np.ndarray, spec: InputSpec, source: str) -> np.ndarray:
    """An array of images as ``(N, C, H, W)``: accepts (H, W), (N, H, W) for one channel,
    (N, C, H, W) and channels-last (N, H, W, C)."""
    c, h, w = spec.shape
    if array.ndim == 2:
        array = array[None]
    if array.ndim == 3:
        if array.shape[1:] == (h, w) and c == 1:
            array = array[:, None]
        elif array.shape in ((c, h, w), (h, w, c)):
            array = array[None]
    if array.ndim == 4 and array.shape[1:] == (h, w, c) and array.shape[1:] != (c, h, w):
        array = array.transpose(0, 3, 1, 2)
    if array.ndim != 4:
        raise ConfigError(f"{source}: an array of shape {list(array.shape)}; the model takes "
                          f"images of shape {[c, h, w]} (C, H, W), given as (N, C, H, W), "
                          "(N, H, W, C), or (N, H, W) for one channel")
    check_input_shape(array.shape[1:], spec, source)
    return array


def _read_image(path: Path, spec: InputSpec) -> np.ndarray:
    try:
        from PIL import Image
    except ImportError:
        raise ConfigError(f"reading the image {str(path)!r} needs Pillow (pip install pillow); "
                          "or give the images as an IDX or .npy batch") from None
    c, h, w = spec.shape
    if c not in (1, 3):
        raise ConfigError(f"{str(path)!r}: the model takes {c}-channel images; image files "
                          "give 1 (gray) or 3 (RGB)")
    with Image.open(path) as img:
        img = img.convert("L" if c == 1 else "RGB")
        if img.size != (w, h):
            # A photo rarely has the dataset's size: resize, as people would before feeding it.
            log.info("%s: resized from %dx%d to %dx%d", path, *img.size, w, h)
            img = img.resize((w, h), Image.Resampling.BILINEAR)
        array = np.asarray(img, dtype=np.uint8)
    return _scaled(array.reshape(h, w, c).transpose(2, 0, 1)[None], str(path))


def read_inputs(paths: Sequence[str | Path], spec: InputSpec,
                limit: int | None = None) -> tuple[np.ndarray, list[str]]:
    """Read image files, IDX files (``.gz`` too) and ``.npy`` arrays into one batch.

    Returns ``(batch, sources)``: ``batch`` is float32 ``(N, *spec.shape)`` in [0, 1] and
    ``sources`` names each image (``file`` or ``file[i]``). ``limit`` keeps the first images.
    """
    if not paths:
        raise ConfigError("no inputs given: name image files, an IDX file or a .npy file")
    batches: list[np.ndarray] = []
    sources: list[str] = []
    for raw in paths:
        p = Path(raw)
        if not p.is_file():
            raise ConfigError(f"input file {str(p)!r} does not exist")
        name = p.name.lower()
        if p.suffix.lower() in IMAGE_SUFFIXES:
            batch = _read_image(p, spec)
            names = [str(p)]
        elif name.endswith(".npy"):
            batch = _as_batch(_scaled(np.load(p, allow_pickle=False), str(p)), spec, str(p))
            names = [f"{p}[{i}]" for i in range(len(batch))]
        elif name.endswith((".gz", ".idx")) or "idx" in name or "ubyte" in name:
            batch = _as_batch(_scaled(read_idx(p), str(p)), spec, str(p))
            names = [f"{p}[{i}]" for i in range(len(batch))]
        else:
            raise ConfigError(f"cannot read {str(p)!r}; allowed inputs: image files "
                              f"({', '.join(IMAGE_SUFFIXES)}), IDX files (.gz too) or .npy arrays")
        batches.append(batch)
        sources.extend(names)
    out = np.concatenate(batches).astype(np.float32, copy=False)
    if limit is not None:
        out, sources = out[:limit], sources[:limit]
    return out, sources


def read_labels(path: str | Path) -> np.ndarray:
    """Integer labels from an IDX (``.gz`` too) or ``.npy`` file, to score predictions."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"label file {str(p)!r} does not exist")
    labels = np.load(p, allow_pickle=False) if p.suffix == ".npy" else read_idx(p)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ConfigError(f"{str(p)!r}: labels must be a 1-d integer array, got "
                          f"{labels.dtype} of shape {list(labels.shape)}")
    return labels.astype(np.int64)


__all__ = ["IMAGE_SUFFIXES", "DeployedModel", "Prediction", "load_deployed", "read_inputs",
           "read_labels"]
