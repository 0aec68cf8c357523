"""Supernet checkpoints: one file with everything a one-shot search needs to continue exactly.

A checkpoint holds the supernet's identity (space, space options and build options) and ``state_dict`` (weights and
architecture parameters), the optimizers and schedulers, every random generator, the position in the
run (epoch, step within it, global step), the history so far and the method's own extra state. It
is written to a temporary file and renamed, so a crash while saving leaves the previous checkpoint
intact. Loading uses ``torch.load(weights_only=True)``: only tensors and plain data, never code.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
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


_UNSET = object()


def _plain(value: Any) -> Any:
    # Checkpoints hold lists where the live objects hold tuples; compare the JSON forms.
    return json.loads(json.dumps(value, default=repr))


def _differences(label: str, stored: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    theirs, mine = _plain(dict(stored)), _plain(dict(current))
    return [
        f"{label} {key}: checkpoint {theirs.get(key, '(unset)')!r} vs now {mine.get(key, '(unset)')!r}"
        for key in sorted(set(theirs) | set(mine))
        if theirs.get(key, _UNSET) != mine.get(key, _UNSET)
    ]


def check_space_options(stored: Any, space: Any) -> None:
    """Refuse ``space`` when its options differ from a checkpoint's recorded ones (each named).

    Nothing is compared when either side is unknown (None: a checkpoint written before options
    were recorded, or a space without an ``options()`` method).
    """
    from nasforge.supernet.base import space_options

    mine = space_options(space)
    if not isinstance(stored, Mapping) or mine is None:
        return
    diff = _differences("space option", stored, mine)
    if diff:
        raise ConfigError(f"the checkpoint's supernet was made with other space options ({'; '.join(diff)})")


def supernet_differences(stored: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """What differs between two supernet identities (:meth:`Supernet.describe`), one phrase each."""
    if stored.get("space") != current.get("space"):
        return [f"space: checkpoint {stored.get('space')!r} vs now {current.get('space')!r}"]
    out: list[str] = []
    theirs, mine = stored.get("space_options"), current.get("space_options")
    if isinstance(theirs, Mapping) and isinstance(mine, Mapping):
        out += _differences("space option", theirs, mine)
    out += _differences("build option", stored.get("kwargs") or {}, current.get("kwargs") or {})
    return out


def load_supernet_weights(net: Any, model: Mapping[str, Any], options_known: bool = True) -> None:
    """Load a checkpoint's ``model`` state into ``net``, or say in one line why it does not fit.

    A supernet built with other space or build options has other weights; the error names the
    first missing, unexpected and differently shaped entries instead of PyTorch's long report.
    """
    target = net.state_dict()
    missing = [k for k in target if k not in model]
    unexpected = [k for k in model if k not in target]
    shapes = [
        f"{k} {tuple(model[k].shape)} vs {tuple(target[k].shape)}"
        for k in target
        if k in model and getattr(model[k], "shape", None) != target[k].shape
    ]
    if missing or unexpected or shapes:
        parts = [f"{label} {len(items)} (e.g. {', '.join(items[:2])})"
                 for label, items in (("missing", missing), ("unexpected", unexpected),
                                      ("other shape", shapes)) if items]
        hint = "it was made with other space or build options"
        if not options_known:
            hint = (f"the checkpoint does not record the options of space {net.space.name!r} (its "
                    "options() returns None), so pass the space it was made with")
        raise ConfigError(
            f"the checkpoint's weights do not fit this {net.space.name!r} supernet ({'; '.join(parts)}): "
            f"{hint}"
        )
    net.load_state_dict(dict(model))


def supernet_from_checkpoint(state: dict[str, Any], space: Any = None) -> Any:
    """Rebuild the supernet a checkpoint describes and load its weights.

    Without ``space`` the registered space of the stored name is created with the stored space
    options. A given ``space`` must have the stored name and, where both are known, the stored
    options (a ConfigError names each option that differs).
    """
    from nasforge.registry import SPACES

    ident = state.get("supernet")
    if not isinstance(ident, dict) or "space" not in ident:
        raise ConfigError("the checkpoint does not say which supernet it holds")
    stored = ident.get("space_options")
    if space is None:
        space = SPACES.create(str(ident["space"]), **dict(stored or {}))
    elif space.name != ident["space"]:
        raise ConfigError(
            f"the checkpoint holds a supernet of space {ident['space']!r}, not {space.name!r}"
        )
    else:
        check_space_options(stored, space)
    net = space.supernet(**dict(ident.get("kwargs", {})))
    load_supernet_weights(net, state["model"], options_known=isinstance(stored, Mapping))
    return net


__all__ = [
    "FORMAT",
    "check_space_options",
    "load_checkpoint",
    "load_supernet_weights",
    "save_checkpoint",
    "supernet_differences",
    "supernet_from_checkpoint",
]
