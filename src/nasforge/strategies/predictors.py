"""Performance predictors for predictor-guided search: an ensemble of small MLPs.

BANANAS (White, Neiswanger & Savani, AAAI 2021) fits an ensemble of feed-forward networks on
architecture encodings and uses the spread of their predictions as uncertainty. To keep one
ask/tell in the tens of milliseconds, the ensemble's members are stacked into batched weight
tensors (one ``bmm`` per layer trains all members at once), trained with Adam, full-batch up to
``batch_size`` rows and on random minibatches of that size beyond (so a refit costs the same at
1,000 or 100,000 observations), and warm-started from their previous weights after each new
observation.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from nasforge.errors import ConfigError
from nasforge.strategies._torch_state import from_jsonable, single_thread, to_jsonable

_LOSSES = ("mse", "mae")


class MLPEnsemble:
    """``members`` ReLU MLPs ``input_dim -> hidden... -> 1``, trained together.

    Members differ only by their random initialization (drawn from ``generator``), as in
    BANANAS; the ensemble's mean is the prediction and its standard deviation the uncertainty.
    """

    def __init__(
        self,
        input_dim: int,
        generator: torch.Generator,
        members: int = 5,
        hidden: Sequence[int] = (32, 32),
        lr: float = 0.01,
        weight_decay: float = 0.0,
        loss: str = "mse",
    ) -> None:
        if members < 1:
            raise ConfigError(f"an ensemble needs at least 1 member, got {members}")
        if loss not in _LOSSES:
            raise ConfigError(f"unknown predictor loss {loss!r}; allowed: 'mse', 'mae'")
        self.input_dim = int(input_dim)
        self.members = int(members)
        self.hidden = tuple(int(h) for h in hidden)
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.loss = loss
        self.generator = generator
        # All weights live in one flat tensor (``views`` slices it per layer), so an Adam step is
        # a handful of tensor ops instead of a handful per parameter: this is what keeps a refit
        # of the ensemble within milliseconds.
        sizes = (self.input_dim, *self.hidden, 1)
        self._shapes: list[tuple[int, int, int]] = []
        chunks: list[torch.Tensor] = []
        for fan_in, fan_out in itertools.pairwise(sizes):
            # He-uniform initialization (suits ReLU), drawn from our own generator.
            bound = float(np.sqrt(6.0 / fan_in))
            w = (torch.rand(self.members, fan_in, fan_out, generator=generator) * 2 - 1) * bound
            chunks += [w.reshape(-1), torch.zeros(self.members * fan_out)]
            self._shapes += [(self.members, fan_in, fan_out), (self.members, 1, fan_out)]
        self.flat = torch.cat(chunks).requires_grad_(True)
        self.fitted = False

    def _views(self) -> list[torch.Tensor]:
        out, start = [], 0
        for shape in self._shapes:
            n = shape[0] * shape[1] * shape[2]
            out.append(self.flat[start:start + n].view(shape))
            start += n
        return out

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: (members, n, input_dim) -> (members, n)."""
        h = x
        params = self._views()
        last = len(params) // 2 - 1
        for i in range(0, len(params), 2):
            h = torch.baddbmm(params[i + 1], h, params[i])
            if i // 2 < last:
                h = torch.relu(h)
        return h.squeeze(-1)

    def fit(self, x: np.ndarray, y: np.ndarray, steps: int, batch_size: int | None = None
            ) -> float:
        """``steps`` Adam steps on (x, y) from the current weights; returns the last loss.

        Each step uses every row, or, when there are more than ``batch_size`` rows, a minibatch
        of ``batch_size`` rows drawn for each member independently (from :attr:`generator`), as
        the members of BANANAS' ensemble are trained on their own shuffles. Adam (Kingma & Ba,
        2015) restarts its moments at each call, so only the weights need to be kept in the
        state (warm start).
        """
        with single_thread():
            return self._fit(x, y, steps, batch_size)

    def _fit(self, x: np.ndarray, y: np.ndarray, steps: int, batch_size: int | None) -> float:
        xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
        yt = torch.as_tensor(np.asarray(y, dtype=np.float32))
        n = len(xt)
        minibatch = batch_size is not None and n > batch_size
        xb = xt.unsqueeze(0).expand(self.members, -1, -1)
        yb = yt.unsqueeze(0).expand(self.members, -1)
        b1, b2, eps = 0.9, 0.999, 1e-8
        m = torch.zeros_like(self.flat)
        v = torch.zeros_like(self.flat)
        value = 0.0
        for t in range(1, steps + 1):
            if minibatch:
                assert batch_size is not None
                rows = torch.randint(n, (self.members, batch_size), generator=self.generator)
                xb, yb = xt[rows], yt[rows]
            diff = self._forward(xb) - yb
            loss = diff.abs().mean() if self.loss == "mae" else (diff * diff).mean()
            (grad,) = torch.autograd.grad(loss, self.flat)
            with torch.no_grad():
                # Once the fit is nearly exact, gradients shrink towards float32's denormal range,
                # where CPU arithmetic gets ~100x slower: round such tiny values to zero.
                grad = grad.masked_fill(grad.abs() < 1e-15, 0.0)
                if self.weight_decay:
                    grad = grad.add(self.flat, alpha=self.weight_decay)
                m.mul_(b1).add_(grad, alpha=1 - b1)
                v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
                denom = (v / (1 - b2**t)).sqrt_().add_(eps)
                self.flat.addcdiv_(m, denom, value=-self.lr / (1 - b1**t))
            value = float(loss.detach())
        self.fitted = True
        return value

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predictions of every member: (members, n)."""
        with torch.no_grad(), single_thread():
            xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
            out: np.ndarray = self._forward(xt.unsqueeze(0).expand(self.members, -1, -1)).numpy()
        return out

    def state_dict(self) -> dict[str, Any]:
        """JSON-able weights (the generator is saved by the owner)."""
        return {"weights": to_jsonable(self.flat), "fitted": self.fitted}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output (shapes must match this ensemble's)."""
        flat = from_jsonable(state["weights"])
        if flat.shape != self.flat.shape:
            raise ConfigError("predictor state does not match the ensemble's shape "
                              f"({self.members} members, hidden {self.hidden})")
        self.flat = flat.clone().requires_grad_(True)
        self.fitted = bool(state["fitted"])
