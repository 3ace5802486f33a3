"""Analytic MAC counts against torch's FLOP counter, and the savings each setting should give."""
import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from helpers import small_config
from stochw2v import Encoder, EncoderConfig, count_macs


def _math_attention(q, k, v, attn_mask=None, **_):
    """SDPA as plain matmuls, which the FLOP counter sees (its CPU kernel it does not)."""
    scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    if attn_mask is not None and attn_mask.dtype == torch.bool:
        scores = scores.masked_fill(~attn_mask, float("-inf"))
    elif attn_mask is not None:  # a float mask is added (WavLM's position bias)
        scores = scores + attn_mask
    return scores.softmax(-1) @ v


@pytest.mark.parametrize("setting", ["s=1", "s=2", "s=3,kv=2", "s=2,q2=2", "s=1,q1=3,kv2=2", "s=4,q3=2,kv=3"])
@pytest.mark.parametrize("variant", [{"conv_norm": "group"}, {"conv_norm": "layer"},
                                     {"conv_norm": "layer", "pos_conv_depth": 3, "pos_conv_kernel": 7},
                                     {"relative_position_buckets": 32, "relative_position_max_distance": 100}],
                         ids=["group", "layer", "data2vec-pos-conv-stack", "wavlm-gated-bias"])
def test_count_macs_equals_flop_counter(setting, variant, monkeypatch):
    model = Encoder(small_config(**variant)).eval()
    seconds = 0.77
    audio = torch.randn(1, int(seconds * 16000))
    monkeypatch.setattr(F, "scaled_dot_product_attention", _math_attention)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.encode(audio, compression=setting)
    assert counter.get_total_flops() == 2 * count_macs(model, setting, seconds).total


def test_transformer_macs_fall_with_squeeze_and_attention_faster():
    config = EncoderConfig.base()
    base = count_macs(config, "s=1")
    for k in (2, 3, 4):
        squeezed = count_macs(config, f"s={k}")
        linear_part = (squeezed.transformer - squeezed.attention) / (base.transformer - base.attention)
        assert linear_part == pytest.approx(1 / k, rel=0.01)
        assert squeezed.attention / base.attention == pytest.approx(1 / k**2, rel=0.02)  # quadratic terms
        assert 1 / k**2 < squeezed.transformer / base.transformer <= 1 / k  # about 1/k overall
        assert squeezed.transformer / base.transformer == pytest.approx(1 / k, rel=0.12)
        assert squeezed.conv_encoder == base.conv_encoder


def test_kv_pooling_reduces_only_attention_terms():
    config = EncoderConfig.base()
    plain, pooled = count_macs(config, "s=2"), count_macs(config, "s=2,kv=2")
    assert pooled.attention == pytest.approx(plain.attention / 2, rel=0.01)
    non_attention_saved = (plain.transformer - plain.attention) - (pooled.transformer - pooled.attention)
    frames = config.num_frames(160_000) // 2  # 249 after the squeeze
    kv_projection_saved = 12 * 2 * (frames - (frames + 1) // 2) * 768 * 768
    assert non_attention_saved == kv_projection_saved  # besides attention only k/v projections shrink
    assert pooled.conv_encoder == plain.conv_encoder and pooled.rest == plain.rest


def test_base_model_macs_match_hf_measurement():
    config = EncoderConfig.base(max_upsample=0)
    macs = count_macs(config, "s=1", seconds=10.0)
    # measured with torch's counter on HF's model (shared/FACTS.md): 14.8 GFLOP per audio second, conv 4.9
    assert macs.total * 2 / 1e9 / 10 == pytest.approx(14.8, rel=0.01)
    assert macs.conv_encoder * 2 / 1e9 / 10 == pytest.approx(4.9, rel=0.01)
