"""Engine settings from the command line and the pytest options: the named flags (--max-model-len,
--tensor-parallel-size, --gpu-memory-utilization, --max-num-seqs, --dtype, --kv-cache-dtype,
--compilation) and the
passthrough `--engine-args key=value,...`, whose keys are checked against vLLM's own EngineArgs.

`EngineSettings.overrides()` is what `get_model_config` / `EnginePool(overrides=...)` take, so the
memory plan sees the same numbers vLLM gets.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError

# The named flags: EngineArgs field -> the flag that sets it (passthrough may not set these).
NAMED_FLAGS = {
    "max_model_len": "--max-model-len",
    "tensor_parallel_size": "--tensor-parallel-size",
    "gpu_memory_utilization": "--gpu-memory-utilization",
    "max_num_seqs": "--max-num-seqs",
    "dtype": "--dtype",
    "kv_cache_dtype": "--kv-cache-dtype",
}
# What the harness itself decides (the model folder, its tokenizer, the seed, the load format).
HARNESS_SET = {"model": "--models", "tokenizer": "--models", "seed": "--seed", "load_format": "--load-format",
               "trust_remote_code": "the model registry (ModelSpec.trust_remote_code)"}
_SPLIT = re.compile(r",(?=\s*[A-Za-z_][\w-]*\s*=)")


def vllm_engine_fields() -> dict[str, Any]:
    """EngineArgs field name -> its default, from the installed vLLM."""
    try:
        from vllm.engine.arg_utils import EngineArgs
    except ImportError as e:
        raise ConfigError(f"--engine-args are checked against vLLM's EngineArgs and vLLM does not import ({e})",
                          "install vLLM (see README), or drop --engine-args") from e
    out = {}
    for f in dataclasses.fields(EngineArgs):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            out[f.name] = None
        else:
            out[f.name] = None
    return out


def parse_value(text: str) -> Any:
    """true/false, none, integers, floats, JSON objects and lists; anything else stays a string."""
    t = text.strip()
    low = t.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(t)
        except ValueError:
            pass
    if t[:1] in "{[":
        try:
            return json.loads(t)
        except json.JSONDecodeError as e:
            raise ConfigError(f"--engine-args value {t} is not valid JSON ({e.msg})",
                              "quote JSON values, e.g. --engine-args 'compilation_config={\"level\": 0}'") from None
    return t


def parse_engine_args(text: str | None, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    """`key=value,key=value` (keys with - or _) checked against vLLM's EngineArgs: an unknown key is a
    one-line error with the nearest name; keys with a flag of their own name that flag."""
    if not text or not text.strip():
        return {}
    from .console import did_you_mean

    known = fields if fields is not None else vllm_engine_fields()
    out: dict[str, Any] = {}
    for part in _SPLIT.split(text.strip()):
        if not part.strip():
            continue
        if "=" not in part:
            raise ConfigError(f"--engine-args item '{part.strip()}' has no '='",
                              "write key=value pairs separated by commas, e.g. --engine-args enforce_eager=true")
        key, value = part.split("=", 1)
        key = key.strip().lstrip("-").replace("-", "_")
        if key in NAMED_FLAGS:
            raise ConfigError(f"--engine-args sets {key}, which has its own flag",
                              f"use {NAMED_FLAGS[key]} instead")
        if key in HARNESS_SET:
            raise ConfigError(f"--engine-args sets {key}, which the harness decides",
                              f"set it through {HARNESS_SET[key]}")
        if key not in known:
            raise ConfigError(f"--engine-args: vLLM's EngineArgs has no '{key}'",
                              did_you_mean(key, known, "see `vllm serve --help` for the engine's arguments"))
        parsed = parse_value(value)
        default = known[key]
        if isinstance(default, bool) and not isinstance(parsed, bool):
            raise ConfigError(f"--engine-args {key}={value.strip()}: {key} takes true or false",
                              f"write {key}=true or {key}=false")
        if isinstance(default, int) and not isinstance(default, bool) and isinstance(parsed, (str, float)) \
                and not isinstance(parsed, bool):
            raise ConfigError(f"--engine-args {key}={value.strip()}: {key} takes an integer",
                              f"write {key}=<integer>")
        out[key] = parsed
    return out


@dataclass(frozen=True)
class EngineSettings:
    """The engine settings a run was given (None: the preset's)."""

    max_model_len: int | None = None
    tensor_parallel_size: int | None = None
    gpu_memory_utilization: float | None = None
    max_num_seqs: int | None = None
    dtype: str | None = None
    kv_cache_dtype: str | None = None
    compilation: str | None = None  # presets.COMPILATION_MODES; None: the job's default
    engine_args: dict[str, Any] = field(default_factory=dict)

    def overrides(self) -> dict[str, Any]:
        """Keyword arguments of get_model_config for the settings given."""
        out = {k: v for k, v in dataclasses.asdict(self).items() if v is not None and k != "engine_args"}
        if self.engine_args:
            out["engine_args"] = dict(self.engine_args)
        return out

    def given(self) -> list[str]:
        """The flags given, for "does not apply to the server" errors."""
        flags = [NAMED_FLAGS[k] for k, v in dataclasses.asdict(self).items() if k in NAMED_FLAGS and v is not None]
        return (flags + (["--compilation"] if self.compilation else [])
                + (["--engine-args"] if self.engine_args else []))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "EngineSettings":
        return cls(**(d or {}))


def check_for_backend(settings: EngineSettings, backend: str) -> None:
    """Engine settings belong to in-process engines; a server has its own (vllm serve flags)."""
    flags = settings.given()
    if backend == "openai" and flags:
        raise ConfigError(f"{', '.join(flags)} set the in-process engine, and backend openai uses the server's",
                          "give them to the server instead (vllm serve --max-model-len ...; see docs/scale-out.md)")
    if backend == "hf" and settings.engine_args:
        raise ConfigError("--engine-args are vLLM's and backend hf takes none", "drop --engine-args or use --backend vllm")
    if backend == "hf" and settings.compilation:
        raise ConfigError("--compilation sets how vLLM starts, and backend hf has no such step",
                          "drop --compilation or use --backend vllm")
