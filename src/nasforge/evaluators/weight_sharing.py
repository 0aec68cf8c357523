"""Evaluate architectures with weights inherited from a trained supernet (one-shot estimation).

Every architecture is scored by the validation accuracy of its path through a trained supernet,
after recomputing BatchNorm statistics for that path on a few training batches (SPOS, Guo et al.,
ECCV 2020). That makes any multi-trial strategy (random search, evolution, ...) a one-shot method:
run an :class:`~nasforge.experiment.Experiment` with this evaluator. The supernet comes from a
checkpoint written by a one-shot search (``nasforge oneshot --checkpoint``) or is passed in; the data
is given, or re-created from the split the checkpoint records.

Metrics: ``accuracy`` (percent, on the validation subset), ``loss``, and ``params`` (parameters of
the stand-alone network ``space.build(arch)`` with the supernet's build options).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from nasforge.data.splits import DataSplits, make_splits
from nasforge.errors import ConfigError
from nasforge.evaluators.base import EvalContext, Evaluator
from nasforge.registry import EVALUATORS
from nasforge.space.architecture import Architecture
from nasforge.space.base import SearchSpace
from nasforge.supernet.base import Supernet
from nasforge.supernet.batches import Batch, first_batches
from nasforge.supernet.checkpoint import (
    check_space_options,
    load_checkpoint,
    supernet_from_checkpoint,
)
from nasforge.supernet.evaluation import evaluate_arch
from nasforge.trial import Result
from nasforge.utils.device import resolve_device

_SPLIT_KEYS = ("dataset", "data_dir", "val_size", "train_subset", "val_subset", "seed")


@EVALUATORS.register("weight_sharing")
class WeightSharingEvaluator(Evaluator):
    """Accuracy of an architecture's path in a trained supernet (BN recalibrated per architecture).

    Give ``supernet`` (a trained :class:`~nasforge.oneshot.Supernet`) or ``checkpoint`` (a file
    from a one-shot search). Data: ``splits`` (a :class:`~nasforge.data.DataSplits`), or
    ``dataset`` and split options (``data``: directory, ``val_size``, ``train_subset``,
    ``val_subset``, ``data_seed``) passed to :func:`nasforge.data.make_splits`; by default the split
    recorded in the checkpoint, so architectures are scored on data the weights were not trained on.
    ``bn_batches`` training batches recalibrate BatchNorm; ``eval_samples`` validation images (all
    when None) give the accuracy.
    """

    name = "weight_sharing"
    deterministic = True

    def __init__(
        self,
        supernet: Supernet | None = None,
        checkpoint: str | Path | None = None,
        *,
        splits: DataSplits | None = None,
        dataset: str | None = None,
        data: str | None = None,
        val_size: int | float | None = None,
        train_subset: int | float | None = None,
        val_subset: int | float | None = None,
        data_seed: int | None = None,
        batch_size: int = 256,
        bn_batches: int = 4,
        eval_samples: int | None = None,
        device: str = "auto",
        params: bool = True,
    ) -> None:
        super().__init__()
        if (supernet is None) == (checkpoint is None):
            raise ConfigError("the weight_sharing evaluator needs exactly one of supernet= or checkpoint=")
        if supernet is not None and not isinstance(supernet, Supernet):
            raise ConfigError(f"supernet must be a nasforge Supernet, got {type(supernet).__name__}")
        for label, value, low in (("batch_size", batch_size, 1), ("bn_batches", bn_batches, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{label} must be an integer >= {low}, got {value!r}")
        if eval_samples is not None and (isinstance(eval_samples, bool) or not isinstance(eval_samples, int)
                                         or eval_samples < 1):
            raise ConfigError(f"eval_samples must be a positive integer or None, got {eval_samples!r}")
        self.supernet = supernet
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        self._checkpoint_state: dict[str, Any] | None = None
        self.splits = splits
        overrides = {"dataset": dataset, "data_dir": data, "val_size": val_size,
                     "train_subset": train_subset, "val_subset": val_subset, "seed": data_seed}
        self.split_overrides = {k: v for k, v in overrides.items() if v is not None}
        self.batch_size = batch_size
        self.bn_batches = bn_batches
        self.eval_samples = eval_samples
        self.device = device
        self.count_params = bool(params)
        self._bn: list[Batch] | None = None
        self._eval: list[Batch] | None = None
        self._on: str | None = None
        self._params: dict[Architecture, float] = {}
        if self.checkpoint is not None:
            self._checkpoint_state = load_checkpoint(self.checkpoint)
            if self._checkpoint_state.get("method") is None:
                raise ConfigError(f"{str(self.checkpoint)!r} does not record its one-shot method")

    # ------------------------------------------------------------------ set-up
    def bind(self, space: SearchSpace) -> Evaluator:
        """Attach the search space; it must be the supernet's."""
        expected = (self.supernet.space.name if self.supernet is not None
                    else str(self._state()["supernet"]["space"]))
        if space.name != expected:
            raise ConfigError(
                f"the weight_sharing evaluator's supernet is of space {expected!r}, not {space.name!r}"
            )
        if self.supernet is None:
            # Fail at once, not at the first trial, when the search's space has other options.
            check_space_options(self._state()["supernet"].get("space_options"), space)
        self.space = space
        return self

    def _state(self) -> dict[str, Any]:
        assert self._checkpoint_state is not None
        return self._checkpoint_state

    def _split_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {}
        if self._checkpoint_state is not None:
            spec.update({k: v for k, v in dict(self._state().get("data") or {}).items() if k in _SPLIT_KEYS})
        spec.update(self.split_overrides)
        if "dataset" not in spec:
            raise ConfigError(
                "the weight_sharing evaluator needs data: pass splits=, or dataset= (e.g. "
                "'fashion_mnist'), or a checkpoint that records its dataset"
            )
        return spec

    def _prepare(self, device: str) -> Supernet:
        if self.supernet is None:
            self.supernet = supernet_from_checkpoint(self._state(), self.space)
        if self.splits is None:
            spec = self._split_spec()
            self.splits = make_splits(spec.pop("dataset"), **spec)
        if self._on != device:
            self.supernet.to(device)
            self._bn = first_batches(self.splits.train, self.batch_size, self.bn_batches, device)
            limit = None if self.eval_samples is None else -(-self.eval_samples // self.batch_size)
            batches = first_batches(self.splits.val, self.batch_size, limit, device)
            self._eval = _truncate(batches, self.eval_samples)
            self._on = device
        return self.supernet

    def _device(self, ctx: EvalContext | None) -> str:
        if self.device != "auto" or ctx is None:
            return resolve_device(self.device)
        return resolve_device(ctx.device)

    # ------------------------------------------------------------------ evaluation
    def cheap_metrics(self, arch: Architecture) -> dict[str, float]:
        """``params`` of the stand-alone network (known without any evaluation)."""
        if not self.count_params:
            return {}
        if arch not in self._params:
            space = self._space()
            kwargs = (self.supernet.build_kwargs if self.supernet is not None else
                      {k: v for k, v in self._state()["supernet"]["kwargs"].items() if k != "affine"})
            net = space.build(arch, **kwargs)
            self._params[arch] = float(sum(p.numel() for p in net.parameters()))
        return {"params": self._params[arch]}

    def _space(self) -> SearchSpace:
        if self.space is None:
            if self.supernet is None:
                raise ConfigError("bind the evaluator to its search space first (Experiment does this)")
            self.space = self.supernet.space
        return self.space

    def evaluate(self, arch: Architecture, ctx: EvalContext | None = None) -> Result:
        """Accuracy and loss of ``arch`` with inherited weights (plus ``params``)."""
        start = time.time()
        self._space().validate(arch)
        supernet = self._prepare(self._device(ctx))
        assert self._eval is not None
        accuracy, loss = evaluate_arch(
            supernet, arch, self._eval, self._bn if self.bn_batches > 0 else None
        )
        metrics = {"accuracy": accuracy, "loss": loss, **self.cheap_metrics(arch)}
        return Result(metrics=metrics, cost=time.time() - start,
                      info={"bn_batches": self.bn_batches, "eval_samples": _count(self._eval)})

    def rank(
        self, archs: Iterable[Architecture], top_k: int | None = None, path: str | Path | None = None
    ) -> list[dict[str, Any]]:
        """Evaluate ``archs`` and return the best ``top_k`` (all when None) as JSON-able records.

        Records hold ``rank`` (1 = best), ``arch`` (JSON form), ``arch_string`` (the space's text
        form) and the metrics, by decreasing accuracy (ties keep the input order). ``path`` also
        writes them as a JSON file.
        """
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
            raise ConfigError(f"top_k must be a positive integer or None, got {top_k!r}")
        space = self._space()
        unique = list(dict.fromkeys(archs))
        scored = []
        for arch in unique:
            result = self.evaluate(arch)
            scored.append((arch, dict(result.metrics)))
        scored.sort(key=lambda item: -item[1]["accuracy"])
        records = [
            {"rank": i + 1, "arch": arch.to_dict(), "arch_string": space.to_string(arch), **metrics}
            for i, (arch, metrics) in enumerate(scored[:top_k])
        ]
        if path is not None:
            target = Path(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(records, indent=2) + "\n")
        return records

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "name": self.name,
            "batch_size": self.batch_size,
            "bn_batches": self.bn_batches,
            "eval_samples": self.eval_samples,
        }
        if self.checkpoint is not None:
            info["checkpoint"] = str(self.checkpoint)
        if self.split_overrides:
            info["data"] = {k: v for k, v in self.split_overrides.items()}
        return info

    def __getstate__(self) -> dict[str, Any]:
        # Batches live on a device; worker processes rebuild them on their own.
        state = dict(self.__dict__)
        state.update(_bn=None, _eval=None, _on=None)
        return state


def _truncate(batches: list[Batch], limit: int | None) -> list[Batch]:
    if limit is None:
        return batches
    out, left = [], limit
    for x, y in batches:
        if left <= 0:
            break
        out.append((x[:left], y[:left]))
        left -= int(y.shape[0])
    return out


def _count(batches: list[Batch]) -> int:
    return sum(int(y.shape[0]) for _, y in batches)


__all__ = ["WeightSharingEvaluator"]
