"""`stochw2v lm tune`: the LM weight, word score and unknown-word score with the lowest WER on a valid split.

The acoustic model runs once; every (weight, score) pair of the grid re-decodes its outputs.
The choice is written next to the LM (decoding.json), and `--lm DIR` uses it from then on.
"""
from __future__ import annotations

from pathlib import Path

import torch
from tqdm import tqdm

from ..compute import Compression
from ..data import AudioDataset, BucketBatchSampler, Manifest, make_loader
from ..data.error_rates import error_rates
from ..data.sampler import EVALUATION_BATCH_SAMPLES
from ..files import write_json
from ..model import CTCModel
from .decoding import DEFAULT_BEAM_PRUNE_LOGP, DEFAULT_TOKEN_MIN_LOGP, DEFAULT_UNKNOWN_WORD_SCORE, BeamDecoder
from .references import prepare_references


def tune_lm(model: CTCModel, manifest: Manifest, lm: Path, setting: Compression, beam: int,
            weights: list[float], scores: list[float], unknown_scores: list[float] | None = None,
            token_min_logp: float = DEFAULT_TOKEN_MIN_LOGP, beam_prune_logp: float = DEFAULT_BEAM_PRUNE_LOGP,
            progress: bool = True, workers: int = 1) -> dict:
    references = prepare_references(manifest, {"model": model})
    dataset = AudioDataset(manifest)
    batch_samples = max(EVALUATION_BATCH_SAMPLES, max(manifest.num_samples))
    sampler = BucketBatchSampler(dataset.sizes(), batch_samples, shuffle=False)
    outputs = []
    model.eval()
    with torch.inference_mode():
        for batch in make_loader(dataset, sampler):
            out = model(batch.waveforms.to(next(model.parameters()).device), batch.lengths, setting)
            log_probs = out.logits.float().log_softmax(-1).cpu().numpy()
            outputs += [(u, lp[:n]) for u, lp, n in zip(batch.ids, log_probs, out.lengths.tolist())]
    ids, log_probs = [u for u, _ in outputs], [lp for _, lp in outputs]
    unknown_scores = unknown_scores or [DEFAULT_UNKNOWN_WORD_SCORE]
    decoder = BeamDecoder(model.vocabulary, beam, lm, weights[0], scores[0], unknown_scores[0], token_min_logp,
                          beam_prune_logp, workers)
    points = [(w, s, u) for w in weights for s in scores for u in unknown_scores]
    grid = []
    for weight, score, unknown in tqdm(points, desc="lm tune", disable=not progress, leave=False):
        decoder.set_weights(weight, score, unknown)
        hypotheses = dict(zip(ids, decoder.decode_log_probs(log_probs)))
        counts = error_rates([references[u] for u in references], [hypotheses[u] for u in references])
        grid.append({"lm_weight": weight, "word_score": score, "unknown_word_score": unknown,
                     "wer": counts.wer, "cer": counts.cer})
    best = min(grid, key=lambda g: (g["wer"], g["cer"]))
    result = {"lm_weight": best["lm_weight"], "word_score": best["word_score"],
              "unknown_word_score": best["unknown_word_score"], "beam": beam,
              "token_min_logp": token_min_logp, "beam_prune_logp": beam_prune_logp,
              "valid_wer": best["wer"], "valid_cer": best["cer"], "setting": str(setting),
              "manifest": str(manifest.source), "grid": grid}
    write_json(Path(lm) / "decoding.json", result)
    return result


__all__ = ["tune_lm"]
