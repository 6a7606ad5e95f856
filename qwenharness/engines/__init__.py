"""Inference engines: `open_engine(config, backend)` returns a running Engine ("vllm" or "hf")."""

from __future__ import annotations

from pathlib import Path

from ..errors import UnknownNameError
from ..presets import ResolvedConfig
from .base import (
    Engine,
    EngineInfo,
    Generation,
    GenerationRequest,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    SamplingParams,
)

BACKENDS = ("vllm", "hf")

__all__ = [
    "BACKENDS", "Engine", "EngineInfo", "Generation", "GenerationRequest", "LoglikelihoodRequest",
    "LoglikelihoodResult", "SamplingParams", "open_engine", "resolve_model_dir",
]


def resolve_model_dir(config: ResolvedConfig) -> str:
    """The folder (or Hub id) an engine loads: the built tiny model, a dummy-weight folder for
    `load_format="dummy"`, a local folder, or the Hub id."""
    spec = config.model
    if spec.builtin:
        from ..tiny import ensure_tiny_model

        return str(ensure_tiny_model(spec.name))
    if config.load_format == "dummy":
        from ..tiny import dummy_model_dir

        return str(dummy_model_dir(spec))
    if spec.local_path:
        return str(Path(spec.local_path))
    return spec.hub_id


def open_engine(config: ResolvedConfig, backend: str) -> Engine:
    """Start an engine for a resolved configuration. Close it (`engine.close()`) before opening another."""
    if backend not in BACKENDS:
        raise UnknownNameError(f"unknown backend '{backend}'", f"choose one of {', '.join(BACKENDS)}")
    model_dir = resolve_model_dir(config)
    if backend == "hf":
        from .hf import HFEngine

        return HFEngine(config, model_dir)
    from .vllm import VLLMEngine

    return VLLMEngine(config, model_dir)
