"""``nasforge predict MODEL INPUTS...``: classify images with a model from ``nasforge train``."""

from __future__ import annotations

import argparse
from typing import Any

from nasforge.cli.common import console, write_json
from nasforge.errors import ConfigError


def register(sub: Any) -> None:
    """Add the ``predict`` subcommand."""
    p: argparse.ArgumentParser = sub.add_parser(
        "predict",
        help="classify images with a trained model (model.onnx, model.pt2 or model.pt)",
        description="Print the predicted class of every input image, by name when the model "
        "records class names. MODEL is the model.onnx (run with onnxruntime), model.pt2 "
        "(torch.export program) or model.pt written by `nasforge train`; it takes images as "
        "people have them (pixels scaled to [0, 1]) and "
        "records its input shape. INPUTS are image files (PNG, JPEG, ...; resized to the model's "
        "input size), IDX files (.gz too, e.g. t10k-images-idx3-ubyte.gz) or .npy arrays "
        "(uint8 0-255 or floats in [0, 1]).",
    )
    p.add_argument("model", metavar="MODEL",
                   help="model.onnx, model.pt2 or model.pt from `nasforge train`")
    p.add_argument("inputs", metavar="INPUTS", nargs="+", help="image, IDX or .npy files")
    p.add_argument("--labels", metavar="FILE",
                   help="true labels (IDX or .npy) of the inputs: also print the accuracy")
    p.add_argument("--limit", type=int, metavar="N", help="use only the first N images")
    p.add_argument("--batch-size", type=int, default=256, metavar="B",
                   help="images per forward pass (default 256)")
    p.add_argument("--json", nargs="?", const="-", metavar="FILE",
                   help="write the predictions as JSON (stdout if no FILE)")
    p.add_argument("--quiet", action="store_true", help="print no per-image lines")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the predict command."""
    import numpy as np

    from nasforge.train.predict import load_deployed, read_inputs, read_labels

    for flag, value in (("--limit", args.limit), ("--batch-size", args.batch_size)):
        if value is not None and value < 1:
            raise ConfigError(f"{flag} must be >= 1, got {value}")
    model = load_deployed(args.model)
    batch, sources = read_inputs(args.inputs, model.card.input, limit=args.limit)
    predictions = model.predict(batch, sources, batch_size=args.batch_size)
    result: dict[str, Any] = {"model": args.model, "backend": model.backend,
                              "predictions": [p.to_dict() for p in predictions]}
    if args.labels:
        labels = read_labels(args.labels)[:len(predictions)]
        if len(labels) != len(predictions):
            raise ConfigError(f"{args.labels!r} holds {len(labels)} labels for "
                              f"{len(predictions)} inputs")
        got = np.array([p.index for p in predictions])
        result["accuracy"] = float((got == labels).mean() * 100)
    to_stdout = args.json == "-"
    if not args.quiet and not to_stdout:
        for pr in predictions:
            # One tab-separated line per input: easy to read and to cut/grep.
            print(f"{pr.source}\t{pr.name}\t(class {pr.index}, p={pr.probability:.3f})")
    if "accuracy" in result and not to_stdout:
        print(f"accuracy: {result['accuracy']:.2f}% on {len(predictions)} images")
    if not args.quiet and not to_stdout:
        console.print(f"[dim]{len(predictions)} image(s) classified with {model.backend}[/dim]")
    if args.json:
        write_json(result, args.json)
    return 0
