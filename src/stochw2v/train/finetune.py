"""`stochw2v finetune`: CTC fine-tuning of a (stochastic) pre-trained encoder on the shared loop.

The compression setting is drawn per update from the recipe's policy (one model for every
setting) or fixed by a one-element policy (fine-tune to one setting).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..data import AudioDataset, Manifest, Vocabulary, read_manifest
from ..evaluate.decoding import greedy_decode
from ..evaluate.metrics import error_rates
from ..model.checkpoint import load
from ..model.compression import Compression
from ..model.config import EncoderConfig
from ..model.ctc import CTCModel
from ..model.encoder import Encoder
from .recipe import FinetuneRecipe
from .trainer import StepResult, Trainer, TrainingError

__all__ = ["Finetuner", "TrainingError", "load_init_encoder"]


def load_init_encoder(init: str | Path, overrides: dict) -> Encoder:
    """The encoder to start from: a pre-training run, our folder, a HF folder, or a CTC model's encoder."""
    model = load(init)
    encoder = model.encoder if isinstance(model, CTCModel) else model
    if not overrides:
        return encoder
    known = {f.name for f in dataclasses.fields(EncoderConfig)}
    if set(overrides) - known:
        raise ValueError(f"encoder_overrides: unknown keys {sorted(set(overrides) - known)}")
    config = EncoderConfig.from_dict({**encoder.config.to_dict(), **overrides})
    rebuilt = Encoder(config)
    try:
        rebuilt.load_state_dict(encoder.state_dict())
    except RuntimeError:
        raise ValueError(f"encoder_overrides {overrides} change the weights' shapes; "
                         "only regularisation settings can be overridden") from None
    return rebuilt


def prepare_labels(manifest: Manifest, vocabulary: Vocabulary, policy: str) -> None:
    """Apply the unknown-character policy: 'reject' reports utterance ids, 'drop' removes the characters."""
    bad = {manifest.utterance_id(i): "".join(sorted(vocabulary.unknown_characters(w)))
           for i, w in enumerate(manifest.words) if vocabulary.unknown_characters(w)}
    if bad and policy == "reject":
        listed = ", ".join(f"{utt} ({chars!r})" for utt, chars in list(bad.items())[:5])
        raise ValueError(f"{manifest.source}: {len(bad)} transcripts hold characters outside the vocabulary: "
                         f"{listed}{' ...' if len(bad) > 5 else ''}; set task.unknown_characters=drop to remove them")
    if bad:
        manifest.words = [" ".join("".join(c for c in w if c not in vocabulary.unknown_characters(w)).split())
                          for w in manifest.words]


def ctc_min_frames(targets: torch.Tensor, target_lengths: torch.Tensor) -> torch.Tensor:
    """Fewest frames CTC can align each label sequence to: one per label, plus a blank between repeats."""
    valid = torch.arange(targets.shape[1], device=targets.device)[None] < target_lengths[:, None]
    repeats = ((targets[:, 1:] == targets[:, :-1]) & valid[:, 1:]).sum(1)
    return target_lengths + repeats


class Finetuner(Trainer):
    kind = "finetune"
    progress_name = "finetune"

    def __init__(self, recipe: FinetuneRecipe, init: str | Path, train_tsv: Path, valid_tsv: Path, out: Path,
                 resume: bool = False, progress: bool = True, device: str | None = None) -> None:
        self.init, self.train_tsv, self.valid_tsv = init, Path(train_tsv), Path(valid_tsv)
        self.vocabulary = Vocabulary()
        self.init_encoder = load_init_encoder(init, recipe.encoder_overrides)
        super().__init__(recipe, out, resume, progress, device)

    def datasets(self) -> tuple[AudioDataset, AudioDataset]:
        sets = []
        for tsv in (self.train_tsv, self.valid_tsv):
            manifest = read_manifest(tsv, labels=True)
            prepare_labels(manifest, self.vocabulary, self.recipe.task.unknown_characters)
            sets.append(AudioDataset(manifest, self.vocabulary, crop=None, seed=self.recipe.run.seed))
        return sets[0], sets[1]

    def build_module(self) -> nn.Module:
        settings = [str(s) for s in self.recipe.policy.policy(self.recipe.run.seed).settings()]
        return CTCModel(self.init_encoder, self.vocabulary, self.recipe.task.final_dropout, settings)

    def extra_state(self) -> dict:
        return {"vocabulary": list(self.vocabulary.tokens), "trained_settings": self.module.trained_settings}

    def compute(self, model: nn.Module, batch, setting: Compression, update: int,
                generator: torch.Generator) -> StepResult:
        task = self.recipe.task
        out = model(batch.waveforms, batch.lengths, setting, augment=task, generator=generator,
                    freeze_encoder=self.module.training and update < task.freeze_updates,
                    freeze_features=task.freeze_feature_encoder)
        log_probs = out.logits.float().log_softmax(-1).transpose(0, 1)
        # zero_infinity: an impossible item's loss is inf and its gradient NaN, which would poison
        # the whole update; it is zeroed here and left out below, by name
        per_item = F.ctc_loss(log_probs, batch.targets.clamp_min(0), out.lengths, batch.target_lengths,
                              blank=self.vocabulary.blank_id, reduction="none", zero_infinity=True)
        needed = ctc_min_frames(batch.targets, batch.target_lengths).to(out.lengths.device)
        finite = (out.lengths >= needed) & torch.isfinite(per_item)
        skipped = [f"{batch.ids[i]} (CTC loss is inf: {int(batch.target_lengths[i])} labels need "
                   f"{int(needed[i])} frames, {int(out.lengths[i])} at {setting})"
                   for i in (~finite).nonzero().flatten().tolist()]
        tokens = batch.target_lengths[finite].sum()
        loss = per_item[finite].sum() / tokens if bool(finite.any()) else per_item.sum()
        sums = {"loss_sum": float(per_item[finite].detach().sum()), "tokens": float(tokens)}
        if not self.module.training:
            counts = error_rates(batch.texts, greedy_decode(out.logits, out.lengths, self.vocabulary))
            sums.update(vars(counts))
        return StepResult(loss, sums, skipped)

    def summarize(self, sums: dict[str, float]) -> dict[str, float]:
        result = {"loss": sums.get("loss_sum", 0.0) / max(sums.get("tokens", 0.0), 1.0)}
        if "words" in sums:
            result["wer"] = sums["word_errors"] / max(sums["words"], 1.0)
            result["cer"] = sums["char_errors"] / max(sums["chars"], 1.0)
        return result

    def export(self, folder: Path | None = None) -> Path:
        """Write the fine-tuned recogniser as a model folder (RUN/model by default)."""
        return self.module.save(folder or self.out / "model")
