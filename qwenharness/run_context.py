"""The RunContext the evaluation runner hands a task: batched engine calls through the response cache.

Every request is looked up in the run's ResponseCache first; the misses go to the engine in chunks
(each chunk is one batch call, so vLLM still schedules hundreds of requests at once) and each
finished chunk is appended to the cache before the next starts. A process killed mid-run therefore
loses at most the chunk in flight, and a rerun makes no engine call for anything already answered.

Engines are reached through zero-argument callables (`engine_fn`, `judge_fn`) and only when a cache
miss needs them: a fully cached rerun never opens an engine.

Per-request failures: a generation prompt longer than the engine's max_model_len comes back from the
engine as a `Generation(finish_reason="error", error=...)`; a batch the engine rejects is split to
find the requests at fault, which are recorded as errors, instead of failing the whole batch.
Log-likelihood contexts are cut from the left by the engines themselves.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from .engines.base import (
    Engine,
    Generation,
    GenerationRequest,
    LoglikelihoodRequest,
    LoglikelihoodResult,
)
from .console import forwarding_bar
from .errors import EngineDiedError, EngineError
from .results import ResponseCache

EngineFn = Callable[[], Engine]
DEFAULT_CHUNK = {"generate": 512, "judge": 512, "loglikelihood": 2048}


@dataclass
class CallStats:
    """What one dataset's evaluation asked for, and how much of it the cache answered."""

    requests: int = 0
    cache_hits: int = 0
    new_requests: int = 0
    engine_calls: int = 0
    inference_s: float = 0.0
    request_errors: int = 0
    by_kind: dict[str, dict[str, int]] = field(default_factory=dict)
    # the distinct generation settings of the requests actually sent (or answered from the cache)
    generation_settings: list[dict[str, Any]] = field(default_factory=list)

    def observe(self, requests: list[GenerationRequest]) -> None:
        for r in requests:
            s = generation_settings(r)
            if s not in self.generation_settings:
                self.generation_settings.append(s)

    def add(self, kind: str, requests: int, hits: int) -> None:
        self.requests += requests
        self.cache_hits += hits
        self.new_requests += requests - hits
        k = self.by_kind.setdefault(kind, {"requests": 0, "cache_hits": 0})
        k["requests"] += requests
        k["cache_hits"] += hits

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def request_key_dict(request: GenerationRequest | LoglikelihoodRequest) -> dict[str, Any]:
    """Everything in a request that changes the engine's answer."""
    if isinstance(request, LoglikelihoodRequest):
        return {"context": request.context, "continuation": request.continuation}
    return {
        "prompt": request.prompt,
        "messages": [dict(m) for m in request.messages] if request.messages is not None else None,
        "prompt_token_ids": list(request.prompt_token_ids) if request.prompt_token_ids is not None else None,
        "sampling": request.sampling.to_dict(),
        "enable_thinking": request.enable_thinking,
        **({"assistant_prefix": request.assistant_prefix} if request.assistant_prefix is not None else {}),
    }


def generation_settings(request: GenerationRequest) -> dict[str, Any]:
    """The settings of a generation request as a record states them (no prompt text)."""
    sp = request.sampling
    return {
        "prompt_format": "chat" if request.messages is not None else "raw" if request.prompt is not None else "token_ids",
        "system_prompt": next((m["content"] for m in request.messages or () if m.get("role") == "system"), None),
        "assistant_prefix": request.assistant_prefix,
        "enable_thinking": request.enable_thinking,
        "max_tokens": sp.max_tokens, "stop": list(sp.stop), "temperature": sp.temperature, "top_p": sp.top_p,
        "seeded": sp.seed is not None,
    }


def call_chunks(items: list[tuple[str, Any]], size: int,
                limit_chars: int | None = None) -> list[list[tuple[str, Any]]]:
    """`items` (key, request) cut into engine calls of at most `size` requests and, where
    `limit_chars` is given, at most that many characters of log-likelihood text (context and
    continuation; a single longer request still gets a call of its own)."""
    if limit_chars is None:
        return [items[start:start + size] for start in range(0, len(items), size)]
    chunks: list[list[tuple[str, Any]]] = []
    current: list[tuple[str, Any]] = []
    chars = 0
    for item in items:
        request = item[1]
        n = len(request.context) + len(request.continuation)
        if current and (len(current) >= size or chars + n > limit_chars):
            chunks.append(current)
            current, chars = [], 0
        current.append(item)
        chars += n
    if current:
        chunks.append(current)
    return chunks


def _error_generation(message: str) -> Generation:
    return Generation(text="", prompt_tokens=0, output_tokens=0, finish_reason="error", latency_s=0.0,
                      error=message)


class _Side:
    """One engine identity (the model under test, or the judge) with its cache."""

    def __init__(self, name: str, engine_fn: EngineFn | None, cache: ResponseCache):
        self.name = name
        self.engine_fn = engine_fn
        self.cache = cache
        self.opened = False

    def engine(self) -> Engine:
        if self.engine_fn is None:
            raise EngineError(f"no engine is available for {self.name}",
                              "this evaluation was started without an engine (resume-only); rerun normally")
        self.opened = True
        return self.engine_fn()


class CachedRunContext:
    """RunContext implementation (see qwenharness.tasks.base.RunContext)."""

    def __init__(self, model_name: str, engine_fn: EngineFn | None, cache: ResponseCache, *,
                 judge_name: str | None = None, judge_fn: EngineFn | None = None,
                 judge_cache: ResponseCache | None = None, label: str = "",
                 chunk_sizes: dict[str, int] | None = None, progress: bool | None = None):
        self.model_name = model_name
        self.label = label or model_name
        self._model = _Side(model_name, engine_fn, cache)
        self._judge = (_Side(judge_name or "judge", judge_fn, judge_cache)
                       if judge_cache is not None else None)
        self.chunk_sizes = dict(chunk_sizes or {})  # given sizes are used as they are
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.stats = CallStats()

    # -- RunContext -------------------------------------------------------------------------------
    def generate(self, requests: list[GenerationRequest]) -> list[Generation]:
        self.stats.observe(requests)
        return self._run(self._model, "generate", requests)  # type: ignore[return-value]

    def judge_generate(self, requests: list[GenerationRequest]) -> list[Generation]:
        if self._judge is None:
            raise EngineError("this task asked for an LLM judge but the runner configured none",
                              "pass --judge-model (MT-Bench needs a judge)")
        return self._run(self._judge, "judge", requests)  # type: ignore[return-value]

    def loglikelihood(self, requests: list[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
        out = self.loglikelihood_or_errors(requests)
        for r in out:
            if isinstance(r, str):
                raise EngineError(f"a log-likelihood request failed: {r}", "see the per-sample errors")
        return out  # type: ignore[return-value]

    def loglikelihood_or_errors(self, requests: list[LoglikelihoodRequest]) -> list[LoglikelihoodResult | str]:
        """Like `loglikelihood`, with an error message in place of each request that failed."""
        return self._run(self._model, "loglikelihood", requests)  # type: ignore[return-value]

    def apply_chat_template(self, messages: list[dict[str, str]], enable_thinking: bool | None = None) -> str:
        side = self._model
        key = side.cache.key("chat_template", {"messages": [dict(m) for m in messages],
                                               "enable_thinking": enable_thinking})
        hit = side.cache.get(key)
        if hit is not None:
            return str(hit)
        text = side.engine().apply_chat_template(list(messages), enable_thinking=enable_thinking)
        side.cache.put_many([(key, text)])
        return text

    @property
    def engine_opened(self) -> bool:
        return self._model.opened or (self._judge is not None and self._judge.opened)

    # -- internals --------------------------------------------------------------------------------
    def _keys(self, side: _Side, kind: str, requests: list[Any]) -> list[str]:
        """Cache keys; repeated sampled (temperature > 0) requests get distinct keys (n samples)."""
        seen: dict[str, int] = {}
        keys = []
        for r in requests:
            body = request_key_dict(r)
            base = side.cache.key(kind, body)
            if isinstance(r, GenerationRequest) and r.sampling.temperature > 0:
                n = seen.get(base, 0)
                seen[base] = n + 1
                if n:
                    base = side.cache.key(kind, {**body, "occurrence": n})
            keys.append(base)
        return keys

    def _run(self, side: _Side, kind: str, requests: list[Any]) -> list[Any]:
        if not requests:
            return []
        keys = self._keys(side, kind, requests)
        todo: dict[str, Any] = {}
        for k, r in zip(keys, requests):
            if k not in side.cache and k not in todo:
                todo[k] = r
        self.stats.add(kind, len(requests), len(requests) - len(todo))
        if todo:
            self._compute(side, kind, list(todo.items()))
        out = []
        for k in keys:
            v = side.cache.get(k)
            out.append(self._decode(kind, v))
        return out

    @staticmethod
    def _decode(kind: str, value: Any) -> Any:
        if kind == "loglikelihood":
            if isinstance(value, dict) and "error" in value and "logprob" not in value:
                return str(value["error"])
            return LoglikelihoodResult(**value)
        return Generation(**value)

    def _compute(self, side: _Side, kind: str, items: list[tuple[str, Any]]) -> None:
        bar = None
        try:
            engine = side.engine()  # opened first, so the bar's rate and ETA leave the load time out
            if self.progress:
                from tqdm import tqdm

                bar = tqdm(total=len(items), desc=f"{self.label} {kind}", unit="req", leave=False, file=sys.stderr)
            caps = engine.capabilities
            size = self.chunk_sizes.get(kind) or DEFAULT_CHUNK.get(kind, 512) * caps.call_size_factor
            moved = [0]
            # the engine moves the bar once per finished request (vLLM's use_tqdm takes a factory),
            # so it moves within a chunk; engines that do not report per request move it per chunk
            progress: Any = forwarding_bar(bar, moved) if bar is not None else None
            if kind == "loglikelihood" and not caps.loglikelihood:
                raise EngineError(f"the {engine.name} engine for {side.name} cannot compute log-likelihoods "
                                  "(its server returns no prompt log-probabilities)",
                                  "serve the model with vLLM (vllm serve), or leave log-likelihood datasets out")
            limit_chars = caps.loglikelihood_call_chars if kind == "loglikelihood" else None
            if limit_chars is not None and kind not in self.chunk_sizes:
                size = len(items)  # the text bound sizes the calls, whatever their count
            for chunk in call_chunks(items, size, limit_chars):
                moved[0] = 0
                saved: set[int] = set()
                sink = self._sink(side, chunk, saved) if caps.streams_results else None
                results = self._call_isolating(engine, kind, [r for _, r in chunk], progress, sink)
                side.cache.put_many([(k, v) for i, ((k, _), v) in enumerate(zip(chunk, results)) if i not in saved])
                if bar is not None:
                    bar.update(max(0, len(chunk) - moved[0]))
        finally:
            if bar is not None:
                bar.close()

    @staticmethod
    def _sink(side: _Side, chunk: list[tuple[str, Any]], saved: set[int]) -> Callable[[int, list[tuple[int, Any]]], None]:
        """Where a streaming engine's answers go as they arrive: straight into the response cache, so
        that a run killed (or a server lost) mid-chunk keeps them. `saved` collects the indices written."""
        def put(base: int, batch: list[tuple[int, Any]]) -> None:
            rows = [(base + i, v) for i, v in batch if hasattr(v, "to_dict") and base + i not in saved]
            if rows:
                side.cache.put_many([(chunk[j][0], v.to_dict()) for j, v in rows])
                saved.update(j for j, _ in rows)
        return put

    def _call_isolating(self, engine: Engine, kind: str, requests: list[Any],
                        progress: Any = None, sink: Callable[[int, list[tuple[int, Any]]], None] | None = None,
                        ) -> list[dict[str, Any]]:
        start = time.perf_counter()
        try:
            return self._call_split(engine, kind, requests, progress, sink)
        finally:
            self.stats.inference_s += time.perf_counter() - start

    def _call_split(self, engine: Engine, kind: str, requests: list[Any], progress: Any = None,
                    sink: Callable[[int, list[tuple[int, Any]]], None] | None = None,
                    base: int = 0) -> list[dict[str, Any]]:
        """One batch call; if the engine rejects the batch (EngineError), split it to find the
        requests at fault and record those as errors, keeping every other answer. `sink` (streaming
        engines only) receives answers as they arrive, with their index in the chunk."""
        self.stats.engine_calls += 1
        kwargs: dict[str, Any] = {"progress": progress} if progress is not None else {}
        if sink is not None:
            kwargs["on_result"] = lambda batch: sink(base, batch)
        try:
            if kind == "loglikelihood":
                res: list[Any] = engine.loglikelihood(requests, **kwargs)
            else:
                res = engine.generate(requests, **kwargs)
        except EngineDiedError:
            raise  # no request is at fault: splitting would record every one of them as failed
        except EngineError as e:
            if len(requests) == 1:
                self.stats.request_errors += 1
                msg = f"{type(e).__name__}: {e}"
                return [{"error": msg} if kind == "loglikelihood" else _error_generation(msg).to_dict()]
            half = len(requests) // 2
            return (self._call_split(engine, kind, requests[:half], progress, sink, base)
                    + self._call_split(engine, kind, requests[half:], progress, sink, base + half))
        if len(res) != len(requests):
            raise EngineError(f"the engine returned {len(res)} results for {len(requests)} requests",
                              "this is an engine bug; report it")
        return [r.to_dict() for r in res]
