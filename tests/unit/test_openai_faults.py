"""Backend openai against a small scripted server (qwenharness.fake_openai), no vLLM: each fault gives
a clear error or a clean recovery, in bounded time. The same evaluation against `vllm serve` (greedy
texts and log-likelihoods equal to in-process vLLM, the server killed and restarted) is in
test_openai_serve.py."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from qwenharness.cli import main
from qwenharness.fake_openai import FakeBehaviour, FakeOpenAIServer
from qwenharness.results import read_jsonl

pytestmark = pytest.mark.timeout(120)


def evaluate(tmp_path: Path, url: str, *extra: str, datasets: str = "gsm8k,arc_easy", run: str = "r",
             capsys: pytest.CaptureFixture[str] | None = None) -> tuple[int, str]:
    code = main(["evaluate", "--models", "tiny", "--datasets", datasets, "--sample-limit", "3",
                 "--backend", "openai", "--base-url", url, "--results-dir", str(tmp_path), "--run-id", run,
                 "--no-progress", *extra])
    err = capsys.readouterr().err if capsys is not None else ""
    return code, " ".join(err.split())  # rich wraps long lines


def records(tmp_path: Path, dataset: str, run: str = "r") -> list[dict]:
    return read_jsonl(tmp_path / "evaluations" / run / "tiny" / "balanced" / f"{dataset}.samples.jsonl")


def test_500s_for_a_while_then_recovery(tmp_path: Path) -> None:
    with FakeOpenAIServer(FakeBehaviour(fail_s=1.5)) as server:
        code, _ = evaluate(tmp_path, server.base_url)
        counts = server.behaviour.counts
    assert code == 0
    assert counts.get("500", 0) > 0, "the server did answer 500 at first"
    for dataset in ("gsm8k", "arc_easy"):
        recs = records(tmp_path, dataset)
        assert len(recs) == 3 and not any(r["error"] for r in recs), "every sample recovered, none errored"
    manifest = json.loads((tmp_path / "evaluations" / "r" / "manifest.json").read_text())
    server_id = manifest["servers"]["model:tiny/balanced"]
    assert server_id["served_model"] == "tiny" and server_id["version"] == "fake-1"
    assert server_id["max_model_len"] == 8192


def test_stall_past_the_timeout_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with FakeOpenAIServer(FakeBehaviour(stall_s=3.0)) as server:
        t0 = time.perf_counter()
        code, err = evaluate(tmp_path, server.base_url, "--request-timeout", "0.5", "--max-retries", "1",
                             datasets="gsm8k", capsys=capsys)
        elapsed = time.perf_counter() - t0
    assert code == 1
    assert "failed 2 attempts" in err and "no answer within 0.5 s" in err, err
    assert "--request-timeout" in err, "the fix names the flag"
    assert elapsed < 60, f"a stalled server held the run {elapsed:.0f} s"
    assert records(tmp_path, "gsm8k") == [], "no sample is recorded as done"


def test_wrong_model_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with FakeOpenAIServer() as server:
        code, err = evaluate(tmp_path, server.base_url, "--served-model", "tinny", datasets="gsm8k", capsys=capsys)
    assert code == 1
    assert "does not serve 'tinny'" in err and "did you mean tiny?" in err and "--served-model" in err, err


def test_wrong_api_key(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QH_TEST_KEY", "wrong")
    with FakeOpenAIServer(FakeBehaviour(api_key="right")) as server:
        code, err = evaluate(tmp_path, server.base_url, "--api-key-env", "QH_TEST_KEY", datasets="gsm8k",
                             capsys=capsys)
        assert code == 1
        assert "refused the key in $QH_TEST_KEY (HTTP 401" in err and "--api-key-env" in err, err
        monkeypatch.setenv("QH_TEST_KEY", "right")
        code, _ = evaluate(tmp_path, server.base_url, "--api-key-env", "QH_TEST_KEY", datasets="gsm8k")
    assert code == 0, "the right key works on the same run"
    assert len(records(tmp_path, "gsm8k")) == 3


def test_missing_api_key_variable(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QH_TEST_UNSET", raising=False)
    with FakeOpenAIServer() as server:
        code, err = evaluate(tmp_path, server.base_url, "--api-key-env", "QH_TEST_UNSET", datasets="gsm8k",
                             capsys=capsys)
    assert code == 1 and "QH_TEST_UNSET, which is not set" in err, err


def test_server_without_prompt_logprobs_names_the_capability(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    with FakeOpenAIServer(FakeBehaviour(prompt_logprobs=False)) as server:
        code, err = evaluate(tmp_path, server.base_url, capsys=capsys)
    assert code == 1
    assert "cannot compute log-likelihoods" in err and "prompt log-probabilities" in err, err
    assert len(records(tmp_path, "gsm8k")) == 3, "the generation dataset still ran"
    assert records(tmp_path, "arc_easy") == []


def test_a_server_lost_mid_run_loses_no_answer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The server answers a few requests, then only 503: the run fails with the fix, the answers it got
    are in the cache, and the rerun (server back) asks only for the rest."""
    behaviour = FakeBehaviour(die_after=4)
    with FakeOpenAIServer(behaviour) as server:
        code, err = evaluate(tmp_path, server.base_url, "--max-retries", "0", "--max-concurrency", "1",
                             datasets="arc_easy", capsys=capsys)
        assert code == 1 and "rerun the same command" in err, err
        assert records(tmp_path, "arc_easy") == []
        cache = next((tmp_path / "evaluations" / "r" / "cache").glob("*[0-9a-f].jsonl"))
        saved = len(read_jsonl(cache))
        assert saved == 4 - 1, "every answer before the failure was saved (the probe took one)"
        behaviour.die_after = None
        before = behaviour.counts.get("POST /v1/completions", 0)
        code, _ = evaluate(tmp_path, server.base_url, datasets="arc_easy")
        asked = behaviour.counts["POST /v1/completions"] - before
    assert code == 0
    recs = records(tmp_path, "arc_easy")
    assert sorted(r["doc_id"] for r in recs) == sorted({r["doc_id"] for r in recs}) and len(recs) == 3
    n_choices = sum(len(r["outputs"]) for r in recs)
    assert asked == 1 + n_choices - saved, "the rerun asked only for what was missing (plus its probe)"


def test_judge_on_its_own_server(tmp_path: Path) -> None:
    """--judge-base-url: MT-Bench's answers come from the model's server, the judgments from the judge's."""
    with FakeOpenAIServer() as model_server, FakeOpenAIServer(FakeBehaviour(model="tiny-2x")) as judge_server:
        code, _ = evaluate(tmp_path, model_server.base_url, "--judge-model", "tiny-2x", "--judge-base-url",
                           judge_server.base_url, datasets="mt_bench")
        model_asked = model_server.behaviour.counts.get("POST /v1/completions", 0)
        judge_asked = judge_server.behaviour.counts.get("POST /v1/completions", 0)
    assert code == 0
    assert model_asked >= 2 * 3 and judge_asked >= 3, (model_asked, judge_asked)
    servers = json.loads((tmp_path / "evaluations" / "r" / "manifest.json").read_text())["servers"]
    assert servers["judge:tiny-2x/balanced"]["base_url"] == judge_server.base_url
    assert servers["model:tiny/balanced"]["base_url"] == model_server.base_url


def test_bench_over_http(tmp_path: Path) -> None:
    with FakeOpenAIServer() as server:
        code = main(["bench", "--models", "tiny", "--backend", "openai", "--base-url", server.base_url,
                     "--num-prompts", "4", "--batch-sizes", "1", "--iters", "1", "--warmup", "0", "--overhead-reps",
                     "1", "--input-len", "16", "--output-len", "8", "--text-dataset", "none",
                     "--results-dir", str(tmp_path), "--run-id", "b"])
        asked = server.behaviour.counts.get("POST /v1/completions", 0)
    assert code == 0 and asked >= 4 + 4 + 1
    stored = json.loads((tmp_path / "benchmarks" / "b" / "tiny" / "balanced" / "openai.json").read_text())
    assert stored["throughput"]["random"]["output_tokens_per_s"] > 0
    assert stored["overhead"]["applicable"] is False, "no bare vLLM behind a server"


def test_generation_through_chat_completions(tmp_path: Path) -> None:
    """`--server-api chat`: generation goes to /v1/chat/completions as messages (the server applies
    its own chat template); the answers are recorded and scored like any other."""
    with FakeOpenAIServer(FakeBehaviour()) as server:
        code, _ = evaluate(tmp_path, server.base_url, "--server-api", "chat", datasets="gsm8k")
        counts = dict(server.behaviour.counts)
    assert code == 0
    # one /v1/completions request is the open-time log-probability probe; every answer is a chat one
    assert counts.get("POST /v1/chat/completions") == 3 and counts.get("POST /v1/completions") == 1, counts
    recs = records(tmp_path, "gsm8k")
    assert len(recs) == 3 and not any(r["error"] for r in recs)
    assert all(r["outputs"][0].startswith("reply ") for r in recs), [r["outputs"] for r in recs]
    assert all(r["prompt"][0]["role"] == "user" for r in recs), "the messages, not a rendered prompt"
