"""Base-size encoder speed against HF transformers, timed in the same run (ratios, not absolutes).

    .venv/bin/python benchmarks/encoder_speed.py [--repeats 5] [--threads 2] [--seconds 10]

1. ours at s=1 vs HF Wav2Vec2Model, same weights (HF's random base model converted);
2. ours at s=2 vs HF SEWModel (squeeze 2), same weights;
3. a table of our time and MACs for s=1..4, with and without query / key-value pooling.
Target: ratio ours/HF <= 1.0 at each.
"""
from __future__ import annotations

import argparse
import tempfile

import torch
from transformers import SEWConfig, SEWModel, Wav2Vec2Config, Wav2Vec2Model

import stochw2v
from stochw2v.evaluate.profile import format_table, profile
from stochw2v.evaluate.timing import interleaved_medians


def pair(hf_model: torch.nn.Module, setting: str, audio: torch.Tensor, repeats: int) -> tuple[float, float, float]:
    hf_model.eval()
    with tempfile.TemporaryDirectory() as folder:
        hf_model.save_pretrained(folder)
        ours = stochw2v.load(folder)
    with torch.inference_mode():
        diff = (ours.encode(audio, compression=setting).hidden_states - hf_model(audio).last_hidden_state).abs().max()
        medians = interleaved_medians({
            "ours": lambda: ours.encode(audio, compression=setting),
            "hf": lambda: hf_model(audio),
        }, repeats)
    return medians["ours"], medians["hf"], float(diff)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--settings", default="s=1;s=2;s=3;s=4;s=1,kv=2;s=2,kv=2;s=2,q7=2;s=2,q4=2,kv=2;s=4,q7=2")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    audio = torch.randn(1, int(args.seconds * 16_000))
    print(f"torch {torch.__version__}, {args.threads} threads, {args.seconds:g} s audio, batch 1, "
          f"median of {args.repeats} interleaved runs")

    print("\n| comparison | ours (s) | HF (s) | ours / HF | max abs diff |\n|---|---|---|---|---|")
    for name, hf_model, setting in (
        ("s=1 vs Wav2Vec2Model (base)", Wav2Vec2Model(Wav2Vec2Config()), "s=1"),
        ("s=2 vs SEWModel squeeze 2 (base)", SEWModel(SEWConfig(squeeze_factor=2)), "s=2"),
    ):
        ours_s, hf_s, diff = pair(hf_model, setting, audio, args.repeats)
        print(f"| {name} | {ours_s:.3f} | {hf_s:.3f} | {ours_s / hf_s:.2f} | {diff:.1e} |")

    print("\nOur base encoder (W2V2 conv encoder, upsampler up to 8), per setting:")
    model = stochw2v.Encoder(stochw2v.EncoderConfig.base())
    rows = profile(model, stochw2v.Compression.parse_list(args.settings), args.seconds, args.repeats)
    print(format_table(rows, args.seconds))


if __name__ == "__main__":
    main()
