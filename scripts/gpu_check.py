"""The GPU check: everything that needs CUDA, in one run that prints one table (scripts/gpu_check.sh).

    python scripts/gpu_check.py [--device cuda|cpu] [--quick] [--out runs/gpu_check]

1. the tests marked `cuda` (skipped, and counted as such, without CUDA);
2. the encoder per setting (s=1, s=2, s=4) in fp32 and bf16 against HF, batches 1 and 8, CUDA
   synchronised (benchmarks/encoder_speed.py);
3. pre-training, then fine-tuning from it, through torchrun (one process: NCCL on a GPU, gloo on a CPU),
   bf16 on a GPU, on a corpus of tone "speech" it makes itself (the GPU machine has no synthesizers and no
   network): updates per second, peak GPU memory, first and last loss.

--quick (what CI runs on its CPU): 2 s of audio, one timing repeat, 5 updates each; it checks that
the check runs, not how fast anything is.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPOSITORY = Path(__file__).resolve().parents[1]
LETTER_HZ = {letter: 200.0 + 90.0 * i for i, letter in enumerate("ABCDEFGHIJ")}  # one tone per letter
LETTER_SAMPLES, GAP_SAMPLES = 1920, 1600  # 120 ms per letter, 100 ms between words
FULL_UPDATES, QUICK_UPDATES = 300, 5


def speak(text: str) -> np.ndarray:
    pieces = [np.zeros(GAP_SAMPLES)]
    for word in text.split():
        for letter in word:
            t = np.arange(LETTER_SAMPLES) / 16000
            pieces.append(0.4 * np.sin(2 * np.pi * LETTER_HZ[letter] * t))
        pieces.append(np.zeros(GAP_SAMPLES))
    return np.concatenate(pieces).astype(np.float32)


def make_corpus(folder: Path, utterances: int) -> Path:
    """Labelled train/valid manifests of tone utterances of 2-4 random words."""
    from stochw2v.data import Manifest

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    letters = sorted(LETTER_HZ)
    paths, sizes, texts = [], [], []
    for i in range(utterances):
        text = " ".join("".join(rng.choice(letters, rng.integers(2, 6))) for _ in range(rng.integers(2, 5)))
        audio = speak(text) + 0.01 * rng.standard_normal(1).astype(np.float32)
        sf.write(folder / f"u{i}.wav", audio, 16000, subtype="FLOAT")
        paths.append(f"u{i}.wav")
        sizes.append(len(audio))
        texts.append(text)
    Manifest(folder, paths, sizes, texts).write(folder / "train.tsv")
    Manifest(folder, paths[:16], sizes[:16], texts[:16]).write(folder / "valid.tsv")
    return folder


def run(command: list[str], log: Path) -> tuple[int, float]:
    """Run `command`, its output to `log`; (exit code, wall seconds)."""
    start = time.perf_counter()
    with log.open("w") as handle:
        code = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, cwd=REPOSITORY).returncode
    return code, time.perf_counter() - start


def cuda_tests(out: Path) -> str:
    code, _ = run([sys.executable, "-m", "pytest", "-m", "cuda", "-p", "no:cacheprovider"], out / "tests.log")
    tail = (out / "tests.log").read_text().strip().splitlines()
    summary = tail[-1] if tail else "no output"
    return f"exit {code}: {summary}" if code in (0, 5) else f"FAILED (exit {code}): {summary}"


def encoder_timing(args, out: Path) -> list[str]:
    command = [sys.executable, "benchmarks/encoder_speed.py", "--device", args.device, "--dtypes", "fp32,bf16",
               "--batches", "1,8", "--settings", "s=1;s=2;s=4", "--repeats", "1" if args.quick else "5",
               "--seconds", "2" if args.quick else "10"]
    code, _ = run(command, out / "encoder.log")
    rows = [line for line in (out / "encoder.log").read_text().splitlines() if re.match(r"\| s=\d \| \w+Model", line)]
    if code != 0:
        rows.append(f"| encoder timing FAILED (exit {code}), see {out / 'encoder.log'} |")
    return rows


def train_stage(args, out: Path, kind: str, corpus: Path, init: Path | None) -> dict:
    """One torchrun stage; what its log says about speed, memory and loss."""
    updates = QUICK_UPDATES if args.quick else FULL_UPDATES
    precision = "bf16" if args.device.startswith("cuda") else "fp32"
    folder = out / kind
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1",
               "-m", "stochw2v", kind, "--config", f"{kind}_tiny", "--train", str(corpus / "train.tsv"),
               "--valid", str(corpus / "valid.tsv"), "--out", str(folder), "--device", args.device,
               "--set", f"optim.max_updates={updates}", "--set", f"optim.precision={precision}",
               "--set", "run.log_every=1", "--set", f"run.validate_every={updates}", "--set",
               f"run.save_every={updates}", "--set", "data.num_workers=0"]
    if kind == "finetune":
        command[command.index("--config"):command.index("--config")] = ["--init", str(init)]
        command += ["--set", "task.freeze_updates=0"]
    code, wall = run(command, out / f"{kind}.log")
    records = []
    if (folder / "log.jsonl").exists():
        records = [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]
    train = [r for r in records if r.get("split") == "train"]
    result = {"stage": kind, "exit": code, "updates": len(train), "precision": precision, "wall_s": wall}
    if train:
        result.update(first_loss=train[0]["loss"], last_loss=train[-1]["loss"],
                      updates_per_s=len(train) / max(train[-1]["elapsed_s"], 1e-9),
                      peak_memory_mb=max(r.get("peak_memory_mb", 0.0) for r in train))
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that the check runs (CI, CPU)")
    parser.add_argument("--out", default="runs/gpu_check")
    args = parser.parse_args()
    out = (REPOSITORY / args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    lines = [f"# GPU check ({args.device}{', quick' if args.quick else ''})", "",
             f"CUDA tests: {cuda_tests(out)}", "",
             "| setting | HF model | batch | dtype | ours (s) | HF (s) | ours / HF | ONNX Runtime (s) | max abs diff |",
             "|---|---|---|---|---|---|---|---|---|", *encoder_timing(args, out), ""]
    corpus = make_corpus(out / "corpus", 24 if args.quick else 400)
    stages = [train_stage(args, out, "pretrain", corpus, None)]
    stages.append(train_stage(args, out, "finetune", corpus, out / "pretrain"))
    lines += ["| stage | precision | exit | updates | updates/s | peak GPU MB | first loss | last loss | wall s |",
              "|---|---|---|---|---|---|---|---|---|"]
    for s in stages:
        lines.append(f"| {s['stage']} | {s['precision']} | {s['exit']} | {s['updates']} | "
                     f"{s.get('updates_per_s', 0):.2f} | {s.get('peak_memory_mb', 0):.0f} | "
                     f"{s.get('first_loss', float('nan')):.3f} | {s.get('last_loss', float('nan')):.3f} | "
                     f"{s['wall_s']:.0f} |")
    table = "\n".join(lines)
    print(table)
    (out / "gpu_check.md").write_text(table + "\n")
    failed = [s["stage"] for s in stages if s["exit"] != 0 or s["updates"] == 0]
    if failed or "FAILED" in table:
        print(f"gpu check: failed: {failed or 'see above'}; logs in {out}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
