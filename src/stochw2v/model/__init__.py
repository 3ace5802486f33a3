"""The encoder and everything about its weights: config, compression, policy, MACs, folders, HF interop."""
from .compression import Compression, CompressionLike
from .config import PRESETS, EncoderConfig
from .ctc import CTCModel, CTCOutput, greedy_decode
from .encoder import Encoder, EncoderOutput, UntrainedSettingWarning
from .hf import export_hf
from .loading import Model, count_parameters
from .macs import MacCount, count_macs
from .policy import LayerPooling, StochasticPolicy

__all__ = [
    "CTCModel", "CTCOutput", "Compression", "CompressionLike", "Encoder", "EncoderConfig", "EncoderOutput",
    "LayerPooling", "MacCount", "Model", "PRESETS", "StochasticPolicy", "UntrainedSettingWarning", "count_macs",
    "count_parameters", "export_hf", "greedy_decode",
]
