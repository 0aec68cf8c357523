"""The per-device latency lookup table: kernel tracing, prediction as a calibrated sum, JSON
cache, the ``latency_pred_ms`` metric and its constraint checked before training."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import nasforge
from nasforge.errors import ConfigError
from nasforge.experiment.metric_checks import MetricChecks
from nasforge.metrics import LatencyTable, compute_metrics
from nasforge.metrics.latency_table import (
    device_description,
    fit_overhead,
    table_path,
    trace_kernels,
)
from nasforge.trial import Constraint, Objective, TrialStatus


def size_timer(fn: Callable[[], object]) -> tuple[float, float]:
    """Fake clock: a kernel takes (its output's elements / 1000) ms, on both clocks."""
    out = fn()
    assert isinstance(out, torch.Tensor)
    return out.numel() / 1000.0, out.numel() / 1000.0


def net(depth: int, width: int) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(3, width, 3, padding=1)]
    for _ in range(depth):
        layers += [nn.BatchNorm2d(width), nn.ReLU(), nn.Conv2d(width, width, 3, padding=1)]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10))


def fresh(tmp_path: Path, shape: tuple[int, ...] = (3, 8, 8)) -> LatencyTable:
    table = LatencyTable.for_device("cpu", 1, shape, cache_dir=tmp_path)
    table.timer = size_timer
    return table


def test_kernels_are_keyed_by_type_configuration_and_input_shape() -> None:
    shared = nn.Conv2d(4, 4, 3, padding=1)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), shared, shared, nn.MaxPool2d(2), shared)
    calls = trace_kernels(model, torch.zeros(1, 3, 8, 8))
    assert len(calls) == 5  # every call of a leaf, a shared one each time it runs
    keys = [c.key for c in calls]
    assert keys[1] == keys[2] != keys[4]  # same module, other input size: another kernel
    assert "Conv2d(3, 4, kernel_size=(3, 3)" in keys[0] and "[1, 3, 8, 8]float32" in keys[0]
    assert "[1, 4, 4, 4]" in keys[4]
    assert model.training  # mode restored


def test_prediction_is_the_sum_of_kernels_and_unknown_ones_are_timed_once(tmp_path: Path) -> None:
    table = fresh(tmp_path)
    model = net(2, 4)
    first = table.predict(model)
    # conv/bn/relu outputs are 4x8x8 (256 elements) except pool (4), flatten (4) and linear (10)
    assert first.calls == 10 and first.calibrated is None
    assert first.kernel_sum_ms == pytest.approx((7 * 256 + 4 + 4 + 10) / 1000.0)
    assert first.measured == 7  # conv3->4, bn, relu, conv4->4, pool, flatten, linear
    again = table.predict(model)
    assert again.measured == 0 and again.latency_ms == first.latency_ms
    assert table.predict(net(5, 4)).measured == 0  # deeper: the same kernels, more calls
    assert table.predict(net(2, 8)).measured == 7  # wider: all new


def test_calibration_fits_the_per_network_overhead(tmp_path: Path) -> None:
    table = fresh(tmp_path)
    models = [net(d, w) for d in (1, 2, 3, 4) for w in (4, 6)]
    sums = [table.predict(m).kernel_sum_ms for m in models]
    calls = [table.predict(m).calls for m in models]
    measured = [1.5 * s + 0.01 * c + 0.2 for s, c in zip(sums, calls, strict=True)]
    fit = table.calibrate(models, measured_ms=measured)
    assert fit["coef"] == pytest.approx([1.5, 0.01, 0.2], abs=1e-9) and fit["n"] == 8
    assert fit["mape"] == pytest.approx(0.0, abs=1e-9)
    p = table.predict(net(5, 4))
    assert p.calibrated is not None and p.latency_ms == pytest.approx(1.5 * p.kernel_sum_ms
                                                                       + 0.01 * p.calls + 0.2)
    # few networks: a constant overhead on top of the sum
    assert fit_overhead(np.array([1.0, 2.0]), np.array([3.0, 4.0]),
                        np.array([1.5, 2.5])) == (1.0, 0.0, 0.5)
    with pytest.raises(ConfigError, match="one network family at a time"):
        table.calibrate([net(1, 4), nn.Linear(3, 3)])


def test_table_is_a_json_file_per_device_and_saves_merge(tmp_path: Path) -> None:
    a = fresh(tmp_path)
    a.predict(net(1, 4))
    path = a.save()
    assert path.parent == tmp_path and path == table_path(a.description, tmp_path)
    stored = json.loads(path.read_text())
    assert stored["description"] == device_description("cpu", 1, (3, 8, 8))
    assert {"processor", "torch", "threads", "batch_size", "input_shape"} <= set(stored["description"])
    b = fresh(tmp_path)  # loaded from the file
    assert b.kernels == a.kernels
    a.predict(net(1, 6))  # each adds kernels the other lacks, then saves: nothing is lost
    b.predict(net(1, 8))
    a.save()
    b.save()
    merged = LatencyTable.for_device("cpu", 1, (3, 8, 8), cache_dir=tmp_path)
    assert set(merged.kernels) == set(a.kernels) | set(b.kernels)
    other = LatencyTable.for_device("cpu", 2, (3, 8, 8), cache_dir=tmp_path)  # another batch
    assert other.kernels == {} and other.path != path
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConfigError, match="not valid JSON"):
        LatencyTable.load(tmp_path / "bad.json")


def test_predicted_latency_metric_times_real_kernels(tmp_path: Path) -> None:
    model = net(2, 4)
    out = compute_metrics(model, ["latency_pred_ms"], (3, 8, 8), latency_table_dir=str(tmp_path))
    assert out["latency_pred_ms"] > 0
    assert len(list(tmp_path.glob("cpu-b1-3x8x8-*.json"))) == 1
    again = compute_metrics(model, ["latency_pred_ms"], (3, 8, 8), latency_table_dir=str(tmp_path))
    assert again == out  # a table lookup: the same figure, no timing


def test_latency_pred_constraint_rejects_before_training(tmp_path: Path) -> None:
    space = nasforge.create_space("nb201")
    ev = nasforge.create_evaluator(
        "train", dataset="fashion_mnist", build_kwargs={"C": 4, "N": 1},
        metric_options={"latency_table_dir": str(tmp_path), "latency_repeats": 6,
                        "latency_max_repeats": 10, "latency_max_seconds": 0.1},
    ).bind(space)
    tight = MetricChecks(ev, [Objective("accuracy", "maximize")], [Constraint.parse("latency_pred_ms <= 1e-6")])
    assert "latency_pred_ms" in ev.produced_metrics()
    arch = space.sample(0)
    cheap, rejection = tight.precheck(arch)
    assert cheap is not None and cheap["latency_pred_ms"] > 0
    assert rejection is not None and rejection.status is TrialStatus.INFEASIBLE
    assert "latency_pred_ms <= 1e-06" in (rejection.error or "")
    # the overhead of nb201 networks was fitted once and stored with the table
    [path] = tmp_path.glob("*.json")
    assert any("NB201" in family for family in json.loads(path.read_text())["calibration"])
    loose = MetricChecks(ev, [Objective("accuracy", "maximize")], [Constraint.parse("latency_pred_ms <= 1e6")])
    assert loose.precheck(arch)[1] is None
