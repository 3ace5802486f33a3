"""The recogniser: the encoder, a CTC head on its (upsampled, 50 Hz) output, and its vocabulary."""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor, nn

from ..data.text import Vocabulary
from .compression import CompressionLike
from .encoder import Encoder
from .masking import mask_features


@dataclass
class FinetuneConfig:
    """W2V2 10 h fine-tuning values (fairseq base_10h)."""

    mask_time_prob: float = 0.65
    mask_time_length: int = 10
    mask_channel_prob: float = 0.5
    mask_channel_length: int = 64
    freeze_updates: int = 10000  # the whole encoder is frozen for the first updates (only the head trains)
    freeze_feature_encoder: bool = True  # conv encoder and projection stay frozen throughout
    final_dropout: float = 0.0
    unknown_characters: str = "reject"  # reject | drop: transcript characters outside the vocabulary

    def __post_init__(self) -> None:
        if self.unknown_characters not in ("reject", "drop"):
            raise ValueError("unknown_characters must be 'reject' or 'drop'")
        for name in ("mask_time_prob", "mask_channel_prob", "final_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1)")

    def to_dict(self) -> dict:
        return asdict(self)


class CTCOutput(NamedTuple):
    logits: Tensor  # [B, frames, vocabulary]
    lengths: Tensor  # [B] valid frames


class CTCModel(nn.Module):
    """Encoder + dropout + Linear to the character vocabulary; compute chosen per call like the encoder."""

    def __init__(self, encoder: Encoder, vocabulary: Vocabulary, final_dropout: float = 0.0,
                 trained_settings: list[str] | None = None) -> None:
        super().__init__()
        self.encoder, self.vocabulary = encoder, vocabulary
        self.dropout = nn.Dropout(final_dropout)
        self.head = nn.Linear(encoder.config.dim, len(vocabulary))
        # fairseq's Xavier init, not HF's N(0, 0.02): behind the upsampler's small-init Linear, two
        # N(0, 0.02) layers in a row kept the tiny model on CTC's all-blank plateau (loss 2.92 after
        # 500 updates; Xavier leaves it by update 350)
        nn.init.xavier_uniform_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.trained_settings = list(trained_settings or [])

    @property
    def config(self):
        return self.encoder.config

    def forward(self, waveforms: Tensor, lengths: Tensor | None = None, compression: CompressionLike = None,
                augment: FinetuneConfig | None = None, generator: torch.Generator | None = None,
                freeze_encoder: bool = False, freeze_features: bool = False) -> CTCOutput:
        """Logits at the frame rate. `augment` (training only) applies time and channel masking."""
        hook = None
        if augment is not None and self.training:
            gen = generator or torch.Generator().manual_seed(0)

            def hook(x: Tensor, frame_lengths: Tensor | None) -> Tensor:
                sizes = [x.shape[1]] * x.shape[0] if frame_lengths is None else frame_lengths.tolist()
                return mask_features(x, sizes, augment.mask_time_prob, augment.mask_time_length,
                                     augment.mask_channel_prob, augment.mask_channel_length,
                                     self.encoder.mask_embedding, gen)

        with torch.set_grad_enabled(torch.is_grad_enabled() and not freeze_encoder):
            out = self.encoder(waveforms, lengths, compression, augment=hook, freeze_features=freeze_features)
        return CTCOutput(self.head(self.dropout(out.hidden_states)), out.lengths)

    @torch.inference_mode()
    def transcribe(self, waveforms: Tensor, lengths: Tensor | None = None,
                   compression: CompressionLike = None) -> list[str]:
        """Greedy CTC transcripts of a (padded) batch."""
        from ..evaluate.decoding import greedy_decode

        was_training = self.training
        self.eval()
        out = self(waveforms, lengths, compression)
        self.train(was_training)
        return greedy_decode(out.logits, out.lengths, self.vocabulary)

    def save(self, path: str | os.PathLike) -> Path:
        """config.json (encoder config, vocabulary, trained settings) + model.safetensors."""
        from safetensors.torch import save_file

        from .checkpoint import FORMAT, atomic_write

        out = Path(path)
        state = {k: v.detach().contiguous() for k, v in self.state_dict().items()}
        atomic_write(out / "model.safetensors", None, lambda tmp: save_file(state, tmp, metadata={"format": "pt"}))
        meta = {"format": FORMAT, "kind": "ctc", "version": 1, "encoder": self.encoder.config.to_dict(),
                "vocabulary": list(self.vocabulary.tokens), "trained_settings": self.trained_settings}
        atomic_write(out / "config.json", json.dumps(meta, indent=2).encode())
        return out
