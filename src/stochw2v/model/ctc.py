"""The recogniser: the encoder, a CTC head on its (upsampled, 50 Hz) output, and its vocabulary."""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from ..compute.compression import Compression, CompressionLike
from ..data.text import Vocabulary
from .encoder import Encoder, FeatureHook


class CTCOutput(NamedTuple):
    logits: Tensor  # [B, frames, vocabulary]
    lengths: Tensor  # [B] valid frames
    # logits at the `reference` setting on the same features (in-place distillation's teacher), when asked
    reference_logits: Tensor | None = None


def greedy_decode(logits: Tensor, lengths: Tensor, vocabulary: Vocabulary) -> list[str]:
    """Best token per frame, repeats merged, blanks dropped; frames past each length ignored."""
    best = logits.argmax(-1).cpu()
    texts = []
    for row, length in zip(best, lengths.tolist()):
        tokens = row[:length]
        keep = torch.ones_like(tokens, dtype=torch.bool)
        keep[1:] = tokens[1:] != tokens[:-1]
        texts.append(vocabulary.decode(tokens[keep].tolist()))
    return texts


class CTCModel(nn.Module):
    """Encoder + dropout + Linear to the character vocabulary; compute chosen per call like the encoder."""

    def __init__(self, encoder: Encoder, vocabulary: Vocabulary, final_dropout: float = 0.0) -> None:
        super().__init__()
        self.encoder, self.vocabulary = encoder, vocabulary
        self.dropout = nn.Dropout(final_dropout)
        self.head = nn.Linear(encoder.config.dim, len(vocabulary))
        # fairseq's Xavier init, not HF's N(0, 0.02): behind the upsampler's small-init Linear, two
        # N(0, 0.02) layers in a row kept the tiny model on CTC's all-blank plateau (loss 2.92 after
        # 500 updates; Xavier leaves it by update 350)
        nn.init.xavier_uniform_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    @property
    def config(self):
        return self.encoder.config

    @property
    def trained_settings(self) -> list[str]:
        """A few settings that stand for the training distribution (empty when it is unknown)."""
        policy = self.config.training_distribution
        return [] if policy is None else [str(s) for s in policy.validation_settings(self.config.num_layers)]

    def resolve(self, compression: CompressionLike) -> Compression:
        return self.encoder.resolve(compression)

    def forward(self, waveforms: Tensor, lengths: Tensor | None = None, compression: CompressionLike = None,
                augment: FeatureHook | None = None, freeze_encoder: bool = False,
                freeze_features: bool = False, reference: CompressionLike = None) -> CTCOutput:
        """Logits at the frame rate. `augment` (training: time and channel masks) edits the
        transformer input; `freeze_encoder` runs the whole encoder without gradients.

        reference: also run the context network at this setting on the same conv features and the same
        masks (the front end is computed once), for in-place distillation; its logits come back as
        `reference_logits`. One forward call, so that DDP sees both passes."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not freeze_encoder):
            features = self.encoder.front(waveforms, lengths, freeze_conv=freeze_features)
            if augment is not None:  # one draw of the masks, shared by both passes
                features = features._replace(projected=augment(features.projected, features.lengths))
            out = self.encoder.back(features, compression)
            teacher = None if reference is None else self.encoder.back(features, reference)
        logits = self.head(self.dropout(out.hidden_states))
        reference_logits = None if teacher is None else self.head(self.dropout(teacher.hidden_states))
        return CTCOutput(logits, out.lengths, reference_logits)

    def head_logits(self, out) -> CTCOutput:
        """CTC logits of an encoder output (from `encoder.back`, for callers that reuse features)."""
        return CTCOutput(self.head(self.dropout(out.hidden_states)), out.lengths)

    @torch.inference_mode()
    def transcribe(self, waveforms: Tensor, lengths: Tensor | None = None,
                   compression: CompressionLike = None) -> list[str]:
        """Greedy CTC transcripts of a (padded) batch."""
        was_training = self.training
        self.eval()
        out = self(waveforms, lengths, compression)
        self.train(was_training)
        return greedy_decode(out.logits, out.lengths, self.vocabulary)


# what a model folder, a HF folder or a fairseq checkpoint loads into
Model = Encoder | CTCModel

__all__ = ["CTCModel", "CTCOutput", "Model", "greedy_decode"]
