"""wav2vec 2.0's Gumbel product quantizer: the discrete targets of contrastive pre-training."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


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


__all__ = ["GumbelQuantizer"]
