"""``nasforge show`` and ``nasforge report`` on a multi-fidelity experiment (ASHA with a median
pruner): the rung summary, the pruned trials, one trial's learning curve and promotion chain, and
the learning-curve plots of the report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import nasforge
from curve_fakes import CurveEvaluator, accuracy
from nasforge.cli.main import main
from nasforge.experiment import SQLiteStorage
from nasforge.experiment.pruners import create_pruner
from nasforge.experiment.schedulers import create_scheduler
from nasforge.trial import Trial, TrialStatus


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def asha_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("asha") / "x.db"
    space = nasforge.create_space("nb201")
    strategy = nasforge.create_strategy("random", space, seed=0)
    nasforge.Experiment(space, strategy, CurveEvaluator(), budget=nasforge.Budget(max_trials=40),
                        scheduler=create_scheduler("asha"), pruner=create_pruner("median"),
                        storage=str(path)).run()
    return path


@pytest.fixture(scope="module")
def trials(asha_db: Path) -> dict[int, Trial]:
    storage = SQLiteStorage(asha_db, readonly=True)
    try:
        out = {t.number: t for t in storage.trials()}
    finally:
        storage.close()
    assert {t.info["rung"] for t in out.values()} == {0, 1, 2}
    assert any(t.status is TrialStatus.PRUNED for t in out.values())
    return out


def rows_of(out: str, title: str) -> list[list[str]]:
    """The body rows of the rich table titled ``title`` in ``out``, as stripped cells."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(title))
    rows, body = [], False
    for line in lines[start + 1:]:
        if line.startswith("┡"):
            body = True
        elif line.startswith("└"):
            break
        elif body and line.startswith("│"):
            rows.append([c.strip() for c in line.strip("│").split("│")])
    return rows


def expected_rungs(trials: dict[int, Trial]) -> list[dict[str, Any]]:
    parents = {t.info.get("parent") for t in trials.values()}
    out = []
    for k, fid in enumerate([1.0, 3.0, 9.0]):
        at = [t for t in trials.values() if t.info["rung"] == k]
        best = max((t for t in at if t.ok), key=lambda t: (t.metrics["accuracy"], -t.number))
        out.append({"rung": k, "fidelity": fid, "started": len(at), "finished": len(at),
                    "ok": sum(t.ok for t in at),
                    "pruned": sum(t.status is TrialStatus.PRUNED for t in at), "failed": 0,
                    "promoted": sum(t.number in parents for t in at),
                    "best_trial": best.number, "best_value": best.metrics["accuracy"]})
    return out


# ---------------------------------------------------------------------------------- show DB
def test_show_summarizes_rungs_and_pruned_trials(
    asha_db: Path, trials: dict[int, Trial], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(["show", str(asha_db)], capsys)
    assert code == 0, err
    listing = rows_of(out, f"{asha_db}: {len(trials)} trial(s)")
    assert len(listing) >= len(trials)  # long architectures may wrap onto a second line
    first = {int(r[0]): r for r in listing if r[0]}
    for n, t in trials.items():  # the rung, fidelity and parent columns
        assert first[n][1:5] == [t.status.value, str(t.info["rung"]), f"{t.fidelity:g}",
                                 "-" if t.info.get("parent") is None else str(t.info["parent"])]
    pruned = [t for t in trials.values() if t.status is TrialStatus.PRUNED]
    assert out.count("pruned at step") == len(pruned)
    rungs = rows_of(out, "rungs of asha (eta=3; rungs=1, 3, 9; tell=entry)")
    expected = expected_rungs(trials)
    assert [r[:9] for r in rungs] == [
        [str(e["rung"]), f"{e['fidelity']:g}", *(str(e[k]) for k in (
            "started", "finished", "ok", "pruned", "failed", "promoted", "best_trial"))]
        for e in expected]
    assert [float(r[9]) for r in rungs] == pytest.approx([e["best_value"] for e in expected],
                                                         abs=0.01)
    assert (f"{len(pruned)} of {len(trials)} trial(s) pruned; pruner: median "
            "(min_trials=4; warmup_steps=1)") in out


def test_show_json_has_curves_rungs_and_pruned_count(
    asha_db: Path, trials: dict[int, Trial], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(["show", str(asha_db), "--json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    assert data["scheduler"]["name"] == "asha" and data["scheduler"]["rungs"] == [1.0, 3.0, 9.0]
    assert data["pruner"]["name"] == "median" and data["objective"] == "max:accuracy"
    assert data["rungs"] == expected_rungs(trials)
    assert data["pruned"] == sum(t.status is TrialStatus.PRUNED for t in trials.values())
    assert [r["number"] for r in data["trials"]] == sorted(trials)
    for row in data["trials"]:
        t = trials[row["number"]]
        assert row["curve"] == t.info["reports"]
        assert row["rung"] == t.info["rung"] and row["fidelity"] == t.fidelity
        assert row["parent"] == t.info.get("parent") and row["config"] == t.info["config"]
        assert row["pruned_at"] == t.info.get("pruned_at")
    # Filters choose the listed trials; the rung summary still covers the whole experiment.
    code, out, _ = run_cli(["show", str(asha_db), "--status", "pruned", "--json"], capsys)
    filtered = json.loads(out)
    assert filtered["trials"] and all(r["status"] == "pruned" and r["pruned_at"] == r["curve"][-1][0]
                                      for r in filtered["trials"])
    assert filtered["rungs"] == data["rungs"] and filtered["pruned"] == len(filtered["trials"])


# ---------------------------------------------------------------------------------- show --trial
def test_show_trial_prints_its_curve_and_promotion_chain(
    asha_db: Path, trials: dict[int, Trial], capsys: pytest.CaptureFixture[str]
) -> None:
    top = next(t for t in trials.values() if t.info["rung"] == 2)
    chain = [top]
    while chain[0].info.get("parent") is not None:
        chain.insert(0, trials[chain[0].info["parent"]])
    assert [t.info["rung"] for t in chain] == [0, 1, 2]
    code, out, err = run_cli(["show", str(asha_db), "--trial", str(top.number)], capsys)
    assert code == 0, err
    assert "rung          │ 2 (the top rung)" in out
    assert f"first evaluated as trial {chain[0].number}" in out
    lineage = rows_of(out, "promotion chain")
    assert [r[0] for r in lineage] == [str(chain[0].number), str(chain[1].number),
                                       f"> {top.number}"]
    assert [r[1:4] for r in lineage] == [["0", "1", "ok"], ["1", "3", "ok"], ["2", "9", "ok"]]
    curve = rows_of(out, "learning curve")
    assert [int(r[0]) for r in curve] == list(range(1, 10))
    assert [float(r[1]) for r in curve] == pytest.approx(
        [accuracy(top.arch, s) for s in range(1, 10)], abs=0.01)
    assert curve[-1][2] == "best" and "pruned here" not in out

    # The chain seen from its first trial lists where it was promoted to.
    code, out, _ = run_cli(["show", str(asha_db), "--trial", str(chain[0].number)], capsys)
    lineage = rows_of(out, "promotion chain")
    assert [r[0] for r in lineage] == [f"> {chain[0].number}", f"promoted to {chain[1].number}"]


def test_show_trial_marks_where_a_pruned_trial_stopped(
    asha_db: Path, trials: dict[int, Trial], capsys: pytest.CaptureFixture[str]
) -> None:
    t = next(t for t in trials.values() if t.status is TrialStatus.PRUNED
             and len(t.info["reports"]) > 1)
    stop = t.info["pruned_at"]
    code, out, err = run_cli(["show", str(asha_db), "--trial", str(t.number)], capsys)
    assert code == 0, err
    assert f"pruned (at step {stop})" in out
    assert f"reason        │ {t.error}" in out
    curve = rows_of(out, "learning curve")
    assert [int(r[0]) for r in curve] == [s for s, _ in t.info["reports"]]
    assert "pruned here" in curve[-1][2]
    assert all("pruned here" not in r[2] for r in curve[:-1])


def test_show_trial_json_and_unknown_numbers(
    asha_db: Path, trials: dict[int, Trial], capsys: pytest.CaptureFixture[str]
) -> None:
    top = next(t for t in trials.values() if t.info["rung"] == 2)
    code, out, err = run_cli(["show", str(asha_db), "--trial", str(top.number), "--json"], capsys)
    assert code == 0, err
    data = json.loads(out)["trial"]
    assert data["number"] == top.number and data["curve"] == top.info["reports"]
    assert data["rung"] == 2 and data["parent"] == top.info["parent"]
    assert [c["rung"] for c in data["chain"]] == [0, 1, 2]
    assert data["chain"][-1]["number"] == top.number
    assert data["chain"][1]["number"] == top.info["parent"]
    assert all(c["value"] == trials[c["number"]].metrics["accuracy"] for c in data["chain"])
    assert data["promoted_to"] == []

    code, _, err = run_cli(["show", str(asha_db), "--trial", "999"], capsys)
    assert code == 2
    assert "no trial 999" in err and f"numbered 0 to {max(trials)}" in err


def test_show_without_a_scheduler_is_unchanged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    space = nasforge.create_space("nb201")
    strategy = nasforge.create_strategy("random", space, seed=0)
    evaluator = nasforge.create_evaluator(
        "function", fn=lambda arch, ctx: {"accuracy": accuracy(arch, 3)})
    db = tmp_path / "plain.db"
    nasforge.Experiment(space, strategy, evaluator, budget=nasforge.Budget(max_trials=4),
                        storage=str(db)).run()
    code, out, err = run_cli(["show", str(db)], capsys)
    assert code == 0, err
    assert "rung" not in out and "pruned" not in out
    # The architecture reads as NB201's string, not JSON (the space is rebuilt from its name).
    assert "|+|" in out and '"choices"' not in out
    code, out, _ = run_cli(["show", str(db), "--json"], capsys)
    data = json.loads(out)
    assert data["scheduler"] is None and data["rungs"] == [] and data["pruned"] == 0
    assert all(r["curve"] == [] and r["rung"] is None for r in data["trials"])
    code, out, _ = run_cli(["show", str(db), "--trial", "0"], capsys)
    assert code == 0 and "no learning curve" in out and "promotion chain" not in out


# ---------------------------------------------------------------------------------- report
def test_report_plots_learning_curves_and_rungs(
    asha_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "x.html"
    code, out, err = run_cli(["report", str(asha_db), "-o", str(target), "--json"], capsys)
    assert code == 0, err
    written = json.loads(out)
    names = {Path(p).name for p in written["images"]}
    assert {"learning_curves.png", "rungs.png"} <= names and not written["skipped"]
    html = target.read_text()
    for heading, alt in (("Learning curves", "learning curves"), ("Rungs", "values at each rung")):
        assert f"<h2>{heading}</h2>" in html
        assert f'<img alt="{alt}" src="data:image/png;base64,' in html
    assert (target.parent / "x_files" / "learning_curves.png").read_bytes().startswith(b"\x89PNG")
