"""``nasforge init / report / export / train`` and config files, through the CLI's ``main()``."""

from __future__ import annotations

import json
import logging
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import nasforge
from nasforge.cli.main import main
from nasforge.config import SearchConfig, load_yaml_config, make_config
from nasforge.experiment import SQLiteStorage
from nasforge.export import ArchFile, build_script, load_arch_file, load_checkpoint

# Tiny training settings: a few seconds per trial on one CPU thread.
TINY_EVAL = ["--evaluator-option", "train_subset=256", "--evaluator-option", "val_subset=128",
             "--evaluator-option", "epochs=1", "--evaluator-option", "build_kwargs={C: 4, N: 1}",
             "--evaluator-option", "batch_size=64"]
TINY_TRAIN = ["--epochs", "1", "--train-subset", "256", "--val-size", "128", "--test-subset",
              "256", "--train-option", "batch_size=64"]


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def nb201_config(path: Path, nb201_dir: Path, **extra: object) -> Path:
    data = {"space": "nb201", "strategy": "rea", "evaluator": "nb201",
            "evaluator_options": {"data": str(nb201_dir)},
            "strategy_options": {"population_size": 4, "sample_size": 2},
            "budget_trials": 6, "storage": str(path.with_suffix(".db")), **extra}
    path.write_text(yaml.safe_dump(data))
    return path


# ---------------------------------------------------------------------------------- init + config
def test_init_writes_a_commented_config_that_validates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(["init", "exp.yaml", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["path"] == "exp.yaml"
    text = Path("exp.yaml").read_text()
    data = load_yaml_config("exp.yaml")
    assert set(data) == set(SearchConfig.model_fields), "every setting appears in the file"
    cfg = make_config(data, "exp.yaml")
    assert cfg.storage == "runs/exp.db" and cfg.evaluator == "train"
    lines = text.splitlines()
    for key in SearchConfig.model_fields:
        i = next(k for k, line in enumerate(lines) if line.startswith(f"{key}:"))
        assert "#" in lines[i] or lines[i - 1].startswith("#"), f"{key} has no comment"
    for name in nasforge.list_strategies():
        assert name in text  # the registered names are listed for the user
    # An existing file is kept unless --force.
    code, _, err = run_cli(["init", "exp.yaml"], capsys)
    assert code == 2 and "already exists" in err and "--force" in err
    assert run_cli(["init", "exp.yaml", "--force", "--quiet"], capsys)[0] == 0
    assert run_cli(["init", "exp.txt"], capsys)[0] == 2


@pytest.mark.parametrize(("content", "expected"), [
    ("strategy: nope\n", ["strategy", "'nope'", "allowed", "rea", "random"]),
    ("budget_trials: many\n", ["budget_trials", "'many'", "integer"]),
    ("executor: cloud\n", ["executor", "'cloud'", "allowed", "'inline'", "'process'", "'ray'"]),
    ("populaton: 3\n", ["populaton", "unknown key", "allowed keys", "strategy_options"]),
])
def test_search_config_errors_name_file_key_value_and_allowed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, expected: list[str]
) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(content)
    code, _, err = run_cli(["search", "--config", str(cfg)], capsys)
    assert code == 2
    assert str(cfg) in err
    for piece in expected:
        assert piece in err, (piece, err)
    assert "Traceback" not in err


@pytest.mark.parametrize(("content", "expected"), [
    ("seeds: many\n", ["seeds", "'many'", "integer"]),
    ("benchmark: nb999\n", ["benchmark", "'nb999'", "allowed", "'nb201'"]),
    ("seedz: 3\n", ["'seedz'", "allowed keys", "seeds", "strategies"]),
])
def test_bench_config_errors_name_file_key_value_and_allowed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, expected: list[str]
) -> None:
    cfg = tmp_path / "bench.yaml"
    cfg.write_text(content)
    code, _, err = run_cli(["bench", "--config", str(cfg)], capsys)
    assert code == 2 and str(cfg) in err
    for piece in expected:
        assert piece in err, (piece, err)


def test_bench_takes_everything_from_yaml_and_flags_override(
    nb201_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "bench.yaml"
    cfg.write_text(yaml.safe_dump({
        "data": str(nb201_dir), "strategies": ["random", "rea"], "seeds": 3,
        "budget-trials": 15, "jobs": 1, "quiet": True,
        "strategy_option": {"rea": {"population_size": 5, "sample_size": 2}},
    }))
    code, out, err = run_cli(["bench", "--config", str(cfg), "--seeds", "2", "--json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    assert data["protocol"]["max_trials"] == 15
    assert set(data["runs"]) == {"random", "rea(population_size=5,sample_size=2)"}
    assert all(len(rs) == 2 for rs in data["runs"].values())  # the flag beat the file's 3
    # ... and `nasforge report --bench` turns it into an HTML report with the anytime plot.
    results = tmp_path / "bench.json"
    results.write_text(out)
    code, out, err = run_cli(["report", "--bench", str(results), "--json"], capsys)
    assert code == 0, err
    files = json.loads(out)
    assert files["html"] == str(tmp_path / "bench.html")
    assert sorted(Path(p).name for p in files["images"]) == ["anytime.png", "finals.png"]


def test_resume_needs_only_the_database(
    nb201_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = nb201_config(tmp_path / "exp.yaml", nb201_dir)
    db = tmp_path / "exp.db"
    assert run_cli(["search", "--config", str(cfg), "--quiet"], capsys)[0] == 0
    first = [t.arch for t in SQLiteStorage(db, readonly=True).trials()]
    assert len(first) == 6
    code, out, err = run_cli(["search", "--resume", str(db), "--budget-trials", "10", "--quiet",
                              "--json"], capsys)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["trials"] == 10 and summary["strategy"] == "rea"
    resumed = [t.arch for t in SQLiteStorage(db, readonly=True).trials()]
    assert resumed[:6] == first
    # Same as one uninterrupted run of 10 trials with the same settings.
    straight = nb201_config(tmp_path / "straight.yaml", nb201_dir, budget_trials=10)
    assert run_cli(["search", "--config", str(straight), "--quiet"], capsys)[0] == 0
    assert [t.arch for t in SQLiteStorage(tmp_path / "straight.db", readonly=True).trials()] \
        == resumed


# ---------------------------------------------------------------------------------- report/export
@pytest.fixture(scope="module")
def mo_search(nb201_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stored two-objective `nasforge search` run on the NB201 table (milliseconds)."""
    tmp = tmp_path_factory.mktemp("mo")
    cfg = nb201_config(tmp / "mo.yaml", nb201_dir, budget_trials=30,
                       objectives=["accuracy", "min:params"])
    assert main(["search", "--config", str(cfg), "--quiet"]) == 0
    return tmp / "mo.db"


def test_report_command(mo_search: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
                        ) -> None:
    out_html = tmp_path / "out" / "r.html"
    code, out, err = run_cli(["report", str(mo_search), "-o", str(out_html), "--diagrams", "1"],
                             capsys)
    assert code == 0, err
    assert "report written to" in err and out == ""
    text = out_html.read_text()
    assert "Pareto front" in text and "nasforge search --resume" in text
    assert (tmp_path / "out" / "r_files" / "pareto_front.png").is_file()
    code, _, err = run_cli(["report"], capsys)
    assert code == 2 and "either an experiment database" in err
    code, _, err = run_cli(["report", str(tmp_path / "nope.db")], capsys)
    assert code == 2 and "does not exist" in err


def test_export_writes_json_text_and_a_script_that_builds(
    mo_search: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "best"
    code, out, err = run_cli(["export", str(mo_search), "--top", "2", "-o", str(out_dir),
                              "--json"], capsys)
    assert code == 0, err
    listed = json.loads(out)["architectures"]
    assert [a["rank"] for a in listed] == [1, 2]
    storage = SQLiteStorage(mo_search, readonly=True)
    best = max((t for t in storage.trials() if t.ok), key=lambda t: t.metrics["accuracy"])
    space = nasforge.create_space("nb201")
    af = load_arch_file(out_dir / "rank1.json")
    assert af.arch == best.arch and af.metrics["accuracy"] == best.metrics["accuracy"]
    assert af.num_classes == 10 and af.in_channels == 3  # NB201's CIFAR-10 networks
    assert (out_dir / "rank1.txt").read_text().strip() == space.to_string(best.arch)
    assert json.loads((out_dir / "index.json").read_text())["selection"] == "top"
    # The script runs on its own and builds the network.
    res = subprocess.run([sys.executable, str(out_dir / "rank1.py")], capture_output=True,
                         text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    assert space.to_string(best.arch) in res.stdout and "parameters" in res.stdout
    # --pareto exports the front: no exported architecture dominates another.
    code, out, err = run_cli(["export", str(mo_search), "--pareto", "-o",
                              str(tmp_path / "front"), "--quiet"], capsys)
    assert code == 0 and out == "", err
    front = [load_arch_file(p).metrics for p in sorted((tmp_path / "front").glob("rank*.json"))]
    assert front
    for a in front:
        assert not any(b["accuracy"] >= a["accuracy"] and b["params"] <= a["params"] and b != a
                       for b in front)


def test_build_scripts_rebuild_every_space(tmp_path: Path) -> None:
    """The generated script round-trips each registered space's human form (DARTS Genotype,
    NB201 string, JSON) and builds the network."""
    scripts = {}
    for name in nasforge.list_spaces():
        space = nasforge.create_space(name)
        af = ArchFile(space.sample(3), build_kwargs=dict(space.small_build_kwargs))
        path = tmp_path / f"{name}.py"
        path.write_text(build_script(af, f"{name} test"))
        scripts[name] = (path, space.to_string(af.arch))
    code = (
        "import runpy, sys, json\n"
        "import torch\n"
        "out = {}\n"
        "for name, path in json.loads(sys.argv[1]).items():\n"
        "    ns = runpy.run_path(path)\n"
        "    assert isinstance(ns['model'], torch.nn.Module)\n"
        "    out[name] = ns['space'].to_string(ns['arch'])\n"
        "print(json.dumps(out))\n"
    )
    res = subprocess.run([sys.executable, "-c", code,
                          json.dumps({k: str(v[0]) for k, v in scripts.items()})],
                         capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    assert json.loads(res.stdout.splitlines()[-1]) == {k: v[1] for k, v in scripts.items()}


def test_export_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["export", str(tmp_path / "none.db")], capsys)
    assert code == 2 and "does not exist" in err
    bad = tmp_path / "arch.json"
    bad.write_text('{"space": "nb201", "choices": {"edge_1_0": "conv_9x9"}}')
    code, _, err = run_cli(["train", str(bad)], capsys)
    assert code == 2 and "conv_9x9" in err


# ---------------------------------------------------------------------------------- train
def test_train_saves_a_checkpoint_that_reloads(
    fashion_mnist_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    space = nasforge.create_space("nb201")
    arch = space.from_string("|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+"
                             "|skip_connect~0|avg_pool_3x3~1|nor_conv_3x3~2|")
    arch_json = tmp_path / "arch.json"
    ArchFile(arch, build_kwargs={"C": 4, "N": 1}, dataset="fashion_mnist").save(arch_json)
    out_dir = tmp_path / "trained"
    with caplog.at_level(logging.INFO, logger="nasforge.export"):
        code, out, err = run_cli(["train", str(arch_json), *TINY_TRAIN, "--data",
                                  str(fashion_mnist_dir), "--out", str(out_dir), "--json",
                                  "--no-pt2"],  # model.pt2: tests/train/test_deployable.py
                                 capsys)
    assert code == 0, err
    result = json.loads(out)
    assert any("epoch 1/1" in r.getMessage() for r in caplog.records)  # library logging
    metrics = result["metrics"]
    assert 0 <= metrics["test_accuracy"] <= 100 and metrics["epochs"] == 1
    saved = json.loads((out_dir / "metrics.json").read_text())
    assert saved["metrics"]["test_accuracy"] == metrics["test_accuracy"]
    assert len(saved["curve"]) == 1
    assert not (out_dir / "model.pt2").exists() and saved["pt2_skipped"] == "not requested"
    model, ckpt = load_checkpoint(out_dir / "model.pt")
    assert ckpt["arch"]["choices"] == dict(arch) and ckpt["arch"]["build"]["in_channels"] == 1
    assert load_arch_file(out_dir / "arch.json").arch == arch
    x = __import__("torch").randn(3, 1, 28, 28)
    assert model(x).shape == (3, 10)
    if result["onnx"] is None:
        assert "not installed" in result["onnx_skipped"]
    else:
        assert metrics["onnx_max_abs_diff"] < 1e-3


def test_onnx_file_runs_in_onnxruntime_with_the_same_outputs(tmp_path: Path) -> None:
    pytest.importorskip("onnx", reason="onnx not installed (pip install 'nasforge[export]')")
    ort = pytest.importorskip("onnxruntime",
                              reason="onnxruntime not installed (pip install 'nasforge[export]')")
    import numpy as np
    import torch

    from nasforge.export import export_onnx

    for name in ("nb201", "darts"):
        space = nasforge.create_space(name)
        torch.manual_seed(0)
        model = space.build(space.sample(0), num_classes=10, **space.small_build_kwargs).eval()
        x = space.example_input(batch=2)
        check = export_onnx(model, x, tmp_path / f"{name}.onnx")
        assert check["onnx_max_abs_diff"] < 1e-4
        # A different batch size works too (dynamic batch axis) and matches PyTorch.
        session = ort.InferenceSession(str(tmp_path / f"{name}.onnx"),
                                       providers=["CPUExecutionProvider"])
        x5 = space.example_input(batch=5, seed=1)
        got = session.run(None, {"input": x5.numpy()})[0]
        with torch.no_grad():
            want = model(x5)
        want = want[0] if isinstance(want, tuple) else want
        assert np.abs(got - want.numpy()).max() < 1e-4


@pytest.mark.slow
def test_new_user_flow_search_report_export_train(
    fashion_mnist_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The README's path: init -> search -> report -> export -> train, all through the CLI."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NASFORGE_DATA", str(fashion_mnist_dir))
    assert run_cli(["init", "search.yaml", "--quiet"], capsys)[0] == 0
    code, out, err = run_cli(["search", "--config", "search.yaml", "--budget-trials", "2",
                                *TINY_EVAL], capsys)
    assert code == 0, err
    assert "best architecture" in out and "2 trials" in out  # the summary is the result: stdout
    db = Path("runs/search.db")
    assert db.is_file()
    assert run_cli(["report", str(db), "-o", "report.html", "--quiet"], capsys)[0] == 0
    assert Path("report_files/best_so_far.png").is_file()
    assert run_cli(["export", str(db), "--top", "1", "-o", "best", "--quiet"], capsys)[0] == 0
    code, _, err = run_cli(["train", "best/rank1.json", *TINY_TRAIN], capsys)
    assert code == 0, err
    assert "test_accuracy=" in err
    trained = Path("best/rank1-trained")
    assert (trained / "model.pt").is_file() and (trained / "metrics.json").is_file()
    model, ckpt = load_checkpoint(trained / "model.pt")
    assert ckpt["arch"]["build"]["kwargs"] == {"C": 4, "N": 1}  # the searched network size
    ns = runpy.run_path("best/rank1.py")
    assert type(ns["model"]) is type(model)


def test_retrain_is_repeatable_with_the_same_seed(fashion_mnist_dir: Path, tmp_path: Path
                                                  ) -> None:
    import torch

    from nasforge.export import retrain

    space = nasforge.create_space("nb201")
    af = ArchFile(space.sample(5), build_kwargs={"C": 4, "N": 1}, dataset="fashion_mnist")
    runs = [retrain(af, tmp_path / f"run{i}", epochs=1, data_dir=str(fashion_mnist_dir),
                    train_subset=128, val_size=64, test_subset=128, onnx=False, program=False,
                    train_options={"batch_size": 32})
            for i in range(2)]
    assert runs[0].metrics["test_accuracy"] == runs[1].metrics["test_accuracy"]
    assert runs[0].curve[0]["train_loss"] == runs[1].curve[0]["train_loss"]
    states = [torch.load(r.checkpoint, weights_only=True)["state_dict"] for r in runs]
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert runs[0].onnx is None and runs[0].onnx_skipped == "not requested"
