"""Model size and compute: parameter count, FLOPs and MACs.

FLOPs come from ``torch.utils.flop_counter.FlopCounterMode``, which counts a multiply-add as two
floating-point operations for matmul and convolution (so ``flops == 2 * macs`` for those ops).
Papers in NAS usually quote MACs under the name "FLOPs" (e.g. "600M FLOPs" mobile settings);
nasforge reports both under their precise names: ``flops`` (= 2 x MACs) and ``macs``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nasforge.train.evaluate import model_device


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (each shared parameter counted once)."""
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) in seen or (trainable_only and not p.requires_grad):
            continue
        seen.add(id(p))
        total += p.numel()
    return total


def count_flops(model: nn.Module, input_shape: Sequence[int], batch_size: int = 1,
                device: str | torch.device | None = None) -> int:
    """FLOPs of one forward pass on ``batch_size`` inputs of shape ``input_shape`` (C, H, W).

    Counted by ``FlopCounterMode`` (2 per multiply-add in matmul/conv; elementwise ops such as
    ReLU, BatchNorm and pooling are not counted, as in most NAS papers). The model runs in eval
    mode on a zero input, so BatchNorm statistics are untouched.
    """
    x = torch.zeros((batch_size, *input_shape), device=model_device(model, device))
    was_training = model.training
    model.eval()
    try:
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(x)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def count_macs(model: nn.Module, input_shape: Sequence[int], batch_size: int = 1,
               device: str | torch.device | None = None) -> int:
    """Multiply-accumulate operations of one forward pass: ``count_flops(...) // 2``."""
    return count_flops(model, input_shape, batch_size, device) // 2
