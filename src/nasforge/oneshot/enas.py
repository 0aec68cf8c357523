"""ENAS: Efficient Neural Architecture Search via Parameter Sharing (Pham et al., ICML 2018).

Each epoch has the paper's two phases:

1. shared weights: one pass over the training batches; each batch trains the single path of an
   architecture sampled from the controller's current policy (the policy does not learn here);
2. controller: ``controller_steps`` REINFORCE updates; each samples an architecture (``ask``), scores
   it by the shared weights' accuracy on one validation batch (the reward), and reports it
   (``tell``).

The controller is any registered ask/tell strategy, by default ``"reinforce"`` (the LSTM
policy-gradient controller of :mod:`nasforge.strategies`). Phase 1 samples with ``ask`` and never
tells (an ask does not update a policy; only rewards do), so both phases draw from the same
controller, as in the paper. The final architecture is the best of ``derive_samples`` policy samples
by the same reward.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from nasforge.errors import ConfigError
from nasforge.oneshot.search import OneShotConfig, OneShotSearch
from nasforge.registry import STRATEGIES
from nasforge.space.architecture import Architecture
from nasforge.strategies.base import Strategy
from nasforge.supernet.batches import Batch
from nasforge.supernet.evaluation import batch_accuracy
from nasforge.trial import Trial, TrialStatus
from nasforge.utils.rng import derive_seed


@dataclass
class EnasConfig(OneShotConfig):
    """ENAS settings: :class:`OneShotConfig` plus the controller.

    The paper trains the shared weights with SGD lr 0.05 (cosine) and runs 2,000 controller steps
    per epoch; ``controller_steps`` defaults to a CPU-sized 50.
    """

    w_lr: float = 0.05
    controller: str = "reinforce"
    controller_options: dict[str, Any] = field(default_factory=dict)
    controller_steps: int = 50
    derive_samples: int = 10

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("controller_steps", "derive_samples"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.controller_options, dict):
            raise ConfigError(f"controller_options must be a dict, got {self.controller_options!r}")


#: Controller options ENAS gives the ``reinforce`` strategy (see :meth:`Enas.__init__`).
ENAS_REINFORCE: dict[str, Any] = {"lr": 0.001, "normalize_advantage": False, "avoid_repeats": False}


class Enas(OneShotSearch):
    """ENAS with a pluggable ask/tell controller (see the module doc)."""

    method: ClassVar[str] = "enas"
    config_class: ClassVar[type[OneShotConfig]] = EnasConfig
    has_arch_optimizer: ClassVar[bool] = False
    needs_valid_batch: ClassVar[bool] = False
    config: EnasConfig

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # ENAS's own controller settings, not the strategy's NAS-Bench-201-tuned defaults: Adam at
        # 0.001 on plain advantages (Pham et al. 2018 use 0.00035 with their larger budget), and no
        # learning from repeats, since sample() asks without ever telling (a repeat's stored reward
        # would be stale: the shared weights keep training). The user's options override these.
        options = dict(ENAS_REINFORCE if self.config.controller == "reinforce" else {})
        options.update(self.config.controller_options)
        self.controller: Strategy = STRATEGIES.create(
            self.config.controller, self.space, seed=derive_seed(self.config.seed, "controller"),
            **options,
        )
        self.told = 0

    def sample(self) -> Architecture:
        """An architecture from the controller's current policy, without learning from it."""
        arch = self.controller.ask()
        self.controller.pending.clear()  # never told: it must not count as pending
        return arch

    # ------------------------------------------------------------------ phases
    def train_step(self, batch: Batch, valid: Batch | None) -> dict[str, float]:
        self.supernet.set_arch(self.sample())
        loss, acc = self.forward_loss(batch)
        self.weight_step(loss)
        return {"loss": float(loss.detach()), "acc": acc}

    def end_epoch(self, epoch: int) -> dict[str, float]:
        rewards = []
        valid = self.valid_batches.endless(epoch)
        for _ in range(self.config.controller_steps):
            arch = self.controller.ask()
            reward = self.reward(arch, next(valid))
            self.controller.tell(Trial(number=self.told, arch=arch, status=TrialStatus.OK,
                                       metrics={"accuracy": reward}))
            self.told += 1
            rewards.append(reward)
        return {"reward": sum(rewards) / len(rewards)}

    def reward(self, arch: Architecture, batch: Batch) -> float:
        """Validation-batch accuracy (percent) of ``arch`` with the shared weights."""
        self.supernet.set_arch(arch)
        return batch_accuracy(self.supernet, batch)

    def finish(self) -> tuple[Architecture, dict[str, Any]]:
        valid = self.valid_batches.endless(self.config.epochs)
        batch = next(valid)
        best: tuple[float, Architecture] | None = None
        for _ in range(self.config.derive_samples):
            arch = self.sample()
            score = self.reward(arch, batch)
            if best is None or score > best[0]:
                best = (score, arch)
        assert best is not None
        return best[1], {"controller": self.config.controller, "reward": best[0],
                         "controller_updates": self.told}

    # ------------------------------------------------------------------ checkpoints
    def extra_state(self) -> dict[str, Any]:
        return {"controller": self.controller.state_dict(), "told": self.told}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.controller.load_state_dict(state["controller"])
        self.told = int(state["told"])


__all__ = ["Enas", "EnasConfig"]
