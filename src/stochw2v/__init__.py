"""stochw2v: wav2vec 2.0 / SEW speech encoders whose compute is chosen per call.

    import stochw2v
    model = stochw2v.load("path/to/model")          # ours or a HF Wav2Vec2/SEW folder
    out = model.encode(waveform, compression="s=2")  # hidden states [B, frames, dim], lengths
"""
from .model import (
    Compression,
    Encoder,
    EncoderConfig,
    EncoderOutput,
    MacCount,
    StochasticPolicy,
    count_macs,
    count_parameters,
    export_hf,
    load,
)

__version__ = "0.1.0"
__all__ = [
    "Compression", "Encoder", "EncoderConfig", "EncoderOutput", "MacCount", "StochasticPolicy",
    "count_macs", "count_parameters", "export_hf", "load", "__version__",
]
