"""Detection after the search: the final stage (mAP), export, retraining and ONNX of a detector."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import nasforge
from nasforge.cli.main import main
from nasforge.errors import ConfigError, NasforgeError
from nasforge.experiment.selection import FinalStage, run_final_stage
from nasforge.spaces.detection import DetectionNetwork, DetectionSpace
from nasforge.train.detection import DecodedDetector


def _coco_dir(root: Path, n: int = 10, side: int = 32) -> Path:
    """``n`` gray images, each with one bright square (class 1) or bar (class 2) and its box."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    images, annotations = [], []
    for i in range(n):
        pixels = rng.integers(0, 40, (side, side, 3), dtype=np.uint8)
        w, h = (12, 12) if i % 2 else (16, 6)
        x, y = int(rng.integers(0, side - w)), int(rng.integers(0, side - h))
        pixels[y:y + h, x:x + w] = 220
        Image.fromarray(pixels).save(root / "images" / f"{i}.png")
        images.append({"id": i, "file_name": f"{i}.png", "width": side, "height": side})
        annotations.append({"id": i + 1, "image_id": i, "category_id": 1 + i % 2, "bbox": [x, y, w, h]})
    (root / "annotations.json").write_text(json.dumps(
        {"images": images, "annotations": annotations, "categories": [{"id": 1}, {"id": 2}]}))
    return root


def _space() -> DetectionSpace:
    space = nasforge.create_space("detection", anchor_scales=[16, 32], min_layers=4, max_layers=5, filters=[8, 16],
                                  fpn_channels=[8], head_convs=[1, 2])
    assert isinstance(space, DetectionSpace)
    return space


def _evaluator(data: Path) -> nasforge.Evaluator:
    return nasforge.create_evaluator("detection", data=str(data), canvas=32, epochs=1, batch_size=4)


def test_file_sets_hold_out_a_test_split_and_final_evaluate_tests_on_it(tmp_path: Path) -> None:
    space = _space()
    ev = _evaluator(_coco_dir(tmp_path)).bind(space)
    splits = ev.splits()  # type: ignore[attr-defined]
    assert (len(splits.train), len(splits.val), len(splits.test)) == (7, 2, 1)
    result = ev.final_evaluate(space.from_string("VGG_RETINANET"), seed=0, fidelity=1)
    assert result.status.value == "ok", result.error
    assert 0.0 <= result.metrics["test_map"] <= 100.0 and "test_map_50" in result.metrics
    assert result.info["train_images"] == 9 and result.info["test_images"] == 1  # train + val
    again = ev.final_evaluate(space.from_string("VGG_RETINANET"), seed=0, fidelity=1)
    assert again.metrics == result.metrics  # same seed, same result
    assert ev.supports_final and ev.final_metric == "test_map"


def test_two_images_have_no_test_split_and_the_final_stage_says_so(tmp_path: Path) -> None:
    space = _space()
    ev = _evaluator(_coco_dir(tmp_path, n=2)).bind(space)
    with pytest.raises(ConfigError, match="too few images for a test split"):
        ev.final_evaluate(space.reference_architecture(), seed=0, fidelity=1)


def test_final_stage_compares_the_pick_with_vgg_retinanet_on_test_map(tmp_path: Path) -> None:
    space = _space()
    exp = nasforge.Experiment(space, nasforge.create_strategy("random", space, seed=0),
                              _evaluator(_coco_dir(tmp_path / "data")), objectives=["map"],
                              budget=nasforge.Budget(max_trials=2), storage=str(tmp_path / "s.db"), seed=0)
    exp.run()
    settings = FinalStage(top_k=1, reeval_seeds=1, final_seeds=2, baseline="VGG_RETINANET")
    settings.check(space, exp.evaluator)  # a detection search may ask for the final stage
    summary = run_final_stage(exp, settings)
    assert summary["settings"]["test_metric"] == "test_map"
    chosen, baseline = summary["final"]["chosen"], summary["final"]["baseline"]
    assert baseline["arch"] == space.to_string(space.reference_architecture())
    assert chosen["n"] == 2 and all(0.0 <= v <= 100.0 for v in chosen["values"] + baseline["values"])
    assert summary["verdict"]["outcome"] in {"better", "worse", "inconclusive", "same", "no-spread"}
    assert baseline["profile"]["params"] > 0 and chosen["train_images"] == 9


def test_export_retrain_and_onnx_of_a_detector(tmp_path: Path) -> None:
    space = _space()
    data = _coco_dir(tmp_path / "data")
    db = tmp_path / "s.db"
    # From the command line, so the space's options are stored with the search (export rebuilds it).
    options = {**space.options(), "ops": list(space.ops)}
    assert main(["search", "--space", "detection", *[a for k, v in options.items()
                                                      for a in ("--space-option", f"{k}={json.dumps(v)}")],
                 "--evaluator", "detection", "--evaluator-option", f"data={data}", "--evaluator-option", "canvas=32",
                 "--evaluator-option", "epochs=1", "--evaluator-option", "batch_size=4", "--objective", "map",
                 "--budget-trials", "1", "--storage", str(db), "--quiet"]) == 0
    from nasforge.export import export_architectures, load_checkpoint, retrain

    exported = export_architectures(db, tmp_path / "export", top=1)
    af = exported[0].arch
    assert af.training["task"] == "detection" and af.training["canvas"] == 32 and "epochs" not in af.training
    assert (af.num_classes, af.in_channels, af.build_kwargs) == (2, 3, {"width_mult": 0.25})
    with pytest.raises(ConfigError, match="do not apply to a detection architecture"):
        retrain(af, tmp_path / "bad", epochs=1, test_subset=5)
    result = retrain(exported[0].json_path, tmp_path / "trained", epochs=1, onnx=False)
    assert 0.0 <= result.metrics["test_map"] <= 100.0 and result.metrics["test_images"] == 1
    model, ckpt = load_checkpoint(result.checkpoint)
    assert isinstance(model, DetectionNetwork) and ckpt["task"] == "detection"
    images = torch.rand(2, 3, 32, 32)
    boxes, scores = DecodedDetector(model)(images)
    assert boxes.shape[:2] == scores.shape[:2] and scores.shape[-1] == 2
    assert (boxes >= 0).all() and (boxes <= 32).all() and ((scores >= 0) & (scores <= 1)).all()


def test_decoded_outputs_match_detect_before_nms() -> None:
    space = _space()
    torch.manual_seed(0)
    model = space.build(space.sample(3), num_classes=3, in_channels=1, width_mult=0.5).eval()
    images = torch.rand(1, 1, 32, 32)
    boxes, scores = model.decoded(images)
    top = scores[0].flatten().argmax()
    anchor, label = int(top) // 3, int(top) % 3
    found = model.detect(images, score_threshold=0.0, max_detections=1)[0]
    assert int(found["labels"][0]) == label
    assert torch.allclose(found["boxes"][0], boxes[0, anchor], atol=1e-4)
    assert torch.isclose(found["scores"][0], scores[0, anchor, label])


def test_onnx_export_of_a_detector_outputs_decoded_boxes_and_scores(tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from nasforge.train.retraining import export_onnx

    space = _space()
    torch.manual_seed(0)
    model = space.build(space.reference_architecture(), num_classes=2, in_channels=3, width_mult=0.5)
    example = torch.rand(2, 3, 32, 32)
    diff = export_onnx(DecodedDetector(model), example, tmp_path / "d.onnx", output_names=("boxes", "scores"))
    assert diff["onnx_max_abs_diff"] < 1e-3
    session = ort.InferenceSession(str(tmp_path / "d.onnx"), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["boxes", "scores"]
    boxes, scores = session.run(None, {"input": np.random.default_rng(0).random((3, 3, 32, 32), dtype=np.float32)})
    assert boxes.shape[0] == scores.shape[0] == 3 and scores.shape[2] == 2  # dynamic batch


@pytest.mark.slow
def test_cli_detection_search_final_stage_export_and_train(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """search --final, export, train (with ONNX) on composed Fashion-MNIST scenes, in well under a minute."""
    try:
        nasforge.create_evaluator("detection", train_images=1, val_images=1, test_images=1).splits()
    except NasforgeError as exc:
        pytest.skip(f"Fashion-MNIST files not found: {exc}")
    db = tmp_path / "det.db"
    tiny = ["train_images=24", "val_images=8", "test_images=8", "canvas=64", "epochs=1", "batch_size=8"]
    args = ["search", "--preset", "object_detection", "--space-option", "anchor_scales=[16, 32, 64]",
            "--space-option", "filters=[16, 32]", "--space-option", "min_layers=5", "--space-option", "max_layers=5",
            "--space-option", "head_convs=[1]", "--space-option", "fpn_channels=[32]",
            "--evaluator", "detection", *[a for o in tiny for a in ("--evaluator-option", o)],
            "--objective", "map", "--strategy", "rea", "--storage", str(db), "--budget-trials", "2",
            "--final", "--top-k", "1", "--reeval-seeds", "1", "--final-seeds", "2", "--json", "-"]
    assert main(args) == 0
    stage = json.loads(capsys.readouterr().out)["final_stage"]
    assert stage["settings"]["test_metric"] == "test_map" and stage["final"]["baseline"]["n"] == 2
    assert main(["export", str(db), "--out", str(tmp_path / "export"), "--top", "1"]) == 0
    capsys.readouterr()
    out = tmp_path / "trained"
    assert main(["train", str(tmp_path / "export" / "rank1.json"), "--epochs", "1", "--out", str(out),
                 "--json", "-"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert 0.0 <= result["metrics"]["test_map"] <= 100.0
    if result["onnx"] is not None:  # onnx and onnxruntime installed
        import onnx

        props = {p.key: p.value for p in onnx.load(result["onnx"]).metadata_props}
        assert json.loads(props["task"]) == "detection" and "boxes" in json.loads(props["outputs"])
        assert json.loads(props["input_shape"]) == [1, 64, 64]
