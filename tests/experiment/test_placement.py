"""Where each trial ran: the executor records node and worker, ``show`` and ``report`` draw the
timeline of trials per worker."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

import nasforge
from nasforge.cli.main import main
from nasforge.evaluators.function import FunctionEvaluator
from nasforge.experiment import Budget, Experiment, ProcessExecutor, SQLiteStorage
from nasforge.report import timeline
from nasforge.report.html import write_report
from nasforge.space.architecture import Architecture
from nasforge.trial import Trial, TrialStatus


def _trial(number: int, start: float, end: float, worker: int,
           status: TrialStatus = TrialStatus.OK) -> Trial:
    arch = Architecture("toy", {"x": number})
    return Trial(number=number, arch=arch, status=status, started_at=start, finished_at=end,
                 info={"node": "10.0.0.1/abcd", "worker": worker})


def test_lanes_group_trials_by_worker_in_start_order() -> None:
    trials = [_trial(0, 100.0, 101.0, 7), _trial(1, 100.0, 104.0, 8),
              _trial(2, 101.0, 103.0, 7, TrialStatus.FAILED), _trial(3, 103.0, 104.0, 7),
              Trial(number=4, arch=Architecture("toy", {"x": 4}), started_at=100.0)]
    lanes = timeline.lanes(trials)
    assert [(lane.worker, [n for n, *_ in lane.trials]) for lane in lanes] == [
        (7, [0, 2, 3]), (8, [1])]
    assert lanes[0].busy == pytest.approx(1.0) and lanes[1].busy == pytest.approx(1.0)
    assert lanes[0].trials[1] == (2, 1.0, 3.0, "failed")
    assert timeline.trial_list(lanes[0], limit=2) == "#0 0.0-1.0s, #2 1.0-3.0s failed, ... 1 more"
    assert timeline.lanes([trials[4]]) == []  # nothing placed: no timeline


def nap(arch: Architecture, ctx: object) -> dict[str, float]:
    time.sleep(0.2)
    return {"accuracy": 1.0}


@pytest.mark.slow
def test_process_pool_records_placement_shown_by_show_and_report(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    space = nasforge.create_space("nb201")
    db = tmp_path / "p.db"
    exp = Experiment(space, nasforge.create_strategy("random", space, seed=0),
                     FunctionEvaluator(nap), budget=Budget(max_trials=6), storage=str(db),
                     executor=ProcessExecutor(workers=2), seed=0, device="cpu").run()
    pids = {t.info["worker"] for t in exp.trials}
    assert len(pids) == 2 and os.getpid() not in pids
    assert all(isinstance(t.info["node"], str) for t in exp.trials)
    stored = SQLiteStorage(db, readonly=True).trials()
    assert len(timeline.lanes(stored)) == 2
    capsys.readouterr()
    assert main(["show", str(db), "--json"]) == 0
    workers = json.loads(capsys.readouterr().out)["workers"]
    assert len(workers) == 2 and sum(len(w["trials"]) for w in workers) == 6
    assert main(["show", str(db)]) == 0
    assert "trials per worker" in capsys.readouterr().out
    html = write_report(db, tmp_path / "r.html", diagrams=0).html.read_text()
    assert "Trials per worker" in html and "<svg" in html
