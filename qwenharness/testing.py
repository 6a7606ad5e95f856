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


# Parameters that name the engine a test needs; tests sharing them share one engine (see
# qwenharness/pytest_plugin/hooks.py).
ENGINE_PARAMS = ("model_name", "preset_name", "backend_name")
# A module that parametrizes one (model, preset, backend) tuple instead names it this.
ENGINE_KEY_PARAM = "engine_key"


def item_params(item: Any) -> Mapping[str, Any]:
    """A collected pytest item's parameters ({} for a test that is not parametrized)."""
    callspec = getattr(item, "callspec", None)  # pytest sets it on parametrized items only
    return callspec.params if callspec is not None else {}


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
    concurrent_datasets: str = "auto"  # --concurrent-datasets

    def eval_settings_fields(self) -> dict[str, Any]:
        """The EvalSettings fields of the engine, server and judge options (recorded in the manifest)."""
        fields: dict[str, Any] = {"engine": self.engine.to_dict(), "job_datasets": list(self.datasets),
                                  "concurrent_datasets": self.concurrent_datasets,
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
        _check_names(models, presets, datasets)
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
            concurrent_datasets=opt("--concurrent-datasets"),
        )

    def scaling_models(self) -> list[str]:  # noqa: D102
        if self.models_given:
            return self.models
        return GPU_DEFAULT_MODELS if self.gpu else CPU_SCALING_MODELS


def _check_names(models: list[str], presets: list[str], datasets: list[str]) -> None:
    """Unknown names end the session before collection, with the CLI's did-you-mean; model folders,
    GGUF files and Hub ids are checked where they are used (collection does not need the network)."""
    import pytest

    from .errors import HarnessError
    from .models import get_model_spec
    from .presets import get_preset
    from .tasks import get_available_tasks, get_task

    try:
        for m in models:
            if "/" not in m and not m.endswith(".gguf") and not Path(m).expanduser().exists():
                get_model_spec(m)
        for p in presets:
            get_preset(p)
        for d in datasets:
            if d not in get_available_tasks():
                get_task(d)  # a part (mmlu:stem) is checked too
    except HarnessError as e:
        raise pytest.UsageError(str(e)) from None


def sandbox_processes(instance_id: str) -> list[Any]:
    """Every live (not zombie) process on the machine that carries a sandbox's marker environment
    variable: what the sandbox tests expect to be empty once a sample is over."""
    from .lifetime import marked_processes

    return marked_processes({instance_id}, command_line=False)


def _engine_and_servers(config: Any, backends: list[str]) -> tuple[EngineSettings, ServerEndpoint | None,
                                                                   ServerEndpoint | None]:
    """Engine settings and servers from the pytest options; a bad value is a pytest usage error."""
    import argparse

    import pytest

    from .commands.common import engine_settings, server_endpoint
    from .engine_args import check_for_backend
    from .errors import HarnessError

    from .options import ENGINE_OPTIONS, JUDGE_SERVER_OPTIONS, SERVER_OPTIONS

    specs = (*ENGINE_OPTIONS, *SERVER_OPTIONS, *JUDGE_SERVER_OPTIONS)
    args = argparse.Namespace(**{s.name: config.getoption(s.flag) for s in specs})
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
