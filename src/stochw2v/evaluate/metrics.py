"""Word and character error rates: Levenshtein edits over the corpus, divided by reference length."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


def edit_distance(reference: Sequence, hypothesis: Sequence) -> int:
    """Substitutions + deletions + insertions turning `reference` into `hypothesis`."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, start=1):
        current = [i] + [0] * len(hypothesis)
        for j, hyp in enumerate(hypothesis, start=1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref != hyp))
        previous = current
    return previous[-1]


@dataclass
class ErrorCounts:
    word_errors: int = 0
    words: int = 0
    char_errors: int = 0
    chars: int = 0

    def add(self, reference: str, hypothesis: str) -> None:
        self.word_errors += edit_distance(reference.split(), hypothesis.split())
        self.words += len(reference.split())
        ref_chars, hyp_chars = " ".join(reference.split()), " ".join(hypothesis.split())
        self.char_errors += edit_distance(ref_chars, hyp_chars)
        self.chars += len(ref_chars)

    @property
    def wer(self) -> float:
        return self.word_errors / max(self.words, 1)

    @property
    def cer(self) -> float:
        return self.char_errors / max(self.chars, 1)


def error_rates(references: Sequence[str], hypotheses: Sequence[str]) -> ErrorCounts:
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    counts = ErrorCounts()
    for ref, hyp in zip(references, hypotheses):
        counts.add(ref, hyp)
    return counts
