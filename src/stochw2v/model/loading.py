"""Our model folder format, read side: config.json + model.safetensors back into modules.

Only JSON and safetensors are read, so a model folder cannot run code. Every problem is a
`ModelFileError` naming the file: missing weights, tensors that do not fit the config, a
config from another tool.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn

from ..data.text import Vocabulary
from ..errors import ConfigError, MissingFileError, ModelFileError
from ..files import read_json, read_tensors, tensor_shapes
from .config import EncoderConfig, estimated_parameters
from .ctc import CTCModel
from .encoder import Encoder
from .saving import CONFIG_FILE, FORMAT, KINDS, VERSION, WEIGHTS_FILE
from .transformer import split_upsampler_weights

Model = Encoder | CTCModel


def load_state_checked(model: nn.Module, state: dict[str, Tensor], source: str,
                       optional: tuple[str, ...] = ()) -> None:
    """load_state_dict with messages that name the file and the mismatching tensors."""
    stacked = [k for k in state if k.endswith("upsample.weight")]
    if stacked:
        raise ModelFileError(f"{source}: written by stochw2v before 0.2 (one stacked upsampler Linear, {stacked[0]}); "
                             "convert its state with stochw2v.model.transformer.split_upsampler_weights and save it "
                             "again")
    expected = model.state_dict()
    missing = [k for k in expected if k not in state and k not in optional]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k}: file {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
              for k, v in state.items() if k in expected and v.shape != expected[k].shape]
    problems = []
    if missing:
        problems.append(f"missing weights {missing[:6]}{' ...' if len(missing) > 6 else ''}")
    if unexpected:
        problems.append(f"unexpected weights {unexpected[:6]}{' ...' if len(unexpected) > 6 else ''}")
    if shapes:
        problems.append("shape mismatch " + "; ".join(shapes[:4]))
    if problems:
        raise ModelFileError(f"{source}: weights do not fit the model's config: " + "; ".join(problems))
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=False)


def _split_stacked_upsampler(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """HF's SEW stores its upsampler as one stacked Linear; ours holds one block per factor."""
    for prefix in ("context.upsample.", "encoder.context.upsample."):
        if f"{prefix}weight" in state:
            state = split_upsampler_weights(state, prefix, state[f"{prefix}weight"].shape[1])
    return state


def rename_state(state: dict[str, Tensor], rename: Callable[[str], str | None], source: str) -> dict[str, Tensor]:
    """Another tool's encoder weights under our names (float32); a weight `rename` does not know is
    an error, never silently dropped. A stacked upsampler Linear is split into our blocks."""
    out: dict[str, Tensor] = {}
    unknown = []
    for key, value in state.items():
        ours = rename(key)
        if ours is None:
            unknown.append(key)
        else:
            out[ours] = value.float() if value.is_floating_point() else value
    if unknown:
        raise ModelFileError(f"{source}: weights this encoder does not know: {unknown[:8]}"
                             f"{' ...' if len(unknown) > 8 else ''}")
    return _split_stacked_upsampler(out)


def encoder_config_from(data: Any, source: str) -> EncoderConfig:
    try:
        return EncoderConfig.from_dict(data)
    except ConfigError as error:
        raise ModelFileError(f"{source}: bad encoder config ({error})") from None


def vocabulary_from(tokens: Any, source: str) -> Vocabulary:
    if not isinstance(tokens, list) or not tokens or not all(isinstance(t, str) for t in tokens):
        raise ModelFileError(f"{source}: a CTC model needs its vocabulary (a list of token strings)")
    try:
        return Vocabulary.from_tokens(tokens)
    except ValueError as error:
        raise ModelFileError(f"{source}: bad vocabulary ({error})") from None


def build_model(kind: str, config: EncoderConfig, state: dict[str, Tensor], source: str,
                vocabulary: Vocabulary | None = None) -> Model:
    """An Encoder or CTCModel of `config` holding `state`, in eval mode."""
    encoder = Encoder(config)
    model: Model = encoder if kind == "encoder" else CTCModel(encoder, vocabulary)
    load_state_checked(model, state, source)
    return model.eval()


def read_model_folder(folder: Path, meta: dict[str, Any] | None = None) -> Model:
    """Our folder (config.json with format 'stochw2v' + model.safetensors)."""
    config_path = Path(folder) / CONFIG_FILE
    meta = read_json(config_path, "model config") if meta is None else meta
    if meta.get("format") != FORMAT:
        raise ModelFileError(f"{config_path}: not a stochw2v model config (format={meta.get('format')!r})")
    kind = meta.get("kind")
    if kind not in KINDS:
        raise ModelFileError(f"{config_path}: holds a {kind!r}, not one of {KINDS}")
    if meta.get("version") != VERSION:
        raise ModelFileError(f"{config_path}: a stochw2v model folder of format version {meta.get('version')!r}; this "
                             f"release reads version {VERSION}. A version 1 folder converts by hand: move its "
                             "trained_settings list into encoder.trained_policy as {\"squeeze\": [1], \"patterns\": "
                             "[...]}, drop trained_settings and set \"version\": 2")
    config = encoder_config_from(meta.get("encoder"), str(config_path))
    weights = Path(folder) / WEIGHTS_FILE
    if not weights.exists():
        raise MissingFileError(f"{folder}: no {WEIGHTS_FILE} beside {CONFIG_FILE}")
    vocabulary = vocabulary_from(meta.get("vocabulary"), str(config_path)) if kind == "ctc" else None
    check_size_against_weights(config, weights, str(config_path))
    state = read_tensors(weights)
    check_weight_values(state, str(weights))
    return build_model(kind, config, state, str(weights), vocabulary)


SIZE_SLACK = 2.0  # a config may imply at most this many times the parameters its weights file holds


def check_size_against_weights(config: EncoderConfig, weights: Path, source: str) -> None:
    """Compare the config's implied size with the weights file's header before allocating the model."""
    held = sum(math.prod(shape) for shape in tensor_shapes(weights).values())
    implied = estimated_parameters(config)
    if implied > SIZE_SLACK * held + 1_000_000:
        raise ModelFileError(f"{source}: describes a model of about {implied / 1e6:,.1f}M parameters "
                             f"(dim={config.dim}, num_layers={config.num_layers}, ffn_dim={config.ffn_dim}) but "
                             f"{weights.name} holds {held / 1e6:,.1f}M: the config does not belong to these weights")


def check_weight_values(state: dict[str, Tensor], source: str) -> None:
    """Weights are floating point and finite: NaN or integer weights would load and transcribe nothing."""
    for name, tensor in state.items():
        if not tensor.is_floating_point():
            raise ModelFileError(f"{source}: tensor {name} is {str(tensor.dtype).replace('torch.', '')}; model "
                                 "weights are floating point")
        if not bool(torch.isfinite(tensor).all()):
            raise ModelFileError(f"{source}: tensor {name} holds NaN or inf values")


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["Model", "build_model", "count_parameters", "encoder_config_from", "load_state_checked",
           "read_model_folder", "rename_state", "vocabulary_from"]
