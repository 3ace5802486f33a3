"""How long `manifest check` (and training's header audit) takes on a large manifest, against the
least any audit must do: one stat() per file, measured in the same run.

    python benchmarks/manifest_check.py --entries 300000

The files are hard links to a few one-second WAVs in a temporary folder (a file system allows about
65,000 links per file), so the benchmark measures reading manifests and headers, not the disk.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from stochw2v.data.manifest import audit_audio, read_manifest

LINKS_PER_FILE = 60_000


def build(folder: Path, entries: int) -> Path:
    (folder / "a").mkdir()
    lines = [str(folder)]
    for i in range(entries):
        base = folder / "a" / f"base{i // LINKS_PER_FILE}.wav"
        if not base.exists():
            sf.write(base, np.zeros(16000, np.float32), 16000)
        os.link(base, folder / "a" / f"u{i}.wav")
        lines.append(f"a/u{i}.wav\t16000")
    tsv = folder / "big.tsv"
    tsv.write_text("\n".join(lines) + "\n")
    return tsv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=300_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tsv = build(Path(tmp), args.entries)
        start = time.perf_counter()
        manifest = read_manifest(tsv)
        read_seconds = time.perf_counter() - start
        start = time.perf_counter()
        for i in range(len(manifest)):
            os.stat(manifest.audio_path(i))
        stat_seconds = time.perf_counter() - start
        start = time.perf_counter()
        problems = audit_audio(manifest)
        audit_seconds = time.perf_counter() - start
    assert not problems, problems[:3]
    print(f"| entries | read manifest s | stat every file s (baseline) | header audit s | audit / baseline |\n"
          f"|---|---|---|---|---|\n"
          f"| {args.entries:,} | {read_seconds:.1f} | {stat_seconds:.1f} | {audit_seconds:.1f} | "
          f"{audit_seconds / stat_seconds:.1f} |\n")
    print(f"command: python benchmarks/manifest_check.py --entries {args.entries}")


if __name__ == "__main__":
    main()
