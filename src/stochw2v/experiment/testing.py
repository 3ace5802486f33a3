"""An arm's test evaluation at one point of its curve: error counts per utterance at each setting,
kept beside the run so that the claims can be paired over utterances and over seeds later."""
from __future__ import annotations

import json
import time
from pathlib import Path

from ..compute import Compression
from ..data import AudioDataset, BucketBatchSampler, Manifest, make_loader
from ..data.error_rates import ErrorCounts, error_rates, utterance_errors
from ..data.sampler import EVALUATION_BATCH_SAMPLES
from ..evaluate.tradeoff import decode_pass, gmacs_per_audio_second, prepare_references
from ..files import write_json
from ..model import CTCModel


def scores_path(run: Path, updates: int) -> Path:
    return run / f"test-{updates}.json"

def score_on_test(model: CTCModel, manifest: Manifest, settings: tuple[str, ...], out: Path) -> dict:
    """Greedy error counts of `model` at each setting on `manifest`, written to `out` (JSON)."""
    references = prepare_references(manifest, {"model": model})
    order = list(references)
    dataset = AudioDataset(manifest)
    sampler = BucketBatchSampler(dataset.sizes(), max(EVALUATION_BATCH_SAMPLES, max(manifest.num_samples)),
                                 shuffle=False)
    batches = list(make_loader(dataset, sampler))
    mean_seconds = manifest.total_seconds / len(manifest)
    was_training = model.training
    model.eval()
    results = {}
    for text in settings:
        setting = Compression.parse(text)
        hypotheses = decode_pass(model, batches, setting, None, time.perf_counter)[0]
        hyps = [hypotheses[utt] for utt in order]
        refs = [references[utt] for utt in order]
        total = error_rates(refs, hyps)
        results[text] = {"cer": total.cer, "wer": total.wer,
                         "gmacs_per_audio_second": gmacs_per_audio_second(model, setting, mean_seconds, None),
                         "counts": [[c.word_errors, c.words, c.char_errors, c.chars]
                                    for c in utterance_errors(refs, hyps)]}
    model.train(was_training)
    write_json(out, {"utterances": order, "settings": results})
    return results

def read_counts(path: Path) -> dict[str, list[ErrorCounts]]:
    """Per-utterance error counts by setting, from a test file."""
    data = json.loads(path.read_text())
    return {setting: [ErrorCounts(*row) for row in result["counts"]] for setting, result in data["settings"].items()}

def read_test(path: Path) -> dict:
    return json.loads(path.read_text())

__all__ = ["read_counts", "read_test", "scores_path", "score_on_test"]

