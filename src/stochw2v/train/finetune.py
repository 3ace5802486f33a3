"""`stochw2v finetune`: CTC fine-tuning of a (stochastic) pre-trained encoder on the shared loop.

The compression setting is drawn per update from the recipe's policy (one model for every
setting) or fixed by `policy.fixed` (fine-tune to one setting). The best checkpoint is the one
with the lowest validation WER averaged over the validation settings (fairseq's best_checkpoint_metric).
"""
from __future__ import annotations

import copy
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..audio.augment import Augmenter
from ..compute.compression import Compression
from ..data import AudioDataset, Batch, Manifest, Vocabulary, normalize_text, read_manifest
from ..data.error_rates import error_rates
from ..errors import ConfigError, ManifestError
from ..formats.checkpoint import BEST, CHECKPOINTS, read_checkpoint
from ..formats.model_folder import save
from ..model.config import EncoderConfig
from ..model.ctc import CTCModel, greedy_decode
from ..model.encoder import Encoder
from .growing import grow_upsampler
from .masking import mask_features
from .recipe import FinetuneRecipe
from .trainer import StepResult, Trainer

__all__ = ["Finetuner", "ctc_min_frames", "distillation_loss", "prepare_labels", "with_overrides"]

FULL_SETTING = Compression()  # s=1, no pooling: the teacher of in-place distillation


def with_overrides(encoder: Encoder, overrides: dict) -> Encoder:
    """The same weights under a config with other regularisation settings (dropout, layerdrop)."""
    if not overrides:
        return encoder
    config = EncoderConfig.from_dict({**encoder.config.to_dict(), **overrides})
    rebuilt = Encoder(config)
    rebuilt.load_state_dict(encoder.state_dict())
    return rebuilt


def prepare_labels(manifest: Manifest, vocabulary: Vocabulary, unknown_characters: str) -> None:
    """Normalise transcripts as the vocabulary expects (upper case, no punctuation), then apply the
    unknown-character policy: 'reject' lists utterance ids, 'drop' removes the characters."""
    manifest.words = [normalize_text(w) for w in manifest.words]
    bad = {manifest.utterance_id(i): "".join(sorted(vocabulary.unknown_characters(w)))
           for i, w in enumerate(manifest.words) if vocabulary.unknown_characters(w)}
    if bad and unknown_characters == "reject":
        listed = ", ".join(f"{utt} ({chars!r})" for utt, chars in list(bad.items())[:5])
        raise ManifestError(f"{manifest.source}: {len(bad)} transcripts hold characters outside the vocabulary: "
                            f"{listed}{' ...' if len(bad) > 5 else ''}; set task.unknown_characters=drop to "
                            "remove them")
    if bad:
        manifest.words = [" ".join("".join(c for c in w if c not in vocabulary.unknown_characters(w)).split())
                          for w in manifest.words]


def ctc_min_frames(targets: Tensor, target_lengths: Tensor) -> Tensor:
    """Fewest frames CTC can align each label sequence to: one per label, plus a blank between repeats."""
    valid = torch.arange(targets.shape[1], device=targets.device)[None] < target_lengths[:, None]
    repeats = ((targets[:, 1:] == targets[:, :-1]) & valid[:, 1:]).sum(1)
    return target_lengths + repeats


def distillation_loss(student: Tensor, teacher: Tensor, lengths: Tensor, temperature: float = 1.0) -> Tensor:
    """Mean over valid frames of KL(teacher || student) between frame posteriors ([B, T, V] logits at the
    same 50 Hz rate); the teacher is detached, so only the student learns from it. Scaled by T^2 so that
    its gradient keeps its size whatever the temperature (Hinton et al. 2015)."""
    valid = torch.arange(student.shape[1], device=student.device)[None] < lengths.to(student.device)[:, None]
    target = (teacher.detach().float() / temperature).log_softmax(-1)
    log_student = (student.float() / temperature).log_softmax(-1)
    per_frame = (target.exp() * (target - log_student)).sum(-1)
    return per_frame[valid].sum() / valid.sum().clamp_min(1) * temperature ** 2


class Finetuner(Trainer):
    kind = "finetune"
    progress_name = "finetune"
    best_key = "wer"

    def __init__(self, recipe: FinetuneRecipe, init: Encoder | CTCModel, train_tsv: Path, valid_tsv: Path,
                 out: Path, init_source: str = "", resume: bool = False, progress: bool = True,
                 device: str | None = None) -> None:
        """init: the loaded starting model (`stochw2v.load(...)`). A recogniser over the same vocabulary
        keeps its CTC head, so fine-tuning continues where it stopped (fairseq's
        --finetune-from-model); any other head is replaced by a fresh one."""
        self.train_tsv, self.valid_tsv = Path(train_tsv), Path(valid_tsv)
        self.vocabulary = Vocabulary()
        encoder = init.encoder if isinstance(init, CTCModel) else init
        if not isinstance(encoder, Encoder):
            raise ConfigError(f"--init must be an encoder or recogniser, got {type(init).__name__}")
        self.init_encoder = with_overrides(copy.deepcopy(encoder), recipe.encoder_overrides)
        self.init_encoder = self._with_upsampler(self.init_encoder, recipe, progress)
        same_tokens = isinstance(init, CTCModel) and init.vocabulary.tokens == self.vocabulary.tokens
        self.init_head = copy.deepcopy(init.head.state_dict()) if same_tokens else None
        sources = {"train": str(self.train_tsv.resolve()), "valid": str(self.valid_tsv.resolve()),
                   "init": init_source}
        super().__init__(recipe, out, sources, resume, progress, device)

    @staticmethod
    def _with_upsampler(encoder: Encoder, recipe: FinetuneRecipe, progress: bool) -> Encoder:
        """The encoder, with upsampler blocks added when the policy draws total factors it has none for
        (a plain wav2vec 2.0 or a SEW s=2 checkpoint fine-tuned stochastically)."""
        largest = max(recipe.policy.build(recipe.run.seed).total_factors())
        if largest <= max(1, encoder.config.max_upsample):
            return encoder
        if progress:
            print(f"finetune: the policy draws total factors up to {largest}; the model's upsampler covers "
                  f"{encoder.config.max_upsample or 'none'}: new upsampler blocks start as in a fresh model",
                  flush=True)
        return grow_upsampler(encoder, largest)

    def manifests(self) -> tuple[Manifest, Manifest]:
        manifests = []
        for tsv in (self.train_tsv, self.valid_tsv):
            manifest = read_manifest(tsv, labels=True)
            prepare_labels(manifest, self.vocabulary, self.recipe.task.unknown_characters)
            manifests.append(manifest)
        return manifests[0], manifests[1]

    def make_dataset(self, manifest: Manifest, train: bool) -> AudioDataset:
        augment = Augmenter.from_dict(self.recipe.data.augment) if train and self.recipe.data.augment else None
        return AudioDataset(manifest, self.vocabulary, crop=None, seed=self.seed, augment=augment)

    def build_module(self) -> nn.Module:
        model = CTCModel(self.init_encoder, self.vocabulary, self.recipe.task.final_dropout)
        if self.init_head is not None:
            model.head.load_state_dict(self.init_head)
        return model

    def extra_state(self) -> dict:
        return {"vocabulary": list(self.vocabulary.tokens)}

    def _masks(self, generator: torch.Generator):
        task, embedding = self.recipe.task, self.encoder.mask_embedding

        def hook(x: Tensor, frame_lengths: Tensor | None) -> Tensor:
            sizes = [x.shape[1]] * x.shape[0] if frame_lengths is None else frame_lengths.tolist()
            return mask_features(x, sizes, task.mask_time_prob, task.mask_time_length, task.mask_channel_prob,
                                 task.mask_channel_length, embedding, generator, task.mask_time_min_spans)
        return hook

    def compute(self, model: nn.Module, batch: Batch, setting: Compression, update: int,
                generator: torch.Generator) -> StepResult:
        task, training = self.recipe.task, self.module.training
        distill = training and task.distill_weight > 0 and setting != FULL_SETTING
        out = model(batch.waveforms, batch.lengths, setting, augment=self._masks(generator) if training else None,
                    freeze_encoder=training and update < task.freeze_updates,
                    freeze_features=task.freeze_feature_encoder, reference=FULL_SETTING if distill else None)
        loss, sums, skipped = self._ctc(out.logits, out.lengths, batch, setting)
        if distill:  # the full setting trains on CTC too, and teaches the drawn one
            full_loss, full_sums, full_skipped = self._ctc(out.reference_logits, out.lengths, batch, FULL_SETTING)
            kl = distillation_loss(out.logits, out.reference_logits, out.lengths, task.distill_temperature)
            loss = loss + full_loss + task.distill_weight * kl
            sums.update({"full_loss_sum": full_sums["loss_sum"], "kl": float(kl.detach()), "kl_updates": 1.0})
            skipped += [s for s in full_skipped if s not in skipped]
        if not training:
            counts = error_rates(batch.texts, greedy_decode(out.logits, out.lengths, self.vocabulary))
            sums.update(vars(counts))
        return StepResult(loss, sums, skipped)

    def _ctc(self, logits: Tensor, lengths: Tensor, batch: Batch, setting: Compression):
        """Token-mean CTC loss over the items that can be aligned, their sums, and the ids left out."""
        log_probs = logits.float().log_softmax(-1).transpose(0, 1)
        # zero_infinity: an impossible item's loss is inf and its gradient NaN, which would poison
        # the whole update; it is zeroed here and left out below, by name
        per_item = F.ctc_loss(log_probs, batch.targets.clamp_min(0), lengths, batch.target_lengths,
                              blank=self.vocabulary.blank_id, reduction="none", zero_infinity=True)
        needed = ctc_min_frames(batch.targets, batch.target_lengths).to(lengths.device)
        finite = (lengths >= needed) & torch.isfinite(per_item)
        skipped = [f"{batch.ids[i]} (CTC loss is inf: {int(batch.target_lengths[i])} labels need "
                   f"{int(needed[i])} frames, {int(lengths[i])} at {setting})"
                   for i in (~finite).nonzero().flatten().tolist()]
        tokens = batch.target_lengths[finite].sum()
        loss = per_item[finite].sum() / tokens if bool(finite.any()) else per_item.sum()
        return loss, {"loss_sum": float(per_item[finite].detach().sum()), "tokens": float(tokens)}, skipped

    def summarize(self, sums: dict[str, float]) -> dict[str, float]:
        result = {"loss": sums.get("loss_sum", 0.0) / max(sums.get("tokens", 0.0), 1.0)}
        if sums.get("kl_updates"):  # in-place distillation: the KL term, averaged over the updates that had it
            result["kl"] = sums["kl"] / sums["kl_updates"]
        if "words" in sums:
            result["wer"] = sums["word_errors"] / max(sums["words"], 1.0)
            result["cer"] = sums["char_errors"] / max(sums["chars"], 1.0)
        return result

    def export(self, folder: Path | None = None) -> Path:
        """Write the recogniser of the best-WER checkpoint (the current weights if none) as a model folder."""
        best = self.out / CHECKPOINTS / BEST
        model = self.module
        if best.exists():
            model = copy.deepcopy(self.module).cpu()
            model.load_state_dict(read_checkpoint(best).model)
        return save(model, folder or self.out / "model")
