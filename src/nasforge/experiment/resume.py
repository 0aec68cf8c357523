"""Resume by replay: which experiment a storage holds, and bringing a strategy back to its state.

Every ask and tell has a sequence number stored with its trial; the strategy's state is
snapshotted every few tells. :func:`replay` shows the stored history to the schedule (from the
first event: a scheduler's state is a function of the trials) and, after the snapshot's sequence
number, to the strategy, whose asks must reproduce the recorded architectures.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from nasforge.errors import StorageError
from nasforge.experiment.metric_checks import REJECTED
from nasforge.experiment.scheduling import SPENT, TrialPlan
from nasforge.experiment.storage import Storage, StoredTrial, dumps
from nasforge.strategies.base import Strategy
from nasforge.trial import Trial

log = logging.getLogger("nasforge.experiment")


def jsonish(obj: Any) -> Any:
    """What ``obj`` looks like after a JSON round trip (tuples -> lists), for comparisons."""
    return json.loads(dumps(obj))


def claim_storage(storage: Storage, config: dict[str, Any]) -> None:
    """Refuse a storage that holds a different experiment; claim an empty one with ``config``."""
    stored = storage.get_meta("config")
    if stored is None:
        storage.set_meta("config", config)
        return
    mine = jsonish(config)
    if stored == mine:
        return
    if not isinstance(stored, dict) or not isinstance(mine, dict):
        raise StorageError(
            f"the storage holds a different experiment (stored config {stored!r:.200}, "
            f"now {mine!r:.200}). Use a new storage path, or the same settings to resume."
        )
    diffs = [k for k in sorted(set(stored) | set(mine)) if stored.get(k) != mine.get(k)]
    raise StorageError(
        "the storage holds a different experiment; differing keys: "
        + ", ".join(f"{k} (stored {stored.get(k)!r}, now {mine.get(k)!r})" for k in diffs[:5])
        + ". Use a new storage path, or the same settings to resume."
    )


def replay(strategy: Strategy, plan: TrialPlan, stored: list[StoredTrial], start_seq: int) -> int:
    """Replay the stored asks and tells: all of them to the schedule, those after ``start_seq``
    (the strategy snapshot's) to the strategy. Returns how many asks proposed another
    architecture than the recorded one (the record wins; a warning says so)."""
    events: list[tuple[int, bool, StoredTrial]] = []
    for s in stored:
        events.append((s.ask_seq, False, s))
        if s.tell_seq is not None:
            events.append((s.tell_seq, True, s))
    events.sort(key=lambda e: e[0])
    plan.reset()
    mismatches = 0
    for seq, is_tell, s in events:
        strategy_hears = seq > start_seq
        if is_tell:
            heard = plan.told(s.trial, seq)
            if strategy_hears:
                for t in heard:
                    strategy.tell(t)
            continue
        plan.asked(s.trial.number, seq)
        if not s.trial.info.get(REJECTED):
            plan.replay_started(s.trial)
        if not strategy_hears or not plan.asked_strategy(s.trial):
            continue
        arch = strategy.ask()
        if arch != s.trial.arch:
            # A strategy that is not seeded, or whose state_dict misses a field: keep the
            # recorded history authoritative, and say that its future may differ.
            mismatches += 1
            strategy.amend_last_ask(s.trial.arch)
    if mismatches:
        log.warning(
            "resume: strategy %r proposed %d architecture(s) that differ from the recorded ones "
            "(is it seeded, and does its state_dict hold its whole state?); the recorded history "
            "was used, but its future proposals may differ from an uninterrupted run",
            strategy.name, mismatches)
    return mismatches


def last_seq(stored: list[StoredTrial]) -> int:
    """The sequence number of the last stored ask or tell (0 for an empty storage)."""
    return max([0] + [s.ask_seq for s in stored] + [s.tell_seq for s in stored if s.tell_seq])


def restore_strategy(storage: Storage, strategy: Strategy, plan: TrialPlan,
                     stored: list[StoredTrial]) -> int:
    """Load the newest strategy snapshot and :func:`replay` the events after it; returns the
    replay's mismatches. A storage without a snapshot gets one, so that a later run in this
    process restarts from the stored state instead of from the strategy's memory."""
    snap = storage.latest_snapshot()
    start_seq = 0
    if snap is not None:
        start_seq, state = snap
        strategy.load_state_dict(state)
    mismatches = replay(strategy, plan, stored, start_seq)
    if snap is None:
        storage.save_snapshot(last_seq(stored), strategy.state_dict())
    return mismatches


@dataclass
class Usage:
    """What an experiment has spent against its budget, over all its runs."""

    trials: int = 0  # evaluated (or running) trials; rejected proposals are not counted
    cost: float = 0.0
    fidelity: float = 0.0  # fidelity units (epochs) spent
    elapsed_before: float = 0.0  # wall seconds spent by earlier runs of this experiment

    @classmethod
    def of(cls, stored: list[StoredTrial], elapsed_before: float) -> Usage:
        """The usage the stored trials add up to (running trials count as trials, not cost)."""
        told = [s.trial for s in stored if s.tell_seq is not None]
        return cls(trials=sum(1 for s in stored if not s.trial.info.get(REJECTED)),
                   cost=sum(t.cost for t in told),
                   fidelity=sum(float(t.info.get(SPENT, 0.0)) for t in told),
                   elapsed_before=elapsed_before)

    def add(self, trial: Trial) -> None:
        """Charge a told trial's cost and fidelity."""
        self.cost += trial.cost
        self.fidelity += float(trial.info.get(SPENT, 0.0))


def unfinished(stored: list[StoredTrial]) -> list[tuple[Trial, Trial | None]]:
    """The asked trials that were never told, in ask order, as ``(fresh, done)``.

    ``fresh`` is the trial to run again (a new start time, its schedule info kept); ``done`` is
    its stored result when it finished but was not told yet (ordered mode buffers results), in
    which case it is told without running again.
    """
    now = time.time()
    out: list[tuple[Trial, Trial | None]] = []
    for s in sorted(stored, key=lambda s: s.ask_seq):
        if s.tell_seq is not None:
            continue
        t = s.trial
        fresh = Trial(number=t.number, arch=t.arch, seed=t.seed, fidelity=t.fidelity,
                      started_at=now, info=t.info if not t.status.finished else {})
        out.append((fresh, t if t.status.finished else None))
    return out


class SnapshotPacer:
    """When to snapshot the strategy: every ``every`` tells, backing off when a snapshot costs
    more than ~5% of the run (a strategy whose state grows with every trial) and coming back
    when it gets cheap again."""

    def __init__(self, every: int) -> None:
        self.every = max(1, int(every))
        self.reset()

    def reset(self) -> None:
        """Start counting afresh (at the start of a run)."""
        self.interval = self.every
        self.since = 0
        self.last = time.perf_counter()

    def told(self) -> bool:
        """Count a tell; True when a snapshot is due."""
        self.since += 1
        return self.since >= self.interval

    def took(self, t0: float, t1: float) -> None:
        """A snapshot ran from ``t0`` to ``t1`` (``time.perf_counter``): adapt the interval."""
        spent, window = t1 - t0, max(t0 - self.last, 1e-9)
        if spent > 0.05 * window:
            self.interval *= 2
        elif spent < 0.01 * window and self.interval > self.every:
            self.interval //= 2
        self.last = t1
        self.since = 0
