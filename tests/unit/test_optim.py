"""The learning-rate schedule against its formula, over a step budget, a time budget or both; weight
decay on matrices only."""

from __future__ import annotations

import math

import pytest
import torch

from lmforge.optim import OptimizerSettings, lr_multiplier, parameter_groups


def settings(**values) -> OptimizerSettings:
    return OptimizerSettings(**{"lr": 1e-3, "warmup_ratio": 0.1, "min_lr_ratio": 0.1, **values})


def cosine(progress: float, floor: float = 0.1) -> float:
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def test_step_schedule_warms_up_then_follows_the_cosine():
    factor = lr_multiplier(settings(), total_steps=100)
    assert [factor(s) for s in range(3)] == pytest.approx([0.1, 0.2, 0.3])
    assert factor(9) == pytest.approx(1.0)
    assert factor(10) == pytest.approx(cosine(0.0))
    assert factor(55) == pytest.approx(cosine(0.5))
    assert factor(100) == pytest.approx(0.1) and factor(500) == pytest.approx(0.1)


def test_linear_and_constant_schedules():
    linear = lr_multiplier(settings(schedule="linear"), total_steps=111)  # warm-up: 11 steps
    assert linear(61) == pytest.approx(0.1 + 0.9 * 0.5)
    assert lr_multiplier(settings(schedule="constant"), total_steps=100)(90) == 1.0


def test_a_time_budget_alone_warms_up_and_decays_over_the_time():
    clock = {"used": 0.0}
    factor = lr_multiplier(settings(), total_steps=None, time_used=lambda: clock["used"])
    clock["used"] = 0.05
    assert factor(3) == pytest.approx(0.5)  # half of the warm-up tenth of the time
    clock["used"] = 0.55
    assert factor(1000) == pytest.approx(cosine(0.5))
    clock["used"] = 1.0
    assert factor(5000) == pytest.approx(0.1)


def test_with_both_budgets_the_nearer_end_decides():
    clock = {"used": 0.0}
    factor = lr_multiplier(settings(warmup_steps=0), total_steps=100, time_used=lambda: clock["used"])
    clock["used"] = 0.8
    assert factor(20) == pytest.approx(cosine(0.8))  # time is further along than steps (0.2)
    clock["used"] = 0.1
    assert factor(90) == pytest.approx(cosine(0.9))  # steps are further along than time


def test_weight_decay_goes_to_matrices_only():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4), torch.nn.Embedding(10, 4))
    decayed, kept = parameter_groups(model, 0.01)
    assert {tuple(p.shape) for p in decayed["params"]} == {(4, 4), (10, 4)}
    assert all(p.ndim == 1 for p in kept["params"]) and kept["weight_decay"] == 0.0
