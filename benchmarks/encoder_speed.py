"""Base-size encoder speed against HF transformers, timed in the same run (ratios, not absolutes).

    .venv/bin/python benchmarks/encoder_speed.py [--repeats 5] [--threads 2] [--seconds 10] \
        [--device cpu|cuda] [--dtypes fp32,bf16] [--batches 1,8] [--onnx]

1. ours vs HF on the same weights (HF's random base model converted): s=1 against Wav2Vec2Model,
   s=2 and s=4 against SEWModel with that squeeze; batch 1 of `--seconds`, and batch 8 of mixed
   lengths (from half to all of `--seconds`, padded, with lengths / attention mask); each dtype;
   every candidate warmed up fully, then interleaved (evaluate/timing.py); CUDA synchronised;
   with --onnx, our graph exported at that setting and run by ONNX Runtime with the same threads, in
   fp32 and int8 (setting@int8: dynamically quantized matrix products);
2. a table of our time and MACs per setting, pooling included.
Target: ours / HF <= 0.90 at s=1 and s=2.
"""
from __future__ import annotations

import argparse
import tempfile
from functools import partial

import torch
from transformers import SEWConfig, SEWModel, Wav2Vec2Config, Wav2Vec2Model

import stochw2v
from stochw2v.evaluate.profile import format_table, profile
from stochw2v.evaluate.timing import interleaved_medians, thread_note

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def batch_of(size: int, seconds: float, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    longest = int(seconds * 16000)
    lengths = torch.linspace(longest // 2, longest, size).long() if size > 1 else torch.tensor([longest])
    g = torch.Generator().manual_seed(size)
    audio = torch.randn(size, longest, generator=g)
    audio = audio * (torch.arange(longest)[None] < lengths[:, None])
    return audio.to(device), lengths.to(device)


def onnx_runner(model, setting: str, folder: str, precision: str = "fp32"):
    """A function running `model` at `setting` under ONNX Runtime (same threads), or None without it."""
    try:
        import onnxruntime  # noqa: F401 - only whether it is installed
    except ImportError:
        return None
    from stochw2v.formats.onnx import export_onnx, open_session

    point = setting if precision == "fp32" else f"{setting}@{precision}"
    path = export_onnx(model, f"{folder}/m-{precision}.onnx", point)
    session = open_session(path, precision, torch.get_num_threads())
    return lambda audio, lengths: session.run(None, {"waveforms": audio.numpy(), "lengths": lengths.numpy()})


def compare(hf_model, setting: str, args, device: torch.device) -> list[tuple]:
    """Rows (setting, batch, dtype, ours s, HF s, ratio, max diff, ONNX Runtime s) for one HF model."""
    hf_model.eval()
    with tempfile.TemporaryDirectory() as folder:
        hf_model.save_pretrained(folder)
        ours = stochw2v.load(folder)
        ort = onnx_runner(ours, setting, folder) if args.onnx and device.type == "cpu" else None
        ort8 = onnx_runner(ours, setting, folder, "int8") if args.onnx and device.type == "cpu" else None
    rows = []
    for dtype_name in args.dtypes.split(","):
        dtype = DTYPES[dtype_name]
        hf, mine = hf_model.to(device, dtype), ours.to(device, dtype)
        for size in [int(b) for b in args.batches.split(",")]:
            audio, lengths = batch_of(size, args.seconds, device)
            audio = audio.to(dtype)
            mask = (torch.arange(audio.shape[1], device=device)[None] < lengths[:, None]).long()
            hf_mask = mask if size > 1 else None
            ours_lengths = lengths if size > 1 else None
            with torch.inference_mode():
                ref = hf(audio, attention_mask=hf_mask).last_hidden_state[-1]  # the unpadded item
                got = mine.encode(audio, ours_lengths, compression=setting).hidden_states[-1]
                frames = min(ref.shape[0], got.shape[0])
                diff = (ref[:frames].float() - got[:frames].float()).abs().max().item()
                jobs = {"ours": partial(mine.encode, audio, ours_lengths, compression=setting),
                        "hf": partial(hf, audio, attention_mask=hf_mask)}
                if ort is not None and dtype == torch.float32:
                    jobs["onnx"] = partial(ort, audio.cpu().float(), lengths.cpu())
                    jobs["onnx_int8"] = partial(ort8, audio.cpu().float(), lengths.cpu())
                medians = interleaved_medians(jobs, args.repeats)
            ratio = medians["ours"] / medians["hf"]
            rows.append((setting, size, dtype_name, medians["ours"], medians["hf"], ratio, diff, medians.get("onnx"),
                         medians.get("onnx_int8")))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtypes", default="fp32")
    parser.add_argument("--batches", default="1")
    parser.add_argument("--onnx", action="store_true", help="also time the model exported to ONNX Runtime (CPU)")
    parser.add_argument("--settings", default="s=1;s=2;s=3;s=4;s=1,kv=2;s=2,kv=2;s=2,q7=2;s=2,q4=2,kv=2;s=4,q7=2")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    print(f"{thread_note()}, {device}{' ' + torch.cuda.get_device_name() if device.type == 'cuda' else ''}, "
          f"{args.seconds:g} s audio, median of {args.repeats} interleaved runs after a warm-up")

    print("\n| setting | HF model | batch | dtype | ours (s) | HF (s) | ours / HF | ONNX Runtime fp32 (s) | "
          "ORT / ours | ORT int8 (s) | int8 / ORT fp32 | max abs diff |\n" + "|---" * 12 + "|")
    for name, hf_model, setting in (
        ("Wav2Vec2Model", Wav2Vec2Model(Wav2Vec2Config()), "s=1"),
        ("SEWModel squeeze 2", SEWModel(SEWConfig(squeeze_factor=2)), "s=2"),
        ("SEWModel squeeze 4", SEWModel(SEWConfig(squeeze_factor=4)), "s=4"),
    ):
        for row in compare(hf_model, setting, args, device):
            s, size, dtype, ours_s, hf_s, ratio, diff, onnx_s, int8_s = row
            onnx_text = "- | -" if onnx_s is None else f"{onnx_s:.4f} | {onnx_s / ours_s:.2f}"
            int8_text = "- | -" if int8_s is None else f"{int8_s:.4f} | {int8_s / onnx_s:.2f}"
            print(f"| {s} | {name} | {size} | {dtype} | {ours_s:.4f} | {hf_s:.4f} | {ratio:.2f} | {onnx_text} | "
                  f"{int8_text} | {diff:.1e} |", flush=True)

    print("\nOur base encoder (W2V2 conv encoder, upsampler up to 8), per setting, fp32 batch 1:")
    model = stochw2v.Encoder(stochw2v.EncoderConfig.base()).to(device)
    rows = profile(model, stochw2v.Compression.parse_list(args.settings), args.seconds, args.repeats)
    print(format_table(rows, args.seconds))


if __name__ == "__main__":
    main()
