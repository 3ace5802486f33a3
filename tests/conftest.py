import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _torch_backend(monkeypatch):
    """The CLI defaults to ONNX Runtime (auto), which exports a graph per model and setting on first use:
    the tests run torch unless they ask for another backend (test_onnx.py tests auto and onnxruntime)."""
    monkeypatch.setenv("STOCHW2V_BACKEND", "torch")
