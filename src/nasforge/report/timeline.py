"""Which worker ran which trial when: the per-worker timeline of ``show`` and ``report``.

Parallel executors record the placement of each trial in its info (``node``: a host, or Ray's
"IP/node id"; ``worker``: the worker's process id). A lane is one worker: the trials it ran in
start order, and how busy it was between the first start and the last finish of the experiment,
which shows whether a scheduler (e.g. ASHA) kept every worker busy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from nasforge.trial import Trial


@dataclass
class Lane:
    """One worker's trials: ``(number, start, end, status)`` with times relative to the run."""

    node: str
    worker: int
    trials: list[tuple[int, float, float, str]] = field(default_factory=list)
    busy: float = 0.0  # fraction of the experiment's span that this worker ran trials

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``show --json``)."""
        return {"node": self.node, "worker": self.worker, "busy": round(self.busy, 4),
                "trials": [{"number": n, "start": round(a, 3), "end": round(b, 3), "status": s}
                           for n, a, b, s in self.trials]}


def lanes(trials: Sequence[Trial]) -> list[Lane]:
    """The per-worker lanes of the finished trials that record where they ran (node, worker)."""
    placed = [t for t in trials if t.finished_at is not None and t.info.get("worker") is not None
              and t.status.finished]
    if not placed:
        return []
    t0 = min(t.started_at for t in placed)
    span = max(max(float(t.finished_at or 0.0) for t in placed) - t0, 1e-9)
    by_worker: dict[tuple[str, int], Lane] = {}
    for t in sorted(placed, key=lambda t: (t.started_at, t.number)):
        node, worker = str(t.info.get("node", "?")), int(t.info["worker"])
        lane = by_worker.setdefault((node, worker), Lane(node, worker))
        end = float(t.finished_at or t.started_at)
        lane.trials.append((t.number, t.started_at - t0, end - t0, t.status.value))
    for lane in by_worker.values():
        lane.busy = min(1.0, sum(b - a for _, a, b, _ in lane.trials) / span)
    return sorted(by_worker.values(), key=lambda lane: (lane.node, lane.trials[0][1]))


def trial_list(lane: Lane, limit: int = 12) -> str:
    """``#3 0.0-1.2s, #5 1.2-2.0s, ...`` (the first ``limit`` trials, then how many more)."""
    parts = [f"#{n} {a:.1f}-{b:.1f}s" + ("" if s == "ok" else f" {s}")
             for n, a, b, s in lane.trials[:limit]]
    more = len(lane.trials) - limit
    return ", ".join(parts) + (f", ... {more} more" if more > 0 else "")
