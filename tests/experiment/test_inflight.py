"""A lost worker's trial is run again up to ``retries`` times; what is stored says where each
attempt died. Simulated in one process: an inline executor that loses chosen attempts."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import nasforge
from nasforge.evaluators.function import FunctionEvaluator
from nasforge.experiment import Budget, Experiment, InlineExecutor, SQLiteStorage
from nasforge.experiment.executors import JobOutcome, TrialJob
from nasforge.trial import Result, Trial, TrialStatus


class LosingExecutor(InlineExecutor):
    """Runs jobs inline, but reports ``lose[(trial, attempt)]`` as a worker lost on that node."""

    def __init__(self, lose: dict[tuple[int, int], str]) -> None:
        super().__init__()
        self.lose = lose
        self.jobs: list[tuple[int, int]] = []

    def submit(self, job: TrialJob) -> None:
        self.jobs.append((job.number, job.attempt))
        super().submit(job)

    def wait(self, timeout: float | None = None) -> list[JobOutcome]:
        attempt = self._queue[0].attempt if self._queue else 0
        out = super().wait(timeout)
        placed = []
        for o in out:
            node = self.lose.get((o.number, attempt))
            if node is None:
                placed.append(dataclasses.replace(o, where={"node": "n0", "worker": 1}))
            else:
                placed.append(dataclasses.replace(
                    o, result=Result.failed(f"worker on {node} died (SIGKILL)\nmore"),
                    worker_died=True, where={"node": node, "worker": 7}))
        return placed


def _run(tmp_path: Path, executor: LosingExecutor, retries: int,
         retried: int) -> dict[int, Trial]:
    space = nasforge.create_space("nb201")
    exp = Experiment(space, nasforge.create_strategy("random", space, seed=0),
                     FunctionEvaluator(lambda arch, ctx: {"accuracy": 1.0}),
                     budget=Budget(max_trials=3), executor=executor, retries=retries,
                     storage=str(tmp_path / "e.db"), device="cpu")
    events: list[str] = []
    exp.add_callback(lambda e: events.append(f"{e.kind.value}:{e.trial.number if e.trial else ''}"))
    exp.run()
    stored = {t.number: t for t in SQLiteStorage(tmp_path / "e.db", readonly=True).trials()}
    assert events.count("trial_retried:1") == retried
    return stored


def test_a_lost_attempt_is_retried_and_recorded(tmp_path: Path) -> None:
    ex = LosingExecutor({(1, 0): "n1"})
    stored = _run(tmp_path, ex, retries=1, retried=1)
    t1 = stored[1]
    assert t1.status is TrialStatus.OK
    assert t1.info["attempts"] == 2
    assert t1.info["lost_attempts"] == [
        {"node": "n1", "worker": 7, "error": "worker on n1 died (SIGKILL)"}]
    assert t1.info["node"] == "n0"  # where the retry ran
    assert (1, 0) in ex.jobs and (1, 1) in ex.jobs
    assert all("attempts" not in stored[n].info for n in (0, 2))


def test_a_trial_lost_more_often_than_the_retries_fails_with_every_reason(tmp_path: Path) -> None:
    ex = LosingExecutor({(1, 0): "n1", (1, 1): "n2", (1, 2): "n3"})
    stored = _run(tmp_path, ex, retries=2, retried=2)
    t1 = stored[1]
    assert t1.status is TrialStatus.FAILED
    assert "worker on n3 died" in (t1.error or "")
    assert [a["node"] for a in t1.info["lost_attempts"]] == ["n1", "n2"]
    assert t1.info["attempts"] == 3
    assert stored[0].ok and stored[2].ok


def test_without_retries_a_lost_worker_fails_its_trial_at_once(tmp_path: Path) -> None:
    ex = LosingExecutor({(1, 0): "n1"})
    stored = _run(tmp_path, ex, retries=0, retried=0)
    t1 = stored[1]
    assert t1.status is TrialStatus.FAILED
    assert "attempts" not in t1.info and "lost_attempts" not in t1.info
