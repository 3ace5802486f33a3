"""Word and character error rates (jiwer's alignments), per utterance and summed over a corpus.

Per-utterance counts are kept so that evaluation can bootstrap confidence intervals over
utterances; the corpus rate is the sum of edits over the sum of reference lengths.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import jiwer


@dataclass
class ErrorCounts:
    word_errors: int = 0
    words: int = 0
    char_errors: int = 0
    chars: int = 0

    @property
    def wer(self) -> float:
        return self.word_errors / max(self.words, 1)

    @property
    def cer(self) -> float:
        return self.char_errors / max(self.chars, 1)

    def __add__(self, other: "ErrorCounts") -> "ErrorCounts":
        return ErrorCounts(self.word_errors + other.word_errors, self.words + other.words,
                           self.char_errors + other.char_errors, self.chars + other.chars)


def _edits(alignment) -> int:
    edits = 0
    for chunk in alignment:
        if chunk.type == "substitute" or chunk.type == "delete":
            edits += chunk.ref_end_idx - chunk.ref_start_idx
        elif chunk.type == "insert":
            edits += chunk.hyp_end_idx - chunk.hyp_start_idx
    return edits


def utterance_errors(references: Sequence[str], hypotheses: Sequence[str]) -> list[ErrorCounts]:
    """Edit counts of each (reference, hypothesis) pair; whitespace is normalised first."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    if not references:
        return []
    refs = [" ".join(r.split()) for r in references]
    hyps = [" ".join(h.split()) for h in hypotheses]
    words = jiwer.process_words(refs, hyps)
    chars = jiwer.process_characters(refs, hyps)
    return [ErrorCounts(_edits(w), len(r.split()), _edits(c), len(r))
            for w, c, r in zip(words.alignments, chars.alignments, refs)]


def error_rates(references: Sequence[str], hypotheses: Sequence[str]) -> ErrorCounts:
    """Corpus totals: WER = word edits / reference words, CER likewise over characters (spaces count)."""
    total = ErrorCounts()
    for counts in utterance_errors(references, hypotheses):
        total = total + counts
    return total


__all__ = ["ErrorCounts", "error_rates", "utterance_errors"]
