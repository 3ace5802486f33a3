"""CTC decoding: greedy (batched, padding-aware) and beam search with an optional n-gram LM.

Beam search is pyctcdecode's; the LM is any ARPA or KenLM binary file (`stochw2v lm build` writes
one). The LM is checked before decoding starts: readable, and spelled in the model's characters.
"""
from __future__ import annotations

import math
import multiprocessing
import warnings
from pathlib import Path

import numpy as np
from torch import Tensor

from ..data.text import BLANK, WORD_SEPARATOR, Vocabulary
from ..errors import ConfigError, MissingFileError
from ..model.ctc import greedy_decode

__all__ = ["DEFAULT_BEAM_PRUNE_LOGP", "DEFAULT_TOKEN_MIN_LOGP", "DEFAULT_UNKNOWN_WORD_SCORE", "BeamDecoder",
           "arpa_unigrams", "greedy_decode", "load_kenlm"]

LM_FILE = "lm.arpa"
DEFAULT_UNKNOWN_WORD_SCORE = -10.0  # pyctcdecode's own default
DEFAULT_TOKEN_MIN_LOGP, DEFAULT_BEAM_PRUNE_LOGP = -5.0, -10.0  # pyctcdecode's own defaults
DEFAULT_BEAM_WIDTH = 50
DEFAULT_LM_WEIGHT, DEFAULT_WORD_SCORE = 0.5, 1.0  # pyctcdecode's alpha and beta


class BeamDecoder:
    """Beam search over CTC outputs; with `lm`, shallow fusion with an n-gram LM.

    lm_weight is pyctcdecode's alpha (LM log-probability scale), word_score its beta (added per word),
    unknown_word_score its unk_score_offset: added for a word, or a word begun, that the LM does not list.
    Lower is a stricter lexicon; a large negative value such as -1000 allows only the LM's words.
    token_min_logp and beam_prune_logp bound the search (pyctcdecode's names): a character is tried only
    where its log-probability is above the first, and a beam is kept only within the second of the best.
    workers > 1 decodes the utterances of one call in that many forked processes (the same texts, in
    order); where fork is missing (Windows, macOS's default) or a call holds one utterance, it runs here.
    """

    def __init__(self, vocabulary: Vocabulary, beam_width: int = DEFAULT_BEAM_WIDTH, lm: str | Path | None = None,
                 lm_weight: float = DEFAULT_LM_WEIGHT, word_score: float = DEFAULT_WORD_SCORE,
                 unknown_word_score: float = DEFAULT_UNKNOWN_WORD_SCORE,
                 token_min_logp: float = DEFAULT_TOKEN_MIN_LOGP,
                 beam_prune_logp: float = DEFAULT_BEAM_PRUNE_LOGP, workers: int = 1) -> None:
        for name, value in (("--beam", beam_width), ("--decode-workers", workers)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
        for name, value in (("--token-min-logp", token_min_logp), ("--beam-prune-logp", beam_prune_logp)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value < 0):
                raise ConfigError(f"{name} must be a negative log-probability, got {value!r}")
        from pyctcdecode import Alphabet, BeamSearchDecoderCTC, LanguageModel

        labels = ["" if t == BLANK else " " if t == WORD_SEPARATOR else t for t in vocabulary.tokens]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pyctcdecode's notes on label spelling
            alphabet = Alphabet.build_alphabet(labels)
        language_model = None
        if lm is not None:
            path, model = load_kenlm(Path(lm))
            unigrams = arpa_unigrams(path) if path.suffix == ".arpa" else None
            if unigrams is not None:
                check_lm_alphabet(path, unigrams, vocabulary)
            language_model = LanguageModel(model, unigrams, alpha=lm_weight, beta=word_score,
                                           unk_score_offset=unknown_word_score)
        self.search = {"beam_width": beam_width, "token_min_logp": float(token_min_logp),
                       "beam_prune_logp": float(beam_prune_logp)}
        self.decoder = BeamSearchDecoderCTC(alphabet, language_model)
        self.workers = workers if "fork" in multiprocessing.get_all_start_methods() else 1

    def set_weights(self, lm_weight: float, word_score: float,
                    unknown_word_score: float = DEFAULT_UNKNOWN_WORD_SCORE) -> None:
        """Change the LM's weights without reloading it (`stochw2v lm tune`)."""
        self.decoder.reset_params(alpha=lm_weight, beta=word_score, unk_score_offset=unknown_word_score)

    def __call__(self, logits: Tensor, lengths: Tensor) -> list[str]:
        log_probs = logits.float().log_softmax(-1).cpu().numpy()
        return self.decode_log_probs([lp[:n] for lp, n in zip(log_probs, lengths.tolist())])

    def decode_log_probs(self, log_probs: list[np.ndarray]) -> list[str]:
        """Texts of unpadded [frames, vocabulary] log-probability arrays, in their order.

        The pool is forked per call, so it always sees the weights of the latest `set_weights` (pyctcdecode
        keeps the LM in a class-level table that a forked process inherits and a pickled decoder points to)."""
        workers = min(self.workers, len(log_probs))
        if workers > 1:
            with multiprocessing.get_context("fork").Pool(workers) as pool:
                texts = self.decoder.decode_batch(pool, log_probs, **self.search)
        else:
            texts = [self.decoder.decode(lp, **self.search) for lp in log_probs]
        return [" ".join(text.split()) for text in texts]


def load_kenlm(path: Path):
    """(file, kenlm.Model) from an ARPA or binary file, or a folder holding lm.arpa; clear errors otherwise."""
    if path.is_dir():
        path = path / LM_FILE
    if not path.exists():
        raise MissingFileError(f"{path}: language model file not found")
    try:
        import kenlm
    except ImportError:
        raise ConfigError("an n-gram LM needs kenlm (pip install kenlm)") from None
    try:
        return path, kenlm.Model(str(path))
    except Exception as error:  # noqa: BLE001 - kenlm raises OSError or its own exception types
        detail = str(error).strip().splitlines()[0][:160] if str(error).strip() else type(error).__name__
        raise ConfigError(f"{path}: not a readable ARPA or KenLM binary language model ({detail})") from None


def arpa_unigrams(path: Path) -> list[str]:
    """The words of an ARPA file's 1-gram section (pyctcdecode scores partial words against them)."""
    words, inside = [], False
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            line = line.strip()
            if line == "\\1-grams:":
                inside = True
            elif inside and line.startswith("\\"):
                break
            elif inside and line:
                parts = line.split("\t")
                if len(parts) >= 2 and parts[1] not in ("<s>", "</s>", "<unk>"):
                    words.append(parts[1])
    return words


def check_lm_alphabet(path: Path, words: list[str], vocabulary: Vocabulary) -> None:
    """An LM spelled in other characters (lower case, another script) would silently never match."""
    letters = {t for t in vocabulary.tokens if len(t) == 1} - {WORD_SEPARATOR}
    foreign = sorted({c for w in words for c in w} - letters)
    if not words:
        raise ConfigError(f"{path}: the LM lists no words")
    if foreign:
        outside = sum(any(c not in letters for c in w) for w in words)
        raise ConfigError(f"{path}: {outside} of the LM's {len(words)} words use characters the model cannot "
                          f"emit: {''.join(foreign[:20])!r} (the model spells {''.join(sorted(letters))!r}); "
                          "build the LM from normalised transcripts (stochw2v lm build)")
