"""Milestone 2, model coverage: one model x preset x backend is resolved, loaded, run and closed.

`run_coverage()` measures, for a fixed prompt set (8 prompts x 64 tokens, greedy):
load time, output tokens/s, peak memory (NVML per card on a GPU, host RSS of this process and its
engine workers on the CPU) against the preset's planned budget, and memory after `close()` against
the baseline taken before loading. Every run, successful or not, becomes one entry of
`<results>/evaluations/model_coverage/<run_id>.json` and of `latest_summary.json` there; the gates
in tests/coverage assert on those entries, with thresholds from qwenharness/config/gates.toml.
"""

from __future__ import annotations

import json
import os
import platform
import time
import traceback
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from .engines.base import GenerationRequest, SamplingParams
from .engines.pool import EnginePool
from .errors import HarnessError
from .gpu import MemorySampler, host_rss_bytes, list_gpus, memory_used_bytes, visible_indices
from .presets import ResolvedConfig
from .results import atomic_write_json, file_lock, run_id_or_new

COVERAGE_PROMPTS: tuple[str, ...] = (
    "Explain in two sentences why the sky is blue.",
    "Write a short Python function that returns the n-th Fibonacci number.",
    "What is 17 multiplied by 23? Show your working.",
    "Summarise the plot of Romeo and Juliet in one paragraph.",
    "List three differences between a list and a tuple in Python.",
    "Translate 'Good morning, how are you?' into French and German.",
    "Give a haiku about autumn leaves.",
    "Why does ice float on water? Answer briefly.",
)
MAX_TOKENS = 64
TIMED_REPEATS = 2
DUMMY_PROMPT_TOKENS = 32
SUBDIR = Path("evaluations") / "model_coverage"
WORKER_EXIT_GRACE_S = 15.0


@dataclass
class CoverageResult:
    model: str
    preset: str
    backend: str
    run_id: str
    load_format: str
    device: str | None = None  # "cuda" | "cpu" (None when the config did not resolve)
    ok: bool = False
    stage: str = "config"  # the stage reached: config, load, generate, close, done
    error: str | None = None
    oom: bool = False
    timestamp: float = field(default_factory=time.time)
    config_key: str | None = None
    load_time_s: float | None = None
    warmup_time_s: float | None = None
    generation_time_s: float | None = None  # the fastest of the timed repeats (tokens/s uses it)
    generation_times_s: list[float] = field(default_factory=list)  # every timed repeat
    prompts: int = 0
    prompt_tokens: int = 0
    output_tokens: int = 0
    output_tokens_per_prompt: list[int] = field(default_factory=list)
    empty_outputs: int = 0
    finish_reasons: list[str] = field(default_factory=list)
    output_tokens_per_s: float | None = None
    memory_source: str | None = None  # "nvml" (GPU, per card) | "host_rss" (CPU: process + workers)
    planned_memory_bytes: int | None = None  # the preset's budget (per card on a GPU)
    baseline_memory_bytes: int | None = None  # before loading
    peak_memory_bytes: int | None = None  # during load and generation
    post_close_memory_bytes: int | None = None  # after close()
    host_rss_baseline_bytes: int | None = None
    host_rss_peak_bytes: int | None = None
    host_rss_post_close_bytes: int | None = None
    engine_released: bool | None = None  # the engine object was garbage-collected after close()
    worker_pids: list[int] = field(default_factory=list)  # child processes the engine started
    workers_alive_after_close: list[int] = field(default_factory=list)
    gpu_utilization_mean_pct: float | None = None  # during the timed generation only (NVML)
    gpu_utilization_peak_pct: float | None = None
    sampler: dict[str, Any] | None = None
    engine_info: dict[str, Any] | None = None
    config: dict[str, Any] | None = None

    @property
    def key(self) -> str:
        return entry_key(self.model, self.preset, self.backend, self.load_format)

    @property
    def peak_over_baseline_bytes(self) -> int | None:
        if self.peak_memory_bytes is None or self.baseline_memory_bytes is None:
            return None
        return self.peak_memory_bytes - self.baseline_memory_bytes

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["key"] = self.key
        return d


def entry_key(model: str, preset: str, backend: str, load_format: str = "auto") -> str:
    return f"{model}|{preset}|{backend}|{load_format}"


def coverage_requests(config: ResolvedConfig, *, max_tokens: int = MAX_TOKENS,
                      prompts: tuple[str, ...] = COVERAGE_PROMPTS) -> list[GenerationRequest]:
    """The fixed prompt set, greedy, `max_tokens` each. Chat messages with real weights; token ids with dummy weights,
    whose WordLevel tokenizer has no words (ids are drawn deterministically from the vocabulary)."""
    # ignore_eos: every prompt yields exactly max_tokens, so tokens/s compare across models and runs
    sampling = SamplingParams(temperature=0.0, max_tokens=max_tokens, seed=config.seed, ignore_eos=True)
    if config.load_format == "dummy":
        vocab = config.model.vocab_size - 1  # the last id is the dummy tokenizer's EOS
        return [GenerationRequest(prompt_token_ids=tuple((7919 * (i + 1) + 104729 * j) % vocab + 1
                                                         for j in range(DUMMY_PROMPT_TOKENS)),
                                  sampling=sampling) for i in range(len(prompts))]
    return [GenerationRequest(messages=({"role": "user", "content": p},), sampling=sampling,
                              enable_thinking=False) for p in prompts]


def is_oom(exc: BaseException) -> bool:
    text = f"{type(exc).__name__}: {exc}".lower()
    return isinstance(exc, MemoryError) or "outofmemory" in text or "out of memory" in text


def _gpu_used_per_card() -> int | None:
    """Memory used on the busiest visible card (NVML), or None without a GPU."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:
        return None
    try:
        values = [memory_used_bytes(i) for i in visible_indices(pynvml)]
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass
    known = [v for v in values if v is not None]
    return max(known) if known else None


def _init_cuda_context() -> None:
    """Create this process's CUDA context before the baseline is taken.

    The transformers engine runs in the test process, whose CUDA context (~0.5 GiB) lives until the
    process exits; it is a fixed cost of the process, not memory the engine failed to free. vLLM runs
    its model in worker processes, so for it the baseline is taken without touching CUDA here.
    """
    try:
        import torch
    except ImportError:
        return
    if torch.cuda.is_available():
        torch.zeros(1, device="cuda")
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


# Helpers Python's multiprocessing starts once and keeps for the life of the process: not engine workers.
# Process-lifetime helpers that outlive an engine by design: multiprocessing's, and the harness's own
# reaper (qwenharness.lifetime.track_children), which lives as long as the session.
_PROCESS_LIFETIME_HELPERS = ("multiprocessing.resource_tracker", "multiprocessing.forkserver",
                             "qwenharness.lifetime import reaper_main")


def _children() -> set[int]:
    """Descendant processes of this one, without multiprocessing's process-lifetime helpers."""
    import psutil

    out = set()
    for p in psutil.Process().children(recursive=True):
        try:
            cmdline = " ".join(p.cmdline())
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if not any(h in cmdline for h in _PROCESS_LIFETIME_HELPERS):
            out.add(p.pid)
    return out


def _alive(pids: list[int]) -> list[int]:
    import psutil

    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.NoSuchProcess:
            continue
    return out


def _wait_gone(pids: list[int], grace_s: float) -> list[int]:
    deadline = time.monotonic() + grace_s
    alive = _alive(pids)
    while alive and time.monotonic() < deadline:
        time.sleep(0.25)
        alive = _alive(alive)
    return alive


def _describe(exc: BaseException) -> str:
    if isinstance(exc, HarnessError):
        return str(exc)
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" at {Path(last[0].filename).name}:{last[0].lineno}" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"


def run_coverage(pool: EnginePool, model: str, preset: str, backend: str, *, run_id: str,
                 max_tokens: int = MAX_TOKENS, prompts: tuple[str, ...] = COVERAGE_PROMPTS,
                 repeats: int = TIMED_REPEATS, **overrides: Any) -> CoverageResult:
    """Resolve, load (through the pool), generate under a MemorySampler, close; never raises for an
    engine failure: the error (and whether it was out-of-memory) is recorded in the result.

    After one untimed warm-up pass over the same batch the prompt set is generated `repeats` times; tokens/s uses the
    fastest repeat (as `timeit` does), so a neighbour's burst on a shared host does not decide the gate.
    Every repeat's time is kept in `generation_times_s`."""
    result = CoverageResult(model=model, preset=preset, backend=backend, run_id=run_id,
                            load_format=overrides.get("load_format", pool.load_format))
    try:
        config = pool.resolve(model, preset, **overrides)
    except Exception as exc:
        result.error = _describe(exc)
        return result
    result.device, result.config_key, result.config = config.device, config.key, config.to_dict()
    result.planned_memory_bytes = config.memory.budget_bytes
    on_gpu = config.device == "cuda"
    result.memory_source = "nvml" if on_gpu else "host_rss"

    pool.close()  # nothing else may sit in memory while the baseline is taken
    if on_gpu and backend == "hf":
        _init_cuda_context()
    before_children = _children()
    result.host_rss_baseline_bytes = host_rss_bytes()
    result.baseline_memory_bytes = _gpu_used_per_card() if on_gpu else result.host_rss_baseline_bytes
    requests = coverage_requests(config, max_tokens=max_tokens, prompts=prompts)
    result.prompts = len(requests)

    sampler = MemorySampler()
    engine: Any = None
    try:
        with sampler:
            result.stage = "load"
            engine = pool.get(model, preset, backend, **overrides)
            result.load_time_s = pool.load_times[pool.make_key(model, preset, backend, **overrides)]
            result.worker_pids = sorted(_children() - before_children)
            try:
                result.engine_info = engine.info().to_dict()
            except Exception as exc:  # info() is diagnostic; do not fail the run on it
                result.engine_info = {"error": _describe(exc)}
            result.stage = "generate"
            t0 = time.perf_counter()
            engine.generate(requests)  # warm-up with the timed batch's shapes (first-call set-up), not timed
            result.warmup_time_s = time.perf_counter() - t0
            with MemorySampler(host=False) as gen_sampler:  # utilisation of the timed batches only
                for _ in range(max(1, repeats)):
                    t0 = time.perf_counter()
                    outputs = engine.generate(requests)
                    result.generation_times_s.append(time.perf_counter() - t0)
            result.generation_time_s = min(result.generation_times_s)
            result.gpu_utilization_mean_pct = gen_sampler.record.mean_utilization_pct
            result.gpu_utilization_peak_pct = gen_sampler.record.peak_utilization_pct
            engine = None  # the pool must hold the only reference when it closes
        if len(outputs) != len(requests):
            raise RuntimeError(f"engine returned {len(outputs)} generations for {len(requests)} requests")
        result.output_tokens_per_prompt = [g.output_tokens for g in outputs]
        result.finish_reasons = [g.finish_reason for g in outputs]
        result.prompt_tokens = sum(g.prompt_tokens for g in outputs)
        result.output_tokens = sum(result.output_tokens_per_prompt)
        result.empty_outputs = sum(1 for g in outputs if not g.text.strip() or g.output_tokens <= 0)
        errors = [g.error for g in outputs if g.error]
        if errors:
            raise RuntimeError(f"{len(errors)} of {len(outputs)} generations failed, first: {errors[0]}")
        if result.generation_time_s and result.generation_time_s > 0:
            result.output_tokens_per_s = result.output_tokens / result.generation_time_s
    except BaseException as exc:  # noqa: BLE001 - recorded, and re-raised for KeyboardInterrupt
        result.error = _describe(exc)
        result.oom = is_oom(exc)
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            pool.close()
            raise
    finally:
        engine = None
        rec = sampler.record
        result.sampler = rec.to_dict()
        result.host_rss_peak_bytes = rec.host_rss_peak_bytes
        if on_gpu:
            result.peak_memory_bytes = rec.peak_memory_bytes
        else:
            result.peak_memory_bytes = rec.host_rss_peak_bytes

    failed_before_close = result.error is not None
    result.stage = "close" if not failed_before_close else result.stage
    try:
        pool.close()
    except Exception as exc:
        result.error = result.error or f"close() failed: {_describe(exc)}"
    result.engine_released = pool.engine_released()
    result.workers_alive_after_close = _wait_gone(result.worker_pids, WORKER_EXIT_GRACE_S)
    result.host_rss_post_close_bytes = host_rss_bytes()
    result.post_close_memory_bytes = _gpu_used_per_card() if on_gpu else result.host_rss_post_close_bytes
    if result.error is None:
        result.stage, result.ok = "done", True
    return result


# -- results on disk ---------------------------------------------------------------------------------
def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as exc:
        raise HarnessError(f"{path} is not valid JSON ({exc})",
                           "delete it; the next coverage run writes it afresh") from None
    return data if isinstance(data, dict) else None


def host_facts() -> dict[str, Any]:
    import psutil

    return {
        "hostname": platform.node(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "host_memory_bytes": int(psutil.virtual_memory().total),
        "gpus": [g.to_dict() for g in list_gpus()],
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }


class CoverageStore:
    """`<results>/evaluations/model_coverage/<run_id>.json` and `latest_summary.json`.

    One entry per configuration key (model|preset|backend|load_format): a rerun replaces it. Writes
    are atomic (temp file + os.replace) and serialised with a lock file, so pytest-xdist workers can
    share a run id.
    """

    def __init__(self, results_dir: str | Path, run_id: str) -> None:
        run_id = run_id_or_new(run_id or "")  # the stores' one rule ("" is refused, like any bad name)
        self.dir = Path(results_dir) / SUBDIR
        self.run_id = run_id
        self.run_file = self.dir / f"{run_id}.json"
        self.summary_file = self.dir / "latest_summary.json"
        self.written: list[str] = []  # keys this process recorded, in order

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with file_lock(self.dir / ".lock"):  # the result store's one locking rule
            yield

    def record(self, result: CoverageResult) -> None:
        entry = result.to_dict()
        now = time.time()
        with self._locked():
            run = _read_json(self.run_file) or {"run_id": self.run_id, "created": now, "entries": []}
            run["entries"] = [e for e in run.get("entries", []) if e.get("key") != result.key] + [entry]
            run["updated"] = now
            run["host"] = host_facts()
            atomic_write_json(self.run_file, run)
            summary = _read_json(self.summary_file) or {"configs": {}}
            summary["configs"][result.key] = summary_entry(result)
            summary["updated"], summary["latest_run_id"] = now, self.run_id
            atomic_write_json(self.summary_file, summary)
        self.written.append(result.key)

    def load_run(self) -> dict[str, Any]:
        data = _read_json(self.run_file)
        if data is None:
            raise HarnessError(f"no coverage results at {self.run_file}", "run the milestone-2 tests first")
        return data


def summary_entry(result: CoverageResult) -> dict[str, Any]:
    keys = ("model", "preset", "backend", "load_format", "device", "run_id", "ok", "error", "oom",
            "load_time_s", "output_tokens_per_s", "output_tokens", "generation_time_s", "memory_source",
            "peak_memory_bytes", "planned_memory_bytes", "post_close_memory_bytes", "baseline_memory_bytes",
            "host_rss_peak_bytes", "timestamp")
    d = result.to_dict()
    out = {k: d[k] for k in keys}
    gpus = (result.sampler or {}).get("devices") or []
    out["gpu_name"] = gpus[0]["name"] if gpus else None
    return out
