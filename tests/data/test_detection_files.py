"""COCO and Pascal VOC detection directories: read with scaled boxes, refused with clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import nasforge
from nasforge.data.detection_files import load_coco, load_detection_files, load_voc
from nasforge.errors import ConfigError, DataNotFoundError


def _image(path: Path, w: int, h: int, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)


def _coco(root: Path, annotations: list[dict[str, object]] | None = None) -> Path:
    _image(root / "images" / "a.png", 64, 32, 0)
    _image(root / "images" / "b.png", 40, 40, 1)
    data = {
        "images": [{"id": 1, "file_name": "a.png", "width": 64, "height": 32},
                   {"id": 7, "file_name": "b.png", "width": 40, "height": 40}],
        "annotations": annotations if annotations is not None else [
            {"id": 1, "image_id": 1, "category_id": 5, "bbox": [8, 4, 16, 8]},
            {"id": 2, "image_id": 7, "category_id": 3, "bbox": [0, 0, 40, 20]},
            {"id": 3, "image_id": 7, "category_id": 5, "bbox": [1, 1, 2, 2], "iscrowd": 1},
        ],
        "categories": [{"id": 5, "name": "shoe"}, {"id": 3, "name": "bag"}],
    }
    path = root / "annotations.json"
    path.write_text(json.dumps(data))
    return path


def test_coco_directories_are_read_with_scaled_boxes(tmp_path: Path) -> None:
    _coco(tmp_path)
    ds = load_detection_files(tmp_path, image_size=16)
    assert ds.images.shape == (2, 3, 16, 16) and ds.images.dtype == torch.uint8
    assert ds.class_names == ("bag", "shoe") and ds.num_classes == 2  # sorted category ids 3, 5
    assert ds.boxes[0].tolist() == [[2.0, 2.0, 6.0, 6.0]] and ds.labels[0].tolist() == [1]
    assert ds.boxes[1].tolist() == [[0.0, 0.0, 16.0, 8.0]] and ds.labels[1].tolist() == [0]  # crowd skipped


@pytest.mark.parametrize(("annotations", "match"), [
    ([{"image_id": 9, "category_id": 5, "bbox": [0, 0, 4, 4]}], "image_id 9 is not among the images"),
    ([{"image_id": 1, "category_id": 4, "bbox": [0, 0, 4, 4]}], "category_id 4 is not among the categories"),
    ([{"image_id": 1, "category_id": 5, "bbox": [0, 0, 0, 4]}], "empty box"),
    ([{"image_id": 1, "category_id": 5, "bbox": [60, 0, 10, 4]}], "leaves the 64x32 image"),
    ([{"image_id": 1, "category_id": 5}], r"annotations\[0\]: needs image_id, category_id and bbox"),
])
def test_bad_coco_annotations_name_the_entry(tmp_path: Path, annotations: list[dict[str, object]],
                                            match: str) -> None:
    path = _coco(tmp_path, annotations)
    with pytest.raises(ConfigError, match=match):
        load_coco(path)


def test_coco_file_errors(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="does not exist"):
        load_coco(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_coco(bad)
    bad.write_text(json.dumps({"images": []}))
    with pytest.raises(ConfigError, match="lists 'images', 'annotations' and 'categories'"):
        load_coco(bad)
    path = _coco(tmp_path / "c")
    (tmp_path / "c" / "images" / "b.png").unlink()
    with pytest.raises(DataNotFoundError, match=r"b\.png"):
        load_coco(path)
    with pytest.raises(DataNotFoundError, match="neither a COCO annotations file"):
        load_detection_files(tmp_path / "empty")


def _voc(root: Path, objects: str) -> None:
    _image(root / "JPEGImages" / "x.jpg", 50, 20, 2)
    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    (root / "Annotations" / "x.xml").write_text(
        f"<annotation><filename>x.jpg</filename><size><width>50</width><height>20</height></size>"
        f"{objects}</annotation>")


def test_voc_directories(tmp_path: Path) -> None:
    box = "<bndbox><xmin>{}</xmin><ymin>{}</ymin><xmax>{}</xmax><ymax>{}</ymax></bndbox>"
    _voc(tmp_path, f"<object><name>dog</name>{box.format(1, 1, 25, 10)}</object>"
                   f"<object><name>cat</name>{box.format(26, 11, 50, 20)}</object>")
    ds = load_detection_files(tmp_path, image_size=10)
    assert ds.class_names == ("cat", "dog")
    assert ds.boxes[0].tolist() == [[0.0, 0.0, 5.0, 5.0], [5.0, 5.0, 10.0, 10.0]]
    assert ds.labels[0].tolist() == [1, 0]
    with pytest.raises(ConfigError, match=r"class\(es\) \['cat'\] are not among classes \['dog'\]"):
        load_voc(tmp_path, classes=["dog"])
    _voc(tmp_path / "bad", f"<object><name>dog</name>{box.format('a', 1, 25, 10)}</object>")
    with pytest.raises(ConfigError, match="<xmin> is not a number"):
        load_voc(tmp_path / "bad")
    (tmp_path / "bad" / "Annotations" / "x.xml").write_text("<annotation>")
    with pytest.raises(ConfigError, match="not valid XML"):
        load_voc(tmp_path / "bad")
    with pytest.raises(DataNotFoundError, match="needs Annotations/ and JPEGImages/"):
        load_voc(tmp_path / "nothing")


def test_the_evaluator_trains_on_a_coco_directory(tmp_path: Path) -> None:
    from nasforge.evaluators.base import EvalContext

    _coco(tmp_path)
    space = nasforge.create_space("detection", anchor_scales=[16, 32], min_layers=4, max_layers=4,
                                  filters=[8], fpn_channels=[8], head_convs=[1])
    ev = nasforge.create_evaluator("detection", data=str(tmp_path), canvas=32, epochs=1,
                                   batch_size=2).bind(space)
    train, val = ev.data()
    assert len(train) == 1 and len(val) == 1 and train.images.shape[1] == 3
    result = ev.evaluate(space.sample(0), EvalContext(seed=0))
    assert 0.0 <= result.metrics["map"] <= 1.0 and result.metrics["params"] > 0
