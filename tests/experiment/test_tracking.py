"""MLflow and TensorBoard callbacks, checked by reading back what they wrote with each tool's own
reader (``MlflowClient``, TensorBoard's ``EventAccumulator``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import nasforge
from nasforge.cli.main import main
from nasforge.errors import ConfigError
from nasforge.experiment.tracking import MLflowCallback, TensorBoardCallback, learning_curve
from nasforge.trial import Result, Trial, TrialStatus

# MLflow's usage telemetry would talk to the internet; tests stay on this machine.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")


def scored(arch: nasforge.space.Architecture, ctx: nasforge.evaluators.EvalContext) -> object:
    """Three epochs of a made-up learning curve; trial 2 fails."""
    if ctx.trial_number == 2:
        raise RuntimeError("out of memory (on purpose)")
    base = sum(op.startswith("nor_conv") for op in arch.values())
    for epoch in (1, 2, 3):
        ctx.report(epoch, 10.0 * base + epoch)
    return Result(metrics={"accuracy": 10.0 * base + 3, "params": 1000.0 + base})


def run_search(callback: object) -> nasforge.Experiment:
    space = nasforge.create_space("nb201")
    exp = nasforge.Experiment(space, nasforge.create_strategy("random", space, seed=0),
                              nasforge.create_evaluator("function", fn=scored),
                              budget=nasforge.Budget(max_trials=4), callbacks=[callback])
    return exp.run()


def test_learning_curve_reads_reports_leniently() -> None:
    arch = nasforge.create_space("nb201").sample(0)
    trial = Trial(0, arch, TrialStatus.OK, info={"reports": [[1, 50.0], [2.0, float("nan")],
                                                             "junk", [3, 52.5]]})
    assert learning_curve(trial) == [(1, 50.0), (3, 52.5)]


@pytest.mark.slow
def test_mlflow_runs_hold_metrics_curves_and_architectures(tmp_path: Path) -> None:
    mlflow = pytest.importorskip("mlflow", reason="mlflow not installed (pip install 'nasforge[mlflow]')")
    exp = run_search(MLflowCallback(tmp_path / "mlruns", experiment_name="tracked"))
    client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    found = client.get_experiment_by_name("tracked")
    assert found is not None
    runs = {int(r.data.tags["trial"]): r for r in client.search_runs([found.experiment_id])}
    assert sorted(runs) == [t.number for t in exp.trials] == [0, 1, 2, 3]
    for t in exp.trials:
        run = runs[t.number]
        assert run.data.tags["architecture"] == exp.space.to_string(t.arch)
        assert run.data.params == {k: str(v) for k, v in t.arch.items()}
        assert run.data.tags["status"] == t.status.value
        if t.status is TrialStatus.FAILED:
            assert run.info.status == "FAILED" and "out of memory" in run.data.tags["error"]
            continue
        assert run.info.status == "FINISHED"
        assert run.data.metrics["accuracy"] == t.metrics["accuracy"]
        assert run.data.metrics["params"] == t.metrics["params"]
        history = client.get_metric_history(run.info.run_id, "curve/accuracy")
        assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [
            (e, t.metrics["accuracy"] - 3 + e) for e in (1, 2, 3)]


def test_tensorboard_events_hold_metrics_curves_and_architectures(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard", reason="tensorboard not installed (pip install 'nasforge[tensorboard]')")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    exp = run_search(TensorBoardCallback(tmp_path / "tb"))
    search = EventAccumulator(str(tmp_path / "tb" / "search"))
    search.Reload()
    ok = [t for t in exp.trials if t.ok]
    assert len(ok) == 3
    assert {e.step: e.value for e in search.Scalars("trial/accuracy")} == {
        t.number: pytest.approx(t.metrics["accuracy"]) for t in ok}
    best = [e.value for e in search.Scalars("best/accuracy")]
    assert best == sorted(best) and best[-1] == pytest.approx(max(t.metrics["accuracy"] for t in ok))
    texts = [e.tensor_proto.string_val[0].decode() for e in search.Tensors("architecture/text_summary")]
    assert len(texts) == 4 and exp.space.to_string(exp.trials[0].arch) in texts[0]
    assert "failed: RuntimeError: out of memory" in texts[2]
    for t in ok:
        curve = EventAccumulator(str(tmp_path / "tb" / f"trial_{t.number:05d}"))
        curve.Reload()
        assert [(e.step, e.value) for e in curve.Scalars("curve/accuracy")] == [
            (e, pytest.approx(t.metrics["accuracy"] - 3 + e)) for e in (1, 2, 3)]


def test_missing_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_mlflow(name: str, *args: object, **kwargs: object) -> object:
        if name.split(".")[0] in ("mlflow", "tensorboard"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mlflow)
    monkeypatch.setattr("importlib.import_module", lambda name: no_mlflow(name))
    with pytest.raises(ConfigError, match=r"pip install 'nasforge\[mlflow\]'"):
        MLflowCallback("unused")
    with pytest.raises(ConfigError, match=r"pip install 'nasforge\[tensorboard\]'"):
        TensorBoardCallback("unused")


@pytest.mark.slow
def test_search_cli_flags_log_to_both(tmp_path: Path, nb201_dir: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    mlflow = pytest.importorskip("mlflow", reason="mlflow not installed (pip install 'nasforge[mlflow]')")
    pytest.importorskip("tensorboard", reason="tensorboard not installed (pip install 'nasforge[tensorboard]')")
    db = tmp_path / "s.db"
    code = main(["search", "--space", "nb201", "--evaluator", "nb201", "--data", str(nb201_dir),
                 "--budget-trials", "3", "--storage", str(db), "--quiet",
                 "--mlflow", str(tmp_path / "mlruns"), "--tensorboard", str(tmp_path / "tb")])
    assert code == 0, capsys.readouterr().err
    client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    found = client.get_experiment_by_name("s")  # named after the database
    assert found is not None and len(client.search_runs([found.experiment_id])) == 3
    assert list((tmp_path / "tb" / "search").glob("events.out.tfevents.*"))


@pytest.mark.slow
def test_config_keys_log_and_a_resume_keeps_logging(tmp_path: Path, nb201_dir: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("tensorboard", reason="tensorboard not installed (pip install 'nasforge[tensorboard]')")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    db, tb = tmp_path / "s.db", tmp_path / "tb"
    config = tmp_path / "search.yaml"
    config.write_text(f"space: nb201\nevaluator: nb201\nbudget_trials: 2\nstorage: {db}\n"
                      f"tensorboard: {tb}\n")
    assert main(["search", "--config", str(config), "--data", str(nb201_dir), "--quiet"]) == 0, \
        capsys.readouterr().err
    # Resumed with a larger budget and no tracking flag: the stored settings keep logging.
    assert main(["search", "--resume", str(db), "--budget-trials", "4", "--quiet"]) == 0, \
        capsys.readouterr().err
    steps: set[int] = set()
    for events in (tb / "search").glob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            if tag.startswith("trial/"):
                steps.update(e.step for e in acc.Scalars(tag))
    assert steps == {0, 1, 2, 3}
