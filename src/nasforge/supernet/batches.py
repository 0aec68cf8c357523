"""Repeatable minibatch streams for one-shot search, resumable in the middle of an epoch.

Each pass over a dataset reseeds its loader from ``(seed, stream name, epoch, pass)``, so the batch
order of any epoch is known without saved loader state: resuming at step ``s`` of epoch ``e`` just
replays that epoch's stream and skips ``s`` batches. Bilevel methods (DARTS, GDAS) pair each
training batch with a validation batch; the validation stream cycles when it is the shorter one.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from nasforge.data.dataset import ArrayDataset
from nasforge.data.loader import BatchLoader
from nasforge.errors import ConfigError
from nasforge.utils.rng import derive_seed

Batch = tuple[torch.Tensor, torch.Tensor]


class EpochBatches:
    """Minibatches of ``data`` whose order depends only on ``(seed, name, epoch, pass)``.

    ``augment`` follows :class:`~nasforge.data.loader.BatchLoader` (``"default"``: the dataset's
    standard augmentation); the last partial batch is dropped so BatchNorm never sees a batch of 1.
    """

    def __init__(
        self,
        data: ArrayDataset,
        batch_size: int,
        *,
        seed: int,
        name: str,
        device: str | torch.device = "cpu",
        augment: str = "default",
        shuffle: bool = True,
        max_batches: int | None = None,
    ) -> None:
        if len(data) < batch_size:
            raise ConfigError(
                f"the {name} split has {len(data)} samples, fewer than one batch of {batch_size}; "
                "use a smaller batch size or a larger subset"
            )
        if max_batches is not None and max_batches < 1:
            raise ConfigError(f"max_batches must be a positive integer or None, got {max_batches!r}")
        self.loader = BatchLoader(
            data, batch_size, shuffle=shuffle, augment=augment, seed=seed, device=device, drop_last=True
        )
        full = len(self.loader)
        if max_batches is not None and max_batches > full:
            # min(full, max_batches) would quietly train fewer steps than were asked for.
            raise ConfigError(
                f"steps_per_epoch={max_batches} but the {name} split has only {full} full "
                f"batch(es) of {batch_size} ({len(data)} samples; the last partial batch is "
                "dropped); lower steps_per_epoch or use more data (a larger --subset)"
            )
        self.seed = int(seed)
        self.name = name
        self.max_batches = max_batches

    def __len__(self) -> int:
        n = len(self.loader)
        return n if self.max_batches is None else min(n, self.max_batches)

    def one_pass(self, epoch: int, cycle: int = 0) -> Iterator[Batch]:
        """The batches of pass ``cycle`` of ``epoch`` (at most ``max_batches``)."""
        self.loader.generator.manual_seed(derive_seed(self.seed, self.name, epoch, cycle))
        for i, batch in enumerate(self.loader):
            if i >= len(self):
                return
            yield batch

    def epoch(self, epoch: int, skip: int = 0) -> Iterator[Batch]:
        """Epoch ``epoch``'s batches after the first ``skip`` (those are drawn, then dropped)."""
        for i, batch in enumerate(self.one_pass(epoch)):
            if i >= skip:
                yield batch

    def endless(self, epoch: int, skip: int = 0) -> Iterator[Batch]:
        """Batches of ``epoch`` cycling through passes forever, after skipping ``skip``."""
        cycle, i = 0, 0
        while True:
            for batch in self.one_pass(epoch, cycle):
                if i >= skip:
                    yield batch
                i += 1
            cycle += 1


def first_batches(data: ArrayDataset, batch_size: int, count: int | None,
                  device: str | torch.device = "cpu") -> list[Batch]:
    """The first ``count`` batches (all when None) of ``data`` in stored order, no augmentation.

    Used for BatchNorm recalibration and for evaluation subsets: always the same samples.
    """
    loader = BatchLoader(data, batch_size, shuffle=False, augment="none", device=device)
    out = []
    for i, batch in enumerate(loader):
        if count is not None and i >= count:
            break
        out.append(batch)
    return out


__all__ = ["Batch", "EpochBatches", "first_batches"]
