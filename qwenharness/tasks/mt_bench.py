"""MT-Bench: 80 two-turn questions graded by an LLM judge, following FastChat's llm_judge protocol.

Answers (FastChat gen_model_answer): the model answers turn 1 in a chat; turn 2 is asked in the same
chat, after the model's own turn-1 answer (thinking stripped). Sampling temperature per category
(writing/roleplay 0.7, extraction/math/coding/reasoning 0.0, stem/humanities 0.1; 0 = greedy),
at most 1024 new tokens (TaskOptions.max_tokens overrides; TaskOptions.temperature overrides every
category). One answer per question (`num_samples` does not apply).

Judging (FastChat gen_judgment, single-answer grading): each turn is graded separately with the
prompts of the "judge_prompts" split: `single-v1` for turn 1 and `single-v1-multi-turn` for turn 2;
math, reasoning and coding questions use `single-math-v1` / `single-math-v1-multi-turn` with the
GPT-4 reference answers ("reference_answer_gpt-4" split). The judge gets the prompt's system message
and the filled template as a chat, at temperature 0 with up to `judge_max_tokens` (2048, as FastChat
asks GPT-4 for). The rating is the first `[[x]]` in the judgment, else the first `[x]` (FastChat's
fallback). A judgment without one, or with a rating outside 1-10 (FastChat keeps those; we do not,
so that the scores stay on the judge's scale), is unparseable: it is counted in
`judge_parse_failure_rate` and kept in the record's `extra`, never silently dropped.

Metrics: `score` (mean rating over every parsed turn, FastChat's overall number), `score_turn1`,
`score_turn2`, `score_<category>`, all on the 1-10 scale, and `judge_parse_failure_rate` in [0, 1].

The judge is whatever engine the runner opens for `--judge-model` (default: the model under test).
FastChat used GPT-4; with local engines use the strongest instruct model available, e.g.
`--judge-model qwen2.5_14b` (or a larger local/Hub model). The tiny CPU model rarely produces a
parseable rating, so its runs report a parse-failure rate near 1 and no scores.

`qwenharness score` cannot grade MT-Bench: grading needs a judge model, so `score_response` raises a
HarnessError pointing at `qwenharness evaluate --datasets mt_bench --judge-model M`.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from ..engines.base import GenerationRequest, SamplingParams
from ..errors import DataError, HarnessError
from ..metrics import metric
from .base import Output, RunContext, SampleRecord, Task, TaskOptions, TaskRequest, strip_thinking

TEMPERATURE = {
    "writing": 0.7, "roleplay": 0.7, "extraction": 0.0, "math": 0.0,
    "coding": 0.0, "reasoning": 0.0, "stem": 0.1, "humanities": 0.1,
}
DEFAULT_TEMPERATURE = 0.7  # FastChat's value for a category not in the table
NEED_REF_CATS = ("math", "reasoning", "coding")
MAX_NEW_TOKENS = 1024
JUDGE_MAX_TOKENS = 2048
RATING_MIN, RATING_MAX = 1.0, 10.0
CATEGORIES = tuple(TEMPERATURE)

_ONE_SCORE = re.compile(r"\[\[(\d+\.?\d*)\]\]")
_ONE_SCORE_BACKUP = re.compile(r"\[(\d+\.?\d*)\]")


def parse_rating(judgment: str) -> tuple[float | None, str | None]:
    """(rating, None) or (None, why it is unparseable), FastChat's `[[x]]` then `[x]` rule."""
    match = _ONE_SCORE.search(judgment) or _ONE_SCORE_BACKUP.search(judgment)
    if not match:
        return None, "no [[rating]] in the judgment"
    try:
        value = float(ast.literal_eval(match.group(1)))
    except (ValueError, SyntaxError):
        return None, f"rating {match.group(1)!r} is not a number"
    if not RATING_MIN <= value <= RATING_MAX:
        return None, f"rating {value:g} is outside {RATING_MIN:g}-{RATING_MAX:g}"
    return value, None


def judge_prompt_name(category: str, turn: int) -> str:
    base = "single-math-v1" if category in NEED_REF_CATS else "single-v1"
    return base + ("-multi-turn" if turn == 2 else "")


def format_judge_prompt(template: dict[str, Any], question: dict[str, Any], answers: list[str],
                        reference: list[str] | None, turn: int) -> tuple[str, str]:
    """(system prompt, user prompt) for judging `turn` (1 or 2) of one answered question."""
    kwargs: dict[str, str] = {}
    if reference is not None:
        kwargs["ref_answer_1"] = reference[0]
        kwargs["ref_answer_2"] = reference[1] if len(reference) > 1 else ""
    if turn == 2:
        user = template["prompt_template"].format(question_1=question["turns"][0], question_2=question["turns"][1],
                                                  answer_1=answers[0], answer_2=answers[1], **kwargs)
    else:
        user = template["prompt_template"].format(question=question["turns"][0], answer=answers[0], **kwargs)
    return template["system_prompt"], user


def category_temperature(category: str, options: TaskOptions) -> float:
    if options.temperature is not None:
        return options.temperature
    return TEMPERATURE.get(category, DEFAULT_TEMPERATURE)


class MTBench(Task):
    name = "mt_bench"
    output_type = "multi_turn"
    default_n_shot = 0
    metric_names = ("score", "score_turn1", "score_turn2", "judge_parse_failure_rate")
    needs_judge = True

    def __init__(self, data_dir: str | None = None, judge_max_tokens: int = JUDGE_MAX_TOKENS):
        self.data_dir = data_dir
        self.judge_max_tokens = judge_max_tokens
        self._prompts: dict[str, dict[str, Any]] | None = None
        self._refs: dict[int, list[str]] | None = None

    # -- data -------------------------------------------------------------------------------------
    def judge_prompts(self) -> dict[str, dict[str, Any]]:
        if self._prompts is None:
            from ..data import load

            self._prompts = {p["name"]: p for p in load("mt_bench", split="judge_prompts", data_dir=self.data_dir)}
        return self._prompts

    def references(self) -> dict[int, list[str]]:
        if self._refs is None:
            from ..data import load

            rows = load("mt_bench", split="reference_answer_gpt-4", data_dir=self.data_dir)
            self._refs = {int(r["question_id"]): list(r["choices"][0]["turns"]) for r in rows}
        return self._refs

    def metric_range(self, name: str) -> tuple[float, float]:
        return (0.0, 1.0) if name == "judge_parse_failure_rate" else (RATING_MIN, RATING_MAX)

    # -- requests ---------------------------------------------------------------------------------
    def _sampling(self, doc: dict[str, Any], options: TaskOptions) -> SamplingParams:
        return SamplingParams(temperature=category_temperature(doc["category"], options),
                              max_tokens=options.max_tokens or MAX_NEW_TOKENS,
                              seed=options.seed + int(doc["question_id"]))

    def turn_request(self, doc: dict[str, Any], options: TaskOptions, history: list[str]) -> GenerationRequest:
        """The request for turn len(history)+1: the questions so far, with the model's earlier answers."""
        messages: list[dict[str, str]] = []
        for i, answer in enumerate(history):
            messages += [{"role": "user", "content": doc["turns"][i]}, {"role": "assistant", "content": answer}]
        messages.append({"role": "user", "content": doc["turns"][len(history)]})
        return GenerationRequest(messages=tuple(messages), sampling=self._sampling(doc, options),
                                 enable_thinking=options.enable_thinking)

    def judge_request(self, doc: dict[str, Any], answers: list[str], turn: int) -> tuple[GenerationRequest, str]:
        name = judge_prompt_name(doc["category"], turn)
        template = self.judge_prompts().get(name)
        if template is None:
            raise DataError(f"MT-Bench judge prompt '{name}' is missing from the judge_prompts split",
                            "restore judge_prompts.jsonl from FastChat's llm_judge data")
        reference = None
        if doc["category"] in NEED_REF_CATS:
            reference = self.references().get(int(doc["question_id"]))
            if reference is None:
                raise DataError(f"MT-Bench question {doc['question_id']} ({doc['category']}) has no GPT-4 "
                                "reference answer", "restore reference_answer_gpt-4.jsonl (30 answers)")
        system, user = format_judge_prompt(template, doc, answers, reference, turn)
        req = GenerationRequest(messages=({"role": "system", "content": system}, {"role": "user", "content": user}),
                                sampling=SamplingParams(temperature=0.0, max_tokens=self.judge_max_tokens),
                                enable_thinking=False)
        return req, name

    def build_requests(self, docs: list[dict[str, Any]], options: TaskOptions,
                       fewshot_docs: list[dict[str, Any]] | None = None) -> list[TaskRequest]:
        """Turn-1 requests only: turn 2 depends on the answers, see `run`."""
        return [TaskRequest(doc_id=_doc_id(d), requests=[self.turn_request(d, options, [])]) for d in docs]

    def score(self, doc: dict[str, Any], request: TaskRequest, outputs: list[Output],
              options: TaskOptions) -> SampleRecord:
        raise HarnessError("MT-Bench is scored by its own run() (two turns, then an LLM judge)",
                           "evaluate it with `qwenharness evaluate --datasets mt_bench`")

    def score_response(self, doc: dict[str, Any], responses: list[str]) -> SampleRecord:
        raise HarnessError(
            "`qwenharness score` cannot grade MT-Bench: its scores come from an LLM judge, which score does not run",
            "run `qwenharness evaluate --datasets mt_bench --judge-model MODEL` to answer and judge in one go")

    # -- the protocol -----------------------------------------------------------------------------
    def run(self, docs: list[dict[str, Any]], ctx: RunContext, options: TaskOptions,
            fewshot_docs: list[dict[str, Any]] | None = None) -> list[SampleRecord]:
        n = len(docs)
        raw: list[list[str]] = [[] for _ in range(n)]
        answers: list[list[str]] = [[] for _ in range(n)]
        errors: list[str | None] = [None] * n
        tokens = [[0, 0] for _ in range(n)]  # prompt, output
        prompts: list[Any] = [None] * n
        for turn in (1, 2):
            live = [i for i in range(n) if errors[i] is None]
            reqs = [self.turn_request(docs[i], options, answers[i]) for i in live]
            for i, req in zip(live, reqs):
                prompts[i] = [dict(m) for m in req.messages or ()]
            for i, gen in zip(live, ctx.generate(reqs)):
                if gen.error:
                    errors[i] = f"turn {turn} generation failed: {gen.error}"
                    continue
                answer, _thinking = strip_thinking(gen.text)
                raw[i].append(gen.text)
                answers[i].append(answer.strip())
                tokens[i][0] += gen.prompt_tokens
                tokens[i][1] += gen.output_tokens

        jobs: list[tuple[int, int, str]] = []
        jreqs: list[GenerationRequest] = []
        for i in range(n):
            if errors[i] is not None:
                continue
            for turn in (1, 2):
                req, name = self.judge_request(docs[i], answers[i], turn)
                jobs.append((i, turn, name))
                jreqs.append(req)
        judgments = ctx.judge_generate(jreqs) if jreqs else []
        per_doc: dict[int, list[dict[str, Any]]] = {}
        for (i, turn, name), req, gen in zip(jobs, jreqs, judgments):
            text = gen.text if not gen.error else ""
            verdict, _ = strip_thinking(text)
            rating, why = parse_rating(verdict) if not gen.error else (None, f"judge failed: {gen.error}")
            per_doc.setdefault(i, []).append({
                "turn": turn, "prompt_name": name, "user_prompt": req.messages[-1]["content"] if req.messages else "",
                "judgment": text, "rating": rating, "parse_error": why,
            })

        records = []
        for i, doc in enumerate(docs):
            extra: dict[str, Any] = {"question_id": doc["question_id"], "category": doc["category"],
                                     "temperature": category_temperature(doc["category"], options),
                                     "raw_outputs": raw[i], "judgments": per_doc.get(i, [])}
            if errors[i] is not None:
                records.append(SampleRecord(doc_id=_doc_id(doc), prompt=prompts[i], target=None,
                                            outputs=answers[i], scores={}, extra=extra, prompt_tokens=tokens[i][0],
                                            output_tokens=tokens[i][1], error=errors[i]))
                continue
            judged = {j["turn"]: j for j in per_doc.get(i, [])}
            r1 = judged.get(1, {}).get("rating")
            r2 = judged.get(2, {}).get("rating")
            parsed = [r for r in (r1, r2) if r is not None]
            scores = {
                "score_turn1": r1, "score_turn2": r2,
                "score": sum(parsed) / len(parsed) if parsed else None,
                "judge_parse_failures": 2 - len(parsed),
            }
            records.append(SampleRecord(
                doc_id=_doc_id(doc), prompt=prompts[i],
                target=self.references().get(int(doc["question_id"])) if doc["category"] in NEED_REF_CATS else None,
                outputs=answers[i], scores=scores, extra=extra, prompt_tokens=tokens[i][0],
                output_tokens=tokens[i][1]))
        return records

    def aggregate(self, records: list[SampleRecord]) -> dict[str, dict[str, Any]]:
        ok = [r for r in records if r.error is None]
        turn1 = [r.scores["score_turn1"] for r in ok if r.scores.get("score_turn1") is not None]
        turn2 = [r.scores["score_turn2"] for r in ok if r.scores.get("score_turn2") is not None]
        failures = [1.0 if j.get("rating") is None else 0.0 for r in ok for j in r.extra.get("judgments", [])]
        out = {
            "score": metric(turn1 + turn2),
            "score_turn1": metric(turn1),
            "score_turn2": metric(turn2),
            "judge_parse_failure_rate": metric(failures),
        }
        for cat in sorted({r.extra.get("category") for r in ok if r.extra.get("category")}):
            vals = [s for r in ok if r.extra.get("category") == cat
                    for s in (r.scores.get("score_turn1"), r.scores.get("score_turn2")) if s is not None]
            out[f"score_{cat}"] = metric(vals)
        return out


__all__ = ["MTBench", "parse_rating", "format_judge_prompt", "judge_prompt_name", "TEMPERATURE"]



def _doc_id(doc: dict[str, Any]) -> str:
    """The dataset's id of a question: its row index (question_id when the row carries no index)."""
    return str(doc["_index"]) if "_index" in doc else str(doc["question_id"])
