"""peft adapters built from our settings: each PEFT settings class names its peft config class and how its fields
map onto that class's (base.plan.PeftSettings), so no runner copies peft's arguments by hand."""
from __future__ import annotations

from typing import Any

from base.plan import PeftSettings


def peft_config(settings: PeftSettings, **fixed: Any) -> Any:
    """The settings as their peft config (causal LM), plus `fixed` arguments the runner decides."""
    import peft

    mapped = {peft_name: _peft_value(settings, field) for field, peft_name in settings.peft_fields.items()}
    return getattr(peft, settings.peft_config)(task_type="CAUSAL_LM", **mapped, **fixed)


def peft_model(model: Any, settings: PeftSettings, **fixed: Any) -> Any:
    from peft import get_peft_model

    return get_peft_model(model, peft_config(settings, **fixed))


def _peft_value(settings: PeftSettings, field: str) -> Any:
    value = getattr(settings, field)
    if field in settings.peft_values:
        value = settings.peft_values[field].get(value, value)
    return list(value) if isinstance(value, (list, tuple)) else value
