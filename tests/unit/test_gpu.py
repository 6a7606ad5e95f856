"""gpu.py: the degraded record without a GPU, and the sampler's arithmetic under a fake pynvml."""

from __future__ import annotations

import sys
import threading
import time
import types
from typing import Any

import pytest

from qwenharness import gpu
from qwenharness.errors import ConfigError


class FakeNVML(types.ModuleType):
    """Two cards; card 1's memory walks through `series` (repeating the last value), card 0 is idle."""

    class NVMLError(Exception):
        pass

    def __init__(self, series: list[int], util: list[float], total: int = 80 * 2**30) -> None:
        super().__init__("pynvml")
        self.series, self.util, self.total = series, util, total
        self.calls = {0: 0, 1: 0}
        self.returned: dict[int, list[int]] = {0: [], 1: []}
        self.utils_returned: dict[int, list[float]] = {0: [], 1: []}
        self.inits = 0
        self.lock = threading.Lock()

    def nvmlInit(self) -> None:
        self.inits += 1

    def nvmlShutdown(self) -> None:
        self.inits -= 1

    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetName(self, h: int) -> str:
        return f"Fake H100 {h}"

    def nvmlDeviceGetUUID(self, h: int) -> str:
        return f"GPU-fake-{h}"

    def nvmlSystemGetDriverVersion(self) -> bytes:
        return b"550.54.15"

    def nvmlSystemGetCudaDriverVersion_v2(self) -> int:
        return 12040

    def nvmlDeviceGetMemoryInfo(self, h: int) -> Any:
        with self.lock:
            if h == 0:
                used = 1000
            else:
                used = self.series[min(self.calls[h], len(self.series) - 1)]
            self.calls[h] += 1
            self.returned[h].append(used)
        return types.SimpleNamespace(total=self.total, used=used, free=self.total - used)

    def nvmlDeviceGetUtilizationRates(self, h: int) -> Any:
        with self.lock:
            value = 0.0 if h == 0 else self.util[min(len(self.utils_returned[h]), len(self.util) - 1)]
            self.utils_returned[h].append(value)
        return types.SimpleNamespace(gpu=value, memory=0)


@pytest.fixture
def no_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = types.ModuleType("pynvml")

    def fail() -> None:
        raise RuntimeError("NVML Shared Library Not Found")

    broken.nvmlInit = fail  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pynvml", broken)


def test_without_a_gpu_everything_degrades(no_nvml: None) -> None:
    assert gpu.list_gpus() == []
    assert gpu.memory_used_bytes() is None
    assert "no GPU" in (gpu.nvml_unavailable_reason() or "")
    with gpu.MemorySampler(interval_s=0.01) as s:
        blob = bytearray(64 * 2**20)  # host memory the sampler should see
        time.sleep(0.05)
    r = s.record
    assert r.available is False and r.reason and r.reason.startswith("no GPU")
    assert r.peak_memory_bytes is None and r.devices == [] and r.samples == 0
    assert r.host_samples >= 2 and r.host_rss_peak_bytes is not None
    assert r.host_rss_peak_bytes >= r.host_rss_start_bytes + 32 * 2**20  # type: ignore[operator]
    assert r.duration_s >= 0.05
    del blob


def test_sampler_math_with_a_fake_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    series = [10, 30, 50, 20]
    fake = FakeNVML(series=series, util=[10.0, 90.0, 50.0])
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with gpu.MemorySampler(interval_s=0.005, host=False) as s:
        time.sleep(0.1)
    r = s.record
    assert r.available and r.reason is None and r.samples >= 3
    seen1 = fake.returned[1][: r.samples]  # the last call per device is the total in _finish
    assert len(fake.returned[1]) == r.samples + 1
    d0, d1 = r.devices
    assert (d0.index, d1.index) == (0, 1) and d1.name == "Fake H100 1"
    assert d1.peak_memory_bytes == 50 == max(seen1) and d1.start_memory_bytes == 10
    assert d1.mean_memory_bytes == pytest.approx(sum(seen1) / len(seen1))
    assert d0.peak_memory_bytes == 1000 and d0.mean_memory_bytes == 1000
    # the busiest card's figures are the record's top level
    assert r.peak_memory_bytes == 1000 and r.start_memory_bytes == 1000
    u1 = fake.utils_returned[1]
    assert d1.peak_utilization_pct == max(u1) == 90.0
    assert d1.mean_utilization_pct == pytest.approx(sum(u1) / len(u1))
    assert r.peak_utilization_pct == 90.0
    assert r.mean_utilization_pct == pytest.approx((0.0 + d1.mean_utilization_pct) / 2)  # type: ignore[operator]
    assert r.host_rss_peak_bytes is None and r.host_samples == 0
    assert fake.inits == 0  # every nvmlInit was matched by a shutdown


def test_sampler_follows_cuda_visible_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeNVML(series=[5, 7], util=[1.0])
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    with gpu.MemorySampler(interval_s=0.01, host=False) as s:
        pass
    assert [d.index for d in s.record.devices] == [1]
    assert s.record.peak_memory_bytes == 7 and s.record.samples == 2  # on entry and on exit
    assert gpu.memory_used_bytes() == 7
    assert [g.index for g in gpu.list_gpus()] == [1]


def test_inventory_with_a_fake_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", FakeNVML(series=[3], util=[0.0], total=1234))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    gpus = gpu.list_gpus()
    assert [g.name for g in gpus] == ["Fake H100 0", "Fake H100 1"]
    assert gpus[1].memory_total_bytes == 1234 and gpus[1].memory_used_bytes == 3
    assert gpus[0].driver_version == "550.54.15" and gpus[0].cuda_driver_version == "12.4"
    assert gpus[0].uuid == "GPU-fake-0"


def test_summarize_device_rejects_no_samples() -> None:
    with pytest.raises(ValueError):
        gpu.summarize_device(0, "x", 1, [], [])


def test_xdist_worker_pinning() -> None:
    env = {"PYTEST_XDIST_WORKER": "gw2"}
    assert gpu.pin_xdist_worker(env, gpu_count=4) == "2" and env["CUDA_VISIBLE_DEVICES"] == "2"
    assert gpu.pin_xdist_worker(env, gpu_count=4) == "2"  # re-entry keeps the same card
    env = {"PYTEST_XDIST_WORKER": "gw1", "CUDA_VISIBLE_DEVICES": "4,6"}
    assert gpu.pin_xdist_worker(env) == "6"
    assert gpu.pin_xdist_worker({}, gpu_count=4) is None  # not under xdist
    assert gpu.pin_xdist_worker({"PYTEST_XDIST_WORKER": "gw0"}, gpu_count=0) is None  # CPU machine
    assert gpu.pin_xdist_worker({"PYTEST_XDIST_WORKER": "gw0", "CUDA_VISIBLE_DEVICES": ""}, gpu_count=2) is None
    assert gpu.pin_xdist_worker({"PYTEST_XDIST_WORKER": "gw3", "QWENHARNESS_XDIST_PIN": "0"}, gpu_count=2) is None
    with pytest.raises(ConfigError, match="-n 2"):
        gpu.pin_xdist_worker({"PYTEST_XDIST_WORKER": "gw2"}, gpu_count=2)
