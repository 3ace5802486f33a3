"""`stochw2v profile`: MACs and measured encoder time for each compression setting."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..audio import SAMPLE_RATE
from ..model import Compression, Encoder, count_macs
from .timing import interleaved_medians


@dataclass
class ProfileRow:
    setting: str
    conv_gmacs: float
    transformer_gmacs: float
    rest_gmacs: float
    total_gmacs: float
    seconds: float
    relative_time: float


def profile(model: Encoder, settings: list[Compression], seconds: float = 10.0, repeats: int = 3,
            seed: int = 0, batch: int = 1) -> list[ProfileRow]:
    """Time `model` on `seconds` of noise per setting (batch items of equal length), interleaved."""
    model.eval()
    for setting in settings:
        model.resolve(setting)
    device = next(model.parameters()).device
    audio = torch.randn(batch, int(seconds * SAMPLE_RATE), generator=torch.Generator().manual_seed(seed)).to(device)
    with torch.inference_mode():
        medians = interleaved_medians({s: (lambda s=s: model.encode(audio, compression=s)) for s in settings},
                                      repeats)
    rows = []
    baseline = medians[settings[0]]
    for setting in settings:
        macs = count_macs(model, setting, seconds)
        rows.append(ProfileRow(str(setting), macs.conv_encoder / 1e9, macs.transformer / 1e9, macs.rest / 1e9,
                               macs.total / 1e9, medians[setting], medians[setting] / baseline))
    return rows


def format_table(rows: list[ProfileRow], seconds: float) -> str:
    header = ("| setting | conv GMACs | transformer GMACs | rest GMACs | total GMACs | time (s) | RTF | "
              "time vs first |")
    lines = [header, "|" + "---|" * 8]
    for r in rows:
        lines.append(f"| {r.setting} | {r.conv_gmacs:.2f} | {r.transformer_gmacs:.2f} | {r.rest_gmacs:.2f} | "
                     f"{r.total_gmacs:.2f} | {r.seconds:.3f} | {r.seconds / seconds:.3f} | {r.relative_time:.2f} |")
    return "\n".join(lines)


__all__ = ["ProfileRow", "format_table", "profile"]
