"""Activation functions by config name, applied in place when autograd does not need the input."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ConfigError

_OUT_OF_PLACE: dict[str, Callable[[Tensor], Tensor]] = {
    "gelu": F.gelu,
    "relu": F.relu,
    "silu": F.silu,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
}
_IN_PLACE: dict[str, Callable[[Tensor], Tensor]] = {
    "gelu": torch.ops.aten.gelu_,
    "relu": torch.relu_,
    "silu": lambda x: F.silu(x, inplace=True),
    "gelu_tanh": lambda x: torch.ops.aten.gelu_(x, approximate="tanh"),
}


def activation(name: str) -> Callable[[Tensor], Tensor]:
    """The named activation. At inference it overwrites its input, saving a large allocation
    per call (the first conv layer's output alone is 64 MB for 10 s of audio)."""
    if name not in _OUT_OF_PLACE:
        raise ConfigError(f"unknown activation {name!r}; choose from {sorted(_OUT_OF_PLACE)}")
    out_of_place, in_place = _OUT_OF_PLACE[name], _IN_PLACE[name]

    def apply(x: Tensor) -> Tensor:
        if x.requires_grad or x._is_view() or torch.compiler.is_compiling():
            return out_of_place(x)
        return in_place(x)

    return apply
