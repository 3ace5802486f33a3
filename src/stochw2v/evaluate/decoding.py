"""CTC decoding: greedy (batched, padding-aware) and beam search with an optional KenLM n-gram LM."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from ..data.text import Vocabulary


def greedy_decode(logits: Tensor, lengths: Tensor, vocabulary: Vocabulary) -> list[str]:
    """Best token per frame, repeats merged, blanks dropped; frames past each length ignored."""
    best = logits.argmax(-1).cpu()
    texts = []
    for row, length in zip(best, lengths.tolist()):
        tokens = row[:length]
        keep = torch.ones_like(tokens, dtype=torch.bool)
        keep[1:] = tokens[1:] != tokens[:-1]
        texts.append(vocabulary.decode(tokens[keep].tolist()))
    return texts


class BeamDecoder:
    """pyctcdecode's beam search; with `lm` (an ARPA or KenLM binary file) it adds LM scores.

    lm_weight is pyctcdecode's alpha, word_bonus its beta (added per word).
    """

    def __init__(self, vocabulary: Vocabulary, beam_width: int = 50, lm: str | Path | None = None,
                 lm_weight: float = 0.5, word_bonus: float = 1.0) -> None:
        try:
            from pyctcdecode import build_ctcdecoder
        except ImportError:
            raise ValueError("beam search needs pyctcdecode (pip install pyctcdecode)") from None
        if lm is not None:
            if not Path(lm).exists():
                raise FileNotFoundError(f"{lm}: language model file not found")
            try:
                import kenlm  # noqa: F401
            except ImportError:
                raise ValueError("an n-gram LM needs kenlm (pip install kenlm)") from None
        labels = ["" if t == "<blank>" else " " if t == "|" else t for t in vocabulary.tokens]
        self.beam_width = beam_width
        self.decoder = build_ctcdecoder(labels, kenlm_model_path=str(lm) if lm else None, alpha=lm_weight,
                                        beta=word_bonus)

    def __call__(self, logits: Tensor, lengths: Tensor) -> list[str]:
        log_probs = logits.float().log_softmax(-1).cpu().numpy()
        return [" ".join(self.decoder.decode(lp[:n], beam_width=self.beam_width).split())
                for lp, n in zip(log_probs, lengths.tolist())]
