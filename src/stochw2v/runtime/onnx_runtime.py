"""The ONNX Runtime backend: a recogniser whose inference runs its own exported graph.

ONNX Runtime runs our exported graph about twice as fast as our torch path on the CPU (issue #30's
measurement). `OnnxRuntimeRecogniser` is a `CTCModel` (same weights, vocabulary and settings) whose
forward pass, at inference, runs one ONNX graph per compression setting: exported on first use with
`formats/onnx.export_onnx` into a cache folder keyed by a digest of the weights and config, and read
from there afterwards. Training, distillation teachers and gradients stay on the torch path.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from torch import Tensor

from ..compute.compression import FP32, Compression, CompressionLike, at_precision, precision_of, without_precision
from ..errors import ConfigError
from ..formats.onnx import ONNX_PRECISIONS, export_onnx, open_session
from ..model.ctc import CTCModel, CTCOutput
from ..model.inputs import as_waveform_batch

try:
    import onnxruntime
except ImportError:  # an optional dependency: the torch backend needs none of it
    onnxruntime = None

BACKENDS = ("auto", "torch", "onnxruntime")  # auto: each precision on its fastest runtime (dial.py)
BACKEND_ENV = "STOCHW2V_BACKEND"  # the CLI's default --backend (auto when unset)
GRAPH_FORMAT = 2  # bumped when what a cached graph holds changes (2: its precision in its metadata)
CACHE_ENV = "STOCHW2V_CACHE"  # where exported graphs are kept (default: $XDG_CACHE_HOME/stochw2v, ~/.cache/...)


def default_backend() -> str:
    """$STOCHW2V_BACKEND, else auto (checked where it is used, so that a bad value is one clear line)."""
    return os.environ.get(BACKEND_ENV, "auto")


def cache_root() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "stochw2v"


def model_digest(model: CTCModel) -> str:
    """Of the weights, the vocabulary and the config: a graph exported from other weights is never reused."""
    digest = hashlib.sha256(json.dumps([model.config.to_dict(), list(model.vocabulary.tokens)],
                                       sort_keys=True).encode())
    digest.update(f"graph-format-{GRAPH_FORMAT}".encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().float().numpy().tobytes())
    return digest.hexdigest()[:16]


class OnnxRuntimeRecogniser(CTCModel):
    """`model` with its inference on ONNX Runtime (CPU, float32 or int8), one cached graph per setting."""

    def __init__(self, model: CTCModel, threads: int | None = None, cache: Path | None = None,
                 precision: str = FP32) -> None:
        if onnxruntime is None:
            what = "backend onnxruntime" if precision == FP32 else f"precision {precision} (it runs on ONNX Runtime)"
            raise ConfigError(f"{what}: the onnxruntime package is not installed (pip install stochw2v[onnx]); "
                              f"use --backend torch")
        if precision not in ONNX_PRECISIONS:
            raise ConfigError(f"backend onnxruntime runs {' or '.join(ONNX_PRECISIONS)}, not {precision}")
        if next(model.parameters()).dtype != torch.float32 or next(model.parameters()).device.type != "cpu":
            raise ConfigError("backend onnxruntime runs float32 graphs on the CPU; drop --dtype/--device or use "
                              "--backend torch")
        super().__init__(model.encoder, model.vocabulary)
        self.head, self.dropout = model.head, model.dropout
        self.threads = threads or torch.get_num_threads()
        self.precision = precision
        self.folder = (cache or cache_root() / "onnx") / model_digest(model)
        self._sessions: dict[Compression, object] = {}
        self.eval()

    def forward(self, waveforms: Tensor, lengths: Tensor | None = None, compression: CompressionLike = None,
                **training) -> CTCOutput:
        """At inference the setting's graph; with training arguments or gradients, the torch path."""
        if self.training or torch.is_grad_enabled() or any(value for value in training.values()):
            return super().forward(waveforms, lengths, compression, **training)
        setting = self.resolve(compression)
        waveforms, lengths = as_waveform_batch(waveforms, lengths, self.config.receptive_field, torch.float32,
                                               torch.device("cpu"))
        if lengths is None:
            lengths = torch.full((waveforms.shape[0],), waveforms.shape[1], dtype=torch.long)
        shortest = self.config.num_frames(int(lengths.min()))
        setting.check(self.config.num_layers, self.config.max_upsample, num_frames=shortest)
        logits, frames = self.session(setting).run(
            None, {"waveforms": waveforms.contiguous().numpy(), "lengths": lengths.to(torch.long).numpy()})
        return CTCOutput(torch.from_numpy(logits), torch.from_numpy(frames))

    def resolve(self, compression: CompressionLike) -> Compression:
        """The compression part of `compression`, checked; a precision other than this one's is refused."""
        setting = Compression.parse(compression) if compression is not None else None
        if setting is not None and precision_of(setting) not in (FP32, self.precision):
            raise ConfigError(f"setting {setting}: this ONNX Runtime recogniser runs {self.precision}; use "
                              f"stochw2v.runtime.PrecisionDial for several precisions")
        return self.encoder.resolve(None if setting is None else without_precision(setting))

    def session(self, setting: Compression):
        """The setting's ONNX Runtime session, exporting its graph first if the cache has none."""
        if setting not in self._sessions:
            point = at_precision(setting, self.precision)
            path = self.folder / f"{str(point).replace(',', '_').replace('=', '').replace('@', '_')}.onnx"
            if not path.exists():
                self.folder.mkdir(parents=True, exist_ok=True)
                partial = path.with_name(f"{path.stem}.partial-{os.getpid()}.onnx")
                export_onnx(self, partial, point)  # the graph of these weights (ExportGraph skips forward)
                partial.replace(path)  # a graph is complete or absent, whoever else shares the cache
            self._sessions[setting] = open_session(path, self.precision, self.threads)
        return self._sessions[setting]


__all__ = ["BACKENDS", "BACKEND_ENV", "CACHE_ENV", "OnnxRuntimeRecogniser", "cache_root", "default_backend",
           "model_digest"]
