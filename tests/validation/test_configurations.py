"""Milestone 1: every suite model x preset resolves to a valid configuration that fits an 80 GB H100."""

from __future__ import annotations

import pytest

from qwenharness.hardware import H100_80GB
from qwenharness.models import SUITE_MODELS, get_model_spec
from qwenharness.presets import CONSERVATIVE_MEMORY_LIMIT, get_available_presets, get_model_config

pytestmark = pytest.mark.milestone1

SUITE_CASES = [(m, p) for m in SUITE_MODELS for p in get_available_presets()]


@pytest.mark.parametrize(("model", "preset"), SUITE_CASES, ids=[f"{m}-{p}" for m, p in SUITE_CASES])
def test_suite_configuration_fits_h100(model: str, preset: str) -> None:
    config = get_model_config(model, preset, H100_80GB)
    spec, mem = config.model, config.memory
    assert config.max_model_len <= spec.context_length
    assert config.tensor_parallel_size <= H100_80GB.count
    assert mem.weight_bytes + mem.activation_bytes + mem.overhead_bytes + mem.kv_cache_bytes == mem.budget_bytes
    assert mem.max_concurrent_full_sequences >= 1, "not even one full-length sequence fits the KV cache"
    if preset in ("balanced", "memory_optimized"):
        assert mem.planned_fraction <= CONSERVATIVE_MEMORY_LIMIT


def test_selected_models_resolve(harness, model_name: str, preset_name: str) -> None:
    """The models this run selected (--models/--presets) resolve for this machine (GPU or CPU)."""
    config = get_model_config(model_name, preset_name, harness.gpu)
    assert config.device == ("cuda" if harness.gpu else "cpu")
    assert config.memory.kv_capacity_tokens >= config.max_model_len


@pytest.mark.parametrize("model", SUITE_MODELS)
def test_parameter_count_matches_model_card(model: str) -> None:
    spec = get_model_spec(model)
    assert spec.published_params_b is not None
    assert spec.parameter_count() / 1e9 == pytest.approx(spec.published_params_b, rel=0.01)
