"""The final training of one architecture: train it longer, test it, save it (and ONNX).

:func:`retrain` trains an architecture file (:class:`~nasforge.train.archfile.ArchFile`, as
``nasforge export`` writes it) from scratch with :class:`~nasforge.train.Trainer`, on the data
and with the recipe the search's training evaluator used, scores the test split and saves a
checkpoint (weights, architecture, metrics, learning curve) plus, when ``onnx`` is installed, an
ONNX file checked against the PyTorch model with ``onnxruntime``. Both are self-contained: the
model takes images scaled to [0, 1] (the training normalization is inside it, see
:class:`~nasforge.train.deployable.Deployable`) and records its input shape, normalization, class
names, dataset and metrics (:class:`~nasforge.train.deployable.ModelCard`; in ONNX
``metadata_props``). :func:`load_checkpoint` rebuilds the trained ``torch.nn.Module``.
``nasforge train`` runs it from the command line.

Every step logs through ``logging.getLogger("nasforge.export")`` (the logger of the export and
retraining steps, as before this module moved here from :mod:`nasforge.export`); nothing is
printed.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nasforge.data import BatchLoader, DataSplits, dataset_info, make_splits
from nasforge.errors import ConfigError, NasforgeError
from nasforge.space.architecture import Architecture
from nasforge.space.base import SearchSpace
from nasforge.train.archfile import ArchFile, arch_file_from_dict, load_arch_file
from nasforge.train.config import TrainConfig
from nasforge.train.deployable import Deployable, InputSpec, ModelCard, input_spec_from_training
from nasforge.train.detection_retraining import retrain_detector
from nasforge.train.evaluate import as_logits, evaluate_model
from nasforge.train.program import export_program
from nasforge.train.trainer import EpochStats, Trainer
from nasforge.utils.device import resolve_device
from nasforge.utils.rng import derive_seed

log = logging.getLogger("nasforge.export")

#: Format tag written into checkpoints, so later versions can read old ones (``/2`` adds the
#: ``"deploy"`` model card; ``/1`` checkpoints are still read).
CHECKPOINT_FORMAT = "nasforge-checkpoint/2"
_READABLE_FORMATS = ("nasforge-checkpoint/1", CHECKPOINT_FORMAT)

#: Options of the search's training evaluator that describe *how* to feed data, which a final
#: training keeps (with the :class:`TrainConfig` fields; subset sizes and epochs are search-time
#: shortcuts and are not carried over).
DATA_KEYS = ("data_dir", "augment", "image_size", "channels", "resize_mode", "val_size",
             "data_seed")
#: Further data options :func:`retrain` accepts in ``train_options``.
_MORE_DATA_KEYS = ("download", "val_subset")
_TRAIN_KEYS = tuple(TrainConfig.__dataclass_fields__)


@dataclass
class _Recipe:
    """Data, input shape and training configuration of a final training, as the training
    evaluator (:class:`nasforge.evaluators.training.TrainingEvaluator`) sets them up."""

    dataset: str
    train_config: TrainConfig
    split_options: dict[str, Any]
    build_kwargs: dict[str, Any]
    augment: str = "default"
    image_size: int | None = None
    channels: int | None = None
    resize_mode: str = "pad"

    @classmethod
    def create(cls, dataset: str, data_opts: Mapping[str, Any], options: Mapping[str, Any], *,
               train_subset: int | float | None, test_subset: int | float | None,
               build_kwargs: Mapping[str, Any]) -> _Recipe:
        options = dict(options)
        bad = sorted(set(options) - set(_TRAIN_KEYS) - set(_MORE_DATA_KEYS))
        if bad:
            raise ConfigError(
                f"unknown option(s) {', '.join(map(repr, bad))} for retraining; training options "
                f"are: {', '.join(_TRAIN_KEYS)} (data: {', '.join((*DATA_KEYS, *_MORE_DATA_KEYS))})"
            )
        split_options = {
            "data_dir": data_opts.get("data_dir"), "download": bool(options.pop("download", False)),
            "val_size": data_opts.get("val_size", 0.1), "train_subset": train_subset,
            "val_subset": options.pop("val_subset", None), "test": True, "test_subset": test_subset,
            "seed": int(data_opts.get("data_seed", 0)),
        }
        cfg = TrainConfig(**options)
        dataset_info(dataset)  # an unknown dataset fails here, naming the known ones
        return cls(dataset, cfg, split_options, dict(build_kwargs),
                   augment=data_opts.get("augment", "default"), image_size=data_opts.get("image_size"),
                   channels=data_opts.get("channels"), resize_mode=data_opts.get("resize_mode", "pad"))

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the network input after shape adaptation."""
        c, h, w = dataset_info(self.dataset).input_shape
        if self.image_size is not None:
            h = w = self.image_size
        return (self.channels or c, h, w)

    @property
    def num_classes(self) -> int:
        """Number of classes of the dataset."""
        return dataset_info(self.dataset).num_classes

    def splits(self) -> DataSplits:
        """The train/val/test data."""
        return make_splits(self.dataset, **self.split_options)

    def build(self, space: SearchSpace, arch: Architecture, seed: int) -> nn.Module:
        """``space.build(arch, num_classes=..., in_channels=..., **build_kwargs)``, seeded init."""
        torch.manual_seed(seed)
        model = space.build(arch, num_classes=self.num_classes, in_channels=self.input_shape[0],
                            **self.build_kwargs)
        if not isinstance(model, nn.Module):
            raise ConfigError(f"space {space.name!r} built a {type(model).__name__}, not a torch Module")
        return model

    @property
    def input_spec(self) -> InputSpec:
        """The input of the trained model as people have it: stored images scaled to [0, 1]."""
        return InputSpec.for_dataset(self.dataset, image_size=self.image_size,
                                     channels=self.channels, resize_mode=self.resize_mode)

    def raw_batch(self, data: Any, n: int) -> torch.Tensor:
        """The first ``n`` images of ``data`` as a deployed model takes them: [0, 1], stored shape."""
        return next(iter(BatchLoader(data, n, normalize=False)))[0]

    def loader(self, data: Any, batch: int, train: bool, seed: int, device: str) -> BatchLoader:
        """A batch loader over ``data`` (augmented when ``train``)."""
        return BatchLoader(data, batch, shuffle=train, augment=self.augment if train else "none",
                           seed=seed, device=device, image_size=self.image_size,
                           channels=self.channels, resize_mode=self.resize_mode)


@dataclass
class RetrainResult:
    """What :func:`retrain` produced."""

    out_dir: Path
    checkpoint: Path
    metrics: dict[str, Any]
    curve: list[dict[str, Any]]
    onnx: Path | None = None
    #: Why no ONNX file was written (onnx missing, export failed), or None.
    onnx_skipped: str | None = None
    #: ``model.pt2``, the self-contained ``torch.export`` program (see :mod:`nasforge.train.program`).
    program: Path | None = None
    #: Why no ``model.pt2`` was written (not requested, export failed), or None.
    program_skipped: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary."""
        return {"out_dir": str(self.out_dir), "checkpoint": str(self.checkpoint),
                "onnx": str(self.onnx) if self.onnx else None, "onnx_skipped": self.onnx_skipped,
                "pt2": str(self.program) if self.program else None,
                "pt2_skipped": self.program_skipped, "metrics": self.metrics, "curve": self.curve}


def _onnx_available() -> str | None:
    """None when ONNX export and checking can run, else the reason."""
    import importlib.util

    missing = [m for m in ("onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        return (f"{' and '.join(missing)} not installed (pip install 'nasforge[export]' "
                "to also write an ONNX file)")
    return None


def export_onnx(model: nn.Module, example: torch.Tensor, path: str | Path,
                check: bool = True, atol: float = 1e-4,
                metadata: Mapping[str, str] | None = None,
                output_names: Sequence[str] = ("logits",)) -> dict[str, float]:
    """Save ``model`` (on CPU, eval mode) as ONNX with a dynamic batch dimension.

    ``output_names`` names the model's outputs: one (``logits``, a classifier), or one per
    element of the tuple it returns (a detector's ``boxes`` and ``scores``).

    ``metadata`` is written into the file's ``metadata_props`` (e.g.
    :meth:`ModelCard.to_metadata`: input shape, normalization, class names, dataset, metrics).

    Uses PyTorch's TorchScript-based exporter (``dynamo=False``), which needs only the ``onnx``
    package; when it is unavailable (newer PyTorch), the dynamo exporter (needs ``onnxscript``).
    With ``check``, ``onnxruntime`` runs the file on ``example`` and the largest absolute
    difference from PyTorch's outputs must stay within ``atol`` (+ 1e-4 relative).
    Returns ``{"onnx_max_abs_diff": ...}`` (empty without ``check``).
    """
    import warnings

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    model = model.to("cpu").eval()
    example = example.to("cpu").float()
    names = list(output_names)
    kwargs: dict[str, Any] = {"input_names": ["input"], "output_names": names,
                              "dynamic_axes": {n: {0: "batch"} for n in ["input", *names]}}
    with warnings.catch_warnings():
        # Tracing warns about Python control flow on shapes (fixed for one input size: fine).
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(model, (example,), str(p), dynamo=False, **kwargs)
        except (TypeError, RuntimeError, ImportError) as exc:
            log.info("TorchScript ONNX export failed (%s); trying the dynamo exporter", exc)
            torch.onnx.export(model, (example,), str(p), dynamo=True,
                              input_names=["input"], output_names=names,
                              dynamic_shapes=({0: torch.export.Dim("batch")},))
    if metadata:
        import onnx

        proto = onnx.load(str(p))
        for key, value in metadata.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = str(key), str(value)
        onnx.save(proto, str(p))
    if not check:
        return {}
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: example.numpy()})
    with torch.no_grad():
        out = model(example)
        wants = [as_logits(out)] if len(names) == 1 else list(out)
    diff, bound = 0.0, atol
    for g, w in zip(got, (w.float().numpy() for w in wants)):
        if g.size:
            diff = max(diff, float(np.max(np.abs(g - w))))
            bound = max(bound, atol + 1e-4 * float(np.max(np.abs(w))))
    if not diff <= bound:
        raise ConfigError(f"the ONNX model's outputs differ from PyTorch's by {diff:.3g} "
                          f"(allowed {bound:.3g}); it was not kept")
    return {"onnx_max_abs_diff": diff}


def export_onnx_or_why(model: nn.Module, example: torch.Tensor, path: Path, metadata: Mapping[str, str],
                       output_names: Sequence[str] = ("logits",)) -> tuple[dict[str, float], str | None]:
    """:func:`export_onnx`, with a failure turned into its reason: ``(metrics, None)`` when the
    file was written and checked, ``({}, why)`` when not (a partial file is removed)."""
    try:
        return export_onnx(model, example, path, metadata=metadata, output_names=output_names), None
    except (NasforgeError, RuntimeError, TypeError, ValueError) as exc:
        path.unlink(missing_ok=True)
        log.warning("ONNX export failed: %s", exc)
        return {}, f"ONNX export failed: {exc}"


def retrain(
    arch: ArchFile | str | Path,
    out_dir: str | Path,
    *,
    epochs: int = 10,
    dataset: str | None = None,
    data_dir: str | None = None,
    train_subset: int | float | None = None,
    val_size: int | float | None = None,
    test_subset: int | float | None = None,
    build_kwargs: Mapping[str, Any] | None = None,
    train_options: Mapping[str, Any] | None = None,
    device: str = "auto",
    seed: int = 0,
    onnx: bool = True,
    on_epoch: Callable[[EpochStats], None] | None = None,
    program: bool = True,
) -> RetrainResult:
    """Train an architecture from scratch for ``epochs`` epochs and save it in ``out_dir``.

    The data, network size and training recipe default to what the search used (stored in the
    exported JSON); every argument overrides them. Training uses the full training split minus
    ``val_size`` held out for validation (the search may have used subsets), and the official
    test split is scored at the end (``test_accuracy``). Files written: ``model.pt`` (see
    :func:`load_checkpoint`), ``arch.json``, ``metrics.json``, with ``program`` ``model.pt2`` (a
    ``torch.export`` program that plain PyTorch loads without nasforge, see
    :mod:`nasforge.train.program`) and, when onnx and onnxruntime are installed and ``onnx`` is
    True, ``model.onnx``. All models take images scaled to [0, 1] in the dataset's stored shape
    (normalization inside) and record a :class:`~nasforge.train.deployable.ModelCard`.
    ``on_epoch(stats)`` sees every epoch.

    A detection architecture (``training["task"] == "detection"``) is trained by
    :func:`~nasforge.train.detection_retraining.retrain_detector` instead: on its search's scenes,
    tested with ``test_map``, exported with decoded boxes and scores.
    """
    af = arch if isinstance(arch, ArchFile) else load_arch_file(arch)
    if af.training.get("task") == "detection":
        given = {"dataset": dataset, "train_subset": train_subset, "val_size": val_size,
                 "test_subset": test_subset}
        bad = [k for k, v in given.items() if v is not None]
        if bad:
            raise ConfigError(f"{', '.join(bad)} do not apply to a detection architecture: it trains on "
                              "its search's scenes (train + validation) and tests on their test split; "
                              "set train_images, test_images, canvas or data as training options")
        done = retrain_detector(af, out_dir, epochs=epochs, data_dir=data_dir, build_kwargs=build_kwargs,
                                train_options=train_options, device=device, seed=seed, onnx=onnx,
                                on_epoch=on_epoch, checkpoint_format=CHECKPOINT_FORMAT, export=export_onnx_or_why,
                                onnx_missing=_onnx_available() if onnx else None)
        return RetrainResult(**done, program_skipped="a detector is saved as model.pt and model.onnx")
    space = af.space()
    options = dict(af.training)
    options.update(dict(train_options or {}))
    options["epochs"] = epochs
    data_opts = {k: options.pop(k) for k in list(options) if k in DATA_KEYS}
    if data_dir is not None:
        data_opts["data_dir"] = data_dir
    if val_size is not None:
        data_opts["val_size"] = val_size
    name = dataset or af.dataset or "fashion_mnist"
    recipe = _Recipe.create(name, data_opts, options, train_subset=train_subset, test_subset=test_subset,
                            build_kwargs={**af.build_kwargs, **dict(build_kwargs or {})})
    cfg = recipe.train_config
    dev = resolve_device(device)
    started = time.time()
    splits = recipe.splits()
    log.info("retraining %s on %s (%s) for %d epoch(s) on %s", space.to_string(af.arch), name,
             splits.sizes(), epochs, dev)
    model = recipe.build(space, af.arch, seed=derive_seed(seed, "init"))

    def loader(data: Any, batch: int, train: bool) -> BatchLoader:
        return recipe.loader(data, batch, train, seed=derive_seed(seed, "data"), device=dev)

    def epoch_done(stats: EpochStats) -> bool:
        log.info("epoch %d/%d: train loss %.4f, val accuracy %s", stats.epoch, epochs,
                 stats.train_loss, "-" if stats.val_accuracy is None
                 else f"{stats.val_accuracy:.2f}%")
        if on_epoch is not None:
            on_epoch(stats)
        return False

    fit = Trainer(cfg).fit(model, loader(splits.train, cfg.batch_size, True),
                           loader(splits.val, cfg.eval_batch_size, False), device=dev,
                           seed=derive_seed(seed, "train"), on_epoch=epoch_done)
    final = fit.final
    assert final is not None  # at least one epoch ran (epochs >= 1 is validated)
    on_cuda = dev.startswith("cuda")
    amp = cfg.amp if cfg.amp is not None else on_cuda
    channels_last = cfg.channels_last if cfg.channels_last is not None else on_cuda
    metrics: dict[str, Any] = {
        "val_accuracy": final.val_accuracy, "val_loss": final.val_loss,
        "train_accuracy": final.train_accuracy, "train_loss": final.train_loss,
        "epochs": fit.epochs, "params": float(sum(p.numel() for p in model.parameters())),
        "train_seconds": fit.train_seconds, "images_per_sec": fit.images_per_sec,
    }
    if splits.test is not None:
        acc, loss = evaluate_model(model, loader(splits.test, cfg.eval_batch_size, False), dev,
                                   amp, channels_last)
        metrics.update(test_accuracy=acc, test_loss=loss)
    metrics["seconds"] = time.time() - started

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = model.to("cpu").float().eval()
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    trained = ArchFile(
        arch=af.arch, space_options=af.space_options, num_classes=recipe.num_classes,
        in_channels=recipe.input_shape[0], build_kwargs=dict(recipe.build_kwargs),
        dataset=name, training={**af.training, **dict(train_options or {})},
        metrics={k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))},
        extra={"trained_from": af.extra.get("source"), "trial": af.extra.get("trial")},
    )
    curve = [s.to_dict() for s in fit.curve]
    card = ModelCard.for_dataset(recipe.input_spec, name, metrics=dict(trained.metrics),
                                 arch=space.to_string(af.arch), space=space.name)
    checkpoint = out / "model.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "state_dict": state, "arch": trained.to_dict(),
                "metrics": metrics, "curve": curve, "train_config": cfg.to_dict(),
                "input_shape": list(recipe.input_shape), "deploy": card.to_dict(),
                "seed": seed}, checkpoint)
    trained.save(out / "arch.json")

    # The exported graphs take what users have (pixels in [0, 1]): normalization inside.
    example = recipe.raw_batch(splits.test if splits.test is not None else splits.val, 8)
    program_path, program_skipped = _save_program(Deployable(model, recipe.input_spec), example,
                                                  out / "model.pt2", card, metrics, program)
    onnx_path: Path | None = None
    skipped = None if onnx else "not requested"
    if skipped is None:
        skipped = _onnx_available()
    if skipped is None:
        diff, skipped = export_onnx_or_why(Deployable(model, recipe.input_spec), example, out / "model.onnx",
                                           card.to_metadata())
        metrics.update(diff)
        onnx_path = None if skipped else out / "model.onnx"
    (out / "metrics.json").write_text(json.dumps(
        {"metrics": metrics, "curve": curve, "onnx": str(onnx_path) if onnx_path else None,
         "onnx_skipped": skipped, "pt2": str(program_path) if program_path else None,
         "pt2_skipped": program_skipped}, indent=2, default=_json_number) + "\n")
    log.info("saved %s (test accuracy %s)", checkpoint, metrics.get("test_accuracy"))
    return RetrainResult(out, checkpoint, metrics, curve, onnx_path, skipped, program_path,
                         program_skipped)


def _save_program(model: nn.Module, example: torch.Tensor, path: Path, card: ModelCard,
                  metrics: dict[str, Any], wanted: bool) -> tuple[Path | None, str | None]:
    """Write ``model.pt2`` (checked against PyTorch); ``(path, None)`` or ``(None, why not)``."""
    if not wanted:
        return None, "not requested"
    try:
        metrics.update(export_program(model, example, path, card=card.to_dict()))
    except Exception as exc:  # an op torch.export cannot capture: the other files still count
        path.unlink(missing_ok=True)
        first = str(exc).splitlines()[0] if str(exc) else ""
        why = f"torch.export failed: {type(exc).__name__}: {first}"
        log.warning("%s", why)
        return None, why
    return path, None


def _json_number(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return str(obj)


def load_checkpoint(path: str | Path, device: str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the trained network saved by :func:`retrain`; returns ``(model, checkpoint)``.

    The model is in eval mode on ``device`` and takes images scaled to [0, 1] in the dataset's
    stored shape: a :class:`~nasforge.train.deployable.Deployable` (normalization inside; the
    bare network is ``model.network``) whenever the dataset is known, else the bare network.
    ``checkpoint`` holds ``arch``, ``metrics``, ``curve``, ``train_config`` and ``deploy`` (the
    :class:`~nasforge.train.deployable.ModelCard` as a dict). Loading uses
    ``torch.load(weights_only=True)``: a checkpoint cannot run code.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"checkpoint {str(p)!r} does not exist")
    ckpt = torch.load(p, map_location=device, weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") not in _READABLE_FORMATS:
        raise ConfigError(f"{str(p)!r} is not a nasforge checkpoint (format "
                          f"{ckpt.get('format') if isinstance(ckpt, dict) else None!r}, "
                          f"expected one of {', '.join(map(repr, _READABLE_FORMATS))})")
    af = arch_file_from_dict(ckpt["arch"], str(p))
    model = af.build()
    model.load_state_dict(ckpt["state_dict"])
    if ckpt.get("task") == "detection":  # the detector itself: detect(images in [0, 1]) gives boxes
        return model.to(device).eval(), ckpt
    if "deploy" in ckpt:
        spec: InputSpec | None = ModelCard.from_dict(ckpt["deploy"]).input
    else:  # a /1 checkpoint: its input follows from the dataset and data options it recorded
        spec = input_spec_from_training(af.dataset, af.training)
    if spec is not None:
        model = Deployable(model, spec)
    return model.to(device).eval(), ckpt


__all__ = [
    "CHECKPOINT_FORMAT",
    "DATA_KEYS",
    "RetrainResult",
    "export_onnx",
    "load_checkpoint",
    "retrain",
]
