"""The CUDA code paths: bf16 + channels_last training, the training evaluator's measurements,
latency (CUDA events) and memory (``max_memory_allocated``) metrics, the latency table on a GPU,
and export of a CUDA-trained model (ONNX on the CPU afterwards gives the same logits).

Marked ``cuda``: skipped without a GPU. ``pytest -m cuda`` or ``benchmarks/gpu_check.sh`` runs
them on a GPU machine. The one-shot methods' CUDA step is in tests/oneshot/test_oneshot_cuda.py.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch
from torch import nn

import nasforge
from nasforge.errors import ConfigError
from nasforge.metrics import LatencyTable, measure_latency, measure_peak_memory
from nasforge.train import Trainer
from nasforge.train.retraining import export_onnx

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

TINY = {"C": 8, "N": 1, "num_classes": 4, "in_channels": 1}


def batches(n: int = 4, size: int = 16, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        y = torch.randint(0, 4, (32,), generator=gen)
        x = torch.randn(32, 1, size, size, generator=gen) + y.view(-1, 1, 1, 1).float()
        out.append((x.cuda(), y.cuda()))
    return out


def tiny_net(seed: int = 0) -> nn.Module:
    space = nasforge.create_space("nb201")
    torch.manual_seed(seed)
    return space.build(space.sample(seed), **TINY)


def test_training_runs_in_bf16_and_channels_last() -> None:
    model = tiny_net()
    conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    seen: list[tuple[torch.dtype, bool]] = []
    conv.register_forward_hook(lambda m, args, out: seen.append(
        (out.dtype, args[0].is_contiguous(memory_format=torch.channels_last))))
    fit = Trainer(epochs=2, lr=0.05).fit(model, batches(), batches(2, seed=1), device="cuda", seed=0)
    assert fit.device.startswith("cuda") and fit.images_per_sec > 0
    assert fit.final is not None and math.isfinite(fit.final.train_loss)
    assert (torch.bfloat16, True) in seen  # trained under bf16 autocast on NHWC inputs
    assert conv.weight.dtype == torch.float32  # the weights stay fp32 (mixed precision)
    plain = Trainer(epochs=1, amp=False, channels_last=False).fit(tiny_net(), batches(), device="cuda")
    assert plain.final is not None and math.isfinite(plain.final.train_loss)


def test_training_evaluator_measures_on_cuda_in_its_training_conditions() -> None:
    data = batches(8)
    images = torch.cat([x for x, _ in data]).cpu()
    labels = torch.cat([y for _, y in data]).cpu()
    ev = nasforge.create_evaluator(
        "train", dataset=(images, labels), epochs=1, batch_size=32, device="cuda",
        build_kwargs={"C": 8, "N": 1}, metrics=["latency_ms", "peak_memory_mb", "train_memory_mb"],
    ).bind(nasforge.create_space("nb201"))
    result = ev.evaluate(ev.space.sample(0), nasforge.EvalContext(seed=0))  # type: ignore[union-attr]
    assert result.status.value == "ok", result.error
    assert result.info["device"].startswith("cuda")
    opts = result.info["metric_options"]
    assert opts["precision"] == "bfloat16" and opts["channels_last"] is True
    m = result.metrics
    assert m["latency_ms"] > 0 and m["latency_ms_ci_low"] <= m["latency_ms"] <= m["latency_ms_ci_high"]
    assert math.isnan(m["latency_ms_cpu"])  # GPU time: no CPU clock
    assert m["train_memory_mb"] > m["peak_memory_mb"] > 0


def test_latency_and_memory_metrics_on_cuda() -> None:
    model = tiny_net().cuda()
    lat = measure_latency(model, (1, 16, 16), batch_size=8, device="cuda", precision="bfloat16",
                          channels_last=True)
    assert lat.device.startswith("cuda") and lat.median_ms > 0 and math.isnan(lat.cpu_ms)
    assert lat.repeats >= 20 and lat.precision == "bfloat16"
    with pytest.raises(ConfigError, match="clock 'cpu' measures CPU inference"):
        measure_latency(model, (1, 16, 16), device="cuda", clock="cpu")
    inference = measure_peak_memory(model, (1, 16, 16), 64, "inference", "cuda")
    training = measure_peak_memory(model, (1, 16, 16), 64, "training", "cuda")
    half = measure_peak_memory(model, (1, 16, 16), 64, "training", "cuda", precision="bfloat16")
    assert training.bytes > inference.bytes > 0 and half.bytes < training.bytes


def test_latency_table_on_cuda(tmp_path: Path) -> None:
    table = LatencyTable.for_device("cuda", 8, (1, 16, 16), cache_dir=tmp_path)
    assert table.description["processor"] == torch.cuda.get_device_name()
    p = table.predict(tiny_net())
    assert p.latency_ms > 0 and p.measured > 0
    assert table.save().is_file()


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None, reason="needs onnxruntime")
def test_export_of_a_cuda_trained_model_matches_on_cpu(tmp_path: Path) -> None:
    model = tiny_net()
    Trainer(epochs=1, lr=0.05).fit(model, batches(), device="cuda", seed=0)  # bf16 + NHWC
    example = torch.randn(4, 1, 16, 16)
    diff = export_onnx(model, example, tmp_path / "model.onnx")
    assert diff["onnx_max_abs_diff"] < 1e-3
    import onnxruntime as ort

    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"input": example.numpy()})[0]
    with torch.no_grad():
        expected = model.cpu().eval()(example).numpy()
    assert abs(logits - expected).max() < 1e-3
