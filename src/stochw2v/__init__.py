"""stochw2v: wav2vec 2.0 / SEW speech encoders whose compute is chosen per call.

    import stochw2v
    model = stochw2v.load("path/to/model")          # ours, a training run, or a HF Wav2Vec2/SEW folder
    out = model.encode(waveform, compression="s=2")  # hidden states [B, frames, dim], lengths
    stochw2v.save(model, "my_model")                 # config.json + model.safetensors
"""
from .compute import Compression, LayerPooling, MacCount, StochasticPolicy, count_macs, pick_setting
from .errors import Stochw2vError
from .formats import export_hf, load, save
from .model import CTCModel, Encoder, EncoderConfig, EncoderOutput, UntrainedSettingWarning, count_parameters

__version__ = "0.2.0"
__all__ = [
    "CTCModel", "Compression", "Encoder", "EncoderConfig", "EncoderOutput", "LayerPooling", "MacCount",
    "StochasticPolicy", "Stochw2vError", "UntrainedSettingWarning", "count_macs", "count_parameters", "export_hf",
    "load", "pick_setting", "save", "__version__",
]
