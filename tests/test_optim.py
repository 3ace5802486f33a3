"""Learning-rate schedules, weight-decay groups and the wall-clock budget."""
import pytest
import torch

from stochw2v.train.optim import make_optimizer, make_scheduler, tri_stage, warmup_linear_decay
from stochw2v.train.recipe import OptimRecipe


def test_linear_schedule_warms_up_then_decays_to_the_final_scale():
    values = [warmup_linear_decay(u, warmup=10, total=110, final_scale=0.1) for u in range(120)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)  # (u + 1) / warmup
    assert max(values) == pytest.approx(1.0) and values.index(max(values)) == 9
    assert values[60] == pytest.approx(1.0 - 0.9 * 0.5)  # halfway through the decay
    assert values[110] == pytest.approx(0.1) and values[119] == pytest.approx(0.1)  # held after the end
    assert all(a >= b for a, b in zip(values[9:], values[10:]))


def test_tri_stage_warms_up_holds_and_decays_exponentially():
    total, ratios = 100, [0.1, 0.4, 0.5]
    values = [tri_stage(u, total, ratios, final_scale=0.05) for u in range(total + 5)]
    assert values[0] == pytest.approx(0.01)  # fairseq's initial scale
    assert values[5] == pytest.approx(0.01 + 0.99 * 0.5)
    assert all(v == 1.0 for v in values[10:50])
    assert values[75] == pytest.approx(0.05 ** 0.5)  # geometric halfway point of the decay
    assert values[100] == pytest.approx(0.05) and values[104] == pytest.approx(0.05)
    assert all(a >= b for a, b in zip(values[50:], values[51:]))


def test_scheduler_follows_max_updates_when_a_budget_shortens_the_run():
    model = torch.nn.Linear(3, 3)
    recipe = OptimRecipe(lr=1.0, max_updates=100, schedule="tri_stage", phase_ratio=[0.1, 0.4, 0.5],
                         final_lr_scale=0.05, warmup_updates=0)
    optimizer = make_optimizer(model, recipe)
    scheduler = make_scheduler(optimizer, recipe)
    recipe.max_updates = 20  # what run.max_minutes does after calibration
    for _ in range(20):
        optimizer.step()
        scheduler.step()
    assert scheduler.get_last_lr()[0] == pytest.approx(0.05)  # the schedule ended with the shortened run


def test_weight_decay_skips_biases_norms_and_one_dimensional_parameters():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    groups = make_optimizer(model, OptimRecipe(weight_decay=0.1)).param_groups
    decayed = {id(p) for p in groups[0]["params"]}
    assert groups[0]["weight_decay"] == 0.1 and groups[1]["weight_decay"] == 0.0
    assert decayed == {id(model[0].weight)}
