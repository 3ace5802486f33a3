"""`stochw2v profile`: MACs and measured encoder time for each compression setting."""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch

from ..audio import SAMPLE_RATE
from ..compute import Compression, count_macs
from ..compute.budget import Profile, SettingCost
from ..errors import ConfigError
from ..model import CTCModel, Encoder
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
    """Markdown table; the last column is the speed-up measured against the first setting divided by
    the speed-up its MACs predict (1.0: time falls exactly as compute does)."""
    header = ("| setting | conv GMACs | transformer GMACs | rest GMACs | total GMACs | time (s) | RTF | "
              "time vs first | speed-up / MAC speed-up |")
    lines = [header, "|" + "---|" * 9]
    first = rows[0].total_gmacs if rows else 1.0
    for r in rows:
        efficiency = (1 / r.relative_time) / (first / r.total_gmacs)
        lines.append(f"| {r.setting} | {r.conv_gmacs:.2f} | {r.transformer_gmacs:.2f} | {r.rest_gmacs:.2f} | "
                     f"{r.total_gmacs:.2f} | {r.seconds:.3f} | {r.seconds / seconds:.3f} | {r.relative_time:.2f} | "
                     f"{efficiency:.2f} |")
    return "\n".join(lines)




def measure_profile(model: Encoder | CTCModel, settings: list[Compression], batch_sizes: list[int],
                    seconds: float = 10.0, repeats: int = 3, results: dict | None = None,
                    results_model: str | None = None, source: str = "") -> Profile:
    """Real-time factor of every setting at every batch size (the whole recogniser when given one),
    timed interleaved after a warm-up; WER/CER taken from an `evaluate` results.json (or an earlier
    PROFILE.json) when given."""
    model.eval()
    device = next(model.parameters()).device
    rtf: dict[str, dict[int, float]] = {str(s): {} for s in settings}
    for batch in batch_sizes:
        audio = torch.randn(batch, int(seconds * SAMPLE_RATE), generator=torch.Generator().manual_seed(batch))
        audio = audio.to(device)
        with torch.inference_mode():
            medians = interleaved_medians({s: partial(model, audio, compression=s) for s in settings}, repeats)
        for setting, median in medians.items():
            rtf[str(setting)][batch] = median / (batch * seconds)
    encoder = model.encoder if isinstance(model, CTCModel) else model
    accuracy = _accuracies(results, results_model)
    costs = [SettingCost(str(s), rtf[str(s)], count_macs(encoder, s, seconds).total / seconds / 1e9,
                         *accuracy.get(str(s), (None, None))) for s in settings]
    return Profile(costs, device.type, torch.get_num_threads(), source,
                   {"seconds": seconds, "batch_sizes": list(batch_sizes), "repeats": repeats})


def _accuracies(results: dict | None, model_name: str | None) -> dict[str, tuple[float, float]]:
    """setting -> (WER, CER) of one model's rows in an evaluate results.json, or of the settings of a
    PROFILE.json (re-profiling a model on another machine or thread count keeps its accuracies)."""
    if not results:
        return {}
    if not isinstance(results, dict) or not isinstance(results.get("rows", results.get("settings")), list):
        raise ConfigError("--results must be an evaluate results.json (rows) or a PROFILE.json (settings)")
    if "rows" not in results:
        return {s["setting"]: (s.get("wer"), s.get("cer")) for s in results["settings"]
                if isinstance(s, dict) and "setting" in s}
    rows = results.get("rows", [])
    names = sorted({r["model"] for r in rows})
    if model_name is None:
        if len(names) != 1:
            raise ConfigError(f"the results hold several models {names}; say which with --results-model")
        model_name = names[0]
    if model_name not in names:
        raise ConfigError(f"the results hold no model named {model_name!r} (they hold {names})")
    return {r["setting"]: (r["wer"], r["cer"]) for r in rows if r["model"] == model_name}


def format_profile(profile: Profile) -> str:
    sizes = sorted({b for s in profile.settings for b in s.rtf})
    lines = ["| setting | " + " | ".join(f"RTF batch {b}" for b in sizes) + " | GMACs / audio s | WER | CER | Pareto |",
             "|---|" + "---|" * (len(sizes) + 4)]
    for s in profile.settings:
        wer = "-" if s.wer is None else f"{s.wer:.3f}"
        cer = "-" if s.cer is None else f"{s.cer:.3f}"
        lines.append(f"| {s.setting} | " + " | ".join(f"{s.rtf[b]:.4f}" for b in sizes)
                     + f" | {s.gmacs_per_audio_second:.3f} | {wer} | {cer} | {'yes' if s.pareto else ''} |")
    return "\n".join(lines)


__all__ = ["ProfileRow", "format_profile", "format_table", "measure_profile", "profile"]
