"""A shuffling sampler whose every random choice is a function of (seed, epoch, pass).

It makes training resumable *exactly*: a run killed mid-epoch and resumed from its checkpoint
sees the same batches, augmentations, unlabeled partners and CutMix masks as a run that was never
interrupted. Each item it yields is a key ``(index, sample_seed)``: the datasets of
:mod:`mgd_lightning.data.datasets` take their augmentation randomness from ``sample_seed``
instead of the global RNG.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler

__all__ = ["ResumableRandomSampler", "SampleKey"]

SampleKey = tuple[int, int]


class ResumableRandomSampler(Sampler[SampleKey]):
    """Shuffle ``size`` indices anew for each (epoch, pass); yield ``(index, sample_seed)``.

    A "pass" is one iteration over the sampler within an epoch: the labeled loader of a
    ``max_size_cycle`` CombinedLoader is iterated several times per epoch, and each pass gets a
    new order and new sample seeds.

    Args:
        size: Number of samples.
        seed: Base seed (the datamodule's ``seed`` combined with ``seed_everything``'s).
    """

    def __init__(self, size: int, seed: int) -> None:
        if size <= 0:
            raise ValueError(f"`size` must be positive, got {size}")
        self.size = size
        self.seed = int(seed)
        self.epoch = 0
        self.passes = 0
        self._skip = 0

    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch`` (Lightning calls this at every epoch start)."""
        if epoch != self.epoch:
            self.epoch, self.passes, self._skip = int(epoch), 0, 0

    def resume(self, epoch: int, passes: int, skip: int) -> None:
        """Continue at item ``skip`` of pass ``passes`` of ``epoch`` (the next ``__iter__``)."""
        self.epoch, self.passes, self._skip = int(epoch), int(passes), int(skip)

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[SampleKey]:
        state = np.random.SeedSequence([self.seed, self.epoch, self.passes]).generate_state(2)
        generator = torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))
        order = torch.randperm(self.size, generator=generator).tolist()
        seeds = torch.randint(0, 2**62, (self.size,), generator=generator).tolist()
        start, self._skip = self._skip, 0
        self.passes += 1
        for position in range(start, self.size):
            yield order[position], seeds[position]
