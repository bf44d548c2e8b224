"""The registry is the one description of a strategy: every entry resolves to a runner and a settings class,
and the shipped configs validate against it."""
from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from base import registry
from base.plan import load_plan

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


@pytest.mark.parametrize("strategy", registry.names())
def test_every_entry_has_a_runner_a_settings_class_and_a_description(strategy):
    entry = registry.get(strategy)
    module_name, function = entry.runner.split(":")
    assert callable(getattr(importlib.import_module(module_name), function))
    assert entry.settings.model_fields["strategy"].default == strategy
    assert entry.description


@pytest.mark.parametrize("plan", sorted((CONFIGS / "plans").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_plans_validate(plan):
    loaded = load_plan(plan)
    assert loaded.runs(), f"{plan} runs nothing"
