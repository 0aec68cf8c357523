"""Bring your own search space and training code.

A small space of multi-layer perceptrons (depth, width per layer, activation) searched with
regularized evolution; each candidate is built by the space and trained by a plain PyTorch loop
on a synthetic two-spirals problem. Nothing to download; runs in seconds on a CPU.

    python examples/custom_space.py
"""

import math
import os

import torch
from torch import nn

import nasforge
from nasforge import Choice, Condition, SearchSpace

SMALL = os.environ.get("NASFORGE_EXAMPLE_SMALL") == "1"
MAX_LAYERS = 3
WIDTHS = (8, 16, 32)


class MLPSpace(SearchSpace):
    """MLPs with 1-3 hidden layers; layer k's width exists only when the network has k+1 layers."""

    name = "mlp"

    def _declare(self):
        decisions = [Choice("layers", tuple(range(1, MAX_LAYERS + 1))),
                     Choice("activation", ("relu", "tanh", "gelu"))]
        for k in range(MAX_LAYERS):
            deeper = tuple(n for n in range(1, MAX_LAYERS + 1) if n > k)
            decisions.append(Choice(f"width{k}", WIDTHS, (Condition("layers", deeper),)))
        return decisions

    def build(self, arch, num_classes=2, in_features=2, **kwargs):
        act = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}[arch["activation"]]
        layers, width = [], in_features
        for k in range(arch["layers"]):
            layers += [nn.Linear(width, arch[f"width{k}"]), act()]
            width = arch[f"width{k}"]
        return nn.Sequential(*layers, nn.Linear(width, num_classes))


def spirals(n, seed):
    """Two interleaved spirals: a small problem where depth and width matter."""
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(n, generator=g) * 3 * math.pi
    label = torch.randint(0, 2, (n,), generator=g)
    r = t / (3 * math.pi)
    angle = t + math.pi * label
    x = torch.stack([r * torch.cos(angle), r * torch.sin(angle)], 1)
    return x + 0.02 * torch.randn(n, 2, generator=g), label


X_TRAIN, Y_TRAIN = spirals(1000, seed=0)
X_VAL, Y_VAL = spirals(500, seed=1)


def train_and_score(model, ctx):
    """The user's own training code: any function of (model, ctx) returning metrics works."""
    torch.manual_seed(ctx.seed)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(60 if SMALL else 300):
        opt.zero_grad()
        nn.functional.cross_entropy(model(X_TRAIN), Y_TRAIN).backward()
        opt.step()
    with torch.no_grad():
        acc = (model(X_VAL).argmax(1) == Y_VAL).float().mean().item() * 100
    return {"accuracy": acc, "params": float(sum(p.numel() for p in model.parameters()))}


space = MLPSpace()
print(f"{space.size()} architectures in the space")
strategy = nasforge.create_strategy("rea", space, seed=0, population_size=6, sample_size=3)
evaluator = nasforge.create_evaluator("model_function", fn=train_and_score)
experiment = nasforge.Experiment(space, strategy, evaluator,
                                 budget=nasforge.Budget(max_trials=8 if SMALL else 40))
experiment.run()  # no storage given: kept in memory

best = experiment.best()
print(f"best: {space.to_string(best.arch)} -> {best.metrics['accuracy']:.1f}% "
      f"({int(best.metrics['params'])} parameters)")
print(space.build(best.arch))
