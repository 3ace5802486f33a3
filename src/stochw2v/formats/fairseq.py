"""fairseq wav2vec 2.0, HuBERT and SEW checkpoints, read without fairseq and without running pickled code.

A fairseq `.pt` is a pickle: tensors, plus the run's configuration as an omegaconf `DictConfig`
(`cfg`) or an argparse `Namespace` (`args`, older files), and sometimes fairseq enum values. The
loader here unpickles with an allow-list: torch's tensor-rebuilding functions and storages, plain
containers, numpy scalars and arrays rebuilt from their bytes, and stand-ins for the omegaconf,
argparse and fairseq classes that only record their state (turned into plain dicts and values
afterwards). Any other global the file asks for (`os.system`, `builtins.eval`, ...) is refused
and the file named; nothing in it is ever called.

Supported: pre-trained wav2vec 2.0 (`wav2vec2`) and HuBERT (`hubert`; its pre-training head is not
loaded), fine-tuned CTC (`wav2vec_ctc`, `hubert_ctc`, each needs its `dict.ltr.txt`) and asapp's SEW
(`squeeze_wav2vec2`, its default squeeze method).
"""
from __future__ import annotations

import ast
import collections
import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..compute.policy import StochasticPolicy
from ..data.text import BLANK, Vocabulary
from ..errors import ConfigError, MissingFileError, ModelFileError, UnsafeFileError
from ..model import Model
from ..model.config import EncoderConfig
from .model_folder import build_model, rename_state

ARCHITECTURES = ("wav2vec2", "wav2vec_ctc", "squeeze_wav2vec2", "hubert", "hubert_ctc")
_ENCODERS = ("wav2vec2", "squeeze_wav2vec2", "hubert")  # what a fine-tuned checkpoint may wrap
_STORAGES = ("Float", "Double", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte", "Bool")
_TORCH = {("torch._utils", name) for name in ("_rebuild_tensor_v2", "_rebuild_tensor", "_rebuild_parameter",
                                              "_rebuild_parameter_with_state")}
_TORCH |= {("torch", f"{kind}Storage") for kind in _STORAGES} | {("torch", "Size"), ("torch.storage", "UntypedStorage")}
_TORCH |= {("torch", name) for name in ("float32", "float16", "bfloat16", "float64", "int64", "int32", "bool")}
_BUILTINS = {"set", "frozenset", "dict", "list", "tuple", "int", "float", "str", "bool", "bytes", "bytearray",
             "complex", "slice", "range"}


class StandIn:
    """What an omegaconf / argparse / fairseq object becomes: its constructor arguments and state, inert."""

    origin = "object"

    def __new__(cls, *args, **kwargs):
        obj = object.__new__(cls)
        obj.args, obj.kwargs, obj.state = args, kwargs, None
        return obj

    def __init__(self, *args, **kwargs) -> None:  # REDUCE calls the class; nothing to run
        pass

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _numpy_scalar(dtype: Any, data: bytes = b"") -> Any:
    return np.frombuffer(data, dtype=np.dtype(dtype))[0].item() if data else None


class _NumpyArray(StandIn):
    origin = "numpy.ndarray"

    def __setstate__(self, state: Any) -> None:  # (version, shape, dtype, fortran, raw bytes)
        _, shape, dtype, fortran, raw = state
        self.state = np.frombuffer(raw, dtype=dtype).reshape(shape, order="F" if fortran else "C").copy()


class SafeUnpickler(pickle.Unpickler):
    """pickle.Unpickler whose find_class only hands out inert or allow-listed objects."""

    source = "checkpoint"
    _made: dict[str, type] = {}

    def find_class(self, module: str, name: str) -> Any:
        module = {"__builtin__": "builtins", "copy_reg": "copyreg"}.get(module, module)  # protocol-2 spellings
        if (module, name) in _TORCH:
            return getattr(__import__(module, fromlist=[name]), name)
        if module == "collections" and name in ("OrderedDict", "defaultdict"):
            return getattr(collections, name)
        if module == "builtins" and name in _BUILTINS:
            return getattr(__import__("builtins"), name)
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name == "scalar":
            return _numpy_scalar
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name == "_reconstruct":
            return lambda *_: _NumpyArray()
        if module == "numpy" and name in ("dtype", "ndarray"):
            return np.dtype if name == "dtype" else _NumpyArray
        if module == "copyreg" and name == "_reconstructor":
            return lambda cls, *_: cls.__new__(cls)
        if module == "typing" and name == "Any":
            return Any
        if module.split(".")[0] in ("omegaconf", "argparse", "fairseq", "sew_asapp"):
            return self._stand_in(f"{module}.{name}")
        raise UnsafeFileError(f"{self.source}: refused: the pickle asks for {module}.{name}, which a checkpoint "
                              "does not need; it was not loaded")

    def _stand_in(self, origin: str) -> type:
        if origin not in SafeUnpickler._made:
            SafeUnpickler._made[origin] = type(origin.rsplit(".", 1)[-1], (StandIn,), {"origin": origin})
        return SafeUnpickler._made[origin]


class _SafePickleModule:
    """The `pickle_module` torch.load is given: only our Unpickler."""

    Unpickler = SafeUnpickler
    __name__ = "stochw2v.safe_pickle"

    @staticmethod
    def load(*args, **kwargs):  # torch only calls this for legacy (non-zip) files
        return SafeUnpickler(*args, **kwargs).load()


def plain(value: Any) -> Any:
    """omegaconf / argparse / fairseq stand-ins to dicts, lists and values."""
    if isinstance(value, StandIn):
        state = value.state
        if isinstance(state, dict) and "_content" in state:  # omegaconf containers
            content = state["_content"]
            if isinstance(content, dict):
                return {str(k): plain(v) for k, v in content.items()}
            return [plain(v) for v in content] if isinstance(content, list) else None
        if isinstance(state, dict) and "_val" in state:  # omegaconf value nodes
            return plain(state["_val"])
        if isinstance(state, dict):  # argparse.Namespace and plain objects
            return {str(k): plain(v) for k, v in state.items()}
        if isinstance(value, _NumpyArray):
            return state
        return plain(value.args[0]) if len(value.args) == 1 else None  # enum members and the like
    if isinstance(value, dict):
        return {str(k) if not isinstance(k, str) else k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def read_fairseq(path: Path) -> dict[str, Any]:
    """The checkpoint dict, unpickled safely; the config as plain data under 'cfg'."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: no such checkpoint file")
    SafeUnpickler.source = str(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=False, pickle_module=_SafePickleModule)
    except UnsafeFileError:
        raise
    except Exception as error:  # noqa: BLE001 - zip, pickle and torch errors all mean the same here
        raise ModelFileError(f"{path}: not a readable fairseq checkpoint ({str(error).splitlines()[0]})") from None
    if not isinstance(data, dict) or "model" not in data:
        raise ModelFileError(f"{path}: not a fairseq checkpoint (no 'model' state dict)")
    cfg = plain(data.get("cfg")) or {}
    if not cfg and data.get("args") is not None:  # older checkpoints: an argparse Namespace
        args = plain(data["args"])
        cfg = {"model": args, "task": args}
    return {"cfg": cfg, "model": data["model"]}


# ------------------------------------------------------------------- config
def parse_conv_layers(text: str, source: str) -> tuple[tuple[int, int, int], ...]:
    """fairseq's conv_feature_layers, e.g. "[(512, 10, 5)] + [(512, 3, 2)] * 4", without eval()."""

    def value(node: ast.AST) -> Any:
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple)):
            return [value(e) for e in node.elts]
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return value(node.left) + value(node.right)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
            return value(node.left) * value(node.right)
        raise ConfigError("only integers, lists, tuples, + and * are allowed")

    try:
        layers = value(ast.parse(str(text), mode="eval").body)
        return tuple((int(c), int(k), int(s)) for c, k, s in layers)
    except (ConfigError, SyntaxError, TypeError, ValueError) as error:
        raise ModelFileError(f"{source}: conv_feature_layers {text!r} is not a list of (dim, kernel, stride) "
                             f"({error})") from None


def _model_section(cfg: dict[str, Any], source: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(architecture, the encoder's model config, its task config), looking through wav2vec_ctc's w2v_args."""
    model = cfg.get("model") or {}
    name = model.get("_name") or model.get("arch") or "wav2vec2"
    if name not in ARCHITECTURES:
        raise ModelFileError(f"{source}: architecture {name!r} is not supported (supported: {ARCHITECTURES})")
    if name in ("wav2vec_ctc", "hubert_ctc"):
        inner = model.get("w2v_args") or {}
        if not inner:
            raise ModelFileError(f"{source}: a {name} checkpoint without w2v_args (the pre-trained model's "
                                 "config); add it with asapp's tools/add_w2v_args_to_ckpt.py")
        inner_model = inner.get("model") or inner
        inner_name = inner_model.get("_name") or inner_model.get("arch") or name.removesuffix("_ctc")
        inner_name = "wav2vec2" if inner_name == "wav2vec" else inner_name
        if inner_name not in _ENCODERS:
            raise ModelFileError(f"{source}: fine-tuned from a {inner_name!r} model, which is not supported")
        return "ctc-" + inner_name, inner_model, inner.get("task") or inner
    return name, model, cfg.get("task") or {}


def config_from_fairseq(cfg: dict[str, Any], source: str, has_projection: bool | None = None) -> EncoderConfig:
    """Our config from the checkpoint's; `has_projection`: whether the weights hold post_extract_proj
    (fairseq builds it only when the conv channels differ from the model width)."""
    name, model, task = _model_section(cfg, source)
    squeeze = int(model.get("squeeze_factor", 2)) if name.endswith("squeeze_wav2vec2") else 1
    if name.endswith("squeeze_wav2vec2") and model.get("squeeze_method", "default") != "default":
        raise ModelFileError(f"{source}: SEW squeeze_method {model['squeeze_method']!r} is not supported (only "
                             "'default')")
    conv = parse_conv_layers(model.get("conv_feature_layers", "[(512, 10, 5)] + [(512, 3, 2)] * 4 + "
                                                              "[(512, 2, 2)] * 2"), source)
    dim = int(model.get("encoder_embed_dim", 768))
    try:
        return EncoderConfig(
            conv_layers=conv, conv_norm="layer" if model.get("extractor_mode") == "layer_norm" else "group",
            conv_bias=bool(model.get("conv_bias", False)), dim=dim, num_layers=int(model.get("encoder_layers", 12)),
            num_heads=int(model.get("encoder_attention_heads", 12)),
            ffn_dim=int(model.get("encoder_ffn_embed_dim", 3072)), activation=str(model.get("activation_fn", "gelu")),
            pos_conv_kernel=int(model.get("conv_pos", 128)), pos_conv_groups=int(model.get("conv_pos_groups", 16)),
            layer_norm_first=bool(model.get("layer_norm_first", False)),
            feature_projection=conv[-1][0] != dim if has_projection is None else has_projection,
            max_upsample=squeeze if name.endswith("squeeze_wav2vec2") else 0,
            dropout=float(model.get("dropout", 0.1)), attention_dropout=float(model.get("attention_dropout", 0.1)),
            activation_dropout=float(model.get("activation_dropout", 0.0)),
            feature_dropout=float(model.get("dropout_input", 0.0)),
            layerdrop=float(model.get("encoder_layerdrop", 0.0)), default_compression=f"s={squeeze}",
            normalize_waveform=bool(task.get("normalize", False)),
            trained_policy=StochasticPolicy.fixed(f"s={squeeze}").to_dict(),
            family="hubert" if name.endswith("hubert") else "wav2vec2")
    except (ConfigError, TypeError, ValueError) as error:
        raise ModelFileError(f"{source}: {error}") from None


# ------------------------------------------------------------------ weights
_RENAMES = [  # (fairseq prefix, ours), first match wins; {i} is a layer number
    ("feature_extractor.conv_layers.{i}.0.", "feature_encoder.layers.{i}.conv."),
    ("feature_extractor.conv_layers.{i}.2.1.", "feature_encoder.layers.{i}.norm."),  # layer_norm mode
    ("feature_extractor.conv_layers.{i}.2.", "feature_encoder.layers.{i}.norm."),  # group norm, layer 0
    ("layer_norm.", "feature_norm."),
    ("post_extract_proj.", "feature_projection."),
    ("mask_emb", "mask_embedding"),
    ("encoder.pos_conv.0.parametrizations.weight.original0", "context.pos_conv.weight_g"),
    ("encoder.pos_conv.0.parametrizations.weight.original1", "context.pos_conv.weight_v"),
    ("encoder.pos_conv.0.", "context.pos_conv."),
    ("encoder.layer_norm.", "context.layer_norm."),
    ("encoder.upsample.0.", "context.upsample."),
    ("encoder.layers.{i}.self_attn_layer_norm.", "context.layers.{i}.attention_norm."),
    ("encoder.layers.{i}.self_attn.", "context.layers.{i}.attention."),
    ("encoder.layers.{i}.fc1.", "context.layers.{i}.ffn.intermediate."),
    ("encoder.layers.{i}.fc2.", "context.layers.{i}.ffn.output."),
    ("encoder.layers.{i}.final_layer_norm.", "context.layers.{i}.ffn_norm."),
]
_PRETRAINING = ("quantizer.", "project_q.", "final_proj.", "label_embs_concat", "target_glu.", "project_inp.")
_HUBERT_HEAD = ("final_proj.", "label_embs_concat")


def _rename(key: str) -> str | None:
    for theirs, ours in _RENAMES:
        pattern = "^" + re.escape(theirs).replace(re.escape("{i}"), r"(\d+)")
        match = re.match(pattern, key)
        if match:
            layer = match.group(1) if match.groups() else ""
            return ours.replace("{i}", layer) + key[match.end():]
    return None


def encoder_state(state: dict[str, Tensor], source: str) -> dict[str, Tensor]:
    """The encoder's weights under our names; pre-training heads (quantizer, projections) are dropped."""
    if any(k.startswith(_HUBERT_HEAD) for k in state):
        warnings.warn(f"{source}: the HuBERT pre-training head (final_proj, label_embs_concat) is not loaded; "
                      "only the encoder is used", stacklevel=2)
    return rename_state({k: v for k, v in state.items() if not k.startswith(_PRETRAINING)}, _rename, source)


def read_dictionary(path: Path) -> Vocabulary:
    """fairseq's dict.ltr.txt ('TOKEN COUNT' per line) with its four specials first; <s> is CTC's blank."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: no such dictionary file (a fine-tuned checkpoint needs its dict.ltr.txt)")
    tokens = [BLANK, "<pad>", "</s>", "<unk>"]
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) < 1 or (len(parts) > 1 and not parts[1].lstrip("-").isdigit()):
            raise ModelFileError(f"{path}:{number}: expected 'TOKEN COUNT', got {line!r}")
        tokens.append(parts[0])
    try:
        return Vocabulary.from_tokens(tokens)
    except ValueError as error:
        raise ModelFileError(f"{path}: {error}") from None


def load_fairseq(path: str | Path, dictionary: str | Path | None = None) -> Model:
    """An Encoder (pre-trained checkpoints) or a CTCModel (wav2vec_ctc, with its dictionary)."""
    path = Path(path)
    checkpoint = read_fairseq(path)
    state: dict[str, Tensor] = checkpoint["model"]
    has_projection = any(k.endswith("post_extract_proj.weight") for k in state)
    config = config_from_fairseq(checkpoint["cfg"], str(path), has_projection)
    if not any(k.startswith("w2v_encoder.") for k in state):
        weights = encoder_state(state, str(path))
        weights.setdefault("mask_embedding", torch.zeros(config.dim))
        return build_model("encoder", config, weights, str(path))
    dictionary = Path(dictionary) if dictionary else path.parent / "dict.ltr.txt"
    vocabulary = read_dictionary(dictionary)
    inner = {k[len("w2v_encoder.w2v_model."):]: v for k, v in state.items() if k.startswith("w2v_encoder.w2v_model.")}
    weights = {f"encoder.{k}": v for k, v in encoder_state(inner, str(path)).items()}
    weights.setdefault("encoder.mask_embedding", torch.zeros(config.dim))
    if "w2v_encoder.proj.weight" not in state:
        raise ModelFileError(f"{path}: a fine-tuned CTC checkpoint without its CTC projection (w2v_encoder.proj)")
    head = state["w2v_encoder.proj.weight"]
    if head.shape[0] != len(vocabulary):
        raise ModelFileError(f"{path}: the CTC head has {head.shape[0]} outputs but {dictionary} gives "
                             f"{len(vocabulary)} tokens (with fairseq's 4 specials)")
    weights["head.weight"], weights["head.bias"] = head.float(), state["w2v_encoder.proj.bias"].float()
    return build_model("ctc", config, weights, str(path), vocabulary)


__all__ = ["ARCHITECTURES", "SafeUnpickler", "config_from_fairseq", "load_fairseq", "parse_conv_layers", "plain",
           "read_dictionary", "read_fairseq"]
