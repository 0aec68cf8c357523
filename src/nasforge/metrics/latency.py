"""Inference latency: warm-up, then the median of repeated timed forward passes.

On CUDA each timed run is bracketed by ``torch.cuda.synchronize()`` so the time covers the GPU
work, not just the kernel launches. The batch size, device, CPU thread count, numeric precision
and memory format are part of the measurement and are returned with it.

Precision and memory format (also used by :mod:`nasforge.metrics.memory`): ``precision`` is
``"float32"`` (plain fp32, the default) or ``"bfloat16"``/``"float16"`` (``torch.autocast`` with
that dtype around the forward pass: the weights and the input stay fp32, as when training with
mixed precision). ``channels_last=True`` runs the model and the input in NHWC memory format
(``torch.channels_last``), ``False`` in NCHW (contiguous). The trainer trains on CUDA with bf16
autocast and channels_last by default, so pass ``precision="bfloat16", channels_last=True`` to
measure a network under the conditions it was trained in. The model's own memory format is
restored afterwards.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from nasforge.errors import ConfigError
from nasforge.train.evaluate import model_device


@dataclass(frozen=True)
class Latency:
    """Latency of one forward pass in milliseconds, with the conditions it was measured under."""

    median_ms: float
    p90_ms: float
    min_ms: float
    batch_size: int
    device: str
    threads: int
    repeats: int
    #: ``"float32"``, or the autocast dtype (``"bfloat16"``/``"float16"``) the model ran under.
    precision: str = "float32"
    #: Whether model and input were in channels_last (NHWC) memory format.
    channels_last: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-able copy."""
        return asdict(self)


#: Precisions a measurement can run in (see the module docstring).
PRECISIONS: dict[str, torch.dtype | None] = {
    "float32": None,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


def check_conditions(precision: str, channels_last: bool) -> None:
    """Raise ConfigError for an unknown precision or a non-bool ``channels_last``."""
    if precision not in PRECISIONS:
        raise ConfigError(
            f"unknown precision {precision!r}; allowed: {', '.join(map(repr, PRECISIONS))}"
        )
    if not isinstance(channels_last, bool):
        raise ConfigError(f"channels_last must be True or False; got {channels_last!r}")


@contextlib.contextmanager
def model_memory_format(model: nn.Module, channels_last: bool) -> Iterator[torch.memory_format]:
    """Hold ``model`` in channels_last (or contiguous) memory format for the block; yields the
    format inputs must be given in.

    The model is converted explicitly either way (a model the trainer left in channels_last must
    not be measured in a mixed layout), and its own tensors are put back afterwards, so a
    measurement never changes the model it measures.
    """
    check_conditions("float32", channels_last)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    # Module.to(memory_format=...) swaps parameter data and replaces 4-D buffers: keep the
    # originals to put back. (Tensors already in the format are kept as they are, no copy.)
    params = [(p, p.data) for p in model.parameters()]
    buffers = [(m, name, b) for m in model.modules() for name, b in m._buffers.items()]
    model.to(memory_format=fmt)  # type: ignore[call-overload]
    try:
        yield fmt
    finally:
        with torch.no_grad():
            for p, data in params:
                p.data = data
            for m, name, b in buffers:
                m._buffers[name] = b


def precision_context(device: torch.device,
                      precision: str) -> contextlib.AbstractContextManager[object]:
    """``torch.autocast`` to the precision's dtype on ``device``, or no-op for ``"float32"``."""
    check_conditions(precision, False)
    dtype = PRECISIONS[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_latency(
    model: nn.Module,
    input_shape: Sequence[int],
    batch_size: int = 1,
    device: str | torch.device | None = None,
    warmup: int = 5,
    repeats: int = 20,
    *,
    precision: str = "float32",
    channels_last: bool = False,
) -> Latency:
    """Time ``model`` on a random batch of ``batch_size`` inputs of shape ``input_shape``.

    Runs in eval mode under ``torch.inference_mode()``; ``warmup`` untimed runs first (caches,
    lazy initialization, cuDNN autotuning), then ``repeats`` timed runs. ``precision`` and
    ``channels_last`` set the numeric precision and memory format (module docstring); both are
    reported in the result. The model is left on its device, its train/eval mode and memory
    format restored.
    """
    if batch_size < 1 or repeats < 1 or warmup < 0:
        raise ConfigError(
            f"need batch_size >= 1, repeats >= 1, warmup >= 0; got {batch_size}, {repeats}, {warmup}"
        )
    check_conditions(precision, channels_last)
    dev = model_device(model, device)
    model.to(dev)
    x = torch.randn((batch_size, *input_shape), device=dev)
    was_training = model.training
    model.eval()
    times = []
    try:
        with model_memory_format(model, channels_last) as fmt, \
                precision_context(dev, precision), torch.inference_mode():
            if x.dim() == 4:
                x = x.contiguous(memory_format=fmt)
            for _ in range(warmup):
                model(x)
            _sync(dev)
            for _ in range(repeats):
                t0 = time.perf_counter()
                model(x)
                _sync(dev)
                times.append((time.perf_counter() - t0) * 1000.0)
    finally:
        model.train(was_training)
    ordered = sorted(times)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return Latency(statistics.median(times), p90, ordered[0], batch_size, str(dev),
                   torch.get_num_threads(), repeats, precision, channels_last)
