"""Learning curves and rungs of a stored multi-fidelity experiment (for ``nasforge show`` and
``nasforge report``).

Every trial keeps the values its evaluator reported per step (``ctx.report``) in
``info["reports"]`` as ``[[step, value], ...]``; a pruned trial also keeps the step it stopped at
(``info["pruned_at"]``). Under a scheduler each trial records its rung (``info["rung"]``), its
configuration (the number of that configuration's first trial, ``info["config"]``) and the trial
it was promoted from (``info["parent"]``); the scheduler's settings, rung fidelities included, are
stored in the experiment's ``config`` meta. The functions here read that back from plain
:class:`~nasforge.trial.Trial` objects and never fail on a malformed or older record: a value they
cannot read is left out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from nasforge.trial import Objective, Trial, TrialStatus

#: ``Trial.info`` keys written by the experiment's scheduler and pruner.
REPORTS, PRUNED_AT, RUNG, BRACKET, CONFIG, PARENT = (
    "reports", "pruned_at", "rung", "bracket", "config", "parent")


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    v = float(value)
    return v if math.isfinite(v) else None


def learning_curve(trial: Trial) -> list[tuple[int, float]]:
    """``[(step, value), ...]`` the trial reported, in report order (non-finite values and
    malformed entries are left out)."""
    out: list[tuple[int, float]] = []
    raw = trial.info.get(REPORTS)
    if not isinstance(raw, (list, tuple)):
        return out
    for item in raw:
        if not isinstance(item, (list, tuple)) or len(item) != 2:
            continue
        step, value = _int(item[0]), _number(item[1])
        if step is not None and value is not None:
            out.append((step, value))
    return out


def pruned_at(trial: Trial) -> int | None:
    """The step a pruned trial stopped at (its last reported step when not recorded)."""
    if trial.status is not TrialStatus.PRUNED:
        return None
    step = _int(trial.info.get(PRUNED_AT))
    if step is not None:
        return step
    curve = learning_curve(trial)
    return curve[-1][0] if curve else None


def rung_of(trial: Trial) -> int | None:
    """The rung index a scheduled trial ran at (None: not scheduled)."""
    return _int(trial.info.get(RUNG))


def parent_of(trial: Trial) -> int | None:
    """The trial this one was promoted from (None: a new configuration)."""
    return _int(trial.info.get(PARENT))


def config_of(trial: Trial) -> int:
    """The configuration a trial belongs to: the number of its first trial."""
    config = _int(trial.info.get(CONFIG))
    return trial.number if config is None else config


def settings(config: Mapping[str, Any] | None, key: str) -> dict[str, Any] | None:
    """The stored ``scheduler`` or ``pruner`` settings of an experiment (None: it had none)."""
    if not isinstance(config, Mapping):
        return None
    value = config.get(key)
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, str) and value:
        return {"name": value}
    return None


def describe_settings(values: Mapping[str, Any] | None) -> str:
    """One line for scheduler or pruner settings: ``asha (eta=3, rungs=1, 3, 9)``."""
    if not values:
        return "none"
    name = str(values.get("name", "?"))
    parts = []
    for k, v in values.items():
        if k == "name" or v is None:
            continue
        if isinstance(v, (list, tuple)):
            v = ", ".join(f"{x:g}" if isinstance(x, (int, float)) else str(x) for x in v)
        elif isinstance(v, float):
            v = f"{v:g}"
        parts.append(f"{k}={v}")
    return f"{name} ({'; '.join(parts)})" if parts else name


def rung_fidelities(scheduler: Mapping[str, Any] | None) -> list[float]:
    """The rung fidelities stored with the scheduler's settings (empty when unknown)."""
    if not scheduler:
        return []
    raw = scheduler.get("rungs")
    if not isinstance(raw, (list, tuple)):
        return []
    out = [_number(r) for r in raw]
    return [r for r in out if r is not None] if all(r is not None for r in out) else []


def is_scheduled(trials: Iterable[Trial], config: Mapping[str, Any] | None = None) -> bool:
    """Whether the experiment ran under a scheduler (stored settings or trials with a rung)."""
    return settings(config, "scheduler") is not None or any(rung_of(t) is not None for t in trials)


@dataclass(frozen=True)
class RungSummary:
    """What happened at one rung of a multi-fidelity schedule."""

    rung: int
    fidelity: float | None
    started: int
    finished: int
    ok: int
    pruned: int
    failed: int
    #: Trials of this rung that were promoted to the next one.
    promoted: int
    best_trial: int | None
    best_value: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)


def rung_summary(trials: Sequence[Trial], objective: Objective,
                 rungs: Sequence[float] = ()) -> list[RungSummary]:
    """One row per rung: every rung of ``rungs`` (the scheduler's fidelities) and any other rung a
    trial ran at. "best" is the OK trial with the best ``objective`` there (lowest number wins
    ties); running trials count as started only."""
    by_rung: dict[int, list[Trial]] = {k: [] for k in range(len(rungs))}
    for t in trials:
        k = rung_of(t)
        if k is not None:
            by_rung.setdefault(k, []).append(t)
    parents = {p for t in trials for p in [parent_of(t)] if p is not None}
    out = []
    for k in sorted(by_rung):
        ts = by_rung[k]
        fid: float | None = rungs[k] if k < len(rungs) else None
        if fid is None:
            fids = {float(t.fidelity) for t in ts if t.fidelity is not None}
            fid = fids.pop() if len(fids) == 1 else None
        scored = [(s, t) for t in ts for s in [objective.score(t)] if s is not None]
        best = min(scored, key=lambda st: (-st[0], st[1].number))[1] if scored else None
        out.append(RungSummary(
            rung=k, fidelity=fid, started=len(ts),
            finished=sum(t.status.finished for t in ts),
            ok=sum(t.status is TrialStatus.OK for t in ts),
            pruned=sum(t.status is TrialStatus.PRUNED for t in ts),
            failed=sum(t.status is TrialStatus.FAILED for t in ts),
            promoted=sum(t.number in parents for t in ts),
            best_trial=None if best is None else best.number,
            best_value=None if best is None else best.value(objective.metric),
        ))
    return out


def lineage(trial: Trial, by_number: Mapping[int, Trial]) -> list[Trial]:
    """The promotion chain that ends at ``trial``: its configuration's first trial first.

    A parent missing from ``by_number`` ends the chain there (and a cycle, which a sound database
    never holds, cannot loop).
    """
    chain = [trial]
    seen = {trial.number}
    parent = parent_of(trial)
    while parent is not None and parent in by_number and parent not in seen:
        t = by_number[parent]
        chain.append(t)
        seen.add(parent)
        parent = parent_of(t)
    chain.reverse()
    return chain


def promotions(trial: Trial, trials: Iterable[Trial]) -> list[Trial]:
    """The trials promoted from ``trial`` (its children), by number."""
    return sorted((t for t in trials if parent_of(t) == trial.number), key=lambda t: t.number)


def curve_record(trial: Trial) -> dict[str, Any]:
    """The multi-fidelity facts of one trial, JSON-able: fidelity, rung, bracket, configuration,
    parent, pruned step and learning curve (``[[step, value], ...]``)."""
    return {
        "fidelity": trial.fidelity,
        "rung": rung_of(trial),
        "bracket": _int(trial.info.get(BRACKET)),
        "config": _int(trial.info.get(CONFIG)),
        "parent": parent_of(trial),
        "pruned_at": pruned_at(trial),
        "curve": [[s, v] for s, v in learning_curve(trial)],
    }


__all__ = [
    "RungSummary",
    "config_of",
    "curve_record",
    "describe_settings",
    "is_scheduled",
    "learning_curve",
    "lineage",
    "parent_of",
    "promotions",
    "pruned_at",
    "rung_fidelities",
    "rung_of",
    "rung_summary",
    "settings",
]
