"""Knowledge distillation loss (Hinton, Vinyals & Dean, 2015, "Distilling the Knowledge in a
Neural Network").

``loss = (1 - alpha) * CE(student, y) + alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))``

The ``T^2`` factor keeps the soft term's gradient magnitude independent of the temperature, as
the paper recommends.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nasforge.errors import ConfigError
from nasforge.train.evaluate import as_logits
from nasforge.train.trainer import LossFn


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, targets: torch.Tensor,
                      temperature: float = 4.0, alpha: float = 0.9,
                      label_smoothing: float = 0.0) -> torch.Tensor:
    """The distillation loss of a batch of student logits given the teacher's logits."""
    hard = F.cross_entropy(student, targets, label_smoothing=label_smoothing)
    if alpha == 0:
        return hard
    t = temperature
    soft = F.kl_div(F.log_softmax(student.float() / t, dim=1),
                    F.log_softmax(teacher.float() / t, dim=1),
                    reduction="batchmean", log_target=True)
    return (1.0 - alpha) * hard + alpha * (t * t) * soft


def check_distillation(temperature: float, alpha: float) -> None:
    """Raise ConfigError for a temperature <= 0 or an alpha outside [0, 1]."""
    if not temperature > 0:
        raise ConfigError(f"temperature must be positive; got {temperature!r}")
    if not 0 <= alpha <= 1:
        raise ConfigError(f"alpha (soft-loss weight) must lie in [0, 1]; got {alpha!r}")


def make_distillation_loss(teacher: nn.Module, temperature: float = 4.0, alpha: float = 0.9,
                           label_smoothing: float = 0.0) -> LossFn:
    """A trainer ``loss_fn`` that runs the frozen ``teacher`` (eval mode, no grad) on each batch."""
    check_distillation(temperature, alpha)
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)

    def loss_fn(logits: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if alpha == 0:
            # No soft term: the teacher's outputs would be thrown away, so skip its forward pass.
            return F.cross_entropy(logits, y, label_smoothing=label_smoothing)
        with torch.no_grad():
            t_logits = as_logits(teacher(x))
        return distillation_loss(logits, t_logits, y, temperature, alpha, label_smoothing)

    return loss_fn
