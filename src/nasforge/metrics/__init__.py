"""Hardware and quality metrics of built models, usable as objectives and constraints.

* size and compute: :func:`count_params`, :func:`count_flops` (2 x MACs), :func:`count_macs`;
* speed: :func:`measure_latency` (warm-up, median of repeats, batch size and device stated);
* memory: :func:`measure_peak_memory` (a :class:`PeakMemory` with its conditions) and
  :func:`peak_memory_bytes` (inference or training; method in :mod:`.memory`);
* robustness: :func:`fgsm_accuracy`, :func:`noise_accuracy`;
* :func:`compute_metrics` computes any of :data:`METRICS` by name (see :mod:`.registry`).
"""

from nasforge.metrics.count import count_flops, count_macs, count_params
from nasforge.metrics.latency import Latency, measure_latency
from nasforge.metrics.memory import PeakMemory, measure_peak_memory, model_bytes, peak_memory_bytes
from nasforge.metrics.registry import (
    DEFAULT_OPTIONS,
    METRICS,
    STATIC_METRICS,
    check_metric_names,
    compute_metrics,
    list_metrics,
    resolve_options,
)
from nasforge.metrics.robustness import fgsm_accuracy, noise_accuracy

__all__ = [
    "DEFAULT_OPTIONS",
    "METRICS",
    "STATIC_METRICS",
    "Latency",
    "PeakMemory",
    "check_metric_names",
    "compute_metrics",
    "count_flops",
    "count_macs",
    "count_params",
    "fgsm_accuracy",
    "list_metrics",
    "measure_latency",
    "measure_peak_memory",
    "model_bytes",
    "noise_accuracy",
    "peak_memory_bytes",
    "resolve_options",
]
