"""Compute on demand, in one place: the setting grammar (`compression.py`), the training distribution
over settings (`policy.py`), what a setting costs from the config alone (`macs.py`), and what it costs
and earns on one machine with the setting a budget affords (`budget.py`)."""
from .budget import Choice, Profile, SettingCost, pick_setting
from .compression import Compression, CompressionLike
from .macs import MacCount, count_macs
from .policy import LayerPooling, StochasticPolicy

__all__ = [
    "Choice", "Compression", "CompressionLike", "LayerPooling", "MacCount", "Profile", "SettingCost",
    "StochasticPolicy", "count_macs", "pick_setting",
]
