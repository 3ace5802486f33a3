"""Data loading throughput and padding, on a synthetic corpus made in the same run.

    .venv/bin/python benchmarks/data_loading.py [--hours 0.3] [--max-samples 1600000]

Reports utterances per second through the DataLoader with 0 and 2 workers, and the padding
fraction of the length-bucketed sampler against plain random batches of the same mean size.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from stochw2v.data import AudioDataset, BucketBatchSampler, make_loader, padding_fraction, random_batches, read_manifest
from stochw2v.data.synth import make_corpus


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hours", type=float, default=0.3)
    parser.add_argument("--max-samples", type=int, default=1_600_000, help="batch budget (100 s of audio)")
    parser.add_argument("--corpus", help="use this synth folder instead of making one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.corpus or tmp)
        if not args.corpus:
            summary = make_corpus(folder, args.hours, seed=0, workers=2, progress=False)
            print(f"synth: {summary['audio_seconds']:.0f} s of audio at {summary['audio_seconds_per_second']} "
                  f"audio s/s with 2 processes")
        manifest = read_manifest(folder / "train.tsv", labels=True)
        dataset = AudioDataset(manifest)
        sampler = BucketBatchSampler(dataset.sizes(), args.max_samples, seed=0)
        print(f"{len(manifest)} utterances, {manifest.total_seconds / 60:.1f} min\n")
        print("| loader | utterances/s | audio s/s |\n|---|---|---|")
        for workers in (0, 2):
            start = time.perf_counter()
            count = sum(len(batch.ids) for batch in make_loader(dataset, sampler, num_workers=workers))
            elapsed = time.perf_counter() - start
            print(f"| {workers} workers | {count / elapsed:.0f} | {manifest.total_seconds / elapsed:.0f} |")
        bucketed = sampler.padding_fraction()
        mean_size = round(len(manifest) / len(sampler.epoch_batches()))
        baseline = padding_fraction(random_batches(len(manifest), mean_size), manifest.num_samples)
        print(f"\n| batching (mean {mean_size} utterances/batch) | padding fraction |\n|---|---|")
        print(f"| length-bucketed, budget {args.max_samples} samples | {bucketed:.3f} |")
        print(f"| random | {baseline:.3f} |")
        print(f"| ratio bucketed / random | {bucketed / baseline:.3f} |")


if __name__ == "__main__":
    main()
