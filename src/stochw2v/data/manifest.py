"""fairseq manifests: `NAME.tsv` (root line, then `relative/path<TAB>num_samples`) with optional
`NAME.wrd` (words) and `NAME.ltr` (letters, '|' after each word) label files, one line per utterance.

Existing fairseq recipes read what we write and we read theirs. Loading validates everything
up front, so a broken manifest fails before training, never as a silently shorter dataset.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..audio import audio_info
from .text import to_letters


class ManifestError(ValueError):
    """A manifest that does not describe its audio; the message names the file and line."""


@dataclass
class Manifest:
    root: Path
    paths: list[str]  # relative to root
    num_samples: list[int]
    words: list[str] | None = None
    source: Path | None = field(default=None, compare=False)

    def __len__(self) -> int:
        return len(self.paths)

    def audio_path(self, index: int) -> Path:
        return self.root / self.paths[index]

    def utterance_id(self, index: int) -> str:
        return Path(self.paths[index]).with_suffix("").as_posix()

    @property
    def has_labels(self) -> bool:
        return self.words is not None

    @property
    def total_seconds(self) -> float:
        return sum(self.num_samples) / 16_000

    def write(self, tsv: str | os.PathLike) -> Path:
        """Write NAME.tsv (and NAME.wrd / NAME.ltr when labelled)."""
        from ..model.checkpoint import atomic_write

        tsv = Path(tsv)
        lines = [str(self.root.resolve())] + [f"{p}\t{n}" for p, n in zip(self.paths, self.num_samples)]
        atomic_write(tsv, ("\n".join(lines) + "\n").encode())
        if self.words is not None:
            atomic_write(tsv.with_suffix(".wrd"), "".join(w + "\n" for w in self.words).encode())
            atomic_write(tsv.with_suffix(".ltr"), "".join(to_letters(w) + "\n" for w in self.words).encode())
        return tsv


def read_manifest(tsv: str | os.PathLike, labels: bool | None = None, check_files: bool = True,
                  check_lengths: bool = False) -> Manifest:
    """Read and validate a manifest.

    labels: True requires NAME.wrd, False ignores it, None reads it if present.
    check_files: every audio file must exist. check_lengths: every header must match its
    num_samples (reads each header; slower on big corpora).
    """
    tsv = Path(tsv)
    if not tsv.exists():
        raise ManifestError(f"{tsv}: manifest not found")
    lines = tsv.read_text().splitlines()
    if not lines or not lines[0].strip():
        raise ManifestError(f"{tsv}: empty manifest (the first line must be the audio root folder)")
    root = Path(lines[0].strip())
    if not root.is_absolute():
        root = (tsv.parent / root).resolve()
    paths, sizes = [], []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 2 or not parts[1].strip().isdigit():
            raise ManifestError(f"{tsv}:{number}: expected 'relative/path<TAB>num_samples', got {line!r}")
        paths.append(parts[0])
        sizes.append(int(parts[1]))
    if not paths:
        raise ManifestError(f"{tsv}: lists no audio")
    if check_files:
        missing = [p for p in paths if not (root / p).is_file()]
        if missing:
            raise ManifestError(f"{tsv}: {len(missing)} audio files missing under {root}, e.g. {missing[:3]}")
    if check_lengths:
        for path, size in zip(paths, sizes):
            frames, rate = audio_info(root / path)
            expected = frames if rate == 16_000 else round(frames * 16_000 / rate)
            if abs(expected - size) > 1:
                raise ManifestError(f"{tsv}: {path} has {expected} samples at 16 kHz, the manifest says {size}")

    words = None
    wrd = tsv.with_suffix(".wrd")
    if labels is True and not wrd.exists():
        raise ManifestError(f"{tsv}: no labels ({wrd.name} is missing); this step needs transcribed audio")
    if labels is not False and wrd.exists():
        words = wrd.read_text().splitlines()
        if len(words) != len(paths):
            raise ManifestError(f"{wrd}: {len(words)} transcripts for {len(paths)} audio files in {tsv.name}")
        ltr = tsv.with_suffix(".ltr")
        if ltr.exists():
            letters = ltr.read_text().splitlines()
            if len(letters) != len(paths):
                raise ManifestError(f"{ltr}: {len(letters)} lines for {len(paths)} audio files in {tsv.name}")
    return Manifest(root, paths, sizes, words, source=tsv)
