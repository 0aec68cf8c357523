"""The registry of zero-cost proxies and the one function that runs any of them.

A zero-cost proxy scores an *untrained* network in about a second; a higher score predicts a
better trained accuracy. Every proxy is a function ``(model, inputs, targets, *, loss_fn) ->
float`` registered here with what it needs:

* data-free proxies (``synflow``, ``params``, ``flops``) look only at the input *shape*;
* input-only proxies (``jacob_cov``, ``naswot``) need a batch of real images but no labels;
* loss-based proxies (``snip``, ``grasp``, ``fisher``, ``grad_norm``) need images and labels.

:func:`compute_proxy` is what callers use: it checks the name and the data, runs the proxy on a
*copy* of the model (so the model's weights, buffers and gradients are never changed) in a forked,
seeded RNG (so a proxy is deterministic given the seed and never disturbs the caller's RNG).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from nasforge.errors import ConfigError, unknown

#: A loss of ``(logits, targets)``; cross-entropy unless the caller gives another.
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
#: A proxy body: ``(model copy, inputs, targets, loss_fn) -> score``. It may modify the copy.
ProxyFn = Callable[[nn.Module, torch.Tensor, "torch.Tensor | None", LossFn], float]

DATA_FREE = "none"
INPUTS = "inputs"
INPUTS_AND_TARGETS = "inputs+targets"
_NEEDS = (DATA_FREE, INPUTS, INPUTS_AND_TARGETS)


@dataclass(frozen=True)
class Proxy:
    """A registered proxy: its function, what data it needs, and where it comes from."""

    name: str
    fn: ProxyFn
    #: ``"none"`` (data-free: only the input shape is used), ``"inputs"`` or ``"inputs+targets"``.
    needs: str
    #: One line: what the score is.
    summary: str
    #: The paper that defines it.
    reference: str
    #: Whether the proxy mutates the model it is given (then :func:`compute_proxy` copies first).
    mutates: bool = True

    @property
    def data_free(self) -> bool:
        """True when the proxy uses only the input shape (no images, no labels)."""
        return self.needs == DATA_FREE

    @property
    def needs_targets(self) -> bool:
        """True when the proxy needs labels (it differentiates a loss)."""
        return self.needs == INPUTS_AND_TARGETS


PROXIES: dict[str, Proxy] = {}


def register_proxy(
    name: str, *, needs: str, summary: str, reference: str, mutates: bool = True
) -> Callable[[ProxyFn], ProxyFn]:
    """Decorator: register ``fn`` as proxy ``name`` (see :class:`Proxy` for the fields)."""
    if needs not in _NEEDS:
        raise ConfigError(f"proxy {name!r}: needs={needs!r} is not allowed; allowed: {_NEEDS}")

    def deco(fn: ProxyFn) -> ProxyFn:
        if name in PROXIES and PROXIES[name].fn is not fn:
            raise ConfigError(f"proxy {name!r} is already registered")
        PROXIES[name] = Proxy(name, fn, needs, summary, reference, mutates)
        return fn

    return deco


def list_proxies(data_free: bool | None = None) -> list[str]:
    """Registered proxy names, sorted; only the data-free (or only the data-based) ones if asked."""
    return sorted(n for n, p in PROXIES.items() if data_free is None or p.data_free == data_free)


def get_proxy(name: str) -> Proxy:
    """The proxy registered as ``name``; an error listing the allowed names otherwise."""
    if not isinstance(name, str) or name not in PROXIES:
        raise unknown("zero-cost proxy", name, PROXIES)
    return PROXIES[name]


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The default loss of the loss-based proxies (mean cross-entropy over the batch)."""
    return nn.functional.cross_entropy(logits, targets)


def compute_proxy(
    name: str,
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor | None = None,
    *,
    seed: int = 0,
    loss_fn: LossFn | None = None,
) -> float:
    """Score ``model`` with proxy ``name``; the model itself is left exactly as it was.

    ``inputs`` is a batch ``(B, C, H, W)`` on any device (moved to the model's); data-free proxies
    use only its shape, so ``space.example_input(1)`` will do for them. ``targets`` (class
    indices, shape ``(B,)``) are needed by the loss-based proxies. ``seed`` seeds any randomness
    the model has (dropout, drop-path) inside a forked RNG; the proxies themselves draw none.
    Data-based proxies run the copy in training mode (BatchNorm uses batch statistics, as in the
    papers); a model whose inputs do not fit raises the model's own error.
    """
    proxy = get_proxy(name)
    if not isinstance(model, nn.Module):
        raise ConfigError(f"proxy {name!r} needs a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(inputs, torch.Tensor) or inputs.dim() < 2 or inputs.shape[0] < 1:
        got = tuple(inputs.shape) if isinstance(inputs, torch.Tensor) else type(inputs).__name__
        raise ConfigError(f"proxy {name!r} needs an input batch tensor (B, ...), got {got}")
    if proxy.needs_targets:
        if targets is None:
            raise ConfigError(
                f"proxy {name!r} differentiates a loss, so it needs targets (labels); "
                f"data-free proxies: {', '.join(list_proxies(data_free=True))}"
            )
        if targets.shape[:1] != inputs.shape[:1]:
            raise ConfigError(
                f"proxy {name!r}: {inputs.shape[0]} inputs but {targets.shape[0]} targets"
            )
    device = model_device(model)
    inputs = inputs.to(device)
    if targets is not None:
        targets = targets.to(device)
    work = scratch_copy(model) if proxy.mutates else model
    with torch.random.fork_rng(devices=_cuda_devices(device)):
        torch.manual_seed(seed)
        value = proxy.fn(work, inputs, targets, loss_fn or cross_entropy)
    return float(value)


def _cuda_devices(device: torch.device) -> list[int]:
    # fork_rng would otherwise touch every visible GPU (and warn when there are many).
    return [device.index or 0] if device.type == "cuda" else []


def model_device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter or buffer (CPU for a model with neither)."""
    for param in model.parameters():
        return param.device
    for buf in model.buffers():
        return buf.device
    return torch.device("cpu")


def scratch_copy(model: nn.Module) -> nn.Module:
    """A deep copy the proxies may change freely: in-place activations turned off (hooks and
    double backward need the pre-activation tensors intact), gradients cleared."""
    work = copy.deepcopy(model)
    for m in work.modules():
        if getattr(m, "inplace", False) is True:
            setattr(m, "inplace", False)  # noqa: B010  (not every module declares it)
    for p in work.parameters():
        p.grad = None
        p.requires_grad_(True)
    return work


def prunable_layers(model: nn.Module) -> Iterator[nn.Module]:
    """Conv and linear layers: the weights the per-weight saliencies (synflow, snip, grasp,
    grad_norm) are summed over, as in Abdelfattah et al. (ICLR 2021)."""
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
            yield m


def prunable_weights(model: nn.Module) -> list[torch.Tensor]:
    """The ``weight`` of every :func:`prunable_layers` layer (each shared tensor once)."""
    seen: set[int] = set()
    out: list[torch.Tensor] = []
    for m in prunable_layers(model):
        w = m.weight
        if isinstance(w, torch.Tensor) and id(w) not in seen:
            seen.add(id(w))
            out.append(w)
    if not out:
        raise ConfigError("the model has no Conv or Linear layer for the proxy to score")
    return out


def logits_of(output: object) -> torch.Tensor:
    """The logits of a forward pass: the tensor itself, or the first of a tuple/list
    (networks that also return auxiliary outputs)."""
    if isinstance(output, (tuple, list)) and output:
        output = output[0]
    if not isinstance(output, torch.Tensor):
        raise ConfigError(
            f"the model returned a {type(output).__name__}; proxies need a logits tensor"
        )
    return output


__all__ = [
    "DATA_FREE",
    "INPUTS",
    "INPUTS_AND_TARGETS",
    "PROXIES",
    "LossFn",
    "Proxy",
    "ProxyFn",
    "compute_proxy",
    "cross_entropy",
    "get_proxy",
    "list_proxies",
    "logits_of",
    "model_device",
    "prunable_layers",
    "prunable_weights",
    "register_proxy",
    "scratch_copy",
]
