"""Checkpoint interop with HF transformers' Wav2Vec2, SEW and HuBERT models (no transformers import needed).

Import: a folder written by `save_pretrained` (base model, ForCTC or ForPreTraining), config.json
plus model.safetensors or pytorch_model.bin (read weights-only). A ForCTC folder with its
tokenizer's vocab.json becomes a recogniser; otherwise the encoder is loaded. Export: one fixed
setting HF can express, Wav2Vec2 or HuBERT (s=1, no upsampler: the family the weights came from)
or SEW (fixed squeeze s), as a base model or, for a recogniser, its ForCTC class with vocab.json and
tokenizer files. HuBERT's encoder is wav2vec 2.0's without the quantizer, under `hubert.`; data2vec-audio's
has layer-normed conv layers and a stack of positional convs (`pos_conv_depth`), under `data2vec_audio.`;
WavLM's adds a gated relative position bias to attention (`relative_position_buckets`), under `wavlm.`.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..audio import SAMPLE_RATE
from ..compute.policy import StochasticPolicy
from ..data.text import BLANK, Vocabulary
from ..errors import ConfigError, MissingFileError, ModelFileError, Stochw2vError
from ..files import ensure_writable_folder, load_torch_weights, read_json, read_tensors, write_json, write_tensors
from ..model import Model
from ..model.config import EncoderConfig
from ..model.ctc import CTCModel
from ..model.encoder import Encoder
from .model_folder import build_model, rename_state

HF_MODEL_TYPES = ("wav2vec2", "sew", "hubert", "data2vec-audio", "wavlm")
DATA2VEC = "data2vec-audio"
_RELATIVE_TABLE = "context.relative_position.embedding.weight"  # WavLM's bucket table, ours
# what the weights of each model type are prefixed with in a ForCTC / ForPreTraining folder
_PREFIXES = {"wav2vec2": "wav2vec2.", "sew": "sew.", "hubert": "hubert.", "wavlm": "wavlm.",
             "data2vec-audio": "data2vec_audio.", "sew-d": "sew_d.", "unispeech": "unispeech.",
             "unispeech-sat": "unispeech_sat.", "wav2vec2-conformer": "wav2vec2_conformer."}
PREPROCESSOR_FILE = "preprocessor_config.json"
VOCAB_FILE = "vocab.json"
_HEADS = ("lm_head.", "quantizer.", "project_q.", "project_hid.", "dropout_features.")  # not the encoder's
_ACT_FROM_HF = {"gelu": "gelu", "relu": "relu", "silu": "silu", "swish": "silu", "gelu_new": "gelu_tanh",
                "gelu_pytorch_tanh": "gelu_tanh"}
_ACT_TO_HF = {"gelu": "gelu", "relu": "relu", "silu": "silu", "gelu_tanh": "gelu_pytorch_tanh"}


# ------------------------------------------------------------------- config
def _int(hf: dict[str, Any], key: str, source: str, default: int | None = None) -> int:
    value = hf.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ModelFileError(f"{source}: {key} must be a positive integer, got {value!r}")
    return value


def _float(hf: dict[str, Any], key: str, source: str, default: float) -> float:
    value = hf.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ModelFileError(f"{source}: {key} must be a number, got {value!r}")
    return float(value)


def _conv_layers(hf: dict[str, Any], source: str) -> tuple[tuple[int, int, int], ...]:
    lists = [hf.get(key) for key in ("conv_dim", "conv_kernel", "conv_stride")]
    if not all(isinstance(v, list) and v and all(isinstance(x, int) and not isinstance(x, bool) for x in v)
               for v in lists):
        raise ModelFileError(f"{source}: conv_dim, conv_kernel and conv_stride must be lists of integers")
    if not len(lists[0]) == len(lists[1]) == len(lists[2]):
        raise ModelFileError(f"{source}: conv_dim, conv_kernel and conv_stride differ in length")
    return tuple(zip(*lists))


def config_from_hf(hf: dict[str, Any], source: str = "config.json",
                   preprocessor: dict[str, Any] | None = None) -> EncoderConfig:
    """Our config from HF's config.json (and preprocessor_config.json, whose do_normalize we fold in)."""
    model_type = hf.get("model_type")
    if model_type not in HF_MODEL_TYPES:
        raise ModelFileError(f"{source}: model_type {model_type!r} is not a family stochw2v reads (it reads "
                             f"{', '.join(HF_MODEL_TYPES)})")
    _check_hubert_options(hf, source)
    if hf.get("add_adapter"):
        raise ModelFileError(f"{source}: checkpoints with an adapter (add_adapter=true) are not supported")
    activations = []
    for key in ("hidden_act", "feat_extract_activation"):
        name = hf.get(key, "gelu")
        if name not in _ACT_FROM_HF:
            raise ModelFileError(f"{source}: {key}={name!r} is not supported ({sorted(_ACT_FROM_HF)})")
        activations.append(_ACT_FROM_HF[name])
    conv = _conv_layers(hf, source)
    dim = _int(hf, "hidden_size", source)
    data2vec = model_type == DATA2VEC
    # data2vec-audio's num_conv_pos_embeddings counts its positional convs; their kernel has its own key
    pos_kernel = _int(hf, "conv_pos_kernel_size", source, 19) if data2vec \
        else _int(hf, "num_conv_pos_embeddings", source, 128)
    pos_depth = _int(hf, "num_conv_pos_embeddings", source, 5) if data2vec else 0
    wavlm = model_type == "wavlm"
    squeeze = _int(hf, "squeeze_factor", source, 2) if model_type == "sew" else 1
    do_normalize = (preprocessor or {}).get("do_normalize", False)
    if not isinstance(do_normalize, bool):
        raise ModelFileError(f"{source}: preprocessor do_normalize must be true or false, got {do_normalize!r}")
    try:
        return EncoderConfig(
            conv_layers=conv, conv_norm="layer" if data2vec else hf.get("feat_extract_norm", "group"),
            conv_bias=bool(hf.get("conv_bias", False)), dim=dim, num_layers=_int(hf, "num_hidden_layers", source),
            num_heads=_int(hf, "num_attention_heads", source),
            ffn_dim=_int(hf, "intermediate_size", source), activation=activations[0], conv_activation=activations[1],
            pos_conv_kernel=pos_kernel, pos_conv_depth=pos_depth,
            pos_conv_groups=_int(hf, "num_conv_pos_embedding_groups", source, 16),
            layer_norm_first=bool(hf.get("do_stable_layer_norm", False)) if model_type != "sew" else False,
            feature_projection=model_type != "sew" or conv[-1][0] != dim,
            max_upsample=squeeze if model_type == "sew" else 0,
            layer_norm_eps=_float(hf, "layer_norm_eps", source, 1e-5),
            dropout=_float(hf, "hidden_dropout", source, 0.1),
            attention_dropout=_float(hf, "attention_dropout", source, 0.1),
            activation_dropout=_float(hf, "activation_dropout", source, 0.1),
            feature_dropout=_float(hf, "feat_proj_dropout", source, 0.0),
            layerdrop=_float(hf, "layerdrop", source, 0.1),
            default_compression=f"s={squeeze}",
            normalize_waveform=do_normalize,
            trained_policy=StochasticPolicy.fixed(f"s={squeeze}").to_dict(),  # HF models run one setting
            relative_position_buckets=_int(hf, "num_buckets", source, 320) if wavlm else 0,
            relative_position_max_distance=_int(hf, "max_bucket_distance", source, 800),
            family=model_type if model_type in ("hubert", DATA2VEC, "wavlm") else "wav2vec2",
        )
    except ConfigError as error:
        raise ModelFileError(f"{source}: {error}") from None


def _check_hubert_options(hf: dict[str, Any], source: str) -> None:
    """The HuBERT variants our encoder does not hold, refused by key."""
    if hf.get("model_type") != "hubert":
        return
    if not hf.get("feat_proj_layer_norm", True):
        raise ModelFileError(f"{source}: feat_proj_layer_norm=false (a HuBERT without the layer norm on its conv "
                             "features) is not supported")
    if hf.get("conv_pos_batch_norm", False):
        raise ModelFileError(f"{source}: conv_pos_batch_norm=true (a batch-normed positional conv) is not supported")


def hf_model_type(config: EncoderConfig) -> str:
    """The HF family a model is written as: SEW when it has an upsampler (HF's Wav2Vec2 and HuBERT have
    none), else the family its weights came from."""
    return "sew" if config.max_upsample > 0 else config.family


_CLASS_NAMES = {"wav2vec2": "Wav2Vec2", "sew": "SEW", "hubert": "Hubert", DATA2VEC: "Data2VecAudio", "wavlm": "WavLM"}


def config_to_hf(config: EncoderConfig, squeeze: int) -> dict[str, Any]:
    """HF config.json for our config at a fixed squeeze (SEW if the model has an upsampler)."""
    model_type = hf_model_type(config)
    sew = model_type == "sew"
    hf: dict[str, Any] = {
        "model_type": model_type,
        "architectures": [f"{_CLASS_NAMES[model_type]}Model"],
        "conv_dim": [c for c, _, _ in config.conv_layers],
        "conv_kernel": [k for _, k, _ in config.conv_layers],
        "conv_stride": [s for _, _, s in config.conv_layers],
        "num_feat_extract_layers": len(config.conv_layers),
        "conv_bias": config.conv_bias,
        "feat_extract_norm": config.conv_norm,
        "feat_extract_activation": _ACT_TO_HF[config.conv_activation],
        "hidden_act": _ACT_TO_HF[config.activation],
        "hidden_size": config.dim,
        "num_hidden_layers": config.num_layers,
        "num_attention_heads": config.num_heads,
        "intermediate_size": config.ffn_dim,
        "num_conv_pos_embeddings": config.pos_conv_kernel,
        "num_conv_pos_embedding_groups": config.pos_conv_groups,
        "layer_norm_eps": config.layer_norm_eps,
        "hidden_dropout": config.dropout,
        "attention_dropout": config.attention_dropout,
        "activation_dropout": config.activation_dropout,
        "feat_proj_dropout": config.feature_dropout,
        "layerdrop": config.layerdrop,
        "apply_spec_augment": True,
        "mask_time_prob": 0.05,
    }
    if sew:
        hf["squeeze_factor"] = squeeze
    else:
        hf["do_stable_layer_norm"] = config.layer_norm_first
    if model_type in ("wav2vec2", "wavlm"):
        hf["add_adapter"] = False
    if model_type == "wavlm":
        hf.update(num_buckets=config.relative_position_buckets,
                  max_bucket_distance=config.relative_position_max_distance)
    if model_type == "hubert":
        hf["feat_proj_layer_norm"] = True
    if model_type == DATA2VEC:
        hf.update(num_conv_pos_embeddings=config.pos_conv_depth, conv_pos_kernel_size=config.pos_conv_kernel)
        for key in ("feat_extract_norm", "do_stable_layer_norm"):  # data2vec-audio has one variant
            hf.pop(key, None)
    return hf


def preprocessor_to_hf(config: EncoderConfig) -> dict[str, Any]:
    """HF Wav2Vec2FeatureExtractor settings that feed the exported model what ours sees."""
    return {
        "feature_extractor_type": "Wav2Vec2FeatureExtractor",
        "feature_size": 1,
        "sampling_rate": SAMPLE_RATE,
        "padding_value": 0.0,
        "padding_side": "right",
        "do_normalize": config.normalize_waveform,
        "return_attention_mask": config.conv_norm == "layer",
    }


# ------------------------------------------------------------------ weights
# One table serves both directions: (our name, HF name), "{i}" standing for a layer number.
# Entries whose HF side differs between Wav2Vec2 and SEW are listed per model type.
_NAMES_COMMON = [
    ("feature_encoder.layers.{i}.conv.", "feature_extractor.conv_layers.{i}.conv."),
    ("feature_encoder.layers.{i}.norm.", "feature_extractor.conv_layers.{i}.layer_norm."),
    ("mask_embedding", "masked_spec_embed"),
    ("context.pos_conv.weight_g", "encoder.pos_conv_embed.conv.parametrizations.weight.original0"),
    ("context.pos_conv.weight_v", "encoder.pos_conv_embed.conv.parametrizations.weight.original1"),
    ("context.pos_conv.bias", "encoder.pos_conv_embed.conv.bias"),
    ("context.layer_norm.", "encoder.layer_norm."),
    ("context.layers.{i}.attention.q_proj.", "encoder.layers.{i}.attention.q_proj."),
    ("context.layers.{i}.attention.k_proj.", "encoder.layers.{i}.attention.k_proj."),
    ("context.layers.{i}.attention.v_proj.", "encoder.layers.{i}.attention.v_proj."),
    ("context.layers.{i}.attention.out_proj.", "encoder.layers.{i}.attention.out_proj."),
    ("context.layers.{i}.attention_norm.", "encoder.layers.{i}.layer_norm."),
    ("context.layers.{i}.ffn.intermediate.", "encoder.layers.{i}.feed_forward.intermediate_dense."),
    ("context.layers.{i}.ffn.output.", "encoder.layers.{i}.feed_forward.output_dense."),
    ("context.layers.{i}.ffn_norm.", "encoder.layers.{i}.final_layer_norm."),
]
NAMES = {
    "wav2vec2": _NAMES_COMMON + [
        ("feature_norm.", "feature_projection.layer_norm."),
        ("feature_projection.", "feature_projection.projection."),
    ],
    "sew": _NAMES_COMMON + [
        ("feature_norm.", "layer_norm."),
        ("feature_projection.", "feature_projection."),
        ("context.upsample.", "encoder.upsample.projection."),
    ],
}
NAMES["hubert"] = NAMES["wav2vec2"]  # the same encoder under another prefix
NAMES[DATA2VEC] = [("context.pos_conv.layers.{i}.", "encoder.pos_conv_embed.layers.{i}.conv.")] + NAMES["wav2vec2"]
NAMES["wavlm"] = [  # the bucket table lives in HF's first layer; every layer has its gate
    ("context.relative_position.embedding.", "encoder.layers.0.attention.rel_attn_embed."),
    ("context.layers.{i}.attention.gate.linear.", "encoder.layers.{i}.attention.gru_rel_pos_linear."),
    ("context.layers.{i}.attention.gate.const", "encoder.layers.{i}.attention.gru_rel_pos_const"),
] + NAMES["wav2vec2"]
# older HF files spell the weight-normed positional conv the pre-parametrization way
_POS_CONV = "encoder.pos_conv_embed.conv."
_LEGACY_HF_NAMES = {_POS_CONV + "weight_g": _POS_CONV + "parametrizations.weight.original0",
                    _POS_CONV + "weight_v": _POS_CONV + "parametrizations.weight.original1"}


def _pattern(template: str) -> re.Pattern:
    """'a.{i}.b.' -> a regex matching the prefix (or whole name), with the layer as group 'i'."""
    body = re.escape(template).replace(re.escape("{i}"), r"(?P<i>\d+)")
    return re.compile("^" + body + ("" if template.endswith(".") else "$"))


def rename(key: str, table: list[tuple[str, str]], to_hf: bool) -> str | None:
    """Translate one weight name through `table` (ours -> HF when to_hf); None if no entry matches."""
    for ours, theirs in table:
        source, target = (ours, theirs) if to_hf else (theirs, ours)
        match = _pattern(source).match(key)
        if match:
            return target.replace("{i}", match.group("i") if "i" in match.groupdict() else "") + key[match.end():]
    return None


def state_dict_from_hf(state: dict[str, Tensor], model_type: str, source: str) -> dict[str, Tensor]:
    """Rename HF encoder weights to ours; raise on anything we would silently drop."""
    prefix = _PREFIXES[model_type]
    others = sorted({name for name, other in _PREFIXES.items() if name != model_type
                     for key in state if key.startswith(other)})
    if others:
        raise ModelFileError(f"{source}: config.json says model_type {model_type!r} but the weights are a "
                             f"{others[0]!r} model's ({_PREFIXES[others[0]]}...); the folder mixes two checkpoints")
    if any(k.startswith(prefix) for k in state):
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    else:
        state = {k: v for k, v in state.items() if not k.startswith(_HEADS)}
    return rename_state(state, lambda key: rename(_LEGACY_HF_NAMES.get(key, key), NAMES[model_type], to_hf=False),
                        source)


def state_dict_to_hf(encoder: Encoder, squeeze: int) -> dict[str, Tensor]:
    """Our encoder's weights under HF's names for a fixed squeeze."""
    config = encoder.config
    model_type = hf_model_type(config)
    sew = model_type == "sew"
    table = NAMES[model_type]
    out: dict[str, Tensor] = {}
    for key, value in encoder.state_dict().items():
        if key.startswith("context.upsample."):
            continue  # written below as one stacked Linear
        out[rename(key, table, to_hf=True)] = value.detach().clone().contiguous()
    if sew:
        weight, bias = encoder.context.upsample.stacked(squeeze)
        out["encoder.upsample.projection.weight"] = weight.detach().clone().contiguous()
        out["encoder.upsample.projection.bias"] = bias.detach().clone().contiguous()
    if not config.feature_projection and not sew:
        # W2V2 always projects: an identity projection keeps the outputs exact
        out["feature_projection.projection.weight"] = torch.eye(config.dim)
        out["feature_projection.projection.bias"] = torch.zeros(config.dim)
    return out


# ------------------------------------------------------------------ folders
def read_hf_weights(path: Path) -> dict[str, Tensor]:
    """model.safetensors, else pytorch_model.bin through the weights-only unpickler."""
    if (path / "model.safetensors").exists():
        return read_tensors(path / "model.safetensors")
    if (path / "pytorch_model.bin").exists():
        return load_torch_weights(path / "pytorch_model.bin")
    if (path / "model.safetensors.index.json").exists():
        raise ModelFileError(f"{path}: sharded HF checkpoints are not supported; re-save with a larger max_shard_size")
    raise MissingFileError(f"{path}: no model.safetensors or pytorch_model.bin")


def _hf_vocabulary(path: Path, hf: dict[str, Any]) -> Vocabulary | None:
    """The CTC vocabulary from the tokenizer's vocab.json (the pad token is CTC's blank)."""
    if not (path / VOCAB_FILE).exists():
        return None
    vocab = read_json(path / VOCAB_FILE, "tokenizer vocabulary")
    ids = sorted(vocab.values()) if all(isinstance(v, int) for v in vocab.values()) else None
    if ids != list(range(len(vocab))):
        raise ModelFileError(f"{path / VOCAB_FILE}: token ids must be 0..{len(vocab) - 1}")
    tokens = [token for token, _ in sorted(vocab.items(), key=lambda item: item[1])]
    blank = hf.get("pad_token_id", 0)
    if blank != 0:
        raise ModelFileError(f"{path}: the CTC blank (pad_token_id) is {blank!r}; only 0 is supported")
    tokens[0] = BLANK
    try:
        return Vocabulary.from_tokens(tokens)
    except ValueError as error:
        raise ModelFileError(f"{path / VOCAB_FILE}: {error}") from None


def load_hf_model(path: Path, hf_config: dict[str, Any]) -> Model:
    """A HF Wav2Vec2/SEW folder as our Encoder, or as a CTCModel when it has a CTC head and vocab.json."""
    source = str(path / "config.json")
    preprocessor = read_json(path / PREPROCESSOR_FILE, "preprocessor config") \
        if (path / PREPROCESSOR_FILE).exists() else None
    config = config_from_hf(hf_config, source, preprocessor)
    weights = read_hf_weights(path)
    state = state_dict_from_hf(weights, hf_config["model_type"], str(path))
    _check_buckets(config, state, source)
    state.setdefault("mask_embedding", Encoder(config).mask_embedding.detach())  # fine-tuned files drop it
    vocabulary = _hf_vocabulary(path, hf_config)
    if vocabulary is None or "lm_head.weight" not in weights:
        return build_model("encoder", config, state, str(path))
    if weights["lm_head.weight"].shape[0] != len(vocabulary):
        raise ModelFileError(f"{path}: the CTC head has {weights['lm_head.weight'].shape[0]} outputs but "
                             f"{VOCAB_FILE} lists {len(vocabulary)} tokens")
    state = {f"encoder.{k}": v for k, v in state.items()}
    state["head.weight"], state["head.bias"] = weights["lm_head.weight"].float(), weights["lm_head.bias"].float()
    return build_model("ctc", config, state, str(path), vocabulary)


def _check_buckets(config: EncoderConfig, state: dict[str, Tensor], source: str) -> None:
    """A WavLM bucket table whose size disagrees with num_buckets would fail as a bare shape mismatch."""
    table = state.get(_RELATIVE_TABLE)
    if table is not None and config.relative_position_buckets and \
            tuple(table.shape) != (config.relative_position_buckets, config.num_heads):
        raise ModelFileError(f"{source}: num_buckets={config.relative_position_buckets} and num_attention_heads="
                             f"{config.num_heads}, but the relative position table (rel_attn_embed) is "
                             f"{tuple(table.shape)}: the config does not belong to these weights")


def _check_exportable(config: EncoderConfig, setting) -> None:
    if setting.has_pooling:
        raise ConfigError(f"HF transformers cannot express query or key-value pooling ({setting})")
    if config.max_upsample > 0 and (config.pos_conv_depth or config.relative_position_buckets):
        what = f"a stack of {config.pos_conv_depth} positional convs" if config.pos_conv_depth \
            else "a relative position bias"
        raise ConfigError(f"a {config.family} model with an upsampler (fine-tuned on demand) cannot be exported: "
                          f"HF's {config.family} has no upsampler and HF SEW has one weight-normed positional conv "
                          f"and no relative position bias, while this model has {what}")
    if config.layer_norm_first and config.family == DATA2VEC:
        raise ConfigError("HF data2vec-audio has no pre-LN (layer_norm_first) variant; this model cannot be exported")
    if config.max_upsample > 0:
        if config.layer_norm_first:
            raise ConfigError("HF SEW has no pre-LN (layer_norm_first) variant; this model cannot be exported")
        if config.feature_projection and config.conv_dim == config.dim:
            raise ConfigError("HF SEW skips the feature projection when conv channels equal dim; "
                              "this model has one and cannot be exported as SEW")
    elif setting.squeeze != 1:
        raise ConfigError(f"a model without upsampler only runs s=1, not {setting}")


def _check_target(source: Path | None, out: Path) -> None:
    """Never write into the folder the model came from (that would overwrite it)."""
    if source is None:
        return
    source, target = Path(source).resolve(), Path(out).resolve()
    if target == source or source in target.parents:
        raise Stochw2vError(f"{out}: is (inside) the model folder being exported ({source}); choose another --out")
    if target.exists() and not target.is_dir():
        raise Stochw2vError(f"{out}: is a file; the export is a folder")


def export_hf(model: Model, path: str | os.PathLike, compression=None, source: Path | None = None) -> Path:
    """Write `model` at one fixed setting as a HF folder: Wav2Vec2Model / SEWModel for an encoder,
    Wav2Vec2ForCTC / SEWForCTC (with vocab.json and tokenizer files) for a recogniser."""
    encoder = model.encoder if isinstance(model, CTCModel) else model
    config = encoder.config
    setting = config.resolve(compression)
    _check_exportable(config, setting)
    out = Path(path)
    _check_target(source, out)
    ensure_writable_folder(out, "export folder")
    hf_config = config_to_hf(config, setting.squeeze)
    state = state_dict_to_hf(encoder, setting.squeeze)
    if isinstance(model, CTCModel):
        model_type = hf_config["model_type"]
        state = {f"{_PREFIXES[model_type]}{k}": v for k, v in state.items()}
        state["lm_head.weight"] = model.head.weight.detach().clone().contiguous()
        state["lm_head.bias"] = model.head.bias.detach().clone().contiguous()
        hf_config["architectures"] = [f"{_CLASS_NAMES[model_type]}ForCTC"]
        hf_config.update(vocab_size=len(model.vocabulary), pad_token_id=model.vocabulary.blank_id,
                         ctc_loss_reduction="mean", ctc_zero_infinity=True)
        _write_tokenizer(out, model.vocabulary)
    write_tensors(out / "model.safetensors", state)
    write_json(out / PREPROCESSOR_FILE, preprocessor_to_hf(config))
    write_json(out / "config.json", hf_config)
    return out


def _write_tokenizer(out: Path, vocabulary: Vocabulary) -> None:
    """HF Wav2Vec2CTCTokenizer files: our blank is HF's pad token."""
    tokens = ["<pad>" if t == BLANK else t for t in vocabulary.tokens]
    write_json(out / VOCAB_FILE, {t: i for i, t in enumerate(tokens)})
    write_json(out / "tokenizer_config.json", {
        "tokenizer_class": "Wav2Vec2CTCTokenizer", "pad_token": "<pad>", "unk_token": "<unk>",
        "word_delimiter_token": "|", "do_lower_case": False, "bos_token": None, "eos_token": None})
    write_json(out / "special_tokens_map.json", {"pad_token": "<pad>", "unk_token": "<unk>"})


__all__ = ["HF_MODEL_TYPES", "NAMES", "config_from_hf", "config_to_hf", "export_hf", "hf_model_type", "load_hf_model",
           "preprocessor_to_hf", "rename", "state_dict_from_hf", "state_dict_to_hf"]
