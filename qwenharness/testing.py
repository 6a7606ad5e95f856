"""Support for the pytest gates: the options a run was given, resolved once per session."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .hardware import GPUSpec, detect_gpu
from .selection import DocIds, SampleLimits, parse_doc_ids, parse_sample_limits

CPU_DEFAULT_MODELS = ["tiny"]
CPU_SCALING_MODELS = ["tiny", "tiny-2x"]
GPU_DEFAULT_MODELS = ["qwen3_8b", "qwen3_14b"]


# Parameters that name the engine a test needs; tests sharing them share one engine (see conftest.py).
ENGINE_PARAMS = ("model_name", "preset_name", "backend_name")
# A module that parametrizes one (model, preset, backend) tuple instead names it this.
ENGINE_KEY_PARAM = "engine_key"


def engine_key_of(params: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """The (model, preset, backend) a parametrized test runs on, or None for a test without an engine."""
    if ENGINE_KEY_PARAM in params:
        return tuple(params[ENGINE_KEY_PARAM])
    if not any(p in params for p in ENGINE_PARAMS):
        return None
    return tuple(params.get(p) for p in ENGINE_PARAMS)


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


@dataclass
class HarnessOptions:
    models: list[str]
    presets: list[str]
    datasets: list[str]
    backends: list[str]
    sample_limits: SampleLimits
    data_dir: str | None
    results_dir: Path
    run_id: str
    require_gpu: bool
    validate_only: bool
    load_format: str
    gpu: GPUSpec | None = field(default=None)
    models_given: bool = False
    doc_ids: DocIds = field(default_factory=DocIds)  # --doc-ids

    @classmethod
    def from_pytest(cls, config) -> "HarnessOptions":  # noqa: ANN001 - pytest.Config
        from .presets import get_available_presets
        from .tasks import get_available_tasks

        gpu = detect_gpu()
        opt = config.getoption
        models = _split(opt("--models"))
        backends = _split(opt("--backend"))
        if not backends or backends == ["auto"]:
            backends = ["vllm"] if gpu else ["vllm", "hf"]
        presets = _split(opt("--presets"))
        datasets = _split(opt("--datasets"))
        if datasets == ["all"]:
            datasets = []
        return cls(
            models=models or (GPU_DEFAULT_MODELS if gpu else CPU_DEFAULT_MODELS),
            models_given=bool(models),
            presets=presets or get_available_presets(),
            datasets=datasets or get_available_tasks(),
            backends=backends,
            sample_limits=parse_sample_limits(opt("--sample-limit"), [*get_available_tasks(), *datasets]),
            doc_ids=parse_doc_ids(opt("--doc-ids"), datasets or get_available_tasks()),
            data_dir=opt("--data-dir") or os.environ.get("QWENHARNESS_DATA_DIR"),
            results_dir=Path(opt("--results-dir")),
            run_id=opt("--run-id"),
            require_gpu=bool(opt("--require-gpu")),
            validate_only=bool(opt("--validate-only")),
            load_format=opt("--load-format"),
            gpu=gpu,
        )

    def scaling_models(self) -> list[str]:
        if self.models_given:
            return self.models
        return GPU_DEFAULT_MODELS if self.gpu else CPU_SCALING_MODELS


def sandbox_processes(instance_id: str) -> list[Any]:
    """Every live (not zombie) process on the machine that carries a sandbox's marker environment
    variable: what the sandbox tests expect to be empty once a sample is over."""
    import psutil

    found = []
    for p in psutil.process_iter(["environ", "status"]):
        try:
            env = p.info.get("environ") or {}
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if env.get("QWENHARNESS_SANDBOX") == instance_id and p.info.get("status") != psutil.STATUS_ZOMBIE:
            found.append(p)
    return found
