"""Ranking many architectures with the weights of a trained supernet (not only the chosen one).

Each candidate is scored like SPOS and once-for-all score sub-networks: its path through the
supernet, BatchNorm statistics recomputed for that path on a few training batches, accuracy on the
validation split (:class:`~nasforge.evaluators.weight_sharing.WeightSharingEvaluator`). The
recalibration is applied after every method, DARTS and GDAS included: their supernets' running
statistics were gathered under a mixture (or a changing sample) of ops, which fits no single path.
With ``proxies`` the ranking is zero-cost-assisted: inherited accuracy and the proxies of the
untrained networks vote (:mod:`nasforge.oneshot.assisted`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from nasforge.data.splits import DataSplits
from nasforge.errors import ConfigError
from nasforge.evaluators.weight_sharing import WeightSharingEvaluator
from nasforge.oneshot.assisted import assisted_votes, check_assist_options, proxy_scores
from nasforge.oneshot.fewshot import FewShotSupernets
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


def _inherited(
    supernet: Supernet, splits: DataSplits, archs: Iterable[Architecture], bn_batches: int,
    eval_samples: int | None, batch_size: int, device: str,
) -> list[dict[str, Any]]:
    evaluator = WeightSharingEvaluator(
        supernet=supernet, splits=splits, batch_size=batch_size, bn_batches=bn_batches,
        eval_samples=eval_samples, device=device,
    )
    evaluator.bind(supernet.space)
    return [
        {"arch_string": r["arch_string"], "arch": r["arch"], "inherited_accuracy": r["accuracy"],
         "inherited_loss": r["loss"], "params": r.get("params")}
        for r in evaluator.rank(archs)
    ]


def rank_architectures(
    supernet: Supernet | FewShotSupernets,
    splits: DataSplits,
    archs: Iterable[Architecture],
    *,
    bn_batches: int = 4,
    eval_samples: int | None = None,
    batch_size: int = 256,
    device: str = "auto",
    proxies: Sequence[str] = (),
    vote: str = "sum",
    supernet_weight: float = 1.0,
    proxy_batch: int = 64,
    proxy_seed: int = 0,
) -> list[dict[str, Any]]:
    """Every architecture of ``archs`` scored with inherited weights, best first.

    Records hold ``rank`` (1 = best), ``arch_string``, ``arch`` (JSON form),
    ``inherited_accuracy`` (percent, validation split), ``inherited_loss`` and ``params`` (of the
    stand-alone network). Ties keep the input order. The supernet is left as it was.
    ``supernet`` may be the sub-supernets of a few-shot split
    (:func:`nasforge.oneshot.fewshot.split_supernet`): each architecture then inherits the
    weights of the sub-supernet it belongs to.

    With ``proxies`` (zero-cost proxy names, e.g. ``["naswot"]``) the order is that of the vote
    of inherited accuracy (weight ``supernet_weight``) and the proxies (weight 1 each), by
    ``vote`` (``"sum"`` of ranks or ``"majority"``); records then also hold ``proxies``
    (``{name: score}`` of the untrained network, initialized under ``proxy_seed``, on
    ``proxy_batch`` training images) and ``vote``. Ties keep the order of inherited accuracy.
    """
    names = check_assist_options(proxies, vote, supernet_weight)
    wanted = list(dict.fromkeys(archs))
    if isinstance(supernet, FewShotSupernets):
        records = [
            r
            for value, group in supernet.groups(wanted).items()
            for r in _inherited(supernet.supernets[value], splits, group, bn_batches, eval_samples,
                                batch_size, device)
        ]
        position = {supernet.space.to_string(a): i for i, a in enumerate(wanted)}
        records.sort(key=lambda r: (-r["inherited_accuracy"], position[r["arch_string"]]))
    else:
        records = _inherited(supernet, splits, wanted, bn_batches, eval_samples, batch_size, device)
    if names:
        ranked = [Architecture.from_dict(r["arch"]) for r in records]
        scores = proxy_scores(supernet.space, ranked, names, splits, supernet.build_kwargs,
                              batch_size=proxy_batch, seed=proxy_seed, device=device)
        votes = assisted_votes([r["inherited_accuracy"] for r in records], scores, method=vote,
                               supernet_weight=supernet_weight)
        for i, r in enumerate(records):
            r["proxies"] = {name: float(values[i]) for name, values in scores.items()}
            r["vote"] = float(votes[i])
        order = sorted(range(len(records)), key=lambda i: -votes[i])  # stable: accuracy breaks ties
        records = [records[i] for i in order]
    return [{"rank": rank, **r} for rank, r in enumerate(records, start=1)]


__all__ = ["candidate_architectures", "rank_architectures"]
