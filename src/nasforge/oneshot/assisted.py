"""Zero-cost-assisted ranking: a supernet's inherited accuracy combined with zero-cost proxies.

A trained supernet and a zero-cost proxy err in different ways. Inherited accuracy reflects
training on the task but is distorted by weight sharing (paths that co-adapted, operations trained
unequally); a proxy of the untrained network (naswot, synflow, jacob_cov: Mellor et al., ICML
2021; Tanaka et al., NeurIPS 2020; Abdelfattah et al., ICLR 2021) knows nothing of the task's
training but is free of weight sharing. Abdelfattah et al. combine proxies by a vote and report a
better rank correlation than any one of them; here the supernet's accuracy is one more voter.

The combination is a rank vote over the candidate set (:func:`nasforge.proxies.vote`): with
``method="sum"`` each criterion ranks the candidates and a candidate's vote is the weighted sum of
its ranks (Borda count); ``"majority"`` counts weighted pairwise wins. ``supernet_weight`` is the
weight of the supernet's ranking, each proxy's is 1: with one proxy and weight 1 the vote is the
average of the two rankings. The proxies score networks built from scratch with the supernet's
build options, initialized under ``seed``, on one fixed batch of training images.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from nasforge.data.splits import DataSplits
from nasforge.errors import ConfigError
from nasforge.evaluators.proxies import ProxyEvaluator
from nasforge.proxies import VOTE_METHODS, get_proxy, vote
from nasforge.space.architecture import Architecture
from nasforge.space.base import SearchSpace
from nasforge.utils.device import resolve_device

#: The name the supernet's inherited accuracy votes under (never a proxy's name).
SUPERNET = "supernet"


def check_assist_options(proxies: Sequence[str], method: str, supernet_weight: float) -> tuple[str, ...]:
    """The proxy names (repeats dropped), after checking them and the vote options."""
    if isinstance(proxies, str):
        proxies = [proxies]
    names = tuple(dict.fromkeys(proxies))
    for name in names:
        get_proxy(name)  # an unknown name raises the error that lists the allowed ones
    if method not in VOTE_METHODS:
        raise ConfigError(f"vote method must be one of {', '.join(VOTE_METHODS)}, got {method!r}")
    if (
        isinstance(supernet_weight, bool)
        or not isinstance(supernet_weight, (int, float))
        or not np.isfinite(supernet_weight)
        or supernet_weight < 0
    ):
        raise ConfigError(f"supernet_weight must be a finite number >= 0, got {supernet_weight!r}")
    return names


def proxy_scores(
    space: SearchSpace,
    archs: Sequence[Architecture],
    proxies: Sequence[str],
    splits: DataSplits,
    build_kwargs: Mapping[str, Any],
    *,
    batch_size: int = 64,
    seed: int = 0,
    device: str = "auto",
) -> dict[str, list[float]]:
    """``{proxy: [score of each architecture]}`` of the untrained networks.

    Every network is ``space.build(arch, **build_kwargs)`` initialized under ``seed``; data-based
    proxies score ``batch_size`` images of ``splits.train`` (a seeded subset, the same batch for
    every architecture; the whole split when it is smaller).
    """
    names = check_assist_options(proxies, "sum", 1.0)
    if not names:
        return {}
    # The split's own images set the input channels and classes; the other build options
    # (C, N, ...) are the supernet's, so each proxy scores the network the supernet stands for.
    build = {k: v for k, v in build_kwargs.items() if k not in ("in_channels", "num_classes", "affine")}
    evaluator = ProxyEvaluator(
        proxy=list(names),
        dataset=splits.train,
        batch_size=min(batch_size, len(splits.train)),  # a small split lends all it has
        data_seed=seed,
        build_kwargs=build,
        device=device,
    ).bind(space)
    where = resolve_device(device)
    rows = [evaluator.scores(arch, seed, where) for arch in archs]
    return {name: [row[name] for row in rows] for name in names}


def assisted_votes(
    inherited: Sequence[float],
    scores: Mapping[str, Sequence[float]],
    *,
    method: str = "sum",
    supernet_weight: float = 1.0,
) -> np.ndarray:
    """The combined vote of each candidate (higher is better) from its inherited accuracy and
    its proxy scores (``{proxy: [score of each candidate]}``, as :func:`proxy_scores` returns)."""
    check_assist_options(list(scores), method, supernet_weight)
    if SUPERNET in scores:
        raise ConfigError(f"{SUPERNET!r} names the supernet's accuracy in the vote, not a proxy")
    table = {SUPERNET: list(inherited), **{k: list(v) for k, v in scores.items()}}
    return vote(table, method, weights={SUPERNET: float(supernet_weight)})


__all__ = ["SUPERNET", "assisted_votes", "check_assist_options", "proxy_scores"]
