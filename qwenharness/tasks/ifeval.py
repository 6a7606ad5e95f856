"""IFEval (Zhou et al., 2023): verifiable instructions, scored as Google's instruction_following_eval.

Zero-shot generation of google/IFEval's 541 prompts (chat template when `options.chat`, greedy),
`<think>` stripped before checking (the raw text stays in the record). Four metrics:

- prompt_level_strict_acc / prompt_level_loose_acc: share of prompts whose every instruction is
  followed (loose: each instruction may be satisfied by any of Google's eight response variants);
- inst_level_strict_acc / inst_level_loose_acc: share of all instructions followed, pooled over
  every instruction of every prompt (not a mean of per-prompt shares).

Per-sample scores keep the per-instruction booleans as lists; `aggregate` pools them, and
`instruction_breakdown` gives Google's per-instruction and per-category table. Generation budget:
1280 new tokens (4096 with thinking on) unless the run sets max_tokens.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Literal

from ..engines.base import Generation, GenerationRequest
from ..errors import DataError
from ..metrics import metric
from .base import Output, SampleRecord, Task, TaskOptions, TaskRequest, strip_thinking
from .genutil import chat_request, read_generations, repeat_requests, sampling_for
from .ifeval_checks import build_checks, follows_loose, follows_strict

DEFAULT_MAX_TOKENS = 1280  # IFEval asks for essays of up to several hundred words
THINKING_MAX_TOKENS = 4096  # room for Qwen3's <think> block before the answer

PROMPT_STRICT = "prompt_level_strict_acc"
INST_STRICT = "inst_level_strict_acc"
PROMPT_LOOSE = "prompt_level_loose_acc"
INST_LOOSE = "inst_level_loose_acc"


def _doc_id(doc: dict[str, Any]) -> str:
    if "_index" not in doc:
        raise DataError("IFEval row has no '_index'", "load rows with qwenharness.data.load('ifeval')")
    return str(doc["_index"])


def evaluate_response(doc: dict[str, Any], response: str) -> tuple[list[bool], list[bool]]:
    """Per-instruction (strict, loose) results for one response to one IFEval row."""
    checks = build_checks(doc["instruction_id_list"], doc["kwargs"])
    return follows_strict(checks, response), follows_loose(checks, response)


class IFEval(Task):
    name = "ifeval"
    output_type: Literal["loglikelihood", "generate", "multi_turn"] = "generate"
    default_n_shot = 0
    metric_names = (PROMPT_STRICT, INST_STRICT, PROMPT_LOOSE, INST_LOOSE)

    def build_requests(self, docs: list[dict[str, Any]], options: TaskOptions,
                       fewshot_docs: list[dict[str, Any]] | None = None) -> list[TaskRequest]:
        if options.n_shot:
            raise DataError(f"IFEval is zero-shot; got n_shot={options.n_shot}", "leave the shot count unset or 0")
        max_tokens = THINKING_MAX_TOKENS if options.enable_thinking else DEFAULT_MAX_TOKENS
        out = []
        for doc in docs:
            prompt = doc["prompt"]

            def make(i: int, prompt: str = prompt) -> GenerationRequest:
                sampling = sampling_for(options, max_tokens=max_tokens, sample_index=i)
                if options.chat:
                    return chat_request([{"role": "user", "content": prompt}], sampling, options)
                return GenerationRequest(prompt=prompt, sampling=sampling, enable_thinking=options.enable_thinking)

            out.append(TaskRequest(doc_id=_doc_id(doc), requests=repeat_requests(make, options)))
        return out

    def score(self, doc: dict[str, Any], request: TaskRequest, outputs: list[Output],
              options: TaskOptions) -> SampleRecord:
        _, raws, extra = read_generations(outputs, self.name)
        req = request.requests[0]
        prompt: Any = list(req.messages) if isinstance(req, GenerationRequest) and req.messages else doc["prompt"]
        record = self._record(doc, raws, prompt)
        gens = [o for o in outputs if isinstance(o, Generation)]
        record.prompt_tokens = sum(g.prompt_tokens for g in gens)
        record.output_tokens = sum(g.output_tokens for g in gens)
        record.extra.update(extra)
        if extra.get("engine_errors"):
            record.error = "; ".join(extra["engine_errors"])
        return record

    def breakdown(self, records: list[SampleRecord]) -> dict[str, Any]:
        """Google's per-instruction and per-category accuracy (pooled over instructions)."""
        return {"instruction_id": instruction_breakdown(records)}

    def score_response(self, doc: dict[str, Any], responses: list[str]) -> SampleRecord:
        if not responses:
            raise DataError(f"IFEval doc {_doc_id(doc)} has no response", "give at least one response per prompt")
        return self._record(doc, responses, doc["prompt"])

    def _record(self, doc: dict[str, Any], raw_texts: list[str], prompt: Any) -> SampleRecord:
        """Check each response; several responses (n samples) average the prompt-level scores and pool
        the instruction-level ones."""
        answers, thinking = [], []
        strict_all: list[bool] = []
        loose_all: list[bool] = []
        prompt_strict, prompt_loose = [], []
        for raw in raw_texts:
            answer, think = strip_thinking(raw)
            strict, loose = evaluate_response(doc, answer)
            answers.append(answer)
            thinking.append(think)
            strict_all += strict
            loose_all += loose
            prompt_strict.append(float(all(strict)))
            prompt_loose.append(float(all(loose)))
        scores = {
            PROMPT_STRICT: sum(prompt_strict) / len(prompt_strict),
            INST_STRICT: strict_all,
            PROMPT_LOOSE: sum(prompt_loose) / len(prompt_loose),
            INST_LOOSE: loose_all,
        }
        ids = list(doc["instruction_id_list"])
        extra: dict[str, Any] = {"instruction_id_list": ids, "key": doc.get("key")}
        if any(t is not None for t in thinking) or answers != raw_texts:
            extra["raw_outputs"] = list(raw_texts)
            extra["thinking"] = thinking
        target = {"instruction_id_list": ids, "kwargs": list(doc["kwargs"])}
        return SampleRecord(doc_id=_doc_id(doc), prompt=prompt, target=target, outputs=answers, scores=scores,
                            extra=extra)

    def aggregate(self, records: list[SampleRecord]) -> dict[str, dict[str, Any]]:
        """Prompt level: mean over prompts. Instruction level: mean over all instructions of all prompts."""
        ok = [r for r in records if r.error is None]
        out: dict[str, dict[str, Any]] = {}
        for name in (PROMPT_STRICT, PROMPT_LOOSE):
            out[name] = metric([float(r.scores[name]) for r in ok])
        for name in (INST_STRICT, INST_LOOSE):
            out[name] = metric([float(v) for r in ok for v in r.scores[name]])
        return {name: out[name] for name in self.metric_names}


def instruction_breakdown(records: list[SampleRecord]) -> dict[str, dict[str, dict[str, Any]]]:
    """Accuracy per instruction id and per category (the part before ':'), strict and loose, as in
    Google's report. With n samples per prompt the per-instruction lists hold n copies of the ids."""
    pooled: dict[str, dict[str, list[float]]] = defaultdict(lambda: {"strict": [], "loose": []})
    for r in records:
        ids = list(r.extra.get("instruction_id_list", []))
        n_results = len(r.scores.get(INST_STRICT, []))
        if r.error is not None or not ids or n_results % len(ids):
            continue
        ids = ids * (n_results // len(ids))
        for iid, s, lo in zip(ids, r.scores[INST_STRICT], r.scores[INST_LOOSE], strict=True):
            for key in (iid, iid.split(":")[0]):
                pooled[key]["strict"].append(float(s))
                pooled[key]["loose"].append(float(lo))
    return {key: {mode: metric(vals) for mode, vals in modes.items()} for key, modes in sorted(pooled.items())}
