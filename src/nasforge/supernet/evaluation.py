"""Evaluating one architecture with weights inherited from a supernet.

Weights trained under a changing mix of paths leave BatchNorm running statistics that fit no single
architecture, so before measuring an architecture its statistics are recomputed on a few training
batches (SPOS, Guo et al., ECCV 2020; once-for-all, Cai et al., ICLR 2020). The supernet's own
statistics are put back afterwards, so evaluating never changes the supernet.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import torch
from torch import nn

from nasforge.space.architecture import Architecture
from nasforge.supernet.base import Supernet
from nasforge.supernet.batches import Batch
from nasforge.train.evaluate import evaluate_model

_BN = nn.modules.batchnorm._BatchNorm


@contextlib.contextmanager
def preserved_batchnorm(model: nn.Module) -> Iterator[None]:
    """Restore every BatchNorm buffer and momentum of ``model`` on exit."""
    saved = [
        (m, m.momentum, {k: b.clone() for k, b in m.named_buffers(recurse=False) if b is not None})
        for m in model.modules()
        if isinstance(m, _BN)
    ]
    try:
        yield
    finally:
        with torch.no_grad():
            for m, momentum, buffers in saved:
                m.momentum = momentum
                for k, b in buffers.items():
                    getattr(m, k).copy_(b)


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches: Iterable[Batch]) -> int:
    """Recompute BatchNorm running statistics as exact averages over ``batches``; returns the count.

    Running stats are reset and ``momentum=None`` makes PyTorch keep a cumulative average, so the
    result does not depend on the old statistics. The model is left in eval mode.
    """
    bns = [m for m in model.modules() if isinstance(m, _BN) and m.track_running_stats]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    device = next(model.parameters()).device
    model.train()
    n = 0
    for x, _ in batches:
        model(x.to(device))
        n += 1
    model.eval()
    return n


def evaluate_arch(
    supernet: Supernet,
    arch: Architecture,
    eval_batches: Iterable[Batch],
    bn_batches: Iterable[Batch] | None = None,
) -> tuple[float, float]:
    """(accuracy in percent, mean loss) of ``arch``'s path with inherited weights.

    BatchNorm statistics are recalibrated on ``bn_batches`` first (skipped when None); the
    supernet's mode, path and BN statistics are restored afterwards.
    """
    mode, path, training = supernet.mode, supernet.path, supernet.training
    try:
        with preserved_batchnorm(supernet):
            supernet.set_arch(arch)
            if bn_batches is not None:
                recalibrate_batchnorm(supernet, bn_batches)
            return evaluate_model(supernet, eval_batches)
    finally:
        supernet.set_mode(mode)
        if path is not None:
            supernet.set_path(path)
        supernet.train(training)


@torch.no_grad()
def batch_accuracy(model: nn.Module, batch: Batch) -> float:
    """Accuracy (percent) of ``model`` on one batch with batch statistics (no state changes).

    ENAS' reward: the shared weights' accuracy on a validation minibatch. BatchNorm uses the
    batch's own statistics (train mode) and its running buffers are restored afterwards.
    """
    device = next(model.parameters()).device
    x, y = batch
    training = model.training
    with preserved_batchnorm(model):
        model.train()
        logits = model(x.to(device))
    model.train(training)
    return 100.0 * float((logits.argmax(1) == y.to(device)).float().mean())


__all__ = ["batch_accuracy", "evaluate_arch", "preserved_batchnorm", "recalibrate_batchnorm"]
