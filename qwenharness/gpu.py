"""NVML device inventory and a memory/utilisation sampler (nvidia-ml-py).

Everything here degrades instead of failing on a machine without an NVIDIA GPU: `list_gpus()` is
empty, `memory_used_bytes()` is None and `MemorySampler` records `available=False` with the reason,
while still recording the host's resident memory (this process and its children, which is where
vLLM-CPU's workers live) so CPU runs have a memory figure too.

NVML numbers devices physically and ignores CUDA_VISIBLE_DEVICES; `visible_indices()` maps the
variable (indices or GPU-UUIDs) onto NVML indices so the sampler watches the cards this process uses.

One module, just over 400 lines: the inventory, the CUDA_VISIBLE_DEVICES mapping and the sampler
share NVML's start-up and its failure handling.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from dataclasses import asdict, dataclass, field
from types import ModuleType, TracebackType
from typing import Any

DEFAULT_INTERVAL_S = 0.05


def _nvml() -> ModuleType:
    """The pynvml module, initialised. Raises whatever NVML raises when there is no driver."""
    import pynvml

    pynvml.nvmlInit()
    return pynvml


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def nvml_unavailable_reason() -> str | None:
    """None when NVML answers and sees at least one device, else why not (one line)."""
    try:
        nvml = _nvml()
    except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ImportError, ...
        return f"no GPU: NVML is unavailable ({type(exc).__name__}: {exc})"
    try:
        if nvml.nvmlDeviceGetCount() == 0:
            return "no GPU: NVML sees no devices"
        return None
    finally:
        _shutdown(nvml)


def _shutdown(nvml: ModuleType) -> None:
    try:
        nvml.nvmlShutdown()
    except Exception:
        pass


@dataclass(frozen=True)
class GPUDevice:
    index: int  # NVML (physical) index
    name: str
    uuid: str | None
    memory_total_bytes: int
    memory_used_bytes: int
    driver_version: str | None
    cuda_driver_version: str | None  # the CUDA version the driver supports, e.g. "12.4"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _cuda_version(nvml: ModuleType) -> str | None:
    for fn in ("nvmlSystemGetCudaDriverVersion_v2", "nvmlSystemGetCudaDriverVersion"):
        try:
            v = int(getattr(nvml, fn)())
            return f"{v // 1000}.{(v % 1000) // 10}"
        except Exception:
            continue
    return None


def visible_indices(nvml: ModuleType, env: dict[str, str] | None = None) -> list[int]:
    """NVML indices of the devices CUDA_VISIBLE_DEVICES exposes (all devices when unset)."""
    env = os.environ if env is None else env
    count = int(nvml.nvmlDeviceGetCount())
    raw = env.get("CUDA_VISIBLE_DEVICES")
    if raw is None:
        return list(range(count))
    out: list[int] = []
    for entry in (e.strip() for e in raw.split(",")):
        if not entry:
            continue
        if entry.isdigit():
            if int(entry) >= count:
                break  # CUDA stops at the first invalid entry
            out.append(int(entry))
        elif entry.startswith("GPU-"):
            try:
                handle = nvml.nvmlDeviceGetHandleByUUID(entry)
                out.append(int(nvml.nvmlDeviceGetIndex(handle)))
            except Exception:
                break
        else:  # MIG-... or something NVML cannot map to a whole card here
            break
    return out


def list_gpus(visible_only: bool = True) -> list[GPUDevice]:
    """The GPUs NVML sees (those CUDA_VISIBLE_DEVICES exposes, by default); [] without a GPU."""
    try:
        nvml = _nvml()
    except Exception:
        return []
    try:
        indices = visible_indices(nvml) if visible_only else list(range(nvml.nvmlDeviceGetCount()))
        try:
            driver: str | None = _text(nvml.nvmlSystemGetDriverVersion())
        except Exception:
            driver = None
        cuda = _cuda_version(nvml)
        out = []
        for i in indices:
            h = nvml.nvmlDeviceGetHandleByIndex(i)
            mem = nvml.nvmlDeviceGetMemoryInfo(h)
            try:
                uuid: str | None = _text(nvml.nvmlDeviceGetUUID(h))
            except Exception:
                uuid = None
            out.append(GPUDevice(i, _text(nvml.nvmlDeviceGetName(h)), uuid, int(mem.total), int(mem.used),
                                 driver, cuda))
        return out
    finally:
        _shutdown(nvml)


def memory_used_bytes(index: int | None = None) -> int | None:
    """Memory in use on a device (NVML index; default: the first visible one), or None without a GPU.

    This counts every process on the card, as `nvidia-smi` does.
    """
    try:
        nvml = _nvml()
    except Exception:
        return None
    try:
        if index is None:
            indices = visible_indices(nvml)
            if not indices:
                return None
            index = indices[0]
        return int(nvml.nvmlDeviceGetMemoryInfo(nvml.nvmlDeviceGetHandleByIndex(index)).used)
    except Exception:
        return None
    finally:
        _shutdown(nvml)


def host_rss_bytes(include_children: bool = True) -> int:
    """Resident memory of this process plus (by default) all its descendants, e.g. vLLM workers.

    Summing RSS counts pages shared between processes more than once; it is an upper bound.
    """
    import psutil

    proc = psutil.Process()
    total = proc.memory_info().rss
    if include_children:
        for child in proc.children(recursive=True):
            try:
                total += child.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
    return int(total)


@dataclass
class DeviceStats:
    index: int
    name: str
    memory_total_bytes: int
    start_memory_bytes: int
    peak_memory_bytes: int
    mean_memory_bytes: float
    mean_utilization_pct: float | None  # None where the card does not report utilisation (MIG)
    peak_utilization_pct: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SamplerRecord:
    """What a MemorySampler saw. GPU figures are per card; the top-level ones are the busiest card's."""

    available: bool
    reason: str | None  # why GPU figures are missing (available=False)
    interval_s: float
    samples: int = 0
    duration_s: float = 0.0
    devices: list[DeviceStats] = field(default_factory=list)
    peak_memory_bytes: int | None = None
    mean_memory_bytes: float | None = None
    start_memory_bytes: int | None = None
    mean_utilization_pct: float | None = None
    peak_utilization_pct: float | None = None
    host_rss_start_bytes: int | None = None
    host_rss_peak_bytes: int | None = None
    host_samples: int = 0
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize_device(index: int, name: str, total: int, memory: list[int],
                     utilization: list[float]) -> DeviceStats:
    """Statistics of one card's samples (memory in bytes, utilisation in percent)."""
    if not memory:
        raise ValueError(f"no memory samples for device {index}")
    return DeviceStats(
        index=index, name=name, memory_total_bytes=total, start_memory_bytes=memory[0],
        peak_memory_bytes=max(memory), mean_memory_bytes=statistics.fmean(memory),
        mean_utilization_pct=statistics.fmean(utilization) if utilization else None,
        peak_utilization_pct=max(utilization) if utilization else None,
    )


class MemorySampler:
    """Context manager sampling the visible GPUs (and host RSS) on a background thread.

        with MemorySampler() as s:
            engine.generate(requests)
        s.record.peak_memory_bytes  # None on a CPU machine; s.record.reason says why

    One sample is taken on entry and one on exit, so even a block shorter than the interval has two.
    """

    def __init__(self, interval_s: float = DEFAULT_INTERVAL_S, *, host: bool = True) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self.interval_s = interval_s
        self.host = host
        self.record = SamplerRecord(available=False, reason="sampler not started", interval_s=interval_s)
        self._nvml: ModuleType | None = None
        self._handles: list[tuple[int, Any]] = []
        self._memory: dict[int, list[int]] = {}
        self._util: dict[int, list[float]] = {}
        self._util_ok: dict[int, bool] = {}
        self._rss: list[int] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0
        self._lock = threading.Lock()

    # -- lifecycle --------------------------------------------------------------------------------
    def __enter__(self) -> "MemorySampler":
        reason: str | None = None
        try:
            self._nvml = _nvml()
        except Exception as exc:
            reason = f"no GPU: NVML is unavailable ({type(exc).__name__}: {exc})"
        if self._nvml is not None:
            try:
                indices = visible_indices(self._nvml)
                self._handles = [(i, self._nvml.nvmlDeviceGetHandleByIndex(i)) for i in indices]
            except Exception as exc:
                reason = f"no GPU: NVML failed to list devices ({type(exc).__name__}: {exc})"
                self._handles = []
            if not self._handles and reason is None:
                reason = "no GPU: NVML sees no visible devices (check CUDA_VISIBLE_DEVICES)"
            if not self._handles:
                _shutdown(self._nvml)
                self._nvml = None
        self.record = SamplerRecord(available=self._nvml is not None, reason=reason, interval_s=self.interval_s)
        for i, _ in self._handles:
            self._memory[i], self._util[i], self._util_ok[i] = [], [], True
        self._t0 = time.perf_counter()
        self._sample()
        self._thread = threading.Thread(target=self._run, name="qwenharness-memory-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        self._sample()
        self.record.duration_s = time.perf_counter() - self._t0
        self._finish()
        if self._nvml is not None:
            _shutdown(self._nvml)
            self._nvml = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    # -- sampling ---------------------------------------------------------------------------------
    def _sample(self) -> None:
        with self._lock:
            nvml = self._nvml
            if nvml is not None:
                for i, h in self._handles:
                    try:
                        self._memory[i].append(int(nvml.nvmlDeviceGetMemoryInfo(h).used))
                    except Exception as exc:
                        self._error(f"device {i} memory: {type(exc).__name__}: {exc}")
                        continue
                    if self._util_ok[i]:
                        try:
                            self._util[i].append(float(nvml.nvmlDeviceGetUtilizationRates(h).gpu))
                        except Exception:  # NotSupported on MIG slices: stop asking
                            self._util_ok[i] = False
                self.record.samples += 1
            if self.host:
                try:
                    self._rss.append(host_rss_bytes())
                    self.record.host_samples += 1
                except Exception as exc:
                    self._error(f"host RSS: {type(exc).__name__}: {exc}")

    def _error(self, message: str) -> None:
        if message not in self.record.errors and len(self.record.errors) < 20:
            self.record.errors.append(message)

    def _finish(self) -> None:
        r = self.record
        if self._rss:
            r.host_rss_start_bytes, r.host_rss_peak_bytes = self._rss[0], max(self._rss)
        if not r.available or self._nvml is None:
            return
        nvml = self._nvml
        for i, h in self._handles:
            if not self._memory[i]:
                continue
            try:
                name = _text(nvml.nvmlDeviceGetName(h))
                total = int(nvml.nvmlDeviceGetMemoryInfo(h).total)
            except Exception:
                name, total = f"GPU {i}", 0
            r.devices.append(summarize_device(i, name, total, self._memory[i], self._util[i]))
        if not r.devices:
            r.available, r.reason = False, "no GPU: every NVML memory query failed (see errors)"
            return
        busiest = max(r.devices, key=lambda d: d.peak_memory_bytes)
        r.peak_memory_bytes = busiest.peak_memory_bytes
        r.mean_memory_bytes = busiest.mean_memory_bytes
        r.start_memory_bytes = busiest.start_memory_bytes
        utils = [d for d in r.devices if d.mean_utilization_pct is not None]
        if utils:
            r.mean_utilization_pct = statistics.fmean(d.mean_utilization_pct for d in utils)  # type: ignore[misc]
            r.peak_utilization_pct = max(d.peak_utilization_pct for d in utils)  # type: ignore[type-var]


# -- pytest-xdist: one worker per GPU -------------------------------------------------------------
def xdist_worker_number(env: dict[str, str] | None = None) -> int | None:
    """N of the pytest-xdist worker id `gwN`, or None outside xdist."""
    env = os.environ if env is None else env
    worker = env.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw") and worker[2:].isdigit():
        return int(worker[2:])
    return None


def pin_xdist_worker(env: dict[str, str] | None = None, gpu_count: int | None = None) -> str | None:
    """Pin this xdist worker (gwN) to GPU N by setting CUDA_VISIBLE_DEVICES; returns what was set.

    Must run before anything initialises CUDA (the pytest plugin calls it first in
    pytest_configure). Does nothing outside xdist, on a machine without GPUs, or when
    QWENHARNESS_XDIST_PIN=0. When CUDA_VISIBLE_DEVICES already lists cards, worker N takes the
    N-th of those. More workers than GPUs is an error that names the fix.
    """
    from .errors import ConfigError

    env = os.environ if env is None else env  # type: ignore[assignment]
    n = xdist_worker_number(env)
    if n is None or env.get("QWENHARNESS_XDIST_PIN", "1") == "0":
        return None
    listed = [v.strip() for v in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    if "QWENHARNESS_XDIST_PINNED_FROM" in env:  # already pinned in this process (re-entry)
        listed = [v.strip() for v in env["QWENHARNESS_XDIST_PINNED_FROM"].split(",") if v.strip()]
    if "CUDA_VISIBLE_DEVICES" in env and not listed:
        return None  # the user hid every GPU: workers share the CPU
    if listed:
        choices = listed
    else:
        if gpu_count is None:
            gpus = list_gpus(visible_only=False)
            gpu_count = len(gpus)
        choices = [str(i) for i in range(gpu_count)]
    if not choices:
        return None  # CPU machine: workers share the CPU
    if n >= len(choices):
        raise ConfigError(
            f"pytest-xdist worker gw{n} has no GPU of its own: {len(choices)} GPU(s) visible",
            f"run with -n {len(choices)} (one worker per GPU), or set QWENHARNESS_XDIST_PIN=0 to share cards",
        )
    env["QWENHARNESS_XDIST_PINNED_FROM"] = ",".join(choices)
    env["CUDA_VISIBLE_DEVICES"] = choices[n]
    return choices[n]
