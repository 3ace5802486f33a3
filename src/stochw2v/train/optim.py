"""AdamW and the two learning-rate schedules of the recipes: `linear` (W2V2 pre-training: warm-up, then
linear decay) and `tri_stage` (W2V2 fine-tuning: warm-up, hold, exponential decay)."""
from __future__ import annotations

import torch
from torch import nn

from .recipe import OptimRecipe


def make_optimizer(model: nn.Module, recipe: OptimRecipe) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases, norms and the mask embedding (as fairseq's default groups)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or "norm" in name else decay).append(param)
    groups = [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=recipe.lr, betas=tuple(recipe.betas), eps=recipe.eps)


def warmup_linear_decay(update: int, warmup: int, total: int, final_scale: float) -> float:
    """Multiplier of the peak learning rate at `update`."""
    if warmup > 0 and update < warmup:
        return (update + 1) / warmup
    span = max(1, total - warmup)
    progress = min(1.0, (update - warmup) / span)
    return 1.0 - (1.0 - final_scale) * progress


def tri_stage(update: int, total: int, ratios: list[float], final_scale: float, initial_scale: float = 0.01) -> float:
    """fairseq's tri-stage schedule (W2V2 fine-tuning): linear warm-up, hold, exponential decay."""
    warmup, hold = int(total * ratios[0]), int(total * ratios[1])
    decay = max(1, total - warmup - hold)
    if update < warmup:
        return initial_scale + (1.0 - initial_scale) * update / warmup
    if update < warmup + hold:
        return 1.0
    progress = min(1.0, (update - warmup - hold) / decay)
    return final_scale ** progress


def make_scheduler(optimizer: torch.optim.Optimizer, recipe: OptimRecipe) -> torch.optim.lr_scheduler.LambdaLR:
    if recipe.schedule == "tri_stage":
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda u: tri_stage(u, recipe.max_updates, recipe.phase_ratio, recipe.final_lr_scale))
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda update: warmup_linear_decay(update, recipe.warmup_updates, recipe.max_updates, recipe.final_lr_scale),
    )
