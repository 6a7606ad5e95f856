"""qwenharness.coverage and gates without a real model: fake engines through a real EnginePool."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qwenharness.coverage import CoverageStore, coverage_requests, is_oom, run_coverage
from qwenharness.engines.base import EngineInfo, Generation, GenerationRequest
from qwenharness.engines.pool import EnginePool
from qwenharness.errors import ConfigError, HarnessError
from qwenharness.gates import load_gates
from qwenharness.presets import ResolvedConfig
from qwenharness.engines.base import IN_PROCESS


class CountingEngine:
    """Answers every request with `n` tokens of text after a short, measurable delay."""

    name = "fake"
    capabilities = IN_PROCESS

    def __init__(self, config: ResolvedConfig, n: int = 16, fail: Exception | None = None) -> None:
        self.config, self.n, self.fail = config, n, fail

    def generate(self, requests: list[GenerationRequest], *, progress: bool = False) -> list[Generation]:
        if self.fail is not None:
            raise self.fail
        import time

        time.sleep(0.01)
        return [Generation(text="x " * self.n, prompt_tokens=5, output_tokens=self.n, finish_reason="length",
                           latency_s=0.01) for _ in requests]

    def info(self) -> EngineInfo:
        return EngineInfo("fake", self.config.model.name, self.config.preset, "cpu", "float32", {}, 1, None, 0.0)

    def close(self) -> None:
        pass


def test_a_successful_run_is_measured_and_recorded(tmp_path: Path) -> None:
    pool = EnginePool(opener=lambda c, b: CountingEngine(c), gpu=None)
    r = run_coverage(pool, "tiny", "balanced", "hf", run_id="unit")
    assert r.ok and r.error is None and r.stage == "done" and r.device == "cpu"
    assert r.output_tokens == 8 * 16 and r.output_tokens_per_prompt == [16] * 8
    assert r.output_tokens_per_s is not None and 0 < r.output_tokens_per_s <= 128 / 0.01
    assert len(r.generation_times_s) == 2 and r.generation_time_s == min(r.generation_times_s)
    assert r.output_tokens_per_s == pytest.approx(128 / r.generation_time_s)
    assert r.memory_source == "host_rss" and r.peak_memory_bytes == r.host_rss_peak_bytes
    assert r.planned_memory_bytes and r.engine_released is True and pool.alive == 0
    store = CoverageStore(tmp_path, "unit")
    store.record(r)
    store.record(r)  # a rerun of the same configuration replaces its entry
    run = json.loads(store.run_file.read_text())
    assert [e["key"] for e in run["entries"]] == ["tiny|balanced|hf|auto"]
    summary = json.loads(store.summary_file.read_text())
    assert summary["configs"]["tiny|balanced|hf|auto"]["output_tokens_per_s"] == r.output_tokens_per_s
    assert not list(store.dir.glob("*.tmp"))


def test_failures_are_recorded_not_raised(tmp_path: Path) -> None:
    def refuse(c: ResolvedConfig, b: str) -> CountingEngine:
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    r = run_coverage(EnginePool(opener=refuse, gpu=None), "tiny", "balanced", "vllm", run_id="unit")
    assert not r.ok and r.stage == "load" and r.oom and "out of memory" in (r.error or "")
    assert r.load_time_s is None

    pool = EnginePool(opener=lambda c, b: CountingEngine(c, fail=ValueError("bad batch")), gpu=None)
    r = run_coverage(pool, "tiny", "balanced", "hf", run_id="unit")
    assert not r.ok and r.stage == "generate" and not r.oom and "bad batch" in (r.error or "")
    assert r.engine_released is True and pool.alive == 0  # closed even though generation failed

    r = run_coverage(pool, "no-such-model", "balanced", "hf", run_id="unit")
    assert not r.ok and r.stage == "config" and r.device is None and "unknown model" in (r.error or "")


def test_empty_outputs_are_counted() -> None:
    pool = EnginePool(opener=lambda c, b: CountingEngine(c, n=0), gpu=None)
    r = run_coverage(pool, "tiny", "balanced", "hf", run_id="unit")
    assert r.empty_outputs == 8 and r.output_tokens == 0


def test_dummy_weights_use_token_id_prompts() -> None:
    from qwenharness.presets import get_model_config

    from qwenharness.hardware import H100_80GB

    config = get_model_config("qwen3_8b", "balanced", gpu=H100_80GB, load_format="dummy")
    reqs = coverage_requests(config)
    assert len(reqs) == 8 and all(r.prompt_token_ids and len(r.prompt_token_ids) == 32 for r in reqs)
    assert all(0 < t < config.model.vocab_size - 1 for r in reqs for t in r.prompt_token_ids or ())
    assert len({r.prompt_token_ids for r in reqs}) == 8


def test_is_oom() -> None:
    assert is_oom(MemoryError()) and is_oom(RuntimeError("CUDA error: out of memory"))
    assert not is_oom(ValueError("bad"))


def test_store_rejects_bad_run_ids(tmp_path: Path) -> None:
    with pytest.raises(HarnessError):
        CoverageStore(tmp_path, "../x")


def test_gates_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    g = load_gates()
    assert g.gpu_min_output_tokens_per_s == 100 and g.error_budget == 0.05
    assert g.min_output_tokens_per_s("cpu") == g.cpu_min_output_tokens_per_s > 0
    # per-card GPU floors, each with the measured figures it comes from (docs/benchmarks.md)
    for card in ("NVIDIA H100 80GB HBM3", "NVIDIA H200"):
        floor = g.card_floor(card)
        assert floor is not None and "docs/benchmarks.md" in floor.derivation
        assert g.min_output_tokens_per_s("cuda", card) == floor.min_output_tokens_per_s > g.gpu_min_output_tokens_per_s
        assert floor.match in g.floor_source("cuda", card)
    assert g.min_output_tokens_per_s("cuda", "NVIDIA A10") == g.gpu_min_output_tokens_per_s  # no measured figures
    assert 0 < g.max_judge_parse_failure_rate <= 1
    bad = tmp_path / "gates.toml"
    bad.write_text("[throughput]\ngpu_min_output_tokens_per_s = 1\n")
    monkeypatch.setenv("QWENHARNESS_GATES", str(bad))
    with pytest.raises(ConfigError, match="lacks"):
        load_gates()
    with pytest.raises(ConfigError, match="does not exist"):
        load_gates(tmp_path / "missing.toml")
