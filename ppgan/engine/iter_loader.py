"""Endless, resumable iteration over the training loader.

Exact resumption needs the data order to be a function of saved state only. The batch sampler
here draws each epoch's order from (seed, epoch), shards it over the ranks, and can start an
epoch after `skip` batches without reading them; the dataset's own randomness is keyed by
(seed, epoch, index) through its `set_epoch`. The state is (epoch, batches done in the epoch).
"""
import math
from typing import Any, Dict, Iterator, List, Optional

import numpy as np
from paddle.io import DataLoader


class ResumableBatchSampler:
    """Per-rank batches of a seeded per-epoch permutation (what DistributedBatchSampler does,
    plus a seed and a start offset).

    Every rank draws the same permutation, pads it by wrapping to a multiple of the world size
    and takes every `nranks`-th index from its rank on, so ranks never share a sample in an epoch.
    """

    def __init__(self, num_samples: int, batch_size: int, shuffle: bool = True,
                 drop_last: bool = True, nranks: int = 1, rank: int = 0, seed: int = 0):
        self.num_samples = int(num_samples)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.nranks, self.rank = int(nranks), int(rank)
        self.seed = int(seed)
        self.epoch = 0
        self.skip = 0

    @classmethod
    def replace_in(cls, loader: DataLoader, seed: int) -> "ResumableBatchSampler":
        """Swap the loader's (Distributed)BatchSampler for one of these with the same settings."""
        old = loader.batch_sampler
        sampler = cls(len(loader.dataset), old.batch_size, shuffle=getattr(old, "shuffle", True),
                      drop_last=old.drop_last, nranks=getattr(old, "nranks", 1),
                      rank=getattr(old, "local_rank", 0), seed=seed)
        loader.batch_sampler = sampler  # read by every new iterator of the loader
        return sampler

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = int(epoch), int(skip)

    def _rank_indices(self) -> np.ndarray:
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.num_samples)
        else:
            order = np.arange(self.num_samples)
        total = int(math.ceil(self.num_samples / self.nranks)) * self.nranks
        order = np.resize(order, total)  # wraps around: every rank gets as many samples
        return order[self.rank::self.nranks]

    def _batches(self) -> List[List[int]]:
        indices = self._rank_indices().tolist()
        batches = [indices[i:i + self.batch_size] for i in range(0, len(indices), self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        return batches

    def __iter__(self) -> Iterator[List[int]]:
        yield from self._batches()[self.skip:]

    def __len__(self) -> int:
        per_rank = int(math.ceil(self.num_samples / self.nranks))
        if self.drop_last:
            return per_rank // self.batch_size
        return int(math.ceil(per_rank / self.batch_size))


class IterLoader:
    """`next()` forever over a loader whose batch sampler is a ResumableBatchSampler."""

    def __init__(self, loader: DataLoader, sampler: ResumableBatchSampler,
                 state: Optional[Dict[str, int]] = None):
        if len(sampler) == 0:
            raise ValueError(f"the training set ({sampler.num_samples} samples over "
                             f"{sampler.nranks} rank(s)) has no full batch of {sampler.batch_size}; "
                             "lower dataset.train.batch_size or add samples")
        self.loader = loader
        self.sampler = sampler
        state = state or {}
        self.epoch = int(state.get("epoch", 0))
        self.batches_done = int(state.get("batches_done", 0))
        self._iterator: Optional[Iterator[Any]] = None

    def state(self) -> Dict[str, int]:
        return {"epoch": self.epoch, "batches_done": self.batches_done, "seed": self.sampler.seed}

    def _start_epoch(self) -> None:
        self.sampler.set_epoch(self.epoch, skip=self.batches_done)
        dataset = self.loader.dataset
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(self.epoch)  # fresh (and reproducible) windows each epoch
        self._iterator = iter(self.loader)

    def __iter__(self) -> "IterLoader":
        return self

    def __next__(self) -> Any:
        if self._iterator is None:
            self._start_epoch()
        try:
            batch = next(self._iterator)
        except StopIteration:
            self.epoch, self.batches_done = self.epoch + 1, 0
            self._start_epoch()
            batch = next(self._iterator)
        self.batches_done += 1
        return batch

    def __len__(self) -> int:
        return len(self.sampler)

