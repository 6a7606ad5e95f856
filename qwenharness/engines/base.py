"""The Engine protocol: two batch calls, as in lm-evaluation-harness's LM interface.

Callers submit a whole dataset (or more) per call; engines schedule it. Never one prompt at a time.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    top_k: int = 0  # 0 = disabled
    max_tokens: int = 256
    stop: tuple[str, ...] = ()
    seed: int | None = None
    ignore_eos: bool = False  # generate exactly max_tokens tokens (throughput runs)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["stop"] = list(self.stop)
        return d


@dataclass(frozen=True)
class GenerationRequest:
    """Either a raw `prompt` or chat `messages` ([{"role": ..., "content": ...}]), or token ids."""

    prompt: str | None = None
    messages: tuple[dict[str, str], ...] | None = None
    prompt_token_ids: tuple[int, ...] | None = None
    sampling: SamplingParams = field(default_factory=SamplingParams)
    enable_thinking: bool | None = None  # Qwen3 only; None = the model's default
    # Chat only: text that opens the assistant's turn, which the model continues (EvalPlus's
    # instruct protocol starts the answer with a code fence). The generation excludes it.
    assistant_prefix: str | None = None

    def __post_init__(self) -> None:
        if self.assistant_prefix is not None and self.messages is None:
            raise ValueError("assistant_prefix needs chat messages")
        given = sum(x is not None for x in (self.prompt, self.messages, self.prompt_token_ids))
        if given != 1:
            raise ValueError("a GenerationRequest needs exactly one of prompt, messages, prompt_token_ids")


@dataclass
class Generation:
    text: str
    prompt_tokens: int
    output_tokens: int
    finish_reason: str  # "stop" | "length" | "error"
    latency_s: float  # wall time of the batch call this request was part of, per request share
    first_token_s: float | None = None  # time to first token, where the engine exposes it
    error: str | None = None
    output_token_ids: list[int] | None = None  # generated ids (up to the stop), where the engine has them

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LoglikelihoodRequest:
    context: str
    continuation: str


@dataclass
class LoglikelihoodResult:
    logprob: float  # summed log-probability of the continuation's tokens given the context
    is_greedy: bool  # every continuation token is the argmax at its position
    num_tokens: int  # continuation tokens scored

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class EngineInfo:
    engine: str  # "vllm" | "hf"
    model: str
    preset: str
    device: str
    dtype: str
    versions: dict[str, str]
    weight_bytes: int | None
    kv_cache_bytes: int | None
    load_time_s: float
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class EngineCapabilities:
    """What an engine can do, declared by the engine (callers read it; they never probe attributes).

    loglikelihood: it returns summed continuation log-probabilities (a server may not).
    streams_results: generate/loglikelihood take `on_result` and call it with (index, result) pairs as
      requests finish, so the caller can save each answer before the batch ends (the server engine).
    in_process: the model runs in this process (memory, GPU and harness-overhead figures apply).
    call_size_factor: engine calls hold this many times the runner's default chunk of requests
      (qwenharness.run_context.DEFAULT_CHUNK). Each call ends by draining the engine's batch and a run
      killed mid-call loses that call, so a slow engine wants small calls and a GPU large ones.
    loglikelihood_call_chars: log-likelihood calls are bounded by this many characters of context and
      continuation instead of by count (None: by count), so that a call's time, and what a crash loses,
      stays about the same whether the texts are long (5-shot MMLU) or short (HellaSwag).
    bare_vllm: the engine exposes `llm` (its vllm.LLM) and `to_vllm_sampling(params, prompt_len)`, so
      the harness-overhead benchmark can send the same requests to vLLM bare (qwenharness.bench).
    """

    loglikelihood: bool = True
    streams_results: bool = False
    in_process: bool = True
    call_size_factor: int = 1
    loglikelihood_call_chars: int | None = None
    bare_vllm: bool = False


IN_PROCESS = EngineCapabilities()


@runtime_checkable
class Engine(Protocol):
    """`progress`: False, True (the engine's own bar) or a tqdm factory as vLLM's `use_tqdm` takes it
    (qwenharness.console.forwarding_bar), which the engine updates as requests finish. Engines whose
    `capabilities.streams_results` is set also take `on_result` (see EngineCapabilities)."""

    name: str
    capabilities: EngineCapabilities

    def generate(self, requests: list[GenerationRequest], *, progress: Any = False) -> list[Generation]: ...

    def loglikelihood(self, requests: list[LoglikelihoodRequest], *, progress: Any = False) -> list[LoglikelihoodResult]: ...

    def apply_chat_template(self, messages: list[dict[str, str]], *, enable_thinking: bool | None = None,
                            add_generation_prompt: bool = True) -> str: ...

    def info(self) -> EngineInfo: ...

    def close(self) -> None: ...
