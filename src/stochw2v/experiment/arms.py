"""What the experiment trains: shared starting points, the fine-tuning arms that branch from them,
and the budgets that say how long each stage runs.

Per seed, a starting point is a pre-trained encoder (or a fresh one) and one short CTC warm start
from it, long enough to leave CTC's blank plateau. Every arm of that seed branches from its start's
warm start, so arms of one start differ only in their fine-tuning policy, and the initialisation
noise cancels in their paired differences.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError

RECIPE_POLICY = ()  # the packaged recipe's policy as written: stochastic squeeze and pooling
CURVE_SETTINGS = ("s=1", "s=2", "s=4")  # validated every `curve_every` updates, wherever an arm trains them
STOCHASTIC_TEST_SETTINGS = ("s=1", "s=2", "s=3", "s=4")
DISTILL_WEIGHT = 1.0  # λ of the KL term; temperature 1
FROZEN_FEATURES = "task.freeze_feature_encoder=true"


@dataclass(frozen=True)
class Start:
    """A shared starting point of every seed."""

    name: str
    pretrain: tuple[str, ...] | None  # pre-training recipe overrides; None: no pre-training (a fresh encoder)
    warm_setting: str  # the setting the CTC warm start trains at
    family: str | None = None  # a checkpoint of this family built by HF transformers' own classes (foreign.py)
    finetune: tuple[str, ...] = ()  # recipe overrides of its warm start and of every arm that branches from it


@dataclass(frozen=True)
class Arm:
    name: str
    start: str
    finetune: tuple[str, ...]  # overrides of the packaged finetune_tiny recipe
    trained: tuple[str, ...]  # the settings of CURVE_SETTINGS it trains (curves), and of its test evaluation
    test: tuple[str, ...] = ()  # test settings beyond `trained`
    about: str = ""

    @property
    def folder(self) -> str:
        """The arm's name as a folder name a shell takes as it is ("w2v2>stoch" -> "w2v2-to-stoch")."""
        return self.name.replace(">", "-to-")

    @property
    def test_settings(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.trained + self.test))

    @property
    def stochastic(self) -> bool:
        return len(self.trained) > 1


STARTS = {
    "stochastic": Start("stochastic", (), "s=1"),
    "w2v2": Start("w2v2", ("policy.fixed=s=1",), "s=1"),
    "sew2": Start("sew2", ("policy.fixed=s=2",), "s=2"),
    "scratch": Start("scratch", None, "s=1"),
    # a checkpoint brought from elsewhere is fine-tuned with its conv feature encoder frozen, as HF
    # (freeze_feature_encoder) and fairseq (feature_grad_mult 0) fine-tune theirs; HF's HuBERT init also
    # zeroes the conv biases, and then digital silence gives each layer-normed conv a zero-variance frame
    # whose gradient grows ~1/sqrt(eps) per layer (1e32 at the first conv's bias, measured)
    "hubert": Start("hubert", None, "s=1", family="hubert", finetune=(FROZEN_FEATURES,)),
    "wavlm": Start("wavlm", None, "s=1", family="wavlm", finetune=(FROZEN_FEATURES,)),
}

_ALL = CURVE_SETTINGS
ARMS = (
    Arm("s1", "stochastic", ("policy.fixed=s=1",), ("s=1",), about="fixed s=1 (specialist)"),
    Arm("s2", "stochastic", ("policy.fixed=s=2",), ("s=2",),
        about="fixed s=2 (specialist; also stochastic pre-training fine-tuned to s=2, claim 3)"),
    Arm("s4", "stochastic", ("policy.fixed=s=4",), ("s=4",), about="fixed s=4 (specialist)"),
    Arm("squeeze", "stochastic", ("policy.pooling=false",), _ALL, STOCHASTIC_TEST_SETTINGS,
        about="stochastic squeeze only, uniform over {1,2,3,4} from the first update (the paper)"),
    Arm("stochastic", "stochastic", RECIPE_POLICY, _ALL, STOCHASTIC_TEST_SETTINGS,
        about="stochastic squeeze and pooling (the recipe's policy)"),
    Arm("distill", "stochastic", (f"task.distill_weight={DISTILL_WEIGHT}",), _ALL, STOCHASTIC_TEST_SETTINGS,
        about=f"the recipe's policy with in-place distillation from s=1 (λ={DISTILL_WEIGHT})"),
    Arm("w2v2", "w2v2", ("policy.fixed=s=1",), ("s=1",), about="W2V2: pre-trained and fine-tuned at s=1"),
    Arm("sew2", "sew2", ("policy.fixed=s=2",), ("s=2",), about="SEW: pre-trained and fine-tuned at s=2"),
    Arm("w2v2>stoch", "w2v2", RECIPE_POLICY, _ALL, STOCHASTIC_TEST_SETTINGS,
        about="a W2V2 (s=1) pre-trained encoder fine-tuned stochastically"),
    Arm("scratch", "scratch", ("policy.fixed=s=1",), ("s=1",), about="no pre-training, fine-tuned at s=1"),
    # issue #31: checkpoints of other families (HF's classes, random init) made on-demand, against fixed s=1
    Arm("hubert", "hubert", ("policy.fixed=s=1",), ("s=1",), about="a HF HuBERT checkpoint fine-tuned at s=1"),
    Arm("hubert>stoch", "hubert", RECIPE_POLICY, _ALL, STOCHASTIC_TEST_SETTINGS,
        about="the same HuBERT checkpoint fine-tuned stochastically"),
    Arm("wavlm", "wavlm", ("policy.fixed=s=1",), ("s=1",), about="a HF WavLM checkpoint fine-tuned at s=1"),
    Arm("wavlm>stoch", "wavlm", RECIPE_POLICY, _ALL, STOCHASTIC_TEST_SETTINGS,
        about="the same WavLM checkpoint fine-tuned stochastically"),
)
ARMS_BY_NAME = {arm.name: arm for arm in ARMS}
# the arms `make experiment` runs, and the ones a long budget carries first (the order)
CORE = ("s1", "s2", "s4", "squeeze", "stochastic", "distill")
SPECIALIST = {"s=1": "s1", "s=2": "s2", "s=4": "s4"}  # same start, fixed at that setting


@dataclass(frozen=True)
class Budget:
    """How long each stage runs. Fine-tuning runs at a constant learning rate after its warm-up, so a
    longer budget continues a shorter one's arms exactly instead of training them again."""

    name: str
    pretrain_updates: int = 500
    warm_updates: int = 400
    finetune_updates: int = 600  # every arm reaches this; its test evaluation is the claims' first milestone
    long_updates: int = 0  # the CORE arms go on to this (0: no long curves)
    extend_updates: int = 1000  # then by this much at a time while a curve still moves ...
    max_updates: int = 0  # ... up to this
    curve_every: int = 100  # validation (the curve's points), in updates
    flat_per_1000: float = 0.005  # a curve is flat when valid CER at s=1 moves less than this per 1,000 updates

    def check(self) -> None:
        for key in ("pretrain_updates", "warm_updates", "finetune_updates", "curve_every"):
            if getattr(self, key) < 1:
                raise ConfigError(f"budget {self.name}: {key} must be at least 1, got {getattr(self, key)}")
        if self.long_updates and self.long_updates < self.finetune_updates:
            raise ConfigError(f"budget {self.name}: long_updates ({self.long_updates}) is below finetune_updates "
                              f"({self.finetune_updates})")
        if self.max_updates and self.max_updates < self.long_updates:
            raise ConfigError(f"budget {self.name}: max_updates ({self.max_updates}) is below long_updates")


BUDGETS = {
    # `make experiment`: the core arms of 3 seeds in under 2 h on 2 cores (2 processes of 1 thread)
    "short": Budget("short"),
    # the long curves: resumable across invocations, reusing the short budget's stages
    "long": Budget("long", long_updates=3000, max_updates=8000, curve_every=200),
}


def budget_named(name: str) -> Budget:
    if name not in BUDGETS:
        raise ConfigError(f"--budget {name!r}: unknown budget; known: {', '.join(BUDGETS)}")
    return BUDGETS[name]


def arms_named(names: tuple[str, ...]) -> tuple[Arm, ...]:
    unknown = [name for name in names if name not in ARMS_BY_NAME]
    if unknown:
        raise ConfigError(f"--arms: unknown arm(s) {', '.join(unknown)}; known: {', '.join(ARMS_BY_NAME)}")
    return tuple(ARMS_BY_NAME[name] for name in dict.fromkeys(names))


__all__ = ["ARMS", "ARMS_BY_NAME", "BUDGETS", "CORE", "CURVE_SETTINGS", "SPECIALIST", "STARTS", "Arm", "Budget",
           "Start", "arms_named", "budget_named"]
