"""Optuna inside nasforge, and nasforge spaces inside Optuna.

:func:`suggest_architecture` turns an ``optuna.Trial`` into an architecture of any nasforge space
(use it in your own Optuna objective). :class:`OptunaStrategy` drives an Optuna sampler through
Optuna's ask/tell interface as a nasforge strategy; ``tpe`` and ``optuna_nsga2`` are built on it.

Decisions become categorical parameters named after the decisions. Conditional spaces are
define-by-run: a decision is suggested only when it is active given the values suggested before
it. The values then go through ``space.complete``, which applies the space's own repair rule
(e.g. DARTS' ordered, distinct node inputs), so the architecture is always a valid member; the
repair is deterministic, so the sampler still sees a fixed function of its parameters.

Resuming. A state holds the study itself: every Optuna trial (state, values, parameters and system
attributes, such as constraint violations or NSGA-II's generation), the study's system attributes
(where NSGA-II caches its parent population) and the state of every random generator the sampler
draws from. Loading rebuilds an in-memory study with ``study.add_trials`` (the distributions
follow from the space's decisions) and sets the generators back, so the restored strategy proposes
exactly what the original would have, at O(trials) cost: no ask is replayed. (Loading a state
written by older versions, which logged every ask and tell, still replays that log.)
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import optuna

from nasforge.errors import ConfigError
from nasforge.space.architecture import Architecture
from nasforge.space.base import SearchSpace
from nasforge.space.decision import Value
from nasforge.strategies._common import Taken, objective_scores, propose_unique
from nasforge.strategies.base import Strategy
from nasforge.trial import Objective, Trial
from nasforge.utils.rng import RngLike

log = logging.getLogger("nasforge.strategies")

#: Sampler proposals per ask that may repeat a pending or evaluated architecture before a
#: random untaken one is asked instead.
DUPLICATE_TRIES = 20

#: Name of the Optuna constraint that holds a trial's violation (> 0: infeasible).
CONSTRAINT = "nasforge_constraints"


def suggest_architecture(trial: optuna.Trial, space: SearchSpace, prefix: str = "") -> Architecture:
    """Suggest every active decision of ``space`` on ``trial`` and return the architecture.

    Example::

        def objective(trial):
            arch = suggest_architecture(trial, space)
            return train_and_score(space.build(arch))

    ``prefix`` is prepended to the parameter names (to mix in other hyper-parameters safely).
    """
    values: dict[str, Value] = {}
    for d in space.decisions:
        if d.active(values):
            value = trial.suggest_categorical(prefix + d.name, list(d.options))
            assert isinstance(value, (str, int, float, bool))  # one of d.options
            values[d.name] = value
    return space.complete(values)


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Silence Optuna's per-trial INFO lines and experimental-feature warnings for a moment."""
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        optuna.logging.set_verbosity(level)


class OptunaStrategy(Strategy):
    """A nasforge strategy backed by an Optuna sampler (subclasses build the sampler).

    ``sampler_options`` are passed to the sampler's constructor. Failed trials are told as
    FAIL; infeasible ones as COMPLETE with a constraint violation of 1 (Optuna's samplers rank them
    behind every feasible trial) and, since Optuna needs values, the worst values seen so far.
    A proposal that repeats a pending architecture is told as FAIL and, with ``avoid_repeats``
    (the default), one that repeats an evaluated architecture is told its known result; either way
    the sampler is asked again. After ``DUPLICATE_TRIES`` such proposals in a row, a uniformly
    random untaken architecture is asked through the study instead (``enqueue_trial``), so no
    query is spent twice. ``avoid_repeats=False`` returns a proposal that repeats an evaluated
    architecture, so it is evaluated (and charged) again, as in Optuna's own ``optimize`` loop and
    in NAS-Bench-201's protocol, where every query costs its simulated time.
    """

    def __init__(
        self,
        space: SearchSpace,
        seed: RngLike = None,
        objectives: Objective | str | Sequence[Objective | str] | None = None,
        avoid_repeats: bool = True,
        **sampler_options: Any,
    ) -> None:
        super().__init__(space, seed, objectives)
        if not isinstance(avoid_repeats, bool):
            raise ConfigError(f"strategy {self.name!r}: avoid_repeats must be true or false, "
                              f"got {avoid_repeats!r}")
        self.avoid_repeats = avoid_repeats
        self.sampler_options = dict(sampler_options)
        self.optuna_seed = int(self.rng.integers(2**31))
        try:
            self.study = self._new_study()
        except TypeError as e:  # the sampler's constructor names the option it does not take
            raise ConfigError(f"strategy {self.name!r}: bad sampler option(s) "
                              f"{sorted(self.sampler_options)}: {e}") from None
        #: Optuna trials asked and not closed yet, with their architectures.
        self._open: list[tuple[Architecture, optuna.Trial]] = []
        self._worst: list[float] | None = None
        #: Outcome of every evaluated architecture: [state, values, violation].
        self._known: dict[Architecture, list[Any]] = {}
        # Parameter name -> distribution: what suggest_architecture declares for each decision.
        self._distributions = {d.name: optuna.distributions.CategoricalDistribution(
            list(d.options)) for d in space.decisions}

    @abstractmethod
    def _make_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        """A new sampler seeded with ``seed`` (``self.sampler_options`` applied)."""

    def _new_study(self) -> optuna.Study:
        with quiet_optuna():
            return optuna.create_study(
                directions=[optuna.study.StudyDirection.MAXIMIZE if o.direction == "maximize"
                            else optuna.study.StudyDirection.MINIMIZE for o in self.objectives],
                sampler=self._make_sampler(self.optuna_seed),
            )

    # ------------------------------------------------------------------ ask / tell
    def _ask(self) -> Architecture:
        # A sampler may propose an architecture that is pending or already evaluated. Close such
        # a proposal at once (pending: as failed, so it teaches nothing; evaluated: with its known
        # result, a free observation) and ask again, a bounded number of times.
        taken = Taken(self._known if self.avoid_repeats else {}, self.pending)
        for _ in range(DUPLICATE_TRIES):
            arch, number = self._optuna_ask()
            if arch in taken.pending:
                self._optuna_tell(number, "duplicate", None, 0.0)
            elif self.avoid_repeats and arch in self._known:
                self._optuna_tell(number, *self._known[arch])
            else:
                return arch
        # The sampler keeps proposing taken architectures (TPE's argmax over few observations can
        # repeat one pending proposal every time, and a converged model repeats its favourites):
        # ask Optuna for a uniformly random untaken architecture instead, so the study records it.
        arch = propose_unique(lambda: self.space.sample(self.rng), taken)
        return self._optuna_ask(arch)[0]

    def _optuna_ask(self, fixed: Architecture | None = None) -> tuple[Architecture, int]:
        """Ask the study for a trial (with ``fixed``'s choices when given) and its architecture."""
        with quiet_optuna():
            if fixed is not None:
                self.study.enqueue_trial({d.name: fixed[d.name]
                                          for d in self.space.active_decisions(fixed)})
            ot = self.study.ask()
            arch = suggest_architecture(ot, self.space)
        self._open.append((arch, ot))
        return arch, ot.number

    def _tell(self, trial: Trial) -> None:
        number = next((ot.number for a, ot in self._open if a == trial.arch), None)
        if number is None:
            if trial.arch.space != self.space.name:
                return
            # Not proposed by this strategy (e.g. the uniformly drawn third of a model-based
            # Hyperband's configurations): record it as an enqueued trial, so the model learns
            # from it as BOHB's does.
            number = self._optuna_ask(trial.arch)[1]
        scores = objective_scores(self.objectives, trial)
        if scores is None:
            self._optuna_tell(number, "fail", None, 0.0)
        elif not scores:
            self._optuna_tell(number, "complete", self._worst_values(), 1.0)
        else:
            values = [float(trial.value(o.metric) or 0.0) for o in self.objectives]
            self._optuna_tell(number, "complete", values, 0.0)

    def amend_last_ask(self, arch: Architecture) -> None:
        """Replace the newest pending ask by ``arch`` (a resume replaying stored history).

        The replaced proposal was never evaluated: its Optuna trial is closed as failed (so it
        teaches nothing and no longer counts as running), and ``arch`` is asked through the study
        in its place, so its result is told to the trial that holds it.
        """
        replaced = self.pending[-1] if self.pending else None
        super().amend_last_ask(arch)
        number = next((ot.number for a, ot in self._open if a == replaced), None)
        if number is not None:
            self._optuna_tell(number, "duplicate", None, 0.0)
        self._optuna_ask(arch)

    def _worst_values(self) -> list[float]:
        return list(self._worst) if self._worst is not None else [0.0] * len(self.objectives)

    def _optuna_tell(self, number: int, state: str, values: list[float] | None,
                     viol: float) -> None:
        """Close open Optuna trial ``number``: ``state`` is "complete" (with ``values`` and
        constraint violation ``viol``), "fail" or "duplicate"; remember the outcome."""
        i = next(i for i, (_, ot) in enumerate(self._open) if ot.number == number)
        arch, ot = self._open.pop(i)
        with quiet_optuna():
            if state in ("fail", "duplicate"):
                self.study.tell(ot, state=optuna.trial.TrialState.FAIL)
            else:
                ot.set_constraint(CONSTRAINT, float(viol))
                self.study.tell(ot, values=values)
        if state == "duplicate":
            return
        self._known[arch] = [state, values, viol]
        if state == "complete" and viol == 0.0:
            assert values is not None
            if self._worst is None:
                self._worst = [float(v) for v in values]
            else:
                self._worst = [min(w, v) if o.direction == "maximize" else max(w, v)
                               for w, v, o in zip(self._worst, values, self.objectives)]

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["optuna_seed"] = self.optuna_seed
        storage, study_id = self.study._storage, self.study._study_id
        state["study"] = {
            "trials": [[t.state.name, t.values, t.params, t.system_attrs]
                       for t in self.study.get_trials(deepcopy=False)],
            "system_attrs": storage.get_study_system_attrs(study_id),
        }
        state["sampler_rngs"] = {path: _rng_state(rng)
                                 for path, rng in _random_states(self.study.sampler).items()}
        state["open"] = [[ot.number, arch.to_dict()] for arch, ot in self._open]
        state["known"] = [[arch.to_dict(), *outcome] for arch, outcome in self._known.items()]
        state["worst"] = self._worst
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.optuna_seed = int(state["optuna_seed"])
        self.study = self._new_study()
        self._open = []
        self._worst = None
        self._known = {}
        if "study" not in state:
            self._replay(state["events"])
            return
        storage, study_id = self.study._storage, self.study._study_id
        for key, value in state["study"]["system_attrs"].items():
            storage.set_study_system_attr(study_id, key, value)
        with quiet_optuna():
            self.study.add_trials([
                optuna.trial.create_trial(
                    state=optuna.trial.TrialState[name], values=values, params=params,
                    distributions={k: self._distributions[k] for k in params},
                    system_attrs=attrs)
                for name, values, params, attrs in state["study"]["trials"]])
        rngs = _random_states(self.study.sampler)
        if set(rngs) != set(state["sampler_rngs"]):
            log.warning("the sampler's random generators (%s) differ from the stored ones (%s); "
                        "was the state written by another Optuna version? The resumed search "
                        "may propose differently.", sorted(rngs), sorted(state["sampler_rngs"]))
        for path, rng_data in state["sampler_rngs"].items():
            if path in rngs:
                _set_rng_state(rngs[path], rng_data)
        for number, arch in state["open"]:
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, int(number))
            self._open.append((Architecture.from_dict(arch), optuna.Trial(self.study, trial_id)))
        self._known = {Architecture.from_dict(a): [s, v, x] for a, s, v, x in state["known"]}
        worst = state["worst"]
        self._worst = None if worst is None else [float(w) for w in worst]

    def _replay(self, events: list[list[Any]]) -> None:
        """Rebuild the study from the ask/tell log of older states (one ask per logged ask)."""
        mismatches = 0
        for event in events:
            if event[0] == "ask":
                if self._optuna_ask()[0] != Architecture.from_dict(event[1]):
                    mismatches += 1
            else:
                self._optuna_tell(int(event[1]), event[2], event[3], event[4])
        if mismatches:
            log.warning("replaying %d Optuna asks gave %d different architecture(s); was the "
                        "state written by another Optuna version?",
                        sum(e[0] == "ask" for e in events), mismatches)


# ---------------------------------------------------------------------------------- generators
def _random_states(sampler: optuna.samplers.BaseSampler) -> dict[str, np.random.RandomState]:
    """Every numpy ``RandomState`` ``sampler`` draws from, by attribute path (``_rng`` and
    ``_random_sampler._rng`` for TPE and NSGA-II), found by walking the sampler and the samplers it
    holds.

    Optuna keeps them in ``LazyRandomState`` wrappers (``.rng``); a generator shared by two
    attributes is listed once. This reads private attributes, so a future Optuna may move them;
    :meth:`OptunaStrategy.load_state_dict` then warns that the resumed future may differ.
    """
    found: dict[str, np.random.RandomState] = {}
    seen: set[int] = set()

    def walk(obj: object, prefix: str) -> None:
        for name, value in sorted(vars(obj).items()):
            if isinstance(value, optuna.samplers.BaseSampler):
                walk(value, f"{prefix}{name}.")
                continue
            if type(value).__name__ == "LazyRandomState":
                value = value.rng
            if isinstance(value, np.random.RandomState) and id(value) not in seen:
                seen.add(id(value))
                found[prefix + name] = value

    walk(sampler, "")
    return found


def _rng_state(rng: np.random.RandomState) -> list[Any]:
    """JSON form of a ``RandomState``'s state."""
    kind, keys, pos, has_gauss, gauss = rng.get_state(legacy=True)
    return [kind, [int(k) for k in keys], int(pos), int(has_gauss), float(gauss)]


def _set_rng_state(rng: np.random.RandomState, data: list[Any]) -> None:
    """Inverse of :func:`_rng_state`, in place (the sampler keeps its generator objects)."""
    kind, keys, pos, has_gauss, gauss = data
    rng.set_state((kind, np.asarray(keys, dtype=np.uint32), int(pos), int(has_gauss),
                   float(gauss)))
