"""Word n-gram language models for CTC beam search: interpolated modified Kneser-Ney, written as ARPA.

Why our own estimator: KenLM's `lmplz` (the usual tool) is not installable from PyPI (the `kenlm`
package only queries models) and no maintained pure-Python estimator writes ARPA files. This one
follows Chen & Goodman (1998): three discounts per order from the count-of-counts, continuation
counts below the highest order, interpolation with the uniform distribution at the bottom. That
uniform floor spans the text's words plus any extra words of a vocabulary file (a dictionary): a
word the text never had then gets its share instead of <unk>'s, and a beam search may spell it. The
interpolated model is exact in ARPA's backoff form: a listed n-gram carries its interpolated
probability and a context's backoff weight is its interpolation weight. kenlm and pyctcdecode
read the file; tests check that every context's distribution sums to one.
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from ..data.text import normalize_text
from ..errors import ConfigError, MissingFileError, ModelFileError
from ..files import atomic_write, ensure_writable_folder, read_json, write_json

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
ARPA_FILE, META_FILE = "lm.arpa", "lm.json"


@dataclass
class NGramModel:
    order: int
    probs: list[dict[tuple[str, ...], float]]  # per order: n-gram -> log10 probability
    backoffs: list[dict[tuple[str, ...], float]]  # per order: context n-gram -> log10 backoff weight

    def to_arpa(self) -> str:
        lines = ["\\data\\"] + [f"ngram {k + 1}={len(self.probs[k])}" for k in range(self.order)] + [""]
        for k in range(self.order):
            lines.append(f"\\{k + 1}-grams:")
            for gram in sorted(self.probs[k]):
                bow = self.backoffs[k].get(gram)
                text = f"{self.probs[k][gram]:.6f}\t{' '.join(gram)}"
                lines.append(text + (f"\t{bow:.6f}" if bow is not None and k < self.order - 1 else ""))
            lines.append("")
        lines.append("\\end\\")
        return "\n".join(lines) + "\n"


def _read_text(path: Path, what: str, expected: str) -> str:
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: no such {what}")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file (give {expected})") from None


def read_sentences(path: Path) -> list[list[str]]:
    """Normalised words of each non-empty line (as training normalises transcripts)."""
    text = _read_text(path, "text file", "transcripts, one sentence per line")
    sentences = [s for s in (normalize_text(line).split() for line in text.splitlines()) if s]
    if not sentences:
        raise ConfigError(f"{path}: holds no words to build a language model from")
    return sentences


def read_vocabulary(path: Path) -> set[str]:
    """Extra words for the LM to know: whitespace-separated words of a file (a dictionary such as
    Debian's /usr/share/dict/american-english), normalised as transcripts are."""
    text = _read_text(path, "vocabulary file", "words, one per line")
    words = {word for token in text.split() for word in normalize_text(token).split()}
    if not words:
        raise ConfigError(f"{path}: holds no words")
    return words


def _discounts(counts: Counter) -> tuple[float, float, float]:
    """D1, D2, D3+ from the count-of-counts (Chen & Goodman), with a fallback for tiny corpora."""
    n = Counter(c for c in counts.values() if c <= 4)
    if min(n[1], n[2], n[3], n[4]) == 0:
        return 0.5, 1.0, 1.5
    y = n[1] / (n[1] + 2 * n[2])
    return tuple(max(0.0, min(float(i), i - (i + 1) * y * n[i + 1] / n[i])) for i in (1, 2, 3))  # type: ignore


def _adjusted_counts(sentences: list[list[str]], order: int) -> list[Counter]:
    """Raw counts at the highest order (and for n-grams starting with <s>); continuation counts below."""
    raw = [Counter() for _ in range(order)]
    for words in sentences:
        padded = [BOS] + words + [EOS]
        for k in range(1, order + 1):
            for i in range(len(padded) - k + 1):
                raw[k - 1][tuple(padded[i:i + k])] += 1
    adjusted = [Counter() for _ in range(order)]
    adjusted[order - 1] = raw[order - 1]
    for k in range(order - 1, 0, -1):
        left = Counter(gram[1:] for gram in raw[k])  # distinct words seen before each lower n-gram
        adjusted[k - 1] = Counter({gram: (count if gram[0] == BOS else left[gram])
                                   for gram, count in raw[k - 1].items()})
    return adjusted


def build_ngram(sentences: list[list[str]], order: int = 3, extra_words: set[str] = frozenset()) -> NGramModel:
    """`extra_words`: words to list (with the uniform share of unigram probability) though the text lacks them."""
    if not 2 <= order <= 6:
        raise ConfigError(f"--order must be between 2 and 6 (kenlm reads bigrams and up), got {order}")
    counts = _adjusted_counts(sentences, order)
    seen = {gram[0] for gram in counts[0]}
    unseen = sorted(set(extra_words) - seen - {BOS, EOS, UNK})
    vocabulary = (seen | set(unseen) | {UNK}) - {BOS}  # what can follow a context
    probs: list[dict[tuple[str, ...], float]] = [dict() for _ in range(order)]
    backoffs: list[dict[tuple[str, ...], float]] = [dict() for _ in range(order)]
    lower: dict[tuple[str, ...], float] = {}  # interpolated probabilities of the order below (linear)
    for k in range(order):
        d1, d2, d3 = _discounts(counts[k])
        totals: dict[tuple[str, ...], float] = defaultdict(float)
        kinds: dict[tuple[str, ...], list[int]] = defaultdict(lambda: [0, 0, 0])
        for gram, count in counts[k].items():
            if gram[-1] == BOS:
                continue
            totals[gram[:-1]] += count
            kinds[gram[:-1]][min(count, 3) - 1] += 1
        gamma = {h: (d1 * n[0] + d2 * n[1] + d3 * n[2]) / totals[h] for h, n in kinds.items()}
        current: dict[tuple[str, ...], float] = {}
        grams = list(counts[k]) + ([(UNK,)] + [(w,) for w in unseen] if k == 0 else [])
        for gram in grams:
            if gram[-1] == BOS:
                continue
            count, context = counts[k].get(gram, 0), gram[:-1]
            discount = (0.0, d1, d2, d3)[min(count, 3)]
            below = 1.0 / len(vocabulary) if k == 0 else lower.get(gram[1:], 0.0)
            if k > 0 and gram[1:] not in lower:
                below = _backed_off(gram[1:], lower, backoffs, k - 1, len(vocabulary))
            current[gram] = max(count - discount, 0.0) / totals[context] + gamma[context] * below
        probs[k] = {g: math.log10(p) for g, p in current.items()}
        if k == 0:
            probs[0][(BOS,)] = -99.0
        if k > 0:
            backoffs[k - 1] = {h: math.log10(g) for h, g in gamma.items() if g > 0}
        lower = current
    return NGramModel(order, probs, backoffs)


def _backed_off(gram: tuple[str, ...], probs: dict, backoffs: list, k: int, vocab: int) -> float:
    """Linear probability of an n-gram the table lacks, by backing off (rare: only at corpus edges)."""
    bow = 10 ** backoffs[k - 1].get(gram[:-1], 0.0) if k > 0 else 1.0
    return bow * (probs.get(gram[1:], 1.0 / vocab) if k > 0 else 1.0 / vocab)


def write_lm(sentences: list[list[str]], order: int, out: Path, source: str,
             extra_words: set[str] = frozenset(), vocabulary_source: str | None = None) -> Path:
    """lm.arpa and lm.json (what it was built from) in folder `out`."""
    model = build_ngram(sentences, order, extra_words)
    folder = ensure_writable_folder(Path(out), "language model folder")
    atomic_write(folder / ARPA_FILE, model.to_arpa().encode())
    text_words = {w for s in sentences for w in s}
    write_json(folder / META_FILE, {"order": order, "source": source, "sentences": len(sentences),
                                    "words": sum(len(s) for s in sentences),
                                    "vocabulary": vocabulary_source,
                                    "words_only_in_vocabulary": len(set(extra_words) - text_words),
                                    "ngrams": [len(p) for p in model.probs]})
    return folder / ARPA_FILE


DECODING_FILE = "decoding.json"
MAX_BEAM = 10_000  # wider beams than this take minutes per utterance: a typo, not a setting
# decoding.json's values: (low, high) bounds, None where open
TUNED_BOUNDS = {"lm_weight": (0.0, None), "word_score": (None, None), "unknown_word_score": (None, None),
                "token_min_logp": (None, 0.0), "beam_prune_logp": (None, 0.0)}


def tuned_weights(lm: str | Path) -> dict | None:
    """The weights `stochw2v lm tune` chose for this LM folder (None if it was not tuned), each checked:
    a hand-edited file with a negative beam or a weight written as a string is one line naming the field."""
    path = Path(lm) / DECODING_FILE
    if not (Path(lm).is_dir() and path.exists()):
        return None
    data = read_json(path, "decoding settings file")
    beam = data.get("beam")
    if beam is not None and (isinstance(beam, bool) or not isinstance(beam, int) or not 1 <= beam <= MAX_BEAM):
        raise ModelFileError(f"{path}: beam must be a whole number from 1 to {MAX_BEAM}, got {beam!r}")
    for key, (low, high) in TUNED_BOUNDS.items():
        value = data.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ModelFileError(f"{path}: {key} must be a finite number, got {value!r}")
        if (low is not None and value < low) or (high is not None and value > high):
            raise ModelFileError(f"{path}: {key} must be {'>= ' + format(low, 'g') if low is not None else ''}"
                                 f"{'<= ' + format(high, 'g') if high is not None else ''}, got {value!r}")
    return data


__all__ = ["ARPA_FILE", "NGramModel", "build_ngram", "read_sentences", "read_vocabulary", "tuned_weights",
           "write_lm"]
