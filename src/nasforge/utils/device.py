"""Choosing the torch device at run time."""

from __future__ import annotations

from nasforge.errors import ConfigError


def resolve_device(device: str | None = "auto") -> str:
    """``"auto"``/None -> ``"cuda"`` when a GPU is visible, else ``"cpu"``; others are checked."""
    import torch

    if device is None or device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} was asked for, but no CUDA GPU is visible; use 'cpu' or 'auto'")
        return device
    if device in ("cpu", "mps"):
        return device
    raise ConfigError(f"unknown device {device!r}; allowed: 'auto', 'cpu', 'cuda', 'cuda:N', 'mps'")
