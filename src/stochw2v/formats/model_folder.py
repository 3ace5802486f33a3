"""Our model folder format: config.json (JSON) + model.safetensors (+ vocab.json), written and read.

    {"format": "stochw2v", "version": 2, "kind": "encoder" | "ctc",
     "encoder": {EncoderConfig fields, trained_policy included},
     "vocabulary": [tokens]   (ctc only)}

A recogniser's folder also gets vocab.json ({token: id}, as HF tokenizers write it), for readers who
look for the vocabulary there; config.json stays the one that loading reads.

Only JSON and safetensors are read, so a model folder cannot run code. Every problem is a
`ModelFileError` naming the file: missing weights, tensors that do not fit the config, a config
from another tool. The HF and fairseq readers reuse `rename_state`, `load_state_checked` and
`build_model` from here.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn

from ..data.text import Vocabulary
from ..errors import ConfigError, MissingFileError, ModelFileError, Stochw2vError
from ..files import ensure_writable_folder, read_json, read_tensors, tensor_shapes, write_json, write_tensors
from ..model import CTCModel, Encoder, EncoderConfig, Model
from ..model.config import estimated_parameters
from ..model.transformer import split_upsampler_weights

FORMAT = "stochw2v"
VERSION = 2
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
VOCABULARY_FILE = "vocab.json"
KINDS = ("encoder", "ctc")


def write_model_folder(path: str | os.PathLike, kind: str, encoder_config: dict[str, Any],
                       state: dict[str, Tensor], dtype: torch.dtype | None = None, **extra: Any) -> Path:
    """Write weights first, then config.json (a reader that finds the config finds its weights).

    dtype: store floating-point weights in this precision (float16 halves the file; loading
    converts back to the model's float32).
    """
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise Stochw2vError(f"{out}: is a file; a model is saved as a folder ({CONFIG_FILE} + {WEIGHTS_FILE})")
    ensure_writable_folder(out, "model folder")
    write_tensors(out / WEIGHTS_FILE, state)
    if "vocabulary" in extra:
        write_json(out / VOCABULARY_FILE, {token: index for index, token in enumerate(extra["vocabulary"])})
    meta = {"format": FORMAT, "version": VERSION, "kind": kind, "encoder": encoder_config, **extra}
    write_json(out / CONFIG_FILE, meta)
    return out



def save(model: Model, path: str | os.PathLike, dtype: torch.dtype | None = None) -> Path:
    """Write `model` (an Encoder or a CTCModel) to folder `path`: config.json, with the encoder config and
    its training distribution (and a recogniser's vocabulary), + model.safetensors, each file atomically.
    dtype=torch.float16 stores half-size weights."""
    if isinstance(model, CTCModel):
        return write_model_folder(path, "ctc", model.encoder.config.to_dict(), model.state_dict(), dtype,
                                  vocabulary=list(model.vocabulary.tokens))
    if isinstance(model, Encoder):
        return write_model_folder(path, "encoder", model.config.to_dict(), model.state_dict(), dtype)
    raise Stochw2vError(f"stochw2v.save takes an Encoder or a CTCModel, not {type(model).__name__}")


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


__all__ = [
    "CONFIG_FILE", "FORMAT", "KINDS", "VERSION", "VOCABULARY_FILE", "WEIGHTS_FILE", "build_model",
    "encoder_config_from", "load_state_checked", "read_model_folder", "rename_state", "save",
    "vocabulary_from", "write_model_folder",
]
