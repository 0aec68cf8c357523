"""The Supernet base class: a weight-sharing network over a search space, with its mixing modes.

A supernet is the space's network with every decided edge replaced by a :class:`MixedOp` that holds
all candidate ops, built by the same operation registry (:func:`nasforge.ops.create_op`) as the
derived networks. Architecture parameters (``alpha``, one logit vector per decision key) are
``nn.Parameter`` s inside ``state_dict`` under ``alphas.*``, kept apart from the weights by
:meth:`Supernet.arch_parameters` / :meth:`Supernet.weight_parameters` for the two optimizers of
bilevel methods.

Mixing modes (:meth:`Supernet.set_mode`):

- ``"softmax"``: DARTS' continuous relaxation, every op weighted by ``softmax(alpha)``;
- ``"gumbel"``: GDAS' hard Gumbel-softmax sample per key and forward pass (one op computed);
- ``"single_path"``: one fixed path (:meth:`Supernet.set_path`) or, without one, a uniformly
  sampled path per forward pass (SPOS); only the chosen ops are computed.

Spaces add a supernet by registering a builder with :func:`register_supernet` (into
:data:`nasforge.registry.SUPERNETS`); ``space.supernet()`` consults that registry.
"""

from __future__ import annotations

import json
import re
from abc import abstractmethod
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch import nn

from nasforge.errors import ConfigError, InvalidArchitectureError, allowed
from nasforge.registry import SUPERNETS
from nasforge.space.architecture import Architecture
from nasforge.space.base import SearchSpace
from nasforge.supernet.mixed import MixedOp, Sampled, Selection, Weighted, gumbel_hard
from nasforge.supernet.recompute import check_level, checkpoint_modules, uncheckpoint

MODES: tuple[str, ...] = ("softmax", "gumbel", "single_path")
Path = Mapping[str, Any]
"""A path through the supernet: decision key -> chosen candidate op (or choice, for elastic nets)."""

_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


class Supernet(nn.Module):
    """Weight-sharing network of one search space (subclasses build the body and the arch mapping).

    Subclasses call :meth:`_init_alphas` once their MixedOps exist, implement :meth:`body` (the
    forward pass of the network with the mixed ops' selections already set), :meth:`path_of`
    (architecture -> path), :meth:`derive` (discretize the architecture parameters) and, when the
    derived network's modules are not laid out like the supernet's, :meth:`_derived_prefix`.
    """

    root: str = ""
    """Name prefix of the supernet's modules that the derived network lacks (e.g. ``"net."``)."""

    def __init__(self, space: SearchSpace, build_kwargs: Mapping[str, Any]) -> None:
        super().__init__()
        self.space = space
        self.build_kwargs: dict[str, Any] = dict(build_kwargs)
        self.mode = "softmax"
        self.tau = 1.0
        self._path: dict[str, str] | None = None
        self._override: dict[str, torch.Tensor] | None = None
        # Gumbel noise and uniform paths are drawn from this CPU generator (repeatable everywhere).
        self.generator = torch.Generator().manual_seed(0)
        self.alphas = nn.ParameterDict()
        self._keys: tuple[str, ...] = ()
        self._candidates: dict[str, tuple[str, ...]] = {}
        self._mixed: list[MixedOp] = []
        self.checkpointing = "none"

    # ------------------------------------------------------------------ set-up (subclasses)
    def _init_alphas(self, init_std: float = 1e-3) -> None:
        """Create one logit vector per decision key (DARTS init: ``1e-3 * N(0, 1)``)."""
        keys: dict[str, tuple[str, ...]] = {}
        for op in self.mixed_ops():
            if op.key in keys and keys[op.key] != op.names:
                raise ConfigError(f"mixed ops sharing key {op.key!r} have different candidates")
            keys[op.key] = op.names
        self._keys = tuple(keys)
        self._candidates = keys
        # Cached once: forward sets every mixed op's selection and walking modules() is slow.
        self._mixed = list(self.mixed_ops())
        for key, names in keys.items():
            self.alphas[_param_name(key)] = nn.Parameter(init_std * torch.randn(len(names)))

    # ------------------------------------------------------------------ structure
    def mixed_ops(self) -> Iterator[MixedOp]:
        """Every MixedOp of the network (several may share one key)."""
        for m in self.modules():
            if isinstance(m, MixedOp):
                yield m

    @property
    def keys(self) -> tuple[str, ...]:
        """The decision keys that own architecture parameters, in order."""
        return self._keys

    def candidates(self, key: str) -> tuple[str, ...]:
        """Candidate op names of ``key``."""
        if key not in self._candidates:
            raise ConfigError(f"supernet has no decision key {key!r}; allowed: {allowed(self._keys)}")
        return self._candidates[key]

    def alpha(self, key: str) -> nn.Parameter:
        """The architecture logits of ``key``."""
        self.candidates(key)
        param: nn.Parameter = self.alphas[_param_name(key)]
        return param

    def arch_parameters(self) -> list[nn.Parameter]:
        """Architecture parameters (for the architecture optimizer)."""
        return list(self.alphas.values())

    def weight_parameters(self) -> list[nn.Parameter]:
        """Every parameter that is not an architecture parameter (for the weight optimizer)."""
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def arch_weights(self) -> dict[str, dict[str, float]]:
        """``softmax(alpha)`` per key as plain floats (for logs and JSON)."""
        out: dict[str, dict[str, float]] = {}
        for key in self._keys:
            probs = torch.softmax(self.alpha(key).detach().float().cpu(), dim=-1)
            out[key] = {n: float(p) for n, p in zip(self._candidates[key], probs)}
        return out

    def cells(self) -> list[nn.Module]:
        """The modules that ``set_checkpointing("cell")`` checkpoints (none by default: spaces
        without cells support ``"none"`` and ``"mixed_op"`` only)."""
        return []

    def set_checkpointing(self, level: str) -> Supernet:
        """Activation checkpointing: ``"none"``, ``"mixed_op"`` or ``"cell"``
        (:mod:`nasforge.supernet.recompute`): less memory for one more forward pass per step.

        It changes neither the weights nor the function computed (gradients and BatchNorm statistics
        equal those without it), so it is not part of :meth:`describe` and checkpoints.
        """
        level = check_level(level)
        parts: list[nn.Module] = []
        if level == "mixed_op":
            parts = list(self._mixed)
        elif level == "cell":
            parts = self.cells()
            if not parts:
                raise ConfigError(
                    f"the {self.space.name} supernet has no cells to checkpoint; use checkpointing "
                    "'mixed_op' or 'none'"
                )
        uncheckpoint(self)
        checkpoint_modules(parts)
        self.checkpointing = level
        return self

    # ------------------------------------------------------------------ modes and paths
    def set_mode(self, mode: str, path: Path | None = None) -> Supernet:
        """Choose how mixed ops compute (see the module doc); ``path`` fixes a single path."""
        if mode not in MODES:
            raise ConfigError(f"unknown supernet mode {mode!r}; allowed: {allowed(MODES)}")
        self.mode = mode
        self._override = None
        if path is not None:
            if mode != "single_path":
                raise ConfigError(f"a fixed path needs mode 'single_path', not {mode!r}")
            self.set_path(path)
        elif mode != "single_path":
            self._path = None
        return self

    def set_path(self, path: Path | None) -> Supernet:
        """Fix the single path every forward computes (None: sample a uniform path per forward)."""
        if path is None:
            self._path = None
            return self
        missing = [k for k in self._keys if k not in path]
        extra = [k for k in path if k not in self._candidates]
        if missing or extra:
            raise ConfigError(
                f"a path must name one op for each key {allowed(self._keys)}; "
                f"missing {allowed(missing)}, unknown {allowed(extra)}"
            )
        for key, op in path.items():
            if op not in self._candidates[key]:
                raise ConfigError(
                    f"op {op!r} is not a candidate of {key!r}; allowed: {allowed(self._candidates[key])}"
                )
        self.mode = "single_path"
        self._path = {k: str(path[k]) for k in self._keys}
        return self

    def set_arch(self, arch: Architecture) -> Supernet:
        """Fix the single path of ``arch`` (what the derived network of ``arch`` computes)."""
        return self.set_path(self.path_of(arch))

    @property
    def path(self) -> dict[str, Any] | None:
        """The fixed single path, if any."""
        return None if self._path is None else dict(self._path)

    def uniform_path(self) -> dict[str, str]:
        """A path with each key's op uniform over its candidates (drawn from :attr:`generator`)."""
        out = {}
        for key in self._keys:
            names = self._candidates[key]
            out[key] = names[int(torch.randint(len(names), (1,), generator=self.generator))]
        return out

    def forward_with_weights(
        self, x: torch.Tensor, weights: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        """Forward with explicit mixing weights per key instead of ``softmax(alpha)``.

        With one-hot weights this computes what the derived network of that path computes.
        """
        missing = [k for k in self._keys if k not in weights]
        if missing:
            raise ConfigError(f"weights are missing for keys {allowed(missing)}")
        self._override = dict(weights)
        try:
            return self(x)
        finally:
            self._override = None

    def selections(self) -> dict[str, Selection]:
        """The selection of every key for the next forward pass, following the mode."""
        sel: dict[str, Selection] = {}
        for key in self._keys:
            names = self._candidates[key]
            if self._override is not None:
                sel[key] = Weighted(self._override[key])
            elif self.mode == "softmax":
                sel[key] = Weighted(torch.softmax(self.alpha(key), dim=-1))
            elif self.mode == "gumbel":
                index, hard = gumbel_hard(self.alpha(key), self.tau, self.generator)
                sel[key] = Sampled(index, hard[index])
            elif self._path is not None:
                sel[key] = Sampled(names.index(self._path[key]))
            else:
                sel[key] = Sampled(int(torch.randint(len(names), (1,), generator=self.generator)))
        return sel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sel = self.selections()
        for op in self._mixed:
            op.selection = sel[op.key]
        try:
            return self.body(x)
        finally:
            for op in self._mixed:
                op.selection = None

    @abstractmethod
    def body(self, x: torch.Tensor) -> torch.Tensor:
        """The network's forward pass (mixed ops' selections are set); returns the logits."""

    # ------------------------------------------------------------------ architectures
    @abstractmethod
    def path_of(self, arch: Architecture) -> dict[str, Any]:
        """The supernet path that computes ``arch``'s derived network."""

    @abstractmethod
    def derive(self, **options: Any) -> Architecture:
        """Discretize the architecture parameters into an architecture of the space."""

    def one_hot(self, arch: Architecture) -> dict[str, torch.Tensor]:
        """One-hot mixing weights per key selecting ``arch``'s path."""
        path = self.path_of(arch)
        out = {}
        for key in self._keys:
            names = self._candidates[key]
            w = torch.zeros(len(names), device=self.alpha(key).device, dtype=self.alpha(key).dtype)
            w[names.index(path[key])] = 1.0
            out[key] = w
        return out

    def _derived_prefix(self, op: MixedOp, prefix: str, choice: str, arch: Architecture) -> str | None:
        """Module name in the derived network of the op ``choice`` of the mixed op at ``prefix``.

        The default keeps the mixed op's own name (networks laid out like the supernet); None means
        the derived network has no module for it (an edge the architecture does not use).
        """
        return prefix

    def _derived_leaf(self, op: MixedOp, choice: str, leaf: str) -> str | None:
        """Name inside the derived network's op of the candidate ``choice``'s entry ``leaf``.

        The default keeps it (candidates are the derived network's ops); None drops an entry of a
        search-only module the derived network does not have.
        """
        return leaf

    def derived_state_dict(self, arch: Architecture) -> dict[str, torch.Tensor]:
        """The supernet's weights that ``space.build(arch, **build_kwargs)`` uses, under its names."""
        self.space.validate(arch)
        path = self.path_of(arch)
        mixed = {name: m for name, m in self.named_modules() if isinstance(m, MixedOp)}
        out: dict[str, torch.Tensor] = {}
        arch_ids = {id(p) for p in self.arch_parameters()}
        arch_names = {n for n, p in self.named_parameters() if id(p) in arch_ids}
        for name, tensor in self.state_dict().items():
            if name in arch_names:
                continue
            owner = _mixed_owner(name, mixed)
            if owner is None:
                out[self._strip_root(name)] = tensor
                continue
            op = mixed[owner]
            rest = name[len(owner) + len(".candidates."):]
            choice, _, leaf = rest.partition(".")
            if choice != path[op.key]:
                continue
            target = self._derived_prefix(op, self._strip_root(owner), choice, arch)
            derived_leaf = self._derived_leaf(op, choice, leaf)
            if target is not None and derived_leaf is not None:
                out[f"{target}.{derived_leaf}" if target else derived_leaf] = tensor
        return out

    def _strip_root(self, name: str) -> str:
        if not name.startswith(self.root):
            raise ConfigError(f"supernet entry {name!r} lies outside its root {self.root!r}")
        return name[len(self.root):]

    def extract(self, arch: Architecture, **build_overrides: Any) -> nn.Module:
        """``space.build(arch)`` carrying this supernet's trained weights for ``arch``'s path.

        BatchNorm layers that are affine in the derived network but not in the supernet keep the
        identity transform (weight 1, bias 0), so in eval mode both compute the same function.
        """
        kwargs = {**self.build_kwargs, **build_overrides}
        net: nn.Module = self.space.build(arch, **kwargs)
        state = self.derived_state_dict(arch)
        target = net.state_dict()
        unexpected = sorted(set(state) - set(target))
        if unexpected:
            raise ConfigError(
                f"supernet weights {unexpected[:5]} have no place in the derived network of {arch!r}"
            )
        missing = set(target) - set(state)
        affine = _batchnorm_affine_names(net)
        bad = sorted(missing - affine)
        if bad:
            raise ConfigError(f"the supernet has no weights for {bad[:5]} of the derived network")
        for name in missing:
            state[name] = torch.ones_like(target[name]) if name.endswith("weight") else torch.zeros_like(
                target[name]
            )
        for name, tensor in state.items():
            if tensor.shape != target[name].shape:
                raise ConfigError(
                    f"shape of {name}: supernet {tuple(tensor.shape)}, derived {tuple(target[name].shape)}"
                )
        net.load_state_dict(state, strict=True)
        return net.to(next(self.parameters()).device)

    def describe(self) -> dict[str, Any]:
        """JSON-able identity of this supernet (for checkpoints): the space's name and constructor
        options (:func:`space_options`; None when the space cannot report them) and the build
        options."""
        return {"space": self.space.name, "space_options": space_options(self.space),
                "kwargs": dict(self.build_kwargs)}


def space_options(space: SearchSpace) -> dict[str, Any] | None:
    """The constructor options of ``space`` as plain JSON data (tuples become lists), or None.

    Spaces report them with :meth:`SearchSpace.options` (``SPACES.create(name, **options)`` makes
    the same space again). Its default is ``{}`` for a space whose constructor takes no arguments
    and None for any other space that does not override it: its checkpoints cannot rebuild it
    with its options.
    """
    options = space.options()
    if options is None:
        return None
    try:
        plain = json.loads(json.dumps(options))
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"space {space.name!r} reports options that are not plain JSON data ({exc}): {options!r}"
        ) from None
    if not isinstance(plain, dict):
        raise ConfigError(f"space {space.name!r}: options() must return a mapping, got {options!r}")
    return plain


def _param_name(key: str) -> str:
    # ParameterDict names cannot contain '.'; decision keys use '/' and '_', which are kept.
    return re.sub(r"[^0-9A-Za-z_/]", "_", key).replace("/", "__")


def _mixed_owner(name: str, mixed: Mapping[str, MixedOp]) -> str | None:
    """The MixedOp module name whose candidates hold state entry ``name``, if any."""
    marker = ".candidates."
    index = name.find(marker)
    while index >= 0:
        prefix = name[:index]
        if prefix in mixed:
            return prefix
        index = name.find(marker, index + 1)
    return None


def _batchnorm_affine_names(net: nn.Module) -> set[str]:
    names: set[str] = set()
    for mod_name, mod in net.named_modules():
        if isinstance(mod, _BATCHNORMS) and mod.affine:
            names.update(f"{mod_name}.{leaf}" for leaf in ("weight", "bias"))
    return names


# ---------------------------------------------------------------------- registry of builders
SupernetBuilder = Callable[..., Supernet]


def register_supernet(space_name: str) -> Callable[[SupernetBuilder], SupernetBuilder]:
    """Decorator: ``builder(space, **kwargs) -> Supernet`` serves ``space.supernet()`` for a space.

    The builder goes into :data:`nasforge.registry.SUPERNETS`, where ``SearchSpace.supernet``
    looks it up.
    """
    return SUPERNETS.register(space_name)


def build_supernet(space: SearchSpace, **kwargs: Any) -> Supernet:
    """The supernet of ``space`` (error naming the spaces that have one)."""
    if space.name not in SUPERNETS:
        raise ConfigError(
            f"space {space.name!r} has no weight-sharing supernet; spaces with one: "
            f"{allowed(SUPERNETS.names())}"
        )
    net: Supernet = SUPERNETS.get(space.name)(space, **kwargs)
    return net


def seeded_supernet(space: SearchSpace, seed: int, **kwargs: Any) -> Supernet:
    """``space.supernet(**kwargs)`` with weights initialized from ``seed`` (global RNG untouched)."""
    from nasforge.utils.rng import derive_seed

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, "supernet-init"))
        net = space.supernet(**kwargs)
    if not isinstance(net, Supernet):
        raise ConfigError(f"space {space.name!r} returned {type(net).__name__}, not a Supernet")
    return net


def supernet_spaces() -> list[str]:
    """Names of the spaces that have a supernet."""
    return SUPERNETS.names()


def check_arch(space: SearchSpace, arch: Architecture) -> Architecture:
    """Validate ``arch`` for ``space`` with a message that says it was meant for a supernet."""
    try:
        return space.validate(arch)
    except InvalidArchitectureError as exc:
        raise InvalidArchitectureError(f"cannot place architecture on the supernet: {exc}") from None


__all__ = [
    "MODES",
    "Path",
    "Supernet",
    "build_supernet",
    "check_arch",
    "register_supernet",
    "seeded_supernet",
    "space_options",
    "supernet_spaces",
]
