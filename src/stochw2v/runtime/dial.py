"""The dial as setting x precision: one recogniser that runs ``s=2``, ``s=2@bf16`` and ``s=2@int8``.

Precision is the widest knob on a CPU (bf16 about 3x cheaper than fp32 where the CPU has AMX or
AVX512-BF16, int8 matrix products on ONNX Runtime), so `profile`, `--budget`, the cascade and `serve`
choose among (setting, precision) pairs, not settings alone. `PrecisionDial` holds the fp32 weights
once and builds each precision's variant on first use:

* ``fp32``: the model on the chosen backend, torch or its ONNX graphs on ONNX Runtime. ``auto`` takes
  torch: with its linears on oneDNN (model/linear.py) it ran as fast as ONNX Runtime on the same graph
  (base size, 10 s, 2 threads: 1.00 at batch 1, 0.98 at batch 8) and needs no export (15 s per setting
  for the shipped model on first use);
* ``bf16``: a bfloat16 copy on torch (ONNX Runtime's CPU kernels have no bf16 path);
* ``int8``: the setting's ONNX graph with int8 matrix products, on ONNX Runtime.

Each precision has one runtime, so a row of a profile names its precision and thereby its runtime.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import Tensor

from ..compute.compression import (
    FP32,
    PRECISIONS,
    Compression,
    CompressionLike,
    at_precision,
    precision_of,
    without_precision,
)
from ..errors import ConfigError
from ..model.ctc import CTCModel, CTCOutput
from ..model.encoder import Encoder
from .onnx_runtime import BACKENDS, OnnxRuntimeRecogniser, onnxruntime

CPU_FLAGS = Path("/proc/cpuinfo")
FAST_BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # without either, torch emulates bf16 and is slower than fp32


class SlowPrecisionWarning(UserWarning):
    """A precision this machine runs, but more slowly than fp32."""



def cpu_has_fast_bf16() -> bool | None:
    """Whether the CPU has bf16 instructions (None where /proc/cpuinfo does not say)."""
    try:
        flags = CPU_FLAGS.read_text()
    except OSError:
        return None
    return any(flag in flags for flag in FAST_BF16_FLAGS)


class PrecisionDial(CTCModel):
    """`model` (float32 weights) at every precision, chosen per call by the setting's ``@precision``."""

    def __init__(self, model: CTCModel, backend: str = "torch", threads: int | None = None,
                 cache: Path | None = None) -> None:
        if backend not in BACKENDS:
            raise ConfigError(f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
        if next(model.parameters()).dtype != torch.float32:
            raise ConfigError("a precision dial starts from float32 weights (it makes the bf16 and int8 variants "
                              "itself); load the model without --dtype")
        super().__init__(model.encoder, model.vocabulary)
        self.head, self.dropout = model.head, model.dropout
        self.device = next(model.parameters()).device
        backend = "torch" if backend == "auto" else backend  # fp32 runs fastest there (module docstring)
        self.backend, self.threads, self.cache = backend, threads, cache
        self._variants: dict[str, CTCModel] = {FP32: model} if backend == "torch" else {}
        # not a submodule: its encoder and head are this module's own, so the state dict (and a save) holds
        # each weight once, under the recogniser's names
        object.__setattr__(self, "base", model)
        self.eval()

    def check_precision(self, precision: str) -> None:
        """Refuse, by name, a precision this machine or install cannot run (before any request needs it)."""
        if precision not in PRECISIONS:
            raise ConfigError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
        if precision == "int8":
            if onnxruntime is None:
                raise ConfigError("precision int8 runs on ONNX Runtime, and the onnxruntime package is not "
                                  "installed (pip install stochw2v[onnx])")
            if self.device.type != "cpu":
                raise ConfigError(f"precision int8 runs on ONNX Runtime's CPU kernels, not on {self.device}")
        if precision == FP32 and self.backend == "onnxruntime" and self.device.type != "cpu":
            raise ConfigError(f"backend onnxruntime runs on the CPU, not on {self.device}")

    def resolve(self, compression: CompressionLike) -> Compression:
        """The operating point, its compression checked on these weights and its precision on this machine."""
        setting = Compression.parse(compression) if compression is not None else None
        precision = FP32 if setting is None else precision_of(setting)
        self.check_precision(precision)
        plain = self.base.resolve(None if setting is None else without_precision(setting))
        return at_precision(plain, precision)

    def variant(self, precision: str) -> CTCModel:
        """The recogniser that runs `precision`, built on first use."""
        if precision not in self._variants:
            self.check_precision(precision)
            if precision == "bf16":
                if self.device.type == "cpu" and cpu_has_fast_bf16() is False:
                    warnings.warn("precision bf16: this CPU has neither AMX nor AVX512-BF16, so torch emulates "
                                  "bf16 and it runs slower than fp32", SlowPrecisionWarning, stacklevel=3)
                self._variants[precision] = self._bf16_copy()
            else:  # fp32 on onnxruntime, or int8
                self._variants[precision] = OnnxRuntimeRecogniser(self.base, self.threads, self.cache, precision)
        return self._variants[precision]

    def _bf16_copy(self) -> CTCModel:
        """A bfloat16 recogniser of the same weights (built afresh: a deep copy would carry the fp32
        model's inference-mode caches)."""
        with torch.inference_mode(False):
            copy_ = CTCModel(Encoder(self.base.config), self.base.vocabulary)
            copy_.load_state_dict(self.base.state_dict())
            return copy_.to(device=self.device, dtype=torch.bfloat16).eval()

    def forward(self, waveforms: Tensor, lengths: Tensor | None = None, compression: CompressionLike = None,
                **training) -> CTCOutput:
        """At inference, the point's precision variant at its compression; training is fp32 torch."""
        if self.training or torch.is_grad_enabled() or any(value for value in training.values()):
            return self.base(waveforms, lengths, compression, **training)
        point = self.resolve(compression)
        precision = precision_of(point)
        model = self.variant(precision)
        if precision == "bf16":
            waveforms = waveforms.to(torch.bfloat16)
        out = model(waveforms, lengths, without_precision(point))
        return CTCOutput(out.logits.float(), out.lengths)


__all__ = ["PrecisionDial", "SlowPrecisionWarning", "cpu_has_fast_bf16"]
