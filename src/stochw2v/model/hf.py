"""Checkpoint interop with HF transformers' Wav2Vec2 and SEW models (no transformers import needed).

Import: a directory written by `save_pretrained` (base model, ForCTC or ForPreTraining),
config.json plus model.safetensors or pytorch_model.bin. Export: one fixed setting HF can
express, Wav2Vec2 (s=1, no upsampler) or SEW (fixed squeeze s), loadable by
`transformers.AutoModel.from_pretrained`.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .compression import Compression, CompressionLike
from .config import EncoderConfig

HF_MODEL_TYPES = ("wav2vec2", "sew")
_HEADS = ("lm_head.", "quantizer.", "project_q.", "project_hid.", "dropout_features.")  # not the encoder's
_ACT_FROM_HF = {"gelu": "gelu", "relu": "relu", "silu": "silu", "swish": "silu", "gelu_new": "gelu_tanh",
                "gelu_pytorch_tanh": "gelu_tanh"}
_ACT_TO_HF = {"gelu": "gelu", "relu": "relu", "silu": "silu", "gelu_tanh": "gelu_pytorch_tanh"}


# ------------------------------------------------------------------- config
def config_from_hf(hf: dict[str, Any], source: str = "config.json",
                   preprocessor: dict[str, Any] | None = None) -> EncoderConfig:
    """Our config from HF's config.json (and preprocessor_config.json, whose do_normalize we fold in)."""
    model_type = hf.get("model_type")
    if model_type not in HF_MODEL_TYPES:
        raise ValueError(f"{source}: model_type {model_type!r} is not one of {HF_MODEL_TYPES}")
    if hf.get("add_adapter"):
        raise ValueError(f"{source}: checkpoints with an adapter (add_adapter=true) are not supported")
    try:
        conv = tuple(zip(hf["conv_dim"], hf["conv_kernel"], hf["conv_stride"]))
        if not len(hf["conv_dim"]) == len(hf["conv_kernel"]) == len(hf["conv_stride"]):
            raise ValueError(f"{source}: conv_dim, conv_kernel and conv_stride differ in length")
        activations = []
        for key in ("hidden_act", "feat_extract_activation"):
            name = hf.get(key, "gelu")
            if name not in _ACT_FROM_HF:
                raise ValueError(f"{source}: {key}={name!r} is not supported ({sorted(_ACT_FROM_HF)})")
            activations.append(_ACT_FROM_HF[name])
        dim = int(hf["hidden_size"])
        squeeze = int(hf.get("squeeze_factor", 2)) if model_type == "sew" else 1
        return EncoderConfig(
            conv_layers=conv,
            conv_norm=hf.get("feat_extract_norm", "group"),
            conv_bias=bool(hf.get("conv_bias", False)),
            dim=dim,
            num_layers=int(hf["num_hidden_layers"]),
            num_heads=int(hf["num_attention_heads"]),
            ffn_dim=int(hf["intermediate_size"]),
            activation=activations[0],
            conv_activation=activations[1],
            pos_conv_kernel=int(hf.get("num_conv_pos_embeddings", 128)),
            pos_conv_groups=int(hf.get("num_conv_pos_embedding_groups", 16)),
            layer_norm_first=bool(hf.get("do_stable_layer_norm", False)) if model_type == "wav2vec2" else False,
            feature_projection=model_type == "wav2vec2" or conv[-1][0] != dim,
            max_upsample=squeeze if model_type == "sew" else 0,
            layer_norm_eps=float(hf.get("layer_norm_eps", 1e-5)),
            dropout=float(hf.get("hidden_dropout", 0.1)),
            attention_dropout=float(hf.get("attention_dropout", 0.1)),
            activation_dropout=float(hf.get("activation_dropout", 0.1)),
            feature_dropout=float(hf.get("feat_proj_dropout", 0.0)),
            layerdrop=float(hf.get("layerdrop", 0.1)),
            default_compression=f"s={squeeze}",
            normalize_waveform=bool((preprocessor or {}).get("do_normalize", False)),
        )
    except KeyError as error:
        raise ValueError(f"{source}: missing key {error.args[0]!r} for a {model_type} config") from None


def config_to_hf(config: EncoderConfig, squeeze: int) -> dict[str, Any]:
    """HF config.json for our config at a fixed squeeze (SEW if the model has an upsampler)."""
    sew = config.max_upsample > 0
    hf: dict[str, Any] = {
        "model_type": "sew" if sew else "wav2vec2",
        "architectures": ["SEWModel" if sew else "Wav2Vec2Model"],
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
        hf["add_adapter"] = False
    return hf


PREPROCESSOR_FILE = "preprocessor_config.json"


def preprocessor_to_hf(config: EncoderConfig) -> dict[str, Any]:
    """HF Wav2Vec2FeatureExtractor settings that feed the exported model what ours sees."""
    return {
        "feature_extractor_type": "Wav2Vec2FeatureExtractor",
        "feature_size": 1,
        "sampling_rate": 16000,
        "padding_value": 0.0,
        "padding_side": "right",
        "do_normalize": config.normalize_waveform,
        "return_attention_mask": config.conv_norm == "layer",
    }


# ------------------------------------------------------------------ weights
def _strip_prefix(state: dict[str, Tensor], model_type: str) -> dict[str, Tensor]:
    prefix = f"{model_type}."
    if any(k.startswith(prefix) for k in state):
        return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    return {k: v for k, v in state.items() if not k.startswith(_HEADS)}


_RENAMES_COMMON = [
    (r"^feature_extractor\.conv_layers\.(\d+)\.conv\.", r"feature_encoder.layers.\1.conv."),
    (r"^feature_extractor\.conv_layers\.(\d+)\.layer_norm\.", r"feature_encoder.layers.\1.norm."),
    (r"^masked_spec_embed$", "mask_embedding"),
    (r"^encoder\.pos_conv_embed\.conv\.(weight_g|parametrizations\.weight\.original0)$", "context.pos_conv.weight_g"),
    (r"^encoder\.pos_conv_embed\.conv\.(weight_v|parametrizations\.weight\.original1)$", "context.pos_conv.weight_v"),
    (r"^encoder\.pos_conv_embed\.conv\.bias$", "context.pos_conv.bias"),
    (r"^encoder\.layer_norm\.", "context.layer_norm."),
    (r"^encoder\.layers\.(\d+)\.attention\.(q|k|v|out)_proj\.", r"context.layers.\1.attention.\2_proj."),
    (r"^encoder\.layers\.(\d+)\.layer_norm\.", r"context.layers.\1.attention_norm."),
    (r"^encoder\.layers\.(\d+)\.feed_forward\.intermediate_dense\.", r"context.layers.\1.ffn.intermediate."),
    (r"^encoder\.layers\.(\d+)\.feed_forward\.output_dense\.", r"context.layers.\1.ffn.output."),
    (r"^encoder\.layers\.(\d+)\.final_layer_norm\.", r"context.layers.\1.ffn_norm."),
]
_RENAMES = {
    "wav2vec2": _RENAMES_COMMON + [
        (r"^feature_projection\.layer_norm\.", "feature_norm."),
        (r"^feature_projection\.projection\.", "feature_projection."),
    ],
    "sew": _RENAMES_COMMON + [
        (r"^layer_norm\.", "feature_norm."),
        (r"^feature_projection\.", "feature_projection."),
        (r"^encoder\.upsample\.projection\.", "context.upsample."),
    ],
}


def state_dict_from_hf(state: dict[str, Tensor], model_type: str, source: str) -> dict[str, Tensor]:
    """Rename HF weights to ours; raise on anything we would silently drop."""
    out: dict[str, Tensor] = {}
    unknown = []
    for key, value in _strip_prefix(state, model_type).items():
        for pattern, replacement in _RENAMES[model_type]:
            new_key, hits = re.subn(pattern, replacement, key)
            if hits:
                out[new_key] = value.float() if value.is_floating_point() else value
                break
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(f"{source}: weights this encoder does not know: {unknown[:8]}"
                         f"{' ...' if len(unknown) > 8 else ''}")
    return out


def state_dict_to_hf(model: Any, squeeze: int) -> dict[str, Tensor]:
    """Our weights under HF's names for a fixed squeeze."""
    config: EncoderConfig = model.config
    sew = config.max_upsample > 0
    ours = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    out: dict[str, Tensor] = {}
    for key, value in ours.items():
        new_key = key
        for pattern, replacement in _EXPORT_RENAMES:
            new_key, hits = re.subn(pattern, replacement, key)
            if hits:
                break
        if key.startswith("feature_norm."):
            new_key = key.replace("feature_norm.", "layer_norm." if sew else "feature_projection.layer_norm.")
        elif key.startswith("feature_projection."):
            new_key = key if sew else key.replace("feature_projection.", "feature_projection.projection.")
        elif key.startswith("context.upsample."):
            rows = squeeze * config.dim
            new_key = key.replace("context.upsample.", "encoder.upsample.projection.")
            value = value[:rows].clone()
        out[new_key] = value
    if not config.feature_projection and not sew:
        # W2V2 always projects: an identity projection keeps the outputs exact
        out["feature_projection.projection.weight"] = torch.eye(config.dim)
        out["feature_projection.projection.bias"] = torch.zeros(config.dim)
    return out


_EXPORT_RENAMES = [
    (r"^feature_encoder\.layers\.(\d+)\.conv\.", r"feature_extractor.conv_layers.\1.conv."),
    (r"^feature_encoder\.layers\.(\d+)\.norm\.", r"feature_extractor.conv_layers.\1.layer_norm."),
    (r"^mask_embedding$", "masked_spec_embed"),
    (r"^context\.pos_conv\.weight_g$", "encoder.pos_conv_embed.conv.parametrizations.weight.original0"),
    (r"^context\.pos_conv\.weight_v$", "encoder.pos_conv_embed.conv.parametrizations.weight.original1"),
    (r"^context\.pos_conv\.bias$", "encoder.pos_conv_embed.conv.bias"),
    (r"^context\.layer_norm\.", "encoder.layer_norm."),
    (r"^context\.layers\.(\d+)\.attention\.(q|k|v|out)_proj\.", r"encoder.layers.\1.attention.\2_proj."),
    (r"^context\.layers\.(\d+)\.attention_norm\.", r"encoder.layers.\1.layer_norm."),
    (r"^context\.layers\.(\d+)\.ffn\.intermediate\.", r"encoder.layers.\1.feed_forward.intermediate_dense."),
    (r"^context\.layers\.(\d+)\.ffn\.output\.", r"encoder.layers.\1.feed_forward.output_dense."),
    (r"^context\.layers\.(\d+)\.ffn_norm\.", r"encoder.layers.\1.final_layer_norm."),
]


# ------------------------------------------------------------------ folders
def read_hf_weights(path: Path) -> dict[str, Tensor]:
    safetensors_file = path / "model.safetensors"
    bin_file = path / "pytorch_model.bin"
    if safetensors_file.exists():
        from safetensors.torch import load_file

        try:
            return load_file(str(safetensors_file))
        except Exception as error:  # noqa: BLE001
            raise ValueError(f"{safetensors_file}: cannot read weights ({error})") from None
    if bin_file.exists():
        try:
            return torch.load(bin_file, map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001
            raise ValueError(f"{bin_file}: cannot read weights ({error})") from None
    if (path / "model.safetensors.index.json").exists():
        raise ValueError(f"{path}: sharded HF checkpoints are not supported; re-save with a larger max_shard_size")
    raise FileNotFoundError(f"{path}: no model.safetensors or pytorch_model.bin")


def load_hf_encoder(path: Path, hf_config: dict[str, Any]) -> Any:
    from .encoder import Encoder
    from .checkpoint import load_state_checked

    source = str(path / "config.json")
    preprocessor = None
    if (path / PREPROCESSOR_FILE).exists():
        try:
            preprocessor = json.loads((path / PREPROCESSOR_FILE).read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{path / PREPROCESSOR_FILE}: not valid JSON ({error})") from None
    config = config_from_hf(hf_config, source, preprocessor)
    state = state_dict_from_hf(read_hf_weights(path), hf_config["model_type"], str(path))
    model = Encoder(config)
    load_state_checked(model, state, str(path), optional=("mask_embedding",))
    return model.eval()


def export_hf(model: Any, path: str | os.PathLike, compression: CompressionLike = None) -> Path:
    """Write `model` at one fixed setting as a HF Wav2Vec2Model / SEWModel directory."""
    from safetensors.torch import save_file

    from .checkpoint import atomic_write

    config: EncoderConfig = model.config
    setting = Compression.parse(config.default_compression if compression is None else compression)
    setting.check(config.num_layers, config.max_upsample)
    if setting.has_pooling:
        raise ValueError(f"HF transformers cannot express query or key-value pooling ({setting})")
    if config.max_upsample > 0:
        if config.layer_norm_first:
            raise ValueError("HF SEW has no pre-LN (layer_norm_first) variant; this model cannot be exported")
        if config.feature_projection and config.conv_dim == config.dim:
            raise ValueError("HF SEW skips the feature projection when conv channels equal dim; "
                             "this model has one and cannot be exported as SEW")
    elif setting.squeeze != 1:
        raise ValueError(f"a model without upsampler only runs s=1, not {setting}")
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    state = state_dict_to_hf(model, setting.squeeze)
    atomic_write(out / "config.json", json.dumps(config_to_hf(config, setting.squeeze), indent=2).encode())
    atomic_write(out / PREPROCESSOR_FILE, json.dumps(preprocessor_to_hf(config), indent=2).encode())
    atomic_write(out / "model.safetensors", None, lambda tmp: save_file(state, tmp, metadata={"format": "pt"}))
    return out
