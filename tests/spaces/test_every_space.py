"""Property tests that every registered search space must pass.

The spaces are listed at collection time, so registering a new space puts it under these tests
with no edit here. The public ``nasforge.testing.check_space`` checks the space contract (its
docstring lists the rules); the property tests below add more seeds: sample -> validate -> encode
(fixed length, finite) -> JSON and string round trips -> build (with the space's
``small_build_kwargs``) -> forward and backward on ``example_input``; mutate / neighbors /
crossover stay inside the space; equal architectures hash alike.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nasforge
from nasforge.space import Architecture, SearchSpace
from nasforge.testing import check_space

SPACE_NAMES = nasforge.list_spaces()
# Spaces whose small network still takes more than ~2 s to build and run: their build test is
# marked slow. Keep this list short by giving spaces cheap ``small_build_kwargs``.
SLOW_BUILD: frozenset[str] = frozenset()
# How many neighbors of one architecture are checked (some spaces have thousands).
MAX_NEIGHBORS = 64

SEEDS = st.integers(min_value=0, max_value=2**32 - 1)
PROPERTY = settings(
    max_examples=15,
    derandomize=True,  # same examples every run: failures reproduce, CI stays deterministic
    database=None,  # nothing written to .hypothesis/
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@cache
def get_space(name: str) -> SearchSpace:
    return nasforge.create_space(name)


def test_some_spaces_are_registered() -> None:
    assert "nb201" in SPACE_NAMES


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_space_identity(name: str) -> None:
    space = get_space(name)
    assert isinstance(space, SearchSpace)
    assert space.name == name
    assert len(space.decisions) > 0
    assert space.encoding_size > 0
    assert isinstance(dict(space.small_build_kwargs), dict)


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_space_contract(name: str) -> None:
    check_space(get_space(name))


@pytest.mark.parametrize("name", SPACE_NAMES)
@PROPERTY
@given(seed=SEEDS)
def test_sample_validate_encode_and_round_trips(name: str, seed: int) -> None:
    space = get_space(name)
    arch = space.sample(seed)
    assert isinstance(arch, Architecture) and arch.space == name
    assert space.validate(arch) is arch
    assert space.sample(seed) == arch  # seeded

    vec = space.encode(arch)
    assert isinstance(vec, np.ndarray) and vec.ndim == 1
    assert vec.shape == (space.encoding_size,)
    assert np.isfinite(vec).all()

    again = Architecture.from_json(arch.to_json())
    assert again == arch and hash(again) == hash(arch)
    rebuilt = Architecture(name, dict(reversed(list(arch.items()))))
    assert rebuilt == arch and hash(rebuilt) == hash(arch)

    text = space.to_string(arch)
    assert isinstance(text, str)
    parsed = space.from_string(text)
    assert parsed == arch and hash(parsed) == hash(arch)
    assert np.array_equal(space.encode(parsed), vec)


@pytest.mark.parametrize("name", SPACE_NAMES)
@PROPERTY
@given(seed=SEEDS)
def test_operators_stay_in_the_space(name: str, seed: int) -> None:
    space = get_space(name)
    rng = np.random.default_rng(seed)
    a, b = space.sample(rng), space.sample(rng)

    child = space.mutate(a, rng)
    assert child.space == name
    space.validate(child)

    nbrs = space.neighbors(a)
    assert len(set(nbrs)) == len(nbrs)
    assert a not in nbrs
    for n in nbrs[:MAX_NEIGHBORS]:
        assert n.space == name
        space.validate(n)

    for x, y in ((a, b), (b, a), (a, a)):
        mixed = space.crossover(x, y, rng)
        assert mixed.space == name
        space.validate(mixed)
    assert space.crossover(a, a, rng) == a


def _build_cases() -> list[object]:
    return [
        pytest.param(name, marks=pytest.mark.slow) if name in SLOW_BUILD else name
        for name in SPACE_NAMES
    ]


@pytest.mark.parametrize("name", _build_cases())
@pytest.mark.parametrize("seed", [0, 1])
def test_build_forward_backward(name: str, seed: int) -> None:
    space = get_space(name)
    arch = space.sample(seed)
    torch.manual_seed(seed)
    options = {"num_classes": 10, **space.small_build_kwargs}
    model = space.build(arch, **options)
    assert isinstance(model, torch.nn.Module)
    model.train()
    x = space.example_input(batch=2)
    out = model(x)
    assert isinstance(out, torch.Tensor)
    assert out.shape == (2, options["num_classes"])
    assert torch.isfinite(out).all()
    out.float().pow(2).mean().backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    if linears:  # the classifier head gets a gradient, whatever the architecture
        assert linears[-1].weight.grad is not None
    model.eval()
    with torch.no_grad():
        assert model(space.example_input(batch=1)).shape == (1, options["num_classes"])
