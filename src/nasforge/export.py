"""From a finished search to a deployable model: export architectures, retrain one, save it.

* :func:`export_architectures` writes the best architectures of a stored experiment, each as JSON
  (``rankN.json``, readable by :func:`load_arch_file` and ``nasforge train``), in the space's human
  form (``rankN.txt``) and as a small Python script that rebuilds the network (``rankN.py``).
* :func:`retrain` trains one architecture longer (the final training after a search) with
  :class:`nasforge.train.Trainer` on the data the training evaluator uses, and saves a checkpoint
  (weights, architecture, metrics, learning curve) plus, when ``onnx`` is installed, an ONNX file
  checked against the PyTorch model with ``onnxruntime``.
* :func:`load_checkpoint` rebuilds the trained ``torch.nn.Module`` from a checkpoint.

Every step logs through ``logging.getLogger("nasforge.export")``; nothing is printed.
"""

from __future__ import annotations

import json
import keyword
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nasforge.errors import ConfigError, NasforgeError
from nasforge.registry import SPACES
from nasforge.space.architecture import Architecture

if TYPE_CHECKING:
    import torch
    from torch import nn

    from nasforge.space.base import SearchSpace
    from nasforge.train import EpochStats

log = logging.getLogger("nasforge.export")

#: Format tags written into exported files, so later versions can read old ones.
ARCH_FORMAT = "nasforge-architecture/1"
CHECKPOINT_FORMAT = "nasforge-checkpoint/1"

# Evaluator options that describe *how* to train and feed data, which a final training keeps
# (subset sizes and epochs are search-time shortcuts, so they are not carried over).
_DATA_KEYS = ("data_dir", "augment", "image_size", "channels", "resize_mode", "val_size",
              "data_seed")
_NOT_CARRIED = ("epochs", "num_threads")


# ---------------------------------------------------------------------------------- arch files
@dataclass
class ArchFile:
    """An architecture with what is needed to rebuild and retrain its network."""

    arch: Architecture
    space_options: dict[str, Any] = field(default_factory=dict)
    num_classes: int = 10
    in_channels: int = 3
    build_kwargs: dict[str, Any] = field(default_factory=dict)
    dataset: str | None = None
    #: Training and data options of the search's evaluator (lr, batch_size, augment, ...).
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def space_name(self) -> str:
        """Name of the search space the architecture belongs to."""
        return self.arch.space

    def space(self) -> SearchSpace:
        """The search space, created with the stored options."""
        space: SearchSpace = SPACES.create(self.space_name, **self.space_options)
        space.validate(self.arch)
        return space

    def build(self, **overrides: Any) -> nn.Module:
        """``space.build(arch, num_classes, in_channels, **build_kwargs)`` (overrides win)."""
        kwargs = {"num_classes": self.num_classes, "in_channels": self.in_channels,
                  **self.build_kwargs, **overrides}
        model: nn.Module = self.space().build(self.arch, **kwargs)
        return model

    def to_dict(self) -> dict[str, Any]:
        """The JSON form; it is also a valid :meth:`Architecture.from_dict` input."""
        text = self.space().to_string(self.arch)
        return {
            "format": ARCH_FORMAT,
            **self.arch.to_dict(),
            "text": text,
            "space_options": self.space_options,
            "build": {"num_classes": self.num_classes, "in_channels": self.in_channels,
                      "kwargs": self.build_kwargs},
            "dataset": self.dataset,
            "training": self.training,
            "metrics": self.metrics,
            **self.extra,
        }

    def save(self, path: str | Path) -> Path:
        """Write :meth:`to_dict` as JSON."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(self.to_dict(), indent=2, default=str) + "\n")
        return p


def arch_file_from_dict(data: Mapping[str, Any], source: str = "architecture") -> ArchFile:
    """Read :meth:`ArchFile.to_dict` output, or a bare ``{"space", "choices"}`` architecture."""
    try:
        arch = Architecture.from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    build = data.get("build") or {}
    if not isinstance(build, Mapping):
        raise ConfigError(f"{source}: 'build' must be an object, got {build!r:.100}")
    known = {"format", "space", "choices", "text", "space_options", "build", "dataset",
             "training", "metrics"}
    return ArchFile(
        arch=arch,
        space_options=dict(data.get("space_options") or {}),
        num_classes=int(build.get("num_classes", 10)),
        in_channels=int(build.get("in_channels", 3)),
        build_kwargs=dict(build.get("kwargs") or {}),
        dataset=data.get("dataset"),
        training=dict(data.get("training") or {}),
        metrics={k: float(v) for k, v in dict(data.get("metrics") or {}).items()
                 if isinstance(v, (int, float))},
        extra={k: v for k, v in data.items() if k not in known},
    )


def load_arch_file(path: str | Path) -> ArchFile:
    """Read an architecture JSON written by ``nasforge export`` (or ``Architecture.to_json``)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"architecture file {str(p)!r} does not exist")
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"architecture file {str(p)!r} is not valid JSON: {exc}") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"architecture file {str(p)!r} must hold a JSON object")
    af = arch_file_from_dict(data, str(p))
    af.space()  # unknown space or invalid choices fail here, naming the problem
    return af


def _py_call_args(options: Mapping[str, Any]) -> str:
    """Keyword arguments as Python source (``C=8, N=1``); JSON values are valid Python reprs."""
    parts = []
    for k, v in options.items():
        if not k.isidentifier() or keyword.iskeyword(k):
            raise ConfigError(f"option name {k!r} cannot be written as a Python keyword argument")
        parts.append(f"{k}={v!r}")
    return ", ".join(parts)


def build_script(af: ArchFile, title: str) -> str:
    """Source of a stand-alone script that rebuilds ``af``'s network with nasforge."""
    space_args = _py_call_args(af.space_options)
    build_args = _py_call_args({"num_classes": af.num_classes, "in_channels": af.in_channels,
                                **af.build_kwargs})
    text = af.space().to_string(af.arch)
    return (
        f'"""{title}\n\nRun it to print the network\'s size; import it to use ``model`` '
        '(a plain torch.nn.Module\nwith freshly initialized weights: train it, e.g. with '
        '`nasforge train` on the JSON file beside this one).\n"""\n\n'
        "import nasforge\n\n"
        f"space = nasforge.create_space({af.space_name!r}{', ' + space_args if space_args else ''})\n"
        f"arch = space.from_string({text!r})\n"
        f"model = space.build(arch, {build_args})\n\n"
        'if __name__ == "__main__":\n'
        "    params = sum(p.numel() for p in model.parameters())\n"
        "    print(space.to_string(arch))\n"
        '    print(f"{type(model).__name__}: {params:,} parameters")\n'
    )


@dataclass
class ExportedArch:
    """One exported architecture and the files written for it."""

    rank: int
    trial: int
    arch: ArchFile
    json_path: Path
    text_path: Path
    script_path: Path

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary."""
        return {"rank": self.rank, "trial": self.trial, "metrics": self.arch.metrics,
                "text": self.arch.space().to_string(self.arch.arch),
                "json": str(self.json_path), "txt": str(self.text_path),
                "py": str(self.script_path)}


def _training_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The evaluator options worth keeping for a final training (see ``_DATA_KEYS``)."""
    from nasforge.train import TrainConfig

    train_keys = set(TrainConfig.__dataclass_fields__)
    out = {k: v for k, v in options.items()
           if (k in train_keys or k in _DATA_KEYS) and k not in _NOT_CARRIED}
    nested = options.get("train")  # describe() of the training evaluator nests TrainConfig
    if isinstance(nested, Mapping):
        out.update({k: v for k, v in nested.items() if k in train_keys and k not in _NOT_CARRIED})
    return out


def export_architectures(db: str | Path, out_dir: str | Path = "export", top: int | None = 5,
                         pareto: bool = False) -> list[ExportedArch]:
    """Write the ``top`` best architectures of the experiment in ``db`` to ``out_dir``.

    Ranking is by the primary objective, one entry per distinct architecture. ``pareto=True``
    exports the Pareto front of all objectives instead (capped at ``top`` when given). Files per
    architecture: ``rankN.json`` (for ``nasforge train``), ``rankN.txt`` (the space's human form)
    and ``rankN.py`` (rebuilds the network); ``index.json`` lists them all.
    """
    from nasforge.report.stored import load_experiment

    if top is not None and top < 1:
        raise ConfigError(f"top must be >= 1, got {top}")
    exp = load_experiment(db)
    if exp.space is None:
        raise ConfigError(f"cannot recreate the search space {exp.space_name!r} of {str(db)!r}")
    chosen = exp.pareto_trials() if pareto else exp.ranked()
    stage = exp.final_stage
    if stage is not None and not pareto:
        # The final stage re-measured the top candidates with fresh seeds: its pick comes first.
        pick = stage["chosen"]["trial"]
        chosen = ([t for t in exp.trials if t.number == pick]
                  + [t for t in chosen if t.number != pick])
    if top is not None:
        chosen = chosen[:top]
    if not chosen:
        raise ConfigError(f"{str(db)!r} has no successful trial with a value for "
                          f"{exp.objective.metric!r} to export")
    info = exp.model_info()
    training = _training_options(exp.evaluator_options)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    exported = []
    for rank, t in enumerate(chosen, 1):
        af = ArchFile(
            arch=t.arch, space_options=dict(exp.space_options),
            num_classes=info["num_classes"], in_channels=info["in_channels"],
            build_kwargs=dict(info["build_kwargs"]), dataset=info["dataset"], training=training,
            metrics={k: float(v) for k, v in t.metrics.items()},
            extra={"rank": rank, "trial": t.number, "source": str(exp.path),
                   "objectives": [f"{o.direction[:3]}:{o.metric}" for o in exp.objectives],
                   **({"final_stage": {k: stage[k] for k in ("final", "verdict")}}
                      if stage is not None and t.number == stage["chosen"]["trial"] else {})},
        )
        stem = out / f"rank{rank}"
        json_path = af.save(stem.with_suffix(".json"))
        text_path = stem.with_suffix(".txt")
        text_path.write_text(exp.space.to_string(t.arch) + "\n")
        summary = ", ".join(f"{o.metric}={t.value(o.metric)}" for o in exp.objectives)
        script_path = stem.with_suffix(".py")
        script_path.write_text(build_script(
            af, f"Rebuild architecture #{rank} (trial {t.number}; {summary}) of {exp.path}."))
        exported.append(ExportedArch(rank, t.number, af, json_path, text_path, script_path))
        log.info("exported trial %d as %s", t.number, json_path)
    index: dict[str, Any] = {"source": str(exp.path), "selection": "pareto" if pareto else "top",
             "objectives": [[o.metric, o.direction] for o in exp.objectives],
             "architectures": [e.to_dict() for e in exported]}
    if stage is not None:
        index["final_stage"] = stage
    (out / "index.json").write_text(json.dumps(index, indent=2, default=str) + "\n")
    return exported


# ---------------------------------------------------------------------------------- retraining
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

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary."""
        return {"out_dir": str(self.out_dir), "checkpoint": str(self.checkpoint),
                "onnx": str(self.onnx) if self.onnx else None, "onnx_skipped": self.onnx_skipped,
                "metrics": self.metrics, "curve": self.curve}


def _onnx_available() -> str | None:
    """None when ONNX export and checking can run, else the reason."""
    import importlib.util

    missing = [m for m in ("onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        return (f"{' and '.join(missing)} not installed (pip install 'nasforge[export]' "
                "to also write an ONNX file)")
    return None


def export_onnx(model: nn.Module, example: torch.Tensor, path: str | Path,
                check: bool = True, atol: float = 1e-4) -> dict[str, float]:
    """Save ``model`` (on CPU, eval mode) as ONNX with a dynamic batch dimension.

    Uses PyTorch's TorchScript-based exporter (``dynamo=False``), which needs only the ``onnx``
    package; when it is unavailable (newer PyTorch), the dynamo exporter (needs ``onnxscript``).
    With ``check``, ``onnxruntime`` runs the file on ``example`` and the largest absolute
    difference from PyTorch's logits must stay within ``atol`` (+ 1e-4 relative).
    Returns ``{"onnx_max_abs_diff": ...}`` (empty without ``check``).
    """
    import warnings

    import torch

    from nasforge.train import as_logits

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    model = model.to("cpu").eval()
    example = example.to("cpu").float()
    kwargs: dict[str, Any] = {"input_names": ["input"], "output_names": ["logits"],
                              "dynamic_axes": {"input": {0: "batch"}, "logits": {0: "batch"}}}
    with warnings.catch_warnings():
        # Tracing warns about Python control flow on shapes (fixed for one input size: fine).
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(model, (example,), str(p), dynamo=False, **kwargs)
        except (TypeError, RuntimeError, ImportError) as exc:
            log.info("TorchScript ONNX export failed (%s); trying the dynamo exporter", exc)
            torch.onnx.export(model, (example,), str(p), dynamo=True,
                              input_names=["input"], output_names=["logits"],
                              dynamic_shapes=({0: torch.export.Dim("batch")},))
    if not check:
        return {}
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: example.numpy()})[0]
    with torch.no_grad():
        want = as_logits(model(example)).float().numpy()
    diff = float(np.max(np.abs(got - want))) if got.size else 0.0
    bound = atol + 1e-4 * float(np.max(np.abs(want)))
    if not diff <= bound:
        raise ConfigError(f"the ONNX model's outputs differ from PyTorch's by {diff:.3g} "
                          f"(allowed {bound:.3g}); it was not kept")
    return {"onnx_max_abs_diff": diff}


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
) -> RetrainResult:
    """Train an architecture from scratch for ``epochs`` epochs and save it in ``out_dir``.

    The data, network size and training recipe default to what the search used (stored in the
    exported JSON); every argument overrides them. Training uses the full training split minus
    ``val_size`` held out for validation (the search may have used subsets), and the official
    test split is scored at the end (``test_accuracy``). Files written: ``model.pt`` (see
    :func:`load_checkpoint`), ``arch.json``, ``metrics.json`` and, when onnx and onnxruntime are
    installed and ``onnx`` is True, ``model.onnx``. ``on_epoch(stats)`` sees every epoch.
    """
    import torch

    from nasforge.data import BatchLoader
    from nasforge.evaluators.training import TrainingEvaluator
    from nasforge.train import TrainConfig, Trainer, evaluate_model
    from nasforge.utils.device import resolve_device
    from nasforge.utils.rng import derive_seed

    af = arch if isinstance(arch, ArchFile) else load_arch_file(arch)
    space = af.space()
    options = dict(af.training)
    options.update(dict(train_options or {}))
    options["epochs"] = epochs
    data_opts = {k: options.pop(k) for k in list(options) if k in _DATA_KEYS}
    if data_dir is not None:
        data_opts["data_dir"] = data_dir
    if val_size is not None:
        data_opts["val_size"] = val_size
    name = dataset or af.dataset or "fashion_mnist"
    evaluator = TrainingEvaluator(
        dataset=name, train_subset=train_subset, test=True, test_subset=test_subset,
        build_kwargs={**af.build_kwargs, **dict(build_kwargs or {})}, **data_opts, **options,
    )
    evaluator.bind(space)
    cfg: TrainConfig = evaluator.train_config
    dev = resolve_device(device)
    started = time.time()
    splits = evaluator.splits()
    log.info("retraining %s on %s (%s) for %d epoch(s) on %s", space.to_string(af.arch), name,
             splits.sizes(), epochs, dev)
    model = evaluator.build(af.arch, seed=derive_seed(seed, "init"))

    def loader(data: Any, batch: int, train: bool) -> BatchLoader:
        return BatchLoader(data, batch, shuffle=train, augment=evaluator.augment if train else "none",
                           seed=derive_seed(seed, "data"), device=dev,
                           image_size=evaluator.image_size, channels=evaluator.channels,
                           resize_mode=evaluator.resize_mode)

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
        arch=af.arch, space_options=af.space_options, num_classes=evaluator.num_classes(),
        in_channels=evaluator.input_shape()[0], build_kwargs=dict(evaluator.build_kwargs),
        dataset=name, training={**af.training, **dict(train_options or {})},
        metrics={k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))},
        extra={"trained_from": af.extra.get("source"), "trial": af.extra.get("trial")},
    )
    curve = [s.to_dict() for s in fit.curve]
    checkpoint = out / "model.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "state_dict": state, "arch": trained.to_dict(),
                "metrics": metrics, "curve": curve, "train_config": cfg.to_dict(),
                "input_shape": list(evaluator.input_shape()), "seed": seed}, checkpoint)
    trained.save(out / "arch.json")

    onnx_path: Path | None = None
    skipped = None if onnx else "not requested"
    if skipped is None:
        skipped = _onnx_available()
    if skipped is None:
        example = next(iter(loader(splits.val, 8, False)))[0]
        try:
            metrics.update(export_onnx(model, example, out / "model.onnx"))
            onnx_path = out / "model.onnx"
        except (NasforgeError, RuntimeError, TypeError, ValueError) as exc:
            skipped = f"ONNX export failed: {exc}"
            (out / "model.onnx").unlink(missing_ok=True)
            log.warning("%s", skipped)
    (out / "metrics.json").write_text(json.dumps(
        {"metrics": metrics, "curve": curve, "onnx": str(onnx_path) if onnx_path else None,
         "onnx_skipped": skipped}, indent=2, default=_json_number) + "\n")
    log.info("saved %s (test accuracy %s)", checkpoint, metrics.get("test_accuracy"))
    return RetrainResult(out, checkpoint, metrics, curve, onnx_path, skipped)


def _json_number(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return str(obj)


def load_checkpoint(path: str | Path, device: str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the trained network saved by :func:`retrain`; returns ``(model, checkpoint)``.

    The model is in eval mode on ``device``; ``checkpoint`` holds ``arch``, ``metrics``,
    ``curve`` and ``train_config``. Loading uses ``torch.load(weights_only=True)``: a checkpoint
    cannot run code.
    """
    import torch

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"checkpoint {str(p)!r} does not exist")
    ckpt = torch.load(p, map_location=device, weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ConfigError(f"{str(p)!r} is not a nasforge checkpoint (format "
                          f"{ckpt.get('format') if isinstance(ckpt, dict) else None!r}, "
                          f"expected {CHECKPOINT_FORMAT!r})")
    af = arch_file_from_dict(ckpt["arch"], str(p))
    model = af.build()
    model.load_state_dict(ckpt["state_dict"])
    return model.to(device).eval(), ckpt


__all__ = [
    "ARCH_FORMAT",
    "CHECKPOINT_FORMAT",
    "ArchFile",
    "ExportedArch",
    "RetrainResult",
    "arch_file_from_dict",
    "build_script",
    "export_architectures",
    "export_onnx",
    "load_arch_file",
    "load_checkpoint",
    "retrain",
]
