"""`stochw2v profile`: MACs and measured encoder time for each compression setting."""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch
from tqdm import tqdm

from ..model import Compression, Encoder, EncoderConfig, count_macs

DEFAULT_SETTINGS = "s=1;s=2;s=3;s=4;s=2,kv=2;s=2,q7=2;s=4,q7=2"


@dataclass
class ProfileRow:
    setting: str
    conv_gmacs: float
    transformer_gmacs: float
    rest_gmacs: float
    total_gmacs: float
    seconds: float
    relative_time: float


def parse_settings(text: str) -> list[Compression]:
    """'s=1;s=2,kv=2' -> settings, in order, duplicates removed."""
    settings = [Compression.parse(part) for part in text.split(";") if part.strip()]
    if not settings:
        raise ValueError("no compression settings given")
    return list(dict.fromkeys(settings))


def time_call(fn, repeats: int) -> float:
    """Median seconds of `fn()` over `repeats` runs, after one warm-up run."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def profile(model: Encoder, settings: list[Compression], seconds: float = 10.0, repeats: int = 3,
            seed: int = 0, progress: bool = True) -> list[ProfileRow]:
    """Time `model` on `seconds` of noise per setting, settings interleaved over repeats."""
    model.eval()
    for setting in settings:
        model.resolve(setting)
    audio = torch.randn(1, int(seconds * 16_000), generator=torch.Generator().manual_seed(seed))
    times: dict[Compression, list[float]] = {s: [] for s in settings}
    with torch.inference_mode():
        for setting in settings:  # warm-up
            model.encode(audio, compression=setting)
        steps = tqdm(total=repeats * len(settings), desc="profile", disable=not progress, leave=False)
        for _ in range(repeats):
            for setting in settings:
                start = time.perf_counter()
                model.encode(audio, compression=setting)
                times[setting].append(time.perf_counter() - start)
                steps.update()
        steps.close()
    rows = []
    baseline = statistics.median(times[settings[0]])
    for setting in settings:
        macs = count_macs(model, setting, seconds)
        median = statistics.median(times[setting])
        rows.append(ProfileRow(str(setting), macs.conv_encoder / 1e9, macs.transformer / 1e9, macs.rest / 1e9,
                               macs.total / 1e9, median, median / baseline))
    return rows


def format_table(rows: list[ProfileRow], seconds: float) -> str:
    header = ("| setting | conv GMACs | transformer GMACs | rest GMACs | total GMACs | time (s) | RTF | "
              "time vs first |")
    lines = [header, "|" + "---|" * 8]
    for r in rows:
        lines.append(f"| {r.setting} | {r.conv_gmacs:.2f} | {r.transformer_gmacs:.2f} | {r.rest_gmacs:.2f} | "
                     f"{r.total_gmacs:.2f} | {r.seconds:.3f} | {r.seconds / seconds:.3f} | {r.relative_time:.2f} |")
    return "\n".join(lines)


def preset(name: str) -> EncoderConfig:
    presets = {"base": EncoderConfig.base, "large": EncoderConfig.large, "tiny": EncoderConfig.tiny}
    if name not in presets:
        raise ValueError(f"unknown model size {name!r}; choose from {sorted(presets)}")
    return presets[name]()
