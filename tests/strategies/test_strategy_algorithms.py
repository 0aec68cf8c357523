"""Algorithm-specific behaviour of the search strategies on toy objectives."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import optuna
import pytest
from strategy_helpers import TINY, ToyConditionalSpace, crc, drive, toy_trial

import nasforge
from nasforge.errors import ConfigError
from nasforge.pareto import hypervolume
from nasforge.space.architecture import Architecture
from nasforge.space.base import SearchSpace
from nasforge.strategies.base import Strategy
from nasforge.strategies.ga import GeneticAlgorithm
from nasforge.strategies.local_search import LocalSearch
from nasforge.strategies.nsga2 import NSGA2
from nasforge.strategies.predictors import MLPEnsemble
from nasforge.strategies.progressive import ProgressiveSearch
from nasforge.strategies.reinforce import FREE_UPDATES, Reinforce
from nasforge.strategies.tpe import suggest_architecture
from nasforge.trial import Trial, TrialStatus

NB201 = nasforge.create_space("nb201")
OPS = NB201.decisions[0].options


def convs(arch: Architecture) -> float:
    """Toy accuracy with one global optimum: 3x3 convs count 1, 1x1 convs 0.5."""
    return sum({"nor_conv_3x3": 1.0, "nor_conv_1x1": 0.5}.get(str(v), 0.0) for v in arch.values())


def rugged(arch: Architecture) -> float:
    """Toy accuracy with many local optima (a pseudo-random value per architecture)."""
    return float(crc(arch) % 1000)


def ok(arch: Architecture, number: int, **metrics: float) -> Trial:
    return Trial(number=number, arch=arch, status=TrialStatus.OK, metrics=metrics)


def run(strategy: Strategy, fn: Callable[[Architecture], float], trials: int) -> list[Trial]:
    told = []
    for n in range(trials):
        arch = strategy.ask()
        trial = ok(arch, n, accuracy=fn(arch))
        strategy.tell(trial)
        told.append(trial)
    return told


# ---------------------------------------------------------------------------------- REINFORCE
def test_reinforce_update_raises_log_prob_of_rewarded_arch() -> None:
    strat = Reinforce(NB201, seed=0)
    good, bad = NB201.sample(1), NB201.sample(2)
    strat.update(bad, 10.0)  # sets a low baseline
    before_good, before_bad = strat.log_prob(good), strat.log_prob(bad)
    assert strat.update(good, 90.0) > 0  # positive advantage
    assert strat.log_prob(good) > before_good
    strat2 = Reinforce(NB201, seed=0)
    strat2.update(good, 90.0)
    assert strat2.update(bad, 10.0) < 0
    assert strat2.log_prob(bad) < before_bad


def test_reinforce_normalized_advantage_is_clipped() -> None:
    strat = Reinforce(NB201, seed=0, normalize_advantage=True)
    archs = [NB201.sample(i) for i in range(6)]
    advantages = [strat.update(a, r) for a, r in zip(archs, [80.0, 81.0, 79.0, 80.5, 79.5, 10.0])]
    assert advantages[0] == 0.0  # no spread yet
    # The outlier counts a few standard deviations (at most 3), not the raw -60 or so.
    assert -3.0 <= advantages[-1] < -1.5
    assert all(abs(a) <= 3.0 for a in advantages)
    plain = Reinforce(NB201, seed=0, normalize_advantage=False)
    assert [plain.update(a, r) for a, r in zip(archs, [80.0, 10.0])][1] < -30


@pytest.mark.parametrize("avoid", [True, False])
def test_reinforce_learns_from_known_draws_without_a_query(avoid: bool) -> None:
    strat = Reinforce(NB201, seed=0, avoid_repeats=avoid)
    known = [NB201.sample(i) for i in range(3)]
    for n, arch in enumerate(known):
        strat.ask()
        strat.pending.clear()  # the asked architecture is not the one told below
        strat.tell(ok(arch, n, accuracy=80.0 + n))
    new = NB201.sample(7)
    draws = iter([known[2], known[0], new])
    strat._sample = lambda: next(draws)  # type: ignore[method-assign]
    updates, before = strat.updates, strat.log_prob(known[2])
    if avoid:
        assert strat.ask() == new  # the known draws were learned from, not returned
        assert strat.updates == updates + 2 and strat.free_updates == 2
        assert strat.log_prob(known[2]) > before  # the best known reward pulled its draw up
    else:
        assert strat.ask() == known[2]  # plain REINFORCE evaluates every draw
        assert strat.updates == updates and strat.free_updates == 0


def test_reinforce_free_updates_per_ask_are_bounded() -> None:
    strat = Reinforce(NB201, seed=0)
    arch = NB201.sample(0)
    strat.tell(ok(arch, 0, accuracy=80.0))
    strat._sample = lambda: arch  # type: ignore[method-assign]  # a fully collapsed policy
    assert strat.ask() == arch  # returned (evaluated again) once the free updates are spent
    assert strat.free_updates == FREE_UPDATES


def test_reinforce_batch_asks_redraw_pending_and_resume_known_rewards() -> None:
    strat = Reinforce(NB201, seed=0, lr=0.05)  # collapses within a few updates
    run(strat, convs, 30)
    assert strat.free_updates > 0
    batch = strat.ask_batch(4)
    assert len(set(batch)) == 4
    second = Reinforce(NB201, seed=1, lr=0.05)
    second.load_state_dict(json.loads(json.dumps(strat.state_dict())))
    assert second.known == strat.known and second.free_updates == strat.free_updates


@pytest.mark.slow
def test_reinforce_learns_a_toy_objective() -> None:
    strat = Reinforce(NB201, seed=0, lr=0.02)
    told = run(strat, convs, 150)
    first = np.mean([convs(t.arch) for t in told[:30]])
    last = np.mean([convs(t.arch) for t in told[-30:]])
    assert last > first + 1.0


def test_reinforce_samples_only_active_decisions() -> None:
    space = ToyConditionalSpace()
    strat = Reinforce(space, seed=0)
    for _ in range(30):
        arch = strat.ask()
        assert set(arch) == {d.name for d in space.active_decisions(arch)}
        space.validate(arch)
        assert np.isfinite(strat.log_prob(arch))


def test_reinforce_infeasible_gets_lowest_reward() -> None:
    strat = Reinforce(NB201, seed=0)
    a, b = NB201.sample(1), NB201.sample(2)
    strat.tell(Trial(number=0, arch=a, status=TrialStatus.INFEASIBLE))  # nothing to compare yet
    assert strat.updates == 0
    strat.tell(ok(b, 1, accuracy=50.0))
    before = strat.log_prob(a)
    strat.tell(ok(NB201.sample(3), 2, accuracy=80.0))
    strat.tell(Trial(number=3, arch=a, status=TrialStatus.INFEASIBLE))
    assert strat.worst_reward == 50.0 and strat.updates == 3
    assert strat.log_prob(a) < before


# ---------------------------------------------------------------------------------- GA
@pytest.mark.parametrize("elitism", [1, 3])
def test_ga_elitism_keeps_the_best(elitism: int) -> None:
    strat = GeneticAlgorithm(NB201, seed=0, population_size=8, elitism=elitism)
    best_so_far = -np.inf
    generation = 0
    for n in range(120):
        arch = strat.ask()
        value = rugged(arch)
        strat.tell(ok(arch, n, accuracy=value))
        best_so_far = max(best_so_far, value)
        if strat.generation != generation:
            generation = strat.generation
            assert len(strat.population) == 8
            assert max(t.metrics["accuracy"] for t in strat.population) == best_so_far
    assert generation >= 10


def test_ga_improves_over_generations() -> None:
    strat = GeneticAlgorithm(NB201, seed=0, population_size=10)
    run(strat, convs, 10)
    assert strat.generation == 1
    first = np.mean([convs(t.arch) for t in strat.population])
    run(strat, convs, 140)
    assert np.mean([convs(t.arch) for t in strat.population]) > first + 1.0
    assert max(convs(t.arch) for t in strat.population) == 6.0


# ---------------------------------------------------------------------------------- local search
def test_local_search_climbs_to_local_optima() -> None:
    strat = LocalSearch(NB201, seed=0)
    told = {t.arch: t.metrics["accuracy"] for t in run(strat, rugged, 300)}
    assert len(strat.optima) >= 2  # restarted at least once
    for opt in strat.optima:
        # Every neighbour was evaluated and none is better: a genuine local optimum.
        assert all(n in told and told[n] <= told[opt] for n in NB201.neighbors(opt))
    assert len(told) == 300  # never re-queries an architecture


def test_local_search_finds_the_global_optimum_of_a_unimodal_objective() -> None:
    strat = LocalSearch(NB201, seed=0)
    run(strat, convs, 150)
    assert strat.optima and convs(strat.optima[0]) == 6.0


def test_local_search_batch_asks_use_restart_samples() -> None:
    strat = LocalSearch(NB201, seed=1)
    number = 0
    for _ in range(40):
        batch = strat.ask_batch(4)
        assert len(set(batch)) == 4
        for arch in batch:
            strat.tell(ok(arch, number, accuracy=rugged(arch)))
            number += 1
    assert strat.optima


def test_local_search_keeps_climbing_after_amend_last_ask() -> None:
    # A resume by replay amends an ask the strategy proposed differently; the climb must not
    # wait forever for the replaced neighbour's answer.
    strat = LocalSearch(NB201, seed=0)
    told = {t.arch for t in run(strat, convs, 1)}  # the first architecture becomes the current one
    replaced = strat.ask()
    assert replaced in NB201.neighbors(told.pop())
    rng = np.random.default_rng(5)
    other = NB201.sample(rng)
    while other in strat._neighborhood or other == replaced:
        other = NB201.sample(rng)
    strat.amend_last_ask(other)
    assert strat.pending == [other]
    strat.tell(ok(other, 1, accuracy=convs(other)))
    later = {t.arch for t in run(strat, convs, 150)}
    assert replaced in later  # the replaced neighbour was asked again, not skipped
    assert strat.optima and convs(strat.optima[0]) == 6.0


# ---------------------------------------------------------------------------------- BANANAS
def test_mlp_ensemble_fits_and_disagrees_off_data() -> None:
    import torch

    rng = np.random.default_rng(0)
    x = rng.integers(0, 2, size=(60, 10)).astype(np.float32)
    y = (x[:, :3].sum(axis=1) - 1.5).astype(np.float32)
    model = MLPEnsemble(10, torch.Generator().manual_seed(0), members=5, hidden=(16,), loss="mse")
    start = float(np.mean((model.predict(x).mean(axis=0) - y) ** 2))
    model.fit(x, y, 300)
    end = float(np.mean((model.predict(x).mean(axis=0) - y) ** 2))
    assert end < 0.1 * start
    assert model.predict(x).std(axis=0).mean() > 0  # members differ


@pytest.mark.slow
def test_bananas_beats_random_on_a_toy_objective() -> None:
    def best(name: str, seed: int) -> float:
        strat = nasforge.create_strategy(name, NB201, seed=seed)
        return max(convs(t.arch) for t in run(strat, convs, 30))

    bananas = [best("bananas", s) for s in range(2)]
    random = [best("random", s) for s in range(2)]
    assert np.mean(bananas) > np.mean(random)
    assert max(bananas) == 6.0


# ---------------------------------------------------------------------------------- progressive
def test_progressive_restricts_ordered_decisions_then_widens() -> None:
    space = ToyConditionalSpace()
    strat = ProgressiveSearch(space, seed=0, stages=3, stage_trials=20, initial_fraction=0.4)
    allowed = [{d.name: set(strat.allowed(d, s)) for d in space.decisions} for s in range(3)]
    for d in space.decisions:
        if d.name == "depth":  # numbers, smallest first: shallow networks first
            assert [allowed[s][d.name] for s in range(3)] == [{1, 2}, {1, 2, 3}, {1, 2, 3}]
        elif d.name.endswith("/wide"):  # booleans, off first
            assert [allowed[s][d.name] for s in range(3)] == [{False}, {False, True},
                                                              {False, True}]
        else:  # operation names have no order: never restricted, whatever the stage
            assert all(allowed[s][d.name] == set(d.options) for s in range(3))
    stages = []
    for n in range(60):
        arch = strat.ask()
        stages.append(strat.stage)
        assert all(arch[k] in allowed[strat.stage][k] for k in arch)
        strat.tell(ok(arch, n, accuracy=float(arch["depth"]) + (crc(arch) % 10) / 10))
    assert stages[0] == 0 and stages[-1] == 2
    assert len(strat.population) >= 1


def test_progressive_leaves_a_space_of_named_options_unrestricted() -> None:
    strat = ProgressiveSearch(NB201, seed=0, initial_fraction=0.2)
    assert all(strat.allowed(d, 0) == OPS for d in NB201.decisions)


def test_progressive_grows_parent_decisions_from_small_values() -> None:
    strat = ProgressiveSearch(ToyConditionalSpace(), seed=0, stages=3, initial_fraction=0.3)
    depth = strat.space.decision("depth")
    assert strat.allowed(depth, 0) == (1,)
    assert strat.allowed(depth, 1) == (1, 2)
    assert strat.allowed(depth, 2) == (1, 2, 3)
    assert all(strat.ask()["depth"] == 1 for _ in range(5))


# ---------------------------------------------------------------------------------- multi-objective
def two_objectives(arch: Architecture) -> dict[str, float]:
    """Accuracy grows with convolutions, so do params: a real trade-off."""
    acc = convs(arch) + (crc(arch) % 10) / 20
    params = sum({"nor_conv_3x3": 9.0, "nor_conv_1x1": 1.0}.get(str(v), 0.0) for v in arch.values())
    return {"accuracy": acc, "params": params}


def front_volume(trials: list[Trial]) -> float:
    pts = [(t.metrics["accuracy"], t.metrics["params"]) for t in trials]
    return hypervolume(pts, (0.0, 60.0), ["maximize", "minimize"])


@pytest.mark.parametrize("name", ["nsga2", "pareto_rea"])
def test_multi_objective_front_improves(name: str) -> None:
    objectives = ["accuracy", "min:params"]
    volumes = []
    for strategy in (name, "random"):
        options = {} if strategy == "random" else {"population_size": 20}
        strat = nasforge.create_strategy(strategy, NB201, seed=0, objectives=objectives,
                                         **options)
        told = []
        for n in range(200):
            arch = strat.ask()
            trial = ok(arch, n, **two_objectives(arch))
            strat.tell(trial)
            told.append(trial)
        volumes.append((front_volume(told[:20]), front_volume(told)))
        if strategy != "random":
            population = [m if isinstance(m, Trial) else m[0]
                          for m in strat.population]  # type: ignore[attr-defined]
            assert front_volume(population) > front_volume(told[:20])
    (mo_start, mo_end), (_, random_end) = volumes
    assert mo_end > mo_start
    assert mo_end >= random_end


def test_nsga2_ranks_infeasible_last() -> None:
    strat = NSGA2(NB201, seed=0, objectives=["accuracy", "min:params"], population_size=4)
    archs = strat.ask_batch(6)
    for n, arch in enumerate(archs):
        if n < 2:
            strat.tell(Trial(number=n, arch=arch, status=TrialStatus.INFEASIBLE))
        else:
            strat.tell(ok(arch, n, **two_objectives(arch)))
    # Generation 0 closed after 4 members (2 infeasible, 2 feasible); more feasible ones later.
    assert strat.generation == 1
    assert [t.status for t in strat.population][:2] == [TrialStatus.OK, TrialStatus.OK]


# ---------------------------------------------------------------------------------- Optuna
def test_suggest_architecture_in_a_user_objective() -> None:
    space = ToyConditionalSpace()
    seen: list[Architecture] = []

    def objective(trial: optuna.Trial) -> float:
        arch = suggest_architecture(trial, space)
        seen.append(arch)
        # Only active decisions become parameters (define-by-run).
        assert set(trial.params) == {d.name for d in space.active_decisions(dict(trial.params))}
        return float(arch["depth"])

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    study.optimize(objective, n_trials=15)
    assert len(seen) == 15 and all(space.is_valid(a) for a in seen)
    assert study.best_value == 3.0


def test_tpe_tells_infeasible_as_constraint_violation() -> None:
    strat = nasforge.create_strategy("tpe", NB201, seed=0)
    a, b = strat.ask_batch(2)
    strat.tell(ok(a, 0, accuracy=50.0))
    strat.tell(Trial(number=1, arch=b, status=TrialStatus.INFEASIBLE))
    frozen = strat.study.trials  # type: ignore[attr-defined]
    assert frozen[1].values == [50.0]  # the worst feasible value stands in
    assert any(v == 1.0 for k, v in frozen[1].system_attrs.items() if "constraint" in k)


def test_tpe_never_repeats_an_evaluated_architecture() -> None:
    strat = nasforge.create_strategy("tpe", NB201, seed=0, n_startup_trials=5)
    told = run(strat, convs, 60)
    assert len({t.arch for t in told}) == 60
    # Repeats proposed by the sampler were closed with their known result, not re-queried.
    assert len(strat.study.trials) >= 60  # type: ignore[attr-defined]


def test_tpe_without_avoid_repeats_requeries_like_optunas_own_loop() -> None:
    # NAS-Bench-201's protocol charges every query: a repeated proposal is evaluated again.
    strat = nasforge.create_strategy("tpe", NB201, seed=0, n_startup_trials=5, avoid_repeats=False)
    told = run(strat, convs, 60)
    assert len({t.arch for t in told}) < 60
    # Each asked Optuna trial was one query: no proposal was closed without an evaluation.
    assert len(strat.study.trials) == 60  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="avoid_repeats"):
        nasforge.create_strategy("tpe", NB201, seed=0, avoid_repeats="no")
    # Re-querying evaluated architectures still never hands out a pending one (batch asks), and
    # the rest of the strategy contract holds.
    from nasforge.testing import check_strategy

    check_strategy(lambda space, seed: nasforge.create_strategy(
        "tpe", space, seed=seed, n_startup_trials=3, avoid_repeats=False), NB201)


@pytest.mark.parametrize("name", ["tpe", "optuna_nsga2"])
def test_optuna_amend_last_ask_closes_the_replaced_trial(name: str) -> None:
    # The study must not keep the replaced proposal running forever (TPE's constant liar would
    # count it), and it learns the amended architecture's result.
    strat = nasforge.create_strategy(name, NB201, seed=0, **TINY[name])
    told = {t.arch for t in run(strat, convs, 4)}
    replaced = strat.ask()
    rng = np.random.default_rng(5)
    other = NB201.sample(rng)
    while other in told or other == replaced:
        other = NB201.sample(rng)
    strat.amend_last_ask(other)
    strat.tell(ok(other, 4, accuracy=convs(other)))
    study = strat.study  # type: ignore[attr-defined]
    assert not study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
    assert any(t.params == dict(other) and t.values == [convs(other)] for t in study.trials)
    run(strat, convs, 3)  # and it keeps asking


# ---------------------------------------------------------------------------------- options
@pytest.mark.parametrize(("name", "options", "match"), [
    ("ga", {"elitism": 99}, "elitism"),
    ("ga", {"crossover_rate": 1.5}, "crossover_rate"),
    ("bananas", {"acquisition": "ei"}, "'its', 'ucb', 'mean'"),
    ("bananas", {"num_init": 1}, "num_init"),
    ("bananas", {"batch_size": 0}, "batch_size"),
    ("reinforce", {"lr": -1.0}, "lr"),
    ("local_search", {"num_init": 0}, "num_init"),
    ("progressive", {"initial_fraction": 0.0}, "initial_fraction"),
    ("pareto_rea", {"sample_size": 50}, "sample_size"),
    ("tpe", {"n_startup": 3}, "n_startup"),
])
def test_bad_options_name_the_value(name: str, options: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        nasforge.create_strategy(name, NB201, seed=0, **options)


@pytest.mark.parametrize("name", ["tpe", "optuna_nsga2"])
@pytest.mark.parametrize("space", [NB201, ToyConditionalSpace()], ids=["nb201", "toy"])
def test_optuna_resume_rebuilds_the_study_without_replay(name: str, space: SearchSpace) -> None:
    # Long enough for the model phase, NSGA-II generations and (on the toy space, 68 members)
    # many duplicate proposals closed with known results; batches leave asks pending.
    options = {"population_size": 6} if name == "optuna_nsga2" else {"n_startup_trials": 5}
    objectives = ["accuracy", "min:params"]
    first = nasforge.create_strategy(name, space, seed=0, objectives=objectives, **options)
    drive(first, steps=15, batch=3)
    first.ask_batch(2)
    state = json.loads(json.dumps(first.state_dict(), allow_nan=False))
    assert "events" not in state  # the study itself is stored, not an ask/tell log
    second = nasforge.create_strategy(name, space, seed=99, objectives=objectives, **options)
    calls: list[str] = []
    original = second._make_sampler  # type: ignore[attr-defined]

    def counted(method: str, call: Callable[..., object]) -> Callable[..., object]:
        def wrapper(*args: object, **kwargs: object) -> object:
            calls.append(method)
            return call(*args, **kwargs)

        return wrapper

    def counting(seed: int) -> optuna.samplers.BaseSampler:
        sampler = original(seed)
        for method in ("sample_relative", "sample_independent"):
            setattr(sampler, method, counted(method, getattr(sampler, method)))
        return sampler

    second._make_sampler = counting  # type: ignore[attr-defined]
    second.load_state_dict(state)
    assert not calls  # loading asked the sampler nothing
    assert len(second.study.trials) == len(first.study.trials)  # type: ignore[attr-defined]
    for strat in (first, second):
        for arch in list(strat.pending):
            strat.tell(toy_trial(space, arch, 500))
    assert drive(first, steps=8, start=600, batch=2) == drive(second, steps=8, start=600, batch=2)
    assert calls  # the counter sees the sampler's work once asks resume


def test_mlp_ensemble_minibatches_beyond_batch_size() -> None:
    import torch

    rng = np.random.default_rng(1)
    x = rng.integers(0, 2, size=(400, 10)).astype(np.float32)
    y = (x[:, :3].sum(axis=1) - 1.5).astype(np.float32)

    def fitted(batch_size: int | None, seed: int = 0) -> tuple[MLPEnsemble, float]:
        model = MLPEnsemble(10, torch.Generator().manual_seed(seed), members=3, hidden=(16,))
        model.fit(x, y, 300, batch_size)
        return model, float(np.mean((model.predict(x).mean(axis=0) - y) ** 2))

    full, full_err = fitted(None)
    same, _ = fitted(400)  # no more rows than the batch: full batch, the same draws
    assert torch.equal(full.flat, same.flat)
    mini, mini_err = fitted(32)
    assert not torch.equal(full.flat, mini.flat)
    assert mini_err < 0.1 * float(np.var(y)) and full_err < 0.1 * float(np.var(y))
    assert torch.equal(mini.flat, fitted(32)[0].flat)  # minibatches come from the generator


def test_optuna_loads_a_legacy_event_log_by_replaying_it() -> None:
    # States written before the study was stored held the log of every Optuna ask and tell.
    straight = nasforge.create_strategy("tpe", NB201, seed=0, n_startup_trials=2)
    arch = straight.ask()
    straight.tell(ok(arch, 0, accuracy=50.0))
    state = straight.state_dict()
    for key in ("study", "sampler_rngs", "open", "known", "worst"):
        del state[key]
    state["events"] = [["ask", arch.to_dict()], ["tell", 0, "complete", [50.0], 0.0]]
    resumed = nasforge.create_strategy("tpe", NB201, seed=5, n_startup_trials=2)
    resumed.load_state_dict(json.loads(json.dumps(state)))
    assert [resumed.ask() for _ in range(4)] == [straight.ask() for _ in range(4)]
