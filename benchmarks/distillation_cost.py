"""What in-place distillation costs per fine-tuning update: forward and backward at a drawn setting,
without and with the s=1 teacher pass on the same features, measured interleaved in one run.

    python benchmarks/distillation_cost.py [--size tiny] [--threads 2]
"""
from __future__ import annotations

import argparse
import time

import torch

import stochw2v
from stochw2v.compute.compression import Compression
from stochw2v.data import Vocabulary
from stochw2v.train.finetune import distillation_loss

BATCH, SAMPLES, REPEATS = 4, 80_000, 5  # 4 x 5 s


def step(model, audio, setting: str, distill: bool) -> None:
    out = model(audio, None, setting, reference=Compression() if distill else None)
    loss = out.logits.float().log_softmax(-1).mean()
    if distill:
        loss = loss + out.reference_logits.float().log_softmax(-1).mean() + \
            distillation_loss(out.logits, out.reference_logits, out.lengths)
    loss.backward()


def seconds_per_update(model, audio, setting: str, distill: bool) -> float:
    step(model, audio, setting, distill)  # warm-up
    start = time.perf_counter()
    for _ in range(REPEATS):
        step(model, audio, setting, distill)
    return (time.perf_counter() - start) / REPEATS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--settings", default="s=2;s=4")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = stochw2v.EncoderConfig.preset(args.size, dropout=0.0, layerdrop=0.0)
    model = stochw2v.CTCModel(stochw2v.Encoder(config), Vocabulary()).train()
    audio = 0.1 * torch.randn(BATCH, SAMPLES)
    print("| setting | plain s/update | distilled s/update | ratio |\n|---|---|---|---|")
    for setting in args.settings.split(";"):
        plain = min(seconds_per_update(model, audio, setting, False) for _ in range(3))
        distilled = min(seconds_per_update(model, audio, setting, True) for _ in range(3))
        print(f"| {setting} | {plain:.3f} | {distilled:.3f} | {distilled / plain:.2f} |")
    print(f"\ncommand: python benchmarks/distillation_cost.py --size {args.size} --threads {args.threads}")


if __name__ == "__main__":
    main()
