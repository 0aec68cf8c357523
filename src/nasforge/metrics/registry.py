"""Metric names usable as objectives/constraints, and one function that computes any of them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn

from nasforge.errors import unknown
from nasforge.metrics.count import count_flops, count_macs, count_params

#: name -> fn(model, input_shape, device, data, **options) -> float
MetricFn = Callable[..., float]
METRICS: dict[str, MetricFn] = {
    "params": lambda model, input_shape, device, data, **kw: float(count_params(model)),
    "flops": lambda model, input_shape, device, data, **kw: float(
        count_flops(model, input_shape, device=device)),
    "macs": lambda model, input_shape, device, data, **kw: float(
        count_macs(model, input_shape, device=device)),
}


def list_metrics() -> list[str]:
    """Names accepted by :func:`compute_metrics` (and the training evaluator's ``metrics=``)."""
    return sorted(METRICS)


def check_metric_names(names: Iterable[str]) -> None:
    """Raise an error listing the known metrics when a name is unknown."""
    for name in names:
        if name not in METRICS:
            raise unknown("metric", name, METRICS)


def compute_metrics(
    model: nn.Module,
    names: Sequence[str],
    input_shape: Sequence[int],
    device: str | torch.device = "cpu",
    data: Iterable[tuple[torch.Tensor, torch.Tensor]] | None = None,
    **options: Any,
) -> dict[str, float]:
    """Compute the named metrics of ``model`` for inputs of shape ``input_shape`` (C, H, W)."""
    check_metric_names(names)
    return {n: METRICS[n](model, tuple(input_shape), device, data, **options) for n in names}
