"""Pre-training updates per second: our step against HF Wav2Vec2ForPreTraining, same size and batch.

    .venv/bin/python benchmarks/pretrain_speed.py [--updates 10] [--threads 2]

Both run forward, backward and an AdamW step on the same batch (4 x 5 s of audio), with the
tiny recipe's model (d=256, 4 layers, SEW compact conv encoder) and task sizes, interleaved.
"""
from __future__ import annotations

import argparse

import torch
from transformers import Wav2Vec2Config, Wav2Vec2ForPreTraining
from transformers.models.wav2vec2.modeling_wav2vec2 import _compute_mask_indices, _sample_negative_indices

from stochw2v.compute.compression import Compression
from stochw2v.evaluate.timing import interleaved_medians
from stochw2v.model.encoder import Encoder
from stochw2v.train.contrastive import Wav2Vec2Pretraining
from stochw2v.train.recipe import load_recipe


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--updates", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    recipe = load_recipe("src/stochw2v/recipes/pretrain_tiny.yaml")
    enc, task = recipe.model.encoder_config(8), recipe.task
    ours = Wav2Vec2Pretraining(Encoder(enc), task).train()
    hf_config = Wav2Vec2Config(
        conv_dim=[c for c, _, _ in enc.conv_layers], conv_kernel=[k for _, k, _ in enc.conv_layers],
        conv_stride=[s for _, _, s in enc.conv_layers], feat_extract_norm="layer", conv_bias=True,
        do_stable_layer_norm=enc.layer_norm_first,
        hidden_size=enc.dim, num_hidden_layers=enc.num_layers, num_attention_heads=enc.num_heads,
        intermediate_size=enc.ffn_dim, num_conv_pos_embeddings=enc.pos_conv_kernel,
        num_conv_pos_embedding_groups=enc.pos_conv_groups, hidden_dropout=0.0, attention_dropout=0.0,
        activation_dropout=0.0, feat_proj_dropout=0.0, layerdrop=0.0, num_codevectors_per_group=task.codebook_size,
        num_codevector_groups=task.codebook_groups, codevector_dim=task.codevector_dim,
        proj_codevector_dim=task.final_dim, num_negatives=task.num_negatives, mask_time_prob=task.mask_prob,
        mask_time_length=task.mask_length, diversity_loss_weight=task.diversity_weight,
    )
    hf = Wav2Vec2ForPreTraining(hf_config).train()
    audio = torch.randn(4, 80_000) * 0.1
    lengths = torch.full((4,), 80_000)
    frames = int(hf._get_feat_extract_output_lengths(80_000))
    opt_ours = torch.optim.AdamW(ours.parameters(), lr=1e-4)
    opt_hf = torch.optim.AdamW(hf.parameters(), lr=1e-4)

    def step_ours(setting: str) -> None:
        out = ours(audio, lengths, Compression.parse(setting), 0, torch.Generator().manual_seed(0))
        out.loss.backward()
        opt_ours.step()
        opt_ours.zero_grad()

    def step_hf() -> None:
        mask = _compute_mask_indices((4, frames), task.mask_prob, task.mask_length, min_masks=2)
        negatives = _sample_negative_indices((4, frames), task.num_negatives, mask_time_indices=mask)
        out = hf(audio, mask_time_indices=torch.from_numpy(mask),
                 sampled_negative_indices=torch.from_numpy(negatives))
        out.loss.backward()
        opt_hf.step()
        opt_hf.zero_grad()

    steps = {"ours s=1": lambda: step_ours("s=1"), "HF Wav2Vec2ForPreTraining": step_hf,
             "ours s=2": lambda: step_ours("s=2"), "ours s=4": lambda: step_ours("s=4")}
    medians = interleaved_medians(steps, args.updates)
    base = medians["HF Wav2Vec2ForPreTraining"]
    print(f"{args.threads} threads, batch 4 x 5 s, tiny recipe model, median of {args.updates} interleaved updates\n")
    print("| step | s/update | updates/s | updates/s vs HF |\n|---|---|---|---|")
    for name, median in medians.items():
        print(f"| {name} | {median:.3f} | {1 / median:.2f} | {base / median:.2f} |")


if __name__ == "__main__":
    main()
