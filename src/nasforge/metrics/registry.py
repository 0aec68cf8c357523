"""Metric names usable as objectives/constraints, and one function that computes any of them.

====================  ======================================================================
``params``            number of parameters
``flops``             FLOPs of one forward pass of one input (FlopCounterMode: 2 per MAC)
``macs``              multiply-accumulates of one forward pass of one input (= flops / 2)
``latency_ms``        median inference latency, batch ``latency_batch_size`` (default 1), with
                      its spread beside it: ``latency_ms_ci_low``/``_ci_high`` (95% interval
                      of the median), ``_iqr``, ``_cpu`` (median CPU time), ``_noisy`` (1.0
                      when the machine was too noisy to reach ``latency_rel_tol``)
``latency_pred_ms``   latency predicted from the per-device kernel table
                      (:mod:`.latency_table`) on ``latency_pred_device`` (default ``"cpu"``):
                      no timing once the table knows the kernels, so checked before training
``throughput``        inference images per second at batch ``throughput_batch_size`` (64)
``peak_memory_mb``    peak inference memory (MiB) at batch ``memory_batch_size`` (default 32)
``train_memory_mb``   peak forward+backward memory (MiB) at batch ``memory_batch_size``
``fgsm_accuracy``     accuracy (%) on FGSM examples at ``epsilon`` (default 8/255); needs data
``noise_accuracy``    accuracy (%) under Gaussian noise of std ``noise_std`` (0.1); needs data
====================  ======================================================================

Options (keyword arguments of :func:`compute_metrics`, or the training evaluator's
``metric_options``): ``latency_batch_size``, ``latency_warmup``, ``latency_repeats`` (the
fewest timed runs), ``latency_max_repeats``, ``latency_max_seconds``, ``latency_rel_tol`` and
``latency_clock`` (``"wall"`` or ``"cpu"``) of the timing protocol (:mod:`.timing`);
``latency_pred_device`` and ``latency_table_dir`` (None: the user cache) of the predictor;
``throughput_batch_size``, ``memory_batch_size``, ``epsilon``, ``noise_std``,
``robustness_batches`` (limit the batches used by the robustness metrics), ``precision``
(``"float32"``, or ``"bfloat16"``/``"float16"`` autocast) and ``channels_last`` for the latency,
throughput and memory metrics (the training evaluator sets both to its training conditions on CUDA).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from nasforge.errors import ConfigError, allowed, unknown
from nasforge.metrics.count import count_flops, count_macs, count_params
from nasforge.metrics.latency import LATENCY_COMPANIONS, Latency, measure_latency
from nasforge.metrics.latency_table import predict_latency
from nasforge.metrics.memory import peak_memory_bytes
from nasforge.metrics.robustness import fgsm_accuracy, noise_accuracy

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]

DEFAULT_OPTIONS: dict[str, Any] = {
    "latency_batch_size": 1,
    "latency_warmup": 5,
    "latency_repeats": 20,
    "latency_max_repeats": 200,
    "latency_max_seconds": 2.0,
    "latency_rel_tol": 0.05,
    "latency_clock": "wall",
    "latency_pred_device": "cpu",
    "latency_table_dir": None,
    "throughput_batch_size": 64,
    "memory_batch_size": 32,
    "epsilon": 8 / 255,
    "noise_std": 0.1,
    "robustness_batches": None,
    "precision": "float32",
    "channels_last": False,
}

_MIB = float(1 << 20)


def _need_data(name: str, data: Batches | None) -> Batches:
    if data is None:
        raise ConfigError(f"metric {name!r} needs labelled data (pass data=...)")
    return data


def _latency(model: nn.Module, shape: tuple[int, ...], dev: torch.device, batch_size: int,
             o: Mapping[str, Any]) -> Latency:
    return measure_latency(
        model, shape, batch_size, dev, o["latency_warmup"], o["latency_repeats"],
        precision=o["precision"], channels_last=o["channels_last"],
        max_repeats=o["latency_max_repeats"], max_seconds=o["latency_max_seconds"],
        rel_tol=o["latency_rel_tol"], clock=o["latency_clock"],
    )


#: A metric's value; a :class:`Latency` stands for its median with the spread beside it.
MetricFn = Callable[[nn.Module, tuple[int, ...], torch.device, "Batches | None", Mapping[str, Any]],
                    "float | Latency"]

METRICS: dict[str, MetricFn] = {
    "params": lambda m, shape, dev, data, o: float(count_params(m)),
    "flops": lambda m, shape, dev, data, o: float(count_flops(m, shape, device=dev)),
    "macs": lambda m, shape, dev, data, o: float(count_macs(m, shape, device=dev)),
    "latency_ms": lambda m, shape, dev, data, o: _latency(m, shape, dev,
                                                          o["latency_batch_size"], o),
    "latency_pred_ms": lambda m, shape, dev, data, o: predict_latency(
        m, shape, o["latency_batch_size"], o["latency_pred_device"], o["latency_table_dir"],
        o["latency_clock"]),
    "throughput": lambda m, shape, dev, data, o: o["throughput_batch_size"] * 1000.0 / (
        _latency(m, shape, dev, o["throughput_batch_size"], o).median_ms
    ),
    "peak_memory_mb": lambda m, shape, dev, data, o: peak_memory_bytes(
        m, shape, o["memory_batch_size"], "inference", dev, precision=o["precision"],
        channels_last=o["channels_last"]) / _MIB,
    "train_memory_mb": lambda m, shape, dev, data, o: peak_memory_bytes(
        m, shape, o["memory_batch_size"], "training", dev, precision=o["precision"],
        channels_last=o["channels_last"]) / _MIB,
    "fgsm_accuracy": lambda m, shape, dev, data, o: fgsm_accuracy(
        m, _need_data("fgsm_accuracy", data), o["epsilon"], dev,
        max_batches=o["robustness_batches"]),
    "noise_accuracy": lambda m, shape, dev, data, o: noise_accuracy(
        m, _need_data("noise_accuracy", data), o["noise_std"], dev,
        max_batches=o["robustness_batches"]),
}

#: Metrics that need no data and no timing: cheap enough to check constraints before training.
STATIC_METRICS = ("params", "flops", "macs")

#: Metrics stored beside a metric whenever it is computed (its spread): name -> companions.
COMPANIONS: dict[str, tuple[str, ...]] = {
    "latency_ms": tuple(f"latency_ms_{suffix}" for suffix in LATENCY_COMPANIONS),
}
#: Companion name -> the metric that produces it.
PARENT_OF: dict[str, str] = {c: parent for parent, cs in COMPANIONS.items() for c in cs}

#: Metrics known before training without timing a network (the latency predictor times only
#: kernels it has never seen): a constraint on them rejects a candidate at no cost.
BEFORE_TRAINING_METRICS = (*STATIC_METRICS, "latency_pred_ms")

#: Metrics that do not depend on the trained weights (only on the architecture and the device), so
#: they can be measured on the untrained model: a constraint on them can reject a candidate before
#: any training. The timing and memory ones are measured where the trial runs (its device).
WEIGHT_FREE_METRICS = (*BEFORE_TRAINING_METRICS, "latency_ms", "throughput", "peak_memory_mb",
                       "train_memory_mb")


def list_metrics() -> list[str]:
    """Names accepted by :func:`compute_metrics` (and the training evaluator's ``metrics=``),
    companions included."""
    return sorted([*METRICS, *PARENT_OF])


def check_metric_names(names: Iterable[str]) -> None:
    """Raise an error listing the known metrics when a name is unknown."""
    for name in names:
        if name not in METRICS and name not in PARENT_OF:
            raise unknown("metric", name, list_metrics())


def resolve_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The metric options with defaults filled in (unknown names raise ConfigError)."""
    bad = sorted(set(options) - set(DEFAULT_OPTIONS))
    if bad:
        raise ConfigError(
            f"unknown metric option(s) {allowed(bad)}; allowed: {allowed(DEFAULT_OPTIONS)}"
        )
    return {**DEFAULT_OPTIONS, **options}


def compute_metrics(
    model: nn.Module,
    names: Sequence[str],
    input_shape: Sequence[int],
    device: str | torch.device = "cpu",
    data: Batches | None = None,
    **options: Any,
) -> dict[str, float]:
    """Compute the named metrics of ``model`` for inputs of shape ``input_shape`` (C, H, W).

    ``data`` (labelled batches, e.g. a validation :class:`~nasforge.data.BatchLoader`) is needed
    by the robustness metrics. The model is moved to ``device``. A metric with companions
    (:data:`COMPANIONS`: the spread of ``latency_ms``) brings them along, and naming a companion
    computes its metric.
    """
    check_metric_names(names)
    opts = resolve_options(options)
    dev = torch.device(device)
    model.to(dev)
    shape = tuple(int(s) for s in input_shape)
    out: dict[str, float] = {}
    for n in dict.fromkeys(PARENT_OF.get(n, n) for n in names):
        value = METRICS[n](model, shape, dev, data, opts)
        out.update(value.as_metrics(n) if isinstance(value, Latency) else {n: float(value)})
    return out
