"""What both engines share, so that they see the same tokens: prompt rendering (chat templates and
thinking), the lm-evaluation-harness context/continuation split, and stop-string truncation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from ..errors import EngineError
from ..models import ModelSpec
from .base import Generation, GenerationRequest, LoglikelihoodRequest

ENDOFTEXT = "<|endoftext|>"


def thinking_flag(spec: ModelSpec, enable_thinking: bool | None) -> bool | None:
    """The `enable_thinking` value to hand a chat template: None for models without the switch."""
    if not spec.thinking_mode:
        return None
    return spec.thinking_default if enable_thinking is None else enable_thinking


def format_chatml(messages: Sequence[dict[str, str]], *, system: str | None, add_generation_prompt: bool) -> str:
    """ChatML for models whose tokenizer has no template (Qwen v1): `<|im_start|>role\\n...<|im_end|>`."""
    parts = []
    if system and (not messages or messages[0].get("role") != "system"):
        parts.append(f"<|im_start|>system\n{system}<|im_end|>\n")
    parts += [f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages]
    if add_generation_prompt:
        parts.append("<|im_start|>assistant\n")
    return "".join(parts)


def render_chat(tokenizer: Any, spec: ModelSpec, messages: Sequence[dict[str, str]], *,
                enable_thinking: bool | None, add_generation_prompt: bool = True) -> str:
    """Chat messages as prompt text, through the model's template (or ChatML for `chatml-builtin`)."""
    if spec.chat_template == "chatml-builtin" or getattr(tokenizer, "chat_template", None) is None:
        return format_chatml(messages, system=spec.default_system_prompt, add_generation_prompt=add_generation_prompt)
    kwargs: dict[str, Any] = {}
    flag = thinking_flag(spec, enable_thinking)
    if flag is not None:
        kwargs["enable_thinking"] = flag
    text = tokenizer.apply_chat_template(list(messages), tokenize=False,
                                         add_generation_prompt=add_generation_prompt, **kwargs)
    if not isinstance(text, str):
        raise EngineError(f"{spec.name}'s chat template returned {type(text).__name__}, not text",
                          "check the tokenizer's chat_template")
    return text


def prompt_token_ids(tokenizer: Any, spec: ModelSpec, request: GenerationRequest) -> list[int]:
    """The token ids an engine feeds for one generation request (identical for both engines)."""
    return prompts_token_ids(tokenizer, spec, [request])[0]


def prompts_token_ids(tokenizer: Any, spec: ModelSpec, requests: Sequence[GenerationRequest]) -> list[list[int]]:
    """The token ids of many generation requests: chat messages through the model's template, then
    without special tokens; a plain prompt with them. Each kind is encoded in one tokenizer call
    (a fast tokenizer spreads a batch over the CPU cores)."""
    out: list[list[int] | None] = [None] * len(requests)
    plain: dict[int, str] = {}  # index -> text encoded with special tokens
    chat: dict[int, str] = {}  # index -> rendered chat text, encoded without
    for i, request in enumerate(requests):
        if request.prompt_token_ids is not None:
            out[i] = list(request.prompt_token_ids)
        elif request.messages is not None:
            text = render_chat(tokenizer, spec, request.messages, enable_thinking=request.enable_thinking)
            chat[i] = text + (request.assistant_prefix or "")
        else:
            assert request.prompt is not None
            plain[i] = request.prompt
    if chat:
        for i, ids in zip(chat, batch_ids(tokenizer, list(chat.values()))):
            out[i] = list(ids)
    if plain:
        for i, ids in zip(plain, tokenizer(list(plain.values()), add_special_tokens=True)["input_ids"]):
            out[i] = list(ids)
    return out  # type: ignore[return-value]  # every index is set above


def too_long_prompt(ids: list[int], max_model_len: int) -> Generation | None:
    """The per-request error for a prompt that cannot fit max_model_len (None if it fits): an engine
    returns it in place of an answer, so one over-long prompt does not fail its batch."""
    if len(ids) < max_model_len:
        return None
    return Generation(text="", prompt_tokens=len(ids), output_tokens=0, finish_reason="error", latency_s=0.0,
                      error=f"prompt of {len(ids)} tokens does not fit max_model_len {max_model_len}; "
                            "shorten the prompt or raise --max-model-len")


def prefix_token_id(tokenizer: Any) -> int:
    """The token an empty context is replaced by: BOS where the model has one, else <|endoftext|>."""
    if tokenizer.bos_token_id is not None:
        return int(tokenizer.bos_token_id)
    eot = tokenizer.convert_tokens_to_ids(ENDOFTEXT)
    if isinstance(eot, int) and eot != tokenizer.unk_token_id:
        return eot
    if tokenizer.eos_token_id is None:
        raise EngineError("the tokenizer has neither a BOS, <|endoftext|> nor an EOS token",
                          "an empty log-likelihood context needs one; give the request a context")
    return int(tokenizer.eos_token_id)


@dataclass(frozen=True)
class EncodedPair:
    context: list[int]
    continuation: list[int]

    def window(self, max_len: int) -> list[int]:
        """Context + continuation, cut from the left so the model input (all but the last token)
        fits `max_len` positions."""
        if len(self.continuation) > max_len:
            raise EngineError(f"a continuation of {len(self.continuation)} tokens exceeds max_model_len {max_len}",
                              "shorten the continuation or raise --max-model-len")
        return (self.context + self.continuation)[-(max_len + 1):]


def batch_ids(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    """Token ids of many texts, without special tokens, in one call. A fast tokenizer's Rust backend
    is called directly (the same ids as `tokenizer(texts)`, without building transformers'
    BatchEncoding: a quarter of the time on MMLU prompts)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and hasattr(backend, "encode_batch"):
        return [e.ids for e in backend.encode_batch(texts, add_special_tokens=False)]
    return [list(x) for x in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def encode_pair(tokenizer: Any, request: LoglikelihoodRequest, prefix_id: int) -> EncodedPair:
    """Split context and continuation tokens as lm-evaluation-harness does (see `encode_pairs`)."""
    return encode_pairs(tokenizer, [request], prefix_id)[0]


def encode_pairs(tokenizer: Any, requests: Sequence[LoglikelihoodRequest], prefix_id: int) -> list[EncodedPair]:
    """Split context and continuation tokens as lm-evaluation-harness does.

    Trailing spaces of the context move to the continuation; the whole string is encoded at once and
    the continuation's tokens are those after the encoding of the context, so a token that straddles
    the boundary counts as continuation. Where the whole encoding does not start with the context's
    (a boundary merge), the split moves back to where they part, so the continuation is never empty.
    An empty context becomes the prefix token.

    All distinct texts of the batch are encoded in one tokenizer call (the fast tokenizer spreads a
    batch over the CPU cores), and a context shared by several requests (the choices of one
    multiple-choice question) is encoded once.
    """
    parts: list[tuple[str | None, str]] = []  # None: empty context (scored after the prefix token)
    for request in requests:
        context, continuation = request.context, request.continuation
        if not continuation:
            raise EngineError("a log-likelihood request has an empty continuation",
                              "give every request a non-empty continuation")
        if not context:
            parts.append((None, continuation))
            continue
        n_spaces = len(context) - len(context.rstrip())
        if n_spaces:
            continuation = context[-n_spaces:] + continuation
            context = context[:-n_spaces]
        parts.append((context, continuation))
    texts = list(dict.fromkeys(t for c, k in parts for t in ((k,) if c is None else (c + k, c))))
    encoded = dict(zip(texts, batch_ids(tokenizer, texts))) if texts else {}
    pairs = []
    for context, continuation in parts:
        if context is None:
            pairs.append(EncodedPair([prefix_id], list(encoded[continuation])))
            continue
        whole, ctx = list(encoded[context + continuation]), encoded[context]
        split = len(ctx)
        if whole[:split] != list(ctx):
            # A token straddles the boundary and BPE merged differently (e.g. "):" + "\n\n" -> ")" ":\n\n"):
            # the continuation starts at the first token where the two encodings part.
            split = next((i for i, (a, b) in enumerate(zip(whole, ctx)) if a != b), min(len(whole), len(ctx)))
        split = min(split, len(whole) - 1)  # never an empty continuation
        pairs.append(EncodedPair(whole[:split], whole[split:]))
    return pairs


def truncate_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """Cut `text` before the earliest stop string; say whether one was found."""
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)
