"""Milestone 1: the environment has what the suite needs, and records what it ran on."""

from __future__ import annotations

import json

import pytest

from qwenharness import environment
from qwenharness.hardware import detect_gpu

pytestmark = pytest.mark.milestone1


@pytest.mark.parametrize("module", sorted(environment.REQUIRED_PACKAGES))
def test_required_package_imports(module: str) -> None:
    errors = environment.import_errors({module: environment.REQUIRED_PACKAGES[module]})
    assert not errors, f"{module} does not import: {errors[module]} (reinstall with the README's setup command)"


def test_vllm_imports(harness) -> None:
    if "vllm" not in harness.backends:
        pytest.skip("vLLM backend not selected (--backend)")
    errors = environment.import_errors({"vllm": "vllm"})
    assert not errors, (f"vllm does not import: {errors['vllm']} (GPU: pip install -e .[vllm]; CPU: see README "
                        "'vLLM on the CPU')")


def test_versions_are_recorded(harness, tmp_path) -> None:
    info = environment.describe()
    for key in ("python", "torch", "transformers", "qwenharness"):
        assert info["versions"][key], f"version of {key} unknown: is the package installed (pip install -e .)?"
    path = tmp_path / "environment.json"
    path.write_text(json.dumps(info))
    assert json.loads(path.read_text())["versions"] == info["versions"]


@pytest.mark.gpu
def test_gpu_visible_through_nvml() -> None:
    gpu = detect_gpu()
    assert gpu is not None and gpu.count >= 1
    assert gpu.memory_bytes > 16 * 1024**3, f"{gpu.name} has too little memory for 7-14B models"


@pytest.mark.gpu
def test_gpu_bandwidth_known() -> None:
    gpu = detect_gpu()
    assert gpu is not None
    assert gpu.bandwidth_bytes_per_s, f"{gpu.name} is not in qwenharness.hardware's bandwidth table; add it"


@pytest.mark.gpu
def test_torch_sees_cuda() -> None:
    import torch

    assert torch.cuda.is_available(), "NVML sees a GPU but torch.cuda does not: install a CUDA build of torch"
