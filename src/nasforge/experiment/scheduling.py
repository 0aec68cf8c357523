"""The experiment's multi-fidelity side: which trial runs next at which fidelity, and who hears of it.

:class:`TrialPlan` joins the experiment loop, the strategy, an optional
:class:`~nasforge.experiment.schedulers.Scheduler` and an optional
:class:`~nasforge.experiment.pruners.Pruner`. Without a scheduler every trial is a new proposal of
the strategy at the experiment's fixed fidelity, and the strategy is told each one, as before.
With one, the scheduler picks between new configurations and promotions, and decides when the
strategy hears of a configuration (see :mod:`nasforge.experiment.schedulers.base`).

Everything here is a function of the stored trials, in ask and tell order: on resume the loop shows
the stored history to :meth:`TrialPlan.replay_ask` / :meth:`TrialPlan.replay_tell` and the
scheduler, the strategy and the checkpoints line up again.
"""

from __future__ import annotations

import bisect
import dataclasses
import logging
import math
import os
import shutil
import tempfile
from typing import Any

import numpy as np

from nasforge.errors import ConfigError
from nasforge.evaluators.base import Evaluator
from nasforge.experiment.pruners import REPORTS, Pruner, create_pruner
from nasforge.experiment.schedulers import Scheduler, Slot, create_scheduler, schedule_info
from nasforge.experiment.schedulers.base import BRACKET, CONFIG, PARENT, RUNG
from nasforge.experiment.schedulers.bohb import ModelBasedHyperband
from nasforge.space.architecture import Architecture
from nasforge.space.base import SearchSpace
from nasforge.strategies.base import Strategy
from nasforge.trial import Objective, Trial, TrialStatus
from nasforge.utils.rng import derive_seed

log = logging.getLogger("nasforge.experiment")

#: ``Trial.info`` key: a new configuration drawn uniformly instead of asked from the strategy.
RANDOM = "random_config"
#: ``Trial.info`` key: fidelity units (epochs) this evaluation spent.
SPENT = "fidelity_spent"


def as_scheduler(scheduler: Scheduler | str | None) -> Scheduler | None:
    """A scheduler object from an object, a registered name, or None."""
    if scheduler is None or isinstance(scheduler, Scheduler):
        return scheduler
    if isinstance(scheduler, str):
        return create_scheduler(scheduler)
    raise ConfigError(f"scheduler must be a Scheduler, a name or None, got {type(scheduler).__name__}")


def as_pruner(pruner: Pruner | str | None) -> Pruner | None:
    """A pruner object from an object, a registered name, or None."""
    if pruner is None or isinstance(pruner, Pruner):
        return pruner
    if isinstance(pruner, str):
        return create_pruner(pruner)
    raise ConfigError(f"pruner must be a Pruner, a name or None, got {type(pruner).__name__}")


class TrialPlan:
    """Plans trials (architecture, fidelity, schedule info) and routes results to the strategy."""

    def __init__(
        self,
        space: SearchSpace,
        strategy: Strategy,
        evaluator: Evaluator,
        objective: Objective,
        *,
        scheduler: Scheduler | str | None,
        pruner: Pruner | str | None,
        fidelity: float | None,
        seed: int,
        checkpoint_dir: str | os.PathLike[str] | None,
    ) -> None:
        self.space, self.strategy, self.evaluator = space, strategy, evaluator
        self.scheduler = as_scheduler(scheduler)
        self.pruner = as_pruner(pruner)
        self.fidelity = fidelity
        self.seed = seed
        self.sign = objective.sign
        if self.scheduler is not None:
            if fidelity is not None:
                raise ConfigError(
                    f"fidelity={fidelity!r} and scheduler {self.scheduler.name!r} were both given: "
                    "the scheduler sets each trial's fidelity (its rungs); drop fidelity"
                )
            self.scheduler.configure(evaluator, objective)
        if self.pruner is not None:
            reported = evaluator.reports_metric
            if reported is None:
                raise ConfigError(
                    f"pruner {self.pruner.name!r} needs intermediate values, but evaluator "
                    f"{evaluator.name!r} reports none; use an evaluator that trains (train, distill)"
                )
            if reported != objective.metric:
                raise ConfigError(
                    f"pruner {self.pruner.name!r} would compare {reported!r} (what evaluator "
                    f"{evaluator.name!r} reports per epoch), but the primary objective is "
                    f"{objective}; prune only when the primary objective is {reported!r}"
                )
        #: Checkpoints of rungs, so that promotions continue them (training evaluators).
        self._checkpoint_root = checkpoint_dir
        self._own_tmp: str | None = None
        self.checkpoints = self.scheduler is not None and evaluator.can_resume
        # The pruner's reference: a trial is judged against the OK results told before its ask,
        # so its pruning decisions depend only on the ask/tell order, never on timing. Tell
        # sequence numbers only grow, so the reference of any ask is a prefix (found by bisection).
        self._asked_seq: dict[int, int] = {}
        self._ok_seqs: list[int] = []
        self._ok_trials: list[Trial] = []

    def check_budget(self, max_trials: int | None) -> None:
        """Refuse a trial budget too small for the brackets asked for explicitly (Hyperband's
        ``brackets``); warn when it cannot finish even one bracket (a bracket cut short leaves
        its candidates at the lowest rungs, never fully evaluated)."""
        from nasforge.experiment.schedulers._brackets import BracketScheduler

        sched = self.scheduler
        if max_trials is None or not isinstance(sched, BracketScheduler):
            return
        k = sched.brackets_to_finish()
        needed = sched.evaluations(k)
        if needed > max_trials and not getattr(sched, "brackets_wanted", None):
            # A budget extended run by run (10 trials now, 30 later) is legitimate: say it.
            log.warning("scheduler %r: one bracket needs %d evaluations, more than the budget of "
                        "%d trials; its candidates will stop at low rungs unless the budget is "
                        "extended", sched.name, needed, max_trials)
        elif needed > max_trials:
            raise ConfigError(
                f"scheduler {sched.name!r}: {k} bracket(s) need {needed} evaluations "
                f"(rungs {', '.join(f'{r:g}' for r in sched.rungs)}, eta {sched.eta:g}), more "
                f"than the budget of {max_trials} trials; raise the trial budget to at least "
                f"{needed}, ask for fewer brackets, or use fewer rungs or a smaller eta"
            )

    # ------------------------------------------------------------------ settings
    def describe(self) -> dict[str, Any]:
        """Scheduler and pruner settings (stored with the experiment's config)."""
        out: dict[str, Any] = {}
        if self.scheduler is not None:
            out["scheduler"] = self.scheduler.describe()
        if self.pruner is not None:
            out["pruner"] = self.pruner.describe()
        return out

    @property
    def top_fidelity(self) -> float | None:
        """The highest fidelity a trial of this plan gets (None: the evaluator's own)."""
        return self.scheduler.top_fidelity if self.scheduler is not None else self.fidelity

    # ------------------------------------------------------------------ planning
    def next_slot(self) -> Slot | bool | None:
        """The scheduler's next slot; True without a scheduler (always a new proposal)."""
        if self.scheduler is None:
            return True
        return self.scheduler.next_slot()

    def propose(self, slot: Slot | bool, number: int) -> tuple[Architecture, float | None,
                                                                dict[str, Any]]:
        """``(arch, fidelity, info)`` of trial ``number`` for a slot from :meth:`next_slot`."""
        if not isinstance(slot, Slot):
            return self.strategy.ask(), self.fidelity, {}
        assert self.scheduler is not None
        info: dict[str, Any] = {RUNG: slot.rung, BRACKET: slot.bracket}
        if slot.parent is not None:
            arch = slot.parent.arch
            sched = schedule_info(slot.parent)
            assert sched is not None
            info.update({CONFIG: sched[2], PARENT: slot.parent.number})
        else:
            info[CONFIG] = number
            if self._random(number):
                rng = np.random.default_rng(derive_seed(self.seed, number, "random-config"))
                arch = self.space.sample(rng)
                info[RANDOM] = True
            else:
                arch = self.strategy.ask()
        return arch, self.scheduler.fidelity(slot), info

    def _random(self, number: int) -> bool:
        sched = self.scheduler
        return isinstance(sched, ModelBasedHyperband) and sched.random_config(self.seed, number)

    def asked(self, number: int, seq: int) -> None:
        """Trial ``number`` was asked at sequence number ``seq`` (every ask, replayed ones too)."""
        if self.pruner is not None:
            self._asked_seq[number] = seq

    def started(self, trial: Trial) -> None:
        """Tell the scheduler a trial started (not for constraint-rejected proposals)."""
        if self.scheduler is not None and schedule_info(trial) is not None:
            self.scheduler.started(trial)

    def told(self, trial: Trial, seq: int) -> list[Trial]:
        """A result was told at sequence number ``seq`` (in tell order): the trials the strategy
        should hear of now."""
        if self.pruner is not None and trial.status is TrialStatus.OK:
            self._ok_seqs.append(seq)
            self._ok_trials.append(trial)
        if self.scheduler is None or schedule_info(trial) is None:
            return [trial]  # unscheduled, or a proposal the constraints rejected
        return self.scheduler.finished(trial)

    # ------------------------------------------------------------------ resume
    def asked_strategy(self, trial: Trial) -> bool:
        """Whether this stored trial's architecture came from ``strategy.ask()``."""
        return trial.info.get(PARENT) is None and not trial.info.get(RANDOM)

    def replay_started(self, trial: Trial) -> None:
        """Show the scheduler a stored trial at its ask (as running: what it was back then)."""
        running = dataclasses.replace(trial, status=TrialStatus.RUNNING, metrics={},
                                      finished_at=None)
        self.started(running)

    def reset(self) -> None:
        """Forget the scheduler's trials and the pruner's reference before a replay."""
        if self.scheduler is not None:
            self.scheduler.reset()
        self._asked_seq, self._ok_seqs, self._ok_trials = {}, [], []

    # ------------------------------------------------------------------ evaluation context
    def context(self, trial: Trial) -> dict[str, Any]:
        """Extra :class:`~nasforge.evaluators.base.EvalContext` fields for a trial that starts."""
        extra: dict[str, Any] = {}
        if self.pruner is not None:
            asked = self._asked_seq.get(trial.number, math.inf)
            finished = self._ok_trials[:bisect.bisect_left(self._ok_seqs, asked)]
            after = 0
            if self.scheduler is not None and trial.info.get(PARENT) is not None:
                # Its parent passed the steps up to the rung below (steps are epochs).
                after = math.floor(self.scheduler.rungs[int(trial.info[RUNG]) - 1])
            extra["reporter"] = self.pruner.check(finished, self.sign, after_step=after)
        if self.scheduler is not None:
            extra["max_fidelity"] = self.scheduler.top_fidelity
            if self.checkpoints:
                rung = int(trial.info.get(RUNG, 0))
                if rung + 1 < len(self.scheduler.rungs):  # a rung that may be promoted
                    extra["checkpoint_to"] = self.checkpoint_path(trial.number)
                parent = trial.info.get(PARENT)
                if parent is not None:
                    extra["resume_from"] = self.checkpoint_path(int(parent))
        return extra

    def checkpoint_path(self, number: int) -> str:
        """Where trial ``number``'s rung checkpoint lives."""
        root = self._checkpoint_root
        if root is None:
            if self._own_tmp is None:
                self._own_tmp = tempfile.mkdtemp(prefix="nasforge-rungs-")
            root = self._own_tmp
        return os.path.join(os.fspath(root), f"trial-{number}.pt")

    def spent(self, trial: Trial, info: dict[str, Any], parent_fidelity: float | None) -> float:
        """Fidelity units an evaluation spent: what it says it trained (``epochs_trained``), else
        its fidelity less its parent's when it continued one; a pruned trial only the steps it
        reported (its learning curve ends where it was stopped)."""
        if "epochs_trained" in info:
            return float(info["epochs_trained"])
        fid = trial.fidelity if trial.fidelity is not None else self.evaluator.default_fidelity()
        if info.get("pruned_at") is not None and self.evaluator.fidelity_unit == "epochs":
            fid = float(info["pruned_at"])  # stopped after this epoch (steps are epochs)
        if fid is None:
            return 0.0
        if parent_fidelity is not None and self.checkpoints and "resume" not in info:
            full = max(float(fid) - parent_fidelity, 0.0)
        else:
            full = float(fid)
        reports = info.get(REPORTS)
        if "pruned_at" in info and reports and self.evaluator.reports_metric is not None:
            # Pruned: it ran from just before its first report (after the epochs it continued
            # from, if any) to the step it was stopped at; evaluators report once per epoch.
            ran = float(info["pruned_at"]) - (float(reports[0][0]) - 1.0)
            return min(max(ran, 0.0), full)
        return full

    def close(self) -> None:
        """Remove the temporary checkpoint folder (only the one this plan made itself)."""
        if self._own_tmp is not None:
            shutil.rmtree(self._own_tmp, ignore_errors=True)
            self._own_tmp = None
