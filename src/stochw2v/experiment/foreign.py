"""Starting points from other families' checkpoints, built with HF transformers' own classes.

Issue #31's evidence: most users hold a HuBERT or WavLM checkpoint, not ours. A start of family F is
HF's `FModel` at the tiny architecture, randomly initialised by HF's own code and written with
`save_pretrained`, then read back through `stochw2v.load` like any checkpoint a user brings. Its arms
(a short CTC warm start at s=1, then fine-tuning fixed at s=1 or stochastically) are the experiment's
W2V2 arms with another encoder: one code path for "make an existing checkpoint on-demand".
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from ..errors import ConfigError
from ..formats.hf import config_to_hf
from ..formats.load import load
from ..model.config import EncoderConfig
from ..model.encoder import Encoder

FOREIGN_FAMILIES = ("hubert", "wavlm")
WAVLM_BUCKETS, WAVLM_MAX_DISTANCE = 320, 800  # HF WavLMConfig's defaults (WavLM base and large)


def _hf_config(family: str, architecture: EncoderConfig):
    """HF's config class of `family` at our architecture (no upsampler: a plain checkpoint of that family)."""
    try:
        from transformers import AutoConfig
    except ImportError:
        raise ConfigError(f"the {family} start builds its checkpoint with HF transformers, which is not installed "
                          f"(pip install transformers, or stochw2v[test])") from None
    extra = ({"relative_position_buckets": WAVLM_BUCKETS, "relative_position_max_distance": WAVLM_MAX_DISTANCE}
             if family == "wavlm" else {})
    ours = dataclasses.replace(architecture, family=family, max_upsample=0, trained_policy=None, **extra)
    hf = config_to_hf(ours, 1)
    return AutoConfig.for_model(hf.pop("model_type"), **{k: v for k, v in hf.items() if k != "architectures"})


def foreign_checkpoint(family: str, architecture: EncoderConfig, seed: int, folder: Path) -> Encoder:
    """HF's randomly initialised `family` model at `architecture`, saved once in `folder` and loaded from it."""
    if family not in FOREIGN_FAMILIES:
        raise ConfigError(f"start family {family!r} is not one of {', '.join(FOREIGN_FAMILIES)}")
    if not (folder / "config.json").exists():
        from transformers import AutoModel

        torch.manual_seed(seed)
        model = AutoModel.from_config(_hf_config(family, architecture))
        partial = folder.with_name(folder.name + ".partial")
        model.save_pretrained(partial)
        partial.replace(folder)  # a checkpoint is complete or absent
    return load(folder)


__all__ = ["FOREIGN_FAMILIES", "foreign_checkpoint"]
