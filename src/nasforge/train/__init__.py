"""Training loop for estimating architecture quality: :class:`Trainer` and its configuration.

Example::

    from nasforge.train import Trainer
    result = Trainer(epochs=2, lr=0.1).fit(model, train_loader, val_loader, seed=0)
    result.final.val_accuracy

The final training of a search's pick lives here too: :func:`retrain` trains an exported
architecture file (:class:`ArchFile`, :func:`load_arch_file`) longer and saves the model as a
:class:`Deployable` (input in [0, 1], normalization inside) with its :class:`ModelCard`.
"""

from nasforge.train.archfile import ArchFile, load_arch_file
from nasforge.train.config import OPTIMIZERS, SCHEDULERS, TrainConfig
from nasforge.train.deployable import Deployable, InputSpec, ModelCard
from nasforge.train.early_stopping import EarlyStopping
from nasforge.train.evaluate import as_logits, evaluate_model, model_device
from nasforge.train.retraining import RetrainResult, retrain
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
    "ArchFile",
    "Deployable",
    "EarlyStopping",
    "EpochStats",
    "FitResult",
    "InputSpec",
    "LossFn",
    "ModelCard",
    "NonFiniteLossError",
    "RetrainResult",
    "TimeLimitExceeded",
    "TrainConfig",
    "TrainState",
    "Trainer",
    "TrainingError",
    "as_logits",
    "evaluate_model",
    "load_arch_file",
    "lr_at",
    "make_optimizer",
    "model_device",
    "retrain",
]
