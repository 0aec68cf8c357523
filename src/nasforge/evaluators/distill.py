"""Training with knowledge distillation from a teacher model (registered as ``"distill"``).

The teacher is a trained ``nn.Module`` or a zero-argument callable that builds (or loads) one;
a callable is only called in the process that evaluates, once, so large teachers need not be
pickled to worker processes. The teacher sees exactly the student's input batches.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from nasforge.errors import ConfigError
from nasforge.evaluators.base import EvalContext
from nasforge.evaluators.training import TrainingEvaluator
from nasforge.registry import EVALUATORS
from nasforge.space.architecture import Architecture
from nasforge.train import evaluate_model
from nasforge.train.distill import check_distillation, make_distillation_loss
from nasforge.train.trainer import LossFn
from nasforge.trial import Result


@EVALUATORS.register("distill")
class DistillationEvaluator(TrainingEvaluator):
    """Like ``"train"``, but the student also matches a teacher's softened outputs
    (Hinton et al., 2015). ``temperature`` T and soft-loss weight ``alpha`` set the loss
    ``(1 - alpha) * CE + alpha * T^2 * KL``; every ``"train"`` option is accepted too.
    ``info["teacher_accuracy"]`` reports the teacher's validation accuracy for reference.
    """

    name = "distill"

    def __init__(self, teacher: nn.Module | Callable[[], nn.Module], *,
                 temperature: float = 4.0, alpha: float = 0.9, **options: Any) -> None:
        super().__init__(**options)
        if not (isinstance(teacher, nn.Module) or callable(teacher)):
            raise ConfigError(
                f"teacher must be a torch Module or a callable that returns one; got {teacher!r}"
            )
        check_distillation(temperature, alpha)
        self.teacher = teacher
        self.temperature = float(temperature)
        self.alpha = float(alpha)
        self._teacher: dict[str, nn.Module] = {}
        self._teacher_accuracy: float | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_teacher"] = {}
        state["_teacher_accuracy"] = None
        return state

    def teacher_on(self, device: torch.device) -> nn.Module:
        """The teacher module on ``device`` (built once per process when given as a callable)."""
        key = str(device)
        if key not in self._teacher:
            model = self.teacher if isinstance(self.teacher, nn.Module) else self.teacher()
            if not isinstance(model, nn.Module):
                raise ConfigError(f"the teacher factory returned {type(model).__name__}, not a Module")
            self._teacher[key] = model.to(device).eval()
        return self._teacher[key]

    def loss_fn(self, device: torch.device) -> LossFn | None:
        return make_distillation_loss(self.teacher_on(device), self.temperature, self.alpha,
                                      self.train_config.label_smoothing)

    def evaluate(self, arch: Architecture, ctx: EvalContext) -> Result:
        result = super().evaluate(arch, ctx)
        if result.status.value != "ok":
            return result
        if self._teacher_accuracy is None:
            device = torch.device(result.info.get("device", "cpu"))
            splits = self._splits_on(str(device))
            val = self._loader(splits.val, self.train_config.eval_batch_size, False, 0, str(device))
            self._teacher_accuracy, _ = evaluate_model(self.teacher_on(device), val, device)
        info = {**result.info, "teacher_accuracy": self._teacher_accuracy}
        return Result(metrics=result.metrics, cost=result.cost, status=result.status,
                      error=result.error, info=info)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "temperature": self.temperature, "alpha": self.alpha,
                "teacher": type(self.teacher).__name__ if isinstance(self.teacher, nn.Module)
                else getattr(self.teacher, "__qualname__", repr(self.teacher))}
