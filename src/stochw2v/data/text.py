"""Transcripts: LibriSpeech-style normalisation and the character vocabulary for CTC."""
from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Iterable, Sequence

BLANK = "<blank>"
WORD_SEPARATOR = "|"
LETTERS = tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ") + ("'",)

_APOSTROPHES = {"\u2019": "'", "\u2018": "'", "`": "'", "\u00b4": "'"}
_BREAKS = re.compile(r"[-\u2013\u2014/_]+")  # hyphens and dashes split words, as in LibriSpeech
_DROP = re.compile(r"[^A-Z' ]+")


def normalize_text(text: str) -> str:
    """Upper-case letters, apostrophes and single spaces, the way LibriSpeech transcripts read.

    Accents are stripped (CAFÉ -> CAFE), hyphens become spaces, other punctuation goes.
    Digits and other symbols are kept so that `Vocabulary.check` can report them.
    """
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    for src, dst in _APOSTROPHES.items():
        text = text.replace(src, dst)
    text = _BREAKS.sub(" ", text.upper())
    text = re.sub(r"[.,;:!?\"()\[\]{}]", " ", text)
    words = [w.strip("'") for w in text.split()]
    return " ".join(w for w in words if w)


def to_letters(words: str) -> str:
    """fairseq's .ltr form: 'HI YOU' -> 'H I | Y O U |'."""
    return " ".join(WORD_SEPARATOR.join(words.split()) + WORD_SEPARATOR)  # noqa: FLY002


@dataclass(frozen=True)
class Vocabulary:
    """CTC tokens: blank (id 0), word separator '|', letters and apostrophe."""

    tokens: tuple[str, ...] = (BLANK, WORD_SEPARATOR) + LETTERS

    @property
    def blank_id(self) -> int:
        return 0

    def __len__(self) -> int:
        return len(self.tokens)

    def unknown_characters(self, words: str) -> set[str]:
        known = set(self.tokens) | {" "}
        return {c for c in words if c not in known}

    def encode(self, words: str) -> list[int]:
        """Normalised words -> token ids, '|' between words (no leading or trailing '|')."""
        index = {t: i for i, t in enumerate(self.tokens)}
        unknown = self.unknown_characters(words)
        if unknown:
            raise ValueError(f"characters outside the vocabulary: {''.join(sorted(unknown))!r} in {words!r}")
        return [index[WORD_SEPARATOR if c == " " else c] for c in words.strip()]

    def decode(self, ids: Iterable[int]) -> str:
        """Token ids (already CTC-collapsed) -> words."""
        text = "".join(self.tokens[i] for i in ids if i != self.blank_id)
        return " ".join(text.replace(WORD_SEPARATOR, " ").split())

    def to_json(self) -> str:
        return json.dumps({"tokens": list(self.tokens), "blank": BLANK}, indent=2)

    @classmethod
    def from_json(cls, text: str) -> "Vocabulary":
        data = json.loads(text)
        tokens: Sequence[str] = data["tokens"]
        if not tokens or tokens[0] != BLANK:
            raise ValueError("vocabulary must start with the blank token")
        return cls(tuple(tokens))
