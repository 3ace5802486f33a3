"""Where inference runs: torch (the model itself) or ONNX Runtime on the model's exported graphs."""
from .onnx_runtime import BACKENDS, OnnxRuntimeRecogniser, with_backend

__all__ = ["BACKENDS", "OnnxRuntimeRecogniser", "with_backend"]
