"""Argument types and helpers the subcommands share: checked numbers, devices, models, settings."""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from ..compute import Compression
from ..errors import ConfigError, Stochw2vError
from ..evaluate.decoding import (
    DEFAULT_BEAM_PRUNE_LOGP,
    DEFAULT_BEAM_WIDTH,
    DEFAULT_LM_WEIGHT,
    DEFAULT_TOKEN_MIN_LOGP,
    DEFAULT_UNKNOWN_WORD_SCORE,
    DEFAULT_WORD_SCORE,
)
from ..evaluate.ngram import tuned_weights
from ..formats.load import load
from ..model import CTCModel, Model
from ..runtime import BACKENDS, PrecisionDial, default_backend
from ..runtime.onnx_runtime import BACKEND_ENV


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def bounded_int(low: int, high: int):
    """An argparse type for a whole number in [low, high]: a value past what the machine can do is a
    one-line error, not an allocation failure minutes later."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number from {low} to {high}, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected a whole number from {low} to {high}, got {text!r}")
        return value

    parse.__name__ = "whole number"
    return parse


def bounded_float(low: float, high: float):
    """An argparse type for a finite number in (low, high]."""

    def parse(text: str) -> float:
        value = positive_float(text)
        if not low < value <= high:
            raise argparse.ArgumentTypeError(f"expected a number above {low:g} and at most {high:g}, got {text!r}")
        return value

    parse.__name__ = "number"
    return parse


PROFILE_FILE = "profile.json"  # a model folder's own profile, used when --profile is not given


def model_profile(model: str, given: str | None, command: str) -> Path:
    """--profile, else the model folder's own profile.json; the command prints which it used."""
    if given:
        return Path(given)
    own = Path(model) / PROFILE_FILE
    if own.is_file():
        return own
    raise Stochw2vError(f"{command} needs --profile PROFILE.json (from `stochw2v profile MODEL --out`): {model} "
                        f"has no {PROFILE_FILE} of its own")


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


def finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def settings_list(text: str) -> list[Compression]:
    try:
        return Compression.parse_list(text)
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def one_setting(text: str) -> Compression:
    if ";" in text:
        raise argparse.ArgumentTypeError(f"--compression takes one setting; for several use --settings ({text!r})")
    try:
        return Compression.parse(text)
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def resolve_device(name: str | None) -> torch.device:
    """cpu, cuda or cuda:N; a clear error for unknown names and for CUDA on a machine without it."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise Stochw2vError(f"--device {name!r}: not a device name (use cpu, cuda or cuda:N)") from None
    if device.type not in ("cpu", "cuda"):
        raise Stochw2vError(f"--device {name!r}: only cpu and cuda are supported")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise Stochw2vError(f"--device {name}: CUDA is not available on this machine (torch {torch.__version__})")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise Stochw2vError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA devices")
    return device


def add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    parser.add_argument("--backend", default=default_backend(), choices=BACKENDS,
                        help="where fp32 inference runs: torch, onnxruntime (the model's own graph per setting, "
                             "exported on first use into ~/.cache/stochw2v), or auto (torch: as fast as onnxruntime "
                             "here, no export; default: %(default)s, or $STOCHW2V_BACKEND). bf16 settings "
                             "(s=2@bf16) run on torch, int8 ones (s=2@int8) on onnxruntime")
    parser.add_argument("--dtype", default="float32", choices=sorted(DTYPES),
                        help="precision of the weights and activations (bfloat16: CPUs with AMX and GPUs run it "
                             "about twice as fast)")


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def model_device_dtype(args: argparse.Namespace) -> tuple[torch.device, torch.dtype]:
    """The device and precision the command asked for, checked: bfloat16 needs a CPU or a GPU that has it."""
    device, dtype = resolve_device(args.device), DTYPES[getattr(args, "dtype", "float32")]
    if dtype == torch.bfloat16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise Stochw2vError(f"--dtype bfloat16: {torch.cuda.get_device_name(device)} does not support it")
    return device, dtype


def add_threads(parser: argparse.ArgumentParser, default: int = 2) -> None:
    parser.add_argument("--threads", type=positive_int, default=default,
                        help="torch intra-op threads (default: %(default)s)")


def add_search_bounds(parser: argparse.ArgumentParser, tuned: bool = True) -> None:
    """pyctcdecode's bounds on the beam search (wider: slower, sometimes better)."""
    where = "the LM folder's, else " if tuned else ""
    parser.add_argument("--token-min-logp", type=finite_float, default=None if tuned else DEFAULT_TOKEN_MIN_LOGP,
                        help=f"try a character only above this log-probability (default: {where}-5)")
    parser.add_argument("--beam-prune-logp", type=finite_float, default=None if tuned else DEFAULT_BEAM_PRUNE_LOGP,
                        help=f"keep beams within this of the best (default: {where}-10)")


def add_decoding(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--beam", type=positive_int, default=None, help="beam width (default: greedy decoding)")
    add_search_bounds(parser)
    parser.add_argument("--lm", help="n-gram LM: a folder from `stochw2v lm build` (its tuned weights are used), "
                                     "or an ARPA / KenLM binary file")
    parser.add_argument("--lm-weight", type=finite_float, default=None,
                        help="LM weight (pyctcdecode alpha; default: the LM folder's tuned value, else "
                             f"{DEFAULT_LM_WEIGHT})")
    parser.add_argument("--word-score", type=finite_float, default=None,
                        help=f"score added per word (beta; default: the tuned value, else {DEFAULT_WORD_SCORE})")
    parser.add_argument("--unknown-word-score", type=finite_float, default=None,
                        help="score added for a word the LM does not list (lower: a stricter lexicon, -1000 "
                             "allows only its words; default: the tuned value, else -10)")


def add_decode_workers(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--decode-workers", type=positive_int, default=1,
                        help="processes for beam search, each decoding its share of a batch's utterances "
                             "(default: 1; the encoder's --threads are idle while they run)")


BEAM_DEFAULTS = {"lm_weight": DEFAULT_LM_WEIGHT, "word_score": DEFAULT_WORD_SCORE,
                 "unknown_word_score": DEFAULT_UNKNOWN_WORD_SCORE,
                 "token_min_logp": DEFAULT_TOKEN_MIN_LOGP, "beam_prune_logp": DEFAULT_BEAM_PRUNE_LOGP}


def beam_options(args: argparse.Namespace) -> dict | None:
    """Beam search settings, or None for greedy decoding; a tuned LM folder supplies its weights.
    Decoding workers only where a command decodes many utterances at once (evaluate, lm tune)."""
    if not args.beam and not args.lm:
        return None
    tuned = (tuned_weights(args.lm) if args.lm else None) or {}
    options = {"beam_width": args.beam or tuned.get("beam", DEFAULT_BEAM_WIDTH), "lm": args.lm,
               "workers": getattr(args, "decode_workers", 1)}
    for key, default in BEAM_DEFAULTS.items():  # what the user says wins, then the tuned value, then ours
        given = getattr(args, key)
        options[key] = given if given is not None else tuned.get(key, default)
    return options


def load_model(path: str, device: torch.device | None = None, dtype: torch.dtype | None = None) -> Model:
    model = load(path)
    return model.to(device=device, dtype=dtype)


def load_recogniser(path: str, device: torch.device | None = None, dtype: torch.dtype | None = None) -> CTCModel:
    model = load_model(path, device, dtype)
    if not isinstance(model, CTCModel):
        raise Stochw2vError(f"{path}: holds an encoder without a CTC head; fine-tune it first (stochw2v finetune)")
    return model


def recogniser_from_args(path: str, args: argparse.Namespace) -> CTCModel:
    """The recogniser at `path` on the device and backend the command asked for. At float32 it is a
    `PrecisionDial`, so that a setting may name its precision (s=2@bf16, s=2@int8); --dtype loads the
    whole model at that precision instead."""
    backend = getattr(args, "backend", "torch")
    dtype_name = getattr(args, "dtype", "float32")
    if backend not in BACKENDS:
        raise Stochw2vError(f"backend {backend!r} (from ${BACKEND_ENV}) is not one of {', '.join(BACKENDS)}")
    if backend == "onnxruntime" and (args.device not in (None, "cpu") or dtype_name != "float32"):
        raise Stochw2vError(f"--backend {backend} runs float32 on the CPU; drop --device {args.device} / --dtype "
                            f"{dtype_name} or use --backend torch")
    device, dtype = model_device_dtype(args) if backend != "onnxruntime" else (torch.device("cpu"), torch.float32)
    model = load_recogniser(path, device, dtype)
    if dtype != torch.float32:
        return model
    return PrecisionDial(model, backend, getattr(args, "threads", None))


__all__ = ["add_decode_workers", "add_decoding", "add_device", "add_search_bounds", "add_threads", "beam_options",
           "bounded_float", "bounded_int", "finite_float", "load_model", "load_recogniser", "model_profile",
           "one_setting", "recogniser_from_args", "positive_float", "positive_int", "resolve_device", "settings_list"]
