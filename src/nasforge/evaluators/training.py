"""Training-based performance estimation: build the architecture, train it, report accuracy.

``create_evaluator("train", dataset="fashion_mnist", epochs=2, train_subset=2000, ...)`` trains
every architecture with :class:`nasforge.train.Trainer` on a fixed, seeded split of the data and
returns its validation accuracy (percent) as metric ``accuracy``. It supports:

* multi-fidelity: ``ctx.fidelity`` (when set) is the number of epochs for that evaluation, so a
  scheduler (successive halving, Hyperband, ASHA) can ask for cheap and expensive evaluations.
  Under a scheduler, ``ctx.max_fidelity`` sets the length of the learning-rate schedule, so a
  rung of ``r`` epochs is the first ``r`` epochs of the full run; the state after a rung
  (weights, optimizer, schedule position, data order) is saved to ``ctx.checkpoint_to`` and a
  promoted evaluation continues from ``ctx.resume_from`` instead of starting again: with the same
  seed it ends with exactly the weights of one uninterrupted run. When the checkpoint is missing
  (another machine, deleted) the evaluation trains from scratch and says so in ``info``;
* early stopping (``early_stopping=patience``, ``min_delta``), with the best epoch's weights;
* pruning: each epoch's validation accuracy goes to ``ctx.report``; a True answer raises
  :class:`~nasforge.evaluators.base.TrialPruned`;
* a deadline (``ctx.deadline``) and NaN/inf losses, both turned into failed Results with reasons;
* extra hardware metrics of the trained model (``metrics=("flops", "latency_ms", ...)``).

What ``space.build`` receives: ``space.build(arch, num_classes=<dataset classes>,
in_channels=<channels of the batches>, **build_kwargs)``. Spaces built for 3x32x32 inputs can run
on 1x28x28 Fashion-MNIST either by taking ``in_channels=1`` (nb201 does; global pooling makes
the image size irrelevant) or with ``image_size=32, channels=3`` (pad and repeat the channel).

The evaluator is picklable: data is loaded lazily in the process that evaluates, and cached there.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from nasforge.data import ArrayDataset, BatchLoader, DataSplits, dataset_info, make_splits
from nasforge.data.dataset import as_dataset, check_dataset_files
from nasforge.data.splits import random_subset
from nasforge.errors import ConfigError
from nasforge.evaluators.base import EvalContext, Evaluator, TrialPruned
from nasforge.metrics import (
    check_metric_names,
    compute_metrics,
    count_params,
    list_metrics,
    resolve_options,
)
from nasforge.metrics.latency_table import calibrate_space
from nasforge.metrics.registry import (
    BEFORE_TRAINING_METRICS,
    COMPANIONS,
    PARENT_OF,
    WEIGHT_FREE_METRICS,
)
from nasforge.registry import EVALUATORS
from nasforge.space.architecture import Architecture
from nasforge.train import (
    EarlyStopping,
    EpochStats,
    LossFn,
    NonFiniteLossError,
    TimeLimitExceeded,
    TrainConfig,
    Trainer,
    TrainState,
    evaluate_model,
)
from nasforge.trial import Result, TrialStatus
from nasforge.utils.coerce import coerce_options
from nasforge.utils.device import resolve_device
from nasforge.utils.rng import derive_seed

_TRAIN_KEYS = tuple(TrainConfig.__dataclass_fields__)

#: Metrics every successful training Result holds (``test_accuracy`` too when ``test=True``).
TRAINING_METRICS = ("accuracy", "val_loss", "train_accuracy", "train_loss", "params", "epochs")


@EVALUATORS.register("train")
class TrainingEvaluator(Evaluator):
    """Train each architecture on a dataset; metric ``accuracy`` is the validation accuracy (%).

    Data options: ``dataset`` (name: fashion_mnist, mnist, cifar10, cifar100; or an
    ``ArrayDataset`` / ``(images, labels)`` pair / torch Dataset), ``data_dir``, ``download``,
    ``val_size`` (held out of the training split; count or fraction), ``train_subset``,
    ``val_subset``, ``test`` (also report ``test_accuracy`` on the official test split),
    ``final_subset`` (images of the official training split for the final stage's training;
    None: all of it, validation part included),
    ``data_seed`` (the split never depends on the trial's seed), ``augment`` ("default", "none",
    "crop_flip", ...), ``image_size``/``channels``/``resize_mode`` (input adaptation).
    Training options: every field of :class:`~nasforge.train.TrainConfig` (``epochs``,
    ``batch_size``, ``lr``, ``optimizer``, ``weight_decay``, ``label_smoothing``, ``grad_clip``,
    ...). ``early_stopping``: patience in epochs (None: off), ``min_delta``, ``restore_best``.
    ``metrics``: extra metrics of the trained model from :mod:`nasforge.metrics`; an experiment
    adds the ones its objectives and constraints name. Those that need no training (``params``,
    ``flops``, ``macs``) are also computed before training, so a constraint on them rejects a
    candidate at no cost; a constraint on latency, throughput or memory is measured on the
    untrained model (on the trial's device) and an infeasible candidate is not trained.
    ``build_kwargs``: passed to ``space.build``. ``device``: overrides ``ctx.device``.
    """

    name = "train"
    supports_fidelity = True
    can_resume = True
    fidelity_unit = "epochs"
    integer_fidelity = True
    reports_metric = "accuracy"

    def __init__(
        self,
        dataset: Any = "fashion_mnist",
        data_dir: str | None = None,
        *,
        download: bool = False,
        val_size: int | float = 0.1,
        train_subset: int | float | None = None,
        val_subset: int | float | None = None,
        test: bool = False,
        test_subset: int | float | None = None,
        final_subset: int | float | None = None,
        data_seed: int = 0,
        augment: str = "default",
        image_size: int | None = None,
        channels: int | None = None,
        resize_mode: str = "pad",
        early_stopping: int | None = None,
        min_delta: float = 0.0,
        restore_best: bool | None = None,
        metrics: Sequence[str] = (),
        metric_options: Mapping[str, Any] | None = None,
        build_kwargs: Mapping[str, Any] | None = None,
        device: str | None = None,
        **train_options: Any,
    ) -> None:
        super().__init__()
        bad = sorted(set(train_options) - set(_TRAIN_KEYS))
        if bad:
            raise ConfigError(
                f"unknown option(s) {', '.join(map(repr, bad))} for evaluator {self.name!r}; "
                f"training options are: {', '.join(_TRAIN_KEYS)}"
            )
        self.train_config = TrainConfig(**train_options)
        self.dataset = dataset
        self.data_dir = data_dir
        self.download = download
        self.val_size = val_size
        self.train_subset = train_subset
        self.val_subset = val_subset
        self.test = test
        self.test_subset = test_subset
        self.final_subset = final_subset
        self.data_seed = int(data_seed)
        self.augment = augment
        self.image_size = image_size
        self.channels = channels
        self.resize_mode = resize_mode
        if early_stopping is not None:
            EarlyStopping(early_stopping, min_delta)  # validates patience/min_delta now
        self.early_stopping = early_stopping
        self.min_delta = min_delta
        self.restore_best = early_stopping is not None if restore_best is None else restore_best
        self.metrics = tuple(metrics)
        check_metric_names(self.metrics)
        self.metric_options = dict(metric_options or {})
        resolve_options(self.metric_options)  # unknown option names fail here
        self.build_kwargs = dict(build_kwargs or {})
        self.device = device
        self._splits: DataSplits | None = None
        self._on_device: dict[str, DataSplits] = {}
        # An unknown dataset name should fail when the evaluator is created, not in a worker.
        if isinstance(dataset, str):
            dataset_info(dataset)

    # ------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict[str, Any]:
        # Loaded data stays behind: each worker process loads (and caches) its own copy.
        state = self.__dict__.copy()
        state["_splits"] = None
        state["_on_device"] = {}
        return state

    # ------------------------------------------------------------------ data
    def splits(self) -> DataSplits:
        """The train/val(/test) data, loaded on first use and cached in this process."""
        if self._splits is None:
            self._splits = make_splits(
                self.dataset, data_dir=self.data_dir, download=self.download,
                val_size=self.val_size, train_subset=self.train_subset,
                val_subset=self.val_subset, test=self.test, test_subset=self.test_subset,
                seed=self.data_seed,
            )
        return self._splits

    def _splits_on(self, device: str) -> DataSplits:
        if device == "cpu":
            return self.splits()
        if device not in self._on_device:
            s = self.splits()
            self._on_device[device] = DataSplits(
                s.train.to(device), s.val.to(device), s.test.to(device) if s.test else None
            )
        return self._on_device[device]

    def _loader(self, data: ArrayDataset, batch_size: int, train: bool, seed: int,
                device: str) -> BatchLoader:
        return BatchLoader(
            data, batch_size, shuffle=train, augment=self.augment if train else "none",
            seed=seed, device=device, image_size=self.image_size, channels=self.channels,
            resize_mode=self.resize_mode,
        )

    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the network input after shape adaptation (no data loaded for names)."""
        if isinstance(self.dataset, str):
            c, h, w = dataset_info(self.dataset).input_shape
        else:
            c, h, w = self.splits().train.info.input_shape
        if self.image_size is not None:
            h = w = self.image_size
        return (self.channels or c, h, w)

    def num_classes(self) -> int:
        """Number of classes of the dataset."""
        if isinstance(self.dataset, str):
            return dataset_info(self.dataset).num_classes
        return self.splits().train.info.num_classes

    # ------------------------------------------------------------------ model
    def build(self, arch: Architecture, seed: int = 0) -> nn.Module:
        """``space.build(arch, num_classes=..., in_channels=..., **build_kwargs)``, seeded init."""
        if self.space is None:
            raise ConfigError("the evaluator is not bound to a search space; call bind(space)")
        torch.manual_seed(seed)
        model = self.space.build(arch, num_classes=self.num_classes(),
                                 in_channels=self.input_shape()[0], **self.build_kwargs)
        if not isinstance(model, nn.Module):
            raise ConfigError(
                f"space {self.space.name!r} built a {type(model).__name__}, not a torch Module"
            )
        return model

    def produced_metrics(self) -> frozenset[str]:
        """The metrics of a successful Result: accuracy, losses, params, epochs, ``metrics``."""
        extra = ("test_accuracy",) if self.test else ()
        spread = [c for m in self.metrics for c in COMPANIONS.get(m, ())]
        return frozenset((*TRAINING_METRICS, *extra, *self.metrics, *spread))

    def request_metrics(self, names: Iterable[str]) -> None:
        """Compute any metric of :mod:`nasforge.metrics` that an objective or constraint names."""
        have = self.produced_metrics()
        known = set(list_metrics())
        # a companion (``latency_ms_ci_high``) comes with its metric
        wanted = dict.fromkeys(PARENT_OF.get(n, n) for n in names if n in known)
        self.metrics += tuple(n for n in wanted if n not in have)

    def check_ready(self) -> None:
        """Find (or, with ``download=True``, fetch) a named dataset's files and read them once
        before any trial; build one network with the ``build_kwargs``.

        Raises :class:`~nasforge.errors.DataNotFoundError` listing every directory searched, or
        an error naming a truncated or corrupt file. Each process that evaluates loads the data
        itself.
        """
        if isinstance(self.dataset, str):
            # Read once here: a truncated or corrupt file stops the run before the first trial.
            for split in ("train", "test") if self.test else ("train",):
                check_dataset_files(self.dataset, split, self.data_dir, self.download)
        if self.space is not None:
            self._check_build()

    def _check_build(self) -> None:
        """Build one network now: bad ``build_kwargs`` (``C: eight``) stop the run here, naming
        the option, instead of failing every trial of the search."""
        assert self.space is not None
        self.build_kwargs = coerce_options(self.space.build, self.build_kwargs,
                                           lambda k: f"evaluator option build_kwargs.{k}")
        arch = self.space.sample(np.random.default_rng(0))
        try:
            with torch.random.fork_rng(devices=[]):  # the trials' random streams stay as they were
                self.build(arch)
        except ConfigError as exc:
            raise ConfigError(f"evaluator option build_kwargs {self.build_kwargs!r}: {exc}") from None
        except (TypeError, ValueError, RuntimeError, KeyError) as exc:
            raise ConfigError(
                f"evaluator option build_kwargs {self.build_kwargs!r} do not build a network of "
                f"space {self.space.name!r}: {type(exc).__name__}: {exc}"
            ) from None

    def cheap_metrics(self, arch: Architecture) -> dict[str, float]:
        """Parameter count (and the other requested metrics known before training: FLOPs, MACs,
        the predicted latency) before any training."""
        model = self.build(arch)
        out: dict[str, float] = {"params": float(count_params(model))}
        static = [m for m in self.metrics if m in BEFORE_TRAINING_METRICS and m != "params"]
        if "latency_pred_ms" in static:
            # the table's overhead for this space's networks is fitted once per device
            calibrate_space(self.space, lambda a: self.build(a), self.input_shape(),
                            resolve_options(self.metric_options))
        if static:
            out.update(compute_metrics(model, static, self.input_shape(), device="cpu",
                                       **self.metric_options))
        return out

    def default_fidelity(self) -> float:
        """The configured ``epochs``."""
        return float(self.train_config.epochs)

    def epochs_for(self, ctx: EvalContext) -> int:
        """Epochs of this evaluation: ``ctx.fidelity`` rounded (at least 1), else ``epochs``."""
        if ctx.fidelity is None:
            return self.train_config.epochs
        if not math.isfinite(ctx.fidelity) or ctx.fidelity <= 0:
            raise ConfigError(f"fidelity (epochs) must be a positive number; got {ctx.fidelity!r}")
        return max(1, round(ctx.fidelity))

    def loss_fn(self, device: torch.device) -> LossFn | None:
        """Training loss; None means the trainer's cross-entropy (subclasses: distillation)."""
        return None

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, arch: Architecture, ctx: EvalContext) -> Result:
        """Train ``arch`` and return its validation accuracy and the learning curve."""
        started = time.time()
        device = resolve_device(self.device or ctx.device)
        epochs = self.epochs_for(ctx)
        # The schedule's length: the highest rung under a scheduler (a rung is the start of the
        # full run, and a promotion continues it), else this evaluation's epochs.
        horizon = max(epochs, round(ctx.max_fidelity)) if ctx.max_fidelity else epochs
        cfg = TrainConfig(**{**self.train_config.to_dict(), "epochs": horizon})
        data = self._splits_on(device)
        model = self.build(arch, seed=derive_seed(ctx.seed, "init"))
        resume, resume_note = self._load_resume(arch, ctx, horizon, epochs)
        params = count_params(model)
        # Measured in the conditions the trainer uses (on CUDA: bf16 autocast, channels_last),
        # unless the user's metric_options say otherwise.
        amp, channels_last = cfg.conditions(device.startswith("cuda"))
        metric_options = {"precision": "bfloat16" if amp else "float32",
                          "channels_last": channels_last, **self.metric_options}
        # Metrics that do not depend on the weights and that a constraint names are measured on the
        # untrained model: a candidate that breaks the constraint is never trained.
        early_names = [m for m in self.metrics if m in WEIGHT_FREE_METRICS
                       and any(PARENT_OF.get(c.metric, c.metric) == m for c in ctx.constraints)]
        early: dict[str, float] = {}
        if early_names:
            early = compute_metrics(model, early_names, self.input_shape(), device=device,
                                    **metric_options)
            broken = [c for c in ctx.constraints if c.satisfied(early) is False]
            if broken:
                return Result(metrics={**early, "params": float(params)},
                              cost=time.time() - started, status=TrialStatus.INFEASIBLE,
                              error="violates " + ", ".join(map(str, broken)),
                              info={"trained": False})
        order_seed = derive_seed(ctx.seed, "data")
        train = self._loader(data.train, cfg.batch_size, True, order_seed, device)
        if resume is not None:
            train.generator.set_state(resume[1])
        val = self._loader(data.val, cfg.eval_batch_size, False, 0, device)
        stopper = (EarlyStopping(self.early_stopping, self.min_delta)
                   if self.early_stopping is not None else None)
        resumed_epoch = resume[0].epoch if resume is not None else 0
        until, stopped_before = epochs, False
        if resume is not None and stopper is not None:
            # The rung's epochs count for early stopping as in one uninterrupted run, and a
            # rung that stopped early stays stopped (a promotion then trains nothing more).
            for point in resume[0].curve:
                acc = float(point.val_accuracy if point.val_accuracy is not None else math.nan)
                if stopper.step(point.epoch, acc):
                    until, stopped_before = resume[0].epoch, True

        def on_epoch(stats: EpochStats) -> bool:
            acc = float(stats.val_accuracy if stats.val_accuracy is not None else math.nan)
            if ctx.report(stats.epoch, acc):
                # Charged exactly the epochs this evaluation trained (a promotion continued
                # its rung's checkpoint, whose epochs were paid before).
                raise TrialPruned(f"pruned after epoch {stats.epoch} (val accuracy {acc:.2f}%)",
                                  info={"epochs_trained": stats.epoch - resumed_epoch})
            return stopper.step(stats.epoch, acc) if stopper is not None else False

        try:
            fit = Trainer(cfg).fit(
                model, train, val, device=device, seed=derive_seed(ctx.seed, "train"),
                deadline=ctx.deadline, on_epoch=on_epoch,
                loss_fn=self.loss_fn(torch.device(device)),
                restore_best=self.restore_best,
                resume=resume[0] if resume is not None else None, until_epoch=until,
                keep_state=ctx.checkpoint_to is not None,
            )
        except (NonFiniteLossError, TimeLimitExceeded) as exc:
            return Result.failed(str(exc), cost=time.time() - started,
                                 curve=[s.to_dict() for s in exc.curve], params=params)
        if ctx.checkpoint_to is not None and fit.state is not None:
            self._save_checkpoint(ctx.checkpoint_to, arch, horizon, fit.state,
                                  train.generator.get_state())
        chosen = fit.best if fit.restored_epoch is not None else fit.final
        assert chosen is not None and chosen.val_accuracy is not None
        metrics: dict[str, float] = {
            "accuracy": chosen.val_accuracy,
            "val_loss": float(chosen.val_loss if chosen.val_loss is not None else math.nan),
            "train_accuracy": chosen.train_accuracy,
            "train_loss": chosen.train_loss,
            "params": float(params),
            "epochs": float(fit.epochs),
        }
        if data.test is not None:
            test = self._loader(data.test, cfg.eval_batch_size, False, 0, device)
            metrics["test_accuracy"], _ = evaluate_model(model, test, device, amp, channels_last)
        metrics.update(early)
        later = [m for m in self.metrics if m not in early]
        if later:
            metrics.update(compute_metrics(
                model, later, self.input_shape(), device=device,
                data=self._loader(data.val, cfg.eval_batch_size, False, 0, device),
                **metric_options,
            ))
        info = {
            "curve": [s.to_dict() for s in fit.curve],
            "stopped": "callback" if stopped_before else fit.stopped,
            "best_epoch": fit.best.epoch if fit.best is not None else None,
            "reported_epoch": chosen.epoch,
            "images_per_sec": fit.images_per_sec,
            "train_seconds": fit.train_seconds,
            "epochs_trained": fit.epochs - fit.resumed_epoch,
            "device": fit.device,
            "data": data.sizes(),
        }
        if horizon != epochs:
            info["schedule_epochs"] = horizon
        if fit.resumed_epoch:
            info["resumed_from_epoch"] = fit.resumed_epoch
        if resume_note:
            info["resume"] = resume_note
        if self.metrics:
            info["metric_options"] = {**resolve_options(metric_options),
                                      "threads": torch.get_num_threads()}
        return Result(metrics=metrics, cost=time.time() - started, info=info)

    # ------------------------------------------------------------------ final stage
    @property
    def supports_final(self) -> bool:  # type: ignore[override]
        """Only named datasets have an official test split to test on."""
        return isinstance(self.dataset, str)

    def final_data(self) -> tuple[ArrayDataset, ArrayDataset]:
        """(the final training data, the official test split).

        The final training uses the whole official training split, validation part included
        (``final_subset``: a seeded subset of it, a count or a fraction, to bound the cost).
        """
        if not isinstance(self.dataset, str):
            raise ConfigError("the final test needs a named dataset with an official test split")
        s = make_splits(
            self.dataset, data_dir=self.data_dir, download=self.download, val_size=self.val_size,
            train_subset=self.train_subset, val_subset=self.val_subset, test=True,
            test_subset=self.test_subset, seed=self.data_seed,
        )
        assert s.test is not None
        full = as_dataset(self.dataset, "train", self.data_dir, self.download)
        return random_subset(full, self.final_subset, self.data_seed + 4, "final_subset"), s.test

    def final_evaluate(self, arch: Architecture, seed: int, fidelity: float | None,
                       device: str = "cpu") -> Result:
        """Train on training + validation data for ``fidelity`` epochs (default ``epochs``) with
        the search's recipe, then measure ``test_accuracy`` on the test split once."""
        started = time.time()
        device = resolve_device(self.device or device)
        epochs = self.epochs_for(EvalContext(fidelity=fidelity))
        cfg = TrainConfig(**{**self.train_config.to_dict(), "epochs": epochs})
        train_data, test_data = self.final_data()
        model = self.build(arch, seed=derive_seed(seed, "init"))
        train = self._loader(train_data.to(device) if device != "cpu" else train_data,
                             cfg.batch_size, True, derive_seed(seed, "data"), device)
        fit = Trainer(cfg).fit(model, train, None, device=device, seed=derive_seed(seed, "train"))
        amp, channels_last = cfg.conditions(device.startswith("cuda"))
        test = self._loader(test_data.to(device) if device != "cpu" else test_data,
                            cfg.eval_batch_size, False, 0, device)
        acc, loss = evaluate_model(model, test, device, amp, channels_last)
        return Result(
            metrics={"test_accuracy": acc, "test_loss": loss, "params": float(count_params(model)),
                     "train_accuracy": fit.final.train_accuracy if fit.final else math.nan},
            cost=time.time() - started,
            info={"epochs": epochs, "train_images": len(train_data), "test_images": len(test_data),
                  "train_seconds": fit.train_seconds},
        )

    def profile(self, arch: Architecture) -> dict[str, float]:
        """Params, FLOPs (M) and CPU latency (ms, batch 1) of the untrained network."""
        model = self.build(arch)
        return compute_metrics(model, ["params", "flops", "latency_ms"], self.input_shape(),
                               device="cpu")

    # ------------------------------------------------------------------ checkpoints (rungs)
    def _load_resume(self, arch: Architecture, ctx: EvalContext, horizon: int,
                     epochs: int) -> tuple[tuple[TrainState, torch.Tensor] | None, str]:
        """The state to continue from (with the loader's generator state), and a note on why
        there is none when ``ctx.resume_from`` was given."""
        path = ctx.resume_from
        if path is None:
            return None, ""
        if not os.path.exists(path):
            return None, f"checkpoint {path!r} not found: trained from scratch"
        try:
            saved = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:  # a damaged file must not fail the trial: retrain instead
            return None, f"checkpoint {path!r} unreadable ({type(exc).__name__}): trained from scratch"
        if saved.get("arch") != arch.to_json() or saved.get("horizon") != horizon:
            return None, (f"checkpoint {path!r} is for another architecture or schedule: "
                          "trained from scratch")
        state = TrainState.from_dict(saved["state"])
        if state.epoch > epochs:
            return None, (f"checkpoint {path!r} has {state.epoch} epochs, more than {epochs}: "
                          "trained from scratch")
        return (state, saved["loader_rng"]), ""

    @staticmethod
    def _save_checkpoint(path: str, arch: Architecture, horizon: int, state: TrainState,
                         loader_rng: torch.Tensor) -> None:
        """Write atomically: a reader (the promoted trial) never sees half a file."""
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tmp = f"{path}.tmp{os.getpid()}"
        torch.save({"arch": arch.to_json(), "horizon": horizon, "state": state.to_dict(),
                    "loader_rng": loader_rng}, tmp)
        os.replace(tmp, path)

    def describe(self) -> dict[str, Any]:
        """JSON-able description stored with the experiment."""
        return {
            "name": self.name,
            "dataset": (self.dataset if isinstance(self.dataset, str)
                        else type(self.dataset).__name__),
            "data_dir": self.data_dir,
            "val_size": self.val_size,
            "train_subset": self.train_subset,
            "val_subset": self.val_subset,
            "data_seed": self.data_seed,
            "augment": self.augment,
            "image_size": self.image_size,
            "channels": self.channels,
            "early_stopping": self.early_stopping,
            "min_delta": self.min_delta,
            "metrics": list(self.metrics),
            "build_kwargs": self.build_kwargs,
            "train": self.train_config.to_dict(),
            # Only when set: experiments stored before this option existed still resume.
            **({"final_subset": self.final_subset} if self.final_subset is not None else {}),
        }
