"""Learning curves and rungs of multi-fidelity experiments: reading them back from the database
(:mod:`nasforge.report.curves`), plotting them, and their sections of the HTML report."""

from __future__ import annotations

import base64
import itertools
import re
import sqlite3
from pathlib import Path

import numpy as np
import pytest

import nasforge
from curve_fakes import CurveEvaluator, accuracy
from nasforge.errors import ConfigError
from nasforge.experiment import SQLiteStorage
from nasforge.experiment.pruners import create_pruner
from nasforge.experiment.schedulers import create_scheduler
from nasforge.report import curves, plots
from nasforge.report.html import write_report
from nasforge.report.stored import load_experiment
from nasforge.trial import Objective, Trial, TrialStatus

RUNGS = [1.0, 3.0, 9.0]  # ASHA's default ladder for a top fidelity of 9 and eta 3


def run_experiment(path: Path, trials: int = 40) -> Path:
    space = nasforge.create_space("nb201")
    strategy = nasforge.create_strategy("random", space, seed=0)
    nasforge.Experiment(space, strategy, CurveEvaluator(),
                        budget=nasforge.Budget(max_trials=trials),
                        scheduler=create_scheduler("asha"), pruner=create_pruner("median"),
                        storage=str(path)).run()
    return path


@pytest.fixture(scope="module")
def asha_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run_experiment(tmp_path_factory.mktemp("asha") / "x.db")


@pytest.fixture(scope="module")
def stored(asha_db: Path) -> list[Trial]:
    trials = load_experiment(asha_db).trials
    # The fixture is only useful if it shows every case the report draws.
    assert {curves.rung_of(t) for t in trials} == {0, 1, 2}
    pruned = [t for t in trials if t.status is TrialStatus.PRUNED]
    assert any(t.error and "median" in t.error for t in pruned)
    assert any(t.error and "gave up" in t.error for t in pruned)
    return trials


# ---------------------------------------------------------------------------------- reading back
def test_curves_read_back_what_the_evaluator_reported(stored: list[Trial]) -> None:
    for t in stored:
        curve = curves.learning_curve(t)
        assert curve == [(s, accuracy(t.arch, s)) for s in range(1, len(curve) + 1)]
        if t.status is TrialStatus.OK:
            assert len(curve) == t.fidelity  # one report per epoch of its rung
            assert curve[-1][1] == t.metrics["accuracy"]
            assert curves.pruned_at(t) is None
        else:
            assert t.status is TrialStatus.PRUNED
            assert curves.pruned_at(t) == curve[-1][0] == t.info["pruned_at"]
            assert len(curve) <= (t.fidelity or 0)
        record = curves.curve_record(t)
        assert record["curve"] == [[s, v] for s, v in curve]
        assert record["rung"] == t.info["rung"] and record["fidelity"] == t.fidelity
        assert t.fidelity == RUNGS[record["rung"]]


def test_rung_summary_counts_each_rung(stored: list[Trial]) -> None:
    objective = Objective("accuracy")
    summary = curves.rung_summary(stored, objective, RUNGS)
    assert [r.rung for r in summary] == [0, 1, 2]
    assert [r.fidelity for r in summary] == RUNGS
    assert sum(r.started for r in summary) == len(stored)
    parents = [curves.parent_of(t) for t in stored]
    for r in summary:
        at = [t for t in stored if t.info["rung"] == r.rung]
        assert r.started == r.finished == len(at)
        assert r.ok == sum(t.ok for t in at)
        assert r.pruned == sum(t.status is TrialStatus.PRUNED for t in at)
        assert r.ok + r.pruned + r.failed == r.started
        assert r.promoted == sum(t.number in parents for t in at)
        best = max((t for t in at if t.ok), key=lambda t: (t.metrics["accuracy"], -t.number))
        assert (r.best_trial, r.best_value) == (best.number, best.metrics["accuracy"])
    # Only completed trials are promoted, so each rung above 0 holds at most what was promoted.
    for low, high in itertools.pairwise(summary):
        assert high.started == low.promoted <= low.ok
    # A rung nobody reached yet is still listed (from the scheduler's settings).
    empty = curves.rung_summary(stored[:1], objective, RUNGS)
    assert [(r.rung, r.started, r.best_trial) for r in empty] == [(0, 1, stored[0].number),
                                                                   (1, 0, None), (2, 0, None)]


def test_lineage_walks_the_promotions_of_a_configuration(stored: list[Trial]) -> None:
    by_number = {t.number: t for t in stored}
    top = [t for t in stored if t.info["rung"] == 2]
    assert top
    for t in top:
        chain = curves.lineage(t, by_number)
        assert [c.info["rung"] for c in chain] == [0, 1, 2]
        assert chain[-1] is t and chain[0].number == curves.config_of(t)
        assert {c.arch for c in chain} == {t.arch}
        assert all(curves.parent_of(b) == a.number for a, b in itertools.pairwise(chain))
        assert curves.promotions(chain[0], stored) == [chain[1]]
        assert curves.promotions(t, stored) == []


def test_malformed_records_are_skipped_not_fatal() -> None:
    arch = nasforge.create_space("nb201").sample(np.random.default_rng(0))
    odd = Trial(number=3, arch=arch, status=TrialStatus.PRUNED, info={
        "reports": [[1, 50.0], ["x", 2.0], [2, float("nan")], [3], "junk", [4, 60.0], [5.0, True]],
        "rung": "two", "parent": 3})
    assert curves.learning_curve(odd) == [(1, 50.0), (4, 60.0)]
    assert curves.pruned_at(odd) == 4  # not recorded: the last reported step
    assert curves.rung_of(odd) is None
    # A parent that points at itself, or at a trial that is not there, ends the chain.
    assert curves.lineage(odd, {3: odd}) == [odd]
    orphan = Trial(number=7, arch=arch, info={"rung": 1, "parent": 5})
    assert curves.lineage(orphan, {}) == [orphan]
    assert curves.learning_curve(Trial(number=0, arch=arch, info={"reports": "no"})) == []
    assert curves.settings({"scheduler": "asha"}, "scheduler") == {"name": "asha"}
    assert curves.settings({"scheduler": None}, "scheduler") is None
    assert curves.rung_fidelities({"rungs": [1, "x"]}) == []
    assert curves.describe_settings(None) == "none"
    assert curves.describe_settings({"name": "asha", "eta": 3.0, "rungs": [1.0, 3.0]}) == \
        "asha (eta=3; rungs=1, 3)"


# ---------------------------------------------------------------------------------- plots
def test_learning_curve_plot_draws_pruned_trials_apart(stored: list[Trial]) -> None:
    fig = plots.learning_curves_figure(stored, Objective("accuracy"), RUNGS)
    ax = fig.axes[0]
    lines = {line.get_gid(): line for line in ax.get_lines()}
    marks = {c.get_gid(): c for c in ax.collections}
    best = max((t for t in stored if t.ok and t.fidelity == RUNGS[-1]),
               key=lambda t: t.metrics["accuracy"])
    for t in stored:
        line = lines[f"trial-{t.number}"]  # every trial's curve is drawn, at its reported steps
        assert np.asarray(line.get_xdata()).tolist() == [s for s, _ in curves.learning_curve(t)]
        if t.status is TrialStatus.PRUNED:
            assert line.get_linestyle() == "--"
            step = curves.pruned_at(t)
            assert step is not None
            offsets = np.asarray(marks[f"pruned-{t.number}"].get_offsets())
            assert offsets.tolist() == [[step, accuracy(t.arch, step)]]  # x where it stopped
        else:
            assert line.get_linestyle() == "-" and f"pruned-{t.number}" not in marks
            assert line.get_linewidth() == (2.4 if t is best else 1.1)
    box = ax.get_legend()
    assert box is not None
    legend = [text.get_text() for text in box.get_texts()]
    assert legend[:3] == ["rung 0 (fidelity 1)", "rung 1 (fidelity 3)", "rung 2 (fidelity 9)"]
    assert "pruned" in legend and "pruned here" in legend
    assert f"best: trial {best.number} ({best.metrics['accuracy']:.4g})" in legend


def test_rung_plot_shows_each_rung_and_the_promotions(stored: list[Trial]) -> None:
    fig = plots.rungs_figure(stored, Objective("accuracy"), RUNGS)
    ax = fig.axes[0]
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert [t.splitlines()[:2] for t in ticks] == [["rung 0", "fidelity 1"],
                                                  ["rung 1", "fidelity 3"],
                                                  ["rung 2", "fidelity 9"]]
    marks = {c.get_gid(): c for c in ax.collections}
    for k in range(3):
        ok = sorted(t.metrics["accuracy"] for t in stored if t.ok and t.info["rung"] == k)
        points = np.asarray(marks[f"rung-{k}-ok"].get_offsets())
        assert sorted(points[:, 1].tolist()) == ok
        assert np.allclose(points[:, 0], k, atol=0.2)
    pruned0 = [t for t in stored if t.status is TrialStatus.PRUNED and t.info["rung"] == 0]
    assert len(np.asarray(marks["rung-0-pruned"].get_offsets())) == len(pruned0)
    gids = {line.get_gid() for line in ax.get_lines()}
    promoted = {f"promotion-{t.info['parent']}-{t.number}" for t in stored
                if t.info.get("parent") is not None}
    assert promoted and promoted <= gids


def test_plots_refuse_experiments_without_curves_and_are_reproducible(
    stored: list[Trial], tmp_path: Path
) -> None:
    bare = [Trial(number=t.number, arch=t.arch, status=t.status, metrics=t.metrics)
            for t in stored]
    with pytest.raises(ConfigError, match="learning curve"):
        plots.learning_curves_figure(bare, Objective("accuracy"))
    with pytest.raises(ConfigError, match="rung"):
        plots.rungs_figure(bare, Objective("accuracy"))
    a = plots.plot_learning_curves(stored, Objective("accuracy"), tmp_path / "a.png", RUNGS)
    b = plots.plot_learning_curves(stored, Objective("accuracy"), tmp_path / "b.png", RUNGS)
    assert a.read_bytes() == b.read_bytes()  # the same data gives the same file
    c = plots.plot_rungs(stored, Objective("accuracy"), tmp_path / "c.png", RUNGS)
    d = plots.plot_rungs(stored, Objective("accuracy"), tmp_path / "d.png", RUNGS)
    assert c.read_bytes() == d.read_bytes()


# ---------------------------------------------------------------------------------- HTML report
def inline_image(html: str, alt: str) -> bytes:
    found = re.search(rf'<img alt="{re.escape(alt)}" src="data:image/png;base64,([A-Za-z0-9+/=]+)"',
                      html)
    assert found, f"no inlined image {alt!r}"
    return base64.b64decode(found.group(1))


def test_report_has_learning_curve_and_rung_sections(
    asha_db: Path, stored: list[Trial], tmp_path: Path
) -> None:
    files = write_report(asha_db, tmp_path / "r.html")
    html = files.html.read_text()
    assert not files.skipped
    names = {p.name for p in files.images}
    assert {"learning_curves.png", "rungs.png"} <= names
    for alt, png in (("learning curves", "learning_curves.png"),
                     ("values at each rung", "rungs.png")):
        data = inline_image(html, alt)
        assert data.startswith(b"\x89PNG") and data == (files.images[0].parent / png).read_bytes()
    assert html.index("<h2>Learning curves</h2>") < html.index("<h2>Rungs</h2>") < html.index(
        "<h2>All trials")
    pruned = sum(t.status is TrialStatus.PRUNED for t in stored)
    assert f"{pruned} pruned trial(s) are grey dashed lines" in html
    assert '<div class="k">pruned trials</div><div class="v">' + str(pruned) in html
    assert "asha (eta=3; max_fidelity=" not in html  # None settings are left out ...
    assert "asha (eta=3; rungs=1, 3, 9; tell=entry)" in html  # ... the rest is shown
    # The rung table: one row per rung, with the same numbers as rung_summary.
    rungs_table = html[html.index('id="rungs"'):]
    rungs_table = rungs_table[rungs_table.index("<tbody>"):rungs_table.index("</table>")]
    rows = re.findall(r"<tr>(.*?)</tr>", rungs_table)
    assert len(rows) == 3
    for row, r in zip(rows, curves.rung_summary(stored, Objective("accuracy"), RUNGS)):
        cells = re.findall(r'data-sort="([^"]*)"', row)
        assert [float(c) for c in cells[:9]] == [r.rung, r.fidelity, r.started, r.finished, r.ok,
                                                 r.pruned, r.failed, r.promoted, r.best_trial]
    # The trial table gains the schedule's columns.
    head = html[html.index('id="trials"'):]
    head = head[:head.index("</thead>")]
    assert re.findall(r'scope="col">([^<]*)<', head)[:6] == ["#", "status", "fidelity", "rung",
                                                              "parent", "pruned at"]


def test_report_of_a_single_fidelity_experiment_has_no_curve_sections(tmp_path: Path) -> None:
    space = nasforge.create_space("nb201")
    strategy = nasforge.create_strategy("random", space, seed=0)
    evaluator = nasforge.create_evaluator(
        "function", fn=lambda arch, ctx: {"accuracy": accuracy(arch, 3)})
    nasforge.Experiment(space, strategy, evaluator, budget=nasforge.Budget(max_trials=5),
                        storage=str(tmp_path / "plain.db")).run()
    files = write_report(tmp_path / "plain.db", tmp_path / "plain.html")
    html = files.html.read_text()
    assert "Learning curves" not in html and "<h2>Rungs</h2>" not in html
    assert "pruned trials" not in html and not files.skipped
    assert {p.name for p in files.images}.isdisjoint({"learning_curves.png", "rungs.png"})
    head = html[html.index('id="trials"'):]
    assert "pruned at" not in head[:head.index("</thead>")]


def test_report_escapes_stored_scheduler_text(asha_db: Path, tmp_path: Path) -> None:
    db = tmp_path / "evil.db"
    src, dst = sqlite3.connect(asha_db), sqlite3.connect(db)
    src.backup(dst)  # a consistent copy, whatever is still in the write-ahead log
    src.close()
    dst.close()
    storage = SQLiteStorage(db)
    config = dict(storage.get_meta("config") or {})
    config["scheduler"] = {**config["scheduler"], "name": "<script>alert('s')</script>",
                           "tell": "</td><b>x</b>"}
    config["pruner"] = {"name": "<img src=x onerror=alert(1)>"}
    storage.set_meta("config", config)
    storage.close()
    html = write_report(db, tmp_path / "evil.html").html.read_text()
    assert "<script>alert" not in html and "<img src=x" not in html and "<b>x</b>" not in html
    assert "&lt;script&gt;alert(&#x27;s&#x27;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
