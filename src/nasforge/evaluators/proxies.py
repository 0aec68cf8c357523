"""Zero-cost proxy evaluation: score untrained networks instead of training them.

``create_evaluator("proxy", proxy="synflow")`` builds each architecture (seeded init), scores it
with one or more proxies from :mod:`nasforge.proxies` and returns the scores as metrics: one
metric per proxy (``"synflow"``, ``"jacob_cov"``, ...) and ``"score"``, the first (primary)
proxy's value. ``cost`` is the wall time in seconds. Use it like any evaluator, e.g. as a cheap
pre-filter::

    experiment = Experiment(space, create_strategy("rea", space, seed=0),
                            create_evaluator("proxy", proxy="synflow"),
                            objectives="score", budget=Budget(max_trials=1000))

or rank a candidate list by a vote of several proxies, then train only the best few::

    best = [r.arch for r in rank(candidates, ["synflow", "jacob_cov", "snip"],
                                 dataset="fashion_mnist")[:10]]   # data-based: dataset needed

Data: data-free proxies (synflow, params, flops) use only the input shape. The others score one
fixed batch of ``batch_size`` training images (the same batch for every architecture, chosen by
``data_seed``) of ``dataset``, so asking for one of them without a dataset is an error.
``dataset="random"`` opts in to the space's ``example_input`` (random images) with random labels:
computable (e.g. to smoke-test a space) but not informative, and labelled as such in the results.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import nn

from nasforge.data import BatchLoader, DatasetInfo, as_dataset, dataset_info, random_subset
from nasforge.errors import ConfigError, InvalidArchitectureError
from nasforge.evaluators.base import EvalContext, Evaluator
from nasforge.metrics import count_params
from nasforge.proxies import (
    NB201Synflow,
    compute_proxy,
    get_proxy,
    list_proxies,
    vote,
    vote_ranks,
)
from nasforge.registry import EVALUATORS, SPACES
from nasforge.space.architecture import Architecture
from nasforge.space.base import SearchSpace
from nasforge.spaces.nb201 import NB201Space
from nasforge.trial import Result
from nasforge.utils.device import resolve_device
from nasforge.utils.rng import derive_seed

# Build options the fast NB201 synflow scorer reproduces exactly (use_bn: synflow strips BN).
_FAST_NB201_OPTIONS = frozenset({"C", "N", "num_classes", "in_channels", "use_bn"})

#: The ``dataset`` value that asks for random images and labels (never a silent default).
RANDOM_DATA = "random"


def _proxy_names(proxy: str | Sequence[str]) -> tuple[str, ...]:
    names = [proxy] if isinstance(proxy, str) else list(proxy)
    if not names:
        raise ConfigError("at least one proxy is needed, e.g. proxy='synflow'")
    for name in names:
        get_proxy(name)  # raises the error that lists the allowed names
    return tuple(dict.fromkeys(names))  # drop repeats, keep order: the first is primary


@EVALUATORS.register("proxy")
class ProxyEvaluator(Evaluator):
    """Zero-cost proxies of the untrained network; metric ``score`` is the first proxy's value.

    Options: ``proxy`` (a name or a list; see ``nasforge.proxies.list_proxies()``), ``dataset``
    (a dataset name such as ``"fashion_mnist"``, an ``ArrayDataset`` or ``(images, labels)``;
    required by data-based proxies; ``"random"`` for random images and labels; None for
    data-free proxies only), ``data_dir``, ``download``, ``batch_size`` (64), ``data_seed`` (which batch),
    ``build_kwargs`` (passed to ``space.build``), ``device`` (overrides ``ctx.device``) and
    ``fast_nb201`` (score synflow of ``nb201`` cells with :class:`~nasforge.proxies.
    NB201Synflow`, the same number several times faster; default True).
    """

    name = "proxy"

    def __init__(
        self,
        proxy: str | Sequence[str] = "synflow",
        dataset: Any = None,
        *,
        data_dir: str | None = None,
        download: bool = False,
        batch_size: int = 64,
        data_seed: int = 0,
        build_kwargs: Mapping[str, Any] | None = None,
        device: str | None = None,
        fast_nb201: bool = True,
    ) -> None:
        super().__init__()
        self.proxies = _proxy_names(proxy)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.batch_size = batch_size
        self.dataset = dataset
        self.data_dir = data_dir
        self.download = bool(download)
        self.data_seed = int(data_seed)
        self.build_kwargs = dict(build_kwargs or {})
        if dataset is None and self.needs_data:
            data_based = [n for n in self.proxies if not get_proxy(n).data_free]
            raise ConfigError(
                f"data-based proxies {', '.join(map(repr, data_based))} need images, but no "
                "dataset was given: pass dataset=... (a name such as 'cifar10', an ArrayDataset or "
                f"(images, labels)), dataset={RANDOM_DATA!r} to score random images and labels "
                "(computable, not informative), or use only data-free proxies: "
                f"{', '.join(list_proxies(data_free=True))}"
            )
        if self._real_data:
            clash = sorted({"num_classes", "in_channels"} & set(self.build_kwargs))
            if clash:
                raise ConfigError(
                    f"build_kwargs {clash} are set by the dataset {dataset!r}; leave them out"
                )
        if isinstance(dataset, str) and dataset != RANDOM_DATA:
            dataset_info(dataset)  # an unknown name fails now, not in a worker
        self.device = device
        self.fast_nb201 = bool(fast_nb201)
        self._batches: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._info: DatasetInfo | None = None
        self._fast: dict[str, NB201Synflow | None] = {}

    # ------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict[str, Any]:
        # Worker processes load their own batch instead of receiving tensors.
        state = self.__dict__.copy()
        state["_batches"] = {}
        state["_fast"] = {}
        return state

    # ------------------------------------------------------------------ data
    @property
    def needs_data(self) -> bool:
        """Whether some requested proxy looks at images (not only their shape)."""
        return any(not get_proxy(n).data_free for n in self.proxies)

    @property
    def _real_data(self) -> bool:
        """Whether a dataset (not None, not ``"random"``) supplies the images."""
        return self.dataset is not None and not (
            isinstance(self.dataset, str) and self.dataset == RANDOM_DATA)

    def _space(self) -> SearchSpace:
        if self.space is None:
            raise ConfigError("the evaluator is not bound to a search space; call bind(space)")
        return self.space

    def _load_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        if not self._real_data:
            inputs = self._space().example_input(self.batch_size, seed=self.data_seed)
            gen = torch.Generator().manual_seed(self.data_seed)
            classes = int(self.build_kwargs.get("num_classes", 10))
            return inputs, torch.randint(0, classes, (self.batch_size,), generator=gen)
        data = as_dataset(self.dataset, "train", self.data_dir, self.download)
        subset = random_subset(data, self.batch_size, self.data_seed, "batch_size")
        loader = BatchLoader(subset, self.batch_size, shuffle=False, augment="none")
        return next(iter(loader))

    def batch(self, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """The fixed ``(inputs, targets)`` batch every architecture is scored on (cached)."""
        if device not in self._batches:
            cpu = self._batches.get("cpu") or self._load_batch()
            self._batches["cpu"] = cpu
            self._batches[device] = (cpu[0].to(device), cpu[1].to(device))
        return self._batches[device]

    def input_shape(self) -> tuple[int, ...]:
        """Shape of one network input, known without loading a dataset given by name."""
        if not self._real_data:
            return tuple(self._space().example_input(1, seed=self.data_seed).shape[1:])
        return self._dataset_info().input_shape

    def _dataset_info(self) -> DatasetInfo:
        if isinstance(self.dataset, str):
            return dataset_info(self.dataset)
        if self._info is None:
            self._info = as_dataset(self.dataset, "train", self.data_dir, self.download).info
        return self._info

    def _build_options(self) -> dict[str, Any]:
        opts = dict(self.build_kwargs)
        if self._real_data:
            info = self._dataset_info()
            opts["num_classes"] = info.num_classes
            opts["in_channels"] = info.in_channels
        return opts

    # ------------------------------------------------------------------ models
    def build(self, arch: Architecture, seed: int = 0) -> nn.Module:
        """The untrained network of ``arch``, initialized under ``seed`` (global RNG untouched)."""
        space = self._space()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = space.build(arch, **self._build_options())
        if not isinstance(model, nn.Module):
            raise ConfigError(
                f"space {space.name!r} built a {type(model).__name__}, not a torch Module"
            )
        return model

    def bind(self, space: SearchSpace) -> ProxyEvaluator:
        super().bind(space)
        self._fast = {}  # the fast scorer depends on the space
        return self

    def _fast_synflow(self, device: str) -> NB201Synflow | None:
        if device not in self._fast:
            self._fast[device] = self._make_fast_synflow(device)
        return self._fast[device]

    def _make_fast_synflow(self, device: str) -> NB201Synflow | None:
        space = self.space
        if not (self.fast_nb201 and "synflow" in self.proxies and isinstance(space, NB201Space)
                and type(space).build is NB201Space.build):
            return None
        opts = self._build_options()
        if not set(opts) <= _FAST_NB201_OPTIONS:
            return None
        shape = self.input_shape()
        return NB201Synflow(C=opts.get("C", 16), N=opts.get("N", 5),
                            num_classes=opts.get("num_classes", 10),
                            in_channels=opts.get("in_channels", 3),
                            image_size=(int(shape[1]), int(shape[2])), device=device)

    def cheap_metrics(self, arch: Architecture) -> dict[str, float]:
        """The parameter count, so that experiments check size constraints before scoring."""
        return {"params": float(count_params(self.build(arch)))}

    # ------------------------------------------------------------------ evaluation
    def scores(self, arch: Architecture, seed: int = 0, device: str = "cpu") -> dict[str, float]:
        """``{proxy: score}`` of ``arch``'s network initialized under ``seed``."""
        fast = self._fast_synflow(device)
        out: dict[str, float] = {}
        model: nn.Module | None = None
        for name in self.proxies:
            if name == "synflow" and fast is not None:
                out[name] = fast(arch, seed)
                continue
            if model is None:
                model = self.build(arch, seed).to(device)
            if get_proxy(name).data_free:
                inputs = torch.zeros((1, *self.input_shape()), device=device)
                targets = None
            else:
                inputs, targets = self.batch(device)
            out[name] = compute_proxy(name, model, inputs, targets, seed=seed)
        return out

    def evaluate(self, arch: Architecture, ctx: EvalContext) -> Result:
        """Score ``arch``; metrics: every proxy's value and ``score`` (the first proxy's)."""
        started = time.perf_counter()
        device = resolve_device(self.device or ctx.device)
        scores = self.scores(arch, derive_seed(ctx.seed, "init"), device)
        metrics = {"score": scores[self.proxies[0]], **scores}
        info = {"proxies": list(self.proxies), "primary": self.proxies[0],
                "data": self._data_label() if self.needs_data else "none (data-free)"}
        return Result(metrics=metrics, cost=time.perf_counter() - started, info=info)

    def _data_label(self) -> str:
        if not self._real_data:
            return "random example_input, random labels (not informative)"
        return str(self.dataset) if isinstance(self.dataset, str) else type(self.dataset).__name__

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "proxies": list(self.proxies),
                "dataset": self.dataset if isinstance(self.dataset, str) or self.dataset is None
                else type(self.dataset).__name__,
                "batch_size": self.batch_size, "data_seed": self.data_seed,
                "build_kwargs": self.build_kwargs}


class RankedArch(NamedTuple):
    """One candidate of :func:`rank`: its proxy scores, its vote and its rank (1 = best)."""

    arch: Architecture
    scores: dict[str, float]
    vote_rank: int
    vote: float


def rank(
    archs: Sequence[Architecture],
    proxies: str | Sequence[str] = ("synflow", "jacob_cov", "snip"),
    *,
    space: SearchSpace | None = None,
    method: str = "sum",
    seed: int = 0,
    **options: Any,
) -> list[RankedArch]:
    """Score every candidate with ``proxies`` and rank them by a vote, best first.

    ``method``: ``"sum"`` of per-proxy ranks or ``"majority"`` of pairwise preferences (see
    :mod:`nasforge.proxies.vote`; Abdelfattah et al., ICLR 2021, vote with synflow, jacob_cov and
    snip, the default). Every candidate's network is initialized under the same ``seed``.
    ``space`` defaults to the registered space the architectures name; ``options`` go to
    :class:`ProxyEvaluator` (``dataset``, ``batch_size``, ``build_kwargs``, ...).

    The default vote includes data-based proxies (jacob_cov, snip), so it needs
    ``dataset=...``; without one, a ConfigError says so (pass data-free proxies only, e.g.
    ``rank(archs, "synflow")``, to rank without data).
    """
    candidates = list(archs)
    if not candidates:
        raise ConfigError("rank() needs at least one architecture")
    names = {a.space if isinstance(a, Architecture) else type(a).__name__ for a in candidates}
    if len(names) != 1 or not all(isinstance(a, Architecture) for a in candidates):
        raise InvalidArchitectureError(
            f"rank() needs Architectures of one space, got {sorted(names)}"
        )
    if space is None:
        space = SPACES.create(next(iter(names)))
    evaluator = ProxyEvaluator(proxy=proxies, **options).bind(space)
    device = resolve_device(evaluator.device or "auto")
    seen = [evaluator.scores(space.validate(a), seed, device) for a in candidates]
    table = {name: [s[name] for s in seen] for name in evaluator.proxies}
    votes = vote(table, method)
    ranks = vote_ranks(table, method)
    ranked = [RankedArch(a, s, int(r), float(v))
              for a, s, r, v in zip(candidates, seen, ranks, votes)]
    return sorted(ranked, key=lambda r: r.vote_rank)  # stable: ties keep the input order


__all__ = ["RANDOM_DATA", "ProxyEvaluator", "RankedArch", "rank"]
