"""Design checks for search spaces: findings a space designer should look at before searching.

Each check returns a :class:`Finding` (``ok`` / ``warn`` / ``fail`` plus a message and data):

* ``expressiveness`` - how many distinct operation types the decisions offer (option strings that
  name registered ops), or which numeric hyper-parameters vary when no op is named;
* ``identity`` - whether an identity/skip option exists (skip ops, boolean ``skip`` decisions, or
  residuals built into every network, declared by the space attribute ``builtin_residuals = True``);
* ``channels`` - from sample networks run on the space's example input: the widest main-path
  activation at each resolution must not shrink as the resolution drops. A network names its
  main path with a ``main_path()`` method (the modules whose outputs are the successive layer
  outputs); side branches such as skip projections then do not count, since a wide tensor that
  only feeds a projection would hide a narrowing layer. Networks without one are measured on
  every module's inputs and outputs;
* ``size`` - the exact ``size()`` (or the product of option counts as an upper bound);
* ``degenerate`` - the fraction of sampled architectures whose output cannot depend on the input.
  A space may answer with ``is_degenerate(arch)``; where it returns None (the default), the
  sample is built and run on two different random inputs, and identical outputs mark it
  degenerate.

A check that crashes (a network that does not build, say) is itself reported as ``fail``.
"""

from __future__ import annotations

import itertools
import math
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nasforge.errors import ConfigError, unknown
from nasforge.ops.registry import OPS
from nasforge.space.architecture import Architecture
from nasforge.space.base import SearchSpace

LEVELS: tuple[str, ...] = ("ok", "warn", "fail")
IDENTITY_OPS: frozenset[str] = frozenset({"skip_connect", "identity"})
CHECKS: tuple[str, ...] = ("expressiveness", "identity", "channels", "size", "degenerate")


@dataclass(frozen=True)
class Finding:
    """The result of one design check."""

    check: str
    level: str
    message: str
    data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise unknown("finding level", self.level, LEVELS)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"check": self.check, "level": self.level, "message": self.message,
                "data": self.data}


def worst_level(findings: Sequence[Finding]) -> str:
    """The most severe level among ``findings`` (``ok`` when empty)."""
    return max((f.level for f in findings), key=LEVELS.index, default="ok")


def _short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------------- static checks
def check_expressiveness(space: SearchSpace) -> Finding:
    """Distinct operation types among the decisions' options."""
    names = sorted({o for d in space.decisions for o in d.options
                    if isinstance(o, str) and o in OPS})
    real = [n for n in names if n != "none"]
    numeric: dict[str, set[Any]] = defaultdict(set)
    for d in space.decisions:
        numbers = all(isinstance(o, (int, float)) and not isinstance(o, bool) for o in d.options)
        if d.size > 1 and numbers:
            numeric[d.name.rsplit("/", 1)[-1]].update(d.options)
    data = {"ops": names, "numeric": {k: sorted(v) for k, v in sorted(numeric.items())}}
    if len(real) >= 3:
        return Finding("expressiveness", "ok", f"{len(real)} operation types: {', '.join(real)}"
                       + (" (+ none)" if "none" in names else ""), data)
    if real:
        return Finding("expressiveness", "warn",
                       f"only {len(real)} operation type(s): {', '.join(real)}", data)
    if numeric:
        varied = "; ".join(f"{k} in {sorted(v)}" for k, v in sorted(numeric.items()))
        return Finding("expressiveness", "ok",
                       f"no named operations; networks vary numeric hyper-parameters: {varied}",
                       data)
    return Finding("expressiveness", "fail",
                   "no decision offers an operation or a numeric choice", data)


def check_identity(space: SearchSpace) -> Finding:
    """Whether an identity/skip option (or built-in residuals) exists."""
    options = {o for d in space.decisions for o in d.options if isinstance(o, str)}
    ops = sorted(options & IDENTITY_OPS)
    if ops:
        return Finding("identity", "ok", f"identity op available: {', '.join(ops)}", {"ops": ops})
    skips = [d.name for d in space.decisions
             if "skip" in d.name.lower() and set(d.options) == {False, True}]
    if skips:
        return Finding("identity", "ok", f"{len(skips)} boolean skip-connection decisions",
                       {"decisions": len(skips)})
    if space.builtin_residuals:
        return Finding("identity", "ok",
                       "residual (identity) connections are built into every network")
    return Finding("identity", "warn",
                   "no identity or skip option: deep networks of this space may be hard to train")


def check_size(space: SearchSpace) -> Finding:
    """Exact size via ``size()``, else the product of option counts as an upper bound."""
    start = time.perf_counter()
    try:
        size = int(space.size())
        exact = True
    except (NotImplementedError, RecursionError, OverflowError, MemoryError) as exc:
        size = math.prod(d.size for d in space.decisions)
        exact = False
        reason = f"{type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - start
    data = {"size": str(size), "exact": exact,
            "log10": round(math.log10(size), 2) if size > 0 else None,
            "seconds": round(seconds, 4)}
    text = f"{size:,}" if size < 10**9 else f"~{size:.2e}"
    if not exact:
        return Finding("size", "warn", f"size() failed ({reason}); at most {text} architectures",
                       data)
    if size <= 1:
        return Finding("size", "fail",
                       f"the space holds {size} architecture(s): nothing to search", data)
    if size < 1000:
        return Finding("size", "warn", f"only {text} architectures: evaluate them all instead of "
                       "searching", data)
    return Finding("size", "ok", f"{text} architectures (exact)", data)


# ---------------------------------------------------------------------------- network checks
def _build_kwargs(space: SearchSpace, build_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    merged = dict(space.small_build_kwargs)
    merged.update(build_kwargs or {})
    return merged


def _example_input(space: SearchSpace, batch: int, seed: int) -> Any:
    return space.example_input(batch, seed)


def main_path(model: Any) -> list[Any] | None:
    """The modules of ``model``'s main path (its ``main_path()`` method), None when it has none."""
    method = getattr(model, "main_path", None)
    return list(method()) if callable(method) else None


def width_profile(
    model: Any, x: Any, modules: Sequence[Any] | None = None
) -> dict[tuple[int, int], int]:
    """Widest activation (channels) at each spatial size during a forward pass of ``x``.

    With ``modules`` only their outputs count (a network's main path); without, the inputs and
    outputs of every module.
    """
    import torch

    widest: dict[tuple[int, int], int] = {}

    def note(t: Any) -> None:
        if isinstance(t, torch.Tensor) and t.dim() == 4:
            key = (int(t.shape[2]), int(t.shape[3]))
            widest[key] = max(widest.get(key, 0), int(t.shape[1]))
        elif isinstance(t, (tuple, list)):
            for item in t:
                note(item)

    def hook(_module: Any, inputs: Any, output: Any) -> None:
        if modules is None:
            note(inputs)
        note(output)

    watched = list(model.modules()) if modules is None else list(modules)
    handles = [m.register_forward_hook(hook) for m in watched]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return widest


def _monotone(profile: Mapping[tuple[int, int], int]) -> bool:
    widths = [profile[k] for k in sorted(profile, key=lambda hw: -hw[0] * hw[1])]
    return all(b >= a for a, b in itertools.pairwise(widths))


def _describe(profile: Mapping[tuple[int, int], int]) -> str:
    keys = sorted(profile, key=lambda hw: -hw[0] * hw[1])
    return ", ".join(f"{h}x{w}:{profile[(h, w)]}" for h, w in keys)


def check_channels(
    space: SearchSpace, archs: Sequence[Architecture], build_kwargs: Mapping[str, Any] | None,
    seed: int,
) -> Finding:
    """Main-path widths must not shrink as resolution drops, in each sample network."""
    import torch

    kwargs = _build_kwargs(space, build_kwargs)
    bad: list[str] = []
    profiles = []
    measured = set()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for arch in archs:
            model = space.build(arch, **kwargs)
            model.eval()
            path = main_path(model)
            measured.add("main path" if path is not None else "every module")
            profile = width_profile(model, _example_input(space, 1, seed), path)
            profiles.append(_describe(profile))
            if not _monotone(profile):
                bad.append(_describe(profile))
    data = {"networks": len(archs), "shrinking": len(bad), "profiles": profiles,
            "measured": sorted(measured)}
    if not archs:
        return Finding("channels", "warn", "no sample networks to inspect", data)
    if bad:
        return Finding("channels", "warn",
                       f"{len(bad)} of {len(archs)} sample networks get narrower as resolution "
                       f"drops, e.g. (size:channels) {_short(bad[0])}", data)
    return Finding("channels", "ok", f"widths grow or hold as resolution drops in all {len(archs)} "
                   f"sample networks, e.g. {_short(profiles[0])}", data)


def generic_is_degenerate(
    space: SearchSpace, arch: Architecture, build_kwargs: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> bool:
    """Build ``arch``, run two different random inputs; identical outputs mean degenerate."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = space.build(arch, **_build_kwargs(space, build_kwargs))
        model.eval()
        with torch.no_grad():
            a = model(_example_input(space, 2, seed))
            b = model(_example_input(space, 2, seed + 1))
    return bool(torch.allclose(a, b, rtol=1e-5, atol=1e-7))


def check_degenerate(
    space: SearchSpace, archs: Sequence[Architecture], build_kwargs: Mapping[str, Any] | None,
    seed: int,
) -> Finding:
    """Fraction of degenerate architectures among ``archs``."""
    flags: list[bool] = []
    methods: list[str] = []  # how each answer was found, in order of first use
    for a in archs:
        answer = space.is_degenerate(a)
        method = "is_degenerate" if answer is not None else "two-input forward"
        if answer is None:
            answer = generic_is_degenerate(space, a, build_kwargs, seed)
        flags.append(bool(answer))
        if method not in methods:
            methods.append(method)
    method = " and ".join(methods) or "no samples"
    count = sum(flags)
    n = len(flags)
    frac = count / n if n else 0.0
    data = {"samples": n, "degenerate": count, "fraction": round(frac, 4), "method": method}
    if count == 0:
        return Finding("degenerate", "ok", f"none of {n} sampled architectures is degenerate "
                       f"({method})", data)
    example = archs[flags.index(True)]
    try:
        data["example"] = space.to_string(example)
    except ConfigError:
        data["example"] = example.to_json()
    level = "warn" if frac < 0.5 else "fail"
    return Finding("degenerate", level,
                   f"{count} of {n} sampled architectures ({frac:.0%}) have an output that cannot "
                   f"depend on the input ({method})", data)


# ---------------------------------------------------------------------------- entry point
def check_space(
    space: SearchSpace,
    samples: int = 20,
    seed: int = 0,
    build_kwargs: Mapping[str, Any] | None = None,
    channel_samples: int = 3,
    checks: Sequence[str] | None = None,
) -> list[Finding]:
    """Run the design checks on ``space`` and return one finding per check.

    ``samples`` architectures (sampled with ``seed``) feed the degeneracy check, the first
    ``channel_samples`` of them the channel check. ``build_kwargs`` override the space's
    ``small_build_kwargs`` for the networks the checks build.
    """
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ConfigError(f"samples must be a positive integer, got {samples!r}")
    wanted = tuple(checks) if checks is not None else CHECKS
    for name in wanted:
        if name not in CHECKS:
            raise unknown("design check", name, CHECKS)
    rng = np.random.default_rng(seed)
    archs = [space.sample(rng) for _ in range(samples)]
    runners: dict[str, Callable[[], Finding]] = {
        "expressiveness": lambda: check_expressiveness(space),
        "identity": lambda: check_identity(space),
        "channels": lambda: check_channels(space, archs[:channel_samples], build_kwargs, seed),
        "size": lambda: check_size(space),
        "degenerate": lambda: check_degenerate(space, archs, build_kwargs, seed),
    }
    findings = []
    for name in wanted:
        try:
            findings.append(runners[name]())
        except Exception as exc:  # a crashing check is a finding about the space, not a crash here
            findings.append(Finding(name, "fail", f"check crashed: {type(exc).__name__}: "
                                    f"{_short(str(exc), 300)}", {"error": type(exc).__name__}))
    return findings


__all__ = [
    "CHECKS",
    "IDENTITY_OPS",
    "LEVELS",
    "Finding",
    "check_channels",
    "check_degenerate",
    "check_expressiveness",
    "check_identity",
    "check_size",
    "check_space",
    "generic_is_degenerate",
    "main_path",
    "width_profile",
    "worst_level",
]
