"""Presets (performance / balanced / memory_optimized) and their validated resolution per model.

`get_model_config(model, preset, gpu)` returns a ResolvedConfig: engine settings plus a memory plan
computed from the architecture. It raises ConfigError, naming the fix, for a configuration that cannot
run: weights and one full-length sequence of KV cache do not fit the planned memory, a context longer
than the model's, or more tensor-parallel ranks than GPUs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from .errors import ConfigError, UnknownNameError
from .hardware import GiB, GPUSpec, cpu_dtype, detect_gpu, host_memory_bytes
from .models import DTYPE_BYTES, ModelSpec, get_model_spec

# The seed's limit: balanced and memory_optimized must plan at most this fraction of GPU memory.
CONSERVATIVE_MEMORY_LIMIT = 0.80


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    gpu_memory_utilization: float
    max_model_len: int  # capped at the model's context length
    max_num_seqs: int
    max_num_batched_tokens: int
    cuda_graphs: bool
    kv_cache_dtype: str  # "auto" (= model dtype) or "fp8"
    enable_prefix_caching: bool


_PRESETS: dict[str, Preset] = {
    "performance": Preset(
        "performance", "Highest throughput: most memory for KV cache, large batches, CUDA graphs.",
        gpu_memory_utilization=0.90, max_model_len=8192, max_num_seqs=256,
        max_num_batched_tokens=16384, cuda_graphs=True, kv_cache_dtype="auto", enable_prefix_caching=True,
    ),
    "balanced": Preset(
        "balanced", "Good throughput within 80% of GPU memory; the default.",
        gpu_memory_utilization=0.80, max_model_len=8192, max_num_seqs=128,
        max_num_batched_tokens=8192, cuda_graphs=True, kv_cache_dtype="auto", enable_prefix_caching=True,
    ),
    "memory_optimized": Preset(
        "memory_optimized", "Smallest footprint: 60% of GPU memory, fp8 KV cache, small batches.",
        # CUDA graphs stay on: they cost under 1 GiB, while eager decoding measured 3-4x slower per
        # step on an H100 (docs/benchmarks.md, "Why memory_optimized was slow").
        gpu_memory_utilization=0.60, max_model_len=4096, max_num_seqs=32,
        max_num_batched_tokens=4096, cuda_graphs=True, kv_cache_dtype="fp8", enable_prefix_caching=False,
    ),
}

DEFAULT_PRESET = "balanced"
DEFAULT_SEED = 1234
CUDA_GRAPH_BYTES = int(0.75 * GiB)  # measured order of vLLM's graph pool for 7-14B models
RUNTIME_BYTES = int(1.0 * GiB)  # CUDA context, NCCL and allocator slack
CPU_KV_CACHE_BYTES = 1 * GiB  # vLLM-CPU's KV space (VLLM_CPU_KVCACHE_SPACE, in GiB)
# vLLM-CPU runs an EngineCore and a worker process, each importing torch and vLLM, with buffers
# sized by max_num_batched_tokens. Measured host RSS growth on `tiny` (no weights to speak of),
# vllm-cpu 0.32: 2.5 GiB (4,096 and 8,192 batched tokens), 3.2 to 3.6 GiB (16,384); the gate's
# tolerance (gates.toml, cpu_rss_tolerance_bytes) covers the spread.
CPU_RUNTIME_BYTES = 2 * GiB
KV_CACHE_DTYPES = ("auto", "fp8", "fp8_e4m3", "fp8_e5m2")  # the memory plan knows these sizes
# How vLLM prepares the model at start (ResolvedConfig.compilation):
#   full    torch.compile (Dynamo + Inductor) and CUDA graphs: vLLM's default, the fastest steps
#   graphs  CUDA graphs of decode steps, no torch.compile: the start skips compilation
#   eager   neither (vLLM's enforce_eager); the only mode of a CPU
# The H200 measured 20-47 s of compilation per engine start (docs/benchmarks.md, 2026-12-01), and
# eager decoding 3-4x slower per step than with graphs (H100, 2026-11-27).
COMPILATION_MODES = ("full", "graphs", "eager")


def get_available_presets() -> list[str]:
    return list(_PRESETS)


def get_preset(name: str) -> Preset:
    try:
        return _PRESETS[name]
    except KeyError:
        from .console import did_you_mean

        raise UnknownNameError(f"unknown preset '{name}'",
                               did_you_mean(name, _PRESETS, f"choose one of {', '.join(_PRESETS)}")) from None


@dataclass(frozen=True)
class MemoryPlan:
    device_memory_bytes: int  # per card (GPU) or host RAM (CPU)
    budget_bytes: int  # what the engine may take per card: utilisation x memory
    weight_bytes: int  # per card, after tensor-parallel sharding
    kv_bytes_per_token: int  # per card
    activation_bytes: int
    overhead_bytes: int  # CUDA graphs and runtime
    kv_cache_bytes: int  # what is left for KV cache in the budget
    kv_capacity_tokens: int
    max_concurrent_full_sequences: int
    planned_fraction: float  # budget / device memory

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ResolvedConfig:
    model: ModelSpec
    preset: str
    device: str  # "cuda" | "cpu"
    gpu: GPUSpec | None
    dtype: str
    max_model_len: int
    gpu_memory_utilization: float
    max_num_seqs: int
    max_num_batched_tokens: int
    compilation: str  # one of COMPILATION_MODES
    kv_cache_dtype: str
    tensor_parallel_size: int
    seed: int
    enable_prefix_caching: bool
    load_format: str  # "auto" (real weights) | "dummy" (random weights, real architecture)
    memory: MemoryPlan | None  # None: the model runs elsewhere (a server), its memory is the server's
    # further vllm.LLM keyword arguments (--engine-args), validated against vLLM's EngineArgs
    engine_args: tuple[tuple[str, Any], ...] = ()

    @property
    def key(self) -> str:
        """A stable identifier of everything that changes the model's outputs."""
        key = (f"{self.model.name}|{self.preset}|{self.dtype}|{self.max_model_len}|{self.kv_cache_dtype}"
               f"|tp{self.tensor_parallel_size}|{self.load_format}|seed{self.seed}")
        if self.engine_args:
            key += "|" + ",".join(f"{k}={v!r}" for k, v in self.engine_args)
        return key

    @property
    def enforce_eager(self) -> bool:
        """vLLM's enforce_eager: neither torch.compile nor CUDA graphs."""
        return self.compilation == "eager"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["enforce_eager"] = self.enforce_eager
        d["model"] = self.model.to_dict()
        d["gpu"] = self.gpu.to_dict() if self.gpu else None
        d["engine_args"] = dict(self.engine_args)
        return d

    def with_overrides(self, **changes: Any) -> "ResolvedConfig":
        return replace(self, **changes)


def get_model_config(
    model: str | ModelSpec,
    preset: str = DEFAULT_PRESET,
    gpu: GPUSpec | None | str = "auto",
    *,
    tensor_parallel_size: int = 1,
    max_model_len: int | None = None,
    load_format: str = "auto",
    seed: int = DEFAULT_SEED,
    dtype: str | None = None,
    gpu_memory_utilization: float | None = None,
    max_num_seqs: int | None = None,
    kv_cache_dtype: str | None = None,
    engine_args: dict[str, Any] | None = None,
    plan_memory: bool = True,
    compilation: str | None = None,
) -> ResolvedConfig:
    """Resolve and validate one model x preset for a GPU (given, or detected when "auto"; None = CPU).

    The engine settings given (the CLI's --max-model-len, --tensor-parallel-size,
    --gpu-memory-utilization, --max-num-seqs, --dtype, --kv-cache-dtype) replace the preset's and go
    into the memory plan; `engine_args` are further vllm.LLM arguments (checked by
    qwenharness.engine_args). `plan_memory=False`: the model runs on a server, whose memory is not ours.
    `compilation` (COMPILATION_MODES; None: "full" where the preset keeps CUDA graphs, else "eager"):
    on a CPU every mode resolves to "eager", since vLLM-CPU has neither CUDA graphs nor their compilation.
    """
    spec = model if isinstance(model, ModelSpec) else get_model_spec(model)
    p = get_preset(preset)
    target = detect_gpu() if gpu == "auto" else gpu
    assert target is None or isinstance(target, GPUSpec)
    dtype = dtype or (spec.default_dtype if target is not None else cpu_dtype(spec.default_dtype))
    if dtype not in DTYPE_BYTES:
        raise ConfigError(f"unknown dtype '{dtype}'", "use --dtype bfloat16, float16 or float32")
    if gpu_memory_utilization is not None and not 0 < gpu_memory_utilization <= 1:
        raise ConfigError(f"gpu_memory_utilization must be in (0, 1], got {gpu_memory_utilization}",
                          "use e.g. --gpu-memory-utilization 0.8")
    if max_num_seqs is not None and max_num_seqs < 1:
        raise ConfigError(f"max_num_seqs must be at least 1, got {max_num_seqs}", "use e.g. --max-num-seqs 32")
    if kv_cache_dtype is not None and kv_cache_dtype not in KV_CACHE_DTYPES:
        from .console import did_you_mean

        raise ConfigError(f"unknown kv_cache_dtype '{kv_cache_dtype}'",
                          did_you_mean(kv_cache_dtype, KV_CACHE_DTYPES,
                                       f"use --kv-cache-dtype {' or '.join(KV_CACHE_DTYPES)}"))
    p = replace(p, **{k: v for k, v in (("gpu_memory_utilization", gpu_memory_utilization),
                                        ("max_num_seqs", max_num_seqs), ("kv_cache_dtype", kv_cache_dtype))
                      if v is not None})

    if compilation is not None and compilation not in COMPILATION_MODES:
        from .console import did_you_mean

        raise ConfigError(f"unknown compilation mode '{compilation}'",
                          did_you_mean(compilation, COMPILATION_MODES, "use --compilation full, graphs or eager"))
    if max_model_len is not None and max_model_len > spec.context_length:
        raise ConfigError(
            f"max_model_len {max_model_len} exceeds {spec.name}'s context length {spec.context_length}",
            f"use --max-model-len {spec.context_length} or less",
        )
    length = max_model_len or min(p.max_model_len, spec.context_length)
    if tensor_parallel_size < 1:
        raise ConfigError(f"tensor_parallel_size must be at least 1, got {tensor_parallel_size}",
                          "use --tensor-parallel-size 1")
    if target is not None and tensor_parallel_size > target.count:
        raise ConfigError(
            f"tensor_parallel_size {tensor_parallel_size} needs {tensor_parallel_size} GPUs but "
            f"{target.count} {'is' if target.count == 1 else 'are'} visible",
            f"use --tensor-parallel-size {target.count} or make more GPUs visible (CUDA_VISIBLE_DEVICES)",
        )
    if spec.num_kv_heads % tensor_parallel_size and tensor_parallel_size % spec.num_kv_heads:
        raise ConfigError(f"{spec.name} has {spec.num_kv_heads} KV heads, not divisible by TP {tensor_parallel_size}",
                          "choose a tensor-parallel size that divides the KV head count")

    on_gpu = target is not None
    # vLLM-CPU has no fp8 KV cache worth using and no CUDA graphs; keep the model's dtype there
    # (unless --kv-cache-dtype asks otherwise).
    kv_dtype = p.kv_cache_dtype if on_gpu or kv_cache_dtype is not None else "auto"
    kv_dtype_name = dtype if kv_dtype == "auto" else kv_dtype
    memory = (_plan_memory(spec, p, target, dtype, kv_dtype_name, length, tensor_parallel_size)
              if plan_memory else None)
    return ResolvedConfig(
        model=spec, preset=p.name, device="cuda" if on_gpu else "cpu", gpu=target, dtype=dtype,
        max_model_len=length,
        gpu_memory_utilization=p.gpu_memory_utilization if on_gpu or gpu_memory_utilization else 0.5,
        max_num_seqs=p.max_num_seqs if on_gpu or max_num_seqs else min(p.max_num_seqs, 64),
        max_num_batched_tokens=max(p.max_num_batched_tokens, length),
        compilation=(compilation or ("full" if p.cuda_graphs else "eager")) if on_gpu else "eager",
        kv_cache_dtype=kv_dtype, tensor_parallel_size=tensor_parallel_size, seed=seed,
        enable_prefix_caching=p.enable_prefix_caching, load_format=load_format, memory=memory,
        engine_args=tuple(sorted((engine_args or {}).items())),
    )


def _plan_memory(spec: ModelSpec, p: Preset, gpu: GPUSpec | None, dtype: str, kv_dtype: str,
                 length: int, tp: int) -> MemoryPlan:
    weights = spec.weight_bytes(dtype) // tp
    kv_per_token = spec.kv_bytes_per_token(kv_dtype) // tp
    # Peak activations of one scheduler step: MLP and attention intermediates for the batched
    # tokens, plus float32 logits for every running sequence.
    act = (p.max_num_batched_tokens * (2 * spec.intermediate_size + 4 * spec.hidden_size) * DTYPE_BYTES[dtype]) // tp
    act += p.max_num_seqs * spec.vocab_size * 4
    if gpu is not None:
        device_mem = gpu.memory_bytes
        budget = int(p.gpu_memory_utilization * device_mem)
        overhead = RUNTIME_BYTES + (CUDA_GRAPH_BYTES if p.cuda_graphs else 0)
        where = f"{gpu.name} ({device_mem / GiB:.0f} GiB)"
    else:
        device_mem = host_memory_bytes()
        kv_space = CPU_KV_CACHE_BYTES
        # Loading keeps a second copy of the weights resident at the peak (the file's pages beside
        # the repacked tensors): measured on qwen2.5_coder_1.5b with vllm-cpu 0.32, RSS grew 9.5 GB
        # against 6.2 GB planned without this term, the excess equal to the 3.55 GB of weights.
        overhead = CPU_RUNTIME_BYTES + weights
        budget = weights + act + overhead + kv_space
        where = f"this host's memory ({device_mem / GiB:.0f} GiB)"
    kv_bytes = budget - weights - act - overhead
    need = length * kv_per_token
    if kv_bytes < need or (gpu is None and budget > 0.8 * device_mem):
        short = max(need - kv_bytes, 0) + max(budget - int(0.8 * device_mem), 0) * (gpu is None)
        raise ConfigError(
            f"{spec.name} with preset '{p.name}' does not fit {where}: weights {weights / GiB:.1f} GiB + "
            f"one {length}-token sequence of KV cache {need / GiB:.2f} GiB + overhead "
            f"{(act + overhead) / GiB:.1f} GiB exceed the {budget / GiB:.1f} GiB budget by {short / GiB:.2f} GiB",
            ("use --presets memory_optimized, " if p.name != "memory_optimized" else "use ")
            + "a shorter --max-model-len, fewer --max-num-seqs, more GPUs with --tensor-parallel-size, "
            "or a smaller model",
        )
    capacity = kv_bytes // kv_per_token
    return MemoryPlan(
        device_memory_bytes=device_mem, budget_bytes=budget, weight_bytes=weights,
        kv_bytes_per_token=kv_per_token, activation_bytes=act, overhead_bytes=overhead,
        kv_cache_bytes=kv_bytes, kv_capacity_tokens=capacity,
        max_concurrent_full_sequences=capacity // length, planned_fraction=budget / device_mem,
    )
