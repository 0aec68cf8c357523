"""Evaluate with the user's own function: ``fn(arch, ctx)`` returns a number, a dict or a Result."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from nasforge.errors import ConfigError
from nasforge.evaluators.base import EvalContext, Evaluator
from nasforge.registry import EVALUATORS
from nasforge.space.architecture import Architecture
from nasforge.trial import Result


@EVALUATORS.register("function")
class FunctionEvaluator(Evaluator):
    """Calls ``fn(arch, ctx)``; a number becomes metric ``metric``, a dict becomes the metrics.

    Use it to plug any training or scoring code into an experiment. A number that is NaN or
    infinite fails the trial with that reason.
    """

    name = "function"

    def __init__(
        self,
        fn: Callable[[Architecture, EvalContext], Any],
        metric: str = "accuracy",
        deterministic: bool = True,
    ) -> None:
        super().__init__()
        if not callable(fn):
            raise ConfigError(f"FunctionEvaluator needs a callable, got {fn!r}")
        self.fn = fn
        self.metric = metric
        self.deterministic = deterministic

    def evaluate(self, arch: Architecture, ctx: EvalContext) -> Result:
        return self.to_result(self.fn(arch, ctx))

    def to_result(self, out: Any) -> Result:
        """Turn the function's return value (number, dict or Result) into a Result."""
        if isinstance(out, Result):
            return out
        if isinstance(out, Mapping):
            metrics = {str(k): float(v) for k, v in out.items()}
        elif isinstance(out, (int, float)) and not isinstance(out, bool):
            metrics = {self.metric: float(out)}
        else:
            return Result.failed(
                f"the function returned {type(out).__name__}; return a number, a dict of metrics or a Result"
            )
        bad = {k: v for k, v in metrics.items() if not math.isfinite(v)}
        if bad:
            return Result.failed(f"non-finite metric values: {bad}")
        return Result(metrics=metrics)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "fn": getattr(self.fn, "__qualname__", repr(self.fn)), "metric": self.metric}


@EVALUATORS.register("model_function")
class ModelFunctionEvaluator(FunctionEvaluator):
    """Builds the architecture and calls ``fn(model, ctx)`` with the ``torch.nn.Module``.

    The model is ``space.build(arch, **build_kwargs)`` with its weights initialized from
    ``ctx.seed``, so the user's training code only needs to train and score it. The return value
    is handled as for ``"function"`` (a number, a dict of metrics or a Result).
    """

    name = "model_function"

    def __init__(
        self,
        fn: Callable[[Any, EvalContext], Any],
        metric: str = "accuracy",
        deterministic: bool = True,
        build_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(fn, metric, deterministic)
        self.build_kwargs = dict(build_kwargs or {})

    def build(self, arch: Architecture, seed: int = 0) -> Any:
        """``space.build(arch, **build_kwargs)`` with torch's RNG seeded first."""
        import torch

        if self.space is None:
            raise ConfigError("the evaluator is not bound to a search space; call bind(space)")
        torch.manual_seed(seed)
        return self.space.build(arch, **self.build_kwargs)

    def evaluate(self, arch: Architecture, ctx: EvalContext) -> Result:
        return self.to_result(self.fn(self.build(arch, ctx.seed), ctx))

    def cheap_metrics(self, arch: Architecture) -> dict[str, float]:
        """The parameter count of the built model."""
        model = self.build(arch)
        return {"params": float(sum(p.numel() for p in model.parameters()))}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "build_kwargs": self.build_kwargs}
