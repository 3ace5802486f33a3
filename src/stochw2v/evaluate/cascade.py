"""A confidence cascade (`--compression auto`): cheap first, costlier only where the model is unsure.

Every utterance runs at the cheapest setting; one whose CTC confidence (the mean, over the frames
that emit a character, of the highest posterior) is below that stage's threshold runs again at the
next setting, and so on; the last stage's answer is always kept. The conv features do not depend
on the setting, so they are computed once per utterance (`Encoder.front`) and every stage only
runs the context network (`Encoder.back`). `calibrate` chooses the thresholds on a valid split:
the least average compute whose WER meets a target.
"""
from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..audio import SAMPLE_RATE
from ..compute import Compression, count_macs
from ..data import AudioDataset, BucketBatchSampler, Manifest, make_loader
from ..data.error_rates import utterance_errors
from ..data.sampler import EVALUATION_BATCH_SAMPLES
from ..errors import ConfigError, ModelFileError
from ..files import read_json, write_json
from ..model import CTCModel
from ..model.ctc import CTCOutput, greedy_decode
from ..model.encoder import Features
from .references import prepare_references


@dataclass
class CascadeConfig:
    settings: list[str]  # cheapest first
    thresholds: list[float]  # one per stage but the last: run the next stage when confidence < threshold
    target_wer: float | None = None
    valid: dict = field(default_factory=dict)  # what calibration measured on the valid split

    def __post_init__(self) -> None:
        if len(self.settings) < 2:
            raise ConfigError("a cascade needs at least two settings, cheapest first")
        if len(self.thresholds) != len(self.settings) - 1:
            raise ConfigError(f"a cascade of {len(self.settings)} settings needs {len(self.settings) - 1} thresholds")
        for setting in self.settings:
            Compression.parse(setting)

    def save(self, path: Path) -> Path:
        return write_json(Path(path), asdict(self))

    @classmethod
    def load(cls, path: str | Path) -> "CascadeConfig":
        data = read_json(Path(path), "cascade")
        try:
            return cls(list(data["settings"]), [float(t) for t in data["thresholds"]], data.get("target_wer"),
                       data.get("valid", {}))
        except (KeyError, TypeError, ValueError) as error:
            raise ModelFileError(f"{path}: not a cascade from `stochw2v calibrate` ({error})") from None


def confidence(logits: Tensor, lengths: Tensor, blank: int) -> Tensor:
    """[B] mean highest posterior over each item's emitting (non-blank) frames (all frames if none)."""
    probs = logits.float().softmax(-1)
    best, index = probs.max(-1)
    valid = torch.arange(logits.shape[1], device=logits.device)[None] < lengths[:, None]
    emitting = valid & (index != blank)
    use = torch.where(emitting.any(1, keepdim=True), emitting, valid)
    return (best * use).sum(1) / use.sum(1).clamp_min(1)


def _subset(features: Features, rows: Tensor) -> Features:
    lengths = None if features.lengths is None else features.lengths[rows]
    longest = features.projected.shape[1] if lengths is None else int(lengths.max())
    return Features(features.raw[rows, :longest], features.normalized[rows, :longest],
                    features.projected[rows, :longest], None if lengths is None or bool((lengths == longest).all())
                    else lengths)


@dataclass
class CascadeOutput:
    logits: Tensor  # [B, frames, vocabulary]: each item's accepted stage
    lengths: Tensor
    stages: Tensor  # [B] index of the accepted stage


class Cascade:
    """Runs a `CascadeConfig` on a recogniser."""

    def __init__(self, model: CTCModel, config: CascadeConfig) -> None:
        self.model, self.config = model, config
        self.settings = [model.resolve(s) for s in config.settings]

    @torch.inference_mode()
    def __call__(self, waveforms: Tensor, lengths: Tensor | None = None) -> CascadeOutput:
        encoder, blank = self.model.encoder, self.model.vocabulary.blank_id
        features = encoder.front(waveforms, lengths)
        out = self.model.head_logits(encoder.back(features, self.settings[0]))
        logits, out_lengths = out.logits.clone(), out.lengths
        stages = torch.zeros(logits.shape[0], dtype=torch.long)
        pending = torch.arange(logits.shape[0])
        scores = confidence(out.logits, out.lengths, blank).cpu()
        for stage, threshold in enumerate(self.config.thresholds, start=1):
            pending = pending[scores < threshold]
            if len(pending) == 0:
                break
            rows = pending.to(logits.device)
            again = self.model.head_logits(encoder.back(_subset(features, rows), self.settings[stage]))
            logits[rows, : again.logits.shape[1]] = again.logits
            stages[pending] = stage
            scores = confidence(again.logits, again.lengths, blank).cpu()
        return CascadeOutput(logits, out_lengths, stages)

    def decode(self, waveforms: Tensor, lengths: Tensor | None = None) -> tuple[list[str], Tensor]:
        out = self(waveforms, lengths)
        return greedy_decode(out.logits, out.lengths, self.model.vocabulary), out.stages

    def gmacs_per_audio_second(self, stages: Tensor, seconds: float = 10.0) -> float:
        """Average compute of the given stage choices: features once, the context network per stage run."""
        shared, per_stage = stage_costs(self.model, self.settings, seconds)
        return float(shared + np.cumsum(per_stage)[stages.numpy()].mean())

    @property
    def name(self) -> str:
        return "auto(" + " > ".join(self.config.settings) + ")"


def stage_costs(model: CTCModel, settings: list[Compression], seconds: float) -> tuple[float, np.ndarray]:
    """GMACs per audio second of what all stages share (conv encoder and projection, computed once) and
    of each stage's own part (context network, upsampler, CTC head)."""
    encoder = model.encoder
    frames = encoder.num_frames(int(seconds * SAMPLE_RATE))
    costs = [count_macs(encoder, s, seconds) for s in settings]
    projection = frames * encoder.config.conv_dim * encoder.config.dim if encoder.config.feature_projection else 0
    shared = costs[0].conv_encoder + projection
    head = frames * model.head.weight.numel()
    own = np.array([c.total - shared + head for c in costs], dtype=float)
    return shared / seconds / 1e9, own / seconds / 1e9


@dataclass
class Measurements:
    """Per utterance and setting: word errors, reference words, confidence."""

    errors: np.ndarray  # [utterances, settings]
    words: np.ndarray  # [utterances]
    confidence: np.ndarray  # [utterances, settings]
    gmacs: np.ndarray  # [settings] context-network GMACs per audio second (conv excluded)
    conv_gmacs: float


def measure(model: CTCModel, manifest: Manifest, settings: list[Compression]) -> Measurements:
    """Run every setting over the manifest once (features shared), keeping what calibration needs."""
    references = prepare_references(manifest, {"model": model})
    dataset = AudioDataset(manifest)
    batch_samples = max(EVALUATION_BATCH_SAMPLES, max(manifest.num_samples))
    sampler = BucketBatchSampler(dataset.sizes(), batch_samples, shuffle=False)
    device = next(model.parameters()).device
    rows: dict[str, tuple[list[int], list[float]]] = {}
    model.eval()
    with torch.inference_mode():
        for batch in make_loader(dataset, sampler):
            features = model.encoder.front(batch.waveforms.to(device), batch.lengths.to(device))
            outs: list[CTCOutput] = [model.head_logits(model.encoder.back(features, s)) for s in settings]
            texts = [greedy_decode(o.logits, o.lengths, model.vocabulary) for o in outs]
            scores = [confidence(o.logits, o.lengths, model.vocabulary.blank_id).tolist() for o in outs]
            for i, utt in enumerate(batch.ids):
                counts = utterance_errors([references[utt]] * len(settings), [t[i] for t in texts])
                rows[utt] = ([c.word_errors for c in counts], [s[i] for s in scores])
    order = list(references)
    shared, own = stage_costs(model, settings, manifest.total_seconds / len(manifest))
    return Measurements(np.array([rows[u][0] for u in order], dtype=float),
                        np.array([len(references[u].split()) for u in order], dtype=float),
                        np.array([rows[u][1] for u in order], dtype=float), own, shared)


def simulate(m: Measurements, thresholds: tuple[float, ...]) -> tuple[float, float, np.ndarray]:
    """(WER, average GMACs per audio second, accepted stage per utterance) for these thresholds."""
    stage = np.full(len(m.words), len(thresholds), dtype=int)
    undecided = np.ones(len(m.words), dtype=bool)
    for k, threshold in enumerate(thresholds):
        accept = undecided & (m.confidence[:, k] >= threshold)
        stage[accept] = k
        undecided &= ~accept
    errors = m.errors[np.arange(len(stage)), stage].sum()
    cost = m.conv_gmacs + np.cumsum(m.gmacs)[stage].mean()
    return errors / max(m.words.sum(), 1.0), float(cost), stage


def calibrate(m: Measurements, target_wer: float, grid: int = 21) -> tuple[tuple[float, ...], float, float]:
    """The thresholds with the least average compute whose WER is <= target (else the lowest WER)."""
    candidates = []
    for k in range(m.confidence.shape[1] - 1):
        quantiles = np.quantile(m.confidence[:, k], np.linspace(0, 1, grid))
        candidates.append(sorted(set(np.round(quantiles, 6).tolist()) | {0.0, 1.01}))
    best = None
    for thresholds in itertools.product(*candidates):
        wer, cost, _ = simulate(m, thresholds)
        key = (0, cost, wer) if wer <= target_wer + 1e-12 else (1, wer, cost)
        if best is None or key < best[0]:
            best = (key, thresholds, wer, cost)
    return best[1], best[2], best[3]


__all__ = ["Cascade", "CascadeConfig", "CascadeOutput", "Measurements", "calibrate", "confidence", "measure",
           "simulate", "stage_costs"]
