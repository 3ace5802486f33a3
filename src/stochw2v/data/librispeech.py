"""Manifests from folders: the LibriSpeech layout (labelled) and any folder of audio (unlabelled)."""
from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from ..audio import SAMPLE_RATE, audio_info
from ..errors import AudioError
from .manifest import Manifest, ManifestError
from .text import normalize_text

AUDIO_SUFFIXES = (".flac", ".wav", ".ogg", ".mp3", ".opus")


def _num_samples(path: Path) -> int:
    frames, rate = audio_info(path)
    return frames if rate == SAMPLE_RATE else round(frames * SAMPLE_RATE / rate)


def librispeech_manifest(root: str | Path, split: str, progress: bool = True) -> Manifest:
    """Manifest of ROOT/SPLIT (or ROOT/LibriSpeech/SPLIT): speaker/chapter/*.flac + *.trans.txt."""
    base = Path(root)
    folder = base / split if (base / split).is_dir() else base / "LibriSpeech" / split
    if not folder.is_dir():
        raise ManifestError(f"{base}: no LibriSpeech split folder {split!r} (looked in {base / split})")
    transcripts: dict[str, str] = {}
    for trans in sorted(folder.glob("*/*/*.trans.txt")):
        for number, line in enumerate(trans.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            utt, _, text = line.partition(" ")
            if not text.strip():
                raise ManifestError(f"{trans}:{number}: no transcript after the utterance id {utt!r}")
            transcripts[utt] = normalize_text(text)
    audio = sorted(folder.glob("*/*/*.flac"))
    if not audio:
        raise ManifestError(f"{folder}: no speaker/chapter/*.flac files")
    paths, sizes, words = [], [], []
    for path in tqdm(audio, desc=f"manifest {split}", disable=not progress, leave=False):
        utt = path.stem
        if utt not in transcripts:
            raise ManifestError(f"{path}: no transcript line for {utt} in {path.parent.name}'s *.trans.txt")
        paths.append(path.relative_to(folder).as_posix())
        sizes.append(_num_samples(path))
        words.append(transcripts.pop(utt))
    if transcripts:
        extra = sorted(transcripts)[:3]
        raise ManifestError(f"{folder}: {len(transcripts)} transcripts without audio, e.g. {extra}")
    return Manifest(folder.resolve(), paths, sizes, words)


def folder_manifest(folder: str | Path, progress: bool = True) -> Manifest:
    """Unlabelled manifest of every audio file under `folder` (for pre-training)."""
    base = Path(folder)
    if not base.is_dir():
        raise ManifestError(f"{base}: not a folder")
    audio = sorted(p for p in base.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    if not audio:
        raise ManifestError(f"{base}: no audio files ({', '.join(AUDIO_SUFFIXES)})")
    sizes, problems = [], []
    for path in tqdm(audio, desc="manifest", disable=not progress, leave=False):
        try:
            sizes.append(_num_samples(path))
        except AudioError as error:  # keep going: every unreadable file is listed at once
            problems.append(str(error))
    if problems:
        raise ManifestError(f"{base}: {len(problems)} of {len(audio)} audio files cannot be read: "
                            + "; ".join(problems[:20]) + (" ..." if len(problems) > 20 else ""))
    return Manifest(base.resolve(), [p.relative_to(base).as_posix() for p in audio], sizes)
