"""A trained network packed for use outside nasforge: input as people have it, metadata along.

During training the loaders turn stored images into the network input: scale to [0, 1], adapt the
shape (pad or resize to ``image_size``, repeat gray to ``channels``) and normalize with the
dataset's mean/std. A network exported alone expects that normalized input, and a user feeding it
plain [0, 1] pixels gets chance accuracy. :class:`Deployable` puts those steps inside the model
(``Deployable(network, spec)``: adapt shape, :class:`~nasforge.data.transforms.Normalize`, the
network), so ``model.pt``, ``model.onnx`` and the rebuild script all take images scaled to
[0, 1] in the dataset's stored shape. :class:`InputSpec` describes that input and
:class:`ModelCard` everything recorded beside the weights (input, class names, dataset, metrics),
as a dict for checkpoints and as string pairs for ONNX ``metadata_props``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from nasforge.data import dataset_info
from nasforge.data.transforms import Normalize, adapt_shape
from nasforge.errors import ConfigError, NasforgeError
from nasforge.train.evaluate import as_logits


@dataclass(frozen=True)
class InputSpec:
    """The input a deployed model takes and how it becomes the network's training input.

    ``shape`` is ``(C, H, W)`` of one image as the dataset stores it, with values in
    ``value_range`` (pixels scaled to [0, 1]). ``image_size``/``channels``/``resize_mode`` adapt
    it to the network's input (see :func:`~nasforge.data.transforms.adapt_shape`); ``mean``/``std``
    normalize it (None: no normalization).
    """

    shape: tuple[int, int, int]
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    image_size: int | None = None
    channels: int | None = None
    resize_mode: str = "pad"
    value_range: tuple[float, float] = (0.0, 1.0)

    @classmethod
    def for_dataset(cls, dataset: str, *, image_size: int | None = None,
                    channels: int | None = None, resize_mode: str = "pad") -> InputSpec:
        """The input of a network trained on the named dataset (as :class:`BatchLoader` feeds it)."""
        info = dataset_info(dataset)
        return cls(info.input_shape, info.mean, info.std, image_size, channels, resize_mode)

    @property
    def network_shape(self) -> tuple[int, int, int]:
        """(C, H, W) the wrapped network sees, after shape adaptation."""
        c, h, w = self.shape
        if self.image_size is not None:
            h = w = self.image_size
        return (self.channels or c, h, w)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (lists for tuples)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InputSpec:
        """Inverse of :meth:`to_dict`; a bad record fails naming the missing or bad field."""
        try:
            shape = tuple(int(v) for v in data["shape"])
            if len(shape) != 3:
                raise ValueError(f"shape must be (C, H, W), got {list(shape)}")
            mean, std = data.get("mean"), data.get("std")
            lo, hi = data.get("value_range", (0.0, 1.0))
            return cls((shape[0], shape[1], shape[2]),
                       None if mean is None else tuple(float(v) for v in mean),
                       None if std is None else tuple(float(v) for v in std),
                       None if data.get("image_size") is None else int(data["image_size"]),
                       None if data.get("channels") is None else int(data["channels"]),
                       str(data.get("resize_mode", "pad")), (float(lo), float(hi)))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"bad input description {dict(data)!r:.200}: {exc}") from None


def input_spec_from_training(dataset: str | None, training: Mapping[str, Any]) -> InputSpec | None:
    """The :class:`InputSpec` of a network trained on ``dataset`` with the data options in
    ``training`` (an architecture file's ``training``); None when the dataset is not a named one
    (user tensors, a benchmark table's name): then nothing is known about its input."""
    if dataset is None:
        return None
    try:
        return InputSpec.for_dataset(dataset, image_size=training.get("image_size"),
                                     channels=training.get("channels"),
                                     resize_mode=training.get("resize_mode", "pad"))
    except NasforgeError:
        return None


class Deployable(nn.Module):
    """``network`` behind the input steps of its training: takes [0, 1] images, returns logits.

    ``forward(x)``: ``x`` of shape ``(B, *spec.shape)`` -> shape adaptation -> normalization ->
    ``network`` -> logits (the first element when the network returns a tuple). The bare network
    is ``.network``; the input description ``.spec``.
    """

    def __init__(self, network: nn.Module, spec: InputSpec) -> None:
        super().__init__()
        self.spec = spec
        self.network = network
        self.normalize = (Normalize(spec.mean, spec.std)
                          if spec.mean is not None and spec.std is not None else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for images scaled to [0, 1]."""
        x = adapt_shape(x, self.spec.image_size, self.spec.channels, self.spec.resize_mode)
        if self.normalize is not None:
            x = self.normalize(x)
        return as_logits(self.network(x))


@dataclass
class ModelCard:
    """What is recorded beside a deployed model's weights, so it can be used without guessing."""

    input: InputSpec
    class_names: list[str] | None = None
    dataset: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    #: The architecture in its space's human form, and the space's name.
    arch: str | None = None
    space: str | None = None

    @classmethod
    def for_dataset(cls, spec: InputSpec, dataset: str | None, **kwargs: Any) -> ModelCard:
        """A card whose class names come from the dataset catalog (when it knows them)."""
        names = None
        if dataset is not None:
            try:
                classes = dataset_info(dataset).classes
                names = list(classes) if classes is not None else None
            except NasforgeError:
                names = None
        return cls(spec, names, dataset, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (stored in checkpoints under ``"deploy"``)."""
        return {"input": self.input.to_dict(), "class_names": self.class_names,
                "dataset": self.dataset, "metrics": dict(self.metrics), "arch": self.arch,
                "space": self.space}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelCard:
        """Inverse of :meth:`to_dict`."""
        if not isinstance(data.get("input"), Mapping):
            raise ConfigError(f"model metadata has no input description: {dict(data)!r:.200}")
        names = data.get("class_names")
        return cls(InputSpec.from_dict(data["input"]),
                   None if names is None else [str(n) for n in names], data.get("dataset"),
                   {str(k): float(v) for k, v in dict(data.get("metrics") or {}).items()},
                   data.get("arch"), data.get("space"))

    def to_metadata(self) -> dict[str, str]:
        """Flat string pairs for ONNX ``metadata_props``: one JSON value per key, so a reader
        needs no nasforge (``onnxruntime``'s ``get_modelmeta().custom_metadata_map``)."""
        spec = self.input
        values: dict[str, Any] = {
            "input_shape": list(spec.shape), "input_range": list(spec.value_range),
            "normalization": ({"mean": list(spec.mean), "std": list(spec.std)}
                              if spec.mean is not None and spec.std is not None else None),
            "class_names": self.class_names, "dataset": self.dataset, "metrics": self.metrics,
            "architecture": self.arch, "space": self.space, "nasforge_input": spec.to_dict(),
        }
        return {k: json.dumps(v) for k, v in values.items()}

    @classmethod
    def from_metadata(cls, props: Mapping[str, str]) -> ModelCard:
        """Inverse of :meth:`to_metadata` (what ``nasforge predict`` reads from ONNX files)."""
        if "nasforge_input" not in props:
            raise ConfigError("the model has no nasforge metadata (input shape, normalization); "
                              "export it again with `nasforge train`")
        try:
            values = {k: json.loads(v) for k, v in props.items()
                      if k in ("nasforge_input", "class_names", "dataset", "metrics",
                               "architecture", "space")}
        except json.JSONDecodeError as exc:
            raise ConfigError(f"the model's nasforge metadata is not valid JSON: {exc}") from None
        return cls.from_dict({"input": values["nasforge_input"],
                              "class_names": values.get("class_names"),
                              "dataset": values.get("dataset"),
                              "metrics": values.get("metrics"), "arch": values.get("architecture"),
                              "space": values.get("space")})

    def class_name(self, index: int) -> str:
        """The name of class ``index`` (its number when no names are recorded)."""
        names = self.class_names
        return names[index] if names is not None and 0 <= index < len(names) else str(index)


def check_input_shape(x: torch.Tensor | Sequence[int], spec: InputSpec, source: str) -> None:
    """Refuse a batch whose image shape is not ``spec.shape``, naming both."""
    shape = tuple(x.shape[1:]) if isinstance(x, torch.Tensor) else tuple(x)
    if shape != tuple(spec.shape):
        raise ConfigError(f"{source}: images of shape {list(shape)}; the model takes "
                          f"{list(spec.shape)} (C, H, W)")


__all__ = ["Deployable", "InputSpec", "ModelCard", "check_input_shape",
           "input_spec_from_training"]
