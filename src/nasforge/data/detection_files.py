"""Detection datasets from files: COCO-format directories and Pascal VOC XML directories.

Both are read into a :class:`~nasforge.data.detection.DetectionSet` with every image resized to
``image_size x image_size`` (RGB, boxes scaled with it) and class labels ``0 .. K-1`` in the order
of the sorted class ids (COCO ``categories``) or class names (VOC). Everything is checked on the
way in: missing files, unknown image or category ids, boxes that are empty or leave their image,
malformed JSON or XML each raise a :class:`~nasforge.errors.ConfigError` (a
:class:`~nasforge.errors.DataNotFoundError` for missing files) naming the file and the entry.

- COCO: ``annotations.json`` (``images`` with ``id``, ``file_name``; ``annotations`` with
  ``image_id``, ``category_id``, ``bbox`` = ``[x, y, width, height]``; ``categories`` with ``id``
  and ``name``) and the image files, by default in the JSON's directory or its ``images/``.
  Crowd annotations (``iscrowd: 1``) are skipped, as COCO's evaluation ignores them.
- VOC: ``Annotations/*.xml`` (``filename``, ``object/name``, ``object/bndbox/xmin..ymax`` in
  1-based pixels) and ``JPEGImages/``; ``difficult`` objects are kept.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nasforge.data.detection import DetectionSet
from nasforge.errors import ConfigError, DataNotFoundError


def _read_image(path: Path, size: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """``(3, size, size)`` uint8 pixels of the image at ``path`` and its original (width, height)."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise DataNotFoundError(f"image {str(path)!r} does not exist")
    try:
        with Image.open(path) as img:
            original = img.size
            pixels = np.asarray(img.convert("RGB").resize((size, size), Image.Resampling.BILINEAR))
    except (UnidentifiedImageError, OSError) as exc:
        raise ConfigError(f"cannot read image {str(path)!r}: {exc}") from None
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1), original


def _box(values: Sequence[float], width: int, height: int, where: str) -> list[float]:
    """A checked ``x1, y1, x2, y2`` box inside a ``width x height`` image."""
    x1, y1, x2, y2 = values
    if not (x2 > x1 and y2 > y1):
        raise ConfigError(f"{where}: empty box {list(values)} (x2 <= x1 or y2 <= y1)")
    if x1 < -1 or y1 < -1 or x2 > width + 1 or y2 > height + 1:  # a pixel of slack for rounding
        raise ConfigError(f"{where}: box {list(values)} leaves the {width}x{height} image")
    return [max(0.0, x1), max(0.0, y1), min(float(width), x2), min(float(height), y2)]


def _assemble(items: list[tuple[Path, list[list[float]], list[int]]], classes: list[str],
              size: int) -> DetectionSet:
    if not items:
        raise ConfigError("the dataset has no images")
    images, boxes, labels = [], [], []
    for path, item_boxes, item_labels in items:
        pixels, (w, h) = _read_image(path, size)
        scale = torch.tensor([size / w, size / h, size / w, size / h])
        images.append(pixels)
        boxes.append(torch.tensor(item_boxes, dtype=torch.float32).reshape(-1, 4) * scale)
        labels.append(torch.tensor(item_labels, dtype=torch.long))
    return DetectionSet(torch.stack(images), boxes, labels, len(classes), tuple(classes))


def load_coco(annotations: str | os.PathLike[str], images_dir: str | os.PathLike[str] | None = None,
              image_size: int = 128) -> DetectionSet:
    """A COCO-format dataset (see the module docstring)."""
    path = Path(annotations)
    if not path.is_file():
        raise DataNotFoundError(f"COCO annotations file {str(path)!r} does not exist")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{str(path)!r} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list)
                                             for k in ("images", "annotations", "categories")):
        raise ConfigError(f"{str(path)!r}: a COCO file has lists 'images', 'annotations' and 'categories'")
    root = Path(images_dir) if images_dir is not None else (
        path.parent / "images" if (path.parent / "images").is_dir() else path.parent)
    try:
        cats = {int(c["id"]): str(c.get("name", c["id"])) for c in data["categories"]}
        images = {int(im["id"]): im for im in data["images"]}
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{str(path)!r}: bad 'categories' or 'images' entry ({exc!r})") from None
    order = sorted(cats)
    label_of = {cid: i for i, cid in enumerate(order)}
    per_image: dict[int, tuple[list[list[float]], list[int]]] = {i: ([], []) for i in images}
    for n, ann in enumerate(data["annotations"]):
        where = f"{str(path)!r}: annotations[{n}]"
        try:
            image_id, cat = int(ann["image_id"]), int(ann["category_id"])
            x, y, w, h = (float(v) for v in ann["bbox"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: needs image_id, category_id and bbox [x, y, w, h] ({exc!r})") from None
        if image_id not in images:
            raise ConfigError(f"{where}: image_id {image_id} is not among the images")
        if cat not in cats:
            raise ConfigError(f"{where}: category_id {cat} is not among the categories {order}")
        if ann.get("iscrowd", 0):
            continue
        im = images[image_id]
        width, height = int(im.get("width", 0) or 0), int(im.get("height", 0) or 0)
        if width <= 0 or height <= 0:
            width, height = _read_image(root / str(im["file_name"]), 8)[1]
        per_image[image_id][0].append(_box([x, y, x + w, y + h], width, height, where))
        per_image[image_id][1].append(label_of[cat])
    items = []
    for image_id, im in images.items():
        if "file_name" not in im:
            raise ConfigError(f"{str(path)!r}: image {image_id} has no file_name")
        items.append((root / str(im["file_name"]), *per_image[image_id]))
    return _assemble(items, [cats[c] for c in order], image_size)


def _xml_number(obj: ET.Element, tag: str, where: str) -> float:
    node = obj.find(tag)
    try:
        return float(node.text or "") if node is not None else float("nan")
    except ValueError:
        raise ConfigError(f"{where}: <{tag}> is not a number: {node.text if node is not None else None!r}") from None


def load_voc(root: str | os.PathLike[str], classes: Sequence[str] | None = None,
             image_size: int = 128) -> DetectionSet:
    """A Pascal VOC directory (see the module docstring); ``classes`` fixes the label order
    (default: the sorted class names found)."""
    base = Path(root)
    ann_dir, img_dir = base / "Annotations", base / "JPEGImages"
    if not ann_dir.is_dir() or not img_dir.is_dir():
        raise DataNotFoundError(f"{str(base)!r} is not a Pascal VOC directory: it needs Annotations/ and "
                                "JPEGImages/")
    files = sorted(ann_dir.glob("*.xml"))
    if not files:
        raise ConfigError(f"{str(ann_dir)!r} holds no .xml annotation files")
    parsed = []
    for f in files:
        try:
            tree = ET.parse(f).getroot()
        except ET.ParseError as exc:
            raise ConfigError(f"{str(f)!r} is not valid XML: {exc}") from None
        name = tree.findtext("filename")
        size = tree.find("size")
        if not name or size is None:
            raise ConfigError(f"{str(f)!r}: a VOC annotation needs <filename> and <size>")
        width, height = int(_xml_number(size, "width", str(f))), int(_xml_number(size, "height", str(f)))
        objects = []
        for k, obj in enumerate(tree.findall("object")):
            where = f"{str(f)!r}: object {k}"
            cls, box = obj.findtext("name"), obj.find("bndbox")
            if not cls or box is None:
                raise ConfigError(f"{where}: needs <name> and <bndbox>")
            # VOC pixels are 1-based and inclusive: xmin 1 is the left edge of the first pixel.
            values = [_xml_number(box, t, where) for t in ("xmin", "ymin", "xmax", "ymax")]
            objects.append((cls, _box([values[0] - 1, values[1] - 1, values[2], values[3]], width, height, where)))
        parsed.append((img_dir / name, objects))
    names = list(classes) if classes is not None else sorted({c for _, objs in parsed for c, _ in objs})
    unknown = sorted({c for _, objs in parsed for c, _ in objs} - set(names))
    if unknown:
        raise ConfigError(f"{str(ann_dir)!r}: class(es) {unknown} are not among classes {names}")
    index = {c: i for i, c in enumerate(names)}
    items = [(p, [b for _, b in objs], [index[c] for c, _ in objs]) for p, objs in parsed]
    return _assemble(items, names, image_size)


def load_detection_files(path: str | os.PathLike[str], image_size: int = 128, **options: Any) -> DetectionSet:
    """A COCO JSON file (or a directory with ``annotations.json``) or a VOC directory."""
    p = Path(path)
    if p.is_file() and p.suffix == ".json":
        return load_coco(p, image_size=image_size, **options)
    if (p / "annotations.json").is_file():
        return load_coco(p / "annotations.json", image_size=image_size, **options)
    if (p / "Annotations").is_dir():
        return load_voc(p, image_size=image_size, **options)
    raise DataNotFoundError(f"{str(p)!r} is neither a COCO annotations file, a directory with annotations.json, "
                            "nor a Pascal VOC directory (Annotations/ + JPEGImages/)")


__all__ = ["load_coco", "load_detection_files", "load_voc"]
