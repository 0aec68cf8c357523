"""Training hyper-parameters as one validated dataclass."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from nasforge.errors import ConfigError
from nasforge.utils.coerce import coerce_fields

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULERS = ("cosine", "constant")


@dataclass
class TrainConfig:
    """How to train one network.

    Defaults follow the common CIFAR recipe used by NAS-Bench-201 (SGD, Nesterov momentum 0.9,
    weight decay 5e-4, cosine learning-rate decay to ``min_lr``), scaled down for short runs.
    ``amp``: None means "bf16 autocast when training on CUDA".
    ``channels_last``: None means "train in channels_last (NHWC) on every device": on CPU a
    training step took 1.1-2x less CPU time in it for every built-in space we timed (PyTorch 2.13,
    oneDNN convolutions; ``benchmarks/trainer_throughput.py`` prints the ratio), and on CUDA it is
    what tensor cores want. Latency and
    memory are still *measured* in NCHW on CPU (see :meth:`conditions`), the layout of the
    per-device latency table and of an ONNX deployment.
    ``num_threads``: torch CPU threads for this process (None keeps ``torch.get_num_threads()``).
    """

    epochs: int = 2
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    scheduler: str = "cosine"
    min_lr: float = 0.0
    label_smoothing: float = 0.0
    grad_clip: float | None = 5.0
    eval_batch_size: int = 1024
    amp: bool | None = None
    channels_last: bool | None = None
    num_threads: int | None = None

    def __post_init__(self) -> None:
        coerce_fields(self)  # "1e-3" from a file or flag is the number it reads as
        self.optimizer = self.optimizer.lower()
        self.scheduler = self.scheduler.lower()
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(
                f"unknown optimizer {self.optimizer!r}; allowed: {', '.join(OPTIMIZERS)}"
            )
        if self.scheduler not in SCHEDULERS:
            raise ConfigError(
                f"unknown scheduler {self.scheduler!r}; allowed: {', '.join(SCHEDULERS)}"
            )
        for name in ("epochs", "batch_size", "eval_batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer; got {value!r}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be positive; got {self.lr!r}")
        if not 0 <= self.min_lr <= self.lr:
            raise ConfigError(f"min_lr must lie in [0, lr={self.lr}]; got {self.min_lr!r}")
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"momentum must lie in [0, 1); got {self.momentum!r}")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay must be >= 0; got {self.weight_decay!r}")
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"label_smoothing must lie in [0, 1); got {self.label_smoothing!r}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ConfigError(f"grad_clip must be positive or None; got {self.grad_clip!r}")
        if self.num_threads is not None and (
            isinstance(self.num_threads, bool) or not isinstance(self.num_threads, int)
            or self.num_threads < 1
        ):
            raise ConfigError(
                f"num_threads must be a positive integer or None; got {self.num_threads!r}"
            )

    def conditions(self, on_cuda: bool) -> tuple[bool, bool]:
        """``(amp, channels_last)`` for measuring on a CUDA device or not: the training evaluator
        measures latency and memory in them. ``amp`` is also what the trainer trains in; its
        layout is :meth:`trains_channels_last`, which differs on CPU by default."""
        amp = on_cuda if self.amp is None else (self.amp and on_cuda)
        channels_last = on_cuda if self.channels_last is None else self.channels_last
        return amp, channels_last

    def trains_channels_last(self) -> bool:
        """Whether the trainer holds the model and 4-D input batches in channels_last while
        training and validating (the default on every device; see the class docstring)."""
        return True if self.channels_last is None else bool(self.channels_last)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able copy."""
        return asdict(self)
