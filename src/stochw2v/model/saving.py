"""Our model folder format, write side: config.json (JSON) + model.safetensors (+ vocab.json).

    {"format": "stochw2v", "version": 2, "kind": "encoder" | "ctc",
     "encoder": {EncoderConfig fields, trained_policy included},
     "vocabulary": [tokens]   (ctc only)}

A recogniser's folder also gets vocab.json ({token: id}, as HF tokenizers write it), for readers who
look for the vocabulary there; config.json stays the one that loading reads.

Reading (and building the modules back) is `model/loading.py`; both sides share these names.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..errors import Stochw2vError
from ..files import ensure_writable_folder, write_json, write_tensors

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


__all__ = ["CONFIG_FILE", "FORMAT", "KINDS", "VERSION", "VOCABULARY_FILE", "WEIGHTS_FILE", "write_model_folder"]
