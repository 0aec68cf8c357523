"""Ranking many architectures with the weights of a trained supernet (not only the chosen one).

Each candidate is scored like SPOS and once-for-all score sub-networks: its path through the
supernet, BatchNorm statistics recomputed for that path on a few training batches, accuracy on the
validation split (:class:`~nasforge.evaluators.weight_sharing.WeightSharingEvaluator`). The
recalibration is applied after every method, DARTS and GDAS included: their supernets' running
statistics were gathered under a mixture (or a changing sample) of ops, which fits no single path.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from nasforge.data.splits import DataSplits
from nasforge.errors import ConfigError
from nasforge.evaluators.weight_sharing import WeightSharingEvaluator
from nasforge.space.architecture import Architecture
from nasforge.space.base import SearchSpace
from nasforge.supernet.base import Supernet


def candidate_architectures(
    space: SearchSpace, count: int, seed: int, first: Iterable[Architecture] = ()
) -> list[Architecture]:
    """``count`` distinct architectures: those of ``first`` (e.g. a method's choice), then uniform
    samples drawn with ``seed``; every architecture of the space when it holds at most ``count``."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ConfigError(f"the number of architectures to rank must be a positive integer, got {count!r}")
    if space.size() <= count:
        return list(space.enumerate())
    out = dict.fromkeys(space.validate(a) for a in first)
    rng = np.random.default_rng(seed)
    # Far more draws than needed can only happen when nearly the whole space is asked for; the
    # space is then enumerated above, so this bound is a guard, not a limit users meet.
    for _ in range(100 * count):
        if len(out) >= count:
            break
        out[space.sample(rng)] = None
    return list(out)[:count]


def rank_architectures(
    supernet: Supernet,
    splits: DataSplits,
    archs: Iterable[Architecture],
    *,
    bn_batches: int = 4,
    eval_samples: int | None = None,
    batch_size: int = 256,
    device: str = "auto",
) -> list[dict[str, Any]]:
    """Every architecture of ``archs`` scored with inherited weights, best first.

    Records hold ``rank`` (1 = best), ``arch_string``, ``arch`` (JSON form),
    ``inherited_accuracy`` (percent, validation split), ``inherited_loss`` and ``params`` (of the
    stand-alone network). Ties keep the input order. The supernet is left as it was.
    """
    evaluator = WeightSharingEvaluator(
        supernet=supernet, splits=splits, batch_size=batch_size, bn_batches=bn_batches,
        eval_samples=eval_samples, device=device,
    )
    evaluator.bind(supernet.space)
    return [
        {"rank": r["rank"], "arch_string": r["arch_string"], "arch": r["arch"],
         "inherited_accuracy": r["accuracy"], "inherited_loss": r["loss"], "params": r.get("params")}
        for r in evaluator.rank(archs)
    ]


__all__ = ["candidate_architectures", "rank_architectures"]
