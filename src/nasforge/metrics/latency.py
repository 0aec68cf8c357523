"""Inference latency: warm-up, then repeated timed forward passes until the 95% confidence
interval of the median is tight (the protocol of :mod:`nasforge.metrics.timing`).

The result holds the median, its confidence interval, the interquartile range, the number of
repeats, the medians of wall and CPU time, and ``noisy`` when the caps stopped the repeats while
the interval was still wider than ``rel_tol`` (a warning is logged too). On CUDA the time of
each run comes from CUDA events around the forward pass (GPU time). The batch size, device, CPU
thread count, numeric precision and memory format are part of the measurement and are returned
with it.

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
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from nasforge.errors import ConfigError
from nasforge.metrics.timing import Timer, TimingProtocol, cpu_timer, cuda_timer, time_interleaved
from nasforge.train.evaluate import model_device


@dataclass(frozen=True)
class Latency:
    """Latency of one forward pass in milliseconds, with its spread and the conditions it was
    measured under.

    ``median_ms`` (and the interval, quartiles, p90 and min) are on ``clock``: ``"wall"`` (on
    CUDA: GPU time from CUDA events) or ``"cpu"``; ``wall_ms`` and ``cpu_ms`` are the medians of
    both clocks (``cpu_ms`` is NaN on CUDA).
    """

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
    #: 95% confidence interval of the median (NaN when there were too few repeats for one).
    ci_low_ms: float = math.nan
    ci_high_ms: float = math.nan
    #: Interquartile range of the timed runs.
    iqr_ms: float = math.nan
    wall_ms: float = math.nan
    cpu_ms: float = math.nan
    clock: str = "wall"
    #: The caps stopped the repeats while the interval was wider than the tolerance.
    noisy: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-able copy."""
        return asdict(self)

    def as_metrics(self, name: str = "latency_ms") -> dict[str, float]:
        """``{name: median}`` plus the spread under :data:`LATENCY_COMPANIONS` names
        (``name_ci_low``, ``name_ci_high``, ``name_iqr``, ``name_cpu``, ``name_noisy`` as 0/1), so
        objectives and constraints can use them (``latency_ms_ci_high <= 5``)."""
        return {name: self.median_ms, f"{name}_ci_low": self.ci_low_ms,
                f"{name}_ci_high": self.ci_high_ms, f"{name}_iqr": self.iqr_ms,
                f"{name}_cpu": self.cpu_ms, f"{name}_noisy": float(self.noisy)}


#: Suffixes of the spread metrics stored beside a latency metric (see :meth:`Latency.as_metrics`).
LATENCY_COMPANIONS = ("ci_low", "ci_high", "iqr", "cpu", "noisy")


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


def measure_latencies(
    models: Sequence[nn.Module],
    input_shape: Sequence[int],
    batch_size: int = 1,
    device: str | torch.device | None = None,
    warmup: int = 5,
    repeats: int = 20,
    *,
    precision: str = "float32",
    channels_last: bool = False,
    max_repeats: int = 200,
    max_seconds: float = 2.0,
    rel_tol: float = 0.05,
    clock: str = "wall",
    timer: Timer | None = None,
    seed: int = 0,
) -> list[Latency]:
    """Time several models on one device, interleaved (each round runs every model once, in a
    seeded random order), so load on a shared machine hits all of them alike.

    Arguments as in :func:`measure_latency`; ``seed`` orders the rounds.
    """
    if batch_size < 1:
        raise ConfigError(f"need batch_size >= 1; got {batch_size}")
    protocol = TimingProtocol(warmup, repeats, max_repeats, max_seconds, rel_tol, clock)
    check_conditions(precision, channels_last)
    if not models:
        return []
    dev = model_device(models[0], device)
    if clock == "cpu" and dev.type != "cpu":
        raise ConfigError(f"clock 'cpu' measures CPU inference; on {dev} use clock='wall' "
                          "(GPU time from CUDA events)")
    if timer is None:
        timer = cuda_timer(dev) if dev.type == "cuda" else cpu_timer(torch.get_num_threads())
    x = torch.randn((batch_size, *input_shape), device=dev)
    modes = [m.training for m in models]
    try:
        with contextlib.ExitStack() as stack:
            fns = []
            for m in models:
                m.to(dev)
                m.eval()
                fmt = stack.enter_context(model_memory_format(m, channels_last))
                fns.append(_forward(m, x.contiguous(memory_format=fmt) if x.dim() == 4 else x))
            stack.enter_context(precision_context(dev, precision))
            stack.enter_context(torch.inference_mode())
            timings = time_interleaved(fns, protocol, timer, seed,
                                       what=f"network(s) on {dev}")
    finally:
        for m, mode in zip(models, modes, strict=True):
            m.train(mode)
    threads = torch.get_num_threads()
    return [Latency(t.median_ms, t.p90_ms, t.min_ms, batch_size, str(dev), threads, t.repeats,
                    precision, channels_last, t.ci_low_ms, t.ci_high_ms, t.iqr_ms, t.wall_ms,
                    t.cpu_ms, t.clock, t.noisy) for t in timings]


def _forward(model: nn.Module, x: torch.Tensor) -> Callable[[], object]:
    return lambda: model(x)


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
    max_repeats: int = 200,
    max_seconds: float = 2.0,
    rel_tol: float = 0.05,
    clock: str = "wall",
    timer: Timer | None = None,
) -> Latency:
    """Time ``model`` on a random batch of ``batch_size`` inputs of shape ``input_shape``.

    Runs in eval mode under ``torch.inference_mode()``; ``warmup`` untimed runs first (caches,
    lazy initialization, cuDNN autotuning), then at least ``repeats`` timed runs, continued
    until the 95% confidence interval of the median is within ``± rel_tol`` of it, or
    ``max_repeats`` runs or ``max_seconds`` of timed runs are reached (then ``noisy`` says
    whether the interval is still wide; module :mod:`nasforge.metrics.timing`). ``clock``:
    ``"wall"`` or ``"cpu"`` (load-insensitive; CPU only). ``precision`` and ``channels_last`` set
    the numeric precision and memory format (module docstring); both are reported in the
    result. ``timer`` replaces the clocks (tests). The model is left on its device, its
    train/eval mode and memory format restored.
    """
    return measure_latencies(
        [model], input_shape, batch_size, device, warmup, repeats, precision=precision,
        channels_last=channels_last, max_repeats=max_repeats, max_seconds=max_seconds,
        rel_tol=rel_tol, clock=clock, timer=timer,
    )[0]
