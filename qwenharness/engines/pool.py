"""EnginePool: at most one engine alive at a time, reused while the same configuration is asked for.

The pytest session holds one pool (`engine_pool` fixture). Asking for another (model, preset,
backend, overrides) closes the open engine first and only then opens the new one, so two models are
never in memory together; the counters let a test prove it.
"""

from __future__ import annotations

import gc
import inspect
import time
import weakref
from dataclasses import dataclass, fields
from typing import Any, Callable, Hashable

from ..errors import ConfigError
from ..lifetime import track_children
from ..presets import ResolvedConfig, get_model_config
from .base import Engine

Opener = Callable[..., Engine]  # (config, backend) -> Engine; (config, backend, endpoint) for "openai"
Resolver = Callable[..., ResolvedConfig]
PoolKey = tuple[str, str, str, tuple[tuple[str, Hashable], ...]]

_RESOLVER_ARGS = {p for p in inspect.signature(get_model_config).parameters if p not in ("model", "preset", "gpu")}
_CONFIG_FIELDS = {f.name for f in fields(ResolvedConfig)}


def _default_opener(config: ResolvedConfig, backend: str, endpoint: Any = None) -> Engine:
    from . import open_engine  # imported late: engines import torch/vLLM

    return open_engine(config, backend, endpoint=endpoint)


def _hashable(value: Any) -> Hashable:
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    return value


@dataclass(frozen=True)
class LoadRecord:
    key: PoolKey
    load_time_s: float
    opened_at: float  # time.time()


class EnginePool:
    """Keeps exactly one engine alive. Not thread-safe; use it from the test process only."""

    def __init__(self, *, opener: Opener | None = None, resolver: Resolver | None = None,
                 gpu: Any = "auto", load_format: str = "auto", overrides: dict[str, Any] | None = None,
                 server: Any = None, judge_server: Any = None) -> None:
        """`overrides`: engine settings every in-process engine gets (--max-model-len, --engine-args, ...).
        `server` / `judge_server`: the ServerEndpoint of backend "openai" for the model under test and
        for the judge (the judge falls back to `server`)."""
        self._opener: Opener = opener or _default_opener
        self._resolver: Resolver = resolver or get_model_config
        self.gpu = gpu
        self.load_format = load_format
        self.overrides = dict(overrides or {})
        self.server = server
        self.judge_server = judge_server
        self._engine: Engine | None = None
        self._key: PoolKey | None = None
        self._config: ResolvedConfig | None = None
        self.opened = 0
        self.closed = 0
        self.max_alive = 0
        self.load_times: dict[PoolKey, float] = {}
        self.history: list[LoadRecord] = []
        self.last_closed: weakref.ReferenceType[Any] | None = None  # dead once the engine is collected

    # -- keys and configs -------------------------------------------------------------------------
    @staticmethod
    def make_key(model: str, preset: str, backend: str, **overrides: Any) -> PoolKey:
        return (model, preset, backend, tuple(sorted((k, _hashable(v)) for k, v in overrides.items())))

    def endpoint(self, backend: str, role: str = "model") -> Any:
        """The server a backend-"openai" engine talks to (None for in-process backends)."""
        if backend != "openai":
            return None
        server = (self.judge_server or self.server) if role == "judge" else self.server
        if server is None:
            flag = "--judge-base-url" if role == "judge" else "--base-url"
            raise ConfigError(f"backend openai needs the server's address and none was given for the {role}",
                              f"pass {flag} URL (e.g. http://127.0.0.1:8000/v1)")
        return server

    def resolve(self, model: str, preset: str, backend: str | None = None, **overrides: Any) -> ResolvedConfig:
        """The validated configuration the pool would open (ConfigError for one that cannot run).

        Overrides that `get_model_config` accepts (max_model_len, dtype, tensor_parallel_size, seed,
        load_format, compilation, ...) go through its validation; other ResolvedConfig fields are
        replaced afterwards.
        """
        if backend == "openai":  # the server's engine settings are the server's (vllm serve flags)
            overrides = {**overrides, "plan_memory": False}
        else:
            overrides = {**self.overrides, **overrides}
        unknown = set(overrides) - _RESOLVER_ARGS - _CONFIG_FIELDS
        if unknown:
            raise ConfigError(f"unknown engine setting(s) {', '.join(sorted(unknown))}",
                              f"use arguments of get_model_config ({', '.join(sorted(_RESOLVER_ARGS))}) "
                              "or fields of ResolvedConfig")
        direct = {k: v for k, v in overrides.items() if k in _RESOLVER_ARGS}
        direct.setdefault("load_format", self.load_format)
        config = self._resolver(model, preset, gpu=self.gpu, **direct)
        later = {k: v for k, v in overrides.items() if k not in _RESOLVER_ARGS}
        return config.with_overrides(**later) if later else config

    # -- the pool ---------------------------------------------------------------------------------
    @property
    def alive(self) -> int:
        return 0 if self._engine is None else 1

    @property
    def current_key(self) -> PoolKey | None:
        return self._key

    @property
    def current_config(self) -> ResolvedConfig | None:
        return self._config

    def get(self, model: str, preset: str, backend: str, *, role: str = "model", **config_overrides: Any) -> Engine:
        """The engine for this key: the open one if it matches, else the old one closed and a new one
        opened. `role` ("model" or "judge") picks the server of backend "openai"."""
        endpoint = self.endpoint(backend, role)
        extra = {"endpoint": endpoint} if endpoint is not None else {}
        key = self.make_key(model, preset, backend, **config_overrides, **extra)
        if self._engine is not None and self._key == key:
            return self._engine
        config = self.resolve(model, preset, backend, **config_overrides)  # validate before closing anything
        self.close()
        start = time.perf_counter()
        engine = self._opener(config, backend, endpoint) if endpoint is not None else self._opener(config, backend)
        elapsed = time.perf_counter() - start
        track_children()  # its processes die with this one, however this one dies
        self._engine, self._key, self._config = engine, key, config
        self.opened += 1
        self.max_alive = max(self.max_alive, self.opened - self.closed)
        self.load_times[key] = elapsed
        self.history.append(LoadRecord(key, elapsed, time.time()))
        return engine

    def close(self) -> None:
        """Close the open engine (if any), drop the pool's reference and collect garbage."""
        engine, self._engine = self._engine, None
        self._key = self._config = None
        if engine is None:
            return
        try:
            self.last_closed = weakref.ref(engine)
        except TypeError:  # an engine class with __slots__ and no __weakref__
            self.last_closed = None
        try:
            engine.close()
        finally:
            self.closed += 1
            del engine
            gc.collect()

    def engine_released(self) -> bool | None:
        """Whether the last closed engine object has been garbage-collected (None: cannot tell)."""
        if self.last_closed is None:
            return None
        gc.collect()
        return self.last_closed() is None

    def __enter__(self) -> "EnginePool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def group_stably(items: list[Any], key: Callable[[Any], Hashable | None],
                 scope: Callable[[Any], Hashable]) -> list[Any]:
    """Reorder `items` so those with equal `key` are adjacent, keeping first-appearance order.

    Grouping happens within runs of items that share `scope` (e.g. the test module) and have a key;
    an item whose key is None (not parametrized by an engine) stays where it is and bounds the run
    on either side, so a test placed after the parametrized ones (e.g. a check of the results file)
    still runs after them.
    """
    out: list[Any] = []
    run: list[Any] = []
    run_scope: Hashable = object()

    def flush() -> None:
        groups: dict[Hashable, list[Any]] = {}
        for it in run:
            groups.setdefault(key(it), []).append(it)
        for members in groups.values():
            out.extend(members)
        run.clear()

    for item in items:
        k, s = key(item), scope(item)
        if k is None or s != run_scope:
            flush()
            run_scope = s
        if k is None:
            out.append(item)
        else:
            run.append(item)
    flush()
    return out
