"""Helpers for generation tasks: building requests from task options, reading generations."""

from __future__ import annotations

from typing import Any

from ..engines.base import Generation, GenerationRequest, SamplingParams
from .base import Output, TaskOptions, strip_thinking


def sampling_for(options: TaskOptions, *, max_tokens: int, stop: tuple[str, ...] = (),
                 temperature: float = 0.0, sample_index: int = 0) -> SamplingParams:
    """The task protocol's sampling, with the run's overrides (temperature, max_tokens).

    With several samples per problem each gets its own seed (options.seed + index), so sampled
    runs are reproducible and the samples differ.
    """
    temp = temperature if options.temperature is None else options.temperature
    return SamplingParams(
        temperature=temp,
        max_tokens=options.max_tokens or max_tokens,
        stop=stop,
        seed=(options.seed + sample_index) if temp > 0 else None,
    )


def repeat_requests(make: Any, options: TaskOptions) -> list[GenerationRequest]:
    """options.num_samples requests for one doc; `make(sample_index)` builds each."""
    return [make(i) for i in range(max(1, options.num_samples))]


def chat_request(messages: list[dict[str, str]], sampling: SamplingParams,
                 options: TaskOptions) -> GenerationRequest:
    return GenerationRequest(messages=tuple(messages), sampling=sampling,
                             enable_thinking=options.enable_thinking)


def read_generations(outputs: list[Output], task: str) -> tuple[list[str], list[str], dict[str, Any]]:
    """(answers with <think> removed, raw texts, extra) for a doc's generations."""
    answers, raws, thinking, finish, errors = [], [], [], [], []
    for o in outputs:
        if not isinstance(o, Generation):
            raise TypeError(f"{task}: expected Generation outputs, got {type(o).__name__}")
        answer, think = strip_thinking(o.text)
        answers.append(answer)
        raws.append(o.text)
        thinking.append(think)
        finish.append(o.finish_reason)
        if o.error:
            errors.append(o.error)
    extra: dict[str, Any] = {"raw_outputs": raws, "finish_reasons": finish}
    if any(t is not None for t in thinking):
        extra["thinking"] = thinking
    if errors:
        extra["engine_errors"] = errors
    return answers, raws, extra
