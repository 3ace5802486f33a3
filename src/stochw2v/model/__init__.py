"""The encoder and everything about its weights: config, compression, MACs, checkpoints."""
from .checkpoint import count_parameters, load, save_encoder
from .compression import Compression, StochasticPolicy
from .config import EncoderConfig
from .encoder import Encoder, EncoderOutput
from .hf import export_hf
from .macs import MacCount, count_macs

__all__ = [
    "Compression", "StochasticPolicy", "EncoderConfig", "Encoder", "EncoderOutput", "MacCount",
    "count_macs", "count_parameters", "export_hf", "load", "save_encoder",
]
