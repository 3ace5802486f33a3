"""The two training tasks' settings (recipe sections `task:`), fairseq's W2V2 base values by default."""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError


@dataclass
class PretrainConfig:
    """W2V2 base values (fairseq wav2vec2_base_librispeech)."""

    mask_prob: float = 0.65
    mask_length: int = 10
    min_masks: int = 2
    codebook_groups: int = 2
    codebook_size: int = 320  # codewords per group
    codevector_dim: int = 256
    final_dim: int = 256
    num_negatives: int = 100
    logit_temperature: float = 0.1
    gumbel_temperature: tuple[float, float, float] = (2.0, 0.5, 0.999995)  # start, end, decay per update
    diversity_weight: float = 0.1
    feature_penalty_weight: float = 10.0
    feature_grad_mult: float = 0.1  # scales the conv encoder's gradient (fairseq's GradMultiply)
    dropout_features: float = 0.1  # dropout on the quantizer's input (fairseq dropout_features)

    def __post_init__(self) -> None:
        self.gumbel_temperature = tuple(float(v) for v in self.gumbel_temperature)  # type: ignore[assignment]
        if not 0 < self.mask_prob < 1:
            raise ConfigError(f"mask_prob must be in (0, 1), got {self.mask_prob}")
        if self.mask_length < 1 or self.num_negatives < 1:
            raise ConfigError("mask_length and num_negatives must be >= 1")
        if self.codebook_groups < 1 or self.codebook_size < 2:
            raise ConfigError("codebook_groups must be >= 1 and codebook_size >= 2")
        if self.codevector_dim % self.codebook_groups:
            raise ConfigError("codevector_dim must be divisible by codebook_groups")
        if len(self.gumbel_temperature) != 3:
            raise ConfigError("gumbel_temperature is (start, end, decay)")
        if not 0 <= self.dropout_features < 1:
            raise ConfigError(f"dropout_features must be in [0, 1), got {self.dropout_features}")


@dataclass
class FinetuneConfig:
    """W2V2 10 h fine-tuning values (fairseq base_10h)."""

    mask_time_prob: float = 0.65
    mask_time_length: int = 10
    mask_time_min_spans: int = 2  # fairseq's min_masks for time masks: at least this many spans per item
    mask_channel_prob: float = 0.5
    mask_channel_length: int = 64
    freeze_updates: int = 10000  # the whole encoder is frozen for the first updates (only the head trains)
    freeze_feature_encoder: bool = True  # the conv stack stays frozen throughout (not its norm or projection)
    final_dropout: float = 0.0
    unknown_characters: str = "reject"  # reject | drop: transcript characters outside the vocabulary
    # in-place distillation (beyond the paper; OFA's sandwich rule, LightHuBERT): each update at a drawn
    # setting other than s=1 also runs s=1 on the same batch, trains both on CTC, and adds this weight times
    # KL(s=1 posteriors, detached || drawn posteriors) per 50 Hz frame; 0 = off (the paper's recipe)
    distill_weight: float = 0.0
    distill_temperature: float = 1.0  # softens both posteriors in the KL term (Hinton et al.); 1 = as they are

    def __post_init__(self) -> None:
        if self.unknown_characters not in ("reject", "drop"):
            raise ConfigError("unknown_characters must be 'reject' or 'drop'")
        if not self.distill_weight >= 0:  # NaN fails too
            raise ConfigError(f"task.distill_weight must be a number >= 0, got {self.distill_weight}")
        if not self.distill_temperature > 0:
            raise ConfigError(f"task.distill_temperature must be a number > 0, got {self.distill_temperature}")
        for name in ("mask_time_prob", "mask_channel_prob", "final_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"{name} must be in [0, 1)")
        for name in ("mask_time_length", "mask_channel_length"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1")
        if self.mask_time_min_spans < 0 or self.freeze_updates < 0:
            raise ConfigError("mask_time_min_spans and freeze_updates must be >= 0")


__all__ = ["FinetuneConfig", "PretrainConfig"]
