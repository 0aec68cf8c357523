"""Inference latency: warm-up, then the median of repeated timed forward passes.

On CUDA each timed run is bracketed by ``torch.cuda.synchronize()`` so the time covers the GPU
work, not just the kernel launches. The batch size, device and CPU thread count are part of the
measurement and are returned with it.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
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

    def to_dict(self) -> dict[str, Any]:
        """JSON-able copy."""
        return asdict(self)


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
) -> Latency:
    """Time ``model`` on a random batch of ``batch_size`` inputs of shape ``input_shape``.

    Runs in eval mode under ``torch.inference_mode()``; ``warmup`` untimed runs first (caches,
    lazy initialization, cuDNN autotuning), then ``repeats`` timed runs. The model is left on its
    device and its train/eval mode restored.
    """
    if batch_size < 1 or repeats < 1 or warmup < 0:
        raise ConfigError(
            f"need batch_size >= 1, repeats >= 1, warmup >= 0; got {batch_size}, {repeats}, {warmup}"
        )
    dev = model_device(model, device)
    model.to(dev)
    x = torch.randn((batch_size, *input_shape), device=dev)
    was_training = model.training
    model.eval()
    times = []
    try:
        with torch.inference_mode():
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
                   torch.get_num_threads(), repeats)
