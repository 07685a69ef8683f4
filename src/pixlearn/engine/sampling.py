"""Seeded samplers: the epoch sampler (shuffled or class-weighted order, sharded across DDP ranks, one augmentation seed
per item) and the validation shard (every world-th item, no padding)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler

from pixlearn._core.errors import ConfigError
from pixlearn.data.augment import sample_seed

__all__ = ["EpochSampler", "ShardSampler"]


class EpochSampler(Sampler):
    """Yields ``(index, seed)`` pairs for :class:`~pixlearn.data.loader.ImageDataset`.

    The order of epoch ``e`` is drawn from ``(seed, e)`` alone -- a permutation, or with
    ``weights`` a draw with replacement proportional to them (a weighted sampler for imbalanced
    classes) -- so a resumed run sees the same batches as an uninterrupted one. With
    ``num_replicas > 1`` each rank takes every ``num_replicas``-th item of the same order, padded
    by wrapping around so that every rank has the same number of items (DDP needs equal steps).

    Examples
    --------
    >>> s = EpochSampler(5, shuffle=True, seed=0)
    >>> s.set_epoch(3); a = [i for i, _ in s]
    >>> s.set_epoch(3); b = [i for i, _ in s]
    >>> a == b and sorted(a) == [0, 1, 2, 3, 4]
    True
    >>> halves = [[i for i, _ in EpochSampler(5, shuffle=False, seed=0, num_replicas=2, rank=r)] for r in (0, 1)]
    >>> halves
    [[0, 2, 4], [1, 3, 0]]
    """

    def __init__(
        self,
        n: int,
        *,
        shuffle: bool,
        seed: int,
        weights: Sequence[float] | None = None,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if n < 1:
            raise ConfigError(f"nothing to sample from: the split has {n} items")
        if not 0 <= rank < num_replicas:
            raise ConfigError(f"rank {rank} outside 0..{num_replicas - 1}")
        self.n, self.shuffle, self.seed = int(n), bool(shuffle), int(seed)
        self.weights = None if weights is None else torch.as_tensor(list(weights), dtype=torch.float64)
        if self.weights is not None and (self.weights.numel() != n or bool((self.weights < 0).any()) or float(self.weights.sum()) <= 0):
            raise ConfigError(f"sampler weights must be {n} non-negative numbers with a positive sum")
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return -(-self.n // self.num_replicas)

    def order(self, epoch: int) -> list[int]:
        """The full (all-rank) order of ``epoch``."""
        g = torch.Generator().manual_seed(sample_seed(self.seed, epoch, -1))
        if self.weights is not None:
            return torch.multinomial(self.weights, self.n, replacement=True, generator=g).tolist()
        if self.shuffle:
            return torch.randperm(self.n, generator=g).tolist()
        return list(range(self.n))

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        order = self.order(epoch)
        per_rank = len(self)
        total = per_rank * self.num_replicas
        order = order + order[: total - len(order)]
        for pos in range(self.rank, total, self.num_replicas):
            i = order[pos]
            # the seed follows the position, so a repeated index (weighted draw) is augmented anew
            yield (i, sample_seed(self.seed, epoch, pos))


class ShardSampler:
    """Every ``world``-th item from ``rank`` (validation: no padding, no shuffling)."""

    def __init__(self, n: int, world: int, rank: int) -> None:
        self.items = list(range(rank, n, world))

    def __iter__(self) -> Iterator[int]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)
