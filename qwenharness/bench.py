"""Throughput, latency, memory and harness-overhead measurement over any Engine.

Modelled on vLLM's `benchmarks/throughput.py` and `latency.py`: a fixed, seeded workload of random
token-id prompts of given input/output lengths (plus a real-text workload from a dataset), submitted
in one batch call; requests/s, output tokens/s and total tokens/s are reported separately. Latency is
measured per batch call after warm-up iterations, with p50/p90/p99, time to first token where the
engine exposes it, and inter-token latency. Results are stored as JSON, one file per
(run, model, preset, backend), sections merged in as they are measured (see `BenchmarkStore`).

No figure here is invented: a quantity the engine or the machine cannot provide is `None`, with the
reason beside it.

One module: the workload, the timing loops and the benchmark file they fill are one measurement.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import platform
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .engines.base import Engine, Generation, GenerationRequest, SamplingParams
from .errors import EngineError, HarnessError
from .hardware import bandwidth_for, detect_gpu
from .results import atomic_write_json, run_id_or_new

SCHEMA_VERSION = 1
OVERHEAD_GOAL = 0.97  # bare vLLM time / harness time; printed, never asserted on time


def overhead_verdict(ratio: float) -> str:
    """'meets the goal >= 0.97' or 'misses …': how every report words an overhead ratio."""
    return f"{'meets' if ratio >= OVERHEAD_GOAL else 'misses'} the goal >= {OVERHEAD_GOAL}"


# -- statistics ------------------------------------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between order statistics (numpy's
    default method)."""
    if not values:
        raise ValueError("percentile of an empty sequence")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be within 0..100, got {q}")
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summarize(values: Sequence[float]) -> dict[str, float | int] | None:
    """mean, p50, p90, p99, min, max and n of a sample, or None when it is empty."""
    if not values:
        return None
    return {
        "mean": sum(values) / len(values),
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


# -- workloads -------------------------------------------------------------------------------------
def supports_ignore_eos() -> bool:
    """Whether SamplingParams has an `ignore_eos` switch (generate exactly max_tokens tokens)."""
    return any(f.name == "ignore_eos" for f in dataclasses.fields(SamplingParams))


def sampling_for(output_len: int, *, ignore_eos: bool = True) -> SamplingParams:
    """Greedy sampling of `output_len` tokens, ignoring EOS where SamplingParams supports it."""
    if output_len < 1:
        raise ValueError(f"output length must be at least 1, got {output_len}")
    kwargs: dict[str, Any] = {"temperature": 0.0, "max_tokens": output_len}
    if ignore_eos and supports_ignore_eos():
        kwargs["ignore_eos"] = True
    return SamplingParams(**kwargs)


@dataclass(frozen=True)
class Workload:
    name: str  # "random" or a dataset name
    requests: tuple[GenerationRequest, ...]
    input_len: int | None  # tokens per prompt (random workload); None for text
    output_len: int
    seed: int
    ignore_eos: bool

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "num_prompts": len(self.requests), "input_len": self.input_len,
                "output_len": self.output_len, "seed": self.seed, "ignore_eos": self.ignore_eos}


def random_token_ids(num_prompts: int, input_len: int, vocab_size: int, seed: int) -> list[tuple[int, ...]]:
    """`num_prompts` prompts of `input_len` token ids drawn uniformly from [0, vocab_size), seeded."""
    if num_prompts < 1 or input_len < 1:
        raise ValueError(f"need at least one prompt of one token, got {num_prompts} x {input_len}")
    if vocab_size < 2:
        raise ValueError(f"vocab_size must be at least 2, got {vocab_size}")
    rng = random.Random(seed)
    return [tuple(rng.randrange(vocab_size) for _ in range(input_len)) for _ in range(num_prompts)]


def random_workload(num_prompts: int, input_len: int, output_len: int, vocab_size: int,
                    seed: int = 0) -> Workload:
    """vLLM-style synthetic workload: random token-id prompts, fixed output length, greedy."""
    sampling = sampling_for(output_len)
    reqs = tuple(GenerationRequest(prompt_token_ids=ids, sampling=sampling)
                 for ids in random_token_ids(num_prompts, input_len, vocab_size, seed))
    return Workload("random", reqs, input_len, output_len, seed, supports_ignore_eos())


TEXT_FIELDS = {"gsm8k": "question", "math500": "problem", "humaneval": "prompt", "mbpp": "text",
               "ifeval": "prompt"}


def text_workload(dataset: str, num_prompts: int, output_len: int, seed: int = 0,
                  data_dir: str | None = None, *, chat: bool = True) -> Workload:
    """Real-text prompts: the first field of a dataset's rows (e.g. GSM8K questions), a seeded subset,
    as single-turn chat messages (thinking off) or raw prompts."""
    from .data import load

    field_name = TEXT_FIELDS.get(dataset)
    if field_name is None:
        raise HarnessError(f"no text field known for dataset '{dataset}' as a benchmark workload",
                           f"use one of {', '.join(TEXT_FIELDS)}")
    rows = load(dataset, limit=num_prompts, seed=seed, data_dir=data_dir)
    sampling = sampling_for(output_len)
    reqs = []
    for row in rows:
        text = str(row[field_name])
        if chat:
            reqs.append(GenerationRequest(messages=({"role": "user", "content": text},), sampling=sampling,
                                          enable_thinking=False))
        else:
            reqs.append(GenerationRequest(prompt=text, sampling=sampling))
    return Workload(dataset, tuple(reqs), None, output_len, seed, supports_ignore_eos())


# -- memory ----------------------------------------------------------------------------------------
@contextlib.contextmanager
def memory_watch(interval_s: float = 0.05) -> Iterator[dict[str, Any]]:
    """NVML memory and utilisation during the block (qwenharness.gpu.MemorySampler), plus the host
    RSS of this process and its children. The yielded dict is filled on exit; GPU figures are None on a
    machine without a GPU, with the reason."""
    record: dict[str, Any] = {"peak_bytes": None, "mean_bytes": None, "gpu_util_mean": None,
                              "samples": 0, "host_rss_peak_bytes": None, "reason": None}
    try:
        from .gpu import MemorySampler
    except ImportError as e:
        record["reason"] = f"qwenharness.gpu.MemorySampler unavailable ({e})"
        yield record
        return
    sampler = MemorySampler(interval_s=interval_s)
    try:
        with sampler:
            yield record
    finally:
        record.update(sampler_figures(sampler.record))


def sampler_figures(rec: Any) -> dict[str, Any]:
    """The figures a benchmark keeps from a gpu.SamplerRecord (busiest card's peak/mean, mean
    utilisation in percent, host RSS peak)."""
    return {
        "peak_bytes": rec.peak_memory_bytes,
        "mean_bytes": rec.mean_memory_bytes,
        "gpu_util_mean": rec.mean_utilization_pct,
        "samples": rec.samples,
        "host_rss_peak_bytes": rec.host_rss_peak_bytes,
        "reason": None if rec.available else rec.reason,
    }


# -- measurements ----------------------------------------------------------------------------------
def _check(outs: list[Generation], n: int, what: str) -> None:
    if len(outs) != n:
        raise EngineError(f"{what}: the engine returned {len(outs)} outputs for {n} requests",
                          "this is an engine bug; report it with the engine name")
    errors = [g.error for g in outs if g.finish_reason == "error" or g.error]
    if errors:
        raise EngineError(f"{what}: {len(errors)} of {n} requests failed, first: {errors[0]}",
                          "fix the engine error above; benchmark figures over failed requests are meaningless")


def spread(values: Sequence[float]) -> dict[str, Any]:
    """min, max, median and (max - min) / median of repeated measurements (rounds or repetitions)."""
    mid = percentile(list(values), 50)
    return {"n": len(values), "min": min(values), "max": max(values), "median": mid,
            "relative": (max(values) - min(values)) / mid if mid else None}


def measure_throughput(engine: Engine, workload: Workload, more_rounds: Sequence[Workload] = ()) -> dict[str, Any]:
    """One batch call over the whole workload; rates over its wall time. `more_rounds` (workloads of
    the same shape with other prompts, so no round reuses another's prefix cache) are timed the same
    way; the headline rates are those of the median round (by output tokens/s; the first of the two
    middle ones for an even count) and `rounds_output_tokens_per_s` / `spread` give the spread."""
    reqs = list(workload.requests)
    runs: list[tuple[float, list[Generation]]] = []
    with memory_watch() as memory:
        for w in [workload, *more_rounds]:
            t0 = time.perf_counter()
            outs = engine.generate(list(w.requests))
            runs.append((time.perf_counter() - t0, outs))
            _check(outs, len(w.requests), f"throughput ({w.name})")
    rounds = [sum(g.output_tokens for g in o) / e for e, o in runs]
    median_round = sorted(range(len(rounds)), key=lambda i: rounds[i])[(len(rounds) - 1) // 2]
    elapsed, outs = runs[median_round]
    prompt_tokens = sum(g.prompt_tokens for g in outs)
    output_tokens = sum(g.output_tokens for g in outs)
    expected = len(reqs) * workload.output_len
    return {
        "headline_round": median_round,
        "workload": workload.describe(),
        "elapsed_s": elapsed,
        "num_requests": len(reqs),
        "prompt_tokens": prompt_tokens,
        "output_tokens": output_tokens,
        "output_tokens_expected": expected,
        "requests_per_s": len(reqs) / elapsed,
        "output_tokens_per_s": output_tokens / elapsed,
        "total_tokens_per_s": (prompt_tokens + output_tokens) / elapsed,
        "rounds_output_tokens_per_s": rounds,
        "spread": spread(rounds),
        "memory": memory,
    }


def measure_latency(engine: Engine, *, batch_size: int, input_len: int, output_len: int, vocab_size: int,
                    warmup: int = 2, iters: int = 5, seed: int = 0) -> dict[str, Any]:
    """End-to-end latency of `iters` batch calls of `batch_size` random prompts after `warmup` calls.

    Every call gets fresh prompts (seeded), so prefix caching cannot shortcut prefill. TTFT comes from
    Generation.first_token_s; inter-token latency per request is (latency - ttft) / (output - 1)."""
    if iters < 1 or warmup < 0:
        raise ValueError(f"need iters >= 1 and warmup >= 0, got {iters}, {warmup}")
    batches = [random_workload(batch_size, input_len, output_len, vocab_size, seed=seed + 1000 * (i + 1))
               for i in range(warmup + iters)]
    for w in batches[:warmup]:
        _check(engine.generate(list(w.requests)), batch_size, "latency warm-up")
    latencies: list[float] = []
    ttfts: list[float] = []
    itls: list[float] = []
    out_tokens: list[int] = []
    ttft_missing = False
    with memory_watch() as memory:
        for w in batches[warmup:]:
            t0 = time.perf_counter()
            outs = engine.generate(list(w.requests))
            lat = time.perf_counter() - t0
            _check(outs, batch_size, f"latency (batch {batch_size})")
            latencies.append(lat)
            for g in outs:
                out_tokens.append(g.output_tokens)
                if g.first_token_s is None:
                    ttft_missing = True
                    continue
                ttfts.append(g.first_token_s)
                if g.output_tokens > 1:
                    itls.append((lat - g.first_token_s) / (g.output_tokens - 1))
    mean_out = sum(out_tokens) / len(out_tokens)
    return {
        "batch_size": batch_size,
        "input_len": input_len,
        "output_len": output_len,
        "warmup": warmup,
        "iters": iters,
        "latency_s": summarize(latencies),
        "ttft_s": None if ttft_missing else summarize(ttfts),
        "itl_s": None if ttft_missing else summarize(itls),
        "ttft_reason": "the engine does not expose time to first token" if ttft_missing else None,
        "mean_output_tokens": mean_out,
        "output_tokens_per_s": batch_size * mean_out / percentile(latencies, 50),
        "memory": memory,
    }


# -- harness overhead --------------------------------------------------------------------------------
def bare_vllm_generate(llm: Any, engine: Any, requests: Sequence[GenerationRequest]) -> int:
    """The same token-id prompts straight through `vllm.LLM.generate`; returns output tokens."""
    prompts = []
    for r in requests:
        if r.prompt_token_ids is None:
            raise ValueError("the overhead comparison uses token-id prompts only")
        prompts.append({"prompt_token_ids": list(r.prompt_token_ids)})
    sampling = [engine.to_vllm_sampling(r.sampling, len(p["prompt_token_ids"])) for r, p in zip(requests, prompts)]
    outs = llm.generate(prompts, sampling, use_tqdm=False)
    return sum(len(o.outputs[0].token_ids) for o in outs)


def relative_ci95(values: Sequence[float]) -> float | None:
    """Half-width of the 95% interval of the mean, relative to the mean (None below two values)."""
    n = len(values)
    if n < 2:
        return None
    mean = sum(values) / n
    sd = (sum((v - mean) ** 2 for v in values) / (n - 1)) ** 0.5
    return 1.959963984540054 * sd / n ** 0.5 / mean if mean else None


def measure_overhead(engine: Engine, workload: Workload, reps: int = 3, *, target_spread: float | None = None,
                     max_reps: int | None = None, max_s: float | None = None) -> dict[str, Any]:
    """Harness path (engine.generate) vs a bare `vllm.LLM.generate` on the engine's own LLM object,
    interleaved (the order alternates every repetition). ratio = bare_time / harness_time, from the
    medians; 1.0 means no overhead. Not applicable to an engine without a vLLM `llm`.

    With `target_spread` (e.g. 0.03), repetitions continue after `reps` until the 95% interval of the
    mean per-repetition ratio is narrower than +-target_spread (relative), or `max_reps` / `max_s`
    run out; `converged` says which."""
    if not engine.capabilities.bare_vllm:
        return {"applicable": False, "ratio": None,
                "reason": f"engine '{engine.name}' has no vLLM `llm` to call bare"}
    llm = engine.llm  # type: ignore[attr-defined]  # declared by capabilities.bare_vllm
    if reps < 1:
        raise ValueError(f"need at least one repetition, got {reps}")
    reqs = list(workload.requests)
    harness_s: list[float] = []
    bare_s: list[float] = []
    harness_tokens: list[int] = []
    bare_tokens: list[int] = []

    def run_harness() -> None:
        t0 = time.perf_counter()
        outs = engine.generate(reqs)
        harness_s.append(time.perf_counter() - t0)
        _check(outs, len(reqs), "overhead (harness path)")
        harness_tokens.append(sum(g.output_tokens for g in outs))

    def run_bare() -> None:
        t0 = time.perf_counter()
        n = bare_vllm_generate(llm, engine, reqs)
        bare_s.append(time.perf_counter() - t0)
        bare_tokens.append(n)

    run_bare()  # one untimed round each: first-call effects (graph lookups, caches) fall outside
    run_harness()
    harness_s.clear(), bare_s.clear(), harness_tokens.clear(), bare_tokens.clear()
    t_start = time.perf_counter()
    i = 0
    while True:
        for step in ((run_harness, run_bare) if i % 2 == 0 else (run_bare, run_harness)):
            step()
        i += 1
        if i < reps:
            continue
        ci = relative_ci95([b / h for b, h in zip(bare_s, harness_s)])
        if target_spread is None or (ci is not None and ci <= target_spread):
            break
        if (max_reps is not None and i >= max_reps) or (max_s is not None and time.perf_counter() - t_start >= max_s):
            break
    reps = i
    ratio = percentile(bare_s, 50) / percentile(harness_s, 50)
    per_rep = [b / h for b, h in zip(bare_s, harness_s)]  # each repetition's interleaved pair
    ci = relative_ci95(per_rep)
    return {
        "ratio_per_rep": per_rep,
        "spread": {**spread(per_rep), "ci95_relative": ci},
        "target_spread": target_spread,
        "converged": None if target_spread is None else (ci is not None and ci <= target_spread),
        "applicable": True,
        "workload": workload.describe(),
        "reps": reps,
        "harness_s": harness_s,
        "bare_s": bare_s,
        "harness_median_s": percentile(harness_s, 50),
        "bare_median_s": percentile(bare_s, 50),
        "ratio": ratio,
        "goal": OVERHEAD_GOAL,
        "meets_goal": ratio >= OVERHEAD_GOAL,
        "harness_output_tokens": harness_tokens,
        "bare_output_tokens": bare_tokens,
        "same_token_counts": harness_tokens == bare_tokens,
    }


# -- physical bound ----------------------------------------------------------------------------------
def decode_bound(weight_bytes: int, bandwidth_bytes_per_s: float, tensor_parallel_size: int = 1) -> float:
    """Batch-1 decode ceiling in tokens/s: every step streams all weights from HBM once; with tensor
    parallelism each card streams its shard concurrently. KV-cache reads (small at batch 1) ignored."""
    if weight_bytes <= 0 or bandwidth_bytes_per_s <= 0:
        raise ValueError("weight bytes and bandwidth must be positive")
    return bandwidth_bytes_per_s * tensor_parallel_size / weight_bytes


def physical_bound(config: Any, latency_b1: dict[str, Any] | None, gpu_name: str | None) -> dict[str, Any]:
    """The bandwidth bound for this config on the detected GPU and the measured batch-1 decode rate's
    fraction of it. On CPU, or on a card missing from the bandwidth table, None with the reason."""
    if config.device != "cuda" or gpu_name is None:
        return {"applicable": False, "bound_tokens_per_s": None, "fraction": None,
                "reason": "no GPU: the HBM bandwidth bound applies to GPU decoding only"}
    bw = bandwidth_for(gpu_name)
    if bw is None:
        return {"applicable": False, "bound_tokens_per_s": None, "fraction": None, "gpu": gpu_name,
                "reason": f"'{gpu_name}' is not in qwenharness.hardware's bandwidth table"}
    weights = config.model.weight_bytes(config.dtype)
    bound = decode_bound(weights, bw, config.tensor_parallel_size)
    out: dict[str, Any] = {"applicable": True, "gpu": gpu_name, "bandwidth_bytes_per_s": bw,
                           "weight_bytes": weights, "tensor_parallel_size": config.tensor_parallel_size,
                           "bound_tokens_per_s": bound, "measured_tokens_per_s": None, "fraction": None,
                           "measured_from": None}
    if latency_b1 is None:
        out["reason"] = "no batch-1 latency measured"
        return out
    lat = latency_b1["latency_s"]["p50"]
    n_out = latency_b1["mean_output_tokens"]
    ttft = (latency_b1.get("ttft_s") or {}).get("p50")
    if ttft is not None and n_out > 1:
        measured = (n_out - 1) / (lat - ttft)
        out["measured_from"] = "decode only: (output - 1) / (p50 latency - p50 TTFT)"
    else:
        measured = n_out / lat
        out["measured_from"] = "output / p50 latency (prefill included: a lower estimate)"
    out["measured_tokens_per_s"] = measured
    out["fraction"] = measured / bound
    return out


# -- storage -------------------------------------------------------------------------------------------
def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _safe(name: str) -> str:
    """A model name as a folder name (Hub ids contain '/'), as qwenharness.results does."""
    return name.replace("/", "__")


class BenchmarkStore:
    """results/benchmarks/<run_id>/<model>/<preset>/<backend>.json plus results/benchmarks/latest.json,
    an index from "model/preset/backend" to the newest file. Sections merge into the file atomically."""

    def __init__(self, results_dir: str | Path = "results", run_id: str | None = None):
        self.root = Path(results_dir) / "benchmarks"
        self.run_id = run_id_or_new(run_id)

    def path(self, model: str, preset: str, backend: str) -> Path:
        return self.root / self.run_id / _safe(model) / preset / f"{backend}.json"

    def read(self, model: str, preset: str, backend: str) -> dict[str, Any] | None:
        p = self.path(model, preset, backend)
        return json.loads(p.read_text()) if p.is_file() else None

    def update(self, model: str, preset: str, backend: str, sections: dict[str, Any],
               header: dict[str, Any] | None = None) -> Path:
        """Merge `sections` (e.g. {"throughput": {"random": ...}}) one level deep into the file."""
        p = self.path(model, preset, backend)
        data = self.read(model, preset, backend) or {
            "schema_version": SCHEMA_VERSION, "run_id": self.run_id, "model": model, "preset": preset,
            "backend": backend, "created": _now(),
        }
        data.update(header or {})
        for key, value in sections.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key].update(value)
            else:
                data[key] = value
        data["updated"] = _now()
        atomic_write_json(p, data)
        self._index(model, preset, backend, p)
        return p

    def _index(self, model: str, preset: str, backend: str, path: Path) -> None:
        index_path = self.root / "latest.json"
        index = json.loads(index_path.read_text()) if index_path.is_file() else {"entries": {}}
        index["entries"][f"{model}/{preset}/{backend}"] = {
            "run_id": self.run_id, "path": str(path.relative_to(self.root)), "updated": _now()}
        index["updated"] = _now()
        atomic_write_json(index_path, index)


# -- the whole suite over one engine -------------------------------------------------------------------
@dataclass
class BenchOptions:
    input_len: int = 128
    output_len: int = 128
    num_prompts: int = 64
    batch_sizes: tuple[int, ...] = (1, 8)
    latency_input_len: int | None = None  # default: input_len
    latency_output_len: int | None = None  # default: output_len
    warmup: int = 2
    iters: int = 5
    overhead_reps: int = 3
    throughput_rounds: int = 3  # random workload: rounds with fresh prompts, for the spread
    text_dataset: str | None = "gsm8k"
    data_dir: str | None = None
    seed: int = 0


def vocab_for(engine: Engine, config: Any) -> int:
    """Upper bound for random token ids: the tokenizer's size when the engine reports it (the tiny
    tokenizer may be smaller than the embedding), else the model's vocab_size."""
    info = engine.info()
    for key in ("tokenizer_vocab_size", "vocab_size"):
        v = info.extra.get(key) if info.extra else None
        if isinstance(v, int) and v > 1:
            return min(v, config.model.vocab_size)
    return int(config.model.vocab_size)


def memory_summary(info: Any, stored: dict[str, Any]) -> dict[str, Any]:
    """The engine's weight and KV-cache bytes plus the NVML peak / mean over every measured section."""
    watched = [s["memory"] for group in ("throughput", "latency") for s in stored.get(group, {}).values()
               if isinstance(s, dict) and isinstance(s.get("memory"), dict)]
    peaks = [m["peak_bytes"] for m in watched if m.get("peak_bytes") is not None]
    means = [m["mean_bytes"] for m in watched if m.get("mean_bytes") is not None]
    utils = [m["gpu_util_mean"] for m in watched if m.get("gpu_util_mean") is not None]
    reasons = sorted({m["reason"] for m in watched if m.get("reason")})
    rss = [m["host_rss_peak_bytes"] for m in watched if m.get("host_rss_peak_bytes") is not None]
    return {
        "weight_bytes": info.weight_bytes,
        "kv_cache_bytes": info.kv_cache_bytes,
        "peak_bytes": max(peaks) if peaks else None,
        "mean_bytes": sum(means) / len(means) if means else None,
        "gpu_util_mean": sum(utils) / len(utils) if utils else None,
        "host_rss_peak_bytes": max(rss) if rss else None,
        "reason": None if peaks else ("; ".join(reasons) or "no memory samples"),
    }


def environment() -> dict[str, Any]:
    gpu = detect_gpu()
    return {"host": platform.node(), "python": platform.python_version(),
            "gpu": gpu.name if gpu else None, "gpu_count": gpu.count if gpu else 0}


def record_header(store: BenchmarkStore, engine: Engine, config: Any, backend: str,
                  opts: BenchOptions | dict[str, Any]) -> dict[str, Any]:
    """Store what the figures were measured on (engine info, resolved config, machine, options);
    returns the environment."""
    env = environment()
    options = dataclasses.asdict(opts) if isinstance(opts, BenchOptions) else dict(opts)
    store.update(config.model.name, config.preset, backend, {},
                 {"engine": engine.info().to_dict(), "config": config.to_dict(), "environment": env,
                  "options": options})
    return env


def refresh_memory(store: BenchmarkStore, engine: Engine, model: str, preset: str, backend: str) -> dict[str, Any]:
    """Recompute the stored `memory` summary from every section measured so far."""
    memory = memory_summary(engine.info(), store.read(model, preset, backend) or {})
    store.update(model, preset, backend, {"memory": memory})
    return memory


def run_suite(engine: Engine, config: Any, backend: str, opts: BenchOptions, store: BenchmarkStore,
              log: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    """Throughput (random and text workloads), latency per batch size, overhead and the physical
    bound for one opened engine; every section is stored as soon as it is measured."""
    model, preset = config.model.name, config.preset
    env = record_header(store, engine, config, backend, opts)
    vocab = vocab_for(engine, config)

    rand = random_workload(opts.num_prompts, opts.input_len, opts.output_len, vocab, opts.seed)
    warm = random_workload(min(opts.num_prompts, 4), opts.input_len, opts.output_len, vocab, opts.seed + 1)
    _check(engine.generate(list(warm.requests)), len(warm.requests), "throughput warm-up")
    more = [random_workload(opts.num_prompts, opts.input_len, opts.output_len, vocab, opts.seed + 101 * (r + 1))
            for r in range(max(0, opts.throughput_rounds - 1))]
    tp = measure_throughput(engine, rand, more)
    store.update(model, preset, backend, {"throughput": {"random": tp}})
    log(f"{model}/{preset}/{backend} random: {tp['output_tokens_per_s']:.1f} output tok/s")

    if opts.text_dataset and config.load_format != "dummy":
        try:
            text = text_workload(opts.text_dataset, opts.num_prompts, opts.output_len, opts.seed, opts.data_dir)
        except HarnessError as e:
            result: dict[str, Any] = {"applicable": False, "reason": str(e)}
        else:
            result = measure_throughput(engine, text)
            log(f"{model}/{preset}/{backend} {opts.text_dataset}: {result['output_tokens_per_s']:.1f} output tok/s")
        store.update(model, preset, backend, {"throughput": {opts.text_dataset: result}})
    elif opts.text_dataset:
        store.update(model, preset, backend, {"throughput": {opts.text_dataset: {
            "applicable": False, "reason": "dummy weights run with a placeholder tokenizer: no real text"}}})

    lat_in = opts.latency_input_len or opts.input_len
    lat_out = opts.latency_output_len or opts.output_len
    latency = {}
    for bs in opts.batch_sizes:
        lat = measure_latency(engine, batch_size=bs, input_len=lat_in, output_len=lat_out, vocab_size=vocab,
                              warmup=opts.warmup, iters=opts.iters, seed=opts.seed)
        latency[f"batch_{bs}"] = lat
        store.update(model, preset, backend, {"latency": {f"batch_{bs}": lat}})
        log(f"{model}/{preset}/{backend} batch {bs}: p50 {lat['latency_s']['p50'] * 1000:.1f} ms")

    overhead = measure_overhead(engine, rand, opts.overhead_reps)
    bound = physical_bound(config, latency.get("batch_1"), env["gpu"])
    stored = store.read(model, preset, backend) or {}
    memory = memory_summary(engine.info(), stored)
    path = store.update(model, preset, backend, {"overhead": overhead, "physical_bound": bound,
                                                 "memory": memory})
    if overhead["applicable"]:
        log(f"{model}/{preset}/{backend} overhead ratio bare/harness = {overhead['ratio']:.3f} "
            f"(goal >= {OVERHEAD_GOAL})")
    return json.loads(path.read_text())
