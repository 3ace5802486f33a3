"""Audio in: any file soundfile reads (wav, flac, ogg, ...) as 16 kHz mono float32.

Every failure is an `AudioError` (a ValueError) that names the file and the problem.
"""
from __future__ import annotations

import io
import os
import stat
import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf
import soxr

from ..errors import AudioError

SAMPLE_RATE = 16_000
# sample rates a real recording has; a header outside them is broken (1 Hz reads as hours of audio)
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1_000, 384_000
MAX_CHANNELS = 64  # more than any recording rig writes: a header claiming more is refused before decoding
# float samples are nominally within [-1, 1]; a peak this far beyond full scale (40 dB) is a broken
# file or a wrong scale (PCM integers stored as floats), and the model would hear garbage
MAX_PEAK = 100.0
PLAIN_WAV_FORMATS = (1, 3, 0xFFFE)  # PCM, IEEE float, extensible: the WAVs whose length the header alone gives


def resample(audio: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """Band-limited resampling with soxr (VHQ polyphase); a no-op at the target rate."""
    if rate == target:
        return audio
    return soxr.resample(audio, rate, target, quality="VHQ").astype(np.float32, copy=False)


def check_audio_file(path: Path) -> None:
    """A regular file that exists: a FIFO or a device would block a read forever, a folder is a mistake."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise AudioError(f"{path}: no such audio file") from None
    except OSError as error:
        raise AudioError(f"{_short(path)}: cannot read it ({error.strerror})") from None
    if stat.S_ISDIR(mode):
        raise AudioError(f"{path}: is a directory, not an audio file")
    if not stat.S_ISREG(mode):
        kind = "a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or \
            stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else "not a regular file"
        raise AudioError(f"{path}: is {kind}, not an audio file; save the audio to a file first")


def check_header(name: object, frames: int, rate: int, channels: int, max_seconds: float | None = None,
                 max_rate: int = MAX_SAMPLE_RATE) -> None:
    """Refuse, from the header alone, what decoding would make absurd: a sample rate no recording has,
    more channels than any rig writes, or more audio than the caller allows."""
    if not MIN_SAMPLE_RATE <= rate <= max_rate:
        raise AudioError(f"{name}: its header says {rate} Hz; sample rates from {MIN_SAMPLE_RATE} to {max_rate} Hz "
                         "are accepted")
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioError(f"{name}: its header says {channels} channels; at most {MAX_CHANNELS} are accepted")
    if max_seconds is not None and frames / rate > max_seconds:
        raise AudioError(f"{name}: {frames / rate:.1f} s of audio, over the limit of {max_seconds:g} s")


def audio_info(path: str | os.PathLike) -> tuple[int, int]:
    """(frames, sample rate) from the header, without decoding. A PCM/float WAV's header is parsed here in
    one read (a 300,000-file manifest is audited in seconds); other formats go through libsndfile."""
    path = Path(path)
    check_audio_file(path)
    with open(path, "rb") as handle:
        header = wav_header(handle, os.fstat(handle.fileno()).st_size)
    if isinstance(header, str):
        raise AudioError(f"{path}: {header}")
    if header is None:
        try:
            info = sf.info(str(path))
        except Exception as error:  # noqa: BLE001 - soundfile raises several types
            raise AudioError(f"{path}: not a readable audio file ({_reason(error)})") from None
        header = info.frames, info.samplerate, info.channels
        _check_wav_complete(path)
    frames, rate, channels = header
    check_header(path, frames, rate, channels)
    return frames, rate


def wav_header(handle: BinaryIO, size: int) -> tuple[int, int, int] | str | None:
    """(frames, rate, channels) of a RIFF WAV whose fmt and data chunks are plain; a sentence when it is
    truncated; None when libsndfile should read it (another format, or a streamed size of 0 / 0xFFFFFFFF)."""
    head = handle.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    rate = channels = block = 0
    while True:
        chunk = handle.read(8)
        if len(chunk) < 8:
            return None
        name, length = chunk[:4], struct.unpack("<I", chunk[4:])[0]
        if name == b"fmt ":
            fmt = handle.read(length + (length & 1))
            if len(fmt) < 16:
                return None
            tag, channels, rate, _, block, bits = struct.unpack("<HHIIHH", fmt[:16])
            if tag not in PLAIN_WAV_FORMATS or bits not in (8, 16, 24, 32, 64) or block != channels * bits // 8:
                return None  # compressed or unusual: libsndfile decides whether it reads it
        elif name == b"data":
            if not block or length in (0, 0xFFFFFFFF):
                return None
            present = size - handle.tell()
            if present < length:
                return f"truncated: its header announces {length} bytes of samples but the file holds {present}"
            return length // block, rate, channels
        else:
            handle.seek(length + (length & 1), os.SEEK_CUR)


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
                 max_seconds: float | None = None, max_rate: int = MAX_SAMPLE_RATE) -> np.ndarray:
    """Audio file bytes (wav, flac, ogg, ...) to mono float32 at `target_rate`, with the same checks as
    `load_audio`; `max_seconds` and `max_rate` refuse long or over-sampled audio from its header, before
    decoding it (a small FLAC can declare a gigabyte of samples)."""
    if not data:
        raise AudioError(f"{name}: empty body, no audio")
    problem = wav_truncation(io.BytesIO(data), len(data))
    if problem:
        raise AudioError(f"{name}: {problem}")
    try:
        info = sf.info(io.BytesIO(data))
        check_header(name, info.frames, info.samplerate, info.channels, max_seconds, max_rate)
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
    peak = float(np.abs(audio).max())
    if peak > MAX_PEAK:
        raise AudioError(f"{name}: its samples reach {peak:.3g}, far beyond full scale (1.0): a broken float file, "
                         "or integer PCM stored as floats (divide by 32768)")
    mono = audio.mean(axis=1) if audio.shape[1] > 1 else audio[:, 0]
    return np.ascontiguousarray(resample(mono, rate, target_rate), dtype=np.float32)


def load_audio(path: str | os.PathLike, target_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode `path` to mono float32 at `target_rate`. Silence is fine; NaN/inf and empty are not."""
    path = Path(path)
    check_audio_file(path)
    _check_wav_complete(path)
    try:
        info = sf.info(str(path))
        check_header(path, info.frames, info.samplerate, info.channels)
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except AudioError:
        raise
    except Exception as error:  # noqa: BLE001
        raise AudioError(f"{path}: not a readable audio file ({_reason(error)})") from None
    return _to_mono(audio, rate, target_rate, path)


def _short(path: Path, limit: int = 120) -> str:
    """A path to print: a name too long for the file system is shortened, not echoed whole."""
    text = str(path)
    return text if len(text) <= limit else f"{text[:limit // 2]}...{text[-limit // 4:]} ({len(text)} characters)"


def _reason(error: Exception) -> str:
    text = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
    return text.replace("Error opening", "cannot open")
