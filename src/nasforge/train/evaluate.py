"""Measuring a model on a loader: accuracy and mean loss, accumulated on the device."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from nasforge.errors import ConfigError


def as_logits(output: object) -> torch.Tensor:
    """The class scores of a model's output.

    Plain tensors are logits; for tuples/lists the first element is taken (the DARTS convention
    of ``(logits, auxiliary_logits)``).
    """
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise ConfigError(
        f"the model returned {type(output).__name__}; it must return logits (a tensor) or a tuple "
        "whose first element is the logits"
    )


def model_device(model: nn.Module, device: str | torch.device | None = None) -> torch.device:
    """``device`` when given, else the device of the model's first parameter or buffer (CPU for
    a model without tensors)."""
    if device is not None:
        return torch.device(device)
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


def autocast_context(device: torch.device, amp: bool) -> contextlib.AbstractContextManager[object]:
    """bf16 autocast on CUDA when ``amp``, else a no-op context."""
    if amp and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def evaluate_model(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: str | torch.device | None = None,
    amp: bool = False,
    channels_last: bool = False,
) -> tuple[float, float]:
    """(accuracy in percent, mean cross-entropy) of ``model`` over ``batches``.

    Sums stay on the device and are read once at the end, so evaluation never waits on the GPU
    per batch. The model is put in eval mode and restored to its previous mode afterwards.
    """
    dev = model_device(model, device)
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=dev)
    loss_sum = torch.zeros((), dtype=torch.float32, device=dev)
    n = 0
    try:
        with torch.inference_mode(), autocast_context(dev, amp):
            for x, y in batches:
                x = x.to(dev, non_blocking=True)
                y = y.to(dev, non_blocking=True)
                if channels_last and x.dim() == 4:  # the layout only exists for image batches
                    x = x.contiguous(memory_format=torch.channels_last)
                logits = as_logits(model(x)).float()
                loss_sum += F.cross_entropy(logits, y, reduction="sum")
                correct += (logits.argmax(1) == y).sum()
                n += int(y.shape[0])
    finally:
        model.train(was_training)
    if n == 0:
        raise ConfigError("cannot evaluate on an empty set of batches")
    return 100.0 * correct.item() / n, loss_sum.item() / n
