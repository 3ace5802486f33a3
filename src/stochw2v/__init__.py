"""stochw2v: wav2vec 2.0 / SEW speech encoders whose compute is chosen per call.

    import stochw2v
    model = stochw2v.load("path/to/model")          # ours, a training run, or a HF Wav2Vec2/SEW folder
    out = model.encode(waveform, compression="s=2")  # hidden states [B, frames, dim], lengths
"""
from .errors import Stochw2vError
from .model import (
    Compression,
    CTCModel,
    Encoder,
    EncoderConfig,
    EncoderOutput,
    LayerPooling,
    MacCount,
    StochasticPolicy,
    UntrainedSettingWarning,
    count_macs,
    count_parameters,
    export_hf,
)
from .model.budget import pick_setting
from .sources import load

__version__ = "0.2.0"
__all__ = [
    "CTCModel", "Compression", "Encoder", "EncoderConfig", "EncoderOutput", "LayerPooling", "MacCount",
    "StochasticPolicy", "Stochw2vError", "UntrainedSettingWarning", "count_macs", "count_parameters", "export_hf",
    "load", "pick_setting", "__version__",
]
