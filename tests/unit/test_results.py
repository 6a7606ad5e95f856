"""ResultStore, response cache and resumable evaluation, with a fake engine that counts its calls."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from qwenharness.engines.base import (
    EngineInfo,
    Generation,
    GenerationRequest,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    SamplingParams,
)
from qwenharness.errors import ConfigError, DataError, EngineError
from qwenharness.evaluation import EvalSettings, Evaluator
from qwenharness.results import (
    ResponseCache,
    ResultStore,
    append_jsonl,
    atomic_write_json,
    read_jsonl,
    resolve_run_paths,
)
from qwenharness.run_context import CachedRunContext
from qwenharness.tasks.base import SampleRecord, Task, TaskRequest
from qwenharness.engines.base import IN_PROCESS

N_DOCS = 24


# -- fakes ----------------------------------------------------------------------------------------

def _h(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


class FakeEngine:
    name = "fake"
    capabilities = IN_PROCESS

    def __init__(self, kill_on_call: int | None = None, fail_prompts: tuple[str, ...] = ()):
        self.calls = 0
        self.requests = 0
        self.kill_on_call = kill_on_call
        self.fail_prompts = fail_prompts

    def _tick(self, n: int) -> None:
        self.calls += 1
        self.requests += n
        if self.kill_on_call is not None and self.calls == self.kill_on_call:
            os.kill(os.getpid(), signal.SIGKILL)

    def generate(self, requests: list[GenerationRequest], *, progress: bool = False) -> list[Generation]:
        self._tick(len(requests))
        for r in requests:
            if r.prompt in self.fail_prompts:
                raise EngineError(f"prompt {r.prompt!r} is too long", "shorten it")
        return [Generation(text=f"answer {_h(r.prompt or '') % 10}", prompt_tokens=3, output_tokens=2,
                           finish_reason="stop", latency_s=0.0) for r in requests]

    def loglikelihood(self, requests: list[LoglikelihoodRequest], *, progress: bool = False) -> list[LoglikelihoodResult]:
        self._tick(len(requests))
        return [LoglikelihoodResult(logprob=-(_h(r.context + r.continuation) % 100) / 10, is_greedy=False,
                                    num_tokens=1) for r in requests]

    def apply_chat_template(self, messages: list[dict[str, str]], *, enable_thinking: bool | None = None,
                            add_generation_prompt: bool = True) -> str:
        return "|".join(m["content"] for m in messages)

    def info(self) -> EngineInfo:
        return EngineInfo("fake", "tiny", "balanced", "cpu", "float32", {}, None, None, 0.0)

    def close(self) -> None:
        pass


class FakePool:
    def __init__(self, engine: FakeEngine):
        self.engine = engine
        self.opened = 0
        self.current_key: tuple | None = None

    def resolve(self, model: str, preset: str):
        from qwenharness.presets import get_model_config

        return get_model_config("tiny", preset, gpu=None)

    def get(self, model: str, preset: str, backend: str) -> FakeEngine:
        if self.current_key != (model, preset, backend, ()):
            self.opened += 1
            self.current_key = (model, preset, backend, ())
        return self.engine

    def close(self) -> None:
        self.current_key = None


class FakeGen(Task):
    name = "fake_gen"
    output_type = "generate"
    metric_names = ("acc",)

    def build_requests(self, docs, options, fewshot_docs=None):
        return [TaskRequest(str(d["x"]), [GenerationRequest(prompt=f"Q{d['x']}", sampling=SamplingParams(max_tokens=4))])
                for d in docs]

    def score(self, doc, request, outputs, options):
        text = outputs[0].text
        return SampleRecord(doc_id=request.doc_id, prompt=f"Q{doc['x']}", target=doc["x"] % 10, outputs=[text],
                            scores={"acc": float(text.endswith(str(doc["x"] % 10)))})

    def score_response(self, doc, responses):
        return SampleRecord(doc_id=str(doc["x"]), prompt=None, target=doc["x"] % 10, outputs=responses,
                            scores={"acc": float(responses[0].strip() == str(doc["x"] % 10))})


class FakeLL(Task):
    name = "fake_ll"
    output_type = "loglikelihood"
    metric_names = ("acc",)

    def build_requests(self, docs, options, fewshot_docs=None):
        return [TaskRequest(str(d["x"]), [LoglikelihoodRequest(f"C{d['x']}", c) for c in (" a", " b")]) for d in docs]

    def score(self, doc, request, outputs, options):
        lls = [o.logprob for o in outputs]
        return SampleRecord(doc_id=request.doc_id, prompt=f"C{doc['x']}", target=0, outputs=lls,
                            scores={"acc": float(lls.index(max(lls)) == 0)})

    def score_response(self, doc, responses):
        raise NotImplementedError


class FakeGen2(FakeGen):
    name = "fake_gen2"

    def build_requests(self, docs, options, fewshot_docs=None):
        return [TaskRequest(str(d["x"]), [GenerationRequest(prompt=f"R{d['x']}", sampling=SamplingParams(max_tokens=4))])
                for d in docs]


TASKS = {"fake_gen": FakeGen, "fake_gen2": FakeGen2, "fake_ll": FakeLL}
DEFAULT_DATASETS = ("fake_gen", "fake_ll")  # what make_evaluator runs unless told


def fake_docs(name: str, limit: int | None = None, seed: int = 1234, **_: Any) -> list[Any]:
    from qwenharness.data import Doc

    n = limit or N_DOCS
    return [Doc(i, str(i), {"x": i}) for i in range(n)]


def make_evaluator(root: Path, run_id: str, engine: FakeEngine, datasets=DEFAULT_DATASETS,
                   **settings: Any) -> tuple[Evaluator, FakePool]:
    pool = FakePool(engine)
    s = EvalSettings(models=["tiny"], datasets=list(datasets), backend="hf", progress=False, **settings)
    ev = Evaluator(s, resolve_run_paths(root, run_id), pool=pool, task_factory=lambda n: TASKS[n](),
                   docs_loader=fake_docs, chunk_sizes={"generate": 5, "loglikelihood": 10}, argv=["test"])
    return ev, pool


def records_of(root: Path, run_id: str, dataset: str) -> list[dict[str, Any]]:
    return read_jsonl(root / "evaluations" / run_id / "tiny" / "balanced" / f"{dataset}.samples.jsonl")


def _child_main(root: str, run_id: str, kill_on_call: str, kill_in_append: str) -> None:
    """Entry point of the subprocess in test_kill_mid_run_then_resume."""
    import qwenharness.results as results

    if kill_in_append == "1":  # write half a record line, then die as if killed mid-write
        def dying_append(path, objs):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            lines = [results.dumps(o) + "\n" for o in objs]
            with open(path, "a") as f:
                f.write(lines[0] + lines[1][: len(lines[1]) // 2])
                f.flush()
                os.fsync(f.fileno())
            os.kill(os.getpid(), signal.SIGKILL)
        orig = results.append_jsonl

        def append(path, objs):
            if str(path).endswith(".samples.jsonl"):
                return dying_append(path, list(objs))
            return orig(path, objs)
        results.append_jsonl = append
    engine = FakeEngine(kill_on_call=int(kill_on_call) if kill_on_call != "-" else None)
    ev, _ = make_evaluator(Path(root), run_id, engine)
    ev.run()


# -- file primitives ------------------------------------------------------------------------------

def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "a.json"
    atomic_write_json(target, {"v": 1})
    assert json.loads(target.read_text()) == {"v": 1}

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        atomic_write_json(target, {"v": 2})
    assert json.loads(target.read_text()) == {"v": 1}, "a failed write must leave the old file intact"
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"], "the temporary file must be removed"


def test_nan_is_written_as_null(tmp_path: Path) -> None:
    atomic_write_json(tmp_path / "m.json", {"value": float("nan")})
    assert json.loads((tmp_path / "m.json").read_text()) == {"value": None}


def test_truncated_last_line_is_ignored_and_repaired_on_append(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}\n{"a": 3, "b": "cut of')
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}]
    append_jsonl(path, [{"a": 4}])
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}, {"a": 4}]
    assert path.read_text().endswith('{"a": 4}\n')


def test_complete_last_line_without_newline_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}')
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}]
    append_jsonl(path, [{"a": 3}])
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}, {"a": 3}]


def test_malformed_middle_line_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text('{"a": 1}\nnot json\n{"a": 3}\n')
    with pytest.raises(DataError, match=r"s\.jsonl:2"):
        read_jsonl(path)


# -- cache keys -----------------------------------------------------------------------------------

def test_cache_keys_cover_everything_that_changes_a_response(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path, {"model": "tiny", "config_key": "k", "backend": "hf"})
    ctx = CachedRunContext("tiny", None, cache)
    base = GenerationRequest(prompt="hi", sampling=SamplingParams(max_tokens=8))
    variants = [
        base,
        GenerationRequest(prompt="hi!", sampling=SamplingParams(max_tokens=8)),
        GenerationRequest(messages=({"role": "user", "content": "hi"},), sampling=SamplingParams(max_tokens=8)),
        GenerationRequest(prompt_token_ids=(1, 2), sampling=SamplingParams(max_tokens=8)),
        GenerationRequest(prompt="hi", sampling=SamplingParams(max_tokens=9)),
        GenerationRequest(prompt="hi", sampling=SamplingParams(max_tokens=8, temperature=0.7)),
        GenerationRequest(prompt="hi", sampling=SamplingParams(max_tokens=8, stop=("\n",))),
        GenerationRequest(prompt="hi", sampling=SamplingParams(max_tokens=8, seed=3)),
        GenerationRequest(prompt="hi", sampling=SamplingParams(max_tokens=8), enable_thinking=True),
    ]
    keys = ctx._keys(ctx._model, "generate", variants)
    assert len(set(keys)) == len(variants)
    assert ctx._keys(ctx._model, "generate", [base]) == ctx._keys(ctx._model, "generate", [base])
    assert ctx._keys(ctx._model, "judge", [base]) != ctx._keys(ctx._model, "generate", [base])
    # n samples of one sampled request are n distinct entries; greedy duplicates share one
    sampled = GenerationRequest(prompt="hi", sampling=SamplingParams(temperature=0.8))
    assert len(set(ctx._keys(ctx._model, "generate", [sampled] * 3))) == 3
    assert len(set(ctx._keys(ctx._model, "generate", [base] * 3))) == 1
    # the engine identity (model, config, backend) picks the cache file
    other = ResponseCache(tmp_path, {"model": "tiny", "config_key": "k2", "backend": "hf"})
    assert other.path != cache.path


def test_cached_context_calls_engine_only_for_misses(tmp_path: Path) -> None:
    engine = FakeEngine()
    cache = ResponseCache(tmp_path, {"id": 1})
    ctx = CachedRunContext("tiny", lambda: engine, cache, progress=False)
    reqs = [GenerationRequest(prompt=f"p{i}") for i in range(4)]
    first = ctx.generate(reqs)
    assert engine.requests == 4
    again = CachedRunContext("tiny", lambda: engine, ResponseCache(tmp_path, {"id": 1}), progress=False)
    second = again.generate(reqs + [GenerationRequest(prompt="new")])
    assert engine.requests == 5, "only the new request may reach the engine"
    assert [g.text for g in second[:4]] == [g.text for g in first]
    assert again.stats.cache_hits == 4 and again.stats.new_requests == 1


def test_engine_calls_hold_the_chunk_the_engine_declares(tmp_path: Path) -> None:
    """A GPU engine declares larger calls: the default 512-request generation chunks drained its
    batch 3 times for GSM8K's 1,319 questions. Sizes given by the caller are used as they are."""
    from dataclasses import replace

    from qwenharness.run_context import DEFAULT_CHUNK

    reqs = [GenerationRequest(prompt=f"p{i}") for i in range(1300)]
    small = FakeEngine()
    CachedRunContext("tiny", lambda: small, ResponseCache(tmp_path, {"id": 5}), progress=False).generate(reqs)
    assert small.calls == -(-1300 // DEFAULT_CHUNK["generate"])
    large = FakeEngine()
    large.capabilities = replace(IN_PROCESS, call_size_factor=4)
    CachedRunContext("tiny", lambda: large, ResponseCache(tmp_path, {"id": 6}), progress=False).generate(reqs)
    assert large.calls == 1
    given = FakeEngine()
    given.capabilities = replace(IN_PROCESS, call_size_factor=4)
    CachedRunContext("tiny", lambda: given, ResponseCache(tmp_path, {"id": 7}), progress=False,
                     chunk_sizes={"generate": 100}).generate(reqs)
    assert given.calls == 13


def test_log_likelihood_calls_are_sized_by_text_where_the_engine_says_so(tmp_path: Path) -> None:
    """The GPU engine bounds log-likelihood calls by characters: HellaSwag's 40,168 short requests
    went in 3 calls of 16,384 and spent 3 s more in vLLM than bare vLLM's one call (H200,
    2026-12-04); long 5-shot MMLU requests still come in calls of bounded time."""
    from dataclasses import replace

    from qwenharness.run_context import call_chunks

    short = [LoglikelihoodRequest(f"c{i:04d}", " x") for i in range(5000)]  # 7 characters each
    engine = FakeEngine()
    engine.capabilities = replace(IN_PROCESS, loglikelihood_call_chars=35_000)
    ctx = CachedRunContext("tiny", lambda: engine, ResponseCache(tmp_path, {"id": 8}), progress=False)
    ctx.loglikelihood(short)
    assert engine.calls == 1, "5,000 requests of 35,000 characters: one call, more than the 2,048 of a chunk"
    long = [LoglikelihoodRequest("q" * 9_990 + f"{i:04d}", " x") for i in range(7)]  # 10,000 characters each
    engine.calls = 0
    ctx.loglikelihood(long)
    assert engine.calls == 3, "3 + 3 + 1 requests of 10,000 characters under 35,000"
    items = [(str(i), r) for i, r in enumerate(long)]
    assert [len(c) for c in call_chunks(items, 10, 35_000)] == [3, 3, 1]
    assert [len(c) for c in call_chunks(items, 2, 35_000)] == [2, 2, 2, 1], "the count still bounds a call"
    assert [len(c) for c in call_chunks(items, 10, 5_000)] == [1] * 7, "a longer request has a call of its own"
    assert [len(c) for c in call_chunks(items, 3)] == [3, 3, 1]
    given = FakeEngine()
    given.capabilities = engine.capabilities
    CachedRunContext("tiny", lambda: given, ResponseCache(tmp_path, {"id": 9}), progress=False,
                     chunk_sizes={"loglikelihood": 1000}).loglikelihood(short)
    assert given.calls == 5, "a size the caller gives is used as it is"


def test_datasets_evaluated_together_store_what_one_by_one_stores(tmp_path: Path) -> None:
    """Concurrent datasets (vLLM on a GPU by default) merge generation calls across datasets; the
    records, the aggregates' metrics, the result order and the manifest are those of a sequential run."""
    datasets = ("fake_gen", "fake_gen2", "fake_ll")
    alone = FakeEngine()
    ev, _ = make_evaluator(tmp_path, "alone", alone, datasets=datasets, concurrent_datasets="off")
    one_by_one = ev.run()
    shared = FakeEngine()
    ev, pool = make_evaluator(tmp_path, "together", shared, datasets=datasets, concurrent_datasets="on")
    together = ev.run()
    assert [r.dataset for r in together] == [r.dataset for r in one_by_one] and all(r.ok for r in together)
    for a, b in zip(one_by_one, together):
        assert a.aggregate["metrics"] == b.aggregate["metrics"]
        strip = [{k: v for k, v in r.items() if k != "extra"} for r in records_of(tmp_path, "alone", a.dataset)]
        assert sorted(strip, key=lambda r: r["doc_id"]) == sorted(
            ({k: v for k, v in r.items() if k != "extra"} for r in records_of(tmp_path, "together", b.dataset)),
            key=lambda r: r["doc_id"])
    assert shared.requests == alone.requests and shared.calls < alone.calls, "generation calls were merged"
    assert pool.opened == 1
    manifest = json.loads((tmp_path / "evaluations" / "together" / "manifest.json").read_text())
    assert {e["evaluation"] for e in manifest["invocations"][-1]["wrote"]} == {f"tiny/balanced/{d}" for d in datasets}
    assert all(manifest["evaluations"][f"tiny/balanced/{d}"]["status"] == "done" for d in datasets)


def test_a_judged_dataset_with_a_judge_of_its_own_stays_out_of_the_group(tmp_path: Path) -> None:
    """Another judge model (or a judge server) is another engine: evaluated with the model's datasets,
    the two engines would displace each other, so that dataset runs after the group."""
    class Judged(FakeGen):
        name = "judged"
        needs_judge = True

    factory = {**TASKS, "judged": Judged}
    config = FakePool(FakeEngine()).resolve("tiny", "balanced")

    def together(**settings: Any) -> list[str]:
        s = EvalSettings(models=["tiny"], datasets=["fake_gen", "fake_gen2", "judged"], backend="hf",
                         concurrent_datasets="on", **settings)
        ev = Evaluator(s, resolve_run_paths(tmp_path, "j"), pool=FakePool(FakeEngine()),
                       task_factory=lambda n: factory[n]())
        return ev._together("tiny", s.datasets, config)

    assert together() == ["fake_gen", "fake_gen2", "judged"], "the model judges itself: one engine"
    assert together(judge_model="qwen2.5_14b") == ["fake_gen", "fake_gen2"]
    assert together(judge_server={"base_url": "http://127.0.0.1:8001/v1"}) == ["fake_gen", "fake_gen2"]


def test_engine_error_on_one_request_is_isolated(tmp_path: Path) -> None:
    engine = FakeEngine(fail_prompts=("p2",))
    ctx = CachedRunContext("tiny", lambda: engine, ResponseCache(tmp_path, {"id": 2}), progress=False)
    out = ctx.generate([GenerationRequest(prompt=f"p{i}") for i in range(5)])
    assert [g.error is not None for g in out] == [False, False, True, False, False]
    assert out[2].finish_reason == "error" and "too long" in out[2].error


# -- the runner: resume ---------------------------------------------------------------------------

def test_rerun_of_same_run_id_makes_no_engine_call(tmp_path: Path) -> None:
    engine = FakeEngine()
    ev, pool = make_evaluator(tmp_path, "r1", engine)
    results = ev.run()
    assert all(r.ok for r in results), [r.error for r in results]
    assert engine.calls > 0
    first = {d: records_of(tmp_path, "r1", d) for d in DEFAULT_DATASETS}
    assert all(len(v) == N_DOCS for v in first.values())

    engine2 = FakeEngine()
    ev2, pool2 = make_evaluator(tmp_path, "r1", engine2)
    results2 = ev2.run()
    assert engine2.calls == 0 and pool2.opened == 0, "a rerun must not open an engine nor infer"
    assert {d: records_of(tmp_path, "r1", d) for d in DEFAULT_DATASETS} == first
    for r1, r2 in zip(results, results2):
        assert r1.aggregate["metrics"] == r2.aggregate["metrics"]
        assert r2.aggregate["timings"]["new_requests"] == 0

    run_dir = tmp_path / "evaluations" / "r1"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert {"environment", "settings", "resolved_configs", "command_line", "invocations"} <= set(manifest)
    assert len(manifest["invocations"]) == 2
    agg = json.loads((run_dir / "tiny" / "balanced" / "fake_gen.json").read_text())
    assert agg["n_samples"] == N_DOCS and agg["metrics"]["acc"]["n"] == N_DOCS
    latest = json.loads((tmp_path / "latest_summary.json").read_text())
    assert latest["total_evaluations"] == 2 and latest["models"] == ["tiny"]
    comp = json.loads((tmp_path / "comprehensive_summary.json").read_text())
    assert comp["results"]["tiny"]["balanced"]["fake_ll"]["n_samples"] == N_DOCS


def test_lost_records_are_recomputed_from_the_cache(tmp_path: Path) -> None:
    engine = FakeEngine()
    make_evaluator(tmp_path, "r2", engine)[0].run()
    path = tmp_path / "evaluations" / "r2" / "tiny" / "balanced" / "fake_gen.samples.jsonl"
    full = read_jsonl(path)
    path.write_text("".join(json.dumps(r) + "\n" for r in full[:7]))  # as if killed after 7 records
    engine2 = FakeEngine()
    make_evaluator(tmp_path, "r2", engine2)[0].run()
    assert engine2.calls == 0
    assert read_jsonl(path) == full[:7] + full[7:]  # same records, each once


def test_other_options_under_same_run_id_are_refused(tmp_path: Path) -> None:
    make_evaluator(tmp_path, "r3", FakeEngine(), datasets=("fake_gen",))[0].run()
    ev, _ = make_evaluator(tmp_path, "r3", FakeEngine(), datasets=("fake_gen",), max_tokens=99)
    results = ev.run()
    assert not results[0].ok and "other options" in results[0].error


def test_per_sample_engine_errors_are_recorded_not_fatal(tmp_path: Path) -> None:
    engine = FakeEngine(fail_prompts=("Q3",))
    results = make_evaluator(tmp_path, "r4", engine, datasets=("fake_gen",))[0].run()
    agg = results[0].aggregate
    assert agg["n_errors"] == 1 and agg["n_samples"] == N_DOCS and agg["metrics"]["acc"]["n"] == N_DOCS - 1
    recs = {r["doc_id"]: r for r in records_of(tmp_path, "r4", "fake_gen")}
    assert "too long" in recs["3"]["error"] and recs["4"]["error"] is None


def test_comprehensive_summary_merges_runs(tmp_path: Path) -> None:
    make_evaluator(tmp_path, "a", FakeEngine(), datasets=("fake_gen",))[0].run()
    make_evaluator(tmp_path, "b", FakeEngine(), datasets=("fake_ll",))[0].run()
    comp = json.loads((tmp_path / "comprehensive_summary.json").read_text())
    latest = json.loads((tmp_path / "latest_summary.json").read_text())
    assert set(comp["results"]["tiny"]["balanced"]) == {"fake_gen", "fake_ll"}
    assert comp["total_evaluations"] == 2 and latest["total_evaluations"] == 1


def test_run_paths() -> None:
    p = resolve_run_paths("results", None, "results/evaluations/multi")
    assert (p.run_id, p.run_dir, p.summary_dir) == ("multi", Path("results/evaluations/multi"), Path("results"))
    p = resolve_run_paths("out", "x")
    assert p.run_dir == Path("out/evaluations/x") and p.summary_dir == Path("out")
    with pytest.raises(ConfigError):
        resolve_run_paths("results", "y", "results/evaluations/multi")


# -- kill mid-run, then resume --------------------------------------------------------------------

@pytest.mark.parametrize("kill_on_call,kill_in_append", [("3", "0"), ("8", "0"), ("-", "1")],
                         ids=["during-generation", "during-loglikelihood", "mid-record-write"])
def test_kill_mid_run_then_resume(tmp_path: Path, kill_on_call: str, kill_in_append: str) -> None:
    reference = tmp_path / "ref"
    make_evaluator(reference, "k", FakeEngine())[0].run()

    root = tmp_path / "killed"
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import test_results as t; "
            "t._child_main(*sys.argv[2:])")
    proc = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent), str(root), "k",
                           kill_on_call, kill_in_append], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]

    engine = FakeEngine()
    results = make_evaluator(root, "k", engine)[0].run()
    assert all(r.ok for r in results)
    for d in DEFAULT_DATASETS:
        got, want = records_of(root, "k", d), records_of(reference, "k", d)
        ids = [r["doc_id"] for r in got]
        assert len(ids) == len(set(ids)) == N_DOCS, "every sample exactly once"
        assert sorted(got, key=lambda r: int(r["doc_id"])) == sorted(want, key=lambda r: int(r["doc_id"]))
    ref_engine_requests = 2 * N_DOCS + N_DOCS  # all generation + log-likelihood requests
    assert engine.requests < ref_engine_requests, "the rerun must reuse what was answered before the kill"
    again = FakeEngine()
    make_evaluator(root, "k", again)[0].run()
    assert again.calls == 0


def test_second_process_on_same_dataset_is_refused(tmp_path: Path) -> None:
    store = ResultStore(resolve_run_paths(tmp_path, "busy"))
    with store.dataset_lock("tiny", "balanced", "gsm8k"):
        with pytest.raises(ConfigError, match="another process"):
            with store.dataset_lock("tiny", "balanced", "gsm8k"):
                pass
        with store.dataset_lock("tiny", "balanced", "mmlu"):  # other datasets are free
            pass
    with store.dataset_lock("tiny", "balanced", "gsm8k"):  # released on exit
        pass


@pytest.mark.parametrize("bad", ["", ".hidden", "a/b", "..", "with space", "model_coverage", "latest_summary"])
def test_every_store_refuses_the_same_bad_run_ids(bad: str, tmp_path: Path) -> None:
    from qwenharness.bench import BenchmarkStore
    from qwenharness.coverage import CoverageStore
    from qwenharness.errors import ConfigError

    for make in (lambda: resolve_run_paths(tmp_path, bad), lambda: BenchmarkStore(tmp_path, bad),
                 lambda: CoverageStore(tmp_path, bad)):
        with pytest.raises(ConfigError, match="invalid run id"):
            make()
    assert list(tmp_path.iterdir()) == []


def test_a_new_run_id_is_the_utc_start_time() -> None:
    from datetime import datetime, timezone

    from qwenharness.results import run_id_or_new

    made = run_id_or_new(None)
    assert abs(datetime.strptime(made, "%Y%m%d-%H%M%S").replace(tzinfo=timezone.utc).timestamp()
               - datetime.now(timezone.utc).timestamp()) < 5
    assert run_id_or_new("2025-06-01.baseline_2") == "2025-06-01.baseline_2"
