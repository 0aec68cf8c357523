"""Training loop for estimating architecture quality: :class:`Trainer` and its configuration.

Example::

    from nasforge.train import Trainer
    result = Trainer(epochs=2, lr=0.1).fit(model, train_loader, val_loader, seed=0)
    result.final.val_accuracy
"""

from nasforge.train.config import OPTIMIZERS, SCHEDULERS, TrainConfig
from nasforge.train.early_stopping import EarlyStopping
from nasforge.train.evaluate import as_logits, evaluate_model, model_device
from nasforge.train.trainer import (
    EpochStats,
    FitResult,
    LossFn,
    NonFiniteLossError,
    TimeLimitExceeded,
    Trainer,
    TrainingError,
    TrainState,
    lr_at,
    make_optimizer,
)

__all__ = [
    "OPTIMIZERS",
    "SCHEDULERS",
    "EarlyStopping",
    "EpochStats",
    "FitResult",
    "LossFn",
    "NonFiniteLossError",
    "TimeLimitExceeded",
    "TrainConfig",
    "TrainState",
    "Trainer",
    "TrainingError",
    "as_logits",
    "evaluate_model",
    "lr_at",
    "make_optimizer",
    "model_device",
]
