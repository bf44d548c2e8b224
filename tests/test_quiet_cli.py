"""The CLI hides third-party messages a user cannot act on — those exact ones, not their neighbours — and our own
packaging raises no setuptools deprecation."""
from __future__ import annotations

import logging
import warnings
from pathlib import Path

from base.quiet import quiet_third_party

ROOT = Path(__file__).resolve().parents[1]


def shown_warnings(message: str, module: str, category=FutureWarning) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_third_party()
        warnings.warn_explicit(message, category, filename=f"{module.replace('.', '/')}.py", lineno=1, module=module)
    return [str(w.message) for w in caught]


def test_gradient_checkpointing_deprecation_from_transformers_is_hidden():
    message = "`is_gradient_checkpointing` is deprecated and will be removed in v6. Use `is_activation_checkpointing` instead."
    assert shown_warnings(message, "transformers.modeling_utils") == []


def test_same_message_from_elsewhere_and_other_transformers_warnings_still_show():
    message = "`is_gradient_checkpointing` is deprecated and will be removed in v6."
    assert shown_warnings(message, "runners.training") == [message]
    assert shown_warnings("`torch_dtype` is deprecated! Use `dtype` instead!", "transformers.modeling_utils") != []


def test_bitsandbytes_kernel_fallback_log_is_dropped_but_other_records_pass(caplog):
    quiet_third_party()
    quiet_third_party()  # twice: still one filter
    logger = logging.getLogger("bitsandbytes.backends.cpu.ops")
    assert len(logger.filters) == 1
    with caplog.at_level(logging.WARNING, logger="bitsandbytes.backends.cpu.ops"):
        logger.warning("Failed to load CPU gemm_4bit_forward from kernels-community: %s. Please make sure you already "
                       "`pip install kernels` and the kernels >= 0.11.1", "No module named 'kernels'")
        logger.warning("some other bitsandbytes problem")
    assert [r.getMessage() for r in caplog.records] == ["some other bitsandbytes problem"]


def test_pyproject_licence_is_an_spdx_string_setuptools_accepts_silently():
    from setuptools.config.pyprojecttoml import apply_configuration
    from setuptools.dist import Distribution

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dist = apply_configuration(Distribution(), ROOT / "pyproject.toml")
    assert [str(w.message) for w in caught if "license" in str(w.message).lower()] == []
    assert dist.metadata.license_expression == "Apache-2.0"
