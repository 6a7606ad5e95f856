"""Support for the pytest gates: the options a run was given, resolved once per session."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .engine_args import EngineSettings
from .engines.openai import ServerEndpoint
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
    engine: EngineSettings = field(default_factory=EngineSettings)  # --max-model-len ... --engine-args
    server: ServerEndpoint | None = None  # --base-url (backend openai)
    judge_server: ServerEndpoint | None = None  # --judge-base-url
    judge_max_tokens: int | None = None  # --judge-max-tokens (None: EvalSettings' default, FastChat's 2048)

    def eval_settings_fields(self) -> dict[str, Any]:
        """The EvalSettings fields of the engine, server and judge options (recorded in the manifest)."""
        fields: dict[str, Any] = {"engine": self.engine.to_dict(),
                                  "server": self.server.to_dict() if self.server else None,
                                  "judge_server": self.judge_server.to_dict() if self.judge_server else None}
        if self.judge_max_tokens is not None:
            fields["judge_max_tokens"] = self.judge_max_tokens
        return fields

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
        engine, server, judge_server = _engine_and_servers(config, backends)
        return cls(
            engine=engine, server=server, judge_server=judge_server,
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
            judge_max_tokens=opt("--judge-max-tokens"),
        )

    def scaling_models(self) -> list[str]:  # noqa: D102
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


def add_engine_pytest_options(group: Any) -> None:
    """The engine and server options of `qwenharness evaluate`, as pytest options of the same names."""
    group.addoption("--max-model-len", type=int, default=None, help="context length of in-process engines")
    group.addoption("--tensor-parallel-size", type=int, default=None, help="GPUs one model is split over")
    group.addoption("--gpu-memory-utilization", type=float, default=None, help="fraction of GPU memory vLLM may take")
    group.addoption("--max-num-seqs", type=int, default=None, help="sequences vLLM schedules at once")
    group.addoption("--dtype", default=None, choices=("bfloat16", "float16", "float32"), help="engine dtype")
    group.addoption("--kv-cache-dtype", default=None, choices=("auto", "fp8", "fp8_e4m3", "fp8_e5m2"),
                    help="KV cache dtype")
    group.addoption("--engine-args", default=None, metavar="K=V,...",
                    help="further vllm.LLM arguments, checked against vLLM's EngineArgs")
    group.addoption("--base-url", default=None, help="backend openai: the server, e.g. http://127.0.0.1:8000/v1")
    group.addoption("--api-key-env", default=None, help="environment variable holding the server's API key")
    group.addoption("--served-model", default=None, help="the model's name on the server (default: its only one)")
    group.addoption("--server-api", default=None, choices=("auto", "completions", "chat"), help="see evaluate --help")
    group.addoption("--max-concurrency", type=int, default=None, help="requests in flight (default 32)")
    group.addoption("--request-timeout", type=float, default=None, help="seconds per request (default 600)")
    group.addoption("--max-retries", type=int, default=None, help="retries after 429/5xx/timeouts (default 6)")
    group.addoption("--judge-base-url", default=None, help="a server for the MT-Bench judge")
    group.addoption("--judge-api-key-env", default=None, help="environment variable holding the judge server's key")
    group.addoption("--judge-served-model", default=None, help="the judge's name on its server")
    from .commands.common import positive_int

    group.addoption("--judge-max-tokens", type=positive_int, default=None,
                    help="MT-Bench judge generation length (default: 2048, FastChat's)")


def _engine_and_servers(config: Any, backends: list[str]) -> tuple[EngineSettings, ServerEndpoint | None,
                                                                   ServerEndpoint | None]:
    """Engine settings and servers from the pytest options; a bad value is a pytest usage error."""
    import argparse

    import pytest

    from .commands.common import engine_settings, server_endpoint
    from .engine_args import check_for_backend
    from .errors import HarnessError

    names = ("max_model_len", "tensor_parallel_size", "gpu_memory_utilization", "max_num_seqs", "dtype",
             "kv_cache_dtype", "engine_args", "base_url", "api_key_env", "served_model", "server_api",
             "max_concurrency", "request_timeout", "max_retries", "judge_base_url", "judge_api_key_env",
             "judge_served_model")
    args = argparse.Namespace(**{n: config.getoption("--" + n.replace("_", "-")) for n in names})
    try:
        engine = engine_settings(args)
        server = server_endpoint(args)
        judge = server_endpoint(args, judge=True)
        if "openai" in backends and server is None:
            raise HarnessError("--backend openai needs the server's address", "pass --base-url URL")
        for b in backends:
            if b == "openai" and len(backends) > 1:
                continue  # engine settings then apply to the in-process backends
            check_for_backend(engine, b)
    except HarnessError as e:
        raise pytest.UsageError(str(e)) from None
    return engine, server, judge
