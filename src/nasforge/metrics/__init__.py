"""Hardware and quality metrics of built models (params, FLOPs/MACs, ...)."""

from nasforge.metrics.count import count_flops, count_macs, count_params
from nasforge.metrics.registry import METRICS, check_metric_names, compute_metrics, list_metrics

__all__ = [
    "METRICS",
    "check_metric_names",
    "compute_metrics",
    "count_flops",
    "count_macs",
    "count_params",
    "list_metrics",
]
