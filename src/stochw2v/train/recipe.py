"""Training recipes: nested dataclasses read from YAML (strict_yaml: safe, no aliases, no duplicate keys),
with `--set a.b=value` overrides.

Unknown or mistyped keys, and values out of range (every number finite), are errors that name the
key path, raised before any work starts.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..compute.policy import LayerPooling, StochasticPolicy
from ..errors import ConfigError, MissingFileError
from ..formats.strict_yaml import load_strict
from ..model.config import PRESETS, EncoderConfig
from .tasks import FinetuneConfig, PretrainConfig

REGULARISATION_KEYS = ("dropout", "attention_dropout", "activation_dropout", "feature_dropout", "layerdrop")
PRECISIONS = ("auto", "fp32", "bf16")
MAX_SEED = 2**63 - 1  # torch.manual_seed takes 64-bit seeds; the data order derives int64 seeds from it


@dataclass
class ModelRecipe:
    preset: str = "tiny"  # tiny | small | base | large (model/config.py PRESETS)
    overrides: dict = field(default_factory=dict)  # EncoderConfig fields on top of the preset

    def encoder_config(self, max_upsample: int) -> EncoderConfig:
        """The preset with overrides; the upsampler is sized by the policy (rows for trainable factors only)."""
        if self.preset not in PRESETS:
            raise ConfigError(f"model.preset must be one of {sorted(PRESETS)}, got {self.preset!r}")
        known = {f.name for f in dataclasses.fields(EncoderConfig)} - {"trained_policy", "max_upsample"}
        unknown = sorted(set(self.overrides) - known)
        if "max_upsample" in self.overrides:
            raise ConfigError("model.overrides.max_upsample: the upsampler is sized from the policy (its largest "
                              "total factor), so that every row it holds is trained; remove the key")
        if unknown:
            raise ConfigError(f"unknown model.overrides key(s) {unknown}; EncoderConfig takes {sorted(known)}")
        return EncoderConfig.preset(self.preset, **{**self.overrides, "max_upsample": max_upsample})


@dataclass
class PolicyRecipe:
    """Which setting each update runs at: the keys of a `StochasticPolicy` (compute/policy.py, which
    validates them; `query` and `kv` are its `LayerPooling`s) and the switches a run adds. Three give
    the paper's arms: `fixed: s=1` (W2V2), `fixed: s=2` (SEW), `pooling: false` (squeeze only)."""

    squeeze: list = field(default_factory=lambda: [1, 2, 3, 4])
    squeeze_weights: list = field(default_factory=list)  # one per squeeze, ascending; [] = uniform (the paper)
    query: LayerPooling = field(default_factory=LayerPooling)
    kv: LayerPooling = field(default_factory=LayerPooling)
    max_total_factor: int = 0  # 0: max(squeeze) x max(query factor)
    pooling: bool = True  # false: query and key-value pooling off (stochastic squeeze only)
    fixed: str = ""  # one setting for every update, e.g. "s=1" (W2V2) or "s=2" (SEW); overrides the rest
    validate: list = field(default_factory=list)  # settings validated during training (default: the policy's)
    # the first N updates run the plainest setting (s=1, no pooling) before the draws start: the tiny CPU
    # models sat on CTC's blank plateau for 1,100+ updates when every setting was drawn from update 1,
    # and left it at ~350 at s=1 from the same pre-trained model (measured); 0 = draw from the start
    plain_updates: int = 0

    def build(self, seed: int) -> StochasticPolicy:
        """The StochasticPolicy this section describes, drawing with `seed`."""
        if self.fixed:
            return StochasticPolicy.fixed(self.fixed, seed)
        off = LayerPooling()
        squeeze, weights = tuple(self.squeeze), tuple(self.squeeze_weights)
        if weights and len(weights) == len(squeeze) and len(set(squeeze)) == len(squeeze):
            squeeze, weights = zip(*sorted(zip(squeeze, weights), key=lambda pair: pair[0]))  # as written, paired
        return StochasticPolicy(squeeze, self.query if self.pooling else off, self.kv if self.pooling else off,
                                self.max_total_factor, seed=seed, squeeze_weights=weights)


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
    precision: str = "auto"  # auto (bf16 on GPU, fp32 on CPU) | fp32 | bf16
    max_bad_updates: int = 10  # NaN/inf losses in a row before the run stops


@dataclass
class DataRecipe:
    max_samples: int = 1_400_000  # batch budget in padded samples per rank (fairseq max_tokens)
    crop: int | None = 250_000  # crop longer utterances to this many samples (null: no crop)
    min_samples: int = 0  # leave out shorter utterances (fairseq min_sample_size); 0: what the model needs
    drop_unreadable: bool = False  # leave out audio that cannot be read (listed) instead of refusing
    num_workers: int = 2
    augment: dict = field(default_factory=dict)  # audio/augment.py AugmentConfig fields; {} = none


@dataclass
class RunRecipe:
    log_every: int = 10
    validate_every: int = 500
    save_every: int = 500
    keep_last: int = 2
    seed: int = 1
    # wall-clock budget in minutes (0: none): after `calibration_updates` updates the run measures its
    # speed and shortens optim.max_updates (and with it the learning-rate schedule) to fit
    max_minutes: float = 0.0
    calibration_updates: int = 20


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
    encoder_overrides: dict = field(default_factory=dict)  # dropout, layerdrop... of the loaded encoder
    task: FinetuneConfig = field(default_factory=FinetuneConfig)
    policy: PolicyRecipe = field(default_factory=PolicyRecipe)
    optim: OptimRecipe = field(default_factory=lambda: OptimRecipe(
        lr=5e-5, betas=[0.9, 0.98], eps=1e-8, weight_decay=0.0, warmup_updates=0, max_updates=20000,
        schedule="tri_stage", final_lr_scale=0.05))
    data: DataRecipe = field(default_factory=lambda: DataRecipe(max_samples=3_200_000, crop=None))
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
        raise ConfigError(f"recipe key {path or '(top)'} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        where = f"{path}." if path else ""
        raise ConfigError(f"unknown recipe key(s) {', '.join(where + k for k in unknown)}; "
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
        raise ConfigError(f"recipe section {path or '(top)'}: {error}") from None


def _check_type(hint: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(hint) or hint
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None and len(options) < len(typing.get_args(hint)):
            return None
        return _check_type(options[0], value, key)
    if origin is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if origin is float and isinstance(value, str):  # YAML 1.1 reads 1e-3 as a string
        try:
            value = float(value)
        except ValueError:
            pass
    if origin is float and isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"recipe key {key} must be a finite number, got {value!r}")
    if origin is tuple and isinstance(value, list):
        return tuple(value)
    expected = origin if isinstance(origin, type) else object
    if expected is not object and not isinstance(value, expected) or (expected in (int, float)
                                                                     and isinstance(value, bool)):
        wanted = "list" if expected is tuple else getattr(expected, "__name__", expected)  # YAML writes lists
        raise ConfigError(f"recipe key {key} must be {wanted}, got {value!r}")
    return value


def apply_override(data: dict, assignment: str) -> None:
    """Apply 'a.b.c=value' (value parsed as YAML) to a nested dict in place."""
    if "=" not in assignment:
        raise ConfigError(f"--set expects key.path=value, got {assignment!r}")
    path, raw = assignment.split("=", 1)
    keys = path.strip().split(".")
    node = data
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {assignment!r}: {key} is not a section")
    try:
        node[keys[-1]] = load_strict(raw)
    except ConfigError as error:
        raise ConfigError(f"--set {assignment!r}: {error}") from None


def _at_least(value: Any, low: float, key: str) -> None:
    if value < low:
        raise ConfigError(f"recipe key {key} must be >= {low:g}, got {value!r}")


def check_recipe(recipe: Any) -> None:
    """Range checks the types alone do not give (a zero log_every would divide by zero later)."""
    optim, data, run = recipe.optim, recipe.data, recipe.run
    for key in ("log_every", "validate_every", "save_every"):
        _at_least(getattr(run, key), 1, f"run.{key}")
    _at_least(run.keep_last, 0, "run.keep_last")
    _at_least(run.max_minutes, 0, "run.max_minutes")
    _at_least(run.calibration_updates, 1, "run.calibration_updates")
    for key in ("update_freq", "max_updates", "max_bad_updates"):
        _at_least(getattr(optim, key), 1, f"optim.{key}")
    _at_least(optim.warmup_updates, 0, "optim.warmup_updates")
    _at_least(optim.clip_norm, 0, "optim.clip_norm")
    _at_least(recipe.policy.plain_updates, 0, "policy.plain_updates")
    if optim.lr <= 0:
        raise ConfigError(f"recipe key optim.lr must be > 0, got {optim.lr}")
    if optim.eps <= 0:
        raise ConfigError(f"recipe key optim.eps must be > 0, got {optim.eps}")
    _at_least(optim.weight_decay, 0, "optim.weight_decay")
    _at_least(optim.final_lr_scale, 0, "optim.final_lr_scale")
    betas = optim.betas
    if len(betas) != 2 or not all(isinstance(b, (int, float)) and not isinstance(b, bool) and math.isfinite(b)
                                  and 0 <= b < 1 for b in betas):
        raise ConfigError(f"recipe key optim.betas must be two numbers in [0, 1), got {betas!r}")
    if not 0 <= run.seed <= MAX_SEED:
        raise ConfigError(f"recipe key run.seed must be a whole number from 0 to 2^63 - 1, got {run.seed}")
    if optim.precision not in PRECISIONS:
        raise ConfigError(f"recipe key optim.precision must be one of {PRECISIONS}, got {optim.precision!r} "
                          "(fp16 is not offered: bf16 needs no loss scaling)")
    if optim.schedule not in ("linear", "tri_stage"):
        raise ConfigError(f"recipe key optim.schedule must be linear or tri_stage, got {optim.schedule!r}")
    fractions = [r for r in optim.phase_ratio if isinstance(r, (int, float)) and not isinstance(r, bool)
                 and math.isfinite(r) and r >= 0]
    if len(optim.phase_ratio) != 3 or len(fractions) != 3 or abs(sum(fractions) - 1) > 1e-6:
        raise ConfigError(f"recipe key optim.phase_ratio must be three fractions summing to 1, got {optim.phase_ratio}")
    _at_least(data.max_samples, 1, "data.max_samples")
    _at_least(data.num_workers, 0, "data.num_workers")
    _at_least(data.min_samples, 0, "data.min_samples")
    if data.crop is not None:
        _at_least(data.crop, 1, "data.crop")
    if isinstance(recipe, FinetuneRecipe):
        unknown = sorted(set(recipe.encoder_overrides) - set(REGULARISATION_KEYS))
        if unknown:
            raise ConfigError(f"encoder_overrides takes only {list(REGULARISATION_KEYS)} (the weights fix the "
                              f"rest), got {unknown}")


PACKAGED_RECIPES = ("pretrain_tiny", "finetune_tiny", "pretrain_base", "finetune_base_10h")


def packaged_recipe(name: str) -> Path:
    """The file of a recipe that ships inside the package (so an installed wheel has them too)."""
    stem = name.removesuffix(".yaml")
    if stem not in PACKAGED_RECIPES:
        raise MissingFileError(f"{name}: no such recipe file, and not one of the packaged recipes "
                               f"{list(PACKAGED_RECIPES)}")
    return Path(str(resources.files("stochw2v") / "recipes" / f"{stem}.yaml"))


def load_recipe(path: str | Path | None, overrides: list[str] = (), cls: type = PretrainRecipe) -> Any:
    """Read a YAML recipe (None: all defaults; a bare name such as `pretrain_tiny`: the packaged one),
    apply overrides, validate into dataclasses."""
    data: dict = {}
    if path is not None:
        path = Path(path)
        if not path.exists() and len(path.parts) == 1:
            path = packaged_recipe(path.name)
        if not path.exists():
            raise MissingFileError(f"{path}: recipe not found")
        if path.is_dir():
            raise ConfigError(f"{path}: is a folder, expected a recipe .yaml file")
        try:
            data = load_strict(path.read_text(encoding="utf-8")) or {}
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: not a UTF-8 text file") from None
        except ConfigError as error:
            raise ConfigError(f"{path}: {error}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: a recipe is a mapping of sections")
    for assignment in overrides:
        apply_override(data, assignment)
    try:
        recipe = _build(cls, data, "")
        check_recipe(recipe)
        policy = recipe.policy.build(recipe.run.seed)  # a bad policy fails now, naming the key
        if isinstance(recipe, FinetuneRecipe) and recipe.task.distill_weight > 0 and policy.draws_only_full:
            raise ConfigError(f"task.distill_weight={recipe.task.distill_weight:g}: in-place distillation teaches "
                              "drawn settings from s=1, but this policy only ever draws s=1; set it to 0 or draw "
                              "other settings (policy.squeeze, policy.fixed)")
        if isinstance(recipe, PretrainRecipe):  # fine-tuning checks the policy once the model is loaded
            encoder = recipe.model.encoder_config(policy.upsampler_size())
            policy.check(encoder.num_layers, encoder.max_upsample)
    except ConfigError as error:
        raise ConfigError(f"{path or 'recipe'}: {error}") from None
    return recipe


__all__ = ["PACKAGED_RECIPES", "DataRecipe", "FinetuneRecipe", "ModelRecipe", "OptimRecipe", "PolicyRecipe",
           "PretrainRecipe", "RunRecipe", "apply_override", "check_recipe", "load_recipe",
           "packaged_recipe"]
