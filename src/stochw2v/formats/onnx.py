"""ONNX export: one graph per compression setting, dynamic batch and length, padding as an input.

The graph takes `waveforms` [batch, samples] (float32, 16 kHz, zero-padded) and `lengths` [batch]
(int64 valid samples) and returns `logits` [batch, frames, vocabulary] (a recogniser) or
`hidden_states` [batch, frames, dim] (an encoder), and `frames` [batch]. It is the model's own
forward pass, traced by torch.export with the data-dependent conveniences of eager mode (input
checks, per-item loops, inference caches) replaced by their vectorised equivalents.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from ..compute.compression import CompressionLike
from ..errors import ConfigError, Stochw2vError
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


def export_onnx(model: Encoder | CTCModel, path: str | Path, compression: CompressionLike = None,
                opset: int = 18) -> Path:
    """Write `model` at one setting as an ONNX file (warns if the setting was never trained)."""
    path = Path(path)
    if path.is_dir():
        raise Stochw2vError(f"{path}: is a folder; give the .onnx file to write")
    ensure_writable_folder(path.parent)
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
    return path


__all__ = ["ExportGraph", "export_onnx"]
