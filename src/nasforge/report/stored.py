"""Read a stored experiment back: its trials, settings, objectives and search space.

Experiments store their settings in two forms: ``nasforge search`` keeps the whole validated
:class:`~nasforge.config.SearchConfig` under the meta key ``search_config``; every experiment
(the Python API too) keeps its identity under ``config`` (space and evaluator as names or
``describe()`` dicts, objectives as strings or ``[metric, direction]`` pairs). Reports and exports
need one normalized view of either, which :func:`load_experiment` gives.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nasforge.errors import ConfigError, NasforgeError, StorageError
from nasforge.registry import SPACES
from nasforge.space.architecture import Architecture
from nasforge.space.base import SearchSpace
from nasforge.trial import Constraint, Objective, Trial, TrialStatus, ranked_trials

log = logging.getLogger("nasforge.report")

#: Classes and input channels of the datasets tabular benchmarks were trained on, for rebuilding
#: their networks (NAS-Bench-201: CIFAR-10, CIFAR-100 and ImageNet16-120, all RGB).
_TABULAR_CLASSES = {"cifar10": 10, "cifar100": 100, "imagenet16": 120, "imagenet16-120": 120,
                    "imagenet16_120": 120}


@dataclass
class StoredExperiment:
    """A normalized, read-only view of one experiment database."""

    path: Path
    trials: list[Trial]
    space_name: str
    space_options: dict[str, Any]
    strategy: str
    evaluator: str
    evaluator_options: dict[str, Any]
    objectives: tuple[Objective, ...]
    constraints: tuple[Constraint, ...]
    seed: int
    #: The full settings of ``nasforge search`` (None for experiments run from Python).
    search_config: dict[str, Any] | None = None
    #: The identity record every experiment stores.
    config: dict[str, Any] = field(default_factory=dict)
    #: The final stage's summary (top-k re-evaluation, final test, verdict), when it ran.
    final_stage: dict[str, Any] | None = None
    _space: SearchSpace | None = field(default=None, repr=False)
    _space_error: str | None = field(default=None, repr=False)

    @property
    def objective(self) -> Objective:
        """The primary objective."""
        return self.objectives[0]

    @property
    def multi_objective(self) -> bool:
        """Whether the experiment optimized several objectives (a Pareto front)."""
        return len(self.objectives) > 1

    @property
    def space(self) -> SearchSpace | None:
        """The search space, recreated from its name and options (None when that fails)."""
        if self._space is None and self._space_error is None:
            try:
                self._space = SPACES.create(self.space_name, **self.space_options)
            except NasforgeError as exc:
                self._space_error = str(exc)
                log.warning("cannot recreate space %r: %s", self.space_name, exc)
        return self._space

    def arch_text(self, arch: Architecture) -> str:
        """The space's human form of ``arch`` (its JSON when the space is unavailable)."""
        space = self.space
        if space is not None:
            try:
                return str(space.to_string(arch))
            except NasforgeError:
                pass
        return arch.to_json()

    def status_counts(self) -> dict[str, int]:
        """Number of trials per status."""
        out: dict[str, int] = {}
        for t in self.trials:
            out[t.status.value] = out.get(t.status.value, 0) + 1
        return out

    def ok_trials(self) -> list[Trial]:
        """Trials that finished successfully."""
        return [t for t in self.trials if t.status is TrialStatus.OK]

    def ranked(self, unique: bool = True) -> list[Trial]:
        """OK trials best first: the highest fidelity first (under a multi-fidelity scheduler a
        one-epoch result is no rival for a fully trained one), then the primary objective;
        ``unique`` keeps each architecture's best trial only (strategies may evaluate an
        architecture more than once, schedulers once per rung)."""
        ordered = ranked_trials(self.trials, self.objective)
        if not unique:
            return ordered
        seen: set[Architecture] = set()
        out = []
        for t in ordered:
            if t.arch not in seen:
                seen.add(t.arch)
                out.append(t)
        return out

    def pareto_trials(self) -> list[Trial]:
        """OK trials on the Pareto front of all objectives (one per architecture), best primary
        objective first."""
        from nasforge.pareto import pareto_front

        return pareto_front(self.ranked(), self.objectives)

    def metric_names(self) -> list[str]:
        """Every metric some trial reported, objectives first."""
        names = {k for t in self.trials for k in t.metrics}
        first = [o.metric for o in self.objectives if o.metric in names]
        return first + sorted(names - set(first))

    def model_info(self) -> dict[str, Any]:
        """What ``space.build`` needs besides the architecture to rebuild the searched network:
        ``num_classes``, ``in_channels``, ``build_kwargs`` and the ``dataset`` name (None when
        unknown)."""
        opts = self.evaluator_options
        dataset = opts.get("dataset")
        build_kwargs = dict(opts.get("build_kwargs") or {})
        num_classes, in_channels = 10, 3
        if isinstance(dataset, str):
            key = dataset.lower()
            if key in _TABULAR_CLASSES and self.evaluator != "train":
                num_classes = _TABULAR_CLASSES[key]
            else:
                try:
                    from nasforge.data import dataset_info

                    info = dataset_info(dataset)
                    num_classes, in_channels = info.num_classes, info.in_channels
                except NasforgeError:
                    log.warning("unknown dataset %r; assuming 10 classes, 3 channels", dataset)
            if opts.get("channels"):
                in_channels = int(opts["channels"])
        return {"dataset": dataset if isinstance(dataset, str) else None,
                "num_classes": num_classes, "in_channels": in_channels,
                "build_kwargs": build_kwargs}


def _name_and_options(value: Any) -> tuple[str, dict[str, Any]]:
    """``"nb201"`` or a ``describe()`` dict ``{"name": ..., **options}`` -> (name, options)."""
    if isinstance(value, Mapping):
        options = {k: v for k, v in value.items() if k != "name"}
        return str(value.get("name", "")), options
    return str(value or ""), {}


def parse_objectives(raw: Any) -> tuple[Objective, ...]:
    """Stored objectives (``"max:accuracy"`` strings or ``[metric, direction]`` pairs) as
    :class:`Objective` objects; nothing stored means the default objective."""
    if not raw:
        return (Objective(),)
    out = []
    for item in raw:
        if isinstance(item, str):
            out.append(Objective.parse(item))
        elif isinstance(item, Sequence) and len(item) == 2:
            out.append(Objective(str(item[0]), str(item[1])))
        else:
            raise StorageError(f"cannot read the stored objective {item!r}")
    return tuple(out)


def load_experiment(path: str | Path) -> StoredExperiment:
    """Open the experiment database at ``path`` read-only and normalize its settings."""
    from nasforge.experiment import SQLiteStorage

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"experiment database {str(p)!r} does not exist")
    storage = SQLiteStorage(p, readonly=True)
    try:
        trials = storage.trials()
        search = storage.get_meta("search_config")
        config = storage.get_meta("config") or {}
        record = storage.get_meta("final_stage")
    finally:
        storage.close()
    if not isinstance(config, dict):
        config = {}
    src: dict[str, Any] = dict(search) if isinstance(search, dict) else dict(config)
    space_name, _ = _name_and_options(src.get("space", config.get("space")))
    if not space_name and trials:
        space_name = trials[0].arch.space
    # A describe() dict holds a summary (size, decisions), not constructor options.
    space_options = dict(src.get("space_options") or {}) if isinstance(search, dict) else {}
    evaluator, described = _name_and_options(src.get("evaluator", config.get("evaluator")))
    evaluator_options = (dict(src.get("evaluator_options") or {}) if isinstance(search, dict)
                         else described)
    strategy, _ = _name_and_options(src.get("strategy", config.get("strategy")))
    return StoredExperiment(
        path=p,
        trials=trials,
        space_name=space_name,
        space_options=space_options,
        strategy=strategy,
        evaluator=evaluator,
        evaluator_options=evaluator_options,
        objectives=parse_objectives(src.get("objectives", config.get("objectives"))),
        constraints=tuple(Constraint.parse(c) for c in (src.get("constraints") or [])),
        seed=int(src.get("seed", 0) or 0),
        search_config=dict(search) if isinstance(search, dict) else None,
        config=config,
        final_stage=(record.get("summary") if isinstance(record, dict)
                     and isinstance(record.get("summary"), dict) else None),
    )


__all__ = ["StoredExperiment", "load_experiment", "parse_objectives"]
