"""ONNX export: one graph per compression setting, dynamic batch and length, padding as an input.

The graph takes `waveforms` [batch, samples] (float32, 16 kHz, zero-padded) and `lengths` [batch]
(int64 valid samples) and returns `logits` [batch, frames, vocabulary] (a recogniser) or
`hidden_states` [batch, frames, dim] (an encoder), and `frames` [batch]. It is the model's own
forward pass, traced by torch.export with the data-dependent conveniences of eager mode (input
checks, per-item loops, inference caches) replaced by their vectorised equivalents.

A setting at ``@int8`` is written as the fp32 graph with its matrix products dynamically quantized
by ONNX Runtime's quantizer (int8 weights, activations quantized per call; the convolutions stay
fp32: the positional conv's weight is computed from its weight norm, and ONNX Runtime's ConvInteger
was slower than its fp32 conv on the feature encoder). Every graph records its precision in its
metadata (`PRECISION_KEY`), and `open_session` refuses a graph of another precision than asked.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from ..compute.compression import FP32, Compression, CompressionLike, precision_of, without_precision
from ..errors import ConfigError, ModelFileError, Stochw2vError
from ..files import ensure_writable_folder
from ..model.ctc import CTCModel
from ..model.encoder import Encoder, UntrainedSettingWarning


class ExportGraph(nn.Module):
    """The forward pass at one fixed setting, without input checks (the graph's caller pads)."""

    def __init__(self, model: Encoder | CTCModel, compression: CompressionLike) -> None:
        super().__init__()
        self.model = model
        self.encoder = model.encoder if isinstance(model, CTCModel) else model
        self.setting = self.encoder.resolve(compression)

    def forward(self, waveforms: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        features = self.encoder.extract_features(waveforms, lengths)
        hidden = self.encoder.context(features.projected, features.lengths, self.setting)
        if isinstance(self.model, CTCModel):
            hidden = self.model.head(hidden)
        return hidden, features.lengths


PRECISION_KEY = "stochw2v_precision"
ONNX_PRECISIONS = (FP32, "int8")  # what a graph may hold (bf16 runs on the torch path)


def export_onnx(model: Encoder | CTCModel, path: str | Path, compression: CompressionLike = None,
                opset: int = 18) -> Path:
    """Write `model` at one setting as an ONNX file (warns if the setting was never trained); a setting
    at ``@int8`` writes the int8 graph."""
    path = Path(path)
    if path.is_dir():
        raise Stochw2vError(f"{path}: is a folder; give the .onnx file to write")
    ensure_writable_folder(path.parent)
    setting = Compression.parse(compression) if compression is not None else None
    precision = FP32 if setting is None else precision_of(setting)
    if precision not in ONNX_PRECISIONS:
        raise ConfigError(f"setting {setting}: an ONNX graph holds {' or '.join(ONNX_PRECISIONS)}, not {precision} "
                          f"(bf16 runs on the torch backend)")
    if precision != FP32:
        partial = path.with_name(f"{path.stem}.fp32-{os.getpid()}.onnx")
        try:
            _export_fp32(model, partial, without_precision(setting), opset)
            _quantize_int8(partial, path)
        finally:
            partial.unlink(missing_ok=True)
        return path
    return _export_fp32(model, path, setting, opset)


def _export_fp32(model: Encoder | CTCModel, path: Path, compression: CompressionLike, opset: int) -> Path:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UntrainedSettingWarning)
        graph = ExportGraph(model.eval(), compression).eval()
    for warning in caught:
        warnings.warn(str(warning.message), UntrainedSettingWarning, stacklevel=2)
    receptive = graph.encoder.config.receptive_field
    samples = receptive + graph.encoder.config.hop * 8 * graph.setting.total_factor * 4
    example = (torch.randn(2, samples), torch.tensor([samples, samples - graph.encoder.config.hop * 9]))
    batch, length = torch.export.Dim("batch", min=1), torch.export.Dim("samples", min=samples // 2)
    name = "logits" if isinstance(model, CTCModel) else "hidden_states"
    try:
        torch.onnx.export(graph, example, str(path), dynamo=True, opset_version=opset,
                          input_names=["waveforms", "lengths"], output_names=[name, "frames"],
                          dynamic_shapes={"waveforms": {0: batch, 1: length}, "lengths": {0: batch}},
                          verbose=False)
    except ImportError as error:
        raise ConfigError(f"ONNX export needs onnx and onnxscript (pip install stochw2v[onnx]): {error}") from None
    _mark_precision(path, FP32)
    return path


def _mark_precision(path: Path, precision: str) -> None:
    """Record the graph's precision, and keep its weights inside the one file (the exporter writes them
    beside it as PATH.data, which a renamed or copied graph would lose)."""
    import onnx

    graph = onnx.load(str(path))
    del graph.metadata_props[:]
    graph.metadata_props.add(key=PRECISION_KEY, value=precision)
    onnx.save(graph, str(path))
    path.with_name(path.name + ".data").unlink(missing_ok=True)


def _quantize_int8(fp32: Path, out: Path) -> None:
    """Dynamic int8 quantization of the graph's matrix products (weights int8, activations per call)."""
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as error:
        raise ConfigError(f"int8 graphs need onnxruntime's quantizer (pip install stochw2v[onnx]): {error}") from None
    import logging

    quiet = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)  # its advice to pre-process the graph, on every call
    try:
        quantize_dynamic(str(fp32), str(out), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"])
    finally:
        logging.getLogger().setLevel(quiet)
    _mark_precision(out, "int8")


def open_session(path: Path, precision: str, threads: int):
    """An ONNX Runtime CPU session of the graph at `path`, which must hold `precision`."""
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError("the onnxruntime package is not installed (pip install stochw2v[onnx])") from None
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    try:
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # noqa: BLE001 - onnxruntime's own error types; one line naming the file
        raise ModelFileError(f"{path}: not an ONNX graph ONNX Runtime can run ({error})") from None
    held = session.get_modelmeta().custom_metadata_map.get(PRECISION_KEY, "unknown")
    if held != precision:
        raise ModelFileError(f"{path}: this graph holds {held} weights, but it was loaded as {precision}; "
                             f"load it as {held}, or export it again with the setting @{precision}")
    return session


__all__ = ["ONNX_PRECISIONS", "PRECISION_KEY", "ExportGraph", "export_onnx", "open_session"]
