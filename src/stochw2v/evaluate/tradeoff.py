"""`stochw2v evaluate`: WER, CER, time and compute of every setting of one or more recognisers.

Timing protocol (stated in every output): audio is decoded into batches once; every
(model, setting) first runs one full untimed pass over all batches; then `repeats` timed passes
follow with the settings interleaved, and the median is reported. Encoder time (the model's
forward, CTC head included) and decoding time (greedy or beam search) are measured separately;
relative time compares encoder times. WER and CER come with 95% bootstrap intervals over
utterances, so a reader can tell which differences are noise.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
from tqdm import tqdm

from ..audio import SAMPLE_RATE
from ..compute.compression import Compression
from ..compute.macs import count_macs
from ..data import AudioDataset, Batch, BucketBatchSampler, Manifest, make_loader
from ..data.error_rates import ErrorCounts, error_rates, utterance_errors
from ..data.sampler import EVALUATION_BATCH_SAMPLES
from ..errors import ConfigError
from ..model import count_parameters
from ..model.ctc import CTCModel
from .cascade import Cascade, CascadeConfig
from .decoding import DEFAULT_BEAM_WIDTH, BeamDecoder, greedy_decode
from .references import prepare_references
from .statistics import bootstrap_interval, mean_paired_difference_interval
from .timing import Clock, interleave, thread_note

DEFAULT_SQUEEZES = ("s=1", "s=2", "s=3", "s=4")


@dataclass
class SettingResult:
    model: str
    setting: str
    wer: float
    wer_low: float  # 95% bootstrap interval over utterances
    wer_high: float
    cer: float
    cer_low: float
    cer_high: float
    encoder_seconds: float  # median over repeats, whole manifest, forward incl. the CTC head
    decode_seconds: float  # median over repeats, whole manifest
    rtf: float  # encoder seconds / audio seconds
    relative_time: float  # encoder seconds against the first row's
    gmacs_per_audio_second: float
    parameters: int
    utterances: int
    trained: bool  # the model's training distribution draws this setting
    decoder: str = "greedy"


@dataclass
class Evaluation:
    rows: list[SettingResult]
    hypotheses: dict[str, dict[str, dict[str, str]]]  # model -> setting -> utterance id -> text
    utterance_counts: dict[str, dict[str, list[ErrorCounts]]] = field(default_factory=dict)
    protocol: str = ""


def default_settings(model: CTCModel) -> list[Compression]:
    """The settings the model was trained on (its policy's representatives); s=1..4 where unknown."""
    trained = model.trained_settings
    candidates = [Compression.parse(s) for s in (trained or DEFAULT_SQUEEZES)]
    runnable = []
    for setting in dict.fromkeys(candidates):
        try:
            model.encoder.config.resolve(setting)
        except ConfigError:
            continue
        runnable.append(setting)
    return runnable


def decode_pass(model: CTCModel, batches: list[Batch], setting: Compression | Cascade, decoder, clock: Clock):
    """Hypotheses by utterance id, encoder and decoding seconds of one pass, and (cascades) accepted stages."""
    hypotheses, encoder_s, decode_s, stages = {}, 0.0, 0.0, []
    cuda = next(model.parameters()).device.type == "cuda"
    with torch.inference_mode():
        for batch in batches:
            start = clock()
            if isinstance(setting, Cascade):
                out = setting(batch.waveforms, batch.lengths)
                stages.append(out.stages)
            else:
                out = model(batch.waveforms, batch.lengths, setting)
            if cuda:
                torch.cuda.synchronize()
            middle = clock()
            texts = decoder(out.logits, out.lengths) if decoder else greedy_decode(out.logits, out.lengths,
                                                                                   model.vocabulary)
            decode_s += clock() - middle
            encoder_s += middle - start
            hypotheses.update(zip(batch.ids, texts))
    return hypotheses, encoder_s, decode_s, torch.cat(stages) if stages else None


def _check_settings(models: dict[str, CTCModel], per_model: dict[str, list[Compression]]) -> None:
    for name, model in models.items():
        model.eval()
        for setting in per_model[name]:
            try:
                model.encoder.config.resolve(setting)
            except ConfigError as error:
                raise ConfigError(f"{name}: {error}") from None


def evaluate_models(models: dict[str, CTCModel], manifest: Manifest,
                    settings: list[Compression] | dict[str, list[Compression]] | None = None,
                    repeats: int = 3, max_samples: int = EVALUATION_BATCH_SAMPLES, beam: dict | None = None,
                    progress: bool = True, clock: Clock = time.perf_counter,
                    cascades: dict[str, CascadeConfig] | None = None) -> Evaluation:
    """Every model at every setting (and at its confidence cascade, when given one), timed by the
    protocol in the module docstring. `settings`: one list for every model, a list per model name,
    or None for each model's trained ones. Models compared by time belong in one call: their passes
    are interleaved, so a change in the machine's load falls on all of them."""
    if repeats < 1:
        raise ConfigError(f"--repeats must be >= 1, got {repeats}")
    references = prepare_references(manifest, models)
    chosen = settings if isinstance(settings, dict) else {name: settings for name in models}
    per_model = {name: chosen.get(name) or default_settings(model) for name, model in models.items()}
    _check_settings(models, per_model)
    dataset = AudioDataset(manifest)
    sampler = BucketBatchSampler(dataset.sizes(), max(max_samples, max(manifest.num_samples)), shuffle=False)
    device = {name: next(m.parameters()).device for name, m in models.items()}
    loaded = list(make_loader(dataset, sampler))  # read once, whatever the number of models
    batches = {name: [b.to(device[name]) for b in loaded] for name in models}
    decoders = {name: BeamDecoder(m.vocabulary, **beam) if beam else None for name, m in models.items()}

    keys: list[tuple[str, Compression | Cascade]] = [(name, s) for name in models for s in per_model[name]]
    keys += [(name, Cascade(models[name], config)) for name, config in (cascades or {}).items()]
    bar = tqdm(total=(repeats + 1) * len(keys), desc="evaluate", disable=not progress, leave=False)

    def job(name: str, setting: Compression | Cascade) -> Callable[[], tuple]:
        def run() -> tuple:
            result = decode_pass(models[name], batches[name], setting, decoders[name], clock)
            bar.update()
            return result
        return run

    runs = interleave({key: job(*key) for key in keys}, repeats, warmup=1)
    bar.close()
    return _summarise(models, manifest, references, runs, beam)


def gmacs_per_audio_second(model: CTCModel, setting: Compression | Cascade, mean_seconds: float, stages) -> float:
    """GMACs per audio second of a setting, or of a cascade's average over its accepted stages."""
    if isinstance(setting, Cascade):
        return setting.gmacs_per_audio_second(stages, mean_seconds)
    macs = count_macs(model.encoder, setting, mean_seconds).total
    macs += model.encoder.num_frames(int(mean_seconds * SAMPLE_RATE)) * model.head.weight.numel()
    return macs / mean_seconds / 1e9


def _summarise(models: dict[str, CTCModel], manifest: Manifest, references: dict[str, str],
               runs: dict[tuple, list[tuple]], beam: dict | None) -> Evaluation:
    audio_seconds = manifest.total_seconds
    mean_seconds = audio_seconds / len(manifest)
    order = list(references)
    baseline = statistics.median(r[1] for r in runs[next(iter(runs))])
    evaluation = Evaluation([], {name: {} for name in models}, {name: {} for name in models})
    width = beam.get("beam_width", DEFAULT_BEAM_WIDTH) if beam else 0
    decoder = "greedy" if not beam else f"beam {width}" + (" + LM" if beam.get("lm") else "")
    for (name, setting), results in runs.items():
        model, texts = models[name], results[-1][0]
        label = setting.name if isinstance(setting, Cascade) else str(setting)
        hyps = [texts[utt] for utt in order]
        counts = utterance_errors([references[u] for u in order], hyps)
        total = error_rates([references[u] for u in order], hyps)
        encoder_s = statistics.median(r[1] for r in results)
        decode_s = statistics.median(r[2] for r in results)
        trained = True if isinstance(setting, Cascade) else model.config.was_trained_on(setting)
        evaluation.rows.append(SettingResult(
            name, label, total.wer, *bootstrap_interval(counts, "wer"), total.cer,
            *bootstrap_interval(counts, "cer"), encoder_s, decode_s, encoder_s / audio_seconds,
            encoder_s / baseline, gmacs_per_audio_second(model, setting, mean_seconds, results[-1][3]),
            count_parameters(model),
            len(manifest), trained, decoder))
        evaluation.hypotheses[name][label] = texts
        evaluation.utterance_counts[name][label] = counts
    first = evaluation.rows[0]
    evaluation.protocol = (f"{thread_note()}; one untimed pass per setting, then {len(next(iter(runs.values())))} "
                           f"interleaved timed passes, median; relative time = encoder time / "
                           f"{first.model} {first.setting}'s; 95% bootstrap intervals over {len(order)} utterances")
    return evaluation


def markdown_table(rows: list[SettingResult]) -> str:
    lines = ["| model | setting | WER [95% CI] | CER [95% CI] | encoder s | decode s | RTF | relative time | "
             "GMACs / audio s | params |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        flag = "" if r.trained else " (untrained)"
        lines.append(f"| {r.model} | {r.setting}{flag} | {r.wer:.3f} [{r.wer_low:.3f}, {r.wer_high:.3f}] | "
                     f"{r.cer:.3f} [{r.cer_low:.3f}, {r.cer_high:.3f}] | {r.encoder_seconds:.2f} | "
                     f"{r.decode_seconds:.2f} | {r.rtf:.4f} | {r.relative_time:.2f} | "
                     f"{r.gmacs_per_audio_second:.2f} | {r.parameters / 1e6:.1f}M |")
    return "\n".join(lines)


def find_row(evaluation: Evaluation, model: str, setting: str) -> SettingResult | None:
    return next((r for r in evaluation.rows if r.model == model and r.setting == setting), None)


def paired_difference(evaluation: Evaluation, a: str, setting_a: str, b: str, setting_b: str, metric: str) -> str:
    """metric(b) - metric(a) with its paired 95% interval on the same utterances, and whether it is noise."""
    return mean_paired_difference(evaluation, [(a, setting_a, b, setting_b)], metric)


def mean_paired_difference(evaluation: Evaluation, pairs: list[tuple[str, str, str, str]], metric: str) -> str:
    """The mean over pairs (model a, setting a, model b, setting b) of metric(b) - metric(a), e.g. one
    pair per seed, with its paired 95% interval over utterances and whether it is noise."""
    counts = [(evaluation.utterance_counts.get(a, {}).get(sa), evaluation.utterance_counts.get(b, {}).get(sb))
              for a, sa, b, sb in pairs]
    if not pairs or any(ca is None or cb is None for ca, cb in counts):
        return "n/a"
    low, high = mean_paired_difference_interval(counts, metric)
    diff = statistics.fmean(getattr(find_row(evaluation, b, sb), metric) - getattr(find_row(evaluation, a, sa), metric)
                            for a, sa, b, sb in pairs)
    verdict = "not distinguishable from 0" if low <= 0 <= high else ("higher" if low > 0 else "lower")
    return f"{diff:+.3f} [{low:+.3f}, {high:+.3f}] ({verdict})"


def differences_table(evaluation: Evaluation) -> str:
    """Each setting against its model's first, paired over utterances: is a cheaper setting's loss
    above the noise? (Intervals of two separate rows overlap long before a paired difference is noise.)"""
    lines = ["| model | setting | vs | CER difference [95% CI] | WER difference [95% CI] |", "|---|---|---|---|---|"]
    for model in dict.fromkeys(r.model for r in evaluation.rows):
        rows = [r for r in evaluation.rows if r.model == model]
        for r in rows[1:]:
            lines.append(f"| {model} | {r.setting} | {rows[0].setting} | "
                         f"{paired_difference(evaluation, model, rows[0].setting, model, r.setting, 'cer')} | "
                         f"{paired_difference(evaluation, model, rows[0].setting, model, r.setting, 'wer')} |")
    return "\n".join(lines) if len(lines) > 2 else ""


def pareto_front(rows: list[SettingResult], metric: str = "wer") -> list[SettingResult]:
    """Rows no other row beats on both relative time and `metric` (wer or cer), sorted by time."""
    front: list[SettingResult] = []
    for r in sorted(rows, key=lambda r: (r.relative_time, getattr(r, metric))):
        if not front or getattr(r, metric) < getattr(front[-1], metric):
            front.append(r)
    return front


def results_payload(evaluation: Evaluation, extra: dict | None = None) -> dict:
    rows = evaluation.rows
    return {"protocol": evaluation.protocol, "rows": [asdict(r) for r in rows],
            "pareto_front": {m: [(r.model, r.setting) for r in pareto_front(rows, m)] for m in ("wer", "cer")},
            "hypotheses": evaluation.hypotheses, **(extra or {})}


__all__ = ["DEFAULT_SQUEEZES", "Evaluation", "SettingResult", "decode_pass", "default_settings", "differences_table",
           "evaluate_models", "find_row", "gmacs_per_audio_second", "markdown_table", "mean_paired_difference",
           "paired_difference", "pareto_front", "prepare_references", "results_payload"]
