"""`stochw2v.load`: one entry point for every place a model can come from.

* our model folder (config.json with format "stochw2v" + model.safetensors);
* a training run folder (its model: best-WER checkpoint for fine-tuning, last for pre-training);
* a HF transformers Wav2Vec2 / SEW folder, or a HF Hub id ("facebook/wav2vec2-base"), through
  huggingface_hub's cache (HF_HUB_OFFLINE=1 uses the cache only; HF_HUB_CACHE moves it);
* a fairseq wav2vec 2.0 / SEW .pt checkpoint.

Nothing read here can run code: JSON, safetensors, torch's weights-only unpickler, or (fairseq)
a restricted unpickler.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from huggingface_hub import snapshot_download
from huggingface_hub.errors import HfHubHTTPError, HFValidationError, LocalEntryNotFoundError

from ..errors import MissingFileError, ModelFileError, Stochw2vError
from ..files import read_json
from ..model import Model
from .checkpoint import is_run_folder, model_checkpoint
from .fairseq import load_fairseq
from .hf import HF_MODEL_TYPES, load_hf_model
from .model_folder import CONFIG_FILE, FORMAT, build_model, encoder_config_from, read_model_folder, vocabulary_from

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
HUB_FILES = ["config.json", "preprocessor_config.json", "model.safetensors", "pytorch_model.bin", "vocab.json",
             "tokenizer_config.json", "special_tokens_map.json"]


def hub_snapshot(repo_id: str) -> Path:
    """The local snapshot of a HF Hub model, from the cache (and, when online, the Hub)."""
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    try:
        folder = snapshot_download(repo_id, allow_patterns=HUB_FILES, local_files_only=offline,
                                   cache_dir=os.environ.get("HF_HUB_CACHE") or None)
    except LocalEntryNotFoundError:
        where = os.environ.get("HF_HUB_CACHE") or "the default Hugging Face cache"
        reason = "HF_HUB_OFFLINE is set" if offline else "the Hub could not be reached"
        raise MissingFileError(f"{repo_id}: no such folder, and not a model in {where} ({reason})") from None
    except (HfHubHTTPError, HFValidationError, OSError) as error:
        raise MissingFileError(f"{repo_id}: no such folder, and the Hugging Face Hub did not give it "
                               f"({str(error).splitlines()[0]})") from None
    return Path(folder)


def load_run(folder: Path) -> Model:
    """The model a training run folder holds (see `train.state.model_checkpoint`)."""
    checkpoint = model_checkpoint(folder)
    meta, source = checkpoint.meta, str(checkpoint.path)
    config = encoder_config_from(meta.get("encoder_config"), source)
    if meta.get("kind") == "finetune":
        vocabulary = vocabulary_from(meta.get("vocabulary"), source)
        return build_model("ctc", config, checkpoint.model, source, vocabulary)
    weights = {k[len("encoder."):]: v for k, v in checkpoint.model.items() if k.startswith("encoder.")}
    return build_model("encoder", config, weights, source)


def load(path: str | os.PathLike, dictionary: str | os.PathLike | None = None) -> Model:
    """Load a model: our folder (encoder or CTC recogniser), a training run, a HF Wav2Vec2 / SEW
    `save_pretrained` folder (a recogniser when it has a CTC head and vocab.json), or a fairseq
    wav2vec 2.0 / SEW `.pt` checkpoint (fine-tuned ones need `dictionary`, default: the
    dict.ltr.txt beside it)."""
    folder = Path(path)
    if not folder.exists() and HUB_ID.match(str(path)):
        folder = hub_snapshot(str(path))
    if not folder.exists():
        raise MissingFileError(f"{folder}: no such file or directory")
    if folder.is_file() and folder.suffix in (".pt", ".pth"):
        return load_fairseq(folder, dictionary)
    if not folder.is_dir():
        raise Stochw2vError(f"{folder}: expected a model folder (config.json + weights), a run folder or a fairseq "
                            ".pt checkpoint, got another file")
    if is_run_folder(folder):
        return load_run(folder)
    config_path = folder / CONFIG_FILE
    if not config_path.exists():
        raise MissingFileError(f"{folder}: no {CONFIG_FILE}; not a stochw2v, run or HF transformers folder")
    meta = read_json(config_path, "model config")
    if meta.get("format") == FORMAT:
        return read_model_folder(folder, meta)
    if meta.get("model_type") in HF_MODEL_TYPES:
        return load_hf_model(folder, meta)
    if "model_type" in meta:
        raise ModelFileError(f"{config_path}: a HF {meta['model_type']!r} model, not a family stochw2v reads (it "
                             f"reads {', '.join(HF_MODEL_TYPES)})")
    raise ModelFileError(f"{config_path}: neither a stochw2v model nor a HF transformers model (no format or "
                         "model_type key)")


__all__ = ["load", "load_run"]
