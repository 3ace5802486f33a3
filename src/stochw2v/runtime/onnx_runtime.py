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

from ..compute.compression import Compression, CompressionLike
from ..errors import ConfigError
from ..formats.onnx import export_onnx
from ..model.ctc import CTCModel, CTCOutput
from ..model.inputs import as_waveform_batch

try:
    import onnxruntime
except ImportError:  # an optional dependency: the torch backend needs none of it
    onnxruntime = None

BACKENDS = ("torch", "onnxruntime")
CACHE_ENV = "STOCHW2V_CACHE"  # where exported graphs are kept (default: $XDG_CACHE_HOME/stochw2v, ~/.cache/...)


def cache_root() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "stochw2v"


def model_digest(model: CTCModel) -> str:
    """Of the weights, the vocabulary and the config: a graph exported from other weights is never reused."""
    digest = hashlib.sha256(json.dumps([model.config.to_dict(), list(model.vocabulary.tokens)],
                                       sort_keys=True).encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().float().numpy().tobytes())
    return digest.hexdigest()[:16]


class OnnxRuntimeRecogniser(CTCModel):
    """`model` with its inference on ONNX Runtime (CPU, float32), one cached graph per setting."""

    def __init__(self, model: CTCModel, threads: int | None = None, cache: Path | None = None) -> None:
        if onnxruntime is None:
            raise ConfigError("backend onnxruntime: the onnxruntime package is not installed (pip install "
                              "stochw2v[onnx]); use --backend torch")
        if next(model.parameters()).dtype != torch.float32 or next(model.parameters()).device.type != "cpu":
            raise ConfigError("backend onnxruntime runs float32 graphs on the CPU; drop --dtype/--device or use "
                              "--backend torch")
        super().__init__(model.encoder, model.vocabulary)
        self.head, self.dropout = model.head, model.dropout
        self.threads = threads or torch.get_num_threads()
        self.folder = (cache or cache_root() / "onnx") / model_digest(model)
        self._sessions: dict[Compression, object] = {}
        self.eval()

    def forward(self, waveforms: Tensor, lengths: Tensor | None = None, compression: CompressionLike = None,
                **training) -> CTCOutput:
        """At inference the setting's graph; with training arguments or gradients, the torch path."""
        if self.training or torch.is_grad_enabled() or any(value for value in training.values()):
            return super().forward(waveforms, lengths, compression, **training)
        setting = self.encoder.resolve(compression)
        waveforms, lengths = as_waveform_batch(waveforms, lengths, self.config.receptive_field, torch.float32,
                                               torch.device("cpu"))
        if lengths is None:
            lengths = torch.full((waveforms.shape[0],), waveforms.shape[1], dtype=torch.long)
        shortest = self.config.num_frames(int(lengths.min()))
        setting.check(self.config.num_layers, self.config.max_upsample, num_frames=shortest)
        logits, frames = self.session(setting).run(
            None, {"waveforms": waveforms.contiguous().numpy(), "lengths": lengths.to(torch.long).numpy()})
        return CTCOutput(torch.from_numpy(logits), torch.from_numpy(frames))

    def session(self, setting: Compression):
        """The setting's ONNX Runtime session, exporting its graph first if the cache has none."""
        if setting not in self._sessions:
            path = self.folder / f"{str(setting).replace(',', '_').replace('=', '')}.onnx"
            if not path.exists():
                self.folder.mkdir(parents=True, exist_ok=True)
                partial = path.with_name(f".{path.stem}.{os.getpid()}.onnx")
                export_onnx(self, partial, setting)  # the graph of these weights (ExportGraph skips forward)
                partial.replace(path)  # a graph is complete or absent, whoever else shares the cache
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads, options.inter_op_num_threads = self.threads, 1
            self._sessions[setting] = onnxruntime.InferenceSession(str(path), options,
                                                                   providers=["CPUExecutionProvider"])
        return self._sessions[setting]


def with_backend(model: CTCModel, backend: str, threads: int | None = None) -> CTCModel:
    """`model` on the named backend."""
    if backend not in BACKENDS:
        raise ConfigError(f"backend {backend!r} is not one of {BACKENDS}")
    return model if backend == "torch" else OnnxRuntimeRecogniser(model, threads)


__all__ = ["BACKENDS", "CACHE_ENV", "OnnxRuntimeRecogniser", "cache_root", "model_digest", "with_backend"]
