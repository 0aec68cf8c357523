"""Searching a trained supernet for its best sub-network with inherited weights.

SPOS (Guo et al., ECCV 2020) and once-for-all (Cai et al., ICLR 2020) end the same way: a
multi-trial search over architectures, each scored with the supernet's weights after BatchNorm
recalibration, optionally under constraints (``params <= 1e6``). Both reuse the library for it: a
registered strategy in an :class:`~nasforge.experiment.Experiment` with the
:class:`~nasforge.evaluators.weight_sharing.WeightSharingEvaluator`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nasforge.errors import ConfigError
from nasforge.oneshot.search import OneShotConfig, remove_search_db, search_db_path
from nasforge.space.architecture import Architecture
from nasforge.utils.rng import derive_seed

if TYPE_CHECKING:
    from nasforge.oneshot.search import OneShotSearch


@dataclass
class SubnetSearchConfig(OneShotConfig):
    """:class:`OneShotConfig` plus the search that follows training.

    ``search_strategy`` (a registered strategy name, regularized evolution by default) with
    ``strategy_options`` evaluates ``search_trials`` architectures, each after recalibrating
    BatchNorm on ``bn_batches`` training batches, on ``eval_samples`` validation images (all when
    None), subject to ``constraints`` (e.g. ``["params <= 1e6"]``).
    """

    search_strategy: str = "rea"
    search_trials: int = 100
    strategy_options: dict[str, Any] = field(default_factory=dict)
    constraints: list[str] = field(default_factory=list)
    bn_batches: int = 4
    eval_samples: int | None = None
    eval_batch_size: int = 256

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("search_trials", "eval_batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if isinstance(self.bn_batches, bool) or not isinstance(self.bn_batches, int) or self.bn_batches < 0:
            raise ConfigError(f"bn_batches must be an integer >= 0, got {self.bn_batches!r}")
        if self.eval_samples is not None and (
            isinstance(self.eval_samples, bool) or not isinstance(self.eval_samples, int)
            or self.eval_samples < 1
        ):
            raise ConfigError(f"eval_samples must be a positive integer or None, got {self.eval_samples!r}")
        if not isinstance(self.strategy_options, dict):
            raise ConfigError(f"strategy_options must be a dict, got {self.strategy_options!r}")
        if isinstance(self.constraints, str) or not all(isinstance(c, str) for c in self.constraints):
            raise ConfigError(f"constraints must be a list of strings, got {self.constraints!r}")


def _optional_str(path: Path | None) -> str | None:
    return None if path is None else str(path)


def search_subnets(search: OneShotSearch, config: SubnetSearchConfig) -> tuple[Architecture, dict[str, Any]]:
    """Run the configured strategy over ``search``'s trained supernet; best arch and a summary."""
    # Deferred (downward) imports: training a supernet does not need the experiment package.
    from nasforge.evaluators.weight_sharing import WeightSharingEvaluator
    from nasforge.experiment import Budget, Experiment
    from nasforge.registry import STRATEGIES

    evaluator = WeightSharingEvaluator(
        supernet=search.supernet, splits=search.splits, batch_size=config.eval_batch_size,
        bn_batches=config.bn_batches, eval_samples=config.eval_samples, device=str(search.device),
    )
    strategy = STRATEGIES.create(
        config.search_strategy, search.space, seed=derive_seed(config.seed, "search"),
        **config.strategy_options,
    )
    experiment = Experiment(
        search.space, strategy, evaluator, budget=Budget(max_trials=config.search_trials),
        constraints=list(config.constraints), storage=_optional_str(search_db_path(search.checkpoint)),
        seed=config.seed, device=str(search.device),
    )
    experiment.run()
    best = experiment.best()
    if best is None:
        errors = [t.error for t in experiment.trials if t.error][:3]
        raise ConfigError(
            f"the sub-network search found no feasible architecture in {len(experiment.trials)} "
            f"trials (constraints {config.constraints}); errors: {errors}"
        )
    ranked = sorted((t for t in experiment.trials if t.ok), key=lambda t: -float(t.metrics["accuracy"]))
    top = [
        {"arch_string": search.space.to_string(t.arch),
         **{k: float(v) for k, v in t.metrics.items()}}
        for t in ranked[:5]
    ]
    return best.arch, {
        "search_strategy": config.search_strategy,
        "search_trials": len(experiment.trials),
        "supernet_accuracy": float(best.metrics["accuracy"]),
        "top": top,
    }


__all__ = ["SubnetSearchConfig", "remove_search_db", "search_db_path", "search_subnets"]
