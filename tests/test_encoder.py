import itertools

import pytest
import torch

import stochw2v
from helpers import padded_batch, small_config
from stochw2v import Encoder, EncoderConfig

LENGTHS = [8000, 5600, 3300]  # 24, 17 and 10 frames: every setting below keeps >= 1 frame


SETTINGS = [
    f"s={s}" + (f",q{q}" if q else "") + (f",kv={kv}" if kv > 1 else "")
    for s, q, kv in itertools.product((1, 2, 3, 4), (None, "2=2"), (1, 2, 3))
]


@pytest.mark.parametrize("setting", SETTINGS)
def test_every_setting_runs_forward_backward_and_keeps_frame_count(setting):
    model = Encoder(small_config())
    audio = padded_batch(LENGTHS)
    out = model(audio, torch.tensor(LENGTHS), compression=setting)
    frames = [model.num_frames(n) for n in LENGTHS]
    assert out.hidden_states.shape == (3, max(frames), 32)
    assert out.lengths.tolist() == frames
    out.hidden_states.square().sum().backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    assert grads["feature_encoder.layers.0.conv.weight"].abs().sum() > 0
    assert grads["context.layers.2.ffn.output.weight"].abs().sum() > 0
    factor = model.resolve(setting).total_factor
    for block in range(8):  # the upsampler blocks this factor uses train; the others get no gradient at all
        grad = grads[f"context.upsample.weights.{block}"]
        assert (grad is not None and grad.abs().sum() > 0) if block < factor else grad is None, block


@pytest.mark.parametrize("conv_norm", ["layer", "group"])
@pytest.mark.parametrize("setting", SETTINGS)
def test_item_in_padded_batch_equals_item_alone(setting, conv_norm):
    model = Encoder(small_config(conv_norm=conv_norm)).eval()
    audio = padded_batch(LENGTHS)
    with torch.no_grad():
        batch = model.encode(audio, torch.tensor(LENGTHS), compression=setting)
        padded_items = 0
        for i, n in enumerate(LENGTHS):
            alone = model.encode(audio[i, :n], compression=setting)
            frames = alone.lengths.item()
            assert batch.lengths[i].item() == frames
            assert torch.allclose(batch.hidden_states[i, :frames], alone.hidden_states[0], atol=1e-4)
            if frames < batch.hidden_states.shape[1]:  # the longest item has no padding to check
                assert batch.hidden_states[i, frames:].abs().max().item() == 0.0
                padded_items += 1
        assert padded_items == len(LENGTHS) - 1


def test_normalised_input_is_gain_and_offset_free_and_padding_blind():
    model = Encoder(small_config(normalize_waveform=True)).eval()
    audio = padded_batch(LENGTHS)
    lengths = torch.tensor(LENGTHS)
    louder = (3.0 * audio + 0.2) * (torch.arange(audio.shape[1])[None] < lengths[:, None])
    with torch.no_grad():
        out = model.encode(audio, lengths, compression="s=2").hidden_states
        assert torch.allclose(model.encode(louder, lengths, compression="s=2").hidden_states, out, atol=1e-4)
        for i, n in enumerate(LENGTHS):
            alone = model.encode(louder[i, :n], compression="s=2")
            frames = alone.lengths.item()
            assert torch.allclose(out[i, :frames], alone.hidden_states[0], atol=1e-4)


def test_pre_ln_runs_every_pooling_kind():
    model = Encoder(small_config(layer_norm_first=True)).eval()
    audio = padded_batch(LENGTHS)
    with torch.no_grad():
        batch = model.encode(audio, LENGTHS, compression="s=2,q2=2,kv=3")
        alone = model.encode(audio[2, :LENGTHS[2]], compression="s=2,q2=2,kv=3")
    assert torch.allclose(batch.hidden_states[2, :10], alone.hidden_states[0], atol=1e-4)


def test_settings_change_the_output_but_share_weights():
    model = Encoder(small_config()).eval()
    audio = padded_batch([6400])
    with torch.no_grad():
        outs = {s: model.encode(audio, compression=s).hidden_states for s in ("s=1", "s=2", "s=2,kv=2", "s=2,q2=2")}
    keys = list(outs)
    for a, b in itertools.combinations(keys, 2):
        assert not torch.allclose(outs[a], outs[b]), (a, b)


def test_squeeze_leaves_tail_frames_zero_like_sew():
    model = Encoder(small_config()).eval()
    audio = padded_batch([8000])  # 24 frames
    with torch.no_grad():
        out = model.encode(audio, compression="s=5").hidden_states  # 4 windows of 5 = 20 frames
    assert out.shape[1] == 24
    assert out[0, 20:].abs().max() == 0 and out[0, :20].abs().min(dim=-1).values.max() > 0


def test_layerdrop_keeps_lengths_when_a_pooling_layer_is_dropped():
    # layer 2 pools its queries; when layerdrop skips it the sequence must still be pooled there,
    # or the upsampler would return the wrong number of frames
    model = Encoder(small_config(layerdrop=0.5)).train()
    audio = padded_batch(LENGTHS)
    seen_dropped = set()
    for seed in range(12):
        torch.manual_seed(seed)
        calls = []
        hooks = [layer.register_forward_hook(lambda *_, i=i, calls=calls: calls.append(i)) for i, layer in
                 enumerate(model.context.layers)]
        out = model(audio, torch.tensor(LENGTHS), compression="s=2,q2=2")
        for hook in hooks:
            hook.remove()
        assert out.hidden_states.shape[1] == model.num_frames(max(LENGTHS))
        assert out.lengths.tolist() == [model.num_frames(n) for n in LENGTHS]
        seen_dropped.add(1 not in calls)
    assert seen_dropped == {True, False}  # both the dropped and the kept pooling layer were exercised


@pytest.mark.parametrize("bad, words", [
    (torch.zeros(0), "empty"),
    (torch.zeros(2, 0), "empty"),
    (torch.zeros(399), "receptive field of 400"),
    (torch.zeros(1, 2, 1000), "1-D"),
    (torch.tensor([float("nan")] * 1000), "NaN or inf"),
    (torch.tensor([0.0] * 999 + [float("inf")]), "NaN or inf"),
    (torch.zeros(1000, dtype=torch.int16), "floating point"),
])
def test_bad_waveforms_raise_clear_errors(bad, words):
    model = Encoder(small_config())
    with pytest.raises(ValueError, match=words):
        model.encode(bad)


def test_bad_lengths_and_settings_raise_clear_errors():
    model = Encoder(small_config())
    audio = padded_batch([4000, 4000])
    with pytest.raises(ValueError, match="1 values for a batch of 2"):
        model.encode(audio, lengths=[4000])
    with pytest.raises(ValueError, match="lie in"):
        model.encode(audio, lengths=[4000, 5000])
    with pytest.raises(ValueError, match="receptive field"):
        model.encode(audio, lengths=[4000, 300])
    with pytest.raises(ValueError, match="but the model has 3 layers"):
        model.encode(audio, compression="q4=2")
    with pytest.raises(ValueError, match="at least 8 frames"):
        model.encode(audio[:, :2000], compression="s=4,q2=2")  # 6 frames
    nan_in_padding = audio.clone()
    nan_in_padding[1, 3000:] = float("nan")
    model.encode(nan_in_padding, lengths=[4000, 3000])  # padding is never read


def test_save_and_load_round_trip(tmp_path):
    model = Encoder(small_config(conv_norm="group")).eval()
    stochw2v.save(model, tmp_path / "m")
    loaded = stochw2v.load(tmp_path / "m")
    assert loaded.config == model.config
    audio = padded_batch([5000])
    with torch.no_grad():
        for setting in ("s=1", "s=3,kv=2"):
            assert torch.equal(model.encode(audio, compression=setting).hidden_states,
                               loaded.encode(audio, compression=setting).hidden_states)


def test_load_reports_bad_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        stochw2v.load(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        stochw2v.load(tmp_path / "empty")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        stochw2v.load(bad)
    (bad / "config.json").write_text('{"model_type": "whisper"}')
    with pytest.raises(ValueError, match="a HF 'whisper' model, not a family stochw2v reads"):
        stochw2v.load(bad)
    (bad / "config.json").write_text('{"hidden_size": 8}')
    with pytest.raises(ValueError, match="neither a stochw2v model"):
        stochw2v.load(bad)
    stochw2v.save(Encoder(small_config()), tmp_path / "m")
    stochw2v.save(Encoder(small_config(dim=64, pos_conv_groups=4)), tmp_path / "other")
    (tmp_path / "other" / "config.json").replace(tmp_path / "m" / "config.json")
    with pytest.raises(ValueError, match="shape mismatch"):
        stochw2v.load(tmp_path / "m")


def test_config_validation_names_the_problem():
    with pytest.raises(ValueError, match="not divisible by num_heads"):
        EncoderConfig(dim=30, num_heads=4)
    with pytest.raises(ValueError, match="conv_norm"):
        EncoderConfig(conv_norm="batch")
    with pytest.raises(ValueError, match="unknown encoder config keys"):
        EncoderConfig.from_dict({"dims": 3})
    assert EncoderConfig().receptive_field == 400 and EncoderConfig().hop == 320
    assert EncoderConfig.tiny().receptive_field == 400


@pytest.mark.parametrize("preset", [EncoderConfig.tiny, pytest.param(EncoderConfig.base, marks=pytest.mark.slow),
                                    pytest.param(EncoderConfig.large, marks=pytest.mark.slow)])
def test_gradients_stay_bounded_on_digital_silence(preset):
    # zero conv biases made layer-normed conv stacks normalise constant vectors on silent frames,
    # and the gradient grew ~300x per layer (1e31 at the tiny preset's input)
    model = Encoder(preset(dropout=0.0, attention_dropout=0.0, feature_dropout=0.0, layerdrop=0.0))
    audio = torch.zeros(1, 16000)
    audio[0, 6000:10000] = 0.3 * torch.randn(4000, generator=torch.Generator().manual_seed(0))
    model(audio).hidden_states.square().mean().backward()
    largest = max(p.grad.abs().max().item() for p in model.parameters() if p.grad is not None)
    assert largest < 1e3


def test_inference_caches_follow_weight_changes():
    # the upsampler's stacked blocks and the weight-normed positional conv are kept between
    # inference calls; an in-place change (an optimizer step, load_state_dict) must renew them
    model = Encoder(small_config()).eval()
    audio = torch.randn(1, 8000)
    with torch.inference_mode():
        before = model.encode(audio, compression="s=2").hidden_states
    with torch.no_grad():
        model.context.pos_conv.weight_g.mul_(2.0)
        model.context.upsample.weights[1].add_(1.0)
        model.context.layers[0].attention.k_proj.weight.mul_(1.5)  # q, k, v are fused at inference
    with torch.inference_mode():
        after = model.encode(audio, compression="s=2").hidden_states
    fresh = Encoder(small_config()).eval()
    fresh.load_state_dict(model.state_dict())
    with torch.inference_mode():
        assert (before - after).abs().max() > 0
        assert torch.equal(after, fresh.encode(audio, compression="s=2").hidden_states)
    with torch.enable_grad():  # the fused inference path equals the three separate projections
        assert torch.allclose(after, model.encode(audio, compression="s=2").hidden_states.detach(), atol=1e-5)


def test_grown_model_computes_the_same_and_its_new_layers_learn(tmp_path):
    """`stochw2v grow`: appended identity layers keep every setting's output, then take gradients."""
    from stochw2v.cli import main
    from stochw2v.data.text import Vocabulary
    from stochw2v.errors import ConfigError
    from stochw2v.model import CTCModel
    from stochw2v.train.growing import grow_depth

    torch.manual_seed(0)
    vocabulary = Vocabulary.from_tokens(["<blank>", "|", *"ABC"])
    model = CTCModel(Encoder(small_config(layer_norm_first=True)), vocabulary).eval()
    for p in model.parameters():  # trained-looking weights, not the zero biases of a fresh init
        p.data.add_(0.05 * torch.randn_like(p))
    stochw2v.save(model, tmp_path / "small")
    assert main(["grow", str(tmp_path / "small"), "--layers", "2", "--out", str(tmp_path / "grown")]) == 0
    grown = stochw2v.load(tmp_path / "grown").eval()
    assert grown.config.num_layers == 5 and grown.vocabulary.tokens == model.vocabulary.tokens
    audio = padded_batch(LENGTHS)
    for setting in ("s=1", "s=3", "s=2,q2=2", "s=1,kv=2"):
        with torch.no_grad():
            before, after = model(audio, torch.tensor(LENGTHS), setting), grown(audio, torch.tensor(LENGTHS), setting)
        assert torch.allclose(before.logits, after.logits, atol=1e-5), setting
    with torch.no_grad():  # the new layers are not all zero: only their output projections are
        assert grown.encoder.context.layers[4].attention.q_proj.weight.abs().sum() > 0
        assert grown.encoder.context.layers[4].ffn.output.weight.abs().sum() == 0
    grown.train()
    grown(audio, torch.tensor(LENGTHS), "s=1").logits.square().sum().backward()
    assert grown.encoder.context.layers[4].ffn.output.weight.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="pre-LN"):
        grow_depth(Encoder(small_config()), 1)


def test_grow_upsampler_keeps_the_factors_a_model_had_and_adds_fresh_blocks_for_the_rest():
    from stochw2v.train.growing import grow_upsampler

    torch.manual_seed(0)
    sew = Encoder(small_config(max_upsample=2)).eval()
    grown = grow_upsampler(sew, 4).eval()
    assert grown.config.max_upsample == 4 and len(grown.context.upsample.weights) == 4
    audio = padded_batch(LENGTHS)
    with torch.no_grad():
        for setting in ("s=1", "s=2"):  # the factors it had: the same output
            assert torch.equal(sew(audio, torch.tensor(LENGTHS), setting).hidden_states,
                               grown(audio, torch.tensor(LENGTHS), setting).hidden_states), setting
        assert grown(audio, torch.tensor(LENGTHS), "s=4").hidden_states.abs().sum() > 0  # a new factor runs
    assert grow_upsampler(grown, 2) is grown  # never shrinks
    plain = grow_upsampler(Encoder(small_config(max_upsample=0)), 4)  # a plain W2V2 encoder gains an upsampler
    assert plain.config.max_upsample == 4 and plain.context.upsample is not None


def test_the_onednn_linear_equals_torch_linear_at_inference_and_trains_through_f_linear():
    from stochw2v.model.linear import Linear

    layer = Linear(48, 96)
    x = torch.randn(3, 17, 48)
    expected = torch.nn.functional.linear(x, layer.weight, layer.bias)
    with torch.inference_mode():
        assert (layer(x) - expected).abs().max() < 1e-5
        assert (layer(x[:, ::2]) - expected[:, ::2]).abs().max() < 1e-5  # a strided input
    layer(x).sum().backward()  # with gradients: F.linear
    assert layer.weight.grad is not None and torch.allclose(layer.weight.grad, x.sum(0).sum(0).expand(96, 48))
    assert set(layer.state_dict()) == {"weight", "bias"}
