"""Few-shot NAS: sub-supernets split on one decision (Zhao et al., "Few-shot Neural Architecture
Search", ICML 2021).

One supernet shares every weight among all architectures, and the paths co-adapt: a weight is
trained for whatever op sits before it, which is what makes inherited accuracy rank architectures
poorly. Few-shot NAS splits the trained supernet on one decision (one edge's operation in a cell
space) into as many sub-supernets as that decision has options. Sub-supernet ``k`` holds the
architectures that choose option ``k`` there; it starts from the trained supernet's weights (all
of them, the unused candidates of the split edge included, as in the paper) and is trained further
on its own architectures only, so no two of its paths disagree on that edge. An architecture is
then scored with the sub-supernet it belongs to.

Training of each sub-supernet is SPOS (uniform, or FairNAS' fair sampling) restricted to its part
of the space, ``epochs`` epochs with a fresh cosine schedule. Differences from the paper: it
splits the supernet of any SPOS-style (single-path) training, not of DARTS' continuous
relaxation, and on one decision chosen by the caller (the first by default), where the paper
splits NAS-Bench-201 on one edge as well and studies more splits for DARTS.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nasforge.data.splits import DataSplits
from nasforge.errors import ConfigError, unknown
from nasforge.oneshot.spos import Spos
from nasforge.space.architecture import Architecture
from nasforge.space.decision import Value
from nasforge.supernet.base import Supernet
from nasforge.utils.rng import derive_seed


class SubSupernetTraining(Spos):
    """SPOS restricted to the architectures that take ``fixed`` (one sub-supernet of few-shot NAS).

    Its result is the trained sub-supernet itself, so ``finish`` runs no sub-network search.
    """

    method = "spos"  # checkpoints and configs are SPOS'; only the sampled paths differ

    def __init__(self, supernet: Supernet, splits: DataSplits, fixed: Mapping[str, Value], **options: Any) -> None:
        super().__init__(supernet, splits, **options)
        self.fixed = dict(fixed)

    def finish(self) -> tuple[Architecture, dict[str, Any]]:
        return self.space.complete(self.fixed, False), {"fixed": dict(self.fixed)}


@dataclass
class FewShotSupernets:
    """The sub-supernets of a split: ``supernets[option]`` holds the architectures whose
    ``decision`` takes ``option``."""

    decision: str
    supernets: dict[Value, Supernet]
    history: dict[str, list[dict[str, float]]] = field(default_factory=dict)

    @property
    def space(self) -> Any:
        return next(iter(self.supernets.values())).space

    @property
    def build_kwargs(self) -> dict[str, Any]:
        return dict(next(iter(self.supernets.values())).build_kwargs)

    def supernet_for(self, arch: Architecture) -> Supernet:
        """The sub-supernet that ``arch`` belongs to."""
        value = arch.get(self.decision)
        if value not in self.supernets:
            raise ConfigError(
                f"architecture {arch!r} has no option of the split decision {self.decision!r} "
                f"among {list(self.supernets)}"
            )
        return self.supernets[value]

    def groups(self, archs: Iterable[Architecture]) -> dict[Value, list[Architecture]]:
        """``archs`` by the sub-supernet they belong to (input order kept within each)."""
        out: dict[Value, list[Architecture]] = {}
        for arch in archs:
            self.supernet_for(arch)  # an architecture outside every sub-space fails here
            out.setdefault(arch[self.decision], []).append(arch)
        return out


def split_supernet(
    supernet: Supernet,
    splits: DataSplits,
    *,
    decision: str | None = None,
    epochs: int = 2,
    seed: int = 0,
    device: str = "auto",
    on_sub: Callable[[Value, Supernet], None] | None = None,
    **spos_options: Any,
) -> FewShotSupernets:
    """Split a trained ``supernet`` on ``decision`` (default: the space's first) and train each
    sub-supernet ``epochs`` more epochs with SPOS on its own architectures.

    ``spos_options`` are :class:`~nasforge.oneshot.spos.SposConfig` fields (``batch_size``,
    ``w_lr``, ``sampling``, ...). Sub-supernet ``k`` trains with seed ``derive_seed(seed, k)``.
    ``supernet`` itself is left as it was. ``on_sub(option, sub)`` is called after each one.
    """
    space = supernet.space
    if space.is_conditional:
        raise ConfigError(
            f"few-shot splitting needs independent decisions, but space {space.name!r} has conditional ones"
        )
    names = [d.name for d in space.decisions]
    name = names[0] if decision is None else decision
    if name not in names:
        raise unknown("decision to split on", name, names)
    if "search_trials" in spos_options:
        raise ConfigError("few-shot sub-supernets run no sub-network search: leave search_trials out")
    subs: dict[Value, Supernet] = {}
    history: dict[str, list[dict[str, float]]] = {}
    for value in space.decision(name).options:
        sub = copy.deepcopy(supernet)  # every weight inherited, as in the paper
        training = SubSupernetTraining(
            sub,
            splits,
            {name: value},
            epochs=epochs,
            seed=derive_seed(seed, f"fewshot/{value}"),
            device=device,
            **spos_options,
        )
        history[str(value)] = training.run().history
        subs[value] = sub
        if on_sub is not None:
            on_sub(value, sub)
    return FewShotSupernets(decision=name, supernets=subs, history=history)


__all__ = ["FewShotSupernets", "SubSupernetTraining", "split_supernet"]
