"""HumanEval and MBPP (sanitized): code generation scored by executing the tests (pass@k).

HumanEval (Chen et al., 2021; human-eval / evalplus conventions)
    Base models continue the function prompt and stop at a new top-level statement
    (``STOP_HUMANEVAL``); the program is ``prompt + completion``, then the problem's ``test`` code and
    ``check(entry_point)``. Chat models follow EvalPlus's instruct protocol: the prompt in a fenced
    block after EvalPlus's instruction, the assistant's turn pre-filled with its response sentence
    and a ```` ```python ```` fence, greedy with 768 new tokens; the code is sanitized as EvalPlus
    does (code_sanitize: the longest parsable prefix, only imports, definitions and assignments, and
    only what the entry point needs). A completion that defines the entry point itself at top level
    is a full function: the program is then ``prompt`` (for its imports and helpers) followed by that
    code, which redefines the stub (EvalPlus runs the sanitized code alone; the prompt adds only the
    imports and helper functions the problem statement itself gives).

MBPP sanitized (Austin et al., 2021; lm-evaluation-harness ``mbpp``)
    "You are an expert Python programmer, and here is your task: {prompt} Your code should pass these
    tests:\\n\\n{the three asserts}\\n[BEGIN]\\n", preceded in base mode by the first three rows of the
    ``prompt`` split as worked examples (``...[BEGIN]\\n{code}\\n[DONE]``, joined by blank lines, the
    original paper's 3-shot prompt); generation stops at ``[DONE]``. Chat mode is 0-shot EvalPlus
    instruct, with MBPP+'s prompt (the task and its first assert in a docstring); the entry point for
    the sanitizer is the reference solution's function that the first assert calls. The program is
    ``test_imports + completion``, then the ``test_list`` asserts (MBPP's base tests, not MBPP+'s).

Sampling: greedy for one sample per problem; with ``num_samples`` n > 1, temperature 0.8 and top-p
0.95 (Codex paper protocol) unless ``options.temperature`` says otherwise, each sample seeded
``seed + i``. Metrics: ``pass@k`` for k in (1, 10, 100) up to n, with the unbiased estimator
(metrics.pass_at_k), averaged over problems. Per-problem records keep every completion with its
status (passed / failed / timeout / error), message and run time.

Execution goes through ``qwenharness.sandbox``: the completion runs in one bubblewrap sandbox and
the tests in another, calling it through a plain-data channel (HumanEval's prompt, with its helpers,
is on the tests' side; MBPP's test imports too). Every record says ``isolation``. All programs of a
run are executed in one parallel batch; wall-clock limits are max(4 s, 4 x the reference solution's
time) (evalplus), the reference being timed only for problems where a sample hit the floor.

One module for both benchmarks: they share the instruct protocol, the sanitizer's use, pass@k and
the sandbox batch, and their differences read best side by side.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ..engines.base import GenerationRequest, SamplingParams
from ..metrics import aggregate_scores, pass_at_k
from ..sandbox import ExecutionResult, Program, Sandbox
from .base import Output, RunContext, SampleRecord, Task, TaskOptions, TaskRequest, engine_failures, strip_thinking
from .fewshot import first_n
from .code_sanitize import called_function, sanitize, top_level_functions
from .genutil import read_generations

STOP_HUMANEVAL = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#")
STOP_MBPP = ("[DONE]",)
PASS_AT_K = (1, 10, 100)
SAMPLING_TEMPERATURE = 0.8
SAMPLING_TOP_P = 0.95

# EvalPlus's instruct protocol (the one the Qwen2.5-Coder report's EvalPlus numbers use): the
# problem in a fence after an instruction, and the assistant's turn opened with a sentence and a
# ```python fence that the model continues. Greedy, 768 new tokens. We also stop at the closing
# fence: the sanitizer keeps only the first block's code, so what follows it cannot change a score.
EVALPLUS_INSTRUCTION = ("Please provide a self-contained Python script that solves the following problem in a "
                        "markdown code block:")
EVALPLUS_RESPONSE = ("Below is a Python script with a self-contained function that solves the problem and "
                     "passes corresponding tests:")
EVALPLUS_MAX_TOKENS = 768
EVALPLUS_STOP = ("\n```",)


def evalplus_messages(problem: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"{EVALPLUS_INSTRUCTION}\n```\n{problem.strip()}\n```\n"}]


def evalplus_prefix() -> str:
    return f"{EVALPLUS_RESPONSE}\n```python\n"


def uses_evalplus_prefix(options: TaskOptions) -> bool:
    """The pre-filled answer start needs the answer to begin at once: not with thinking switched on."""
    return options.enable_thinking is not True
MBPP_PROMPT = (
    "You are an expert Python programmer, and here is your task: {prompt} "
    "Your code should pass these tests:\n\n{tests}\n"
)

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+.#-]*)[^\n]*\n(.*?)(?:\n[ \t]*```|\Z)", re.S)
_PYTHON_TAGS = {"", "python", "py", "python3", "py3"}


# -- completion post-processing -----------------------------------------------------------------

def truncate_at_stop(text: str, stops: Sequence[str]) -> str:
    """Cut `text` at the earliest stop sequence (engines usually did already; `score` re-applies)."""
    cut = len(text)
    for s in stops:
        i = text.find(s)
        if i != -1:
            cut = min(cut, i)
    return text[:cut]


def extract_code(text: str, entry_point: str | None = None) -> str:
    """The code in a chat answer: the fenced block that defines `entry_point` if any, else the
    first Python (or untagged) block, else the first block; an unterminated fence runs to the end.
    Text without fences is returned unchanged."""
    if "```" not in text:
        return text
    blocks = [(m.group(1).lower(), m.group(2)) for m in _FENCE.finditer(text)]
    if not blocks:
        return text
    if entry_point:
        defines = re.compile(rf"^\s*(?:async\s+)?def\s+{re.escape(entry_point)}\s*\(", re.M)
        for _, body in blocks:
            if defines.search(body):
                return body
    for tag, body in blocks:
        if tag in _PYTHON_TAGS:
            return body
    return blocks[0][1]


def defines_function(code: str, name: str) -> bool:
    """True when `code` defines `name` at top level (a full function, not a body)."""
    return re.search(rf"^(?:async\s+)?def\s+{re.escape(name)}\s*\(", code, re.M) is not None


def sampling_params(options: TaskOptions, max_tokens: int, stop: tuple[str, ...], sample_index: int) -> SamplingParams:
    n = max(1, options.num_samples)
    temp = options.temperature if options.temperature is not None else (SAMPLING_TEMPERATURE if n > 1 else 0.0)
    return SamplingParams(
        temperature=temp,
        top_p=SAMPLING_TOP_P if temp > 0 else 1.0,
        max_tokens=options.max_tokens or max_tokens,
        stop=stop,
        seed=(options.seed + sample_index) if temp > 0 else None,
    )


def pass_at_k_scores(n: int, c: int) -> dict[str, float]:
    """pass@k for every k in PASS_AT_K that n samples allow."""
    return {f"pass@{k}": pass_at_k(n, c, k) for k in PASS_AT_K if k <= n}


# -- the shared task --------------------------------------------------------------------------------

class _CodeTask(Task):
    output_type = "generate"
    metric_names = tuple(f"pass@{k}" for k in PASS_AT_K)

    allow_unisolated: bool | None = None  # `score --allow-unisolated`; None: QWENHARNESS_ALLOW_UNISOLATED

    def __init__(self, sandbox: Sandbox | None = None) -> None:
        self._sandbox = sandbox

    @property
    def sandbox(self) -> Sandbox:
        if self._sandbox is None:
            self._sandbox = Sandbox(allow_unisolated=self.allow_unisolated)
        return self._sandbox

    def prepare_sandbox(self, allow_unisolated: bool) -> None:
        self.allow_unisolated = allow_unisolated or None
        self.sandbox  # noqa: B018 - refuses here, before any work, without bubblewrap

    # what each benchmark defines
    def doc_key(self, doc: dict[str, Any]) -> str:
        return str(doc["task_id"])

    def prompt_for(self, doc: dict[str, Any], options: TaskOptions,
                   fewshot_docs: list[dict[str, Any]] | None) -> str | list[dict[str, str]]:
        raise NotImplementedError

    def stops(self, options: TaskOptions) -> tuple[str, ...]:
        raise NotImplementedError

    def base_max_tokens(self) -> int:
        return 512

    def protocol(self, options: TaskOptions) -> str:
        if not options.chat:
            return f"{self.name}-completion"
        return "evalplus-instruct" if uses_evalplus_prefix(options) else "evalplus-instruct-thinking"

    def entry_point(self, doc: dict[str, Any]) -> str | None:
        raise NotImplementedError

    def completion(self, doc: dict[str, Any], text: str, chat: bool) -> str:
        """The code to run from a generation (thinking already stripped)."""
        raise NotImplementedError

    def program(self, doc: dict[str, Any], completion: str) -> Program:
        raise NotImplementedError

    def reference(self, doc: dict[str, Any]) -> Program:
        raise NotImplementedError

    def target(self, doc: dict[str, Any]) -> str:
        raise NotImplementedError

    # requests
    def build_requests(self, docs: list[dict[str, Any]], options: TaskOptions,
                       fewshot_docs: list[dict[str, Any]] | None = None) -> list[TaskRequest]:
        out = []
        n = max(1, options.num_samples)
        for doc in docs:
            prompt = self.prompt_for(doc, options, fewshot_docs)
            reqs: list[GenerationRequest] = []
            for i in range(n):
                if isinstance(prompt, str):
                    reqs.append(GenerationRequest(
                        prompt=prompt, sampling=sampling_params(options, self.base_max_tokens(), self.stops(options), i),
                        enable_thinking=options.enable_thinking))
                elif uses_evalplus_prefix(options):
                    reqs.append(GenerationRequest(
                        messages=tuple(prompt), assistant_prefix=evalplus_prefix(),
                        sampling=sampling_params(options, EVALPLUS_MAX_TOKENS, EVALPLUS_STOP, i),
                        enable_thinking=options.enable_thinking))
                else:  # thinking on: the model opens its own answer and needs room to think
                    reqs.append(GenerationRequest(messages=tuple(prompt),
                                                  sampling=sampling_params(options, 4096, (), i),
                                                  enable_thinking=options.enable_thinking))
            out.append(TaskRequest(doc_id=self.doc_key(doc), requests=reqs))
        return out

    # scoring
    def execute(self, items: Sequence[tuple[dict[str, Any], list[str]]]) -> list[list[ExecutionResult]]:
        """Run every completion of every doc in one parallel batch; results grouped per doc."""
        programs: list[Program] = []
        references: list[Program | None] = []
        for doc, completions in items:
            ref = self.reference(doc)
            for c in completions:
                programs.append(self.program(doc, c))
                references.append(ref)
        flat = self.sandbox.run_scaled(programs, references) if programs else []
        grouped, i = [], 0
        for _, completions in items:
            grouped.append(flat[i:i + len(completions)])
            i += len(completions)
        return grouped

    def make_record(self, doc: dict[str, Any], prompt: Any, completions: list[str],
                    results: list[ExecutionResult], extra: dict[str, Any]) -> SampleRecord:
        n, c = len(results), sum(r.passed for r in results)
        return SampleRecord(
            doc_id=self.doc_key(doc),
            prompt=prompt,
            target=self.target(doc),
            outputs=completions,
            scores=pass_at_k_scores(n, c),
            extra={
                **extra,
                "num_samples": n,
                "num_passed": c,
                "status": [r.status for r in results],
                "error": [r.message or None for r in results],
                "duration_s": [round(r.duration_s, 4) for r in results],
                "timeout_s": [r.timeout_s for r in results],
                "isolation": self.sandbox.isolation,
            },
        )

    def _completions(self, doc: dict[str, Any], texts: list[str], chat: bool) -> list[str]:
        return [self.completion(doc, strip_thinking(t)[0], chat) for t in texts]

    def score(self, doc: dict[str, Any], request: TaskRequest, outputs: list[Output],
              options: TaskOptions) -> SampleRecord:
        return self._score_generated([(doc, request, outputs)], options)[0]

    def _score_generated(self, rows: list[tuple[dict[str, Any], TaskRequest, list[Output]]],
                         options: TaskOptions) -> list[SampleRecord]:
        prepared = []
        for doc, request, outputs in rows:
            answers, raws, extra = read_generations(outputs, self.name)
            completions = [self.completion(doc, a, options.chat) for a in answers]
            prepared.append((doc, request, outputs, completions, extra))
        results = self.execute([(doc, comps) for doc, _, _, comps, _ in prepared])
        records = []
        for (doc, request, outputs, comps, extra), res in zip(prepared, results):
            req = request.requests[0]
            prompt = req.prompt if req.prompt is not None else list(req.messages or ())  # type: ignore[union-attr]
            rec = self.make_record(doc, prompt, comps, res, extra)
            rec.prompt_tokens = sum(getattr(o, "prompt_tokens", 0) for o in outputs)
            rec.output_tokens = sum(getattr(o, "output_tokens", 0) for o in outputs)
            records.append(rec)
        return records

    def run(self, docs: list[dict[str, Any]], ctx: RunContext, options: TaskOptions,
            fewshot_docs: list[dict[str, Any]] | None = None) -> list[SampleRecord]:
        """Generate everything in one engine call, then execute every program in one sandbox batch.
        A doc whose generation failed in the engine becomes an error record."""
        treqs = self.build_requests(docs, options, fewshot_docs)
        outs: list[Any] = ctx.generate([r for t in treqs for r in t.requests])  # type: ignore[misc]
        good: list[tuple[int, tuple[dict[str, Any], TaskRequest, list[Output]]]] = []
        records: list[SampleRecord | None] = [None] * len(docs)
        i = 0
        for k, (doc, t) in enumerate(zip(docs, treqs)):
            mine = outs[i:i + len(t.requests)]
            i += len(t.requests)
            failed = engine_failures(mine)
            if failed:
                req = t.requests[0]
                prompt = req.prompt if req.prompt is not None else list(req.messages or ())  # type: ignore[union-attr]
                records[k] = SampleRecord(doc_id=t.doc_id, prompt=prompt, target=self.target(doc), outputs=[],
                                          scores={}, error=f"engine: {failed[0]}")
            else:
                good.append((k, (doc, t, mine)))
        for (k, _), rec in zip(good, self._score_generated([g for _, g in good], options)):
            records[k] = rec
        return [r for r in records if r is not None]

    def score_responses(self, items: list[tuple[dict[str, Any], list[str]]]) -> list[SampleRecord]:
        """`qwenharness score`: responses produced elsewhere, all executed in one parallel batch.
        A response is used as is (human-eval's `completion`), after removing <think> blocks and
        taking the code out of a ``` fence if it has one."""
        prepared = []
        for doc, responses in items:
            if not responses:
                raise ValueError("score_response needs at least one response")
            prepared.append((doc, responses, self._completions(doc, responses, chat=False)))
        results = self.execute([(doc, comps) for doc, _, comps in prepared])
        return [self.make_record(doc, None, comps, res, {"raw_responses": list(resps)})
                for (doc, resps, comps), res in zip(prepared, results)]

    def score_response(self, doc: dict[str, Any], responses: list[str]) -> SampleRecord:
        return self.score_responses([(doc, responses)])[0]

    def aggregate(self, records: list[SampleRecord]) -> dict[str, dict[str, Any]]:
        """Mean pass@k over problems, for the k that every scored problem's n allows."""
        good = [r for r in records if r.error is None]
        names = [m for m in self.metric_names if good and all(m in r.scores for r in good)]
        return aggregate_scores((r.scores for r in good), names)

    def isolation(self, records: list[SampleRecord]) -> str | None:
        """How the records' code ran: "bubblewrap", "none", "mixed", or None when nothing ran."""
        seen = {r.extra.get("isolation") for r in records if r.extra.get("isolation")}
        return seen.pop() if len(seen) == 1 else ("mixed" if seen else None)


class HumanEval(_CodeTask):
    name = "humaneval"
    default_n_shot = 0

    def prompt_for(self, doc: dict[str, Any], options: TaskOptions,
                   fewshot_docs: list[dict[str, Any]] | None) -> str | list[dict[str, str]]:
        if options.chat:
            return evalplus_messages(doc["prompt"])
        return doc["prompt"]

    def stops(self, options: TaskOptions) -> tuple[str, ...]:
        return STOP_HUMANEVAL

    def entry_point(self, doc: dict[str, Any]) -> str | None:
        return str(doc["entry_point"])

    def completion(self, doc: dict[str, Any], text: str, chat: bool) -> str:
        if chat or "```" in text:
            return sanitize(extract_code(text, doc["entry_point"]), doc["entry_point"])
        return truncate_at_stop(text, STOP_HUMANEVAL)

    def solution(self, doc: dict[str, Any], completion: str) -> str:
        if defines_function(completion, doc["entry_point"]):
            return doc["prompt"] + "\n\n" + completion  # full code: the prompt keeps its imports and helpers
        return doc["prompt"] + completion

    def program(self, doc: dict[str, Any], completion: str) -> Program:
        # the tests run in their own process beside the dataset's prompt (trusted helpers such as
        # HumanEval/32's `poly`); only the entry point is the candidate's
        return Program(self.solution(doc, completion), doc["test"] + f"\n\ncheck({doc['entry_point']})\n",
                       prelude=doc["prompt"], entry_point=doc["entry_point"])

    def reference(self, doc: dict[str, Any]) -> Program:
        return self.program(doc, doc["canonical_solution"])

    def target(self, doc: dict[str, Any]) -> str:
        return doc["canonical_solution"]


class MBPP(_CodeTask):
    name = "mbpp"
    default_n_shot = 3
    fewshot_rule = "first_n"


    def n_shot(self, options: TaskOptions) -> int:
        if options.n_shot is not None:
            return options.n_shot
        return 0 if options.chat else self.default_n_shot

    @staticmethod
    def question(doc: dict[str, Any]) -> str:
        return MBPP_PROMPT.format(prompt=doc["prompt"], tests="\n".join(doc["test_list"]))

    @staticmethod
    def evalplus_problem(doc: dict[str, Any]) -> str:
        """MBPP+'s prompt: the task and its first test in a docstring."""
        return f'"""\n{doc["prompt"]}\n{doc["test_list"][0]}\n"""\n'

    def entry_point(self, doc: dict[str, Any]) -> str | None:
        return called_function(doc["test_list"][0], top_level_functions(doc["code"]))

    def prompt_for(self, doc: dict[str, Any], options: TaskOptions,
                   fewshot_docs: list[dict[str, Any]] | None) -> str | list[dict[str, str]]:
        n = self.n_shot(options)
        shots = first_n(fewshot_docs or [], doc, n, self.name) if n else []
        if options.chat:
            messages: list[dict[str, str]] = []
            for s in shots:
                messages += evalplus_messages(self.evalplus_problem(s))
                messages.append({"role": "assistant", "content": f"{evalplus_prefix()}{s['code']}\n```"})
            return messages + evalplus_messages(self.evalplus_problem(doc))
        parts = [f"{self.question(s)}[BEGIN]\n{s['code']}\n[DONE]" for s in shots]
        parts.append(f"{self.question(doc)}[BEGIN]\n")
        return "\n\n".join(parts)

    def stops(self, options: TaskOptions) -> tuple[str, ...]:
        return STOP_MBPP

    def completion(self, doc: dict[str, Any], text: str, chat: bool) -> str:
        text = truncate_at_stop(text, STOP_MBPP)
        if chat or "```" in text:
            return sanitize(extract_code(text), self.entry_point(doc))
        return text.replace("[BEGIN]", "", 1) if text.lstrip().startswith("[BEGIN]") else text

    def program(self, doc: dict[str, Any], completion: str) -> Program:
        imports = "\n".join(doc.get("test_imports") or [])
        solution = f"{imports}\n{completion}" if imports else completion
        return Program(solution, "\n".join(doc["test_list"]) + "\n", prelude=imports, entry_point=self.entry_point(doc))

    def reference(self, doc: dict[str, Any]) -> Program:
        return self.program(doc, doc["code"])

    def target(self, doc: dict[str, Any]) -> str:
        return doc["code"]
