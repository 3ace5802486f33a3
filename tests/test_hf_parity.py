"""Our encoder against HF transformers on converted weights (the reference oracle)."""
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

transformers = pytest.importorskip("transformers", reason="HF transformers is the test oracle (pip install .[test])")
from transformers import (  # noqa: E402
    AutoModel,
    Data2VecAudioConfig,
    Data2VecAudioModel,
    HubertConfig,
    HubertForCTC,
    HubertModel,
    SEWConfig,
    SEWModel,
    Wav2Vec2Config,
    Wav2Vec2ForCTC,
    Wav2Vec2Model,
    WavLMConfig,
    WavLMForCTC,
    WavLMModel,
)

import stochw2v  # noqa: E402
from helpers import padded_batch  # noqa: E402

SMALL = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
    conv_dim=(32, 32, 32), conv_kernel=(10, 3, 3), conv_stride=(5, 2, 2),
    num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
)
LENGTHS = [6000, 4700, 3100]
# data2vec-audio's num_conv_pos_embeddings counts its positional convs (a kernel of conv_pos_kernel_size each)
DATA2VEC = {**SMALL, "num_conv_pos_embeddings": 3}
WAVLM = {**SMALL, "num_buckets": 32, "max_bucket_distance": 100}


def _save(hf_model, path):
    hf_model.eval().save_pretrained(path)
    return path


def _hf_hidden(hf_model, audio, lengths=None):
    mask = None
    if lengths is not None:
        mask = (torch.arange(audio.shape[1])[None] < torch.tensor(lengths)[:, None]).long()
    with torch.no_grad():
        return hf_model(audio, attention_mask=mask).last_hidden_state


def _max_diff_valid(ref, ours, frames):
    return max((ref[i, :n] - ours[i, :n]).abs().max().item() for i, n in enumerate(frames))


HF_CASES = {
    "w2v2-post-ln-group": lambda: Wav2Vec2Model(Wav2Vec2Config(**SMALL)),
    "w2v2-post-ln-layer": lambda: Wav2Vec2Model(Wav2Vec2Config(**SMALL, feat_extract_norm="layer", conv_bias=True)),
    "w2v2-pre-ln-layer": lambda: Wav2Vec2Model(Wav2Vec2Config(
        **SMALL, feat_extract_norm="layer", conv_bias=True, do_stable_layer_norm=True)),
    "sew-s1": lambda: SEWModel(SEWConfig(**SMALL, squeeze_factor=1)),
    "sew-s2": lambda: SEWModel(SEWConfig(**SMALL, squeeze_factor=2)),
    "sew-s3": lambda: SEWModel(SEWConfig(**SMALL, squeeze_factor=3)),
    "hubert-post-ln-group": lambda: HubertModel(HubertConfig(**SMALL)),
    "hubert-pre-ln-layer": lambda: HubertModel(HubertConfig(
        **SMALL, feat_extract_norm="layer", conv_bias=True, do_stable_layer_norm=True)),
    "wavlm-post-ln-group": lambda: WavLMModel(WavLMConfig(**WAVLM)),
    "wavlm-pre-ln-layer": lambda: WavLMModel(WavLMConfig(
        **WAVLM, feat_extract_norm="layer", conv_bias=True, do_stable_layer_norm=True)),
    "data2vec-odd-kernel": lambda: Data2VecAudioModel(Data2VecAudioConfig(**DATA2VEC, conv_pos_kernel_size=7)),
    "data2vec-even-kernel": lambda: Data2VecAudioModel(Data2VecAudioConfig(**DATA2VEC, conv_pos_kernel_size=8,
                                                                           conv_bias=True)),
}


@pytest.mark.parametrize("case", HF_CASES)
def test_loaded_hf_model_gives_hf_hidden_states(case, tmp_path):
    hf = HF_CASES[case]()
    model = stochw2v.load(_save(hf, tmp_path / case))
    audio = torch.randn(2, 6000)
    ref = _hf_hidden(hf, audio)
    with torch.no_grad():
        ours = model.encode(audio).hidden_states  # the checkpoint's own setting by default
    assert ours.shape == ref.shape
    assert (ours - ref).abs().max().item() < 1e-4


@pytest.mark.parametrize("case", ["w2v2-post-ln-layer", "w2v2-pre-ln-layer", "hubert-pre-ln-layer",
                                  "wavlm-pre-ln-layer"])
def test_padded_batch_with_attention_mask_matches_hf(case, tmp_path):
    hf = HF_CASES[case]()
    model = stochw2v.load(_save(hf, tmp_path / case))
    audio = padded_batch(LENGTHS)
    ref = _hf_hidden(hf, audio, LENGTHS)
    with torch.no_grad():
        out = model.encode(audio, lengths=LENGTHS)
    assert _max_diff_valid(ref, out.hidden_states, out.lengths.tolist()) < 1e-4


@pytest.mark.parametrize("squeeze", [2, 3])
def test_sew_padded_item_matches_hf_run_alone(squeeze, tmp_path):
    # HF SEW counts a partial last pooling window as valid (averaged with padding), so its padded
    # outputs depend on the padding; ours equal the item run alone, which we compare with HF alone.
    hf = SEWModel(SEWConfig(**SMALL, squeeze_factor=squeeze, feat_extract_norm="layer", conv_bias=True))
    model = stochw2v.load(_save(hf, tmp_path / "sew"))
    audio = padded_batch(LENGTHS)
    with torch.no_grad():
        out = model.encode(audio, lengths=LENGTHS)
    for i, n in enumerate(LENGTHS):
        ref = _hf_hidden(hf, audio[i:i + 1, :n])[0]
        assert (out.hidden_states[i, : ref.shape[0]] - ref).abs().max().item() < 1e-4


@pytest.mark.parametrize("case", ["data2vec-odd-kernel", "data2vec-even-kernel"])
def test_data2vec_padded_item_matches_hf_run_alone(case, tmp_path):
    # HF data2vec-audio lets padding leak from its first positional conv into the next ones, so its padded
    # outputs depend on the batch; ours zero past each end between the convs and equal the item run alone
    hf = HF_CASES[case]()
    model = stochw2v.load(_save(hf, tmp_path / case))
    assert model.config.family == "data2vec-audio" and model.config.pos_conv_depth == 3
    audio = padded_batch(LENGTHS)
    with torch.no_grad():
        out = model.encode(audio, lengths=LENGTHS)
    for i, n in enumerate(LENGTHS):
        ref = _hf_hidden(hf, audio[i:i + 1, :n])[0]
        assert (out.hidden_states[i, : ref.shape[0]] - ref).abs().max().item() < 1e-4


def test_legacy_weight_norm_names_and_ctc_checkpoints_load(tmp_path):
    hf = Wav2Vec2ForCTC(Wav2Vec2Config(**SMALL, vocab_size=12)).eval()
    folder = _save(hf, tmp_path / "ctc")
    state = load_file(str(folder / "model.safetensors"))
    renamed = {}
    for key, value in state.items():
        key = key.replace("parametrizations.weight.original0", "weight_g")
        renamed[key.replace("parametrizations.weight.original1", "weight_v")] = value
    assert any(k.endswith("weight_g") for k in renamed)
    save_file(renamed, str(folder / "model.safetensors"), metadata={"format": "pt"})
    model = stochw2v.load(folder)
    audio = torch.randn(1, 5000)
    with torch.no_grad():
        ref = hf.wav2vec2(audio).last_hidden_state
        assert (model.encode(audio).hidden_states - ref).abs().max().item() < 1e-4


def test_hubert_recogniser_loads_with_hf_logits_and_exports_back_as_hubert(tmp_path):
    hf = HubertForCTC(HubertConfig(**SMALL, vocab_size=12, feat_extract_norm="layer", conv_bias=True)).eval()
    folder = _save(hf, tmp_path / "hubert")
    tokens = ["<pad>", "|"] + list("abcdefghij")
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    model = stochw2v.load(folder)
    assert isinstance(model, stochw2v.CTCModel) and model.encoder.config.family == "hubert"
    audio = padded_batch(LENGTHS)
    mask = (torch.arange(audio.shape[1])[None] < torch.tensor(LENGTHS)[:, None]).long()
    with torch.no_grad():
        ref = hf(audio, attention_mask=mask).logits
        out = model(audio, lengths=LENGTHS)
    assert _max_diff_valid(ref, out.logits, out.lengths.tolist()) < 1e-4
    stochw2v.export_hf(model, tmp_path / "back")
    again = HubertForCTC.from_pretrained(tmp_path / "back")
    assert json.loads((tmp_path / "back" / "config.json").read_text())["architectures"] == ["HubertForCTC"]
    with torch.no_grad():
        assert (again.eval()(audio, attention_mask=mask).logits - ref).abs().max().item() < 1e-5


def test_unsupported_families_and_hubert_variants_are_refused_by_name(tmp_path):
    folder = _save(HubertModel(HubertConfig(**SMALL)), tmp_path / "h")
    config = json.loads((folder / "config.json").read_text())
    for key, value, message in (("feat_proj_layer_norm", False, "feat_proj_layer_norm=false"),
                                ("conv_pos_batch_norm", True, "conv_pos_batch_norm=true"),
                                ("model_type", "whisper", "'whisper' model, not a family stochw2v reads")):
        (folder / "config.json").write_text(json.dumps({**config, key: value}))
        with pytest.raises(ValueError, match=message):
            stochw2v.load(folder)
    ctc = _save(Wav2Vec2ForCTC(Wav2Vec2Config(**SMALL, vocab_size=12)), tmp_path / "w2v2-ctc")
    config = json.loads((ctc / "config.json").read_text())
    (ctc / "config.json").write_text(json.dumps({**config, "model_type": "hubert"}))
    with pytest.raises(ValueError, match="says model_type 'hubert' but the weights are a 'wav2vec2' model's"):
        stochw2v.load(ctc)


def test_inconsistent_hf_checkpoints_give_clear_errors(tmp_path):
    folder = _save(Wav2Vec2Model(Wav2Vec2Config(**SMALL)), tmp_path / "w")
    config = json.loads((folder / "config.json").read_text())
    config["hidden_size"] = 64
    config["intermediate_size"] = 64
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="shape mismatch"):
        stochw2v.load(folder)
    (folder / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="no model.safetensors"):
        stochw2v.load(folder)


@pytest.mark.parametrize("case", ["w2v2-post-ln-group", "w2v2-pre-ln-layer", "sew-s1", "sew-s2", "sew-s3",
                                  "hubert-post-ln-group", "hubert-pre-ln-layer", "data2vec-odd-kernel",
                                  "data2vec-even-kernel", "wavlm-post-ln-group", "wavlm-pre-ln-layer"])
def test_export_round_trip_gives_hf_the_same(case, tmp_path):
    hf = HF_CASES[case]()
    model = stochw2v.load(_save(hf, tmp_path / "in"))
    stochw2v.export_hf(model, tmp_path / "out")
    again = AutoModel.from_pretrained(tmp_path / "out").eval()
    assert type(again) is type(hf)
    audio = torch.randn(2, 5000)
    assert (_hf_hidden(again, audio) - _hf_hidden(hf, audio)).abs().max().item() < 1e-5


@pytest.mark.parametrize("setting", ["s=1", "s=2", "s=4"])
def test_stochastic_model_exports_each_fixed_squeeze_as_sew(setting, tmp_path):
    from helpers import small_config

    model = stochw2v.Encoder(small_config(conv_norm="group", conv_bias=False, dim=48)).eval()
    stochw2v.export_hf(model, tmp_path / "sew", compression=setting)
    hf = AutoModel.from_pretrained(tmp_path / "sew").eval()
    assert isinstance(hf, SEWModel)
    audio = torch.randn(1, 8000)
    with torch.no_grad():
        ours = model.encode(audio, compression=setting).hidden_states
    assert (ours - _hf_hidden(hf, audio)).abs().max().item() < 1e-4


def test_export_refuses_what_hf_cannot_express(tmp_path):
    from helpers import small_config

    model = stochw2v.Encoder(small_config())
    with pytest.raises(ValueError, match="cannot express query or key-value pooling"):
        stochw2v.export_hf(model, tmp_path / "x", compression="s=2,kv=2")
    with pytest.raises(ValueError, match="no pre-LN"):
        stochw2v.export_hf(stochw2v.Encoder(small_config(layer_norm_first=True)), tmp_path / "y", "s=2")


def test_input_normalisation_matches_hf_feature_extractor_both_ways(tmp_path):
    """do_normalize lives in HF's feature extractor; ours is in the model, over valid samples."""
    from transformers import AutoFeatureExtractor

    hf = Wav2Vec2Model(Wav2Vec2Config(**SMALL, feat_extract_norm="layer", conv_bias=True)).eval()
    folder = _save(hf, tmp_path / "hf")
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "feature_extractor_type": "Wav2Vec2FeatureExtractor", "feature_size": 1, "sampling_rate": 16000,
        "padding_value": 0.0, "do_normalize": True, "return_attention_mask": True}))
    model = stochw2v.load(folder)
    assert model.config.normalize_waveform

    quiet = [0.05 * torch.randn(n) + 0.01 for n in LENGTHS]  # quiet, with a DC offset
    extractor = AutoFeatureExtractor.from_pretrained(folder)
    inputs = extractor([x.numpy() for x in quiet], sampling_rate=16000, padding=True, return_tensors="pt")
    with torch.no_grad():
        ref = hf(inputs.input_values, attention_mask=inputs.attention_mask).last_hidden_state
        audio = torch.nn.utils.rnn.pad_sequence(quiet, batch_first=True)
        out = model.encode(audio, torch.tensor(LENGTHS))
    assert _max_diff_valid(ref, out.hidden_states, out.lengths.tolist()) < 1e-4

    stochw2v.export_hf(model, tmp_path / "out")
    assert AutoFeatureExtractor.from_pretrained(tmp_path / "out").do_normalize
    assert stochw2v.load(tmp_path / "out").config.normalize_waveform


def _hub_cache(tmp_path, repo_id, source):
    """A folder in huggingface_hub's cache layout holding `source`'s files at one revision."""
    import shutil

    repo = tmp_path / "cache" / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / "0123456789abcdef0123456789abcdef01234567"
    snapshot.mkdir(parents=True)
    for file in source.iterdir():
        shutil.copy(file, snapshot / file.name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(snapshot.name)
    return tmp_path / "cache"


def test_hub_ids_load_from_the_cache_offline(tmp_path, monkeypatch, capsys):
    hf = Wav2Vec2Model(Wav2Vec2Config(**SMALL)).eval()
    cache = _hub_cache(tmp_path, "someone/tiny-w2v2", _save(hf, tmp_path / "src"))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    model = stochw2v.load("someone/tiny-w2v2")
    audio = torch.randn(1, 6000)
    assert (model.encode(audio).hidden_states - _hf_hidden(hf, audio)).abs().max().item() < 1e-4
    with pytest.raises(stochw2v.Stochw2vError, match="someone/other: no such folder, and not a model in .*"
                                                      "HF_HUB_OFFLINE is set"):
        stochw2v.load("someone/other")
    from stochw2v.cli import main

    assert main(["profile", "--model", "someone/tiny-w2v2", "--seconds", "1", "--repeats", "1"]) == 0
    assert "| s=1 |" in capsys.readouterr().out


def test_a_data2vec_model_made_on_demand_runs_every_squeeze_batch_independently(tmp_path):
    from stochw2v.train.growing import grow_upsampler

    model = grow_upsampler(stochw2v.load(_save(HF_CASES["data2vec-even-kernel"](), tmp_path / "d")), 4).eval()
    audio = padded_batch(LENGTHS)
    for setting in ("s=1", "s=2", "s=4"):
        with torch.no_grad():
            batch = model.encode(audio, lengths=LENGTHS, compression=setting)
            alone = model.encode(audio[2:, :LENGTHS[2]], compression=setting)
        frames = alone.lengths.item()
        assert batch.lengths[2].item() == frames
        assert (batch.hidden_states[2, :frames] - alone.hidden_states[0, :frames]).abs().max().item() < 1e-5
    cost = [stochw2v.count_macs(model, setting).transformer for setting in ("s=1", "s=2", "s=4")]
    assert cost[0] > cost[1] > cost[2]
    with pytest.raises(ValueError, match="has no upsampler and HF SEW has one weight-normed positional conv"):
        stochw2v.export_hf(model, tmp_path / "x", compression="s=2")


def test_wavlm_recogniser_gives_hf_logits_on_a_padded_batch(tmp_path):
    hf = WavLMForCTC(WavLMConfig(**WAVLM, vocab_size=12, feat_extract_norm="layer", conv_bias=True)).eval()
    folder = _save(hf, tmp_path / "wavlm")
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(["<pad>", "|"] + list("abcdefghij"))}))
    model = stochw2v.load(folder)
    assert isinstance(model, stochw2v.CTCModel) and model.encoder.config.relative_position_buckets == 32
    audio = padded_batch(LENGTHS)
    mask = (torch.arange(audio.shape[1])[None] < torch.tensor(LENGTHS)[:, None]).long()
    with torch.no_grad():
        out = model(audio, lengths=LENGTHS)
        assert _max_diff_valid(hf(audio, attention_mask=mask).logits, out.logits, out.lengths.tolist()) < 1e-4


def test_a_wavlm_table_that_disagrees_with_num_buckets_is_refused_by_key(tmp_path):
    folder = _save(WavLMModel(WavLMConfig(**WAVLM)), tmp_path / "w")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "num_buckets": 64}))
    with pytest.raises(ValueError, match=r"num_buckets=64 .*\(rel_attn_embed\) is \(32, 4\)"):
        stochw2v.load(folder)


def _hand_pooled_attention(attention, x, bias, factor):
    """Key-value pooling at `factor` written out: keys, values and the bias averaged over each window of
    key frames by explicit loops (the last window over the frames it has), then plain softmax attention."""
    time, dim = x.shape[1], x.shape[2]
    heads, head_dim = attention.num_heads, dim // attention.num_heads
    windows = [list(range(start, min(start + factor, time))) for start in range(0, time, factor)]
    pooled = torch.stack([x[0, w].mean(0) for w in windows])[None]
    pooled_bias = torch.stack([bias[0, :, :, w].mean(-1) for w in windows], dim=-1)  # [H, Tq, Tk']
    gate = attention.gate(x, bias)[0] / bias[0]  # the gate alone, per head and query
    q = attention.q_proj(x)[0].view(time, heads, head_dim).transpose(0, 1)
    k = attention.k_proj(pooled)[0].view(-1, heads, head_dim).transpose(0, 1)
    v = attention.v_proj(pooled)[0].view(-1, heads, head_dim).transpose(0, 1)
    scores = q @ k.transpose(-1, -2) / head_dim ** 0.5 + gate[..., :1] * pooled_bias
    out = (scores.softmax(-1) @ v).transpose(0, 1).reshape(time, dim)
    return attention.out_proj(out)[None]


@pytest.mark.parametrize("time", [12, 13])
def test_wavlm_key_value_pooling_equals_pooling_keys_values_and_bias_by_hand(time, tmp_path):
    from stochw2v.model.relative_position import pool_bias_keys

    model = stochw2v.load(_save(HF_CASES["wavlm-post-ln-group"](), tmp_path / "w")).eval()
    attention = model.context.layers[0].attention
    x = torch.randn(1, time, 32)
    bias = model.context.relative_position(time)
    with torch.no_grad():
        torch.nn.init.normal_(attention.gate.linear.weight)  # a gate that varies by query and head
        ours = attention(x, torch.nn.functional.avg_pool1d(x.transpose(1, 2), 2, ceil_mode=True).transpose(1, 2),
                         None, pool_bias_keys(bias, None, 2))
        assert (ours - _hand_pooled_attention(attention, x, bias, 2)).abs().max().item() < 1e-5


def test_wavlm_at_every_pooling_setting_gives_each_item_its_result_alone(tmp_path):
    from stochw2v.train.growing import grow_upsampler

    model = grow_upsampler(stochw2v.load(_save(HF_CASES["wavlm-pre-ln-layer"](), tmp_path / "w")), 4).eval()
    audio = padded_batch(LENGTHS)
    for setting in ("s=1,kv=2", "s=2,q2=2", "s=2,kv=3", "s=4"):
        with torch.no_grad():
            batch = model.encode(audio, lengths=LENGTHS, compression=setting)
            alone = model.encode(audio[2:, :LENGTHS[2]], compression=setting)
        frames = alone.lengths.item()
        assert (batch.hidden_states[2, :frames] - alone.hidden_states[0, :frames]).abs().max().item() < 1e-5, setting
    with pytest.raises(ValueError, match="no relative position bias"):
        stochw2v.export_hf(model, tmp_path / "x", compression="s=2")
