"""`stochw2v evaluate`: WER, CER, time and compute of every setting of one or more recognisers.

Settings are timed in the same process, interleaved over repeats after a warm-up, so their
times compare. Writes results.json, results.md and tradeoff.png (WER and CER against relative
inference time, one curve per model, each metric's Pareto front marked).
"""
from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from ..data import AudioDataset, BucketBatchSampler, Manifest, make_loader
from ..model.checkpoint import count_parameters
from ..model.compression import Compression
from ..model.ctc import CTCModel
from ..model.macs import count_macs
from .decoding import BeamDecoder, greedy_decode
from .metrics import error_rates

DEFAULT_SQUEEZES = ("s=1", "s=2", "s=3", "s=4")


@dataclass
class SettingResult:
    model: str
    setting: str
    wer: float
    cer: float
    seconds: float  # total inference time over the manifest (median over repeats)
    rtf: float  # seconds / audio seconds
    relative_time: float  # against the first model's first setting
    gmacs_per_audio_second: float
    parameters: int
    utterances: int


def default_settings(model: CTCModel) -> list[Compression]:
    """s=1..4 plus the pooling settings the model was trained with, where the model can run them."""
    candidates = [Compression.parse(s) for s in DEFAULT_SQUEEZES + tuple(model.trained_settings)]
    runnable = []
    for setting in dict.fromkeys(candidates):
        try:
            model.encoder.resolve(setting)
        except ValueError:
            continue
        runnable.append(setting)
    return runnable


def _decode_all(model: CTCModel, loader, setting: Compression, decoder) -> tuple[dict[str, str], float]:
    """Hypotheses by utterance id, and the seconds spent in the model and decoder."""
    hypotheses, elapsed = {}, 0.0
    with torch.inference_mode():
        for batch in loader:
            start = time.perf_counter()
            out = model(batch.waveforms, batch.lengths, setting)
            texts = decoder(out.logits, out.lengths) if decoder else greedy_decode(out.logits, out.lengths,
                                                                                   model.vocabulary)
            elapsed += time.perf_counter() - start
            hypotheses.update(zip(batch.ids, texts))
    return hypotheses, elapsed


def evaluate_models(models: dict[str, CTCModel], manifest: Manifest, settings: list[Compression] | None = None,
                    repeats: int = 1, max_samples: int = 1_600_000, beam: dict | None = None,
                    progress: bool = True) -> tuple[list[SettingResult], dict[str, dict[str, dict[str, str]]]]:
    """Every model at every setting; returns the rows and the hypotheses (model -> setting -> id -> text)."""
    if not manifest.has_labels:
        raise ValueError(f"{manifest.source}: evaluation needs transcripts (.wrd)")
    references = {manifest.utterance_id(i): manifest.words[i] for i in range(len(manifest))}
    per_model = {name: settings or default_settings(model) for name, model in models.items()}
    for name, model in models.items():
        model.eval()
        for setting in per_model[name]:
            try:
                model.encoder.resolve(setting)
            except ValueError as error:
                raise ValueError(f"{name}: {error}") from None
    dataset = AudioDataset(manifest)
    sampler = BucketBatchSampler(dataset.sizes(), max(max_samples, max(manifest.num_samples)), shuffle=False)
    batches = list(make_loader(dataset, sampler))  # decode audio once; only the model is timed
    audio_seconds = manifest.total_seconds
    mean_seconds = audio_seconds / len(manifest)

    times: dict[tuple[str, Compression], list[float]] = {}
    hypotheses: dict[str, dict[str, dict[str, str]]] = {name: {} for name in models}
    jobs = [(name, s) for name in models for s in per_model[name]]
    decoders = {name: BeamDecoder(m.vocabulary, **beam) if beam else None for name, m in models.items()}
    for name, setting in jobs:  # warm-up
        _decode_all(models[name], batches[:1], setting, decoders[name])
    bar = tqdm(total=repeats * len(jobs), desc="evaluate", disable=not progress, leave=False)
    for _ in range(repeats):
        for name, setting in jobs:
            texts, seconds = _decode_all(models[name], batches, setting, decoders[name])
            times.setdefault((name, setting), []).append(seconds)
            hypotheses[name][str(setting)] = texts
            bar.update()
    bar.close()

    rows = []
    baseline = statistics.median(times[jobs[0]])
    for name, setting in jobs:
        texts = hypotheses[name][str(setting)]
        counts = error_rates(list(references.values()), [texts[utt] for utt in references])
        seconds = statistics.median(times[(name, setting)])
        macs = count_macs(models[name].encoder, setting, mean_seconds).total
        macs += models[name].encoder.num_frames(int(mean_seconds * 16000)) * models[name].head.weight.numel()
        rows.append(SettingResult(name, str(setting), counts.wer, counts.cer, seconds, seconds / audio_seconds,
                                  seconds / baseline, macs / mean_seconds / 1e9,
                                  count_parameters(models[name]), len(manifest)))
    return rows, hypotheses


def markdown_table(rows: list[SettingResult]) -> str:
    lines = ["| model | setting | WER | CER | time (s) | RTF | relative time | GMACs / audio s | params |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.model} | {r.setting} | {r.wer:.3f} | {r.cer:.3f} | {r.seconds:.2f} | {r.rtf:.4f} | "
                     f"{r.relative_time:.2f} | {r.gmacs_per_audio_second:.2f} | {r.parameters / 1e6:.1f}M |")
    return "\n".join(lines)


def pareto_front(rows: list[SettingResult], metric: str = "wer") -> list[SettingResult]:
    """Rows no other row beats on both relative time and `metric` (wer or cer), sorted by time."""
    front: list[SettingResult] = []
    for r in sorted(rows, key=lambda r: (r.relative_time, getattr(r, metric))):
        if not front or getattr(r, metric) < getattr(front[-1], metric):
            front.append(r)
    return front


def plot_tradeoff(rows: list[SettingResult], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # WER and CER side by side: a small model's WER sits near 1 while its CER still separates settings
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, metric, label in zip(axes, ("wer", "cer"), ("word error rate", "character error rate")):
        for name in dict.fromkeys(r.model for r in rows):
            mine = sorted((r for r in rows if r.model == name), key=lambda r: r.relative_time)
            ax.plot([r.relative_time for r in mine], [getattr(r, metric) for r in mine], "o-", label=name)
            for r in mine:
                ax.annotate(r.setting, (r.relative_time, getattr(r, metric)), textcoords="offset points",
                            xytext=(4, 4), fontsize=7)
        front = pareto_front(rows, metric)
        ax.plot([r.relative_time for r in front], [getattr(r, metric) for r in front], "k--", lw=1,
                label="Pareto front")
        ax.scatter([r.relative_time for r in front], [getattr(r, metric) for r in front], s=90,
                   facecolors="none", edgecolors="k")
        ax.set_xlabel(f"inference time relative to {rows[0].model} {rows[0].setting}")
        ax.set_ylabel(label)
        ax.set_title(f"{metric.upper()} against inference time, per setting")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_results(rows: list[SettingResult], hypotheses: dict, out: Path, extra: dict | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    payload = {"rows": [asdict(r) for r in rows], "pareto_front": [(r.model, r.setting) for r in pareto_front(rows)],
               "hypotheses": hypotheses, **(extra or {})}
    (out / "results.json").write_text(json.dumps(payload, indent=1))
    (out / "results.md").write_text(markdown_table(rows) + "\n")
    plot_tradeoff(rows, out / "tradeoff.png")
