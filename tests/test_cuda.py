"""What only a GPU can check (marked `cuda`; skipped without CUDA; scripts/gpu_check.sh runs them)."""
import pytest
import torch

import stochw2v
from helpers import padded_batch, small_config
from stochw2v.data import Vocabulary

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (scripts/gpu_check.sh)")]
LENGTHS = [16000, 12000, 7000]


@pytest.mark.parametrize("setting", ["s=1", "s=2", "s=4", "s=2,kv=2", "s=2,q2=2"])
def test_the_encoder_on_cuda_equals_it_on_cpu_on_a_padded_batch(setting):
    model = stochw2v.Encoder(small_config()).eval()
    audio, lengths = padded_batch(LENGTHS), torch.tensor(LENGTHS)
    with torch.inference_mode():
        cpu = model(audio, lengths, setting)
        gpu = model.cuda()(audio.cuda(), lengths.cuda(), setting)
    assert torch.equal(cpu.lengths, gpu.lengths.cpu())
    assert torch.allclose(cpu.hidden_states, gpu.hidden_states.cpu(), atol=1e-4, rtol=1e-4)


def test_bf16_autocast_on_cuda_stays_close_to_fp32():
    model = stochw2v.CTCModel(stochw2v.Encoder(small_config()), Vocabulary()).eval().cuda()
    audio, lengths = padded_batch(LENGTHS).cuda(), torch.tensor(LENGTHS).cuda()
    with torch.inference_mode():
        full = model(audio, lengths, "s=2").logits.float()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            half = model(audio, lengths, "s=2").logits.float()
    assert torch.isfinite(half).all()
    assert (half - full).abs().max() / full.abs().max() < 0.05


def test_a_distilled_training_step_on_cuda_is_finite_and_moves_the_weights():
    model = stochw2v.CTCModel(stochw2v.Encoder(small_config()), Vocabulary()).train().cuda()
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    audio, lengths = padded_batch(LENGTHS).cuda(), torch.tensor(LENGTHS).cuda()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(audio, lengths, "s=2", reference="s=1")
    loss = out.logits.float().log_softmax(-1).mean() + out.reference_logits.float().log_softmax(-1).mean()
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
