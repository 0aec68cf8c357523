"""Hostile paths and broken files on the command line: one clear line naming the file and the cause,
never a traceback, and storage paths that are plain file names."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nasforge.cli.main import main
from nasforge.data.idx import write_idx


def _search(nb201_dir: Path, storage: Path | str, *extra: str) -> int:
    return main(["search", "--space", "nb201", "--strategy", "random", "--evaluator", "nb201",
                 "--data", str(nb201_dir), "--budget-trials", "3", "--storage", str(storage),
                 "--quiet", *extra])


@pytest.mark.parametrize("name", ["exp#1.db", "run?cache=shared&mode=memory"])
def test_uri_characters_in_storage_names(name: str, nb201_dir: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert _search(nb201_dir, name, "--durability", "full") == 0
    assert Path(name).is_file()  # the file of that name, not 'exp' nor memory
    capsys.readouterr()
    assert main(["show", name, "--json"]) == 0  # the closing hint's command works
    assert len(json.loads(capsys.readouterr().out)["trials"]) == 3


def test_unwritable_places_name_the_file_and_cause(nb201_dir: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    assert _search(nb201_dir, blocker / "exp.db") == 2
    err = capsys.readouterr().err
    assert err.startswith("nasforge: error: cannot create the storage directory") and "not-a-dir" in err
    db = tmp_path / "ok.db"
    assert _search(nb201_dir, db, "--json", "/dev/full") == 2
    assert "cannot write '/dev/full': No space left on device" in capsys.readouterr().err
    assert main(["report", str(db), "-o", str(blocker / "r.html")]) == 2
    err = capsys.readouterr().err
    assert "cannot create the report directory" in err and "Traceback" not in err
    assert main(["export", str(db), "-o", str(blocker / "out")]) == 2
    err = capsys.readouterr().err
    assert "not-a-dir" in err and "Traceback" not in err


def tiny_fashion_mnist(data: Path) -> Path:
    """A few random images in the Fashion-MNIST file layout."""
    data.mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", 64), ("t10k", 16)):
        write_idx(data / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 255, (n, 28, 28)))
        write_idx(data / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 10, n))
    return data


def test_bad_build_options_stop_the_search_before_any_trial(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tiny_fashion_mnist(tmp_path / "fm")
    db = tmp_path / "b.db"
    args = ["search", "--evaluator", "train", "--dataset", "fashion_mnist", "--data", str(data),
            "--budget-trials", "2", "--storage", str(db), "--quiet"]
    assert main([*args, "--evaluator-option", "build_kwargs={C: eight}"]) == 2
    assert "build_kwargs.C must be an integer; got 'eight'" in capsys.readouterr().err
    assert main([*args, "--evaluator-option", "build_kwargs={C: -3}"]) == 2
    assert "C must be a positive integer, got -3" in capsys.readouterr().err
    assert not db.exists()  # refused before the storage was touched


def test_truncated_dataset_is_named_even_when_quiet(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    data = tiny_fashion_mnist(tmp_path / "fm")
    images = data / "train-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes()[:200])  # an interrupted download
    code = main(["search", "--evaluator", "train", "--dataset", "fashion_mnist", "--data", str(data),
                 "--budget-trials", "1", "--storage", str(tmp_path / "t.db"), "--quiet",
                 "--evaluator-option", "epochs=1", "--evaluator-option", "lr=1e-3"])
    err = capsys.readouterr().err
    assert code != 0
    assert "cannot read the dataset file" in err and str(images) in err
    assert "ends too early" in err
