"""wav2vec 2.0 pre-training on top of the encoder: span masking, Gumbel targets, contrastive loss.

Targets are quantized from the unsqueezed 20 ms conv features; predictions come from the
encoder output after upsampling back to the frame rate. So the task, and its loss, is the same
whatever compression setting the update runs at.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..compute.compression import Compression
from ..errors import Stochw2vError
from ..model.encoder import Encoder
from ..model.pooling import padding_mask
from .masking import numpy_rng, sample_span_mask
from .quantizer import GumbelQuantizer
from .tasks import PretrainConfig


@dataclass
class PretrainOutput:
    loss: Tensor
    contrastive: float
    diversity: float
    feature_penalty: float
    accuracy: float
    chance: float  # accuracy of random scores: mean of 1 / (1 + negatives that differ from the target)
    masked_frames: int
    perplexity: float
    temperature: float


@dataclass
class _Scores:
    logits: Tensor  # [masked frames, 1 + negatives]: the target first, excluded negatives at -inf
    correct: Tensor  # [masked frames] bool
    chance: Tensor  # [masked frames]


class Wav2Vec2Pretraining(nn.Module):
    """Encoder + quantizer + projections; `forward` returns the pre-training loss for one batch."""

    def __init__(self, encoder: Encoder, config: PretrainConfig) -> None:
        super().__init__()
        self.encoder, self.config = encoder, config
        self.quantizer = GumbelQuantizer(encoder.config.conv_dim, config.codebook_groups, config.codebook_size,
                                         config.codevector_dim)
        self.target_dropout = nn.Dropout(config.dropout_features)
        self.project_q = nn.Linear(config.codevector_dim, config.final_dim)
        self.final_proj = nn.Linear(encoder.config.dim, config.final_dim)

    def temperature(self, update: int) -> float:
        start, end, decay = self.config.gumbel_temperature
        return max(start * decay**update, end)

    def forward(self, waveforms: Tensor, lengths: Tensor, compression: Compression, update: int,
                generator: torch.Generator) -> PretrainOutput:
        cfg, encoder = self.config, self.encoder
        setting = encoder.resolve(compression)
        features = encoder.extract_features(waveforms, lengths)
        if features.raw.requires_grad and cfg.feature_grad_mult != 1.0:
            features.raw.register_hook(lambda grad: grad * cfg.feature_grad_mult)
        batch, frames, _ = features.projected.shape
        frame_lengths = features.lengths
        if frame_lengths is None:
            frame_lengths = torch.full((batch,), frames, dtype=torch.long, device=features.projected.device)
        # frames past the last whole pooling window come out of the encoder as zeros: never predict them
        factor = setting.total_factor
        predictable = ((frame_lengths // factor) * factor).tolist()
        if min(predictable) < 2:
            raise Stochw2vError(f"an utterance is too short to pre-train at {setting} ({min(predictable)} frames); "
                                "raise data.min_samples")
        mask = sample_span_mask(predictable, frames, cfg.mask_prob, cfg.mask_length, cfg.min_masks, generator)
        mask = mask.to(features.projected.device)
        x = encoder.apply_mask(features.projected, mask)
        hidden = encoder.context(x, frame_lengths if bool((frame_lengths < frames).any()) else None, setting)

        valid = padding_mask(frame_lengths, frames)  # the penalty is averaged over real frames only
        penalty = features.raw.float().pow(2).mean(-1)[valid].mean()  # before the layer norm (fairseq)
        temperature = self.temperature(update)
        targets, perplexity = self.quantizer(self.target_dropout(features.normalized[mask]), temperature)
        targets = self.project_q(targets)
        predictions = self.final_proj(hidden[mask])
        scores = self._score(predictions, targets, mask.sum(1).tolist(), generator)

        target = torch.zeros(scores.logits.shape[0], dtype=torch.long, device=scores.logits.device)
        contrastive = F.cross_entropy(scores.logits, target)
        num_codes = cfg.codebook_groups * cfg.codebook_size
        diversity = (num_codes - perplexity) / num_codes
        loss = contrastive + cfg.diversity_weight * diversity + cfg.feature_penalty_weight * penalty
        return PretrainOutput(loss, contrastive.item(), diversity.item(), penalty.item(),
                              scores.correct.float().mean().item(), scores.chance.mean().item(), int(mask.sum()),
                              perplexity.item(), temperature)

    def _score(self, predictions: Tensor, targets: Tensor, counts: list[int], generator: torch.Generator) -> _Scores:
        """Cosine scores of each masked frame's prediction against its target and K negatives drawn
        uniformly from the other masked frames of the same utterance (all frames at once)."""
        k, device = self.config.num_negatives, targets.device
        counts_np = np.asarray(counts, dtype=np.int64)
        own = np.repeat(counts_np, counts_np)  # masked frames in each frame's utterance
        first = np.repeat(np.cumsum(counts_np) - counts_np, counts_np)  # index of its utterance's first frame
        position = np.arange(len(own)) - first
        draw = (numpy_rng(generator).random((len(own), k)) * (own[:, None] - 1)).astype(np.int64)
        draw += draw >= position[:, None]  # skip the frame itself
        draw = np.where(own[:, None] > 1, draw, position[:, None])  # a lone masked frame has only itself
        index = torch.from_numpy(first[:, None] + draw).to(device)
        negatives = targets[index]  # [N, K, d]
        candidates = torch.cat([targets[:, None], negatives], dim=1)
        sim = F.cosine_similarity(predictions[:, None].float(), candidates.float(), dim=-1)
        sim = sim / self.config.logit_temperature
        same = (negatives == targets[:, None]).all(-1)
        # negatives equal to the target are left out (as fairseq does); a frame with no other
        # negative left (a collapsed codebook) counts as wrong, so collapse cannot score
        sim[:, 1:] = sim[:, 1:].masked_fill(same, float("-inf"))
        correct = (sim[:, 0] > sim[:, 1:].max(dim=1).values) & ~same.all(dim=1)
        distinct = (~same).sum(dim=1)
        chance = torch.where(distinct > 0, 1.0 / (distinct + 1.0), 0.0)
        return _Scores(sim, correct, chance)


__all__ = ["PretrainOutput", "Wav2Vec2Pretraining"]
