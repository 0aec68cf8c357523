"""Supernet checkpoints: one file with everything a one-shot search needs to continue exactly.

A checkpoint holds the supernet's identity (space and build options) and ``state_dict`` (weights and
architecture parameters), the optimizers and schedulers, every random generator, the position in the
run (epoch, step within it, global step), the history so far and the method's own extra state. It
is written to a temporary file and renamed, so a crash while saving leaves the previous checkpoint
intact. Loading uses ``torch.load(weights_only=True)``: only tensors and plain data, never code.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from nasforge.errors import ConfigError, DataNotFoundError

FORMAT = "nasforge-oneshot/1"


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Write ``state`` (plus the format tag) to ``path`` atomically; returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    torch.save({"format": FORMAT, **state}, tmp)
    os.replace(tmp, target)
    return target


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (clear errors for wrong files)."""
    source = Path(path)
    if not source.is_file():
        raise DataNotFoundError(f"no supernet checkpoint at {str(source)!r}")
    try:
        state = torch.load(source, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for foreign or corrupt files
        raise ConfigError(f"{str(source)!r} is not a readable nasforge supernet checkpoint: {exc}") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise ConfigError(
            f"{str(source)!r} is not a nasforge supernet checkpoint (format {found!r}, expected {FORMAT!r})"
        )
    return state


def supernet_from_checkpoint(state: dict[str, Any], space: Any = None) -> Any:
    """Rebuild the supernet a checkpoint describes and load its weights.

    ``space`` (a SearchSpace) is used when given and must match the stored space name; otherwise
    the registered space of that name is created with default options.
    """
    from nasforge.registry import SPACES

    ident = state.get("supernet")
    if not isinstance(ident, dict) or "space" not in ident:
        raise ConfigError("the checkpoint does not say which supernet it holds")
    if space is None:
        space = SPACES.create(str(ident["space"]))
    elif space.name != ident["space"]:
        raise ConfigError(
            f"the checkpoint holds a supernet of space {ident['space']!r}, not {space.name!r}"
        )
    net = space.supernet(**dict(ident.get("kwargs", {})))
    net.load_state_dict(state["model"])
    return net


__all__ = ["FORMAT", "load_checkpoint", "save_checkpoint", "supernet_from_checkpoint"]
