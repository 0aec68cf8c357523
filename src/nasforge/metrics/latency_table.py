"""A per-device latency lookup table: predict a network's latency from its kernels, no timing.

Hardware-aware NAS needs the latency of thousands of candidates; timing each one is slow and,
on a shared machine, noisy. FBNet (Wu et al., CVPR 2019) and ProxylessNAS (Cai et al., ICLR
2019) time every distinct operator once per device and predict a network as the sum over its
operators; nn-Meter (Zhang et al., MobiSys 2021) predicts at the level of the kernels a network
actually runs. This table does the same, generically for any ``nn.Module``:

* **kernels**: one forward pass with hooks records every call of a leaf module (a module with no
  children: a convolution, a BatchNorm, a ReLU, a pooling, a linear layer, a space's own leaf op)
  with its input shapes. A kernel's key is its type, its configuration (``extra_repr`` and the
  shapes of its own parameters: channels, kernel size, stride, groups, ...) and its input shapes
  (batch, channels, H, W). Each distinct key is timed once, in isolation, with the protocol of
  :mod:`nasforge.metrics.timing` (kernels measured together are interleaved);
* **prediction**: the sum of the kernel latencies over the calls, plus a fitted per-network
  overhead ``a * sum + b * calls + c`` that absorbs what the kernels miss (Python dispatch of
  container modules, additions and concatenations written in ``forward``). The overhead is fitted
  per network family (the model's class) by least squares on a few networks timed whole
  (:meth:`LatencyTable.calibrate`); without a calibration the prediction is the plain sum;
* **one table per device**: a JSON file in ``<cache>/latency/`` (``$NASFORGE_CACHE_DIR``, else
  ``$XDG_CACHE_HOME/nasforge`` or ``~/.cache/nasforge``), named by a hash of the device
  description: device type, CPU or GPU model, torch version, CPU threads, batch size and input
  shape. Tables are fp32 and NCHW. Kernels seen for the first time are timed and added, so the
  table grows with the spaces it has seen; saving merges with what other processes wrote.

Metric ``latency_pred_ms`` (:mod:`nasforge.metrics.registry`) uses it, so a constraint such as
``latency_pred_ms <= 5`` is checked before any training.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nasforge.data.files import cache_root
from nasforge.errors import ConfigError, file_error
from nasforge.metrics.latency import measure_latencies, model_memory_format
from nasforge.metrics.timing import (
    CLOCKS,
    Timer,
    TimingProtocol,
    cpu_timer,
    cuda_timer,
    time_interleaved,
)
from nasforge.train.evaluate import model_device

#: Bumped when the key format or the stored fields change (older files are then ignored).
TABLE_VERSION = 1

#: Kernels are small and many: looser caps than a whole network's measurement.
KERNEL_PROTOCOL = TimingProtocol(warmup=3, min_repeats=10, max_repeats=100, max_seconds=0.5,
                                 rel_tol=0.05)

#: Networks timed whole to fit the overhead.
NETWORK_PROTOCOL = TimingProtocol(warmup=3, min_repeats=20, max_repeats=200, max_seconds=2.0,
                                  rel_tol=0.05)

#: Fewest calibration networks for the three-term fit (fewer: a constant overhead only).
_MIN_FIT = 6


def processor_name(device: torch.device) -> str:
    """The GPU's name on CUDA, else the CPU model (``/proc/cpuinfo``, else ``platform``)."""
    if device.type == "cuda":
        return str(torch.cuda.get_device_name(device))
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown cpu"


def device_description(device: str | torch.device, batch_size: int,
                       input_shape: Sequence[int]) -> dict[str, Any]:
    """What a table's figures depend on; its hash names the table's file."""
    dev = torch.device(device)
    return {
        "version": TABLE_VERSION,
        "device": dev.type,
        "processor": processor_name(dev),
        "torch": torch.__version__.split("+")[0],
        "threads": torch.get_num_threads() if dev.type == "cpu" else None,
        "batch_size": int(batch_size),
        "input_shape": [int(s) for s in input_shape],
        "precision": "float32",
        "channels_last": False,
    }


def default_cache_dir() -> Path:
    """``$NASFORGE_CACHE_DIR/latency``, else ``latency/`` in the user cache of nasforge."""
    env = os.environ.get("NASFORGE_CACHE_DIR")
    return (Path(env).expanduser() if env else cache_root()) / "latency"


def table_path(description: dict[str, Any], cache_dir: str | Path | None = None) -> Path:
    """The table file of a device description inside ``cache_dir`` (default: the user cache)."""
    digest = hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:16]
    shape = "x".join(map(str, description["input_shape"]))
    name = f"{description['device']}-b{description['batch_size']}-{shape}-{digest}.json"
    return Path(cache_dir if cache_dir is not None else default_cache_dir()) / name


@dataclass(frozen=True)
class KernelCall:
    """One call of a leaf module during a forward pass: its key and what re-runs it alone."""

    key: str
    module: nn.Module
    shapes: tuple[tuple[tuple[int, ...], torch.dtype] | None, ...]
    constants: tuple[Any, ...]

    def inputs(self, device: torch.device) -> tuple[Any, ...]:
        """Fresh random inputs of the recorded shapes (non-tensor arguments as recorded)."""
        out: list[Any] = []
        for spec, const in zip(self.shapes, self.constants, strict=True):
            if spec is None:
                out.append(const)
            elif spec[1].is_floating_point:
                out.append(torch.randn(spec[0], dtype=spec[1], device=device))
            else:
                out.append(torch.zeros(spec[0], dtype=spec[1], device=device))
        return tuple(out)


def _kernel_key(module: nn.Module, args: tuple[Any, ...]) -> tuple[str, KernelCall]:
    shapes: list[tuple[tuple[int, ...], torch.dtype] | None] = []
    constants: list[Any] = []
    for a in args:
        if isinstance(a, torch.Tensor):
            shapes.append((tuple(a.shape), a.dtype))
            constants.append(None)
        else:
            shapes.append(None)
            constants.append(a)
    own = [tuple(p.shape) for p in module.parameters(recurse=False)]
    inputs = ",".join(f"{list(s[0])}{str(s[1]).replace('torch.', '')}" if s else repr(c)
                      for s, c in zip(shapes, constants, strict=True))
    key = f"{type(module).__name__}({module.extra_repr()}){own if own else ''}<-{inputs}"
    return key, KernelCall(key, module, tuple(shapes), tuple(constants))


def trace_kernels(model: nn.Module, example: torch.Tensor) -> list[KernelCall]:
    """Every leaf-module call of one eval-mode forward pass of ``model`` on ``example``, in order.

    The model's train/eval mode is restored; the pass runs under ``torch.inference_mode()``.
    """
    calls: list[KernelCall] = []

    def record(module: nn.Module, args: tuple[Any, ...]) -> None:
        calls.append(_kernel_key(module, args)[1])

    leaves = [m for m in model.modules() if next(m.children(), None) is None]
    handles = [m.register_forward_pre_hook(record) for m in leaves]
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            model(example)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return calls


@dataclass(frozen=True)
class Prediction:
    """A predicted latency with how it was made."""

    latency_ms: float
    #: Sum of the kernels' latencies over the calls (the prediction before the overhead).
    kernel_sum_ms: float
    calls: int
    #: Kernels timed for this prediction (0 when the table knew them all).
    measured: int
    #: The family whose fitted overhead was applied (None: the plain sum).
    calibrated: str | None


class LatencyTable:
    """Kernel latencies of one device (see the module docstring); ``path``: its JSON file."""

    def __init__(self, description: dict[str, Any], kernels: dict[str, dict[str, Any]] | None = None,
                 calibration: dict[str, dict[str, Any]] | None = None,
                 path: str | Path | None = None) -> None:
        self.description = dict(description)
        self.kernels: dict[str, dict[str, Any]] = dict(kernels or {})
        self.calibration: dict[str, dict[str, Any]] = dict(calibration or {})
        self.path = Path(path) if path is not None else None
        #: Kernels or calibrations added since the table was loaded or saved.
        self.dirty = False
        #: Replaces the device's clocks (tests); None: the device's timer.
        self.timer: Timer | None = None

    # ------------------------------------------------------------------ files
    @classmethod
    def for_device(cls, device: str | torch.device = "cpu", batch_size: int = 1,
                   input_shape: Sequence[int] = (3, 32, 32),
                   cache_dir: str | Path | None = None) -> LatencyTable:
        """The table of this device and these conditions: loaded from the cache, else empty."""
        if batch_size < 1 or len(input_shape) < 1:
            raise ConfigError(f"need batch_size >= 1 and an input shape; got {batch_size}, "
                              f"{tuple(input_shape)}")
        description = device_description(device, batch_size, input_shape)
        path = table_path(description, cache_dir)
        table = cls.load(path) if path.is_file() else None
        if table is None or table.description != description:
            return cls(description, path=path)
        return table

    @classmethod
    def load(cls, path: str | Path) -> LatencyTable | None:
        """The table stored at ``path``, or None when it is of an older format."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise file_error(exc, path, "read") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"latency table {str(path)!r} is not valid JSON: {exc}") from None
        if data.get("description", {}).get("version") != TABLE_VERSION:
            return None
        return cls(data["description"], data.get("kernels"), data.get("calibration"), path)

    def save(self, path: str | Path | None = None) -> Path:
        """Write the table (merged with the kernels another process saved there meanwhile)."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise ConfigError("this latency table has no file; pass save(path)")
        if target.is_file():
            other = LatencyTable.load(target)
            if other is not None and other.description == self.description:
                self.kernels = {**other.kernels, **self.kernels}
                self.calibration = {**other.calibration, **self.calibration}
        data = {"description": self.description, "kernels": self.kernels,
                "calibration": self.calibration}
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
            os.replace(tmp, target)  # atomic: a reader never sees half a table
        except OSError as exc:
            raise file_error(exc, target) from None
        self.path, self.dirty = target, False
        return target

    # ------------------------------------------------------------------ kernels
    @property
    def device(self) -> torch.device:
        """The device the table's figures are for."""
        return torch.device(self.description["device"])

    def _example(self) -> torch.Tensor:
        return torch.randn((self.description["batch_size"], *self.description["input_shape"]),
                           device=self.device)

    def _timer(self) -> Timer:
        if self.timer is not None:
            return self.timer
        dev = self.device
        return cuda_timer(dev) if dev.type == "cuda" else cpu_timer(torch.get_num_threads())

    def calls(self, model: nn.Module) -> list[KernelCall]:
        """The kernel calls of ``model`` on this table's device and input (model moved there)."""
        model.to(self.device)
        with model_memory_format(model, False):
            return trace_kernels(model, self._example())

    def measure(self, calls: Sequence[KernelCall],
                protocol: TimingProtocol = KERNEL_PROTOCOL) -> int:
        """Time the kernels of ``calls`` the table does not know yet (interleaved, in eval mode);
        returns how many were added."""
        todo: dict[str, KernelCall] = {}
        for c in calls:
            if c.key not in self.kernels and c.key not in todo:
                todo[c.key] = c
        if not todo:
            return 0
        fns = []
        modes = [(c.module, c.module.training) for c in todo.values()]
        for c in todo.values():
            c.module.eval()
            fns.append(_call(c.module, c.inputs(self.device)))
        try:
            with torch.inference_mode():
                timings = time_interleaved(fns, protocol, self._timer(), what="kernels")
        finally:
            for m, mode in modes:
                m.train(mode)
        for key, t in zip(todo, timings, strict=True):
            self.kernels[key] = {"wall_ms": t.wall_ms, "cpu_ms": t.cpu_ms,
                                 "ci_low_ms": t.ci_low_ms, "ci_high_ms": t.ci_high_ms,
                                 "clock": t.clock, "repeats": t.repeats, "noisy": t.noisy}
        self.dirty = True
        return len(todo)

    def kernel_sum(self, calls: Sequence[KernelCall], clock: str = "wall") -> float:
        """Sum of the known kernels' median latencies over ``calls`` (ms) on ``clock``."""
        if clock not in CLOCKS:
            raise ConfigError(f"unknown clock {clock!r}; allowed: {', '.join(map(repr, CLOCKS))}")
        missing = [c.key for c in calls if c.key not in self.kernels]
        if missing:
            raise ConfigError(f"the latency table has no entry for kernel {missing[0]!r}; "
                              "call measure(calls) first")
        field = "cpu_ms" if clock == "cpu" else "wall_ms"
        total = sum(float(self.kernels[c.key][field]) for c in calls)
        if math.isnan(total):
            raise ConfigError(f"clock {clock!r} was not measured on {self.device}; use 'wall'")
        return total

    # ------------------------------------------------------------------ prediction
    def predict(self, model: nn.Module, clock: str = "wall") -> Prediction:
        """Predicted latency of ``model`` (ms): kernels timed where new, summed, and the fitted
        overhead of the model's family applied when there is one."""
        home = model_device(model)
        calls = self.calls(model)
        measured = self.measure(calls)
        total = self.kernel_sum(calls, clock)
        model.to(home)
        family = family_of(model)
        fit = self.calibration.get(f"{family}/{clock}")
        if fit is None:
            return Prediction(total, total, len(calls), measured, None)
        a, b, c = fit["coef"]
        return Prediction(a * total + b * len(calls) + c, total, len(calls), measured, family)

    def calibrate(self, models: Sequence[nn.Module], clock: str = "wall",
                  measured_ms: Sequence[float] | None = None,
                  protocol: TimingProtocol = NETWORK_PROTOCOL) -> dict[str, Any]:
        """Fit the overhead of the models' family from networks timed whole.

        ``measured_ms``: their latencies when already measured (on ``clock``); else they are
        timed here, interleaved. Returns the stored fit (``coef`` = ``(a, b, c)`` of
        ``a * kernel_sum + b * calls + c``, ``n``, ``mape`` of the fit on these networks).
        """
        if not models:
            raise ConfigError("calibration needs at least one network")
        families = {family_of(m) for m in models}
        if len(families) != 1:
            raise ConfigError(f"calibrate one network family at a time; got {sorted(families)}")
        all_calls = [self.calls(m) for m in models]
        for calls in all_calls:
            self.measure(calls)
        if measured_ms is None:
            lats = measure_latencies(list(models), self.description["input_shape"],
                                     self.description["batch_size"], self.device,
                                     protocol.warmup, protocol.min_repeats,
                                     max_repeats=protocol.max_repeats,
                                     max_seconds=protocol.max_seconds, rel_tol=protocol.rel_tol,
                                     clock=clock, timer=self.timer)
            measured_ms = [lat.median_ms for lat in lats]
        if len(measured_ms) != len(models):
            raise ConfigError(f"{len(measured_ms)} measured latencies for {len(models)} networks")
        sums = np.array([self.kernel_sum(c, clock) for c in all_calls])
        counts = np.array([len(c) for c in all_calls], dtype=float)
        y = np.asarray(measured_ms, dtype=float)
        coef = fit_overhead(sums, counts, y)
        pred = coef[0] * sums + coef[1] * counts + coef[2]
        fit = {"coef": [float(v) for v in coef], "n": len(models),
               "mape": float(np.mean(np.abs(pred - y) / y) * 100.0)}
        self.calibration[f"{families.pop()}/{clock}"] = fit
        self.dirty = True
        return fit

    def is_calibrated(self, model: nn.Module, clock: str = "wall") -> bool:
        """Whether the family of ``model`` has a fitted overhead on ``clock``."""
        return f"{family_of(model)}/{clock}" in self.calibration


def fit_overhead(sums: np.ndarray, counts: np.ndarray, measured: np.ndarray) -> tuple[float, ...]:
    """Least-squares ``(a, b, c)`` of ``measured ≈ a * sums + b * counts + c``; with fewer than
    six networks (or a degenerate design), ``(1, 0, median residual)``: a constant overhead."""
    design = np.stack([sums, counts, np.ones_like(sums)], axis=1)
    if len(measured) >= _MIN_FIT and np.linalg.matrix_rank(design) == 3:
        coef, *_ = np.linalg.lstsq(design, measured, rcond=None)
        if coef[0] > 0:  # a negative slope on the kernel sum is overfitting noise
            return tuple(float(v) for v in coef)
    return 1.0, 0.0, float(np.median(measured - sums))


def family_of(model: nn.Module) -> str:
    """The calibration family of a model: its class (one per space's network builder)."""
    return f"{type(model).__module__}.{type(model).__qualname__}"


def _call(module: nn.Module, args: tuple[Any, ...]) -> Any:
    return lambda: module(*args)


#: Tables loaded in this process, by file (a metric call must not re-read the JSON each time).
_LOADED: dict[Path, LatencyTable] = {}


def table_for(device: str | torch.device = "cpu", batch_size: int = 1,
              input_shape: Sequence[int] = (3, 32, 32),
              cache_dir: str | Path | None = None) -> LatencyTable:
    """:meth:`LatencyTable.for_device`, kept in memory for the rest of the process."""
    description = device_description(device, batch_size, input_shape)
    path = table_path(description, cache_dir)
    if path not in _LOADED:
        _LOADED[path] = LatencyTable.for_device(device, batch_size, input_shape, cache_dir)
    return _LOADED[path]


def predict_latency(model: nn.Module, input_shape: Sequence[int], batch_size: int = 1,
                    device: str | torch.device = "cpu", cache_dir: str | Path | None = None,
                    clock: str = "wall") -> float:
    """Predicted latency (ms) of ``model`` from the device's table; new kernels are timed and the
    table saved. The ``latency_pred_ms`` metric."""
    table = table_for(device, batch_size, input_shape, cache_dir)
    ms = table.predict(model, clock).latency_ms
    if table.dirty:
        table.save()
    return ms


#: (table file, space, clock) calibrated in this process: checked without building a network.
_CALIBRATED: set[tuple[Path, str, str]] = set()


def calibrate_space(space: Any, build: Callable[[Any], nn.Module], input_shape: Sequence[int],
                    options: Mapping[str, Any], networks: int = 8, seed: int = 0) -> None:
    """Fit, once per device, the overhead of ``space``'s networks in the table the
    ``latency_pred_ms`` metric uses with ``options`` (the resolved metric options): ``networks``
    architectures sampled with ``seed``, built by ``build(arch)``, timed whole. The fit is saved
    with the table, so later processes skip it."""
    table = table_for(options["latency_pred_device"], options["latency_batch_size"], input_shape,
                      options["latency_table_dir"])
    clock = options["latency_clock"]
    done = (table.path or Path(), str(getattr(space, "name", space)), clock)
    if done in _CALIBRATED:
        return
    rng = np.random.default_rng(seed)
    models = [build(space.sample(rng)) for _ in range(networks)]
    if not table.is_calibrated(models[0], clock):
        protocol = TimingProtocol(options["latency_warmup"], options["latency_repeats"],
                                  options["latency_max_repeats"], options["latency_max_seconds"],
                                  options["latency_rel_tol"], clock)
        table.calibrate(models, clock, protocol=protocol)
        table.save()
    _CALIBRATED.add(done)
