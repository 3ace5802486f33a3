"""The network only: its config, the conv front end, the context network at a setting, the CTC head.

Settings, the training distribution, MACs and budgets are `compute/`; files are `formats/`.
"""
from .config import PRESETS, EncoderConfig
from .ctc import CTCModel, CTCOutput, Model, greedy_decode
from .encoder import Encoder, EncoderOutput, UntrainedSettingWarning, count_parameters

__all__ = [
    "CTCModel", "CTCOutput", "Encoder", "EncoderConfig", "EncoderOutput", "Model", "PRESETS",
    "UntrainedSettingWarning", "count_parameters", "greedy_decode",
]
