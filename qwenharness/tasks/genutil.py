"""Helpers for generation tasks: building requests from task options, reading generations."""

from __future__ import annotations

from typing import Any

from ..engines.base import Generation, GenerationRequest, SamplingParams
from .base import Output, SampleRecord, Task, TaskOptions, TaskRequest, strip_thinking


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


class AnswerExtractionTask(Task):
    """A generation task scored by extracting an answer from each text (GSM8K, MATH-500).

    Subclasses give their stop strings and token budgets, `shots_for` (what `raw_prompt` and
    `chat_messages` take besides the doc), `reference(doc)` and `_score_texts(doc, texts) -> (scores, extra)`."""

    stop: tuple[str, ...]  # raw prompts only: chat templates end turns themselves
    raw_max_tokens: int
    chat_max_tokens: int  # with thinking switched off
    thinking_max_tokens: int  # with thinking on or left to the model

    def shots_for(self, doc: dict[str, Any], n_shot: int, options: TaskOptions,
                  fewshot_docs: list[dict[str, Any]] | None) -> Any:
        return n_shot

    def raw_prompt(self, doc: dict[str, Any], shots: Any) -> str:
        raise NotImplementedError

    def chat_messages(self, doc: dict[str, Any], shots: Any) -> list[dict[str, str]]:
        raise NotImplementedError

    def build_requests(self, docs: list[dict[str, Any]], options: TaskOptions,
                       fewshot_docs: list[dict[str, Any]] | None = None) -> list[TaskRequest]:
        n = self.n_shot(options)
        out = []
        for doc in docs:
            shots = self.shots_for(doc, n, options, fewshot_docs)
            if options.chat:
                messages = self.chat_messages(doc, shots)
                # the long budget only when thinking is on: a model without the switch has None here
                max_tokens = self.thinking_max_tokens if options.enable_thinking is True else self.chat_max_tokens
                reqs = repeat_requests(lambda i: chat_request(
                    messages, sampling_for(options, max_tokens=max_tokens, sample_index=i), options), options)
            else:
                prompt = self.raw_prompt(doc, shots)
                reqs = repeat_requests(lambda i: GenerationRequest(
                    prompt=prompt, sampling=sampling_for(options, max_tokens=self.raw_max_tokens, stop=self.stop,
                                                         sample_index=i),
                    enable_thinking=options.enable_thinking), options)
            out.append(TaskRequest(doc_id=str(doc["_index"]), requests=reqs))
        return out

    def reference(self, doc: dict[str, Any]) -> str:
        raise NotImplementedError

    def _score_texts(self, doc: dict[str, Any], texts: list[str],
                     chat: bool | None = None) -> tuple[dict[str, float], dict[str, Any]]:
        """Scores of a doc's answers; `chat` says which prompt format produced them (None: unknown)."""
        raise NotImplementedError

    def score(self, doc: dict[str, Any], request: TaskRequest, outputs: list[Output],
              options: TaskOptions) -> SampleRecord:
        answers, _raw, extra = read_generations(outputs, self.name)
        req = request.requests[0]
        assert isinstance(req, GenerationRequest)
        scores, more = self._score_texts(doc, answers, chat=req.messages is not None)
        return SampleRecord(
            doc_id=request.doc_id,
            prompt=req.prompt if req.prompt is not None else list(req.messages or ()),
            target=self.reference(doc),
            outputs=answers,
            scores=scores,
            extra={**extra, **more},
            prompt_tokens=sum(getattr(o, "prompt_tokens", 0) for o in outputs),
            output_tokens=sum(getattr(o, "output_tokens", 0) for o in outputs),
        )

    def score_response(self, doc: dict[str, Any], responses: list[str]) -> SampleRecord:
        if not responses:
            raise ValueError("score_response needs at least one response")
        answers = [strip_thinking(r)[0] for r in responses]
        scores, extra = self._score_texts(doc, answers)
        extra["raw_responses"] = list(responses)
        return SampleRecord(doc_id=str(doc.get("_index", "")), prompt=None, target=self.reference(doc),
                            outputs=answers, scores=scores, extra=extra)
