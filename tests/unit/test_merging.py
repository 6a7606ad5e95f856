"""Datasets evaluated together share one engine whose generation calls are merged
(qwenharness/engines/merging.py)."""

from __future__ import annotations

import threading
import time

import pytest

from qwenharness.engines.base import IN_PROCESS, Generation, GenerationRequest, LoglikelihoodRequest, LoglikelihoodResult
from qwenharness.engines.merging import MergingEngine
from qwenharness.errors import EngineDiedError, EngineError


class RecordingEngine:
    """Answers each prompt with itself; records every call; refuses prompts containing 'bad'."""

    name = "recording"
    capabilities = IN_PROCESS

    def __init__(self, die: bool = False, call_s: float = 0.0):
        self.calls: list[tuple[str, list[str]]] = []
        self.die = die
        self.call_s = call_s
        self.in_call = 0
        self.overlaps = 0
        self._lock = threading.Lock()

    def _enter(self, kind: str, prompts: list[str]) -> None:
        with self._lock:
            self.in_call += 1
            self.overlaps += self.in_call > 1
            self.calls.append((kind, prompts))
        time.sleep(self.call_s)

    def _leave(self) -> None:
        with self._lock:
            self.in_call -= 1

    def generate(self, requests: list[GenerationRequest], *, progress: bool = False) -> list[Generation]:
        prompts = [r.prompt or "" for r in requests]
        self._enter("generate", prompts)
        try:
            if self.die:
                raise EngineDiedError("the engine process died", "rerun")
            if any("bad" in p for p in prompts):
                raise EngineError("a prompt is too long", "shorten it")
            return [Generation(text=p.upper(), prompt_tokens=1, output_tokens=1, finish_reason="stop", latency_s=0.0)
                    for p in prompts]
        finally:
            self._leave()

    def loglikelihood(self, requests: list[LoglikelihoodRequest], *, progress: bool = False) -> list[LoglikelihoodResult]:
        self._enter("loglikelihood", [r.context for r in requests])
        try:
            return [LoglikelihoodResult(logprob=-1.0, is_greedy=True, num_tokens=1) for _ in requests]
        finally:
            self._leave()


def run_parties(proxy: MergingEngine, jobs: dict[str, list]) -> dict[str, object]:
    """One thread per job (a list of ("generate"|"loglikelihood"|"work", payload) steps), all started
    together; returns each job's last answer or the exception it raised."""
    out: dict[str, object] = {}
    start = threading.Barrier(len(jobs))

    def work(name: str, steps: list) -> None:
        with proxy.party():
            start.wait()
            try:
                for kind, payload in steps:
                    if kind == "generate":
                        out[name] = [g.text for g in proxy.generate([GenerationRequest(prompt=p) for p in payload])]
                    elif kind == "loglikelihood":
                        out[name] = proxy.loglikelihood([LoglikelihoodRequest(c, " x") for c in payload])
                    else:
                        time.sleep(payload)
            except Exception as e:  # noqa: BLE001 - the test reads it
                out[name] = e

    threads = [threading.Thread(target=work, args=item) for item in jobs.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return out


def test_calls_pending_together_become_one_engine_call() -> None:
    engine = RecordingEngine()
    proxy = MergingEngine(lambda: engine, gather_s=5.0)  # all three wait: no need for the window
    out = run_parties(proxy, {"gsm8k": [("generate", ["g1", "g2"])], "humaneval": [("generate", ["h1"])],
                              "mbpp": [("generate", ["m1", "m2", "m3"])]})
    assert out == {"gsm8k": ["G1", "G2"], "humaneval": ["H1"], "mbpp": ["M1", "M2", "M3"]}
    assert len(engine.calls) == 1 and sorted(engine.calls[0][1]) == ["g1", "g2", "h1", "m1", "m2", "m3"]
    assert (proxy.stats.engine_calls, proxy.stats.submissions, proxy.stats.merged_calls) == (1, 3, 1)


def test_a_busy_thread_holds_the_others_up_for_the_window_only() -> None:
    engine = RecordingEngine()
    proxy = MergingEngine(lambda: engine, gather_s=0.1)
    t0 = time.monotonic()
    out = run_parties(proxy, {"a": [("generate", ["a1"])], "b": [("generate", ["b1"])],
                              "scoring": [("work", 3.0), ("generate", ["s1"])]})
    assert out["a"] == ["A1"] and out["b"] == ["B1"] and out["scoring"] == ["S1"]
    assert sorted(engine.calls[0][1]) == ["a1", "b1"], "the first call went without the thread still scoring"
    assert engine.calls[1][1] == ["s1"]
    assert time.monotonic() - t0 < 3.0 + 2.0


def test_a_rejected_merged_call_fails_only_the_thread_at_fault() -> None:
    engine = RecordingEngine()
    proxy = MergingEngine(lambda: engine, gather_s=5.0)
    out = run_parties(proxy, {"good": [("generate", ["ok1", "ok2"])], "faulty": [("generate", ["bad"])]})
    assert out["good"] == ["OK1", "OK2"]
    assert isinstance(out["faulty"], EngineError) and not isinstance(out["faulty"], EngineDiedError)
    assert len(engine.calls) == 3, "the merged call, then each submission alone"


def test_an_engine_that_dies_fails_every_waiting_thread() -> None:
    engine = RecordingEngine(die=True)
    proxy = MergingEngine(lambda: engine, gather_s=5.0)
    out = run_parties(proxy, {"a": [("generate", ["a1"])], "b": [("generate", ["b1"])]})
    assert all(isinstance(v, EngineDiedError) for v in out.values())
    assert len(engine.calls) == 1, "no retry one by one after the engine died"


def test_the_engine_runs_one_call_at_a_time() -> None:
    engine = RecordingEngine(call_s=0.05)
    proxy = MergingEngine(lambda: engine, gather_s=0.01)
    jobs = {f"gen{i}": [("generate", [f"p{i}{j}"]) for j in range(3)] for i in range(3)}
    jobs.update({f"ll{i}": [("loglikelihood", [f"c{i}{j}"]) for j in range(3)] for i in range(2)})
    out = run_parties(proxy, jobs)
    assert not any(isinstance(v, Exception) for v in out.values()), out
    assert engine.overlaps == 0
    assert sum(len(p) for k, p in engine.calls if k == "loglikelihood") == 6
    assert sorted(p for k, ps in engine.calls if k == "generate" for p in ps) == sorted(
        f"p{i}{j}" for i in range(3) for j in range(3))


def test_the_engine_is_opened_once() -> None:
    opened = []

    def open_engine() -> RecordingEngine:
        if not opened:
            time.sleep(0.05)
            opened.append(RecordingEngine())
        return opened[0]

    proxy = MergingEngine(open_engine)
    threads = [threading.Thread(target=lambda: proxy.capabilities) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(opened) == 1


@pytest.mark.parametrize("mode, backend, gpu, together", [
    ("auto", "vllm", True, True), ("auto", "vllm", False, False), ("auto", "hf", True, False),
    ("on", "hf", False, True), ("off", "vllm", True, False)])
def test_when_datasets_run_together(mode: str, backend: str, gpu: bool, together: bool) -> None:
    from qwenharness.scheduling import concurrent_datasets_apply

    assert concurrent_datasets_apply(mode, backend, gpu) is together


def test_an_unknown_mode_names_the_choices() -> None:
    from qwenharness.errors import ConfigError
    from qwenharness.scheduling import concurrent_datasets_apply

    with pytest.raises(ConfigError, match="auto, on or off"):
        concurrent_datasets_apply("yes", "vllm", True)


def _harness(concurrent: str, gpu: bool, limits: str = "gsm8k=4,default=2"):  # noqa: ANN202
    from pathlib import Path

    from qwenharness.hardware import H100_80GB
    from qwenharness.selection import parse_sample_limits
    from qwenharness.testing import HarnessOptions

    return HarnessOptions(models=["tiny"], presets=["balanced"], datasets=["gsm8k", "arc_easy", "mt_bench"],
                          backends=["vllm"], sample_limits=parse_sample_limits(limits), data_dir=None,
                          results_dir=Path("r"), run_id="x", require_gpu=False, validate_only=False,
                          load_format="auto", gpu=H100_80GB if gpu else None, concurrent_datasets=concurrent)


@pytest.mark.parametrize("concurrent, gpu, runs", [
    ("auto", True, [["gsm8k", "arc_easy", "mt_bench"]]),
    ("auto", False, [["gsm8k"], ["arc_easy"], ["mt_bench"]]),
    ("off", True, [["gsm8k"], ["arc_easy"], ["mt_bench"]]),
    ("on", False, [["gsm8k", "arc_easy", "mt_bench"]])])
def test_a_models_first_gate_test_evaluates_its_collected_datasets_together(
        monkeypatch: pytest.MonkeyPatch, concurrent: str, gpu: bool, runs: list[list[str]]) -> None:
    """Milestone 3 on a GPU: the first test of a model evaluates every dataset of it the session
    collected, with each dataset's own sample count, and the later tests judge those results; on a
    CPU (or with --concurrent-datasets off) each test evaluates its own dataset."""
    import qwenharness.gate_evaluations as ge
    from qwenharness.evaluation import DatasetResult

    made: list[list[str]] = []
    limits: list[dict[str, int | None]] = []

    class FakeEvaluator:
        def __init__(self, settings, paths, **_):  # noqa: ANN001, ANN003
            made.append(list(settings.datasets))
            limits.append({d: settings.limit_for(d) for d in settings.datasets})
            self.settings = settings

        def run(self) -> list[DatasetResult]:
            return [DatasetResult("tiny", "balanced", d, ok=True) for d in self.settings.datasets]

    monkeypatch.setattr(ge, "Evaluator", FakeEvaluator)
    gates = ge.GateEvaluations(_harness(concurrent, gpu), pool=None,
                               collected={"tiny": ["gsm8k", "arc_easy", "mt_bench"]})
    for dataset in ("gsm8k", "arc_easy", "mt_bench"):
        settings, result = gates.evaluate("tiny", dataset)
        assert result.dataset == dataset and result.ok
        assert settings.datasets == [dataset] and settings.limit_for(dataset) == (4 if dataset == "gsm8k" else 2)
        assert settings.job_datasets == ["gsm8k", "arc_easy", "mt_bench"]
    assert made == runs
    assert all(lim[d] == (4 if d == "gsm8k" else 2) for lim in limits for d in lim), limits


def test_the_proxy_does_not_stream() -> None:
    """A streaming engine (backend openai) hands answers over per request; merged calls cannot."""
    from dataclasses import replace

    engine = RecordingEngine()
    engine.capabilities = replace(IN_PROCESS, streams_results=True, call_size_factor=8)
    caps = MergingEngine(lambda: engine).capabilities
    assert caps.streams_results is False and caps.call_size_factor == 8
