"""An outside package's task and engine, one module: what docs/extending.md walks through.

`last_word`: the model is asked for the last word of a sentence and scored by exact match. It
carries its own DatasetSpec (`dataset`), so qwenharness reads `<data_dir>/last_word/test.jsonl`.
`echo`: an engine that answers every prompt with the prompt's last word, and scores a continuation
by its length (a fake for tests: no model, no GPU). Both are found through the entry points in
qh_example-0.1.dist-info/entry_points.txt, as an installed package's would be.
"""

from __future__ import annotations

from typing import Any

from qwenharness.data.registry import DatasetSpec, FieldSpec
from qwenharness.engines.base import (
    EngineCapabilities,
    EngineInfo,
    Generation,
    GenerationRequest,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    SamplingParams,
)
from qwenharness.tasks.base import SampleRecord, Task, TaskOptions, TaskRequest


class LastWord(Task):
    name = "last_word"
    output_type = "generate"
    metric_names = ("exact_match",)
    dataset = DatasetSpec(
        name="last_word", title="Last word (example)", task="generate", hub_id="example/last_word",
        hub_config=None, eval_split="test", splits={"test": 4}, license="CC0-1.0",
        fields=(FieldSpec("sentence", "str"), FieldSpec("answer", "str")),
    )

    def build_requests(self, docs: list[dict[str, Any]], options: TaskOptions,
                       fewshot_docs: list[dict[str, Any]] | None = None) -> list[TaskRequest]:
        return [TaskRequest(str(d["_index"]), [GenerationRequest(
            prompt=f"Repeat the last word of: {d['sentence']}", sampling=SamplingParams(max_tokens=8))])
            for d in docs]

    def score(self, doc: dict[str, Any], request: TaskRequest, outputs: list[Any],
              options: TaskOptions) -> SampleRecord:
        return self.score_response(doc, [outputs[0].text])

    def score_response(self, doc: dict[str, Any], responses: list[str]) -> SampleRecord:
        answer = responses[0].strip()
        return SampleRecord(doc_id=str(doc["_index"]), prompt=doc["sentence"], target=doc["answer"],
                            outputs=[answer], scores={"exact_match": float(answer == doc["answer"])})


class EchoEngine:
    name = "echo"
    capabilities = EngineCapabilities(in_process=False)

    def __init__(self, config: Any) -> None:
        self.config = config

    def generate(self, requests: list[GenerationRequest], *, progress: Any = False) -> list[Generation]:
        out = []
        for r in requests:
            words = (r.prompt or "").rstrip(".").split()
            out.append(Generation(text=words[-1] if words else "", prompt_tokens=len(words), output_tokens=1,
                                  finish_reason="stop", latency_s=0.0))
        return out

    def loglikelihood(self, requests: list[LoglikelihoodRequest], *, progress: Any = False) -> list[LoglikelihoodResult]:
        return [LoglikelihoodResult(logprob=-float(len(r.continuation)), is_greedy=False,
                                    num_tokens=len(r.continuation.split())) for r in requests]

    def apply_chat_template(self, messages: list[dict[str, str]], *, enable_thinking: bool | None = None,
                            add_generation_prompt: bool = True) -> str:
        return "\n".join(m["content"] for m in messages)

    def info(self) -> EngineInfo:
        return EngineInfo(engine="echo", model=self.config.model.name, preset=self.config.preset, device="none",
                          dtype="none", versions={}, weight_bytes=None, kv_cache_bytes=None, load_time_s=0.0)

    def close(self) -> None:
        pass


def open_echo_engine(config: Any, endpoint: Any = None) -> EchoEngine:
    return EchoEngine(config)
