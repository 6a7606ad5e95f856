"""Milestone 2: every selected model x preset x backend resolves, loads, generates, meets the
throughput gate, stays within its memory plan and frees its memory on close().

Each configuration runs once per session (the `coverage` fixture, through the session's EnginePool);
the tests below assert on that run's measurements, which are also written to
results/evaluations/model_coverage/<run_id>.json and latest_summary.json. Thresholds come from
qwenharness/config/gates.toml. `--validate-only` runs the configuration checks alone.
"""

from __future__ import annotations

import json

import pytest

from qwenharness.coverage import MAX_TOKENS, CoverageResult, CoverageStore, entry_key, run_coverage
from qwenharness.engines.pool import EnginePool
from qwenharness.gates import Gates, load_gates
from qwenharness.hardware import H100_80GB, GiB
from qwenharness.models import get_available_models, get_model_spec
from qwenharness.presets import CONSERVATIVE_MEMORY_LIMIT, get_model_config
from qwenharness.testing import HarnessOptions

pytestmark = pytest.mark.milestone2


@pytest.fixture(scope="session")
def gates() -> Gates:
    return load_gates()


@pytest.fixture(scope="session")
def coverage_store(harness: HarnessOptions) -> CoverageStore:
    return CoverageStore(harness.results_dir, harness.run_id)


@pytest.fixture(scope="session")
def coverage(harness: HarnessOptions, engine_pool: EnginePool, coverage_store: CoverageStore,
             model_name: str, preset_name: str, backend_name: str) -> CoverageResult:
    """One coverage run of this configuration (load, generate, close), recorded on disk."""
    if harness.validate_only:
        pytest.skip("--validate-only: configuration checks only, no model is loaded")
    if harness.gpu is None and not get_model_spec(model_name).runs_on_cpu:
        reason = (f"{model_name} needs a GPU (on a CPU machine only the small models run: "
                  f"{', '.join(m for m in get_available_models() if get_model_spec(m).runs_on_cpu)})")
        if harness.require_gpu:
            pytest.fail(f"{reason}, and --require-gpu was given", pytrace=False)
        pytest.skip(reason)
    result = run_coverage(engine_pool, model_name, preset_name, backend_name, run_id=harness.run_id)
    coverage_store.record(result)
    return result


def _mib(n: float | None) -> str:
    return "n/a" if n is None else f"{n / 2**20:,.0f} MiB"


# -- configuration (no model loaded) -------------------------------------------------------------
def test_configuration_validates(harness: HarnessOptions, model_name: str, preset_name: str) -> None:
    """The configuration resolves against this machine's GPU; real models on a CPU-only machine are
    planned against the seed's H100 80GB, the small CPU models (tiny, the small real models) against the host."""
    target = harness.gpu if harness.gpu is not None or get_model_spec(model_name).runs_on_cpu else H100_80GB
    config = get_model_config(model_name, preset_name, gpu=target, load_format=harness.load_format)
    plan = config.memory
    assert config.model.name == model_name and config.preset == preset_name
    assert 0 < config.max_model_len <= config.model.context_length
    assert plan.weight_bytes > 0 and plan.kv_bytes_per_token > 0
    assert plan.weight_bytes + plan.activation_bytes + plan.overhead_bytes + plan.kv_cache_bytes == plan.budget_bytes
    assert plan.kv_capacity_tokens >= config.max_model_len, "KV cache cannot hold one full-length sequence"
    assert plan.max_concurrent_full_sequences >= 1
    assert plan.budget_bytes <= plan.device_memory_bytes
    if target is not None and preset_name != "performance":
        assert plan.planned_fraction <= CONSERVATIVE_MEMORY_LIMIT + 1e-9


# -- one engine run per configuration -------------------------------------------------------------
def test_engine_starts(coverage: CoverageResult) -> None:
    assert coverage.device is not None, f"configuration did not resolve: {coverage.error}"
    assert coverage.load_time_s is not None, f"engine did not start ({coverage.stage}): {coverage.error}"
    assert coverage.load_time_s > 0


def test_generates_for_every_prompt(coverage: CoverageResult) -> None:
    assert coverage.error is None, f"failed at stage '{coverage.stage}': {coverage.error}"
    assert len(coverage.output_tokens_per_prompt) == coverage.prompts == 8
    assert all(0 < n <= MAX_TOKENS for n in coverage.output_tokens_per_prompt), coverage.output_tokens_per_prompt
    assert coverage.empty_outputs == 0, f"{coverage.empty_outputs} of {coverage.prompts} outputs were empty"
    assert coverage.prompt_tokens > 0


def test_no_out_of_memory(coverage: CoverageResult) -> None:
    assert not coverage.oom, f"out of memory at stage '{coverage.stage}': {coverage.error}"


def test_throughput_gate(coverage: CoverageResult, gates: Gates) -> None:
    assert coverage.output_tokens_per_s is not None, f"no throughput measured: {coverage.error}"
    gpus = (coverage.sampler or {}).get("devices") or []
    card = gpus[0].get("name") if gpus else None  # the per-card floor of gates.toml, where measured
    floor = gates.min_output_tokens_per_s(coverage.device or "cpu", card)
    assert coverage.output_tokens_per_s >= floor, (
        f"{coverage.output_tokens_per_s:.1f} output tokens/s < gate {floor} ({coverage.device} {card or ''}; "
        f"{gates.floor_source(coverage.device or 'cpu', card)})")


@pytest.mark.gpu
def test_peak_gpu_memory_within_plan(coverage: CoverageResult, gates: Gates) -> None:
    assert coverage.memory_source == "nvml", "this configuration did not run on a GPU"
    grown = coverage.peak_over_baseline_bytes
    assert grown is not None and coverage.planned_memory_bytes is not None, "no NVML samples"
    assert grown <= coverage.planned_memory_bytes + gates.peak_tolerance_bytes, (
        f"NVML peak {_mib(coverage.peak_memory_bytes)} - baseline {_mib(coverage.baseline_memory_bytes)} "
        f"exceeds the plan {_mib(coverage.planned_memory_bytes)} + tolerance {_mib(gates.peak_tolerance_bytes)}")


@pytest.mark.gpu
def test_gpu_memory_returns_to_baseline(coverage: CoverageResult, gates: Gates) -> None:
    assert coverage.memory_source == "nvml", "this configuration did not run on a GPU"
    assert coverage.post_close_memory_bytes is not None and coverage.baseline_memory_bytes is not None
    left = coverage.post_close_memory_bytes - coverage.baseline_memory_bytes
    assert left <= gates.post_close_tolerance_bytes, (
        f"{_mib(left)} still in use after close() (baseline {_mib(coverage.baseline_memory_bytes)}, "
        f"after {_mib(coverage.post_close_memory_bytes)}; tolerance {_mib(gates.post_close_tolerance_bytes)})")


def test_host_memory_within_plan(coverage: CoverageResult, gates: Gates) -> None:
    """CPU runs: resident memory of this process and the engine's workers stays within the plan."""
    if coverage.device == "cuda":
        pytest.skip("GPU run: memory is checked with NVML by test_peak_gpu_memory_within_plan")
    assert coverage.host_rss_peak_bytes is not None and coverage.host_rss_baseline_bytes is not None
    assert coverage.planned_memory_bytes is not None
    grown = coverage.host_rss_peak_bytes - coverage.host_rss_baseline_bytes
    assert grown <= coverage.planned_memory_bytes + gates.cpu_rss_tolerance_bytes, (
        f"host RSS grew {_mib(grown)}: more than the plan {_mib(coverage.planned_memory_bytes)} + "
        f"tolerance {_mib(gates.cpu_rss_tolerance_bytes)}")


def test_engine_released_after_close(coverage: CoverageResult, engine_pool: EnginePool) -> None:
    """close() really let the engine go: the object was collected and its worker processes exited."""
    assert coverage.load_time_s is not None, f"engine never started: {coverage.error}"
    assert coverage.engine_released is True, "the engine object is still referenced after close()"
    assert coverage.workers_alive_after_close == [], (
        f"engine worker processes {coverage.workers_alive_after_close} outlived close()")
    assert engine_pool.max_alive <= 1


# -- the results file ------------------------------------------------------------------------------
def test_coverage_results_written(harness: HarnessOptions, coverage_store: CoverageStore) -> None:
    """Runs after the parametrized tests: one entry per configuration run, parseable, summarised."""
    if harness.validate_only:
        pytest.skip("--validate-only: no configuration was run, so no results file is written")
    if not coverage_store.written:
        pytest.skip("no coverage configuration ran in this session (or this pytest-xdist worker)")
    run = coverage_store.load_run()
    assert run["run_id"] == harness.run_id
    keys = [e["key"] for e in run["entries"]]
    assert len(keys) == len(set(keys)), f"duplicate entries: {keys}"
    for key in coverage_store.written:
        assert keys.count(key) == 1, f"{key} has {keys.count(key)} entries in {coverage_store.run_file}"
    required = {"model", "preset", "backend", "device", "load_time_s", "output_tokens_per_s",
                "peak_memory_bytes", "planned_memory_bytes", "post_close_memory_bytes",
                "baseline_memory_bytes", "ok", "error"}
    for entry in run["entries"]:
        assert required <= set(entry), f"entry {entry.get('key')} lacks {required - set(entry)}"
        assert entry["key"] == entry_key(entry["model"], entry["preset"], entry["backend"], entry["load_format"])
    summary = json.loads(coverage_store.summary_file.read_text())
    for key in coverage_store.written:
        assert summary["configs"][key]["run_id"] == harness.run_id
    assert run["host"]["host_memory_bytes"] > GiB
