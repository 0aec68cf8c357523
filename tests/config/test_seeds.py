"""Seeds must be integers >= 0 everywhere (numpy refuses negative ones with a traceback)."""

from __future__ import annotations

import numpy as np
import pytest

import nasforge
from nasforge.errors import ConfigError
from nasforge.utils.rng import as_rng, check_seed, derive_seed


def test_negative_seeds_are_refused_clearly() -> None:
    space = nasforge.create_space("nb201")
    with pytest.raises(ConfigError, match=r"^seed must be an integer >= 0, got -1$"):
        space.sample(-1)
    with pytest.raises(ConfigError, match=r"^seed must be an integer >= 0, got -5$"):
        as_rng(np.int64(-5))
    with pytest.raises(ConfigError, match=r"^seed must be an integer >= 0, got -1$"):
        derive_seed(-1, "strategy")
    with pytest.raises(ConfigError, match="seed keys must be integers >= 0"):
        derive_seed(1, -3)
    with pytest.raises(ConfigError, match="rng must be a numpy Generator"):
        as_rng(True)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"trial seed must be an integer >= 0, got 1\.5"):
        check_seed(1.5, "trial seed")


def test_valid_seeds_still_work() -> None:
    space = nasforge.create_space("nb201")
    assert space.sample(0) == space.sample(0)
    assert derive_seed(0, "strategy") == derive_seed(0, "strategy") != derive_seed(1, "strategy")
    assert isinstance(as_rng(None), np.random.Generator)
    g = np.random.default_rng(3)
    assert as_rng(g) is g
