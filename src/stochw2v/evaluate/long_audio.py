"""Transcribing audio of any length in bounded memory, with word timestamps from the CTC alignment.

The file is read in blocks (resampled on the fly when it is not 16 kHz) and cut into windows: a
core of `chunk` seconds with `overlap` seconds of context on each side. Every window starts on a
multiple of the frame hop, so its frames line up with the frames one pass over the whole file
would make; only each window's core frames are kept, so every frame of the file comes from exactly
one window, computed with at least `overlap` seconds of audio on either side. Memory holds one
batch of windows and the best token of each frame (the full posteriors only when a beam decoder
needs them).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf
import soxr
import torch
from tqdm import tqdm

from ..audio import SAMPLE_RATE
from ..compute import Compression
from ..data.text import WORD_SEPARATOR, Vocabulary
from ..errors import AudioError
from ..model import CTCModel

ALIGN = 320 * 8  # windows start on multiples of the hop times the largest pooling factor


@dataclass
class Word:
    word: str
    start: float  # seconds
    end: float


def ctc_words(best: np.ndarray, vocabulary: Vocabulary, frame_seconds: float = 0.02, offset: int = 0) -> list[Word]:
    """Words and their times from a best path (token id per frame): repeats merged, blanks dropped."""
    words: list[Word] = []
    letters, first, last, previous = [], None, None, -1
    for frame, token in enumerate(best.tolist()):
        if token != previous and token != vocabulary.blank_id:
            symbol = vocabulary.tokens[token]
            if symbol == WORD_SEPARATOR or symbol.startswith("<"):
                if letters:
                    words.append(Word("".join(letters), (offset + first) * frame_seconds,
                                      (offset + last + 1) * frame_seconds))
                letters, first = [], None
            else:
                letters.append(symbol)
                first = frame if first is None else first
        if token != vocabulary.blank_id and letters:
            last = frame
        previous = token
    if letters:
        words.append(Word("".join(letters), (offset + first) * frame_seconds, (offset + last + 1) * frame_seconds))
    return words


def read_blocks(path: Path, block: int = SAMPLE_RATE * 10) -> Iterator[np.ndarray]:
    """Mono float32 blocks at 16 kHz from any file soundfile reads, without loading it whole."""
    try:
        handle = sf.SoundFile(str(path))
    except Exception as error:  # noqa: BLE001 - soundfile raises several types
        raise AudioError(f"{path}: not a readable audio file ({str(error).splitlines()[-1]})") from None
    with handle:
        stream = None if handle.samplerate == SAMPLE_RATE else soxr.ResampleStream(handle.samplerate, SAMPLE_RATE, 1,
                                                                                 dtype="float32")
        while True:
            data = handle.read(block, dtype="float32", always_2d=True)
            last = len(data) < block
            mono = data.mean(axis=1).astype(np.float32)
            if not np.isfinite(mono).all():
                raise AudioError(f"{path}: holds NaN or inf samples")
            if stream is not None:
                mono = stream.resample_chunk(mono, last=last)
            if len(mono):
                yield mono
            if last:
                return


def windows(blocks: Iterator[np.ndarray], chunk: int, overlap: int) -> Iterator[tuple[int, np.ndarray, int, int]]:
    """(window start sample, samples, first core sample, end of core) with `overlap` context each side."""
    buffer, base, core = np.zeros(0, dtype=np.float32), 0, 0  # buffer holds samples from `base` on
    exhausted = False
    while True:
        need = core + chunk + overlap - base
        while not exhausted and len(buffer) < need:
            try:
                buffer = np.concatenate([buffer, next(blocks)])
            except StopIteration:
                exhausted = True
        end = base + len(buffer)
        if core >= end:
            return
        start = max(0, core - overlap)
        core_end = min(core + chunk, end)
        yield start, buffer[start - base: min(core + chunk + overlap, end) - base], core, core_end
        if core_end >= end and exhausted:
            return
        core = core_end
        drop = max(0, core - overlap) - base  # keep what the next window's left context needs
        buffer, base = buffer[drop:], base + drop


@dataclass
class LongTranscript:
    text: str
    words: list[Word]
    audio_seconds: float
    logits: np.ndarray | None  # [frames, vocabulary] when kept for a beam decoder


def transcribe_long(model: CTCModel, path: str | Path, setting: Compression, chunk_seconds: float = 30.0,
                    overlap_seconds: float = 4.0, keep_logits: bool = False, progress: bool = True) -> LongTranscript:
    """Greedy transcript and word times of a file of any length (see the module docstring)."""
    chunk = max(ALIGN, int(chunk_seconds * SAMPLE_RATE) // ALIGN * ALIGN)
    overlap = int(overlap_seconds * SAMPLE_RATE) // ALIGN * ALIGN
    hop, device = model.config.hop, next(model.parameters()).device
    total = sf.info(str(path)).duration if Path(path).exists() else None
    bar = tqdm(total=None if total is None else round(total, 1), unit="audio s", desc="transcribe",
               disable=not progress, leave=False)
    best_parts, logit_parts, samples = [], [], 0
    for start, audio, core, core_end in windows(read_blocks(Path(path)), chunk, overlap):
        if len(audio) < model.config.receptive_field:
            break  # a tail shorter than one frame adds no frame
        with torch.inference_mode():
            out = model(torch.from_numpy(audio).to(device), compression=setting)
        first, last = (core - start) // hop, (core_end - start) // hop
        if core_end >= start + len(audio):  # the file's last window keeps every frame it has
            last = int(out.lengths[0])
        logits = out.logits[0, first:last].float()
        best_parts.append(logits.argmax(-1).cpu().numpy().astype(np.int16))
        if keep_logits:
            logit_parts.append(logits.cpu().numpy())
        samples = core_end
        bar.update(round((core_end - core) / SAMPLE_RATE, 1))
    bar.close()
    best = np.concatenate(best_parts) if best_parts else np.zeros(0, dtype=np.int16)
    words = ctc_words(best, model.vocabulary, hop / SAMPLE_RATE)
    return LongTranscript(" ".join(w.word for w in words), words, samples / SAMPLE_RATE,
                          np.concatenate(logit_parts) if keep_logits and logit_parts else None)


__all__ = ["LongTranscript", "Word", "ctc_words", "read_blocks", "transcribe_long", "windows"]
