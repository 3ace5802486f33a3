"""Reading and writing files safely: the one module that touches model and checkpoint bytes.

* Writes are atomic (a temp file beside the target, then a rename) and get the permissions the
  user's umask gives a new file (mkstemp alone would make them 0600, unreadable by the group).
* Reads never run code: tensors come from safetensors, metadata from JSON, and the rare `.pt`
  or `.bin` goes through `torch.load(weights_only=True)`, which refuses anything but tensors and
  plain containers. A file that needs more is refused with `UnsafeFileError`, naming it.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from .errors import MissingFileError, ModelFileError, Stochw2vError, UnsafeFileError

_UMASK_LOCK = threading.Lock()
TEMP_SUFFIX = ".tmp"


def current_umask() -> int:
    with _UMASK_LOCK:
        mask = os.umask(0)
        os.umask(mask)
    return mask


def ensure_writable_folder(folder: Path, what: str = "output folder") -> Path:
    """Create `folder` (and parents) or say clearly why it cannot be: a file in the way, no permission."""
    folder = Path(folder)
    for parent in [folder, *folder.parents]:
        if parent.exists() and not parent.is_dir():
            raise Stochw2vError(f"{folder}: cannot be the {what}: {parent} is a file")
        if parent.exists():
            break
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise Stochw2vError(f"{folder}: cannot create the {what} ({error.strerror})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise Stochw2vError(f"{folder}: the {what} is not writable")
    return folder


def atomic_write(path: Path, data: bytes | None, writer: Callable[[str], Any] | None = None) -> Path:
    """Write `data` (or let `writer(tmp_path)` write) to a temp file beside `path`, then rename.

    A crash leaves either the old file or the new one, never half of one; a temp file left by a
    kill starts with '.' and ends in '.tmp' (`remove_stale_temp_files` clears them).
    """
    path = Path(path)
    if path.is_dir():
        raise Stochw2vError(f"{path}: is a folder; cannot write a file there")
    ensure_writable_folder(path.parent)
    with _replacing(path) as tmp:
        with open(tmp, "wb") as handle:
            if data is not None:
                handle.write(data)
        if writer is not None:
            writer(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())
    return path


def atomic_copy(source: Path, target: Path) -> Path:
    """Replace `target` by a copy of `source` atomically (a hard link when the filesystem allows)."""
    target = Path(target)
    with _replacing(target) as tmp:
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
            os.chmod(tmp, 0o666 & ~current_umask())
    return target


@contextmanager
def _replacing(target: Path) -> Iterator[str]:
    """A free temp name beside `target`; renamed over it on success, removed on any failure."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TEMP_SUFFIX, dir=target.parent)
    os.close(fd)
    os.unlink(tmp)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def remove_stale_temp_files(folder: Path) -> list[Path]:
    """Delete temp files a killed write left in `folder`; returns what was removed."""
    removed = []
    if Path(folder).is_dir():
        for path in Path(folder).iterdir():
            if path.name.startswith(".") and path.name.endswith(TEMP_SUFFIX) and path.is_file():
                path.unlink()
                removed.append(path)
    return removed


def write_json(path: Path, data: Any) -> Path:
    return atomic_write(path, (json.dumps(data, indent=2) + "\n").encode())


def read_json(path: Path, what: str = "JSON file") -> dict[str, Any]:
    """A JSON object from `path`, or a clear error naming the file."""
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"{path}: no such {what}")
    if path.is_dir():
        raise Stochw2vError(f"{path}: is a folder, expected a {what}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelFileError(f"{path}: not valid JSON ({error})") from None
    except RecursionError:
        raise ModelFileError(f"{path}: nested too deeply to be a {what}") from None
    if not isinstance(data, dict):
        raise ModelFileError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


# ------------------------------------------------------------------ tensors
METADATA_KEY = "stochw2v"


def write_tensors(path: Path, tensors: dict[str, Tensor], metadata: dict[str, Any] | None = None) -> Path:
    """safetensors file with our JSON metadata under one key, written atomically."""
    plain = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    header = {"format": "pt"}
    if metadata is not None:
        header[METADATA_KEY] = json.dumps(metadata)
    return atomic_write(path, None, lambda tmp: save_file(plain, tmp, metadata=header))


def read_tensors(path: Path, with_metadata: bool = False) -> Any:
    """Tensors (and our metadata, {} if none) from a safetensors file; clear errors for bad files."""
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"{path}: no such weights file")
    try:
        tensors = {}
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
            for key in handle.keys():
                tensors[key] = handle.get_tensor(key)
    except Exception as error:  # noqa: BLE001 - safetensors raises several types for corrupt files
        raise ModelFileError(f"{path}: not a readable safetensors file ({error})") from None
    if not with_metadata:
        return tensors
    try:
        metadata = json.loads(header.get(METADATA_KEY, "{}"))
    except json.JSONDecodeError as error:
        raise ModelFileError(f"{path}: its metadata is not valid JSON ({error})") from None
    return tensors, metadata


def tensor_shapes(path: Path) -> dict[str, list[int]]:
    """Each tensor's shape from a safetensors header, without reading (or allocating) the tensors."""
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"{path}: no such weights file")
    try:
        with safe_open(str(path), framework="pt") as handle:
            return {key: list(handle.get_slice(key).get_shape()) for key in handle.keys()}
    except Exception as error:  # noqa: BLE001 - safetensors raises several types for corrupt files
        raise ModelFileError(f"{path}: not a readable safetensors file ({error})") from None


def load_torch_weights(path: Path) -> dict[str, Tensor]:
    """A `.pt` / `.bin` state dict through torch's weights-only unpickler (no code runs).

    Only tensors, numbers, strings and plain containers are allowed (torch's allow-list); a file
    that names any other class is refused without being run.
    """
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"{path}: no such weights file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - pickle and zip errors come in many types
        text = str(error)
        if "weights_only" in text or "Unsupported global" in text or "GLOBAL" in text:
            needed = text.split("Unsupported global:")[-1].split("\n")[0].strip() if "Unsupported global" in text \
                else "objects other than tensors"
            raise UnsafeFileError(f"{path}: refused: loading it would run code from the file ({needed}); "
                                  "only tensors and plain containers are read from .pt/.bin files") from None
        first_line = text.splitlines()[0] if text else type(error).__name__
        raise ModelFileError(f"{path}: cannot read weights ({first_line})") from None
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ModelFileError(f"{path}: expected a state dict of tensors")
    return state


__all__ = [
    "atomic_write", "atomic_copy", "current_umask", "ensure_writable_folder", "load_torch_weights",
    "read_json", "read_tensors", "remove_stale_temp_files", "tensor_shapes", "write_json", "write_tensors",
]
