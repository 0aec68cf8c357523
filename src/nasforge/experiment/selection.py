"""The end of a search: re-evaluate the top candidates, retrain the pick, test it against a baseline.

A search's best trial is the maximum of many noisy measurements, so it is biased upwards (the
winner's curse). Before anything is declared:

1. **Top-k re-evaluation.** The ``top_k`` best distinct architectures at the highest fidelity are
   evaluated again at that fidelity with ``reeval_seeds`` fresh seeds (seeds no trial used). They
   are ranked by the mean of these fresh values only; the search's own value is shown beside it,
   never averaged in (it was selected for being high).
2. **Final training and test.** The chosen architecture and a baseline (the space's reference,
   e.g. NAS-Bench-201's ResNet cell, or one the user names) are trained by exactly the same recipe
   on all the data the search used (training + validation) for ``final_fidelity`` (default: the
   search's highest fidelity), with the same ``final_seeds`` seeds, and tested once each on the
   held-out test split.
3. **Verdict.** The paired per-seed differences give the mean difference and a Student-t
   confidence interval. The verdict says the search beat the baseline only when the whole interval
   is above zero, that the baseline won only when it is below, and otherwise that the numbers do
   not tell them apart. Params, FLOPs and latency of both sit beside it.

Every measurement is stored in the experiment's storage (meta ``final_stage``) as soon as it is
made, so an interrupted final stage resumes without repeating finished work.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from nasforge.errors import ConfigError, InvalidArchitectureError, NasforgeError
from nasforge.evaluators.base import EvalContext, Evaluator
from nasforge.experiment.executors import Executor, InlineExecutor, TrialJob
from nasforge.space.architecture import Architecture
from nasforge.space.base import SearchSpace
from nasforge.trial import Objective, Result, Trial, TrialStatus, ranked_trials
from nasforge.utils.rng import derive_seed

#: Storage meta key holding the final stage's measurements and verdict.
META_KEY = "final_stage"


@dataclass(frozen=True)
class FinalStage:
    """Settings of the final stage (see the module docstring)."""

    top_k: int = 3
    reeval_seeds: int = 2
    final_seeds: int = 3
    final_fidelity: float | None = None
    baseline: str | Architecture | None = "reference"
    confidence: float = 0.95

    def __post_init__(self) -> None:
        for name, low in (("top_k", 1), ("reeval_seeds", 0), ("final_seeds", 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ConfigError(f"final stage: {name} must be a whole number >= {low}, got {v!r}")
        f = self.final_fidelity
        if f is not None and (isinstance(f, bool) or not isinstance(f, (int, float))
                              or not math.isfinite(f) or f <= 0):
            raise ConfigError(f"final stage: final_fidelity must be a positive number, got {f!r}")
        if not 0.5 <= self.confidence < 1:
            raise ConfigError(
                f"final stage: confidence must be in [0.5, 1), got {self.confidence!r}"
            )

    def check(self, space: SearchSpace, evaluator: Evaluator) -> None:
        """Refuse, before the search runs, settings the final stage could not honour."""
        if not evaluator.supports_final:
            raise ConfigError(
                f"evaluator {evaluator.name!r} cannot train and test a final architecture; use "
                "a training or tabular evaluator, or turn the final stage off (final: false)"
            )
        resolve_baseline(space, self.baseline)


def resolve_baseline(space: SearchSpace, spec: str | Architecture | None) -> Architecture | None:
    """The baseline architecture: ``"reference"`` (the space's), a text form, an Architecture,
    or None (no baseline). A baseline from another space is refused, naming both."""
    if spec is None or (isinstance(spec, str) and spec.lower() in ("none", "")):
        return None
    if isinstance(spec, Architecture):
        if spec.space != space.name:
            raise ConfigError(
                f"the baseline is an architecture of space {spec.space!r}, but the search space "
                f"is {space.name!r}; name a baseline of {space.name!r}"
            )
        return space.validate(spec)
    if spec == "reference":
        ref = space.reference_architecture()
        if ref is None:
            raise ConfigError(
                f"space {space.name!r} has no reference architecture; name a baseline "
                "(baseline: <architecture text>) or use baseline: none"
            )
        return ref
    try:
        return space.from_string(spec)
    except (InvalidArchitectureError, ConfigError, ValueError, KeyError) as exc:
        raise ConfigError(
            f"baseline {spec!r:.120} is not an architecture of space {space.name!r}: {exc}"
        ) from None


class _StageEvaluator(Evaluator):
    """Runs the final stage's measurements on any executor: ``ctx.options["final"]`` selects
    :meth:`Evaluator.final_evaluate` (train on train+val, test) over ``evaluate``."""

    def __init__(self, inner: Evaluator) -> None:
        super().__init__()
        self.inner = inner
        self.name = inner.name
        self.space = inner.space

    def evaluate(self, arch: Architecture, ctx: EvalContext) -> Result:
        if ctx.options.get("final"):
            return self.inner.final_evaluate(arch, ctx.seed, ctx.fidelity, ctx.device)
        return self.inner.evaluate(arch, ctx)


def _summarize(kind: str, result: Result, metric: str, test_metric: str) -> dict[str, Any]:
    """The JSON-able part of a measurement's Result that the stage keeps (a final measurement's
    test value under the evaluator's ``final_metric`` name, e.g. ``test_accuracy``)."""
    ok = result.status is TrialStatus.OK
    error = (result.error or "")[:2000]
    if kind == "final":
        acc = result.metrics.get(test_metric) if ok else None
        return {test_metric: None if acc is None else float(acc),
                "seed_mean": bool(result.info.get("seed_mean", False)), "error": error,
                "train_images": result.info.get("train_images"),
                "test_images": result.info.get("test_images")}
    value = result.metrics.get(metric)
    return {"value": float(value) if ok and value is not None else None,
            "status": result.status.value, "error": error}


def _stats(values: list[float]) -> dict[str, Any]:
    arr = np.asarray(values, dtype=float)
    return {"values": [float(v) for v in arr], "mean": float(arr.mean()) if arr.size else None,
            "std": float(arr.std(ddof=1)) if arr.size > 1 else 0.0, "n": int(arr.size)}


def paired_interval(a: list[float], b: list[float], confidence: float) -> dict[str, Any]:
    """Mean of ``a - b`` (paired by seed) and its Student-t confidence interval."""
    from scipy import stats

    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    n = int(d.size)
    mean = float(d.mean())
    if n < 2 or float(d.std(ddof=1)) == 0.0:
        return {"mean": mean, "low": mean if n >= 2 else None, "high": mean if n >= 2 else None,
                "n": n, "std": 0.0}
    sd = float(d.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": n, "std": sd}


def verdict_text(diff: dict[str, Any], confidence: float, same: bool,
                 seed_mean_table: bool) -> tuple[str, str]:
    """``(outcome, sentence)``; outcome is better, worse, inconclusive, same or no-spread."""
    pct = f"{confidence:.0%}"
    if same:
        return "same", ("The search's pick is the baseline architecture itself: the search found "
                        "nothing better than the hand-designed network.")
    m = diff["mean"]
    if seed_mean_table:
        word = "above" if m > 0 else "below" if m < 0 else "level with"
        return ("better" if m > 0 else "worse" if m < 0 else "inconclusive"), (
            f"The search's pick tests {abs(m):.2f} points {word} the baseline (benchmark table: "
            "means over the benchmark's training seeds, so no seed spread is available here).")
    if diff["low"] is None:
        return "no-spread", (f"The search's pick scores {m:+.2f} points against the baseline from "
                             "a single measurement each; no uncertainty can be given (use more "
                             "final seeds).")
    ci = f"{pct} CI [{diff['low']:+.2f}, {diff['high']:+.2f}] over {diff['n']} paired seeds"
    if diff["low"] > 0:
        return "better", f"The search beat the baseline by {m:+.2f} points ({ci})."
    if diff["high"] < 0:
        return "worse", (f"The baseline beat the search's pick by {-m:.2f} points ({ci}): the "
                         "search did not find a better architecture.")
    return "inconclusive", (
        f"No clear winner: the search's pick is {m:+.2f} points against the baseline, but the "
        f"{ci} includes zero; the numbers do not show that the search beat the baseline.")


def top_candidates(trials: list[Trial], objective: Objective, k: int) -> list[Trial]:
    """The best ``k`` distinct architectures, highest fidelity first, then by the objective."""
    out: list[Trial] = []
    seen: set[Architecture] = set()
    for t in ranked_trials(trials, objective):
        if t.arch not in seen:
            seen.add(t.arch)
            out.append(t)
        if len(out) == k:
            break
    return out


class FinalStageRunner:
    """Runs the final stage for one finished experiment (resumable through its storage).

    ``experiment`` is an :class:`~nasforge.experiment.Experiment`, or anything with its
    ``trials``, ``objective``, ``seed``, ``space``, ``evaluator``, ``storage`` and ``device``.
    The measurements run on ``executor`` (default: the experiment's, else inline), in parallel
    when it has several workers.
    """

    def __init__(self, experiment: Any, settings: FinalStage,
                 progress: Callable[[str], None] | None = None,
                 executor: Executor | None = None) -> None:
        self.exp = experiment
        self.executor = executor or getattr(experiment, "executor", None) or InlineExecutor()
        self.settings = settings
        self.progress = progress or (lambda message: None)
        stored = self.exp.storage.get_meta(META_KEY)
        self.record: dict[str, Any] = stored if isinstance(stored, dict) else {}
        self.record.setdefault("measurements", {})

    # ------------------------------------------------------------------ measurements
    def _key(self, kind: str, arch: Architecture, seed: int, fidelity: float | None) -> str:
        return f"{kind}|{seed}|{fidelity}|{arch.to_json()}"

    def _measure_all(self, items: list[tuple[str, Architecture, int, float | None]],
                     what: str) -> list[dict[str, Any]]:
        """Run the measurements not stored yet (in parallel on the experiment's executor), store
        each as soon as it finishes, and return all of them in ``items`` order."""
        done = self.record["measurements"]
        test_metric = self.exp.evaluator.final_metric
        todo = [i for i, (kind, arch, seed, fid) in enumerate(items)
                if self._key(kind, arch, seed, fid) not in done]
        failures: dict[int, dict[str, Any]] = {}
        if todo:
            executor = self.executor
            executor.start(_StageEvaluator(self.exp.evaluator))
            try:
                queue = list(todo)
                running = 0
                finished = len(items) - len(todo)
                while queue or running:
                    while queue and running < executor.capacity:
                        i = queue.pop(0)
                        kind, arch, seed, fid = items[i]
                        ctx = EvalContext(seed=seed, device=self.exp.device, fidelity=fid,
                                          max_fidelity=fid, trial_number=-1,
                                          options={"final": kind == "final"})
                        auto = bool(getattr(self.exp, "_device_auto", False))
                        executor.submit(TrialJob(i, arch, ctx, device_auto=auto))
                        running += 1
                    for outcome in executor.wait(timeout=1.0):
                        running -= 1
                        finished += 1
                        kind, arch, seed, fid = items[outcome.number]
                        out = _summarize(kind, outcome.result, self.exp.objective.metric, test_metric)
                        out["seconds"] = outcome.finished_at - outcome.started_at
                        if kind == "final" and out[test_metric] is None:
                            failures[outcome.number] = out  # not stored: a rerun tries again
                            continue
                        done[self._key(kind, arch, seed, fid)] = out
                        # Stored at once: an interrupted final stage loses no finished work.
                        self.exp.storage.set_meta(META_KEY, self.record)
                        self.progress(f"{what}: {finished}/{len(items)} done")
            finally:
                executor.shutdown()
        return [dict(failures[i]) if i in failures else dict(done[self._key(*item)])
                for i, item in enumerate(items)]

    # ------------------------------------------------------------------ the stage
    def run(self) -> dict[str, Any]:
        """Run (or resume) the stage; returns the JSON-able summary (also stored)."""
        exp, s = self.exp, self.settings
        space = exp.space
        baseline = resolve_baseline(space, s.baseline)
        candidates = top_candidates(exp.trials, exp.objective, s.top_k)
        if not candidates:
            raise ConfigError("no trial finished successfully: there is nothing to select")
        top_fid = candidates[0].fidelity
        sign = exp.objective.sign
        reeval_seeds = [derive_seed(exp.seed, "reeval", j) for j in range(s.reeval_seeds)]
        measured = self._measure_all(
            [("reeval", t.arch, seed, top_fid) for t in candidates for seed in reeval_seeds],
            "re-evaluating the top candidates")
        rows = []
        for i, t in enumerate(candidates):
            mine = measured[i * len(reeval_seeds):(i + 1) * len(reeval_seeds)]
            values = [m["value"] for m in mine if m["value"] is not None]
            rows.append({"trial": t.number, "arch": space.to_string(t.arch),
                         "search_value": t.value(exp.objective.metric), "fidelity": t.fidelity,
                         "reevaluated": _stats(values), "_arch": t.arch})
        # Rank by the fresh seeds' mean (the search value only when no re-evaluation was asked).
        def rank_key(r: dict[str, Any]) -> tuple[float, float, float, int]:
            mean = r["reevaluated"]["mean"] if s.reeval_seeds else r["search_value"]
            # Ties (a finite validation set) go to the higher search fidelity, then search value.
            fid = r["fidelity"] if r["fidelity"] is not None else -math.inf
            sv = r["search_value"]
            return (-(sign * mean) if mean is not None else math.inf, -fid,
                    -(sign * sv) if sv is not None else math.inf, r["trial"])

        rows.sort(key=rank_key)
        chosen_row = rows[0]
        chosen: Architecture = chosen_row["_arch"]
        final_fid = s.final_fidelity if s.final_fidelity is not None else top_fid
        seeds = [derive_seed(exp.seed, "final", j) for j in range(s.final_seeds)]
        sides: dict[str, Any] = {}
        test_metric = exp.evaluator.final_metric
        pairs = [(label, arch) for label, arch in (("chosen", chosen), ("baseline", baseline))
                 if arch is not None]
        finals = self._measure_all(
            [("final", arch, seed, final_fid) for _, arch in pairs for seed in seeds],
            "final training of the pick and the baseline")
        for k, (label, arch) in enumerate(pairs):
            results = finals[k * len(seeds):(k + 1) * len(seeds)]
            failed = [r["error"] for r in results if r.get(test_metric) is None]
            if failed:
                raise NasforgeError(f"the final training of the {label} failed: {failed[0]}")
            sides[label] = {"arch": space.to_string(arch),
                            **_stats([r[test_metric] for r in results]),
                            "profile": exp.evaluator.profile(arch),
                            "train_images": results[0].get("train_images"),
                            "test_images": results[0].get("test_images"),
                            "seed_mean": any(r["seed_mean"] for r in results)}
        summary: dict[str, Any] = {
            "settings": {"top_k": s.top_k, "reeval_seeds": s.reeval_seeds,
                         "final_seeds": s.final_seeds, "final_fidelity": final_fid,
                         "reeval_fidelity": top_fid, "test_metric": test_metric,
                         "confidence": s.confidence,
                         "baseline": s.baseline if not isinstance(s.baseline, Architecture)
                         else space.to_string(s.baseline)},
            "candidates": [{k: v for k, v in r.items() if k != "_arch"} for r in rows],
            "chosen": {"trial": chosen_row["trial"], "arch": chosen_row["arch"],
                       "architecture": chosen.to_dict()},
            "final": sides,
        }
        if baseline is not None:
            table = sides["chosen"]["seed_mean"]
            n = len(seeds) if not table else 1
            diff = paired_interval(sides["chosen"]["values"][:n], sides["baseline"]["values"][:n],
                                   s.confidence)
            outcome, text = verdict_text(diff, s.confidence, chosen == baseline, table)
            summary["verdict"] = {"outcome": outcome, "text": text, "difference": diff}
        else:
            summary["verdict"] = {"outcome": "no-baseline",
                                  "text": "No baseline was named, so there is no verdict.",
                                  "difference": None}
        self.record["summary"] = summary
        exp.storage.set_meta(META_KEY, self.record)
        return summary


def run_final_stage(experiment: Any, settings: FinalStage | None = None,
                    progress: Callable[[str], None] | None = None,
                    executor: Executor | None = None) -> dict[str, Any]:
    """Re-evaluate the top-k, retrain and test the pick next to the baseline, give the verdict."""
    return FinalStageRunner(experiment, settings or FinalStage(), progress, executor).run()


def stored_final_stage(storage: Any) -> dict[str, Any] | None:
    """The summary a finished final stage stored, or None."""
    record = storage.get_meta(META_KEY)
    if isinstance(record, dict):
        summary = record.get("summary")
        return summary if isinstance(summary, dict) else None
    return None
