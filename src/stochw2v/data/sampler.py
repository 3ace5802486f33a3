"""Length-bucketed batches under a budget of audio samples (fairseq's max_tokens), sharded by rank.

Utterances are sorted by length and packed so that batch_size * longest_item <= max_samples
(padding counts against the budget, as in fairseq). Each epoch shuffles ties and the batch
order with (seed, epoch). With several ranks the batch list is split round-robin; if the count
does not divide evenly, the largest batches are halved until it does, so every rank gets the
same number of batches and every utterance is still seen exactly once per epoch.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

from ..errors import ConfigError

# padded samples per evaluation batch (100 s of audio): every evaluation, tuning and calibration pass uses it
EVALUATION_BATCH_SAMPLES = 1_600_000


class BucketBatchSampler(Sampler[list[int]]):
    def __init__(self, lengths: Sequence[int], max_samples: int, *, shuffle: bool = True, seed: int = 0,
                 num_replicas: int = 1, rank: int = 0, max_batch_size: int | None = None) -> None:
        self.lengths = np.asarray(lengths, dtype=np.int64)
        if self.lengths.ndim != 1 or len(self.lengths) == 0:
            raise ConfigError("the sampler needs at least one utterance length")
        if not 0 <= rank < num_replicas:
            raise ConfigError(f"rank {rank} is outside 0..{num_replicas - 1}")
        too_long = np.flatnonzero(self.lengths > max_samples)
        if len(too_long):
            raise ConfigError(
                f"{len(too_long)} utterances are longer than the batch budget of {max_samples} samples "
                f"(longest {int(self.lengths.max())}); raise max_samples or crop long utterances"
            )
        self.max_samples, self.shuffle, self.seed = int(max_samples), shuffle, seed
        self.num_replicas, self.rank, self.max_batch_size = num_replicas, rank, max_batch_size
        self.epoch, self.start_batch = 0, 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Select the epoch's order; skip this rank's first `start_batch` batches (resuming)."""
        self.epoch, self.start_batch = int(epoch), int(start_batch)

    def epoch_batches(self) -> list[list[int]]:
        """All ranks' batches of the current epoch, before sharding."""
        rng = np.random.default_rng([self.seed, self.epoch])
        tie_break = rng.permutation(len(self.lengths)) if self.shuffle else np.arange(len(self.lengths))
        order = np.lexsort((tie_break, self.lengths))
        batches: list[list[int]] = []
        current: list[int] = []
        for index in order.tolist():
            longest = self.lengths[index]  # sorted ascending: the newest item is the longest
            full = (len(current) + 1) * longest > self.max_samples or (
                self.max_batch_size is not None and len(current) >= self.max_batch_size)
            if current and full:
                batches.append(current)
                current = []
            current.append(index)
        if current:
            batches.append(current)
        while len(batches) % self.num_replicas:
            largest = max(range(len(batches)), key=lambda i: len(batches[i]))
            if len(batches[largest]) < 2:
                raise ConfigError(f"{len(self.lengths)} utterances cannot make an equal number of batches "
                                 f"for {self.num_replicas} ranks")
            half = len(batches[largest]) // 2
            batches[largest:largest + 1] = [batches[largest][:half], batches[largest][half:]]
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        mine = self.epoch_batches()[self.rank::self.num_replicas]
        yield from mine[self.start_batch:]

    def __len__(self) -> int:
        return len(self.epoch_batches()) // self.num_replicas - self.start_batch

    def padding_fraction(self) -> float:
        """Share of the padded samples of this epoch's batches that are padding."""
        return padding_fraction(self.epoch_batches(), self.lengths)


def padding_fraction(batches: Sequence[Sequence[int]], lengths: Sequence[int]) -> float:
    lengths = np.asarray(lengths)
    padded = sum(len(b) * int(lengths[b].max()) for b in batches)
    real = sum(int(lengths[b].sum()) for b in batches)
    return 1.0 - real / padded if padded else 0.0


def random_batches(num_items: int, batch_size: int, seed: int = 0) -> list[list[int]]:
    """Plain shuffled fixed-size batches: the baseline the bucketed sampler is measured against."""
    order = np.random.default_rng(seed).permutation(num_items).tolist()
    return [order[i:i + batch_size] for i in range(0, num_items, batch_size)]
