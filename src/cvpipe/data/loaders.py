"""DataLoaders whose order and augmentations are a pure function of (seed, epoch).

Reproducible augmentation usually rests on seeding each worker process; then the result
still depends on the number of workers, on which worker got which batch, and on resuming
(fresh workers restart their random streams). Here every training sample instead carries its
own seed, drawn from ``(seed, epoch, rank, position in the epoch)``, and the transform runs
under that seed. Hence:

- different samples (and so different workers, ranks and epochs) get different draws;
- the same seed gives the same batches, with 0 workers or 8;
- ``loader.set_epoch(e)`` reproduces epoch ``e`` exactly: resuming cannot drift;
- the order is ``DistributedSampler``'s permutation for any number of processes, and the seed
  follows a sample's position in that global order, so N processes with batch B each see
  exactly the batches one process sees with batch N*B.

The sampler moves to the next epoch by itself each time the loader is iterated;
``set_epoch`` is only needed to jump (on resume). Training order comes from torch's own
samplers: ``DistributedSampler(shuffle=True, seed=seed)`` (also with one process) or
``WeightedRandomSampler`` (class-balanced). Distributed evaluation uses
:class:`ShardSampler`, which, unlike ``DistributedSampler``, pads nothing: every sample is
seen exactly once across ranks, so summed metrics are exact.

Only torch's CPU generator is reseeded per sample (the v2 transforms draw from it);
transforms that use Python's ``random`` or NumPy are not covered by this guarantee.
"""

from __future__ import annotations

import os
from typing import Iterator, Optional

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler, SequentialSampler, WeightedRandomSampler

from cvpipe.errors import ConfigError

_MASK64 = (1 << 64) - 1


def mix_seed(*values: int) -> int:
    """A well-spread 63-bit seed from several integers (SplitMix64 finaliser, folded)."""
    state = 0x9E3779B97F4A7C15
    for value in values:
        state = (state ^ (int(value) & _MASK64)) & _MASK64
        state = (state + 0x9E3779B97F4A7C15) & _MASK64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        state = z ^ (z >> 31)
    return state >> 1


class EpochSampler(Sampler):
    """Wraps an index sampler; yields ``(index, sample_seed)`` and reseeds it per epoch.

    Args:
        base: any sampler of indices. ``set_epoch`` is forwarded to it when it has one.
        seed: the run's seed.
        rank, world_size: this process's place; ``base`` yields every ``world_size``-th
            sample of the global order starting at ``rank`` (as ``DistributedSampler`` does),
            so local position p is global position ``p * world_size + rank``.
        generator: the generator ``base`` draws from, reseeded from (seed, epoch) per epoch.
    """

    def __init__(
        self, base: Sampler, seed: int, rank: int = 0, world_size: int = 1, generator: Optional[torch.Generator] = None
    ):
        self.base = base
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.generator = generator
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        self.epoch += 1  # the next iteration is the next epoch unless set_epoch says otherwise
        if hasattr(self.base, "set_epoch"):
            self.base.set_epoch(epoch)
        if self.generator is not None:
            self.generator.manual_seed(mix_seed(self.seed, epoch))
        for position, index in enumerate(self.base):
            yield int(index), mix_seed(self.seed, epoch, position * self.world_size + self.rank)

    def __len__(self) -> int:
        return len(self.base)


class SeededSamples(Dataset):
    """``dataset[(index, seed)]`` = ``dataset[index]`` computed under ``seed``.

    The CPU generator is reseeded inside :func:`torch.random.fork_rng`, so the caller's random
    state (the training loop's, when there are no worker processes) is left untouched.
    Attributes other than these are looked up on the wrapped dataset (``classes``...).
    """

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        index, seed = key
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)
            return self.dataset[index]

    def __getattr__(self, name):
        # "dataset" is looked up during unpickling before state is restored; dunders such as
        # __getitems__ must not reach the wrapped dataset, which expects plain indices.
        if name == "dataset" or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.dataset, name)


class ShardSampler(Sampler):
    """Distributed evaluation without padding: rank r takes indices r, r + W, r + 2W, ...

    Every index appears on exactly one rank; ranks may differ in length by one.
    """

    def __init__(self, length: int, rank: Optional[int] = None, world_size: Optional[int] = None):
        default_rank, default_world = rank_and_world()
        self.rank = default_rank if rank is None else int(rank)
        self.world_size = default_world if world_size is None else int(world_size)
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} outside world of size {self.world_size}")
        self.indices = range(self.rank, int(length), self.world_size)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class EpochLoader(DataLoader):
    """A DataLoader with ``set_epoch`` (forwarded to its sampler) for resuming at an epoch."""

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)


def build_loader(
    dataset,
    batch_size: int,
    *,
    train: bool,
    workers: int,
    seed: int,
    distributed: bool = False,
    balanced: bool = False,
    drop_last: Optional[bool] = None,
) -> EpochLoader:
    """A DataLoader for training (shuffled, seeded augmentation) or evaluation (in order).

    Args:
        dataset: a map-style dataset; ``balanced`` needs ``targets`` and ``classes``.
        batch_size: per process.
        train: shuffle and seed per sample; otherwise sequential (sharded when distributed).
        workers: worker processes (0 = load in this process).
        seed: the run's seed; order and augmentations repeat for the same seed.
        distributed: shard across the ranks of the initialised process group.
        balanced: draw training samples with replacement so every class is equally likely.
        drop_last: default drops the last incomplete training batch (when there is more than
            one batch), never an evaluation batch.

    Raises:
        ConfigError: ``balanced`` together with ``distributed``.
    """
    if batch_size < 1:
        raise ConfigError(f"train.batch_size {batch_size}: must be at least 1 per process")
    if workers < 0:
        raise ConfigError(f"data.workers {workers}: must be >= 0")
    rank, world = rank_and_world() if distributed else (0, 1)
    if train:
        if balanced and distributed:
            raise ConfigError("data.balanced_sampling cannot be combined with distributed training; use loss.class_weights=balanced instead")
        order_generator = torch.Generator()
        if balanced:
            base = WeightedRandomSampler(balanced_sample_weights(dataset), len(dataset), replacement=True, generator=order_generator)
        else:  # the same permutation for 1 process or N (see the module docstring)
            base = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed)
        sampler: Sampler = EpochSampler(base, seed, rank, world, order_generator)
        data = SeededSamples(dataset)
        if drop_last is None:
            drop_last = len(sampler) > batch_size
    else:
        sampler = ShardSampler(len(dataset), rank, world) if distributed else SequentialSampler(dataset)
        data = dataset
        drop_last = bool(drop_last)
    return EpochLoader(
        data,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        drop_last=drop_last,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(mix_seed(seed, rank)),  # workers' own base seeds
    )


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) from the process group, else from torchrun's environment."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


# --------------------------------------------------------------------------- class balance


def class_counts(dataset) -> torch.Tensor:
    """Images per class (positives per class for multi-label), int64 (num_classes,)."""
    targets = torch.as_tensor(dataset.targets)
    num_classes = len(dataset.classes)
    if targets.ndim == 2:
        return (targets > 0).sum(0).to(torch.int64)
    return torch.bincount(targets.to(torch.int64), minlength=num_classes)


def balanced_class_weights(counts: torch.Tensor) -> torch.Tensor:
    """Loss weights ``n / (k * count_c)`` (scikit-learn's "balanced"), float32 (num_classes,).

    ``n`` is the total count and ``k`` the number of classes present; a class with no
    samples gets weight 0 (it never appears as a target anyway).
    """
    counts = torch.as_tensor(counts, dtype=torch.float64)
    present = counts > 0
    weights = torch.zeros_like(counts)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights.to(torch.float32)


def balanced_sample_weights(dataset) -> torch.Tensor:
    """Per-sample draw weights that make every class equally likely, float64 (N,).

    Single-label: ``1 / count[target]``. Multi-label: the weight of the sample's rarest
    class, and samples with no positive label share one class's worth of weight.
    """
    targets = torch.as_tensor(dataset.targets)
    counts = class_counts(dataset).to(torch.float64)
    inverse = torch.where(counts > 0, 1.0 / counts.clamp_min(1), torch.zeros_like(counts))
    if targets.ndim == 1:
        return inverse[targets.to(torch.int64)]
    positive = targets > 0
    weights = (positive.to(torch.float64) * inverse).amax(dim=1)
    empty = ~positive.any(dim=1)
    if empty.any():
        weights[empty] = 1.0 / empty.sum()
    return weights
