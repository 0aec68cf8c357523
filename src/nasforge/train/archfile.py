"""Architecture files: an architecture with what is needed to rebuild and retrain its network.

``nasforge export`` writes them (``rankN.json``), :func:`nasforge.train.retrain` and
``nasforge train`` read them (:func:`load_arch_file`); the JSON form is also a valid
:meth:`Architecture.from_dict` input.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nasforge.errors import ConfigError, file_error
from nasforge.registry import SPACES
from nasforge.space.architecture import Architecture
from nasforge.utils.coerce import coerce_options

if TYPE_CHECKING:
    from torch import nn

    from nasforge.space.base import SearchSpace

#: Format tag written into architecture files, so later versions can read old ones.
ARCH_FORMAT = "nasforge-architecture/1"


@dataclass
class ArchFile:
    """An architecture with what is needed to rebuild and retrain its network."""

    arch: Architecture
    space_options: dict[str, Any] = field(default_factory=dict)
    num_classes: int = 10
    in_channels: int = 3
    build_kwargs: dict[str, Any] = field(default_factory=dict)
    dataset: str | None = None
    #: Training and data options of the search's evaluator (lr, batch_size, augment, ...).
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def space_name(self) -> str:
        """Name of the search space the architecture belongs to."""
        return self.arch.space

    def space(self) -> SearchSpace:
        """The search space, created with the stored options."""
        space: SearchSpace = SPACES.create(self.space_name, **self.space_options)
        space.validate(self.arch)
        return space

    def build(self, **overrides: Any) -> nn.Module:
        """``space.build(arch, num_classes, in_channels, **build_kwargs)`` (overrides win)."""
        kwargs = {"num_classes": self.num_classes, "in_channels": self.in_channels,
                  **self.build_kwargs, **overrides}
        space = self.space()
        # "--build-option C=16" and a file's kwargs are checked against the build signature.
        kwargs = coerce_options(space.build, kwargs, lambda k: f"build option {k!r}")
        model: nn.Module = space.build(self.arch, **kwargs)
        return model

    def to_dict(self) -> dict[str, Any]:
        """The JSON form; it is also a valid :meth:`Architecture.from_dict` input."""
        text = self.space().to_string(self.arch)
        return {
            "format": ARCH_FORMAT,
            **self.arch.to_dict(),
            "text": text,
            "space_options": self.space_options,
            "build": {"num_classes": self.num_classes, "in_channels": self.in_channels,
                      "kwargs": self.build_kwargs},
            "dataset": self.dataset,
            "training": self.training,
            "metrics": self.metrics,
            **self.extra,
        }

    def save(self, path: str | Path) -> Path:
        """Write :meth:`to_dict` as JSON."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(self.to_dict(), indent=2, default=str) + "\n")
        return p


def _check_format(data: Mapping[str, Any], source: str) -> None:
    """Refuse a file of another format, or of a newer version than this nasforge reads."""
    if "format" not in data:
        return  # a bare Architecture.to_json
    tag = data["format"]
    name, _, version = str(tag).rpartition("/")
    ours, _, current = ARCH_FORMAT.rpartition("/")
    if not isinstance(tag, str) or name != ours or not version.isdigit():
        raise ConfigError(f"{source}: format {tag!r} is not an architecture file format; "
                          f"allowed: {ARCH_FORMAT!r}")
    if int(version) > int(current):
        raise ConfigError(f"{source}: format {tag!r} was written by a newer nasforge (this "
                          f"version reads up to {ARCH_FORMAT!r}); upgrade nasforge to read it")


def _positive_int(build: Mapping[str, Any], key: str, default: int, source: str) -> int:
    value = build.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{source}: build.{key} must be an integer >= 1, got {value!r}")
    return value


def arch_file_from_dict(data: Mapping[str, Any], source: str = "architecture") -> ArchFile:
    """Read :meth:`ArchFile.to_dict` output, or a bare ``{"space", "choices"}`` architecture."""
    _check_format(data, source)
    try:
        arch = Architecture.from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    build = data.get("build") or {}
    if not isinstance(build, Mapping):
        raise ConfigError(f"{source}: 'build' must be an object, got {build!r:.100}")
    kwargs = build.get("kwargs") or {}
    if not isinstance(kwargs, Mapping):
        raise ConfigError(f"{source}: build.kwargs must be an object, got {kwargs!r:.100}")
    known = {"format", "space", "choices", "text", "space_options", "build", "dataset",
             "training", "metrics"}
    return ArchFile(
        arch=arch,
        space_options=dict(data.get("space_options") or {}),
        num_classes=_positive_int(build, "num_classes", 10, source),
        in_channels=_positive_int(build, "in_channels", 3, source),
        build_kwargs=dict(kwargs),
        dataset=data.get("dataset"),
        training=dict(data.get("training") or {}),
        metrics={k: float(v) for k, v in dict(data.get("metrics") or {}).items()
                 if isinstance(v, (int, float))},
        extra={k: v for k, v in data.items() if k not in known},
    )


def load_arch_file(path: str | Path) -> ArchFile:
    """Read an architecture JSON written by ``nasforge export`` (or ``Architecture.to_json``)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"architecture file {str(p)!r} does not exist")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise file_error(exc, p, "read the architecture file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"architecture file {str(p)!r} is not valid JSON: {exc}") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"architecture file {str(p)!r} must hold a JSON object")
    af = arch_file_from_dict(data, str(p))
    space = af.space()  # unknown space or invalid choices fail here, naming the problem
    text = data.get("text")
    if text is not None and text != space.to_string(af.arch):
        # A hand-edited text would otherwise be ignored without a word: the choices win.
        try:
            same = space.from_string(str(text)) == af.arch
        except ConfigError:
            same = False
        if not same:
            raise ConfigError(
                f"architecture file {str(p)!r}: 'text' {str(text)[:120]!r} does not match its "
                f"'choices' ({space.to_string(af.arch)[:120]!r}); edit both alike or remove 'text'"
            )
    return af


__all__ = ["ARCH_FORMAT", "ArchFile", "arch_file_from_dict", "load_arch_file"]
