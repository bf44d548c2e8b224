"""The strategy enum, the runner registry, the plan's settings classes and the shipped configs agree."""
from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from base.plan import SETTINGS_BY_STRATEGY, load_plan
from base.registry import DESCRIPTIONS, Strategy
from runners import RUNNERS

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def test_every_strategy_has_a_runner_settings_and_description():
    names = {s.value for s in Strategy}
    assert names == set(RUNNERS) == set(SETTINGS_BY_STRATEGY) == {s.value for s in DESCRIPTIONS}


@pytest.mark.parametrize("strategy", sorted(RUNNERS))
def test_runner_modules_expose_run(strategy):
    module_name, function = RUNNERS[strategy].split(":")
    assert callable(getattr(importlib.import_module(module_name), function))


@pytest.mark.parametrize("plan", sorted((CONFIGS / "plans").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_plans_validate(plan):
    loaded = load_plan(plan)
    assert loaded.runs(), f"{plan} runs nothing"
