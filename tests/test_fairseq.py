"""fairseq checkpoints in, without fairseq and without running pickled code.

The checkpoints are built the way fairseq writes them (a torch.save'd dict: `cfg` an omegaconf
DictConfig, or `args` an argparse Namespace for older ones, `model`, `optimizer_history`,
`extra_state`), from HF models whose weights are renamed to fairseq's names; outputs must equal HF's.
"""
import argparse
import os
import re

import pytest
import torch

import stochw2v
from stochw2v.cli import main
from stochw2v.model import CTCModel

transformers = pytest.importorskip("transformers", reason="HF transformers is the test oracle")
omegaconf = pytest.importorskip("omegaconf", reason="omegaconf builds fairseq-style configs (pip install .[test])")

SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
             conv_dim=(32, 32, 32), conv_kernel=(10, 3, 3), conv_stride=(5, 2, 2), num_conv_pos_embeddings=16,
             num_conv_pos_embedding_groups=4)
CONV = "[(32, 10, 5)] + [(32, 3, 2)] * 2"
TO_FAIRSEQ = [  # HF name -> fairseq name (the inverse of HF's conversion scripts)
    (r"feature_extractor\.conv_layers\.(\d+)\.conv\.", r"feature_extractor.conv_layers.\1.0."),
    (r"feature_extractor\.conv_layers\.0\.layer_norm\.", "feature_extractor.conv_layers.0.2."),
    (r"feature_projection\.layer_norm\.", "layer_norm."),
    (r"feature_projection\.projection\.", "post_extract_proj."),
    (r"^feature_projection\.", "post_extract_proj."),
    (r"masked_spec_embed", "mask_emb"),
    (r"encoder\.pos_conv_embed\.conv\.parametrizations\.weight\.original0", "encoder.pos_conv.0.weight_g"),
    (r"encoder\.pos_conv_embed\.conv\.parametrizations\.weight\.original1", "encoder.pos_conv.0.weight_v"),
    (r"encoder\.pos_conv_embed\.conv\.bias", "encoder.pos_conv.0.bias"),
    (r"encoder\.layers\.(\d+)\.attention\.", r"encoder.layers.\1.self_attn."),
    (r"encoder\.layers\.(\d+)\.layer_norm\.", r"encoder.layers.\1.self_attn_layer_norm."),
    (r"feed_forward\.intermediate_dense\.", "fc1."),
    (r"feed_forward\.output_dense\.", "fc2."),
    (r"encoder\.upsample\.projection\.", "encoder.upsample.0."),
]


def fairseq_names(state, prefix=""):
    out = {}
    for key, value in state.items():
        key = key[len(prefix):] if prefix and key.startswith(prefix) else key
        for pattern, replacement in TO_FAIRSEQ:
            key = re.sub(pattern, replacement, key)
        out[key] = value
    return out


def model_cfg(name="wav2vec2", **extra):
    return {"_name": name, "extractor_mode": "default", "encoder_layers": 2, "encoder_embed_dim": 32,
            "encoder_ffn_embed_dim": 64, "encoder_attention_heads": 4, "activation_fn": "gelu",
            "layer_norm_first": False, "conv_feature_layers": CONV, "conv_bias": False, "conv_pos": 16,
            "conv_pos_groups": 4, "dropout": 0.1, "encoder_layerdrop": 0.05, **extra}


def save_fairseq(path, model_state, cfg=None, args=None):
    torch.save({"cfg": cfg, "args": args, "model": model_state, "optimizer_history": [{"num_updates": 100}],
                "extra_state": {"epoch": 3, "best": 0.5}, "last_optimizer_state": None}, path)


def hidden(hf, audio):
    with torch.no_grad():
        return hf(audio).last_hidden_state


def test_a_pretrained_checkpoint_with_an_omegaconf_cfg_equals_hf(tmp_path):
    hf = transformers.Wav2Vec2Model(transformers.Wav2Vec2Config(**SMALL)).eval()
    cfg = omegaconf.OmegaConf.create({"model": model_cfg(), "task": {"_name": "audio_pretraining", "normalize": False}})
    state = fairseq_names(hf.state_dict())
    state["quantizer.vars"] = torch.zeros(1, 4, 8)  # pre-training heads are dropped
    save_fairseq(tmp_path / "wav2vec_small.pt", state, cfg=cfg)
    ours = stochw2v.load(tmp_path / "wav2vec_small.pt")
    audio = torch.randn(2, 6000)
    with torch.no_grad():
        assert (ours.encode(audio).hidden_states - hidden(hf, audio)).abs().max() < 1e-4


def test_a_hubert_checkpoint_equals_hf_hubert_and_says_its_head_is_not_loaded(tmp_path):
    hf = transformers.HubertModel(transformers.HubertConfig(**SMALL)).eval()
    cfg = omegaconf.OmegaConf.create({"model": model_cfg("hubert"), "task": {"_name": "hubert_pretraining"}})
    state = fairseq_names(hf.state_dict())
    state["final_proj.weight"], state["label_embs_concat"] = torch.zeros(8, 32), torch.zeros(504, 8)
    save_fairseq(tmp_path / "hubert_base.pt", state, cfg=cfg)
    with pytest.warns(UserWarning, match="HuBERT pre-training head .* is not loaded; only the encoder is used"):
        ours = stochw2v.load(tmp_path / "hubert_base.pt")
    assert ours.config.family == "hubert"
    audio = torch.randn(2, 6000)
    with torch.no_grad():
        assert (ours.encode(audio).hidden_states - hidden(hf, audio)).abs().max() < 1e-4


def test_an_older_checkpoint_with_argparse_args_loads(tmp_path):
    hf = transformers.Wav2Vec2Model(transformers.Wav2Vec2Config(**SMALL, feat_extract_norm="layer", conv_bias=True,
                                                                do_stable_layer_norm=True)).eval()
    args = argparse.Namespace(arch="wav2vec2", **{k: v for k, v in model_cfg(extractor_mode="layer_norm",
                                                                               conv_bias=True,
                                                                               layer_norm_first=True).items()
                                                  if k != "_name"}, normalize=True)
    state = {re.sub(r"conv_layers\.(\d+)\.layer_norm\.", r"conv_layers.\1.2.1.", k): v
             for k, v in hf.state_dict().items()}
    save_fairseq(tmp_path / "old.pt", fairseq_names(state), args=args)
    ours = stochw2v.load(tmp_path / "old.pt")
    assert ours.config.normalize_waveform and ours.config.layer_norm_first and ours.config.conv_norm == "layer"
    audio = torch.randn(1, 6000)
    audio = (audio - audio.mean()) / audio.std()  # HF's extractor normalises; feed it normalised audio
    with torch.no_grad():
        assert (ours.encode(audio).hidden_states - hidden(hf, audio)).abs().max() < 1e-4


def test_a_fine_tuned_ctc_checkpoint_loads_as_a_recogniser_via_the_cli(tmp_path, capsys):
    hf = transformers.Wav2Vec2ForCTC(transformers.Wav2Vec2Config(**SMALL, vocab_size=9)).eval()
    (tmp_path / "dict.ltr.txt").write_text("| 100\nE 80\nT 60\nA 40\nO 30\n")
    inner = omegaconf.OmegaConf.create({"model": model_cfg(), "task": {"normalize": False}})
    cfg = omegaconf.OmegaConf.create({"model": {"_name": "wav2vec_ctc", "w2v_path": "/data/x.pt"},
                                      "task": {"_name": "audio_finetuning"}})
    cfg.model.w2v_args = inner
    state = {f"w2v_encoder.w2v_model.{k}": v for k, v in fairseq_names(hf.wav2vec2.state_dict()).items()}
    state["w2v_encoder.proj.weight"], state["w2v_encoder.proj.bias"] = hf.lm_head.weight, hf.lm_head.bias
    save_fairseq(tmp_path / "ft.pt", state, cfg=cfg)
    assert main(["import-fairseq", str(tmp_path / "ft.pt"), "--out", str(tmp_path / "ours")]) == 0
    ours = stochw2v.load(tmp_path / "ours")
    assert isinstance(ours, CTCModel) and ours.vocabulary.tokens[:6] == ("<blank>", "<pad>", "</s>", "<unk>", "|", "E")
    audio = torch.randn(1, 6000)
    with torch.no_grad():
        assert (ours(audio).logits - hf(audio).logits).abs().max() < 1e-4
    (tmp_path / "dict.ltr.txt").unlink()
    assert main(["import-fairseq", str(tmp_path / "ft.pt"), "--out", str(tmp_path / "x")]) == 2
    assert "dict.ltr.txt: no such dictionary file" in capsys.readouterr().err


def test_an_asapp_sew_checkpoint_equals_hf_sew(tmp_path):
    hf = transformers.SEWModel(transformers.SEWConfig(**SMALL, squeeze_factor=2)).eval()
    cfg = omegaconf.OmegaConf.create({"model": model_cfg("squeeze_wav2vec2", squeeze_factor=2,
                                                         squeeze_method="default"), "task": {}})
    save_fairseq(tmp_path / "sew.pt", fairseq_names(hf.state_dict()), cfg=cfg)
    ours = stochw2v.load(tmp_path / "sew.pt")
    assert str(ours.config.resolve(None)) == "s=2"
    audio = torch.randn(1, 8000)
    with torch.no_grad():
        assert (ours.encode(audio).hidden_states - hidden(hf, audio)).abs().max() < 1e-4


class Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_carrying_code_is_refused_without_running_it(tmp_path, capsys):
    hf = transformers.Wav2Vec2Model(transformers.Wav2Vec2Config(**SMALL)).eval()
    cfg = omegaconf.OmegaConf.create({"model": model_cfg(), "task": {}})
    torch.save({"cfg": cfg, "model": fairseq_names(hf.state_dict()), "extra_state": Payload(tmp_path / "ran")},
               tmp_path / "evil.pt")
    assert main(["import-fairseq", str(tmp_path / "evil.pt"), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "refused: the pickle asks for posix.system" in err and not (tmp_path / "ran").exists()


def test_unsupported_architectures_are_named(tmp_path):
    cfg = omegaconf.OmegaConf.create({"model": {"_name": "data2vec_audio", "encoder_layers": 2}, "task": {}})
    save_fairseq(tmp_path / "d2v.pt", {"x": torch.zeros(1)}, cfg=cfg)
    with pytest.raises(stochw2v.Stochw2vError, match="architecture 'data2vec_audio' is not supported"):
        stochw2v.load(tmp_path / "d2v.pt")


def test_conv_layer_strings_are_parsed_without_eval():
    from stochw2v.formats.fairseq import parse_conv_layers

    assert parse_conv_layers("[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512,2,2)] * 2", "x") == \
        ((512, 10, 5),) + ((512, 3, 2),) * 4 + ((512, 2, 2),) * 2
    with pytest.raises(stochw2v.Stochw2vError, match="only integers, lists, tuples"):
        parse_conv_layers("__import__('os').system('true')", "x")
