"""Random number generators: one way to turn a user's seed into a numpy Generator."""

from __future__ import annotations

import zlib
from typing import Any, Union

import numpy as np

from nasforge.errors import ConfigError

RngLike = Union[np.random.Generator, int, None]  # noqa: UP007 - runtime alias, Python 3.10


def check_seed(seed: Any, what: str = "seed") -> int:
    """``seed`` as an int if it is an integer >= 0 (numpy's seeding refuses negative ones)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ConfigError(f"{what} must be an integer >= 0, got {seed!r}")
    if seed < 0:
        raise ConfigError(f"{what} must be an integer >= 0, got {int(seed)}")
    return int(seed)


def as_rng(rng: RngLike) -> np.random.Generator:
    """Return a numpy Generator for a Generator, an int seed (>= 0), or None (fresh entropy)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        return np.random.default_rng()
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(check_seed(rng))
    raise ConfigError(f"rng must be a numpy Generator, an int seed >= 0 or None, not {rng!r}")


def rng_state(rng: np.random.Generator) -> dict[str, Any]:
    """JSON-able state of a Generator (for strategy state_dicts)."""
    return dict(rng.bit_generator.state)


def rng_from_state(state: dict[str, Any]) -> np.random.Generator:
    """Rebuild a Generator from :func:`rng_state` output."""
    name = state.get("bit_generator", "PCG64")
    bitgen_cls = getattr(np.random, name, None)
    if bitgen_cls is None:
        raise ConfigError(f"unknown bit generator {name!r} in saved state")
    bitgen = bitgen_cls()
    bitgen.state = state
    return np.random.Generator(bitgen)


def derive_seed(seed: int, *keys: int | str) -> int:
    """A deterministic child seed from ``seed`` (>= 0) and some keys (e.g. a trial number)."""
    check_seed(seed)
    for k in keys:
        if isinstance(k, int) and not isinstance(k, bool) and k < 0:
            raise ConfigError(f"seed keys must be integers >= 0 or strings, got {k}")
    # crc32 is stable across processes (unlike hash()), so the same keys always give the same seed.
    material = [seed] + [k if isinstance(k, int) else zlib.crc32(k.encode()) for k in keys]
    return int(np.random.SeedSequence(material).generate_state(1, dtype=np.uint32)[0])
