"""wav2vec 2.0 pre-training on top of the encoder: span masking, Gumbel quantizer, contrastive loss.

Targets are quantized from the unsqueezed 20 ms conv features; predictions come from the
encoder output after upsampling back to the frame rate. So the task, and its loss, is the same
whatever compression setting the update runs at.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .compression import Compression
from .encoder import Encoder
from .masking import sample_span_mask


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

    def __post_init__(self) -> None:
        self.gumbel_temperature = tuple(float(v) for v in self.gumbel_temperature)  # type: ignore[assignment]
        if not 0 < self.mask_prob < 1:
            raise ValueError(f"mask_prob must be in (0, 1), got {self.mask_prob}")
        if self.mask_length < 1 or self.num_negatives < 1:
            raise ValueError("mask_length and num_negatives must be >= 1")
        if self.codevector_dim % self.codebook_groups:
            raise ValueError("codevector_dim must be divisible by codebook_groups")
        if len(self.gumbel_temperature) != 3:
            raise ValueError("gumbel_temperature is (start, end, decay)")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["gumbel_temperature"] = list(self.gumbel_temperature)
        return d


class GumbelQuantizer(nn.Module):
    """Product quantizer with G groups of V codewords, chosen by straight-through Gumbel softmax."""

    def __init__(self, in_dim: int, groups: int, size: int, dim: int) -> None:
        super().__init__()
        self.groups, self.size = groups, size
        self.weight_proj = nn.Linear(in_dim, groups * size)
        # zero-mean codewords (fairseq draws them from U[0, 1)): distinct targets from the first update
        self.codevectors = nn.Parameter(torch.empty(1, groups * size, dim // groups).normal_())
        nn.init.normal_(self.weight_proj.weight, std=1.0)
        nn.init.zeros_(self.weight_proj.bias)

    def forward(self, x: Tensor, temperature: float) -> tuple[Tensor, Tensor]:
        """x [N, in_dim] -> (codevectors [N, dim], perplexity of the batch's average code use)."""
        n = x.shape[0]
        logits = self.weight_proj(x).float().view(n * self.groups, self.size)
        probs = logits.softmax(-1).view(n, self.groups, self.size).mean(0)
        perplexity = torch.exp(-(probs * torch.log(probs + 1e-7)).sum(-1)).sum()
        if self.training:
            onehot = F.gumbel_softmax(logits, tau=temperature, hard=True)
        else:
            onehot = F.one_hot(logits.argmax(-1), self.size).float()
        onehot = onehot.view(n, self.groups * self.size, 1).to(x.dtype)
        vectors = (onehot * self.codevectors).view(n, self.groups, self.size, -1).sum(2)
        return vectors.reshape(n, -1), perplexity


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


class Wav2Vec2Pretraining(nn.Module):
    """Encoder + quantizer + projections; `forward` returns the pre-training loss for one batch."""

    def __init__(self, encoder: Encoder, config: PretrainConfig) -> None:
        super().__init__()
        self.encoder, self.config = encoder, config
        dim = encoder.config.dim
        self.quantizer = GumbelQuantizer(encoder.config.conv_dim, config.codebook_groups, config.codebook_size,
                                         config.codevector_dim)
        self.project_q = nn.Linear(config.codevector_dim, config.final_dim)
        self.final_proj = nn.Linear(dim, config.final_dim)

    def temperature(self, update: int) -> float:
        start, end, decay = self.config.gumbel_temperature
        return max(start * decay**update, end)

    def forward(self, waveforms: Tensor, lengths: Tensor, compression: Compression, update: int,
                generator: torch.Generator) -> PretrainOutput:
        cfg, encoder = self.config, self.encoder
        setting = encoder.resolve(compression)
        raw, features, projected, frame_lengths = encoder.extract_features(waveforms, lengths)
        if raw.requires_grad and cfg.feature_grad_mult != 1.0:
            raw.register_hook(lambda grad: grad * cfg.feature_grad_mult)
        batch, frames, _ = projected.shape
        if frame_lengths is None:
            frame_lengths = torch.full((batch,), frames, dtype=torch.long, device=projected.device)
        factor = setting.total_factor
        # frames past the last whole pooling window come out of the encoder as zeros: never predict them
        predictable = ((frame_lengths // factor) * factor).tolist()
        if min(predictable) < 2:
            raise ValueError(f"an utterance is too short to pre-train at {setting} ({min(predictable)} frames)")
        mask = sample_span_mask(predictable, frames, cfg.mask_prob, cfg.mask_length, cfg.min_masks, generator)
        mask = mask.to(projected.device)
        x = encoder.apply_mask(projected, mask)
        hidden = encoder.context(x, frame_lengths if bool((frame_lengths < frames).any()) else None, setting)

        penalty = raw.float().pow(2).mean()  # on the conv output, before its layer norm (fairseq)
        temperature = self.temperature(update)
        targets, perplexity = self.quantizer(features[mask], temperature)
        targets = self.project_q(targets)
        predictions = self.final_proj(hidden[mask])

        logits, correct, chance, counts = [], [], [], mask.sum(1).tolist()
        offset = 0
        for count in counts:
            y = targets[offset:offset + count]
            p = predictions[offset:offset + count]
            offset += count
            k = cfg.num_negatives
            index = torch.randint(0, count - 1, (count, k), generator=generator).to(y.device)
            index = index + (index >= torch.arange(count, device=y.device)[:, None]).long()  # skip itself
            negatives = y[index]  # [count, k, d]
            candidates = torch.cat([y[:, None], negatives], dim=1)
            sim = F.cosine_similarity(p[:, None].float(), candidates.float(), dim=-1) / cfg.logit_temperature
            same = (negatives == y[:, None]).all(-1)
            # negatives equal to the target are left out (as fairseq does); a frame with no other
            # negative left (a collapsed codebook) counts as wrong, so collapse cannot score
            sim[:, 1:] = sim[:, 1:].masked_fill(same, float("-inf"))
            correct.append((sim[:, 0] > sim[:, 1:].max(dim=1).values) & ~same.all(dim=1))
            distinct = (~same).sum(dim=1)
            chance.append(torch.where(distinct > 0, 1.0 / (distinct + 1.0), 0.0))
            logits.append(sim)
        logits = torch.cat(logits)
        target = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
        contrastive = F.cross_entropy(logits, target)
        num_codes = cfg.codebook_groups * cfg.codebook_size
        diversity = (num_codes - perplexity) / num_codes
        loss = contrastive + cfg.diversity_weight * diversity + cfg.feature_penalty_weight * penalty
        accuracy = torch.cat(correct).float().mean().item()
        return PretrainOutput(loss, contrastive.item(), diversity.item(), penalty.item(), accuracy,
                              torch.cat(chance).mean().item(), int(mask.sum()), perplexity.item(), temperature)


__all__ = ["PretrainConfig", "Wav2Vec2Pretraining", "GumbelQuantizer"]
