"""Datasets over manifests, and the collate that pads a batch and keeps the lengths."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from ..audio import load_audio
from ..audio.augment import Augmenter
from ..errors import ManifestError
from .manifest import Manifest
from .sampler import BucketBatchSampler
from .text import Vocabulary


@dataclass
class Batch:
    ids: list[str]
    waveforms: Tensor  # [B, max samples], zero padded
    lengths: Tensor  # [B] samples
    targets: Tensor | None = None  # [B, max label length], padded with -1
    target_lengths: Tensor | None = None  # [B]
    texts: list[str] | None = None  # reference transcripts

    def to(self, device: torch.device | str) -> "Batch":
        move = (lambda t: None if t is None else t.to(device, non_blocking=True))
        return Batch(self.ids, move(self.waveforms), move(self.lengths), move(self.targets),
                     move(self.target_lengths), self.texts)


class AudioDataset(Dataset):
    """Items of a manifest: audio (optionally augmented, randomly cropped) and, with a vocabulary, label ids."""

    def __init__(self, manifest: Manifest, vocabulary: Vocabulary | None = None, crop: int | None = None,
                 seed: int = 0, augment: Augmenter | None = None) -> None:
        self.manifest, self.vocabulary, self.crop, self.seed = manifest, vocabulary, crop, seed
        self.augment = augment
        self.epoch = 0
        if vocabulary is not None:
            if manifest.words is None:
                raise ManifestError(f"{manifest.source}: no transcripts (.wrd) but labels were asked for")
            for index, words in enumerate(manifest.words):
                unknown = vocabulary.unknown_characters(words)
                if unknown:
                    raise ManifestError(f"{manifest.source}: utterance {manifest.utterance_id(index)} has characters "
                                     f"outside the vocabulary: {''.join(sorted(unknown))!r}")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def sizes(self) -> list[int]:
        """Lengths the sampler should budget for (cropped lengths when cropping; speed perturbation
        may stretch an item by its largest slow-down, which the budget allows for)."""
        augment = None if self.augment is None else self.augment.config
        stretch = 1.0 if augment is None or augment.speed_prob == 0 else 1.0 / augment.speed[0]
        sizes = [int(n * stretch) + 1 if stretch > 1 else n for n in self.manifest.num_samples]
        return sizes if self.crop is None else [min(n, self.crop) for n in sizes]

    def __len__(self) -> int:
        return len(self.manifest)

    def __getitem__(self, index: int) -> dict:
        audio = load_audio(self.manifest.audio_path(index))
        rng = np.random.default_rng([self.seed, self.epoch, index])
        if self.augment is not None:
            audio = self.augment(audio, rng)
        if self.crop is not None and len(audio) > self.crop:
            start = int(rng.integers(0, len(audio) - self.crop + 1))
            audio = audio[start:start + self.crop]
        item = {"id": self.manifest.utterance_id(index), "audio": torch.from_numpy(audio)}
        if self.vocabulary is not None:
            item["target"] = torch.tensor(self.vocabulary.encode(self.manifest.words[index]), dtype=torch.long)
            item["words"] = self.manifest.words[index]
        return item


def collate(items: list[dict]) -> Batch:
    """Pad audio (and labels) to the longest item of the batch; return lengths alongside."""
    lengths = torch.tensor([len(item["audio"]) for item in items], dtype=torch.long)
    waveforms = torch.zeros(len(items), int(lengths.max()))
    for row, item in enumerate(items):
        waveforms[row, : len(item["audio"])] = item["audio"]
    batch = Batch([item["id"] for item in items], waveforms, lengths)
    if "target" in items[0]:
        target_lengths = torch.tensor([len(item["target"]) for item in items], dtype=torch.long)
        targets = torch.full((len(items), max(1, int(target_lengths.max()))), -1, dtype=torch.long)
        for row, item in enumerate(items):
            targets[row, : len(item["target"])] = item["target"]
        batch.targets, batch.target_lengths = targets, target_lengths
        batch.texts = [item["words"] for item in items]
    return batch


def make_loader(dataset: AudioDataset, sampler: BucketBatchSampler, num_workers: int = 0,
                pin_memory: bool = False) -> DataLoader:
    """A DataLoader over bucketed batches; workers decode (and augment) audio in parallel."""
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate, num_workers=num_workers,
                      persistent_workers=False, pin_memory=pin_memory)
