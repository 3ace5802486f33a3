from collections import Counter

import pytest

from stochw2v import Compression, StochasticPolicy


@pytest.mark.parametrize("text, canonical", [
    ("", "s=1"),
    ("s=1", "s=1"),
    ("s=2", "s=2"),
    ("kv=2,s=2,q7=2", "s=2,q7=2,kv=2"),
    (" s=3 , kv5=3 ", "s=3,kv5=3"),
    ("s=2,kv=2,kv5=3", "s=2,kv=2,kv5=3"),
    ("q3=1", "s=1"),
])
def test_parse_and_print_round_trip(text, canonical):
    c = Compression.parse(text)
    assert str(c) == canonical
    assert Compression.parse(str(c)) == c


def test_parts_are_read_per_layer():
    c = Compression.parse("s=2,q7=2,kv=2,kv5=3")
    assert c.squeeze == 2 and c.total_factor == 4
    assert c.query_factor(7) == 2 and c.query_factor(6) == 1
    assert c.kv_factor(5) == 3 and c.kv_factor(1) == 2
    assert Compression.parse("s=1") == Compression.parse("") == Compression()


@pytest.mark.parametrize("text, words", [
    ("s=0", "factor"),
    ("s=two", "invalid compression part"),
    ("q=2", "needs a layer"),
    ("s3=2", "takes no layer"),
    ("s=2,s=3", "twice"),
    ("q0=2", "count from 1"),
    ("x=2", "invalid compression part"),
    ("kv=0", "factor"),
])
def test_invalid_strings_say_what_is_wrong(text, words):
    with pytest.raises(ValueError, match=words):
        Compression.parse(text)


def test_settings_a_model_cannot_run_are_rejected():
    with pytest.raises(ValueError, match="layer 13, but the model has 12 layers"):
        Compression.parse("q13=2").check(num_layers=12, max_upsample=8)
    with pytest.raises(ValueError, match="upsampler covers total factors up to 4"):
        Compression.parse("s=4,q2=2").check(num_layers=12, max_upsample=4)
    with pytest.raises(ValueError, match="no upsampler"):
        Compression.parse("s=2").check(num_layers=12, max_upsample=0)
    with pytest.raises(ValueError, match="at least 8 frames"):
        Compression.parse("s=4,q2=2").check(num_layers=12, max_upsample=8, num_frames=7)
    Compression.parse("s=4,q2=2").check(num_layers=12, max_upsample=8, num_frames=8)


def test_policy_is_deterministic_per_seed_and_update():
    policy = StochasticPolicy(squeeze=(1, 2, 3, 4), query_layers=(4, 8), query_factors=(1, 2),
                              kv_factors=(1, 2), seed=7)
    first = [policy.sample(u) for u in range(50)]
    again = [StochasticPolicy(**policy.to_dict()).sample(u) for u in range(50)]
    assert first == again  # a second process builds the same policy and draws the same settings
    other_seed = [StochasticPolicy(**{**policy.to_dict(), "seed": 8}).sample(u) for u in range(50)]
    assert first != other_seed


def test_policy_visits_every_value_near_uniformly():
    policy = StochasticPolicy(squeeze=(1, 2, 3, 4), kv_factors=(1, 2), seed=0)
    draws = [policy.sample(u) for u in range(4000)]
    squeeze = Counter(c.squeeze for c in draws)
    kv = Counter(c.kv_pool for c in draws)
    assert set(squeeze) == {1, 2, 3, 4} and set(kv) == {1, 2}
    assert all(abs(n / 4000 - 0.25) < 0.03 for n in squeeze.values())
    assert all(abs(n / 4000 - 0.5) < 0.03 for n in kv.values())
    assert len(policy.settings()) == 8


def test_default_policy_only_squeezes_and_fixed_policy_is_constant():
    assert {str(c) for c in StochasticPolicy().settings()} == {"s=1", "s=2", "s=3", "s=4"}
    fixed = StochasticPolicy.fixed("s=2,q7=2,kv=2")
    assert {str(fixed.sample(u)) for u in range(20)} == {"s=2,q7=2,kv=2"}
