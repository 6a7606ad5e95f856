"""qwenharness.bench with a fake engine: statistics, workloads, measurements, bound, storage."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from qwenharness import bench
from qwenharness.engines.base import EngineInfo, Generation, GenerationRequest
from qwenharness.errors import EngineError
from qwenharness.presets import get_model_config
from qwenharness.engines.base import IN_PROCESS, EngineCapabilities


# -- a fake engine -------------------------------------------------------------------------------------
@dataclass
class FakeEngine:
    """Returns `max_tokens` (or fewer, `short`) tokens per request; logs every call."""

    name: str = "fake"
    capabilities = IN_PROCESS
    ttft: float | None = 0.0
    short: int = 0
    fail: bool = False
    calls: list[int] = field(default_factory=list)
    log: list[str] = field(default_factory=list)

    def generate(self, requests: list[GenerationRequest], *, progress: bool = False) -> list[Generation]:
        self.calls.append(len(requests))
        self.log.append("harness")
        out = []
        for r in requests:
            n = max(r.sampling.max_tokens - self.short, 1)
            out.append(Generation(text="x" * n, prompt_tokens=len(r.prompt_token_ids or ()), output_tokens=n,
                                  finish_reason="error" if self.fail else "length", latency_s=0.0,
                                  first_token_s=self.ttft, error="boom" if self.fail else None))
        return out

    def info(self) -> EngineInfo:
        return EngineInfo(engine=self.name, model="tiny", preset="balanced", device="cpu", dtype="float32",
                          versions={}, weight_bytes=1000, kv_cache_bytes=2000, load_time_s=0.0,
                          extra={"tokenizer_vocab_size": 500})

    def close(self) -> None:
        pass


class FakeLLM:
    """Stands in for vllm.LLM: generate(prompts, sampling_params, use_tqdm) -> RequestOutputs."""

    def __init__(self, log: list[str]):
        self.log = log

    def generate(self, prompts: list[dict[str, Any]], sampling: list[Any], use_tqdm: bool = False) -> list[Any]:
        self.log.append("bare")
        return [SimpleNamespace(outputs=[SimpleNamespace(token_ids=list(range(s.max_tokens)))]) for s in sampling]


class FakeVLLMEngine(FakeEngine):
    capabilities = EngineCapabilities(bare_vllm=True)

    def __init__(self) -> None:
        super().__init__(name="vllm")
        self.llm = FakeLLM(self.log)

    def to_vllm_sampling(self, params: Any, prompt_len: int = 0) -> Any:  # preferred over building one
        return params


# -- statistics ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("values", [[3.0], [1.0, 2.0], [5.0, 1.0, 4.0, 2.0, 3.0], list(np.linspace(0, 1, 17) ** 2)])
@pytest.mark.parametrize("q", [0, 10, 50, 90, 99, 100])
def test_percentile_matches_numpy_linear(values: list[float], q: float) -> None:
    assert bench.percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_percentile_rejects_empty_and_out_of_range() -> None:
    with pytest.raises(ValueError):
        bench.percentile([], 50)
    with pytest.raises(ValueError):
        bench.percentile([1.0], 101)


def test_summarize() -> None:
    s = bench.summarize([4.0, 1.0, 3.0, 2.0])
    assert s == {"mean": 2.5, "p50": 2.5, "p90": pytest.approx(3.7), "p99": pytest.approx(3.97),
                 "min": 1.0, "max": 4.0, "n": 4}
    assert bench.summarize([]) is None


# -- workloads ---------------------------------------------------------------------------------------------
def test_random_workload_is_seeded_and_in_range() -> None:
    a = bench.random_workload(8, 16, 4, vocab_size=100, seed=3)
    b = bench.random_workload(8, 16, 4, vocab_size=100, seed=3)
    c = bench.random_workload(8, 16, 4, vocab_size=100, seed=4)
    assert a.requests == b.requests
    assert a.requests != c.requests
    ids = [t for r in a.requests for t in r.prompt_token_ids or ()]
    assert len(ids) == 8 * 16 and min(ids) >= 0 and max(ids) < 100
    assert {r.sampling.max_tokens for r in a.requests} == {4}
    assert all(r.sampling.temperature == 0.0 for r in a.requests)


def test_ignore_eos_used_only_where_supported() -> None:
    params = bench.sampling_for(7)
    assert params.max_tokens == 7
    assert getattr(params, "ignore_eos", False) == bench.supports_ignore_eos()
    with pytest.raises(ValueError):
        bench.sampling_for(0)


# -- measurements ------------------------------------------------------------------------------------------
def test_throughput_rates_are_consistent() -> None:
    engine = FakeEngine(short=1)
    w = bench.random_workload(6, 10, 5, vocab_size=50)
    r = bench.measure_throughput(engine, w)
    assert engine.calls == [6]  # one batch call for the whole workload
    assert r["output_tokens"] == 6 * 4 and r["output_tokens_expected"] == 30
    assert r["prompt_tokens"] == 60
    assert r["requests_per_s"] * r["elapsed_s"] == pytest.approx(6)
    assert r["output_tokens_per_s"] * r["elapsed_s"] == pytest.approx(24)
    assert r["total_tokens_per_s"] * r["elapsed_s"] == pytest.approx(84)
    assert r["memory"]["reason"] or r["memory"]["peak_bytes"] is not None


def test_throughput_rounds_give_a_spread_with_fresh_prompts() -> None:
    engine = FakeEngine(short=1)
    w = bench.random_workload(6, 10, 5, vocab_size=50, seed=0)
    more = [bench.random_workload(6, 10, 5, vocab_size=50, seed=s) for s in (1, 2)]
    r = bench.measure_throughput(engine, w, more)
    assert engine.calls == [6, 6, 6]
    assert len(r["rounds_output_tokens_per_s"]) == 3 and r["spread"]["n"] == 3
    rounds = r["rounds_output_tokens_per_s"]
    assert rounds[r["headline_round"]] == pytest.approx(r["output_tokens_per_s"])  # headline: the median round
    assert sorted(rounds)[1] == pytest.approx(r["output_tokens_per_s"])
    lo, hi = min(r["rounds_output_tokens_per_s"]), max(r["rounds_output_tokens_per_s"])
    assert (r["spread"]["min"], r["spread"]["max"]) == (lo, hi)
    assert r["spread"]["relative"] == pytest.approx((hi - lo) / r["spread"]["median"])


def test_failed_requests_raise() -> None:
    with pytest.raises(EngineError, match="failed"):
        bench.measure_throughput(FakeEngine(fail=True), bench.random_workload(2, 4, 2, vocab_size=10))


def test_latency_warmup_percentiles_and_itl() -> None:
    engine = FakeEngine(ttft=0.0)
    r = bench.measure_latency(engine, batch_size=2, input_len=4, output_len=5, vocab_size=20, warmup=2, iters=3)
    assert engine.calls == [2] * 5  # 2 warm-up + 3 timed calls
    assert r["latency_s"]["n"] == 3 and r["ttft_s"]["n"] == 6
    # ttft 0: inter-token latency of every request is its call's latency / (output - 1)
    assert r["itl_s"]["max"] == pytest.approx(r["latency_s"]["max"] / 4)
    assert r["itl_s"]["min"] == pytest.approx(r["latency_s"]["min"] / 4)
    assert r["output_tokens_per_s"] == pytest.approx(2 * 5 / r["latency_s"]["p50"])


def test_latency_without_ttft_says_why() -> None:
    r = bench.measure_latency(FakeEngine(ttft=None), batch_size=1, input_len=4, output_len=3, vocab_size=20,
                              warmup=0, iters=2)
    assert r["ttft_s"] is None and r["itl_s"] is None and "first token" in r["ttft_reason"]


def test_overhead_interleaves_and_divides_medians() -> None:
    engine = FakeVLLMEngine()
    w = bench.random_workload(3, 4, 2, vocab_size=20)
    r = bench.measure_overhead(engine, w, reps=4)
    # one untimed round each, then alternating order
    assert engine.log == ["bare", "harness"] + ["harness", "bare", "bare", "harness"] * 2
    assert len(r["harness_s"]) == len(r["bare_s"]) == 4
    assert r["ratio"] == pytest.approx(bench.percentile(r["bare_s"], 50) / bench.percentile(r["harness_s"], 50))
    assert r["same_token_counts"] and r["harness_output_tokens"] == [6] * 4
    assert r["ratio_per_rep"] == pytest.approx([b / h for b, h in zip(r["bare_s"], r["harness_s"])])
    assert r["spread"]["n"] == 4 and r["spread"]["min"] == min(r["ratio_per_rep"])


def test_overhead_repeats_until_its_spread_is_within_the_target(monkeypatch: pytest.MonkeyPatch) -> None:
    w = bench.random_workload(3, 4, 2, vocab_size=20)
    r = bench.measure_overhead(FakeVLLMEngine(), w, reps=2, target_spread=10.0, max_reps=50)
    assert r["reps"] == 2 and r["converged"] is True  # a loose target is met at once
    noisy = iter([0.0, 1.0, 0.0, 3.0] * 1000)  # perf_counter readings: every call alternates 1 s and 3 s
    monkeypatch.setattr(bench.time, "perf_counter", lambda: next(noisy))
    r = bench.measure_overhead(FakeVLLMEngine(), w, reps=2, target_spread=0.001, max_reps=7)
    assert r["reps"] == 7 and r["converged"] is False and r["spread"]["ci95_relative"] > 0.001
    assert r["target_spread"] == 0.001 and len(r["ratio_per_rep"]) == 7


def test_overhead_not_applicable_without_llm() -> None:
    r = bench.measure_overhead(FakeEngine(), bench.random_workload(1, 2, 2, vocab_size=5))
    assert r == {"applicable": False, "ratio": None, "reason": "engine 'fake' has no vLLM `llm` to call bare"}


# -- physical bound -----------------------------------------------------------------------------------------
def test_decode_bound() -> None:
    assert bench.decode_bound(10**9, 3.35e12) == pytest.approx(3350.0)
    assert bench.decode_bound(10**9, 3.35e12, tensor_parallel_size=2) == pytest.approx(6700.0)
    with pytest.raises(ValueError):
        bench.decode_bound(0, 1.0)


def _latency(p50: float, ttft: float | None, out: float) -> dict[str, Any]:
    return {"latency_s": {"p50": p50}, "ttft_s": None if ttft is None else {"p50": ttft}, "mean_output_tokens": out}


def test_physical_bound_on_a_gpu_config() -> None:
    from qwenharness.hardware import H100_80GB

    config = get_model_config("qwen3_8b", "balanced", H100_80GB)
    weights = config.model.weight_bytes("bfloat16")
    r = bench.physical_bound(config, _latency(2.0, 0.2, 257), H100_80GB.name)
    assert r["applicable"] and r["bound_tokens_per_s"] == pytest.approx(3.35e12 / weights)
    assert r["measured_tokens_per_s"] == pytest.approx(256 / 1.8)
    assert r["fraction"] == pytest.approx(r["measured_tokens_per_s"] / r["bound_tokens_per_s"])
    no_ttft = bench.physical_bound(config, _latency(2.0, None, 256), H100_80GB.name)
    assert no_ttft["measured_tokens_per_s"] == pytest.approx(128.0)
    unknown = bench.physical_bound(config, _latency(2.0, None, 256), "NVIDIA Mystery 9000")
    assert unknown["fraction"] is None and "bandwidth table" in unknown["reason"]


def test_physical_bound_not_applicable_on_cpu() -> None:
    config = get_model_config("tiny", "balanced", None)
    r = bench.physical_bound(config, _latency(1.0, 0.1, 10), None)
    assert r["applicable"] is False and r["fraction"] is None and "no GPU" in r["reason"]


# -- storage and the whole suite ----------------------------------------------------------------------------
def test_store_layout_merge_and_index(tmp_path: Path) -> None:
    store = bench.BenchmarkStore(tmp_path, "r1")
    p = store.update("org/m", "balanced", "hf", {"throughput": {"random": {"x": 1}}})
    assert p == tmp_path / "benchmarks" / "r1" / "org__m" / "balanced" / "hf.json"
    store.update("org/m", "balanced", "hf", {"throughput": {"gsm8k": {"x": 2}}, "overhead": {"ratio": None}})
    data = json.loads(p.read_text())
    assert data["throughput"] == {"random": {"x": 1}, "gsm8k": {"x": 2}}
    assert (data["model"], data["preset"], data["backend"], data["run_id"]) == ("org/m", "balanced", "hf", "r1")
    index = json.loads((tmp_path / "benchmarks" / "latest.json").read_text())
    assert index["entries"]["org/m/balanced/hf"]["path"] == "r1/org__m/balanced/hf.json"
    bench.BenchmarkStore(tmp_path, "r2").update("org/m", "balanced", "hf", {})
    index = json.loads((tmp_path / "benchmarks" / "latest.json").read_text())
    assert index["entries"]["org/m/balanced/hf"]["run_id"] == "r2"
    assert not list(tmp_path.rglob("*.tmp"))


def test_run_suite_stores_every_section(tmp_path: Path) -> None:
    engine = FakeVLLMEngine()
    config = get_model_config("tiny", "balanced", None)
    opts = bench.BenchOptions(input_len=8, output_len=4, num_prompts=5, batch_sizes=(1, 2), warmup=1, iters=2,
                              overhead_reps=2, text_dataset=None)
    store = bench.BenchmarkStore(tmp_path, "suite")
    data = bench.run_suite(engine, config, "vllm", opts, store)
    assert set(data) >= {"engine", "config", "environment", "throughput", "latency", "overhead",
                         "physical_bound", "memory"}
    assert data["throughput"]["random"]["num_requests"] == 5
    assert set(data["latency"]) == {"batch_1", "batch_2"}
    assert data["overhead"]["applicable"] and data["overhead"]["ratio"] > 0
    assert data["physical_bound"]["applicable"] is False
    assert data["memory"]["weight_bytes"] == 1000 and data["memory"]["kv_cache_bytes"] == 2000
    # random ids stay below the tokenizer size the engine reports
    assert max(t for r in bench.random_workload(5, 8, 4, 500).requests for t in r.prompt_token_ids or ()) < 500
    assert json.loads(store.path("tiny", "balanced", "vllm").read_text()) == data


def test_dummy_weights_skip_the_text_workload(tmp_path: Path) -> None:
    config = get_model_config("tiny", "balanced", None, load_format="dummy")
    opts = bench.BenchOptions(input_len=4, output_len=2, num_prompts=2, batch_sizes=(1,), warmup=0, iters=1,
                              overhead_reps=1, text_dataset="gsm8k")
    data = bench.run_suite(FakeEngine(), config, "hf", opts, bench.BenchmarkStore(tmp_path, "d"))
    assert data["throughput"]["gsm8k"]["applicable"] is False
    assert "tokenizer" in data["throughput"]["gsm8k"]["reason"]


def test_memory_watch_records_something_or_a_reason() -> None:
    with bench.memory_watch(interval_s=0.01) as m:
        time.sleep(0.03)
    assert m["peak_bytes"] is not None or m["reason"]
    assert m["host_rss_peak_bytes"] is None or m["host_rss_peak_bytes"] > 0
