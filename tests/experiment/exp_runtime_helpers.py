"""Deterministic evaluators shared by the experiment-runtime tests.

They live in an importable module (not inside test files) so that spawned worker processes and
Ray workers can unpickle them.
"""

from __future__ import annotations

import ctypes
import os
import signal
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nasforge.evaluators.base import EvalContext
from nasforge.evaluators.function import FunctionEvaluator
from nasforge.space.architecture import Architecture
from nasforge.trial import Result


def arch_hash(arch: Architecture) -> int:
    """A stable (cross-process) integer from an architecture."""
    return zlib.crc32(arch.to_json().encode())


def accuracy(arch: Architecture, ctx: EvalContext) -> float:
    """A deterministic fake accuracy in [0, 100)."""
    return (arch_hash(arch) % 10_000) / 100.0


def params(arch: Architecture) -> float:
    """A fake parameter count: convolutions are expensive, pooling and skips are free."""
    cost = {"nor_conv_3x3": 300_000.0, "nor_conv_1x1": 40_000.0}
    return 10_000.0 + sum(cost.get(str(v), 0.0) for v in arch.values())


def metrics(arch: Architecture, ctx: EvalContext) -> dict[str, float]:
    """Accuracy, params and a fake latency that grows with the params."""
    p = params(arch)
    return {"accuracy": accuracy(arch, ctx), "params": p, "latency_ms": 1.0 + p / 250_000.0}


class CheapMetricsEvaluator(FunctionEvaluator):
    """Knows ``params`` before training (like a real evaluator counting a built model's weights).

    Records every architecture it evaluates in ``calls`` (inline runs only).
    """

    def __init__(self, cheap: tuple[str, ...] = ("params",)) -> None:
        super().__init__(metrics)
        self.cheap = cheap
        self.calls: list[Architecture] = []

    def evaluate(self, arch: Architecture, ctx: EvalContext) -> Result:
        self.calls.append(arch)
        return super().evaluate(arch, ctx)

    def cheap_metrics(self, arch: Architecture) -> dict[str, float]:
        return {k: v for k, v in metrics(arch, EvalContext()).items() if k in self.cheap}


@dataclass
class Faulty:
    """A deterministic evaluation function that misbehaves on chosen trial numbers.

    ``raise_on``: raise ValueError. ``kill_once_on``: SIGKILL its own process the first time
    (a marker file in ``marker_dir`` remembers), then succeed. ``kill_always_on``: SIGKILL every
    time. ``segfault_on``: crash with a real segmentation fault. ``hang_on``: sleep for an hour.
    ``sleep``: seconds every evaluation takes.
    """

    raise_on: tuple[int, ...] = ()
    kill_once_on: tuple[int, ...] = ()
    kill_always_on: tuple[int, ...] = ()
    segfault_on: tuple[int, ...] = ()
    hang_on: tuple[int, ...] = ()
    sleep: float = 0.0
    marker_dir: str = ""
    worker_pids: list[int] = field(default_factory=list)

    def __call__(self, arch: Architecture, ctx: EvalContext) -> Any:
        n = ctx.trial_number
        if self.sleep:
            time.sleep(self.sleep)
        if n in self.raise_on:
            raise ValueError(f"deliberate failure in trial {n}")
        if n in self.kill_once_on:
            marker = Path(self.marker_dir) / f"killed-{n}"
            if not marker.exists():
                marker.write_text(str(os.getpid()))
                os.kill(os.getpid(), signal.SIGKILL)
        if n in self.kill_always_on:
            os.kill(os.getpid(), signal.SIGKILL)
        if n in self.segfault_on:
            ctypes.string_at(0)  # reads address 0: SIGSEGV
        if n in self.hang_on:
            time.sleep(3600)
        return metrics(arch, ctx)

    def __repr__(self) -> str:  # stable across processes (stored in the experiment's config)
        return "Faulty()"


def pid_metrics(arch: Architecture, ctx: EvalContext) -> dict[str, float]:
    """Metrics plus the worker's process id (to see where a trial ran)."""
    out = metrics(arch, ctx)
    out["pid"] = float(os.getpid())
    return out


def torch_threads(arch: Architecture, ctx: EvalContext) -> dict[str, float]:
    """Metrics plus torch's thread count in the worker."""
    import torch

    out = metrics(arch, ctx)
    out["threads"] = float(torch.get_num_threads())
    return out


_LOADS = 0  # how many times this process unpickled a WorkerProbe


class WorkerProbe(FunctionEvaluator):
    """Reports, per trial, the worker's pid, torch threads and how often it received the evaluator."""

    def __init__(self, fail_to_load: bool = False) -> None:
        super().__init__(metrics)
        self.fail_to_load = fail_to_load

    def __setstate__(self, state: dict[str, Any]) -> None:
        global _LOADS
        if state.get("fail_to_load"):
            raise RuntimeError("this evaluator refuses to load in a worker")
        _LOADS += 1
        self.__dict__.update(state)

    def evaluate(self, arch: Architecture, ctx: EvalContext) -> Result:
        import torch

        out = metrics(arch, ctx)
        out.update(pid=float(os.getpid()), loads=float(_LOADS),
                   threads=float(torch.get_num_threads()))
        return Result(metrics=out)

    def cheap_metrics(self, arch: Architecture) -> dict[str, float]:
        return {"params": params(arch)}


@dataclass
class Handshake:
    """Reports epoch 1, then waits until the driver has seen it (a marker file that the test's
    ``trial_reported`` callback writes), then reports epoch 2.

    Its ``accuracy`` is 1 when the driver answered within ``wait_s`` seconds, else 0, so a
    trial proves by its result that its report reached the driver while it was still running.
    """

    marker_dir: str
    wait_s: float = 30.0

    def __call__(self, arch: Architecture, ctx: EvalContext) -> dict[str, float]:
        marker = Path(self.marker_dir) / f"seen-{ctx.trial_number}"
        ctx.report(1, 10.0 + ctx.trial_number)
        deadline = time.time() + self.wait_s
        while not marker.exists() and time.time() < deadline:
            time.sleep(0.01)
        seen = marker.exists()
        ctx.report(2, 20.0 + ctx.trial_number)
        return {"accuracy": 1.0 if seen else 0.0}
