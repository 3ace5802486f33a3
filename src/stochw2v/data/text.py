"""Transcripts: LibriSpeech-style normalisation and the character vocabulary for CTC."""
from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Iterable, Sequence

from ..errors import ConfigError

BLANK = "<blank>"
WORD_SEPARATOR = "|"
LETTERS = tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ") + ("'",)

_APOSTROPHES = {"\u2019": "'", "\u2018": "'", "`": "'", "\u00b4": "'"}
_BREAKS = re.compile(r"[-\u2013\u2014/_]+")  # hyphens and dashes split words, as in LibriSpeech
_DROP = re.compile(r"[^A-Z' ]+")


def normalize_text(text: str) -> str:
    """Upper-case letters, apostrophes and single spaces, the way LibriSpeech transcripts read.

    Accents are stripped (CAFÉ -> CAFE), hyphens become spaces, other punctuation goes.
    Digits and other symbols are kept so that `Vocabulary.unknown_characters` can report them.
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


def _is_special(token: str) -> bool:
    return len(token) > 1 and token.startswith("<") and token.endswith(">")


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
        known = {t for t in self.tokens if not _is_special(t)} | {" "}
        return {c for c in words if c not in known}

    def encode(self, words: str) -> list[int]:
        """Normalised words -> token ids, '|' between words (no leading or trailing '|')."""
        index = {t: i for i, t in enumerate(self.tokens)}
        unknown = self.unknown_characters(words)
        if unknown:
            raise ConfigError(f"characters outside the vocabulary: {''.join(sorted(unknown))!r} in {words!r}")
        return [index[WORD_SEPARATOR if c == " " else c] for c in words.strip()]

    def decode(self, ids: Iterable[int]) -> str:
        """Token ids (already CTC-collapsed) -> words; <special> tokens (HF's <s>, <unk>) say nothing."""
        text = "".join(self.tokens[i] for i in ids if i != self.blank_id and not _is_special(self.tokens[i]))
        return " ".join(text.replace(WORD_SEPARATOR, " ").split())

    def to_json(self) -> str:
        return json.dumps({"tokens": list(self.tokens), "blank": BLANK}, indent=2)

    @classmethod
    def from_json(cls, text: str) -> "Vocabulary":
        return cls.from_tokens(json.loads(text)["tokens"])

    @classmethod
    def from_tokens(cls, tokens: Sequence[str]) -> "Vocabulary":
        """Checked: blank first, the word separator present, single characters, no repeats."""
        tokens = tuple(tokens)
        if not tokens or tokens[0] != BLANK:
            raise ConfigError(f"the vocabulary must start with the blank token {BLANK!r}")
        if WORD_SEPARATOR not in tokens:
            raise ConfigError(f"the vocabulary has no word separator {WORD_SEPARATOR!r}")
        if len(set(tokens)) != len(tokens):
            raise ConfigError("the vocabulary repeats a token")
        if any(len(t) != 1 and not _is_special(t) for t in tokens[1:]):
            raise ConfigError("every token but the blank and <special> ones must be one character")
        return cls(tokens)
