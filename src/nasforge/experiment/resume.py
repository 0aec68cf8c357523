"""Resume by replay: which experiment a storage holds, and bringing a strategy back to its state.

Every ask and tell has a sequence number stored with its trial; the strategy's state is
snapshotted every few tells. :func:`replay` shows the stored history to the schedule (from the
first event: a scheduler's state is a function of the trials) and, after the snapshot's sequence
number, to the strategy, whose asks must reproduce the recorded architectures.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from nasforge.errors import StorageError
from nasforge.experiment.metric_checks import REJECTED
from nasforge.experiment.scheduling import TrialPlan
from nasforge.experiment.storage import Storage, StoredTrial, dumps
from nasforge.strategies.base import Strategy

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
            heard = plan.told(s.trial)
            if strategy_hears:
                for t in heard:
                    strategy.tell(t)
            continue
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
