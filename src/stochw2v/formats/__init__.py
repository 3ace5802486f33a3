"""Every file format, in one home: our model folder (`model_folder.py`: `save` and its reader), the
training checkpoint (`checkpoint.py`) and run folder (`run_folder.py`), the recipe reader
(`strict_yaml.py`), HF transformers (`hf.py`), fairseq (`fairseq.py`), ONNX (`onnx.py`), and
`stochw2v.load`, which finds which of them a path holds (`load.py`).

Nothing here imports train/: loading a model for inference needs none of the training code.
"""
from .hf import export_hf
from .load import load, load_run
from .model_folder import save

__all__ = ["export_hf", "load", "load_run", "save"]
