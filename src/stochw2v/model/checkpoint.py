"""Saving and loading encoders: our own folders and HF transformers folders, behind one `load`."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from torch import Tensor, nn

from .config import EncoderConfig

FORMAT = "stochw2v"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


def atomic_write(path: Path, data: bytes | None, writer: Callable[[str], Any] | None = None) -> None:
    """Write `data` (or let `writer(tmp_path)` write) to a temp file beside `path`, then rename.

    A crash leaves either the old file or the new one, never half of one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            if data is not None:
                handle.write(data)
        if writer is not None:
            writer(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_encoder(model: nn.Module, path: str | os.PathLike) -> Path:
    from safetensors.torch import save_file

    out = Path(path)
    config: EncoderConfig = model.config  # type: ignore[assignment]
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    atomic_write(out / WEIGHTS_FILE, None, lambda tmp: save_file(state, tmp, metadata={"format": "pt"}))
    meta = {"format": FORMAT, "kind": "encoder", "version": 1, "encoder": config.to_dict()}
    atomic_write(out / CONFIG_FILE, json.dumps(meta, indent=2).encode())
    return out


def load_state_checked(model: nn.Module, state: dict[str, Tensor], source: str,
                       optional: tuple[str, ...] = ()) -> None:
    """load_state_dict with messages that name the file and the mismatching tensors."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state and k not in optional]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k}: file {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
              for k, v in state.items() if k in expected and v.shape != expected[k].shape]
    problems = []
    if missing:
        problems.append(f"missing weights {missing[:6]}{' ...' if len(missing) > 6 else ''}")
    if unexpected:
        problems.append(f"unexpected weights {unexpected[:6]}{' ...' if len(unexpected) > 6 else ''}")
    if shapes:
        problems.append("shape mismatch " + "; ".join(shapes[:4]))
    if problems:
        raise ValueError(f"{source}: checkpoint does not fit its config: " + "; ".join(problems))
    model.load_state_dict(state, strict=False)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return data


def load(path: str | os.PathLike) -> nn.Module:
    """Load a model folder: ours (encoder or CTC recogniser), a training run (its latest checkpoint),
    or a HF Wav2Vec2 / SEW `save_pretrained` folder (its encoder)."""
    from .encoder import Encoder
    from .hf import HF_MODEL_TYPES, load_hf_encoder

    folder = Path(path)
    if not folder.exists():
        raise FileNotFoundError(f"{folder}: no such file or directory")
    if not folder.is_dir():
        raise ValueError(f"{folder}: expected a model directory (config.json + weights), got a file")
    run_checkpoint = folder / "checkpoints" / "checkpoint_last.pt"
    if run_checkpoint.exists():
        return _load_run_encoder(run_checkpoint)
    config_path = folder / CONFIG_FILE
    if not config_path.exists():
        raise FileNotFoundError(f"{folder}: no {CONFIG_FILE}; not a stochw2v or HF transformers model folder")
    meta = _read_json(config_path)
    if meta.get("format") == FORMAT:
        if meta.get("kind") not in ("encoder", "ctc"):
            raise ValueError(f"{config_path}: holds a {meta.get('kind')!r}, not an encoder or CTC model")
        try:
            config = EncoderConfig.from_dict(meta["encoder"])
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{config_path}: bad encoder config ({error})") from None
        weights = folder / WEIGHTS_FILE
        if not weights.exists():
            raise FileNotFoundError(f"{folder}: no {WEIGHTS_FILE}")
        from safetensors.torch import load_file

        try:
            state = load_file(str(weights))
        except Exception as error:  # noqa: BLE001
            raise ValueError(f"{weights}: cannot read weights ({error})") from None
        model = Encoder(config)
        if meta["kind"] == "ctc":
            model = _ctc_model(model, meta, str(config_path))
        load_state_checked(model, state, str(weights))
        return model.eval()
    if meta.get("model_type") in HF_MODEL_TYPES:
        return load_hf_encoder(folder, meta)
    raise ValueError(
        f"{config_path}: neither a stochw2v model nor a HF model of type {HF_MODEL_TYPES} "
        f"(model_type={meta.get('model_type')!r})"
    )


def _load_run_encoder(path: Path) -> nn.Module:
    """The encoder of a training run's latest checkpoint."""
    import torch

    from .encoder import Encoder

    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
        config = EncoderConfig.from_dict(state["encoder_config"])
    except Exception as error:  # noqa: BLE001
        raise ValueError(f"{path}: not a readable training checkpoint ({error})") from None
    if state.get("kind") == "finetune":
        model = _ctc_model(Encoder(config), state, str(path))
        load_state_checked(model, state["model"], str(path))
        return model.eval()
    weights = {k[len("encoder."):]: v for k, v in state["model"].items() if k.startswith("encoder.")}
    model = Encoder(config)
    load_state_checked(model, weights, str(path))
    return model.eval()


def _ctc_model(encoder: nn.Module, meta: dict, source: str) -> nn.Module:
    from ..data.text import Vocabulary
    from .ctc import CTCModel

    try:
        vocabulary = Vocabulary(tuple(meta["vocabulary"]))
    except (KeyError, TypeError):
        raise ValueError(f"{source}: a CTC model without its vocabulary") from None
    return CTCModel(encoder, vocabulary, trained_settings=meta.get("trained_settings", []))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["load", "save_encoder", "atomic_write", "load_state_checked", "count_parameters"]
