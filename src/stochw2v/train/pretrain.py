"""`stochw2v pretrain`: stochastic wav2vec 2.0 pre-training on the shared training loop."""
from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from ..audio.augment import Augmenter
from ..compute.compression import Compression
from ..data import AudioDataset, Batch, Manifest, read_manifest
from ..model.encoder import Encoder
from .contrastive import Wav2Vec2Pretraining
from .recipe import PretrainRecipe
from .trainer import StepResult, Trainer

__all__ = ["Pretrainer"]


class Pretrainer(Trainer):
    kind = "pretrain"
    progress_name = "pretrain"

    def __init__(self, recipe: PretrainRecipe, train_tsv: Path, valid_tsv: Path, out: Path,
                 resume: bool = False, progress: bool = True, device: str | None = None) -> None:
        self.train_tsv, self.valid_tsv = Path(train_tsv), Path(valid_tsv)
        sources = {"train": str(self.train_tsv.resolve()), "valid": str(self.valid_tsv.resolve())}
        super().__init__(recipe, out, sources, resume, progress, device)

    def manifests(self) -> tuple[Manifest, Manifest]:
        return read_manifest(self.train_tsv, labels=False), read_manifest(self.valid_tsv, labels=False)

    def make_dataset(self, manifest: Manifest, train: bool) -> AudioDataset:
        augment = Augmenter.from_dict(self.recipe.data.augment) if train and self.recipe.data.augment else None
        return AudioDataset(manifest, crop=self.recipe.data.crop, seed=self.seed, augment=augment)

    def build_module(self) -> nn.Module:
        config = self.recipe.model.encoder_config(self.policy.upsampler_size())
        return Wav2Vec2Pretraining(Encoder(config), self.recipe.task)

    def compute(self, model: nn.Module, batch: Batch, setting: Compression, update: int,
                generator: torch.Generator) -> StepResult:
        out = model(batch.waveforms, batch.lengths, setting, update, generator)
        frames = out.masked_frames
        return StepResult(out.loss, {
            "frames": frames, "contrastive_sum": out.contrastive * frames, "correct": out.accuracy * frames,
            "chance_sum": out.chance * frames, "diversity_sum": out.diversity * frames,
            "perplexity_sum": out.perplexity * frames,
        })

    def check_validation(self, results: dict[str, dict]) -> None:
        # a collapsed codebook gives every frame the same target: the loss reads 0 (no distinct
        # negative is left) and nothing is learnt; fairseq shows it only as a low code perplexity
        task = self.recipe.task
        perplexity = min(r["perplexity"] for r in results.values())
        if perplexity < 2 * task.codebook_groups:
            warnings.warn(f"update {self.position.update}: the codebook has collapsed (code perplexity "
                          f"{perplexity:.1f} of {task.codebook_groups * task.codebook_size}); raise "
                          f"task.diversity_weight (now {task.diversity_weight}) or lower optim.lr", stacklevel=1)

    def summarize(self, sums: dict[str, float]) -> dict[str, float]:
        frames = max(sums.get("frames", 0.0), 1.0)
        return {"loss": sums.get("contrastive_sum", 0.0) / frames, "accuracy": sums.get("correct", 0.0) / frames,
                "chance": sums.get("chance_sum", 0.0) / frames,
                "perplexity": sums.get("perplexity_sum", 0.0) / frames}
