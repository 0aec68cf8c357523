"""Activation functions a layer can choose, and the swap that puts one into a built op.

The registry ops are pre-activation (``ReLU -> conv -> BN``), so a layer's activation is the one
its op starts with: :func:`set_activation` replaces an op's ReLUs with the chosen function. Ops
without an activation (pooling, identity, zero) have nothing to replace.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from nasforge.errors import unknown

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    # swish(x) = x * sigmoid(x) (Ramachandran et al., 2017), which PyTorch calls SiLU.
    "swish": nn.SiLU,
    "hardswish": nn.Hardswish,
}
"""Activation name -> module factory."""


def make_activation(name: str) -> nn.Module:
    """A fresh module for the activation ``name`` (clear error listing the known names)."""
    if name not in ACTIVATIONS:
        raise unknown("activation", name, ACTIVATIONS)
    return ACTIVATIONS[name]()


def has_activation(module: nn.Module) -> bool:
    """Whether ``module`` contains a ReLU that :func:`set_activation` would replace."""
    return any(type(m) is nn.ReLU for m in module.modules())


def set_activation(module: nn.Module, name: str) -> nn.Module:
    """Replace every plain ``nn.ReLU`` inside ``module`` by the activation ``name``, in place.

    ``relu`` leaves the module untouched, so networks built before activations were a choice keep
    exactly the same modules (and their checkpoints load).
    """
    make_activation(name)  # validate the name even when nothing is replaced
    if name == "relu":
        return module
    for parent in module.modules():
        for child_name, child in parent.named_children():
            if type(child) is nn.ReLU:
                setattr(parent, child_name, make_activation(name))
    return module


__all__ = ["ACTIVATIONS", "has_activation", "make_activation", "set_activation"]
