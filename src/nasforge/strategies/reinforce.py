"""REINFORCE with an LSTM controller (Zoph & Le, "Neural Architecture Search with Reinforcement
Learning", ICLR 2017; Pham et al., "Efficient Neural Architecture Search via Parameter Sharing",
ICML 2018, for the controller's shape; Williams, 1992, for the estimator).

The controller is an LSTM that makes the space's decisions one after another. At each step the
input is the embedding of the previous decision's choice (a learned start vector at the first
step); every decision has its own embedding table and its own softmax head over its options. For
conditional spaces only the decisions that are active given the earlier choices are made. The
choices go through ``space.complete`` so spaces with rules beyond their decisions (DARTS' node
inputs) always get a valid member.

On every tell the controller takes one Adam step on

    loss = -(reward - baseline) * log p(arch) - entropy_weight * H(arch)

where ``log p(arch)`` and the entropy ``H`` are summed over the architecture's decisions
(computed for the told architecture, so batch asks and resumes need no stored graphs), the reward
is the trial's fitness and the baseline an exponential moving average of rewards. Gradients are
clipped to ``grad_clip`` (global norm). With ``normalize_advantage`` the advantage is divided by
the moving standard deviation of advantages and clipped to +-3: with Adam, one outlier reward
(a NAS-Bench-201 cell without an input-output path scores ~10% against ~80% for the rest) would
otherwise inflate the second-moment estimate and shrink every later step for hundreds of updates.
Failed trials are skipped; an infeasible trial is given the lowest reward seen so far, so the
controller learns to avoid it.

Repeats. A policy that concentrates draws architectures it has already evaluated. With
``avoid_repeats`` (default) such a draw is not evaluated again: its known reward is used for an
update right away (an on-policy sample with its reward, so the estimator stays unbiased; no query
is spent) and the policy is sampled again, up to ``FREE_UPDATES`` times per ask, after which the
draw is returned even if known (plain REINFORCE). We do not reject known draws without learning
from them: that samples the policy truncated to new architectures, q = p / Z, while the step uses
the gradient of log p, whose expectation is the truncated policy's gradient plus
``(E_q[reward] - baseline) * grad log Z``: not REINFORCE's estimator, even if it scored a little
higher in the benchmark below (93.93% against 93.88% on seeds 0-99).
Known rewards assume a deterministic evaluator (a tabular benchmark, or a trained network's
accuracy); pass ``avoid_repeats=False`` to evaluate every draw. A draw that repeats a *pending*
architecture (batch asks) has no reward yet, so it is re-drawn; that does sample the truncated
policy, with the bias above, but only in batches and in proportion to the probability of the
pending architectures. After ``REPEAT_TRIES`` pending draws in a row (a collapsed policy) a
uniformly random untaken architecture is asked instead.

Settings. Hidden size 64, entropy weight 1e-4, weights initialized uniformly in [-0.1, 0.1] follow
ENAS; the baseline has momentum 0.9, bias-corrected and updated with the reward before the
advantage is taken, as in NAS-Bench-201's REINFORCE baseline (Dong & Yang, ICLR 2020). Their
scripts use Adam with learning rate 0.001 for a 30-logit table policy; an LSTM controller barely
moves at that rate in the ~100 updates of NAS-Bench-201's 12,000 s protocol (93.73%, as random
search), so our default is 0.005 with ``normalize_advantage`` (tuned earlier on the search signal;
0.01 collapses early, 93.58% on 100 seeds, and 0.003 is level, 93.83%). Measured like
``benchmarks/strategies_nb201.py`` (test accuracy at 12,000 s, seeds 0-199): the defaults 93.87%,
``avoid_repeats=False`` 93.84%, NAS-Bench-201's paper 93.85 +- 0.37.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from nasforge.errors import ConfigError
from nasforge.registry import STRATEGIES
from nasforge.space.architecture import Architecture
from nasforge.space.base import SearchSpace
from nasforge.space.decision import Value
from nasforge.strategies._common import (
    INFEASIBLE,
    Taken,
    fitness,
    fitness_from_state,
    fitness_to_state,
    positive_float,
    positive_int,
    probability,
    propose_unique,
)
from nasforge.strategies._torch_state import (
    generator_from_state,
    generator_state,
    load_module_state,
    load_optimizer_state,
    module_state,
    optimizer_state,
    seeded_generator,
    single_thread,
)
from nasforge.strategies.base import Strategy
from nasforge.trial import Objective, Trial
from nasforge.utils.rng import RngLike

#: Policy draws per ask that may repeat a pending architecture before a random one is asked.
REPEAT_TRIES = 50
#: With ``avoid_repeats``, known architectures drawn per ask (each an update without a query)
#: before the next draw is returned even if known: bounds the extra updates of a collapsed policy.
FREE_UPDATES = 10
#: With ``normalize_advantage``, advantages are in units of their moving standard deviation and
#: clipped to this many of them.
ADVANTAGE_CLIP = 3.0


class Controller(nn.Module):
    """An LSTM policy over a space's decisions (one embedding table and one head per decision)."""

    def __init__(self, space: SearchSpace, hidden_size: int, generator: torch.Generator) -> None:
        super().__init__()
        self.space = space
        self.index = {d.name: i for i, d in enumerate(space.decisions)}
        self.start = nn.Parameter(torch.zeros(1, hidden_size))
        self.lstm = nn.LSTMCell(hidden_size, hidden_size)
        self.embeddings = nn.ModuleList(nn.Embedding(d.size, hidden_size) for d in space.decisions)
        self.heads = nn.ModuleList(nn.Linear(hidden_size, d.size) for d in space.decisions)
        with torch.no_grad():
            for p in self.parameters():
                p.uniform_(-0.1, 0.1, generator=generator)

    def run(
        self, arch: Architecture | None, generator: torch.Generator | None = None
    ) -> tuple[dict[str, Value], torch.Tensor, torch.Tensor]:
        """Walk the active decisions: sample them (``arch`` None) or score ``arch``'s choices.

        Returns the choices, their summed log-probability and the summed entropy.
        """
        values: dict[str, Value] = {}
        x = self.start
        state: tuple[torch.Tensor, torch.Tensor] | None = None
        log_prob = torch.zeros(())
        entropy = torch.zeros(())
        for d in self.space.decisions:
            if not d.active(values):
                continue
            i = self.index[d.name]
            state = self.lstm(x, state)
            logits = self.heads[i](state[0])[0]
            logp = torch.log_softmax(logits, dim=-1)
            if arch is None:
                choice = int(torch.multinomial(logp.exp(), 1, generator=generator))
            else:
                choice = d.index(arch[d.name])
            values[d.name] = d.options[choice]
            log_prob = log_prob + logp[choice]
            entropy = entropy - (logp.exp() * logp).sum()
            x = self.embeddings[i](torch.tensor([choice]))
        return values, log_prob, entropy


@STRATEGIES.register("reinforce")
class Reinforce(Strategy):
    """REINFORCE policy gradient with an LSTM controller and a moving-average baseline."""

    name = "reinforce"

    def __init__(
        self,
        space: SearchSpace,
        seed: RngLike = None,
        objectives: Objective | str | Sequence[Objective | str] | None = None,
        lr: float = 0.005,
        baseline_decay: float = 0.9,
        entropy_weight: float = 1e-4,
        grad_clip: float = 5.0,
        hidden_size: int = 64,
        avoid_repeats: bool = True,
        normalize_advantage: bool = True,
    ) -> None:
        super().__init__(space, seed, objectives)
        self.lr = positive_float("lr", lr)
        self.baseline_decay = probability("baseline_decay", baseline_decay)
        self.entropy_weight = positive_float("entropy_weight", entropy_weight, allow_zero=True)
        self.grad_clip = positive_float("grad_clip", grad_clip)
        self.hidden_size = positive_int("hidden_size", hidden_size)
        for flag, value in (("avoid_repeats", avoid_repeats),
                            ("normalize_advantage", normalize_advantage)):
            if not isinstance(value, bool):
                raise ConfigError(f"{flag} must be True or False, got {value!r}")
        self.avoid_repeats = avoid_repeats
        self.normalize_advantage = normalize_advantage
        #: Fitness of every told architecture that has one (``-inf``: infeasible).
        self.known: dict[Architecture, float] = {}
        #: Updates made from known rewards of architectures drawn again (``avoid_repeats``).
        self.free_updates = 0
        self.generator = seeded_generator(int(self.rng.integers(2**31)))
        self.controller = Controller(space, self.hidden_size, self.generator)
        self.optimizer = torch.optim.Adam(self.controller.parameters(), lr=self.lr)
        # Bias-corrected moving average: numerator and denominator of the weighted mean.
        self.baseline_num = 0.0
        self.baseline_den = 0.0
        self.spread_num = 0.0  # moving average of squared advantages (same weights)
        self.worst_reward: float | None = None
        self.updates = 0

    @property
    def baseline(self) -> float:
        """Current baseline (0 before the first reward)."""
        return self.baseline_num / self.baseline_den if self.baseline_den else 0.0

    def _sample(self) -> Architecture:
        with torch.no_grad(), single_thread():
            values, _, _ = self.controller.run(None, self.generator)
        return self.space.complete(values)

    def _ask(self) -> Architecture:
        pending = set(self.pending)
        free = 0
        for _ in range(REPEAT_TRIES):
            arch = self._sample()
            if arch in pending:
                continue  # a re-draw: see the module docstring on what this does to the gradient
            if self.avoid_repeats and arch in self.known and free < FREE_UPDATES:
                # An on-policy sample whose reward is known: learn from it without a query.
                self._learn(arch, self.known[arch])
                free += 1
                self.free_updates += 1
                continue
            return arch
        # Every draw repeated a pending architecture: the policy has collapsed onto what is
        # already running. A uniformly random untaken architecture keeps the batch useful (its
        # update is then off-policy, but this takes REPEAT_TRIES pending draws in a row).
        return propose_unique(lambda: self.space.sample(self.rng), Taken(self.known, self.pending))

    def _tell(self, trial: Trial) -> None:
        f = fitness(self.objective, trial)
        if f is None:
            return  # failed: no reward (and not known, so asking it again re-evaluates it)
        self.known[trial.arch] = f
        self._learn(trial.arch, f)

    def _learn(self, arch: Architecture, f: float) -> None:
        """One policy-gradient step from ``arch``'s fitness ``f``; an infeasible architecture is
        given the lowest reward seen so far."""
        if f == INFEASIBLE:
            if self.worst_reward is None:
                return  # nothing to compare with yet
            f = self.worst_reward
        self.worst_reward = f if self.worst_reward is None else min(self.worst_reward, f)
        self.update(arch, f)

    def update(self, arch: Architecture, reward: float) -> float:
        """One policy-gradient step for ``arch`` with ``reward``; returns the advantage used."""
        d = self.baseline_decay
        self.baseline_num = d * self.baseline_num + (1 - d) * reward
        self.baseline_den = d * self.baseline_den + (1 - d)
        advantage = reward - self.baseline
        if self.normalize_advantage:
            self.spread_num = d * self.spread_num + (1 - d) * advantage**2
            std = (self.spread_num / self.baseline_den) ** 0.5
            advantage = max(-ADVANTAGE_CLIP, min(ADVANTAGE_CLIP, advantage / std)) if std else 0.0
        with single_thread():
            _, log_prob, entropy = self.controller.run(arch)
            loss = -advantage * log_prob - self.entropy_weight * entropy
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(self.controller.parameters(), self.grad_clip)
            self.optimizer.step()
        self.updates += 1
        return advantage

    def log_prob(self, arch: Architecture) -> float:
        """Log-probability that the controller samples ``arch``'s choices."""
        with torch.no_grad(), single_thread():
            return float(self.controller.run(arch)[1])

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["controller"] = module_state(self.controller)
        state["optimizer"] = optimizer_state(self.optimizer)
        state["generator"] = generator_state(self.generator)
        state["baseline"] = [self.baseline_num, self.baseline_den, self.spread_num]
        state["worst_reward"] = self.worst_reward
        state["updates"] = self.updates
        state["known"] = [[a.to_dict(), fitness_to_state(f)] for a, f in self.known.items()]
        state["free_updates"] = self.free_updates
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        load_module_state(self.controller, state["controller"])
        load_optimizer_state(self.optimizer, state["optimizer"])
        self.generator = generator_from_state(state["generator"])
        self.baseline_num, self.baseline_den, self.spread_num = (
            float(v) for v in state["baseline"])
        worst = state["worst_reward"]
        self.worst_reward = None if worst is None else float(worst)
        self.updates = int(state["updates"])
        # States from before known rewards were kept (they had only a "seen" set) resume with
        # none known: repeats are then evaluated once more instead of learned from for free.
        self.known = {Architecture.from_dict(a): fitness_from_state(f)
                      for a, f in state.get("known", [])}
        self.free_updates = int(state.get("free_updates", 0))
