"""From a finished search to a deployable model: export the best architectures.

* :func:`export_architectures` writes the best architectures of a stored experiment, each as JSON
  (``rankN.json``, readable by :func:`load_arch_file` and ``nasforge train``), in the space's human
  form (``rankN.txt``) and as a small Python script that rebuilds the network (``rankN.py``).
* The final training of one of them (:func:`retrain`), its checkpoint (:func:`load_checkpoint`),
  the self-contained ``torch.export`` program (:func:`export_program`, :func:`load_program`),
  ONNX export, the deployable wrapper (:class:`Deployable`: input in [0, 1], normalization
  inside; :class:`ModelCard`: the metadata) and the architecture files themselves live in
  :mod:`nasforge.train`; they are re-exported here, so ``from nasforge.export import retrain``
  keeps working.

Every step logs through ``logging.getLogger("nasforge.export")``; nothing is printed.
"""

from __future__ import annotations

import json
import keyword
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nasforge.errors import ConfigError
from nasforge.train.archfile import ARCH_FORMAT, ArchFile, arch_file_from_dict, load_arch_file
from nasforge.train.config import TrainConfig
from nasforge.train.deployable import Deployable, InputSpec, ModelCard, input_spec_from_training
from nasforge.train.detection import DetectionRecipe
from nasforge.train.program import export_program, load_program
from nasforge.train.retraining import (
    CHECKPOINT_FORMAT,
    DATA_KEYS,
    RetrainResult,
    export_onnx,
    load_checkpoint,
    retrain,
)

log = logging.getLogger("nasforge.export")

# Evaluator options that a final training does not keep: search-time shortcuts.
_NOT_CARRIED = ("epochs", "num_threads")


def _py_call_args(options: Mapping[str, Any]) -> str:
    """Keyword arguments as Python source (``C=8, N=1``); JSON values are valid Python reprs."""
    parts = []
    for k, v in options.items():
        if not k.isidentifier() or keyword.iskeyword(k):
            raise ConfigError(f"option name {k!r} cannot be written as a Python keyword argument")
        parts.append(f"{k}={v!r}")
    return ", ".join(parts)


def build_script(af: ArchFile, title: str) -> str:
    """Source of a stand-alone script that rebuilds ``af``'s network with nasforge.

    When the dataset is a named one, ``model`` is a :class:`~nasforge.train.Deployable`: it takes
    images scaled to [0, 1] in the dataset's stored shape, with the training input steps (shape
    adaptation, normalization) inside, like the ``model.pt``/``model.onnx`` of ``nasforge train``;
    the bare network is ``network``.
    """
    space_args = _py_call_args(af.space_options)
    build_args = _py_call_args({"num_classes": af.num_classes, "in_channels": af.in_channels,
                                **af.build_kwargs})
    text = af.space().to_string(af.arch)
    spec = input_spec_from_training(af.dataset, af.training)
    if spec is None:
        wrap, takes = "model = network\n", "the network's own input"
    else:
        wrap = f"model = Deployable(network, InputSpec.from_dict({spec.to_dict()!r}))\n"
        takes = (f"{af.dataset} images of shape {list(spec.shape)} (C, H, W) scaled to "
                 "[0, 1], normalization inside")
    return (
        f'"""{title}\n\nRun it to print the network\'s size; import it to use ``model`` '
        '(a plain torch.nn.Module\nwith freshly initialized weights: train it, e.g. with '
        '`nasforge train` on the JSON file beside this one).\n'
        f"``model`` takes {takes}.\n" + '"""\n\n'
        "import nasforge\n"
        + ("" if spec is None else "from nasforge.train import Deployable, InputSpec\n")
        + "\n"
        f"space = nasforge.create_space({af.space_name!r}{', ' + space_args if space_args else ''})\n"
        f"arch = space.from_string({text!r})\n"
        f"network = space.build(arch, {build_args})\n"
        + wrap + "\n"
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
    """The evaluator options worth keeping for a final training (see ``DATA_KEYS``)."""
    train_keys = set(TrainConfig.__dataclass_fields__)
    out = {k: v for k, v in options.items()
           if (k in train_keys or k in DATA_KEYS) and k not in _NOT_CARRIED}
    nested = options.get("train")  # describe() of the training evaluator nests TrainConfig
    if isinstance(nested, Mapping):
        out.update({k: v for k, v in nested.items() if k in train_keys and k not in _NOT_CARRIED})
    return out


def _model_and_training(exp: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """What rebuilding the stored experiment's networks needs, and the training recipe to keep.

    A detection search keeps its whole recipe (``task: detection``, scenes, canvas, optimizer
    settings; not its epochs), which ``nasforge train`` then follows; others keep the options
    of :func:`_training_options`.
    """
    if exp.evaluator == "detection":
        from dataclasses import fields

        from nasforge.evaluators.detection import DetectionEvaluator

        known = {f.name for f in fields(DetectionRecipe)}
        ev = DetectionEvaluator(**{k: v for k, v in exp.evaluator_options.items() if k in known})
        recipe = {k: v for k, v in ev.recipe.to_dict().items() if k not in _NOT_CARRIED}
        return ev.model_info(), {"task": "detection", **recipe}
    return exp.model_info(), _training_options(exp.evaluator_options)


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
    info, training = _model_and_training(exp)
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


__all__ = [
    "ARCH_FORMAT",
    "CHECKPOINT_FORMAT",
    "ArchFile",
    "Deployable",
    "ExportedArch",
    "InputSpec",
    "ModelCard",
    "RetrainResult",
    "arch_file_from_dict",
    "build_script",
    "export_architectures",
    "export_onnx",
    "export_program",
    "load_arch_file",
    "load_checkpoint",
    "load_program",
    "retrain",
]
