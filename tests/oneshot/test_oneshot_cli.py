"""``nasforge oneshot`` end to end on (a little) Fashion-MNIST."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from oneshot_helpers import one_thread

from nasforge.cli.main import main

__all__ = ["one_thread"]

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
    assert main(["oneshot", *args]) == 0
    assert "chosen architecture" in capsys.readouterr().err
    # A wrong table path fails before any training.
    assert main(["oneshot", *args, "--nb201", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "NAS-Bench-201 data not found" in err and "epoch 1/1" not in err


def test_bad_flags_give_one_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["oneshot", "--method", "ofa", "--space", "nb201"]) == 2
    assert "trains the elastic space" in capsys.readouterr().err
    assert main(["oneshot", "--method", "darts", "--resume"]) == 2
    assert "--resume needs --checkpoint" in capsys.readouterr().err
    assert main(["oneshot", "--method", "darts", "--epochs", "0"]) == 2
    assert "--epochs must be a positive integer" in capsys.readouterr().err
    assert main(["oneshot", "--method", "darts", "--search-trials", "3"]) == 2
    assert "spos and ofa only" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["oneshot", "--help"])
    assert "--method" in capsys.readouterr().out
