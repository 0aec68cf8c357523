"""Hardware and quality metrics of built models, usable as objectives and constraints.

* size and compute: :func:`count_params`, :func:`count_flops` (2 x MACs), :func:`count_macs`;
* speed: :func:`measure_latency` / :func:`measure_latencies` (warm-up, interleaved repeats until
  the 95% interval of the median is tight, spread and a noisy-machine flag; :mod:`.timing`),
  :class:`LatencyTable` / :func:`predict_latency` (per-device kernel lookup table; metric
  ``latency_pred_ms``; :mod:`.latency_table`);
* memory: :func:`measure_peak_memory` (a :class:`PeakMemory` with its conditions) and
  :func:`peak_memory_bytes` (inference or training; method in :mod:`.memory`);
* robustness: :func:`fgsm_accuracy`, :func:`noise_accuracy`;
* :func:`compute_metrics` computes any of :data:`METRICS` by name (see :mod:`.registry`).
"""

from nasforge.metrics.count import count_flops, count_macs, count_params
from nasforge.metrics.latency import Latency, measure_latencies, measure_latency
from nasforge.metrics.latency_table import LatencyTable, predict_latency
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
from nasforge.metrics.timing import Timing, TimingProtocol

__all__ = [
    "DEFAULT_OPTIONS",
    "METRICS",
    "STATIC_METRICS",
    "Latency",
    "LatencyTable",
    "PeakMemory",
    "Timing",
    "TimingProtocol",
    "check_metric_names",
    "compute_metrics",
    "count_flops",
    "count_macs",
    "count_params",
    "fgsm_accuracy",
    "list_metrics",
    "measure_latencies",
    "measure_latency",
    "measure_peak_memory",
    "model_bytes",
    "noise_accuracy",
    "peak_memory_bytes",
    "predict_latency",
    "resolve_options",
]
