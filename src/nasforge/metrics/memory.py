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
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from nasforge.errors import ConfigError
from nasforge.train.evaluate import model_device

MODES = ("inference", "training")


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


def peak_memory_bytes(
    model: nn.Module,
    input_shape: Sequence[int],
    batch_size: int = 32,
    mode: str = "inference",
    device: str | torch.device | None = None,
) -> int:
    """Peak bytes of one pass over a random batch (see the module docstring for the method).

    ``mode="inference"``: forward in eval mode under ``inference_mode``. ``mode="training"``:
    forward and backward in train mode (BatchNorm running statistics are restored afterwards and
    gradients cleared, so the model is unchanged).
    """
    if mode not in MODES:
        raise ConfigError(f"unknown memory mode {mode!r}; allowed: {', '.join(MODES)}")
    dev = model_device(model, device)
    model.to(dev)
    x = torch.randn((batch_size, *input_shape), device=dev)
    was_training = model.training
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    grads = {n: p.grad for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = None

    def run() -> None:
        if mode == "inference":
            model.eval()
            with torch.inference_mode():
                model(x)
        else:
            model.train()
            out = model(x)
            logits = out[0] if isinstance(out, (tuple, list)) else out
            logits.float().sum().backward()

    try:
        extra = _cuda_peak(run, dev) if dev.type == "cuda" else _cpu_peak(run)
    finally:
        model.train(was_training)
        model.load_state_dict(saved)
        for n, p in model.named_parameters():
            p.grad = grads[n]
    return model_bytes(model) + max(extra, 0)
