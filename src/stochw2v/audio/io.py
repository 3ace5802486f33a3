"""Audio in: any file soundfile reads (wav, flac, ogg, ...) as 16 kHz mono float32.

Every failure is an `AudioError` (a ValueError) that names the file and the problem.
"""
from __future__ import annotations

import io
import os
import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf
import soxr

from ..errors import AudioError

SAMPLE_RATE = 16_000


def resample(audio: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """Band-limited resampling with soxr (VHQ polyphase); a no-op at the target rate."""
    if rate == target:
        return audio
    return soxr.resample(audio, rate, target, quality="VHQ").astype(np.float32, copy=False)


def audio_info(path: str | os.PathLike) -> tuple[int, int]:
    """(frames, sample rate) from the header, without decoding."""
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such audio file")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, not an audio file")
    try:
        info = sf.info(str(path))
    except Exception as error:  # noqa: BLE001 - soundfile raises several types
        raise AudioError(f"{path}: not a readable audio file ({_reason(error)})") from None
    _check_wav_complete(path)
    return info.frames, info.samplerate


def _check_wav_complete(path: Path) -> None:
    """libsndfile silently reads a truncated WAV as a shorter one; compare the data chunk's
    declared size with the bytes present (0 and 0xFFFFFFFF mean 'unknown', as streamed WAVs write)."""
    with open(path, "rb") as handle:
        problem = wav_truncation(handle, os.path.getsize(path))
    if problem:
        raise AudioError(f"{path}: {problem}")


def wav_truncation(handle: BinaryIO, size: int) -> str | None:
    """A sentence if the WAV in `handle` (of `size` bytes) is shorter than its header says, else None."""
    header = handle.read(12)
    if len(header) < 12 or header[:4] not in (b"RIFF", b"RIFX") or header[8:12] != b"WAVE":
        return None
    order = "<" if header[:4] == b"RIFF" else ">"
    while True:
        chunk = handle.read(8)
        if len(chunk) < 8:
            return None
        name, length = chunk[:4], struct.unpack(order + "I", chunk[4:])[0]
        if name == b"data":
            present = size - handle.tell()
            if length not in (0, 0xFFFFFFFF) and present < length:
                return f"truncated: its header announces {length} bytes of samples but the file holds {present}"
            return None
        handle.seek(length + (length & 1), os.SEEK_CUR)


def decode_audio(data: bytes, name: str = "upload", target_rate: int = SAMPLE_RATE,
                 max_seconds: float | None = None) -> np.ndarray:
    """Audio file bytes (wav, flac, ogg, ...) to mono float32 at `target_rate`, with the same checks as
    `load_audio`; `max_seconds` refuses long audio from its header, before decoding it."""
    if not data:
        raise AudioError(f"{name}: empty body, no audio")
    problem = wav_truncation(io.BytesIO(data), len(data))
    if problem:
        raise AudioError(f"{name}: {problem}")
    try:
        info = sf.info(io.BytesIO(data))
        if max_seconds is not None and info.frames / max(info.samplerate, 1) > max_seconds:
            raise AudioError(f"{name}: {info.frames / info.samplerate:.1f} s of audio, over the limit of "
                             f"{max_seconds:g} s")
        audio, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except AudioError:
        raise
    except Exception as error:  # noqa: BLE001 - soundfile raises several types
        raise AudioError(f"{name}: not a readable audio file ({_reason(error)})") from None
    return _to_mono(audio, rate, target_rate, name)


def _to_mono(audio: np.ndarray, rate: int, target_rate: int, name: object) -> np.ndarray:
    if audio.shape[0] == 0:
        raise AudioError(f"{name}: holds no samples")
    if not np.isfinite(audio).all():
        raise AudioError(f"{name}: holds NaN or inf samples")
    mono = audio.mean(axis=1) if audio.shape[1] > 1 else audio[:, 0]
    return np.ascontiguousarray(resample(mono, rate, target_rate), dtype=np.float32)


def load_audio(path: str | os.PathLike, target_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode `path` to mono float32 at `target_rate`. Silence is fine; NaN/inf and empty are not."""
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such audio file")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, not an audio file")
    _check_wav_complete(path)
    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as error:  # noqa: BLE001
        raise AudioError(f"{path}: not a readable audio file ({_reason(error)})") from None
    return _to_mono(audio, rate, target_rate, path)


def _reason(error: Exception) -> str:
    text = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
    return text.replace("Error opening", "cannot open")
