"""Peak memory of a forward pass (inference) or a forward + backward pass (training).

Both report ``parameter and buffer bytes + the peak of the extra tensor memory during the run``:

* CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``, minus the memory
  allocated before the run (so only the run's activations, gradients and workspaces count).
* CPU: torch's profiler with ``profile_memory=True`` records every tensor allocation and free;
  the running sum of those, in time order, gives the peak. It counts tensor memory as torch's
  allocator sees it (not allocator caching or Python objects), at op granularity: an op's
  temporary buffers that are freed inside the op are not seen.

Training memory covers activations saved for backward and parameter gradients, not optimizer
state (which depends on the optimizer: 1x parameters for SGD momentum, 2x for Adam).

``precision`` (``"float32"``, ``"bfloat16"``, ``"float16"``: autocast dtype) and
``channels_last`` set the conditions of the pass, as for latency (see
:mod:`nasforge.metrics.latency`); bf16 autocast roughly halves the activation memory, so a
network trained with it should be measured with it. :func:`measure_peak_memory` returns the
figure with the conditions it was measured under.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from nasforge.errors import ConfigError
from nasforge.metrics.latency import check_conditions, model_memory_format, precision_context
from nasforge.train.evaluate import model_device

MODES = ("inference", "training")


@dataclass(frozen=True)
class PeakMemory:
    """Peak memory of one pass, with the conditions it was measured under."""

    #: Parameter and buffer bytes plus the peak extra tensor bytes of the pass.
    bytes: int
    #: ``"inference"`` or ``"training"``.
    mode: str
    batch_size: int
    device: str
    #: ``"float32"``, or the autocast dtype (``"bfloat16"``/``"float16"``).
    precision: str
    channels_last: bool

    @property
    def mib(self) -> float:
        """``bytes`` in MiB."""
        return self.bytes / float(1 << 20)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able copy."""
        return asdict(self)


def model_bytes(model: nn.Module) -> int:
    """Bytes held by the model's parameters and buffers (shared tensors counted once)."""
    seen: set[int] = set()
    total = 0
    for t in list(model.parameters()) + list(model.buffers()):
        if id(t) not in seen:
            seen.add(id(t))
            total += t.numel() * t.element_size()
    return total


@contextlib.contextmanager
def _quiet_stderr_fd() -> Iterator[None]:
    """Silence file descriptor 2 (the profiler's C++ start/stop log lines) for a moment."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _cpu_peak(fn: Callable[[], None]) -> int:
    prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
    # Only the profiler's start and stop are silenced; the measured run keeps its stderr.
    with _quiet_stderr_fd():
        prof.start()
    try:
        fn()
    finally:
        with _quiet_stderr_fd():
            prof.stop()
    live = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        live += event.self_cpu_memory_usage
        peak = max(peak, live)
    return peak


def _cuda_peak(fn: Callable[[], None], device: torch.device) -> int:
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    fn()
    torch.cuda.synchronize(device)
    return int(torch.cuda.max_memory_allocated(device) - before)


def measure_peak_memory(
    model: nn.Module,
    input_shape: Sequence[int],
    batch_size: int = 32,
    mode: str = "inference",
    device: str | torch.device | None = None,
    *,
    precision: str = "float32",
    channels_last: bool = False,
) -> PeakMemory:
    """Peak bytes of one pass over a random batch (see the module docstring for the method).

    ``mode="inference"``: forward in eval mode under ``inference_mode``. ``mode="training"``:
    forward and backward in train mode (BatchNorm running statistics are restored afterwards and
    gradients cleared, so the model is unchanged). ``precision``/``channels_last``: the
    conditions of the pass, reported in the result; the model's memory format is restored.
    """
    if mode not in MODES:
        raise ConfigError(f"unknown memory mode {mode!r}; allowed: {', '.join(MODES)}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer; got {batch_size!r}")
    check_conditions(precision, channels_last)
    dev = model_device(model, device)
    model.to(dev)
    x = torch.randn((batch_size, *input_shape), device=dev)
    was_training = model.training
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    grads = {n: p.grad for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = None

    try:
        # The format conversion happens before the measured pass, so converted weights do not
        # count as activation memory.
        with model_memory_format(model, channels_last) as fmt:
            inputs = x.contiguous(memory_format=fmt) if x.dim() == 4 else x

            def run() -> None:
                if mode == "inference":
                    model.eval()
                    with precision_context(dev, precision), torch.inference_mode():
                        model(inputs)
                    return
                model.train()
                with precision_context(dev, precision):
                    out = model(inputs)
                logits = out[0] if isinstance(out, (tuple, list)) else out
                # Backward outside autocast, as the trainer does.
                logits.float().sum().backward()

            extra = _cuda_peak(run, dev) if dev.type == "cuda" else _cpu_peak(run)
    finally:
        model.train(was_training)
        model.load_state_dict(saved)
        for n, p in model.named_parameters():
            p.grad = grads[n]
    return PeakMemory(model_bytes(model) + max(extra, 0), mode, batch_size, str(dev), precision,
                      channels_last)


def peak_memory_bytes(
    model: nn.Module,
    input_shape: Sequence[int],
    batch_size: int = 32,
    mode: str = "inference",
    device: str | torch.device | None = None,
    *,
    precision: str = "float32",
    channels_last: bool = False,
) -> int:
    """Just the byte count of :func:`measure_peak_memory` (same arguments)."""
    return measure_peak_memory(model, input_shape, batch_size, mode, device,
                               precision=precision, channels_last=channels_last).bytes
