"""Where inference runs and at what precision: torch (the model itself) or ONNX Runtime on the model's
exported graphs (`onnx_runtime.py`), and one recogniser for every (setting, precision) pair (`dial.py`)."""
from .dial import PrecisionDial, SlowPrecisionWarning, cpu_has_fast_bf16
from .onnx_runtime import BACKENDS, OnnxRuntimeRecogniser, default_backend

__all__ = ["BACKENDS", "OnnxRuntimeRecogniser", "PrecisionDial", "SlowPrecisionWarning",
           "cpu_has_fast_bf16", "default_backend"]
