"""Torch helpers for strategies with neural models (REINFORCE, BANANAS): JSON forms of their
state, and running their tiny models on one thread.

Strategy state must be JSON-able and must resume to the same future, so tensors are stored as
flat lists of Python numbers with their dtype and shape (float32 -> Python float -> float32 is
exact), dicts with non-string keys (optimizer state is keyed by parameter index) as item lists,
and a ``torch.Generator`` by its byte state.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from nasforge.errors import ConfigError

_TENSOR = "__tensor__"
_ITEMS = "__items__"


def to_jsonable(obj: Any) -> Any:
    """Tensors, dicts (any keys), lists and tuples -> JSON-able data (see :func:`from_jsonable`)."""
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu()
        return {_TENSOR: {"dtype": str(t.dtype).removeprefix("torch."), "shape": list(t.shape),
                          "data": t.reshape(-1).tolist()}}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj) and _TENSOR not in obj and _ITEMS not in obj:
            return {k: to_jsonable(v) for k, v in obj.items()}
        return {_ITEMS: [[to_jsonable(k), to_jsonable(v)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise ConfigError(f"cannot store {type(obj).__name__} in a strategy state")


def from_jsonable(obj: Any) -> Any:
    """Inverse of :func:`to_jsonable` (tuples come back as lists)."""
    if isinstance(obj, dict):
        if _TENSOR in obj and len(obj) == 1:
            spec = obj[_TENSOR]
            dtype = getattr(torch, str(spec["dtype"]), None)
            if not isinstance(dtype, torch.dtype):
                raise ConfigError(f"unknown tensor dtype {spec['dtype']!r} in a strategy state")
            return torch.tensor(spec["data"], dtype=dtype).reshape(spec["shape"])
        if _ITEMS in obj and len(obj) == 1:
            return {_key(from_jsonable(k)): from_jsonable(v) for k, v in obj[_ITEMS]}
        return {k: from_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [from_jsonable(v) for v in obj]
    return obj


def _key(k: Any) -> Any:
    return tuple(k) if isinstance(k, list) else k


def generator_state(gen: torch.Generator) -> list[int]:
    """The generator's state as a list of byte values."""
    state: list[int] = gen.get_state().tolist()
    return state


def generator_from_state(state: list[int]) -> torch.Generator:
    """A CPU generator restored from :func:`generator_state`."""
    gen = torch.Generator()
    gen.set_state(torch.tensor(state, dtype=torch.uint8))
    return gen


def seeded_generator(rng_seed: int) -> torch.Generator:
    """A CPU torch generator seeded with ``rng_seed`` (drawn from the strategy's numpy rng)."""
    return torch.Generator().manual_seed(int(rng_seed))


def module_state(module: torch.nn.Module) -> dict[str, Any]:
    """JSON form of a module's parameters and buffers."""
    out: dict[str, Any] = to_jsonable(dict(module.state_dict()))
    return out


def load_module_state(module: torch.nn.Module, state: dict[str, Any]) -> None:
    """Load :func:`module_state` output into ``module`` (shapes must match)."""
    module.load_state_dict(from_jsonable(state))


def optimizer_state(opt: torch.optim.Optimizer) -> dict[str, Any]:
    """JSON form of an optimizer's state (moments, step counts, hyper-parameters)."""
    out: dict[str, Any] = to_jsonable(opt.state_dict())
    return out


def load_optimizer_state(opt: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Load :func:`optimizer_state` output into ``opt``."""
    data = from_jsonable(state)
    for group in data.get("param_groups", []):
        if isinstance(group.get("betas"), list):
            group["betas"] = tuple(group["betas"])
    opt.load_state_dict(data)


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one intra-op thread for a moment (restored afterwards).

    Strategy models are tiny: splitting their ops over threads costs more than it saves, and on
    a busy machine spinning worker threads made a predictor refit 20x slower.
    """
    before = torch.get_num_threads()
    if before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
