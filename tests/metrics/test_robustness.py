"""Robustness metrics on data that is not uint8 pixels in [0, 1]: zero perturbation is the clean
accuracy, and clipping happens only to a known (or given) pixel range."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from nasforge.data import BatchLoader, from_tensors
from nasforge.errors import ConfigError
from nasforge.metrics import fgsm_accuracy, noise_accuracy
from nasforge.train import Trainer, evaluate_model


def blobs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two classes of 1x4x4 float images centred on -1 and +1: half the pixels are negative."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, 1, 4, 4, generator=g) * 0.3 + (y.float() * 2 - 1).view(-1, 1, 1, 1)
    return x, y


def trained() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 2))
    x, y = blobs(256, 0)
    Trainer(epochs=3, lr=0.1).fit(net, BatchLoader(from_tensors(x, y), 32, shuffle=True),
                                  device="cpu", seed=0)
    return net


class Recorder(nn.Module):
    """Identity that keeps every input batch it sees (to check what the metric fed the net)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.detach().clone())
        return x


def test_zero_perturbation_is_clean_accuracy_on_float_data() -> None:
    net = trained()
    x, y = blobs(128, 1)
    plain = [(x[i:i + 32], y[i:i + 32]) for i in range(0, 128, 32)]
    loader = DataLoader(TensorDataset(x, y), batch_size=32)
    clean, _ = evaluate_model(net, plain)
    assert clean > 95  # the task is easy: a failure below is the metric's, not the model's
    for data in (plain, loader, BatchLoader(from_tensors(x, y), 32)):
        assert fgsm_accuracy(net, data, epsilon=0.0) == pytest.approx(clean)
        assert noise_accuracy(net, data, std=0.0) == pytest.approx(clean)
    # a real perturbation on the same data still hurts
    assert fgsm_accuracy(net, plain, epsilon=1.5) < clean


def test_float_data_is_not_clipped_unless_bounds_are_given() -> None:
    x = torch.rand(16, 1, 4, 4) * 4 - 2  # pixels in [-2, 2]
    y = torch.zeros(16, dtype=torch.long)
    rec = Recorder()
    net = nn.Sequential(rec, nn.Flatten(), nn.Linear(16, 2))
    noise_accuracy(net, [(x, y)], std=0.5)
    assert float(rec.seen[-1].min()) < -2 and float(rec.seen[-1].max()) > 2  # no [0, 1] clip

    rec.seen.clear()
    fgsm_accuracy(net, [(x, y)], epsilon=0.5, bounds=(-1.0, 1.0))
    adv, clean = rec.seen[-1], x
    inside = (clean >= -1) & (clean <= 1)
    assert float(adv[inside].min()) >= -1 and float(adv[inside].max()) <= 1
    assert bool(((adv == 1) | (adv == -1))[inside].any())  # the clip took effect
    # pixels already outside the range are not pulled in (nor pushed further out)
    outside = ~inside
    assert bool(((adv[outside] - clean[outside]).abs() <= 0.5 + 1e-6).all())
    assert bool((adv[clean > 1] >= clean[clean > 1] - 0.5 - 1e-6).all())
    assert bool((adv[clean > 1] <= clean[clean > 1]).all())
    with pytest.raises(ConfigError, match=r"bounds must be .*low < high; got \(1.0, 0.0\)"):
        fgsm_accuracy(net, [(x, y)], bounds=(1.0, 0.0))
    with pytest.raises(ConfigError, match="bounds must be"):
        noise_accuracy(net, [(x, y)], bounds=(0.0,))  # type: ignore[arg-type]


def test_uint8_loader_clips_to_the_normalized_pixel_range() -> None:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (8, 1, 4, 4), generator=g, dtype=torch.uint8)
    data = from_tensors(images, torch.zeros(8, dtype=torch.long), num_classes=2,
                        mean=(0.5,), std=(0.25,))
    loader = BatchLoader(data, 8)
    assert loader.pixel_range == (0.0, 1.0)
    assert BatchLoader(from_tensors(images.float(), torch.zeros(8, dtype=torch.long)),
                       8).pixel_range is None
    rec = Recorder()
    net = nn.Sequential(rec, nn.Flatten(), nn.Linear(16, 2))
    noise_accuracy(net, loader, std=10.0)
    noisy = rec.seen[-1]
    # [0, 1] pixels are [-2, 2] after (x - 0.5) / 0.25; huge noise hits both ends
    assert float(noisy.min()) == pytest.approx(-2.0) and float(noisy.max()) == pytest.approx(2.0)
    # epsilon is converted with the std: 0.05 pixels is 0.2 normalized units
    rec.seen.clear()
    fgsm_accuracy(net, loader, epsilon=0.05, bounds=(-100.0, 100.0))
    clean, adv = rec.seen[0], rec.seen[1]
    assert torch.allclose((adv - clean).abs(), torch.full_like(clean, 0.2))
