"""One step of each one-shot method on a GPU (marked ``cuda``: skipped without one)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from oneshot_helpers import tiny_splits, tiny_supernet

from nasforge.oneshot.methods import create_search

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

EXTRA: dict[str, dict[str, Any]] = {
    "darts": {},
    "gdas": {},
    "spos": {"search_trials": 2, "bn_batches": 1, "eval_batch_size": 32},
    "enas": {"controller_steps": 2, "derive_samples": 2},
    "ofa": {"search_trials": 2, "bn_batches": 1, "eval_batch_size": 32},
}


@pytest.mark.parametrize("method", list(EXTRA))
def test_one_shot_method_runs_on_cuda(method: str) -> None:
    space, net = tiny_supernet("elastic" if method == "ofa" else "nb201")
    size = 16 if method == "ofa" else 12
    result = create_search(method, net, tiny_splits(32, 32, size=size), epochs=1, batch_size=16,
                           device="cuda", **EXTRA[method]).run()
    assert space.is_valid(result.arch)
    assert next(net.parameters()).device.type == "cuda"
