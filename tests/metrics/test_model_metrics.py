"""Params, FLOPs/MACs, latency, peak memory and robustness metrics on tiny models."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from nasforge.data import BatchLoader, make_splits
from nasforge.errors import ConfigError, UnknownNameError
from nasforge.metrics import (
    compute_metrics,
    count_flops,
    count_macs,
    count_params,
    fgsm_accuracy,
    list_metrics,
    measure_latency,
    model_bytes,
    noise_accuracy,
    peak_memory_bytes,
)
from nasforge.metrics.memory import measure_peak_memory
from nasforge.train import Trainer, evaluate_model


def convnet(c_in: int = 3, width: int = 16, classes: int = 10) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(c_in, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, classes),
    )


def test_params_and_shared_weights() -> None:
    lin = nn.Linear(4, 3)
    assert count_params(lin) == 15
    shared = nn.Sequential(lin, nn.ReLU(), lin)
    assert count_params(shared) == 15
    lin.bias.requires_grad_(False)
    assert count_params(lin, trainable_only=True) == 12


def test_flops_are_twice_the_macs_of_conv_and_linear() -> None:
    m = convnet()
    macs_conv = 16 * 3 * 9 * 32 * 32  # C_out * C_in * k*k * H*W
    macs_fc = 16 * 10
    assert count_macs(m, (3, 32, 32)) == macs_conv + macs_fc
    assert count_flops(m, (3, 32, 32)) == 2 * (macs_conv + macs_fc)
    assert count_flops(m, (3, 32, 32), batch_size=4) == 8 * (macs_conv + macs_fc)
    assert m.training  # mode restored


def test_flops_by_hand_for_strided_grouped_and_pointwise_convs() -> None:
    m = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(),        # 32x32 -> 16x16
        nn.Conv2d(8, 8, 3, padding=1, groups=8),                    # depthwise: 1 input channel
        nn.Conv2d(8, 16, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
    )
    macs = (8 * 3 * 9 * 16 * 16      # C_out * C_in * k*k * H_out*W_out (stride 2)
            + 8 * 1 * 9 * 16 * 16    # depthwise: C_in / groups = 1
            + 16 * 8 * 1 * 16 * 16   # 1x1
            + 16 * 10)               # linear (biases, ReLU and pooling are not counted)
    assert count_macs(m, (3, 32, 32)) == macs == 106_656
    assert count_flops(m, (3, 32, 32)) == 2 * macs
    assert count_flops(nn.Sequential(nn.ReLU(), nn.AdaptiveAvgPool2d(1)), (3, 8, 8)) == 0


def test_latency_reports_conditions() -> None:
    m = convnet()
    lat = measure_latency(m, (3, 32, 32), batch_size=2, warmup=1, repeats=5, max_repeats=5)
    assert 0 < lat.min_ms <= lat.median_ms <= lat.p90_ms
    assert lat.batch_size == 2 and lat.device == "cpu" and lat.threads == 1 and lat.repeats == 5
    assert lat.precision == "float32" and lat.channels_last is False  # the CPU default
    assert lat.to_dict()["precision"] == "float32"
    with pytest.raises(ConfigError, match="repeats"):
        measure_latency(m, (3, 32, 32), repeats=0)


def test_precision_and_memory_format_are_applied_reported_and_undone() -> None:
    m = convnet()
    conv = m[0]
    assert isinstance(conv, nn.Conv2d)
    seen: list[tuple[torch.dtype, bool, bool]] = []

    def spy(module: nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        x = args[0]
        seen.append((out.dtype, x.is_contiguous(memory_format=torch.channels_last),
                     conv.weight.is_contiguous(memory_format=torch.channels_last)))

    conv.register_forward_hook(spy)
    lat = measure_latency(m, (3, 32, 32), batch_size=2, warmup=0, repeats=1, max_repeats=1,
                          precision="bfloat16", channels_last=True)
    assert lat.precision == "bfloat16" and lat.channels_last is True
    assert seen == [(torch.bfloat16, True, True)]  # conv ran in bf16 on NHWC input and weights
    assert conv.weight.is_contiguous() and conv.weight.dtype == torch.float32  # model restored

    # a model left in channels_last (as the trainer leaves it on CUDA) is measured in NCHW when
    # asked, and stays channels_last afterwards
    m.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    seen.clear()
    measure_latency(m, (3, 32, 32), batch_size=2, warmup=0, repeats=1, max_repeats=1)
    assert seen == [(torch.float32, False, False)]
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)

    with pytest.raises(ConfigError, match=r"precision 'fp8'; allowed: 'float32', 'bfloat16'"):
        measure_latency(m, (3, 32, 32), precision="fp8")
    with pytest.raises(ConfigError, match="channels_last must be True or False; got 'yes'"):
        measure_latency(m, (3, 32, 32), channels_last="yes")  # type: ignore[arg-type]


def test_peak_memory_reports_conditions_and_bf16_halves_activations() -> None:
    m = convnet(width=32)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    fp32 = measure_peak_memory(m, (3, 32, 32), 32, "training")
    bf16 = measure_peak_memory(m, (3, 32, 32), 32, "training", precision="bfloat16",
                               channels_last=True)
    assert (fp32.precision, fp32.channels_last, fp32.mode, fp32.batch_size, fp32.device) == (
        "float32", False, "training", 32, "cpu")
    assert (bf16.precision, bf16.channels_last) == ("bfloat16", True)
    assert fp32.bytes == peak_memory_bytes(m, (3, 32, 32), 32, "training")
    act = 32 * 32 * 32 * 32 * 4  # one fp32 (32, 32, 32, 32) activation
    assert fp32.bytes - bf16.bytes >= act // 2  # every saved activation is half as big
    assert fp32.mib == pytest.approx(fp32.bytes / 2**20)
    for k, v in m.state_dict().items():  # BatchNorm statistics and layout untouched
        assert torch.equal(v, before[k])
    conv = m[0]
    assert isinstance(conv, nn.Conv2d) and conv.weight.is_contiguous()
    assert all(p.grad is None for p in m.parameters())
    with pytest.raises(ConfigError, match="batch_size"):
        measure_peak_memory(m, (3, 32, 32), 0)


def test_peak_memory_grows_with_batch_and_training() -> None:
    m = convnet(width=32)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    base = model_bytes(m)
    inf8 = peak_memory_bytes(m, (3, 32, 32), 8, "inference")
    inf32 = peak_memory_bytes(m, (3, 32, 32), 32, "inference")
    train32 = peak_memory_bytes(m, (3, 32, 32), 32, "training")
    act = 32 * 32 * 32 * 32 * 4  # one (32, 32, 32, 32) float activation at batch 32
    assert base < inf8 < inf32 and inf32 >= base + act
    assert train32 > inf32
    for k, v in m.state_dict().items():  # BatchNorm statistics untouched
        assert torch.equal(v, before[k])
    assert all(p.grad is None for p in m.parameters())
    with pytest.raises(ConfigError, match="memory mode"):
        peak_memory_bytes(m, (3, 32, 32), mode="both")


def test_compute_metrics_by_name_and_errors() -> None:
    m = convnet()
    out = compute_metrics(m, ["params", "flops", "macs", "latency_ms", "throughput",
                              "peak_memory_mb", "train_memory_mb"], (3, 32, 32),
                          latency_repeats=3, latency_warmup=1, memory_batch_size=4,
                          throughput_batch_size=4)
    assert out["flops"] == 2 * out["macs"] and out["params"] == count_params(m)
    assert out["latency_ms"] > 0 and out["throughput"] > 0
    assert out["train_memory_mb"] > out["peak_memory_mb"] > 0
    assert set(out) <= set(list_metrics())
    with pytest.raises(UnknownNameError, match="unknown metric 'speed'"):
        compute_metrics(m, ["speed"], (3, 32, 32))
    with pytest.raises(ConfigError, match="unknown metric option"):
        compute_metrics(m, ["params"], (3, 32, 32), epsilonn=0.1)
    with pytest.raises(ConfigError, match="needs labelled data"):
        compute_metrics(m, ["fgsm_accuracy"], (3, 32, 32))


def test_robustness_on_fashion_mnist(fashion_mnist_dir: Path) -> None:
    splits = make_splits("fashion_mnist", data_dir=fashion_mnist_dir, train_subset=1024,
                         val_subset=256)
    model = convnet(c_in=1)
    train = BatchLoader(splits.train, 64, shuffle=True, seed=0)
    val = BatchLoader(splits.val, 128)
    Trainer(epochs=2, lr=0.1).fit(model, train, val, device="cpu", seed=0)
    clean, _ = evaluate_model(model, val)
    assert fgsm_accuracy(model, val, epsilon=0.0) == pytest.approx(clean)
    assert noise_accuracy(model, val, std=0.0) == pytest.approx(clean)
    adv = fgsm_accuracy(model, val, epsilon=0.1)
    assert adv < clean  # a gradient-sign step of 0.1 must hurt a normally trained net
    strong_noise = noise_accuracy(model, val, std=1.0)
    assert strong_noise < clean
    assert noise_accuracy(model, val, std=0.3, seed=1) == noise_accuracy(model, val, std=0.3,
                                                                         seed=1)
    # max_batches=1 measures exactly the first batch
    first = BatchLoader(splits.val.subset(range(128)), 128)
    assert fgsm_accuracy(model, val, epsilon=0.1, max_batches=1) == fgsm_accuracy(
        model, first, epsilon=0.1)
    # by name, with the options passed through
    out = compute_metrics(model, ["fgsm_accuracy", "noise_accuracy"], (1, 28, 28), data=val,
                          epsilon=0.05, noise_std=0.05)
    assert out["fgsm_accuracy"] == fgsm_accuracy(model, val, epsilon=0.05)
    assert out["noise_accuracy"] == noise_accuracy(model, val, std=0.05)
    assert adv < out["fgsm_accuracy"] < clean  # a smaller step hurts less
    with pytest.raises(ConfigError, match="epsilon"):
        fgsm_accuracy(model, val, epsilon=-1)
