from collections import Counter

import pytest

from stochw2v import Compression, LayerPooling, StochasticPolicy


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


POOLING = StochasticPolicy(squeeze=(1, 2, 3, 4), query=LayerPooling((2, 3), (2,), 0.3),
                           kv=LayerPooling((1, 2, 3, 4), (2, 3), 0.2, 0.2), max_total_factor=8, seed=7)


def test_policy_is_deterministic_per_seed_and_update():
    first = [POOLING.sample(u) for u in range(50)]
    again = [StochasticPolicy.from_dict(POOLING.to_dict()).sample(u) for u in range(50)]
    assert first == again  # a second process builds the same policy and draws the same settings
    other_seed = [StochasticPolicy.from_dict({**POOLING.to_dict(), "seed": 8}).sample(u) for u in range(50)]
    assert first != other_seed


def test_policy_draws_each_part_with_its_configured_probability():
    draws = [POOLING.sample(u) for u in range(6000)]
    squeeze = Counter(c.squeeze for c in draws)
    assert set(squeeze) == {1, 2, 3, 4} and all(abs(n / 6000 - 0.25) < 0.03 for n in squeeze.values())
    shared = [c for c in draws if c.kv_pool > 1]
    assert abs(len(shared) / 6000 - 0.2) < 0.02  # kv=f in every layer
    per_layer = [c for c in draws if c.kv_pool == 1]
    layer3 = sum(dict(c.kv_pool_layers).get(3, 1) > 1 for c in per_layer) / len(per_layer)
    assert abs(layer3 - 0.2) < 0.025  # each listed layer independently
    assert {c.kv_factor(2) for c in draws} == {1, 2, 3}
    query2 = sum(c.query_factor(2) > 1 for c in draws if c.squeeze == 1) / sum(c.squeeze == 1 for c in draws)
    assert abs(query2 - 0.3) < 0.04
    assert max(c.total_factor for c in draws) == 8  # s=4 with q2=2 and q3=2 would be 16: capped
    assert all(POOLING.covers(c, num_layers=4) for c in draws)


def test_squeeze_weights_tilt_the_draw_and_survive_the_config_round_trip():
    from stochw2v.train.recipe import PolicyRecipe

    tilted = StochasticPolicy(**{**POOLING.__dict__, "squeeze_weights": (3, 1, 1, 1)})
    share = Counter(tilted.sample(u).squeeze for u in range(6000))
    assert abs(share[1] / 6000 - 0.5) < 0.03 and all(abs(share[s] / 6000 - 1 / 6) < 0.03 for s in (2, 3, 4))
    again = StochasticPolicy.from_dict(tilted.to_dict())  # what config.json keeps
    assert again == tilted and [again.sample(u) for u in range(50)] == [tilted.sample(u) for u in range(50)]
    assert "s=1 (50%)" in tilted.describe() and tilted.covers("s=4,q3=2", 4)
    # equal weights are the uniform draw, the same stream as before the option existed
    assert StochasticPolicy(**{**POOLING.__dict__, "squeeze_weights": (2, 2, 2, 2)}) == POOLING
    assert "squeeze_weights" not in POOLING.to_dict()
    # a recipe pairs weights with factors as written, whatever their order
    recipe = PolicyRecipe(squeeze=[4, 1, 2], squeeze_weights=[1, 2, 1]).build(seed=0)
    assert recipe.squeeze == (1, 2, 4) and recipe.squeeze_weights == (2.0, 1.0, 1.0)
    for bad in ((1, 1), (1, 1, 1, 0), (1, 1, 1, float("nan")), (1, True, 1, 1)):
        with pytest.raises(ValueError, match="squeeze_weights must be 4 numbers > 0"):
            StochasticPolicy(squeeze=(1, 2, 3, 4), squeeze_weights=bad)


def test_policy_coverage_is_exactly_what_it_can_draw():
    covers = lambda text: POOLING.covers(text, num_layers=4)  # noqa: E731
    assert covers("s=2") and covers("s=2,kv=3") and covers("s=4,q3=2") and covers("s=1,q2=2,q3=2,kv1=2")
    assert not covers("s=5")  # squeeze never drawn
    assert not covers("s=2,q1=2")  # layer 1 never pools queries
    assert not covers("s=2,q2=4")  # factor never drawn
    assert not covers("s=4,q2=2,q3=2")  # total 16 over the cap
    assert not covers("s=1,kv=4")
    fixed = StochasticPolicy.fixed("s=2,q7=2,kv5=3")  # any grammar setting, per-layer kv included
    assert {str(fixed.sample(u)) for u in range(20)} == {"s=2,q7=2,kv5=3"}
    assert fixed.covers("s=2,q7=2,kv5=3", 12) and not fixed.covers("s=2", 12)
    assert fixed.upsampler_size() == 4 and StochasticPolicy.fixed("s=1").upsampler_size() == 0
    assert StochasticPolicy(squeeze=(1, 2, 3, 4)).total_factors() == [1, 2, 3, 4]
    assert POOLING.total_factors() == [1, 2, 3, 4, 6, 8]


def test_policy_validation_settings_are_trained_ones():
    settings = [str(s) for s in POOLING.validation_settings(4)]
    assert settings[:4] == ["s=1", "s=2", "s=3", "s=4"] and "s=2,kv=2" in settings
    assert any("q" in s for s in settings) and all(POOLING.covers(s, 4) for s in settings)


@pytest.mark.parametrize("policy, words", [
    (dict(squeeze=(1.7, 2)), "squeeze must hold integers"),
    (dict(squeeze="12"), "squeeze must hold integers"),
    (dict(squeeze=()), "at least one value"),
    (dict(query=LayerPooling((2,), (2,), 1.5)), r"query.prob must be a probability in \[0, 1\]"),
    (dict(kv=LayerPooling((2,), (1,), 0.5)), "kv.factors must be >= 2"),
    (dict(query=LayerPooling((), (2,), 0.5)), "query.layers is empty"),
    (dict(query=LayerPooling((2,), (2,), 0.0, 0.5)), "query.all_prob must be 0"),
])
def test_bad_policies_are_refused_naming_the_key(policy, words):
    with pytest.raises(ValueError, match=words):
        StochasticPolicy(**policy)


def test_policy_a_model_cannot_train_is_refused():
    with pytest.raises(ValueError, match="query.layers names layer 5 but the model has 4 layers"):
        StochasticPolicy(query=LayerPooling((5,), (2,), 0.1)).check(num_layers=4, max_upsample=8)
    with pytest.raises(ValueError, match="total factor 8 .* covers total factors up to 4"):
        POOLING.check(num_layers=4, max_upsample=4)


def test_the_plainest_setting_is_the_smallest_squeeze_or_pattern():
    assert StochasticPolicy(squeeze=(2, 4), query=LayerPooling((1,), (2,), 0.5)).plainest() == Compression(2)
    patterns = StochasticPolicy(squeeze=(1,), patterns=("s=4", "s=2,kv=2", "s=2"))
    assert str(patterns.plainest()) == "s=2"
