"""A deterministic multi-fidelity evaluator over NAS-Bench-201 cells, shared by the tests of
``nasforge show`` and ``nasforge report`` on scheduled, pruned experiments (importable by name:
this folder is on the test path)."""

from __future__ import annotations

import nasforge
from nasforge.evaluators.base import Evaluator
from nasforge.space.architecture import Architecture
from nasforge.trial import Result

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def accuracy(arch: Architecture, step: int) -> float:
    """A deterministic learning curve: quality from the cell's operations, rising per epoch."""
    idx = [OPS.index(str(v)) for v in arch.values()]
    quality = (sum(i * (j + 1) for j, i in enumerate(idx)) % 11) / 10
    return 30.0 + 60.0 * quality * (1 - 0.5 ** step)


def gives_up(arch: Architecture) -> bool:
    """Cells whose first edge is 'none' stop themselves at epoch 2 (the evaluator raises)."""
    return str(next(iter(arch.values()))) == "none"


class CurveEvaluator(Evaluator):
    """Reports its accuracy after each epoch; the last one is the result."""

    name = "fake-curve"
    supports_fidelity = True
    integer_fidelity = True
    fidelity_unit = "epochs"
    reports_metric = "accuracy"

    def default_fidelity(self) -> float:
        return 9.0

    def evaluate(self, arch: Architecture, ctx: nasforge.EvalContext) -> Result:
        epochs = int(ctx.fidelity or 9)
        value = 0.0
        for step in range(1, epochs + 1):
            value = accuracy(arch, step)
            if ctx.report(step, value):
                raise nasforge.TrialPruned(f"below the median at epoch {step}")
            if step == 2 and gives_up(arch):
                raise nasforge.TrialPruned("gave up at epoch 2")
        return Result(metrics={"accuracy": value}, cost=float(epochs))
