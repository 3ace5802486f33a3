"""Training recipes: nested dataclasses read from YAML, with `--set a.b=value` overrides.

Unknown or mistyped keys are errors that name the key path, raised before any work starts.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..model.compression import StochasticPolicy
from ..model.config import EncoderConfig
from ..model.ctc import FinetuneConfig
from ..model.pretraining import PretrainConfig


@dataclass
class ModelRecipe:
    preset: str = "tiny"  # tiny | base | large
    overrides: dict = field(default_factory=dict)  # EncoderConfig fields on top of the preset

    def encoder_config(self) -> EncoderConfig:
        presets = {"tiny": EncoderConfig.tiny, "base": EncoderConfig.base, "large": EncoderConfig.large}
        if self.preset not in presets:
            raise ValueError(f"model.preset must be one of {sorted(presets)}, got {self.preset!r}")
        return presets[self.preset](**self.overrides)


@dataclass
class PolicyRecipe:
    squeeze: list = field(default_factory=lambda: [1, 2, 3, 4])
    query_layers: list = field(default_factory=list)
    query_factors: list = field(default_factory=lambda: [1])
    kv_factors: list = field(default_factory=lambda: [1])

    def policy(self, seed: int) -> StochasticPolicy:
        return StochasticPolicy(tuple(self.squeeze), tuple(self.query_layers), tuple(self.query_factors),
                                tuple(self.kv_factors), seed)


@dataclass
class OptimRecipe:
    lr: float = 5e-4
    betas: list = field(default_factory=lambda: [0.9, 0.98])
    eps: float = 1e-6
    weight_decay: float = 0.01
    warmup_updates: int = 32000
    max_updates: int = 400000
    schedule: str = "linear"  # linear: warm-up then linear decay; tri_stage: warm-up, hold, exponential decay
    phase_ratio: list = field(default_factory=lambda: [0.1, 0.4, 0.5])  # tri_stage warm-up / hold / decay
    final_lr_scale: float = 0.0  # lr * this at the end
    clip_norm: float = 0.0  # 0: no clipping
    update_freq: int = 1  # gradient accumulation steps per update
    precision: str = "auto"  # auto (bf16 on GPU, fp32 on CPU) | fp32 | bf16 | fp16
    max_bad_updates: int = 10  # NaN/inf losses in a row before the run stops


@dataclass
class DataRecipe:
    max_samples: int = 1_400_000  # batch budget in padded samples per rank (fairseq max_tokens)
    crop: int = 250_000  # crop longer utterances to this many samples (0: no crop)
    num_workers: int = 2


@dataclass
class RunRecipe:
    log_every: int = 10
    validate_every: int = 500
    save_every: int = 500
    keep_last: int = 2
    seed: int = 1


@dataclass
class PretrainRecipe:
    model: ModelRecipe = field(default_factory=ModelRecipe)
    task: PretrainConfig = field(default_factory=PretrainConfig)
    policy: PolicyRecipe = field(default_factory=PolicyRecipe)
    optim: OptimRecipe = field(default_factory=OptimRecipe)
    data: DataRecipe = field(default_factory=DataRecipe)
    run: RunRecipe = field(default_factory=RunRecipe)

    def to_dict(self) -> dict:
        return _to_plain(self)


@dataclass
class FinetuneRecipe:
    encoder_overrides: dict = field(default_factory=dict)  # e.g. dropout, layerdrop of the loaded encoder
    task: FinetuneConfig = field(default_factory=FinetuneConfig)
    policy: PolicyRecipe = field(default_factory=PolicyRecipe)
    optim: OptimRecipe = field(default_factory=lambda: OptimRecipe(
        lr=5e-5, betas=[0.9, 0.98], eps=1e-8, weight_decay=0.0, warmup_updates=0, max_updates=20000,
        schedule="tri_stage", final_lr_scale=0.05))
    data: DataRecipe = field(default_factory=lambda: DataRecipe(max_samples=3_200_000, crop=0))
    run: RunRecipe = field(default_factory=RunRecipe)

    def to_dict(self) -> dict:
        return _to_plain(self)


def _to_plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: _to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    return value


def _build(cls: type, data: Any, path: str, base: Any = None) -> Any:
    """`cls` from `data`, every key not given taken from `base` (the enclosing recipe's default)."""
    if not isinstance(data, dict):
        raise ValueError(f"recipe key {path or '(top)'} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        where = f"{path}." if path else ""
        raise ValueError(f"unknown recipe key(s) {', '.join(where + k for k in unknown)}; "
                         f"{path or 'the recipe'} takes {sorted(names)}")
    base = base if base is not None else cls()
    values = {}
    for name in names:
        hint, key = hints[name], f"{path}.{name}" if path else name
        default = getattr(base, name)
        if dataclasses.is_dataclass(hint):
            values[name] = _build(hint, data.get(name, {}), key, default)
        elif name in data:
            values[name] = _check_type(hint, data[name], key)
        else:
            values[name] = default
    try:
        return cls(**values)
    except (TypeError, ValueError) as error:
        raise ValueError(f"recipe section {path or '(top)'}: {error}") from None


def _check_type(hint: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(hint) or hint
    if origin is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if origin is float and isinstance(value, str):  # YAML 1.1 reads 1e-3 as a string
        try:
            return float(value)
        except ValueError:
            pass
    if origin is tuple and isinstance(value, list):
        return tuple(value)
    expected = origin if isinstance(origin, type) else object
    if expected is not object and not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise ValueError(f"recipe key {key} must be {getattr(expected, '__name__', expected)}, got {value!r}")
    return value


def apply_override(data: dict, assignment: str) -> None:
    """Apply 'a.b.c=value' (value parsed as YAML) to a nested dict in place."""
    if "=" not in assignment:
        raise ValueError(f"--set expects key.path=value, got {assignment!r}")
    path, raw = assignment.split("=", 1)
    keys = path.strip().split(".")
    node = data
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ValueError(f"--set {assignment!r}: {key} is not a section")
    node[keys[-1]] = yaml.safe_load(raw)


def load_recipe(path: str | Path | None, overrides: list[str] = (), cls: type = PretrainRecipe) -> Any:
    """Read a YAML recipe (None: all defaults), apply overrides, validate into dataclasses."""
    data: dict = {}
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: recipe not found")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as error:
            raise ValueError(f"{path}: not valid YAML ({error})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a recipe is a mapping of sections")
    for assignment in overrides:
        apply_override(data, assignment)
    try:
        recipe = _build(cls, data, "")
    except ValueError as error:
        raise ValueError(f"{path or 'recipe'}: {error}") from None
    if recipe.optim.schedule not in ("linear", "tri_stage"):
        raise ValueError(f"{path or 'recipe'}: optim.schedule must be linear or tri_stage")
    if isinstance(recipe, PretrainRecipe):  # fine-tuning checks the policy once the model is loaded
        encoder = recipe.model.encoder_config()  # fail now on a bad model section
        recipe.policy.policy(recipe.run.seed).check(encoder.num_layers, encoder.max_upsample)
    return recipe
