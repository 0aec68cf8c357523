"""``nasforge oneshot`` end to end on (a little) Fashion-MNIST."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import nasforge
from nasforge.cli.main import main
from nasforge.evaluators.weight_sharing import WeightSharingEvaluator
from nasforge.oneshot.checkpoint import load_checkpoint

TINY = ["--subset", "128", "--batch-size", "32", "--epochs", "1", "--C", "4", "--device", "cpu"]


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> dict:  # type: ignore[type-arg]
    code = main(["oneshot", *args, "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out)  # type: ignore[no-any-return]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["darts", "gdas", "spos"])
def test_methods_end_to_end_with_the_nb201_lookup(
    method: str, fashion_mnist_dir: Path, nb201_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = ["--search-trials", "3"] if method == "spos" else []
    out = _run(capsys, "--method", method, "--data", str(fashion_mnist_dir), "--nb201",
               str(nb201_dir), *TINY, *extra)
    assert out["method"] == method and out["space"] == "nb201" and out["steps"] == 2
    assert out["arch_string"].count("~") == 6
    assert out["build"] == {"C": 4, "N": 1, "in_channels": 1, "num_classes": 10}
    rec = out["nb201"]
    assert rec["table"] == str(nb201_dir) and 0 <= rec["index"] < 15625
    assert 10.0 <= rec["cifar10_test_acc_200"] <= 94.38
    if method == "spos":
        assert out["info"]["search_trials"] == 3


@pytest.mark.slow
def test_resume_and_human_output(fashion_mnist_dir: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = tmp_path / "g.pt"
    args = ["--method", "gdas", "--data", str(fashion_mnist_dir), *TINY, "--checkpoint", str(ckpt)]
    first = _run(capsys, *args)
    assert ckpt.is_file()
    # Resuming a finished run trains nothing more and gives the same answer.
    again = _run(capsys, *args, "--resume")
    assert again["arch_string"] == first["arch_string"] and again["history"] == first["history"]
    # Without --resume or --overwrite the finished checkpoint is refused, untouched.
    before = ckpt.read_bytes()
    assert main(["oneshot", *args]) == 2
    assert "already exists; add --resume" in capsys.readouterr().err
    assert ckpt.read_bytes() == before
    assert main(["oneshot", *args, "--overwrite"]) == 0
    assert "chosen architecture" in capsys.readouterr().err
    # A wrong table path fails before any training.
    assert main(["oneshot", *args, "--resume", "--nb201", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "NAS-Bench-201 data not found" in err and "epoch 1/1" not in err


@pytest.mark.slow
@pytest.mark.parametrize(("method", "space"), [("darts", "nb201"), ("enas", "nb201"), ("spos", "nb201"),
                                               ("ofa", "elastic")])
def test_ranking_of_many_architectures_from_the_trained_supernet(
    method: str, space: str, fashion_mnist_dir: Path, nb201_dir: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ckpt, ranking_file = tmp_path / "run.pt", tmp_path / "top.json"
    tiny = [a for a in TINY if space == "nb201" or a not in ("--C", "4")]
    extra = ["--search-trials", "2"] if method in ("spos", "ofa") else []
    extra += ["--option", "controller_steps=2"] if method == "enas" else []
    out = _run(capsys, "--method", method, "--space", space, "--data", str(fashion_mnist_dir),
               "--nb201", str(nb201_dir), *tiny, *extra, "--checkpoint", str(ckpt),
               "--rank", "5", "--top-k", "3", "--rank-out", str(ranking_file))
    saved = json.loads(ranking_file.read_text())
    assert saved["method"] == method and saved["ranking"] == out["ranking"]["ranking"]
    assert saved["scored"] == 5 and saved["top_k"] == 3 and 1 <= saved["chosen_rank"] <= 5
    records = saved["ranking"]
    assert [r["rank"] for r in records] == [1, 2, 3]
    accuracies = [r["inherited_accuracy"] for r in records]
    assert accuracies == sorted(accuracies, reverse=True)
    assert len({r["arch_string"] for r in records}) == 3
    if space == "nb201":
        assert all(10.0 <= r["nb201_cifar10_test_acc_200"] <= 94.38 for r in records)
    else:
        assert saved["nb201_table"] is None and "nb201_cifar10_test_acc_200" not in records[0]
    # The scores are those of the trained supernet: the checkpoint's supernet agrees.
    evaluator = WeightSharingEvaluator(checkpoint=ckpt, device="cpu")
    built = nasforge.create_space(space)
    evaluator.bind(built)
    best = built.from_string(records[0]["arch_string"])
    assert evaluator.evaluate(best).metrics["accuracy"] == pytest.approx(accuracies[0], abs=1e-9)


@pytest.mark.slow
def test_space_options_reach_the_supernet_and_the_checkpoint(
    fashion_mnist_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = tmp_path / "d.pt"
    args = ["--method", "darts", "--space", "darts", "--data", str(fashion_mnist_dir), "--subset", "64",
            "--batch-size", "32", "--epochs", "1", "--C", "4", "--cells", "3", "--device", "cpu",
            "--checkpoint", str(ckpt)]
    out = _run(capsys, *args, "--space-option", "ops=[sep_conv_3x3, skip_connect]")
    assert out["space_options"] == {"ops": ["sep_conv_3x3", "skip_connect"]}
    default = nasforge.create_space("darts")
    genotype = default.genotype(default.from_string(out["arch_string"]))  # type: ignore[attr-defined]
    assert {op for op, _ in genotype.normal + genotype.reduce} <= {"sep_conv_3x3", "skip_connect"}
    assert load_checkpoint(ckpt)["supernet"]["space_options"]["ops"] == ["sep_conv_3x3", "skip_connect"]
    assert main(["oneshot", *args, "--resume", "--space-option", "ops=[sep_conv_3x3, max_pool_3x3]"]) == 2
    assert "space option ops: checkpoint ['sep_conv_3x3', 'skip_connect'] vs now" in capsys.readouterr().err


def test_bad_flags_give_one_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["oneshot", "--method", "ofa", "--space", "nb201"]) == 2
    assert "trains the elastic space" in capsys.readouterr().err
    assert main(["oneshot", "--method", "darts", "--resume"]) == 2
    assert "--resume needs --checkpoint" in capsys.readouterr().err
    assert main(["oneshot", "--method", "darts", "--epochs", "0"]) == 2
    assert "--epochs must be a positive integer" in capsys.readouterr().err
    assert main(["oneshot", "--method", "darts", "--search-trials", "3"]) == 2
    assert "spos and ofa only" in capsys.readouterr().err
    assert main(["oneshot", "--method", "darts", "--top-k", "3"]) == 2
    assert "--top-k and --rank-out need --rank N" in capsys.readouterr().err
    assert main(["oneshot", "--method", "darts", "--rank", "0"]) == 2
    assert "--rank must be a positive integer" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["oneshot", "--help"])
    assert "--method" in capsys.readouterr().out


def test_existing_checkpoint_needs_resume_or_overwrite(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """Refused before any data is read or training starts, and the file is left as it was."""
    ckpt = tmp_path / "done.pt"
    ckpt.write_bytes(b"hours of supernet training")
    args = ["oneshot", "--method", "darts", "--data", str(tmp_path / "nodata"), *TINY,
            "--checkpoint", str(ckpt)]
    assert main(args) == 2
    assert "already exists; add --resume to continue it or --overwrite" in capsys.readouterr().err
    assert main([*args, "--resume", "--overwrite"]) == 2
    assert "give one" in capsys.readouterr().err
    assert main(["oneshot", "--method", "darts", *TINY, "--overwrite"]) == 2
    assert "--overwrite needs --checkpoint" in capsys.readouterr().err
    assert ckpt.read_bytes() == b"hours of supernet training"


def test_pcdarts_end_to_end_exports_the_architecture_its_checkpoint_derives(
    fashion_mnist_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Tiny PC-DARTS run: one warm-up epoch (weights only), one search epoch, K=4 partial channels,
    three candidate ops (a conv, a pooling, skip) so that it stays fast."""
    import torch

    from nasforge.supernet.checkpoint import supernet_from_checkpoint

    ckpt, result_file = tmp_path / "pc.pt", tmp_path / "pc.json"
    code = main(["oneshot", "--method", "pcdarts", "--space", "darts", "--data", str(fashion_mnist_dir),
                 "--subset", "64", "--batch-size", "32", "--epochs", "2", "--C", "4", "--cells", "3",
                 "--space-option", "ops=[sep_conv_3x3, max_pool_3x3, skip_connect]",
                 "--device", "cpu", "--checkpoint", str(ckpt), "--json", str(result_file), "--quiet"])
    assert code == 0, capsys.readouterr().err
    out = json.loads(result_file.read_text())
    assert out["method"] == "pcdarts" and out["steps"] == 2
    assert out["build"] == {"C": 4, "layers": 3, "in_channels": 1, "num_classes": 10,
                            "partial_channels": 4, "edge_normalization": True}
    assert out["info"] == {"order": 1, "partial_channels": 4, "warmup_epochs": 1}
    # The exported architecture: its Genotype text and its JSON form are the same valid cell ...
    ops = ["sep_conv_3x3", "max_pool_3x3", "skip_connect"]
    space = nasforge.create_space("darts", ops=ops)
    arch = space.from_string(out["arch_string"])
    assert arch == nasforge.Architecture.from_dict(out["arch"])
    genotype = space.genotype(arch)  # type: ignore[attr-defined]
    assert len(genotype.normal) == len(genotype.reduce) == 8
    assert {op for op, _ in genotype.normal + genotype.reduce} <= set(ops)
    # ... whose edges were picked by edge weight (betas: one per node input, both cell types).
    assert {k.split("/")[0] for k in out["arch_weights"] if "/from" in k} == {"normal", "reduce"}
    # The stored result: the checkpoint holds the method, the partial-channel supernet and its
    # trained alphas and betas, from which the same architecture derives.
    state = load_checkpoint(ckpt)
    assert state["method"] == "pcdarts" and state["config"]["warmup_epochs"] is None
    assert state["supernet"]["kwargs"]["partial_channels"] == 4
    assert state["supernet"]["kwargs"]["edge_normalization"] is True
    assert state["supernet"]["space_options"]["ops"] == ops
    assert supernet_from_checkpoint(state).derive() == arch
    # ... and it builds a plain network for the dataset's images.
    model = space.build(arch, C=4, layers=3, in_channels=1, num_classes=10)
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.slow
def test_few_shot_and_zero_cost_assisted_ranking_from_the_command_line(
    fashion_mnist_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ranking_file = tmp_path / "top.json"
    out = _run(capsys, "--method", "spos", "--data", str(fashion_mnist_dir), *TINY, "--search-trials", "2",
               "--rank", "6", "--top-k", "6", "--rank-out", str(ranking_file), "--few-shot", "1",
               "--rank-proxy", "naswot", "--rank-proxy", "synflow")
    saved = json.loads(ranking_file.read_text())
    assert saved["ranking"] == out["ranking"]["ranking"]
    assert saved["few_shot"] == {"decision": "edge_1_0", "epochs": 1, "sub_supernets": [
        "none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]}
    assert saved["proxies"] == ["naswot", "synflow"] and saved["vote"] == "sum"
    records = saved["ranking"]
    assert [r["rank"] for r in records] == [1, 2, 3, 4, 5, 6]
    votes = [r["vote"] for r in records]
    assert votes == sorted(votes, reverse=True)
    assert all(set(r["proxies"]) == {"naswot", "synflow"} for r in records)


def test_ranking_flags_need_rank_and_known_proxies(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["oneshot", "--method", "spos", "--few-shot", "2"]) == 2
    assert "--few-shot: only with --rank N" in capsys.readouterr().err
    assert main(["oneshot", "--method", "spos", "--rank", "4", "--rank-vote", "majority"]) == 2
    assert "--rank-vote needs --rank-proxy" in capsys.readouterr().err
    assert main(["oneshot", "--method", "spos", "--rank", "4", "--few-shot-decision", "edge_1_0"]) == 2
    assert "--few-shot-decision needs --few-shot" in capsys.readouterr().err
    assert main(["oneshot", "--method", "spos", "--rank", "4", "--rank-proxy", "nosuch"]) == 2
    assert "nosuch" in capsys.readouterr().err
    assert main(["oneshot", "--method", "spos", "--rank", "4", "--few-shot", "0"]) == 2
    assert "--few-shot must be a positive integer" in capsys.readouterr().err
