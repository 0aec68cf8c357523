"""Experiment configuration: one validated model shared by the CLI, YAML files and resume.

A :class:`SearchConfig` is everything ``nasforge search`` needs. It is stored with the experiment,
so ``nasforge search --resume DB`` can rebuild the same experiment from the database alone.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from nasforge.errors import ConfigError, file_error
from nasforge.registry import EVALUATORS, PRUNERS, SCHEDULERS, SPACES, STRATEGIES, OptionSource
from nasforge.trial import Constraint, Objective

if TYPE_CHECKING:
    from nasforge.experiment import Callback, Experiment, Storage

#: The fields that define *which* experiment this is; the others (budget, storage, executor, device)
#: may change between runs, e.g. to extend the budget of a finished search.
IDENTITY_FIELDS = {
    "space", "space_options", "strategy", "strategy_options", "evaluator", "evaluator_options",
    "objectives", "constraints", "seed", "scheduler", "scheduler_options", "pruner",
    "pruner_options", "preset",
}

#: Identity fields added later: left out of the stored identity while unset, so experiments
#: stored before they existed still resume.
_OPTIONAL_IDENTITY = ("scheduler", "scheduler_options", "pruner", "pruner_options", "preset")

EXECUTORS = ("inline", "process", "ray")


class SearchConfig(BaseModel):
    """Settings of one search experiment (every field has a CLI flag and a YAML key)."""

    model_config = ConfigDict(extra="forbid")

    space: str = "nb201"
    space_options: dict[str, Any] = Field(default_factory=dict)
    preset: str | None = None
    strategy: str = "rea"
    strategy_options: dict[str, Any] = Field(default_factory=dict)
    evaluator: str = "train"
    evaluator_options: dict[str, Any] = Field(default_factory=dict)
    objectives: list[str] = Field(default_factory=lambda: ["accuracy"])
    constraints: list[str] = Field(default_factory=list)
    budget_trials: int | None = None
    budget_seconds: float | None = None
    budget_cost: float | None = None
    budget_fidelity: float | None = None
    scheduler: str | None = None
    scheduler_options: dict[str, Any] = Field(default_factory=dict)
    pruner: str | None = None
    pruner_options: dict[str, Any] = Field(default_factory=dict)
    final: bool = False
    top_k: int = 3
    reeval_seeds: int = 2
    final_seeds: int = 3
    final_fidelity: float | None = None
    baseline: str | None = "reference"
    seed: int = 0
    storage: str | None = None
    durability: str = "normal"
    executor: str | None = None
    ray_address: str | None = None
    ray_num_cpus: float | None = None
    ray_num_gpus: float | None = None
    retries: int = 0
    workers: int = 1
    device: str = "auto"
    trial_timeout: float | None = None
    mlflow: str | None = None
    tensorboard: str | None = None

    @field_validator("space")
    @classmethod
    def _space_known(cls, v: str) -> str:
        SPACES.get(v)
        return v

    @field_validator("strategy")
    @classmethod
    def _strategy_known(cls, v: str) -> str:
        STRATEGIES.get(v)
        return v

    @field_validator("evaluator")
    @classmethod
    def _evaluator_known(cls, v: str) -> str:
        EVALUATORS.get(v)
        return v

    @field_validator("scheduler")
    @classmethod
    def _scheduler_known(cls, v: str | None) -> str | None:
        if v is not None:
            SCHEDULERS.get(v)
        return v

    @field_validator("pruner")
    @classmethod
    def _pruner_known(cls, v: str | None) -> str | None:
        if v is not None:
            PRUNERS.get(v)
        return v

    @field_validator("objectives")
    @classmethod
    def _objectives_parse(cls, v: list[str]) -> list[str]:
        for o in v:
            Objective.parse(o)
        if not v:
            raise ConfigError("at least one objective is needed")
        return v

    @field_validator("constraints")
    @classmethod
    def _constraints_parse(cls, v: list[str]) -> list[str]:
        for c in v:
            Constraint.parse(c)
        return v

    @field_validator("durability")
    @classmethod
    def _durability_known(cls, v: str) -> str:
        from nasforge.experiment.storage import check_durability

        return check_durability(v)

    @field_validator("executor")
    @classmethod
    def _executor_known(cls, v: str | None) -> str | None:
        if v is not None and v not in EXECUTORS:
            raise ConfigError(f"unknown executor {v!r}; allowed: {', '.join(map(repr, EXECUTORS))}")
        return v

    @field_validator("seed")
    @classmethod
    def _seed_non_negative(cls, v: int) -> int:
        if v < 0:
            raise ConfigError("seed must be an integer >= 0")
        return v

    @field_validator("ray_num_cpus", "ray_num_gpus")
    @classmethod
    def _resources_non_negative(cls, v: float | None) -> float | None:
        if v is not None and not v >= 0:
            raise ConfigError("must be a number >= 0 (CPUs or GPUs each trial reserves)")
        return v

    @model_validator(mode="after")
    def _apply_preset(self) -> SearchConfig:
        # The preset's options go into space_options (the user's win), so the stored settings
        # rebuild the same space everywhere (report, export, retrain) without knowing presets.
        if self.preset is not None:
            from nasforge.spaces.presets import resolve_preset

            given = self.space if "space" in self.model_fields_set else None
            self.space, self.space_options = resolve_preset(given, self.preset, self.space_options)
        return self

    @model_validator(mode="after")
    def _ray_settings_need_ray(self) -> SearchConfig:
        # Silently ignoring them would run trials without the GPUs the user asked for.
        given = [k for k in ("ray_address", "ray_num_cpus", "ray_num_gpus")
                 if getattr(self, k) is not None]
        if given and self.executor != "ray":
            raise ConfigError(
                f"{', '.join(given)} {'are' if len(given) > 1 else 'is'} only used by executor "
                f"'ray', but the executor is "
                f"{self.executor!r}; set executor: ray (--executor ray) or drop them"
            )
        if self.ray_num_cpus == 0 and self.ray_num_gpus in (0, None):
            raise ConfigError("ray_num_cpus is 0 and no GPUs are reserved: a trial needs some "
                              "resource; set ray_num_cpus > 0 or ray_num_gpus > 0")
        return self

    @field_validator("workers")
    @classmethod
    def _workers_positive(cls, v: int) -> int:
        if v < 1:
            raise ConfigError(f"workers must be >= 1, got {v}")
        return v


def make_config(
    data: Mapping[str, Any], source: str = "options", sources: Mapping[str, str] | None = None
) -> SearchConfig:
    """Validate ``data`` into a SearchConfig; errors name the source, the key and the bad value.

    ``sources`` maps keys (``"seed"``, ``"strategy_options.population_size"``) to where they were
    read when the settings were merged from several places; ``source`` covers the rest.
    """
    sources = sources or {}
    try:
        return SearchConfig.model_validate(dict(data))
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "(top level)"
            msg = str(err["msg"]).removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                allowed = ", ".join(SearchConfig.model_fields)
                msg = f"unknown key; allowed keys: {allowed}"
            if not err["loc"]:  # a check across keys: name where the first key it names was set
                found = (re.search(rf"\b{f}\b", msg) for f in SearchConfig.model_fields)
                named = sorted((m.start(), m.group()) for m in found
                               if m is not None and m.group() in sources)
                lines.append(f"{sources[named[0][1]] if named else source}: {msg}")
                continue
            where = sources.get(key) or sources.get(str(err["loc"][0])) or source
            lines.append(f"{where}: {key}: {msg} (got {err.get('input')!r})")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from None


def build_experiment(
    cfg: SearchConfig,
    callbacks: Sequence[Callback] = (),
    storage: Storage | str | None = None,
    sources: Mapping[str, str] | None = None,
) -> Experiment:
    """Create the space, strategy, evaluator, budget and executor a config describes.

    ``sources`` says where settings came from, for error messages: ``"strategy_options"`` ->
    ``"search.yaml"``, or per option ``"strategy_options.population_size"`` ->
    ``"--strategy-option"``. Errors about an option then read
    ``search.yaml: strategy_options.population_size: ...``.
    """
    from nasforge.experiment import Budget, Experiment
    from nasforge.utils.rng import derive_seed

    space = SPACES.build(cfg.space, options=cfg.space_options,
                         source=option_source("space_options", sources))
    strategy = STRATEGIES.build(
        cfg.strategy, (space,), {"seed": derive_seed(cfg.seed, "strategy"),
                                 "objectives": cfg.objectives},
        cfg.strategy_options, source=option_source("strategy_options", sources),
    )
    evaluator = EVALUATORS.build(cfg.evaluator, options=cfg.evaluator_options,
                                 source=option_source("evaluator_options", sources))
    budget = Budget(max_trials=cfg.budget_trials, max_seconds=cfg.budget_seconds,
                    max_cost=cfg.budget_cost, max_fidelity=cfg.budget_fidelity)
    scheduler = pruner = None
    if cfg.scheduler is not None:
        scheduler = SCHEDULERS.build(cfg.scheduler, options=cfg.scheduler_options,
                                     source=option_source("scheduler_options", sources))
    elif cfg.scheduler_options:
        raise ConfigError("scheduler_options were given without a scheduler; set scheduler: "
                          f"one of {', '.join(SCHEDULERS.names())}")
    if cfg.pruner is not None:
        pruner = PRUNERS.build(cfg.pruner, options=cfg.pruner_options,
                               source=option_source("pruner_options", sources))
    elif cfg.pruner_options:
        raise ConfigError("pruner_options were given without a pruner; set pruner: "
                          f"one of {', '.join(PRUNERS.names())}")
    if cfg.final:
        final_stage(cfg).check(space, evaluator)  # before any storage is touched
    from nasforge.experiment import make_executor

    # No executor named: inline for one worker, a local process pool for more.
    executor = make_executor(cfg.executor, workers=cfg.workers, **ray_options(cfg))
    return Experiment(
        space, strategy, evaluator, budget=budget, objectives=cfg.objectives,
        constraints=cfg.constraints, storage=storage if storage is not None else cfg.storage,
        executor=executor, retries=cfg.retries, seed=cfg.seed, device=cfg.device, trial_timeout=cfg.trial_timeout,
        durability=cfg.durability,
        callbacks=callbacks, config=identity(cfg), scheduler=scheduler, pruner=pruner,
    )


def identity(cfg: SearchConfig) -> dict[str, Any]:
    """The settings that define which experiment this is (stored; a resume must match them)."""
    out = cfg.model_dump(mode="json", include=IDENTITY_FIELDS)
    for key in _OPTIONAL_IDENTITY:
        if not out.get(key):
            out.pop(key, None)
    return out


def final_stage(cfg: SearchConfig) -> Any:
    """The :class:`~nasforge.experiment.selection.FinalStage` the settings describe."""
    from nasforge.experiment.selection import FinalStage

    return FinalStage(top_k=cfg.top_k, reeval_seeds=cfg.reeval_seeds,
                      final_seeds=cfg.final_seeds, final_fidelity=cfg.final_fidelity,
                      baseline=cfg.baseline)


def ray_options(cfg: SearchConfig) -> dict[str, Any]:
    """The keyword options of :class:`~nasforge.experiment.ray_executor.RayExecutor` that the
    settings give (address, and the CPUs/GPUs each trial reserves); empty for other executors."""
    if cfg.executor != "ray":
        return {}
    names = {"address": cfg.ray_address, "num_cpus": cfg.ray_num_cpus, "num_gpus": cfg.ray_num_gpus}
    return {k: v for k, v in names.items() if v is not None}


def option_source(field: str, sources: Mapping[str, str] | None) -> OptionSource:
    """The :class:`OptionSource` of one ``*_options`` setting, from ``build_experiment``'s map."""
    sources = sources or {}
    prefix = field + "."
    return OptionSource(
        field, sources.get(field, "settings"),
        {k[len(prefix):]: v for k, v in sources.items() if k.startswith(prefix)},
    )


def accepts(factory: Any, option: str, explicit: bool = False) -> bool:
    """Whether a registered factory takes keyword ``option`` (or, unless ``explicit``, ``**kwargs``)."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    if option in params:
        return True
    return not explicit and any(p.kind is p.VAR_KEYWORD for p in params.values())


def parse_option(text: str) -> tuple[str, Any]:
    """Parse ``key=value`` where value is YAML 1.2 (``3``, ``1e-3``, ``true``, ``[16, 32]``,
    ``name``); types are checked later, against the option's declared type."""
    import yaml

    from nasforge.utils.yamlio import load_yaml

    if "=" not in text:
        raise ConfigError(f"option {text!r} must look like key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key.isidentifier():
        raise ConfigError(f"option name {key!r} (from {text!r}) is not a valid name")
    try:
        value = load_yaml(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


def parse_options(items: list[str] | None) -> dict[str, Any]:
    """Parse a list of ``key=value`` strings into a dict."""
    return dict(parse_option(t) for t in (items or []))


def default_storage_path(cfg: SearchConfig) -> Path:
    """``runs/<space>-<strategy>-<evaluator>-seed<seed>.db`` in the working directory."""
    return Path("runs") / f"{cfg.space}-{cfg.strategy}-{cfg.evaluator}-seed{cfg.seed}.db"


def load_yaml_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML settings file (a mapping of SearchConfig keys) with clear errors; numbers
    follow YAML 1.2 (``lr: 1e-3`` is a float)."""
    import yaml

    from nasforge.utils.yamlio import load_yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {str(p)!r} does not exist")
    try:
        data = load_yaml(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise file_error(exc, p, "read the config file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {str(p)!r} is not UTF-8 text ({exc.reason})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {str(p)!r} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(p)!r} must hold a mapping of settings, got {type(data).__name__}")
    return data
