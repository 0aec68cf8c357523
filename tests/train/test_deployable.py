"""Self-contained exports: model.pt / model.pt2 / model.onnx / rebuild script take [0, 1] pixels,
record their input and classes, and ``nasforge predict`` scores real Fashion-MNIST test images with
them; model.pt2 loads in a Python that cannot import nasforge."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import nasforge
from nasforge.cli.main import main
from nasforge.data.idx import read_idx
from nasforge.errors import ConfigError
from nasforge.export import ArchFile, build_script
from nasforge.train import Deployable, InputSpec, ModelCard
from nasforge.train.predict import load_deployed, read_inputs
from nasforge.train.program import CARD_FILE, export_program, load_program
from nasforge.train.retraining import load_checkpoint

NB201_CELL = ("|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+"
              "|skip_connect~0|avg_pool_3x3~1|nor_conv_3x3~2|")


def test_deployable_normalizes_and_adapts_inside() -> None:
    """Deployable(x) == network(normalize(pad(x))): the training input steps, in the model."""
    space = nasforge.create_space("nb201")
    torch.manual_seed(0)
    net = space.build(space.from_string(NB201_CELL), num_classes=10, in_channels=3, C=4,
                      N=1).eval()
    spec = InputSpec.for_dataset("fashion_mnist", image_size=32, channels=3)
    model = Deployable(net, spec).eval()
    x = torch.rand(3, 1, 28, 28)
    want = net((torch.nn.functional.pad(x, (2, 2, 2, 2)).expand(-1, 3, -1, -1) - 0.2860) / 0.3530)
    assert torch.allclose(model(x), want, atol=1e-5)
    assert spec.network_shape == (3, 32, 32)
    assert list(model.state_dict()) == [f"network.{k}" for k in net.state_dict()]  # stats: metadata
    assert InputSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_model_card_round_trips_and_names_classes() -> None:
    spec = InputSpec.for_dataset("fashion_mnist")
    card = ModelCard.for_dataset(spec, "fashion_mnist", metrics={"test_accuracy": 80.0})
    assert card.class_name(9) == "Ankle boot" and card.class_name(12) == "12"
    meta = card.to_metadata()
    assert json.loads(meta["input_shape"]) == [1, 28, 28]
    assert json.loads(meta["normalization"]) == {"mean": [0.286], "std": [0.353]}
    assert ModelCard.from_metadata(meta) == card
    assert ModelCard.from_dict(card.to_dict()) == card
    with pytest.raises(ConfigError, match="no nasforge metadata"):
        ModelCard.from_metadata({"producer": "x"})
    assert len(nasforge.data.dataset_info("cifar100").classes or ()) == 100


def test_read_inputs_accepts_the_usual_layouts(tmp_path: Path) -> None:
    spec = InputSpec.for_dataset("fashion_mnist")
    images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    np.save(tmp_path / "a.npy", images)
    np.save(tmp_path / "b.npy", images[:, :, :, None].astype(np.float32) / 255)  # NHWC floats
    batch, names = read_inputs([tmp_path / "a.npy", tmp_path / "b.npy"], spec)
    assert batch.shape == (4, 1, 28, 28) and batch.dtype == np.float32
    assert np.allclose(batch[:2], batch[2:]) and batch.max() <= 1.0
    assert names[3] == f"{tmp_path / 'b.npy'}[1]"
    np.save(tmp_path / "c.npy", images.astype(np.float32))  # 0-255 floats: refused
    with pytest.raises(ConfigError, match="scaled to"):
        read_inputs([tmp_path / "c.npy"], spec)
    np.save(tmp_path / "d.npy", np.zeros((2, 32, 32), np.uint8))
    with pytest.raises(ConfigError, match=r"\[1, 28, 28\]"):
        read_inputs([tmp_path / "d.npy"], spec)
    with pytest.raises(ConfigError, match="allowed inputs"):
        read_inputs([tmp_path / "a.npy", __file__], spec)
    pil = pytest.importorskip("PIL.Image", reason="Pillow not installed")
    pil.fromarray(np.full((56, 40, 3), 255, np.uint8)).save(tmp_path / "white.png")
    batch, _ = read_inputs([tmp_path / "white.png"], spec)  # RGB 40x56 -> gray 28x28
    assert batch.shape == (1, 1, 28, 28) and np.allclose(batch, 1.0)


def test_rebuild_script_takes_pixels(tmp_path: Path) -> None:
    space = nasforge.create_space("nb201")
    af = ArchFile(space.from_string(NB201_CELL), in_channels=1, build_kwargs={"C": 4, "N": 1},
                  dataset="fashion_mnist")
    script = tmp_path / "rank1.py"
    script.write_text(build_script(af, "test"))
    ns: dict[str, object] = {}
    exec(compile(script.read_text(), str(script), "exec"), ns)  # our own generated script
    model = ns["model"]
    assert isinstance(model, Deployable) and model.spec.mean == (0.2860,)
    assert model.eval()(torch.rand(2, 1, 28, 28)).shape == (2, 10)


#: Runs in a fresh interpreter in which importing nasforge fails: what a deployment target has.
WITHOUT_NASFORGE = """
import importlib.abc, json, sys
import numpy as np, torch

class NoNasforge(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "nasforge":
            raise ImportError("nasforge is not installed here")
        return None

sys.meta_path.insert(0, NoNasforge())
model_path, inputs, out = sys.argv[1:]
card = {"nasforge/card.json": ""}
model = torch.export.load(model_path, extra_files=card).module()
with torch.no_grad():
    np.save(out, model(torch.from_numpy(np.load(inputs))).numpy())
print(json.loads(card["nasforge/card.json"])["class_names"][0])
"""


@pytest.mark.slow
def test_pt2_loads_and_runs_without_nasforge(tmp_path: Path) -> None:
    """model.pt2 (torch.export) holds the whole graph, normalization included: plain PyTorch in a
    process that cannot import nasforge gives the same logits for any batch size."""
    space = nasforge.create_space("nb201")
    torch.manual_seed(0)
    network = space.build(space.from_string(NB201_CELL), C=4, N=1, num_classes=10, in_channels=1)
    model = Deployable(network, InputSpec.for_dataset("fashion_mnist")).eval()
    card = ModelCard.for_dataset(model.spec, "fashion_mnist", metrics={"test_accuracy": 12.5})
    assert CARD_FILE == "nasforge/card.json"  # the name the snippet above and the docs use
    checked = export_program(model, torch.rand(8, 1, 28, 28), tmp_path / "model.pt2",
                             card=card.to_dict())
    assert checked["pt2_max_abs_diff"] < 1e-4
    pixels = torch.rand(5, 1, 28, 28)  # another batch size than the export's example
    np.save(tmp_path / "x.npy", pixels.numpy())
    script = tmp_path / "plain_torch.py"
    script.write_text(WITHOUT_NASFORGE)
    run = subprocess.run([sys.executable, str(script), str(tmp_path / "model.pt2"),
                          str(tmp_path / "x.npy"), str(tmp_path / "y.npy")],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == card.class_names[0]  # type: ignore[index]
    with torch.no_grad():
        want = model(pixels).numpy()
    assert np.abs(np.load(tmp_path / "y.npy") - want).max() < 1e-4
    loaded, stored = load_program(tmp_path / "model.pt2")
    assert ModelCard.from_dict(stored) == card
    with torch.no_grad():
        assert torch.allclose(loaded(pixels), torch.from_numpy(want), atol=1e-5)
    assert load_deployed(tmp_path / "model.pt2").backend == "torch.export"


def test_load_program_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_program(tmp_path / "none.pt2")
    (tmp_path / "bad.pt2").write_bytes(b"not a zip")
    with pytest.raises(ConfigError, match=r"is not a torch\.export program"):
        load_program(tmp_path / "bad.pt2")
    with pytest.raises(ConfigError, match=r"example batch .* is empty"):
        export_program(torch.nn.Identity(), torch.zeros(0, 1, 28, 28), tmp_path / "e.pt2")


@pytest.mark.slow
def test_exported_model_classifies_real_test_images(
    fashion_mnist_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """A briefly trained model, exported, scores far above chance on [0, 1] test images through
    onnxruntime and model.pt alike, and `nasforge predict` prints class names."""
    pytest.importorskip("onnx", reason="onnx not installed (pip install 'nasforge[export]')")
    pytest.importorskip("onnxruntime",
                        reason="onnxruntime not installed (pip install 'nasforge[export]')")
    space = nasforge.create_space("nb201")
    arch_json = tmp_path / "arch.json"
    ArchFile(space.from_string(NB201_CELL), in_channels=1, build_kwargs={"C": 4, "N": 1},
             dataset="fashion_mnist").save(arch_json)
    out = tmp_path / "trained"
    code = main(["train", str(arch_json), "--epochs", "3", "--train-subset", "1000",
                 "--val-size", "100", "--test-subset", "100", "--data", str(fashion_mnist_dir),
                 "--train-option", "batch_size=32", "-o", str(out), "--quiet"])
    assert code == 0
    images = fashion_mnist_dir / "t10k-images-idx3-ubyte.gz"
    labels = read_idx(fashion_mnist_dir / "t10k-labels-idx1-ubyte.gz")[:500]
    pixels = read_idx(images)[:500].astype(np.float32)[:, None] / 255  # what users have
    onnx_model, pt_model = load_deployed(out / "model.onnx"), load_deployed(out / "model.pt")
    assert onnx_model.card.class_names is not None and onnx_model.card.dataset == "fashion_mnist"
    assert onnx_model.card.metrics["test_accuracy"] > 0
    onnx_logits, pt_logits = onnx_model.logits(pixels), pt_model.logits(pixels)
    assert np.abs(onnx_logits - pt_logits).max() < 1e-3
    program = load_deployed(out / "model.pt2")  # the torch.export program beside them
    assert program.card == pt_model.card and program.backend == "torch.export"
    assert np.abs(program.logits(pixels) - pt_logits).max() < 1e-4
    assert json.loads((out / "metrics.json").read_text())["pt2"] == str(out / "model.pt2")
    accuracy = float((onnx_logits.argmax(1) == labels).mean() * 100)
    assert accuracy > 50, accuracy  # chance is 10%
    # Without its normalization the same network sees the wrong input: the wrapper matters.
    bare, _ = load_checkpoint(out / "model.pt")
    with torch.no_grad():
        bare_logits = bare.network(torch.from_numpy(pixels)).numpy()
    assert np.abs(bare_logits - pt_logits).max() > 1e-2
    capsys.readouterr()
    code = main(["predict", str(out / "model.onnx"), str(images), "--limit", "500", "--labels",
                 str(fashion_mnist_dir / "t10k-labels-idx1-ubyte.gz"), "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["backend"] == "onnxruntime"
    assert result["accuracy"] == pytest.approx(accuracy)
    assert {p["name"] for p in result["predictions"]} <= set(onnx_model.card.class_names)
    code = main(["predict", str(out / "model.pt"), str(images), "--limit", "3"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0 and len(lines) == 3 and lines[0].split("\t")[1] in onnx_model.card.class_names
    code = main(["predict", str(out / "model.pt2"), str(images), "--limit", "3"])
    assert code == 0 and capsys.readouterr().out.splitlines() == lines


def test_predict_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["predict", str(tmp_path / "none.onnx"), "x.png"]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "m.h5").write_text("x")
    assert main(["predict", str(tmp_path / "m.h5"), "x.png"]) == 2
    assert "allowed: a .onnx, .pt2 or .pt" in capsys.readouterr().err
