"""MT-Bench: FastChat's judge prompts, rating parsing, per-category temperatures, the two-turn flow."""

from __future__ import annotations

from typing import Any

import pytest

from qwenharness.data import load
from qwenharness.engines.base import Generation, GenerationRequest
from qwenharness.errors import HarnessError
from qwenharness.tasks import get_task
from qwenharness.tasks.base import TaskOptions
from qwenharness.tasks.mt_bench import (
    TEMPERATURE,
    MTBench,
    format_judge_prompt,
    judge_prompt_name,
    parse_rating,
)


def _gen(text: str, error: str | None = None) -> Generation:
    return Generation(text=text, prompt_tokens=5, output_tokens=3, finish_reason="error" if error else "stop",
                      latency_s=0.0, error=error)


class FakeCtx:
    """Records every request; answers turns by echoing and judges by a rule per turn."""

    model_name = "fake"

    def __init__(self, judge_text=lambda req: "Rating: [[7]]", fail_turn1_for: tuple[int, ...] = ()):
        self.generated: list[GenerationRequest] = []
        self.judged: list[GenerationRequest] = []
        self.judge_text = judge_text
        self.fail_turn1_for = fail_turn1_for

    def generate(self, requests: list[GenerationRequest]) -> list[Generation]:
        self.generated += requests
        out = []
        for r in requests:
            turn = sum(m["role"] == "user" for m in r.messages)
            q = r.messages[0]["content"]
            if turn == 1 and any(q.startswith(f"Q{i}") for i in self.fail_turn1_for):
                out.append(_gen("", error="prompt too long"))
            else:
                out.append(_gen(f"<think>hmm</think>answer{turn} to {q[:3]}"))
        return out

    def judge_generate(self, requests: list[GenerationRequest]) -> list[Generation]:
        self.judged += requests
        return [_gen(self.judge_text(r)) for r in requests]

    def loglikelihood(self, requests):  # pragma: no cover - MT-Bench never asks
        raise AssertionError("MT-Bench asked for log-likelihoods")

    def apply_chat_template(self, messages, enable_thinking=None):  # pragma: no cover
        raise AssertionError


def _docs() -> list[dict[str, Any]]:
    return [
        {"question_id": 81, "category": "writing", "turns": ["Q81 write", "Q81 again"]},
        {"question_id": 111, "category": "math", "turns": ["Q111 area?", "Q111 circle?"]},
        {"question_id": 131, "category": "extraction", "turns": ["Q131 extract", "Q131 more"]},
    ]


def test_registered() -> None:
    task = get_task("mt_bench")
    assert isinstance(task, MTBench) and task.output_type == "multi_turn"


@pytest.mark.parametrize("text,rating", [
    ("Rating: [[7]]", 7.0), ("[[7.5]]", 7.5), ("I give it [8].", 8.0), ("see [3] but overall [[9]]", 9.0),
    ("[[10]]", 10.0), ("[[1]]", 1.0),
])
def test_parse_rating(text: str, rating: float) -> None:
    assert parse_rating(text) == (rating, None)


@pytest.mark.parametrize("text,why", [
    ("no rating here", "no [[rating]]"), ("Rating: 7", "no [[rating]]"), ("[[11]]", "outside"),
    ("[[0]]", "outside"), ("", "no [[rating]]"), ("[[seven]]", "no [[rating]]"),
])
def test_unparseable_ratings(text: str, why: str) -> None:
    rating, reason = parse_rating(text)
    assert rating is None and why in reason


def test_judge_prompt_choice() -> None:
    assert judge_prompt_name("writing", 1) == "single-v1"
    assert judge_prompt_name("writing", 2) == "single-v1-multi-turn"
    for cat in ("math", "reasoning", "coding"):
        assert judge_prompt_name(cat, 1) == "single-math-v1"
        assert judge_prompt_name(cat, 2) == "single-math-v1-multi-turn"


def test_judge_prompts_format_with_real_templates() -> None:
    prompts = {p["name"]: p for p in load("mt_bench", split="judge_prompts")}
    q = {"turns": ["What is 2+2?", "And times 3?"]}
    system, user = format_judge_prompt(prompts["single-v1"], q, ["4", "12"], None, 1)
    assert system == "You are a helpful assistant."
    assert "[Question]\nWhat is 2+2?" in user and "[The Start of Assistant's Answer]\n4\n" in user
    assert "And times 3?" not in user
    system, user = format_judge_prompt(prompts["single-math-v1-multi-turn"], q, ["4", "12"], ["four", "twelve"], 2)
    assert "second question" in system
    for piece in ("### User:\nWhat is 2+2?", "### Reference answer:\nfour", "### Reference answer:\ntwelve",
                  "### Assistant A:\n4", "### User:\nAnd times 3?", "### Assistant A:\n12"):
        assert piece in user
    _, user = format_judge_prompt(prompts["single-math-v1"], q, ["4", "12"], ["four", "twelve"], 1)
    assert "[The Start of Reference Answer]\nfour\n" in user and "twelve" not in user


def test_per_category_temperatures_and_max_tokens() -> None:
    task = MTBench()
    assert TEMPERATURE == {"writing": 0.7, "roleplay": 0.7, "extraction": 0.0, "math": 0.0, "coding": 0.0,
                           "reasoning": 0.0, "stem": 0.1, "humanities": 0.1}
    opts = TaskOptions()
    for cat, temp in TEMPERATURE.items():
        req = task.turn_request({"question_id": 1, "category": cat, "turns": ["a", "b"]}, opts, [])
        assert req.sampling.temperature == temp and req.sampling.max_tokens == 1024
    req = task.turn_request({"question_id": 1, "category": "writing", "turns": ["a", "b"]},
                            TaskOptions(temperature=0.0, max_tokens=64), [])
    assert req.sampling.temperature == 0.0 and req.sampling.max_tokens == 64


def test_two_turn_flow_and_judging() -> None:
    task = MTBench()
    judge = lambda r: "Rating: [[8]]" if "second" not in r.messages[0]["content"] else "I cannot decide."
    ctx = FakeCtx(judge_text=judge)
    records = task.run(_docs(), ctx, TaskOptions(enable_thinking=False))

    turn2 = [r for r in ctx.generated if len(r.messages) == 3]
    assert len(turn2) == 3
    for r in turn2:  # turn 2 sees the model's own turn-1 answer, thinking stripped
        assert r.messages[1]["role"] == "assistant" and r.messages[1]["content"].startswith("answer1")
        assert "<think>" not in r.messages[1]["content"]
    assert len(ctx.judged) == 6
    assert all(r.sampling.temperature == 0.0 for r in ctx.judged)
    names = [j["prompt_name"] for rec in records for j in rec.extra["judgments"]]
    assert names == ["single-v1", "single-v1-multi-turn", "single-math-v1", "single-math-v1-multi-turn",
                     "single-v1", "single-v1-multi-turn"]
    math_prompt = ctx.judged[2].messages[1]["content"]
    assert "[The Start of Reference Answer]" in math_prompt  # GPT-4 reference for math

    assert [r.scores["score_turn1"] for r in records] == [8.0, 8.0, 8.0]
    assert [r.scores["score_turn2"] for r in records] == [None, None, None]
    assert all(r.scores["judge_parse_failures"] == 1 for r in records)
    assert records[0].outputs == ["answer1 to Q81", "answer2 to Q81"]
    assert records[0].extra["raw_outputs"][0].startswith("<think>")
    unparsed = records[0].extra["judgments"][1]
    assert unparsed["rating"] is None and unparsed["judgment"] == "I cannot decide."  # kept, not dropped

    agg = task.aggregate(records)
    assert agg["score"]["value"] == 8.0 and agg["score"]["n"] == 3
    assert agg["score_turn2"]["n"] == 0
    assert agg["judge_parse_failure_rate"]["value"] == pytest.approx(0.5) and agg["judge_parse_failure_rate"]["n"] == 6
    assert agg["score_math"]["value"] == 8.0 and agg["score_writing"]["n"] == 1
    for name, m in agg.items():
        lo, hi = task.metric_range(name)
        assert m["n"] == 0 or lo <= m["value"] <= hi


def test_turn1_failure_is_a_per_sample_error() -> None:
    task = MTBench()
    ctx = FakeCtx(fail_turn1_for=(111,))
    records = task.run(_docs(), ctx, TaskOptions())
    assert records[1].error and "turn 1" in records[1].error
    assert records[0].error is None and records[2].error is None
    assert len(ctx.judged) == 4  # the failed question is not judged
    assert task.aggregate(records)["judge_parse_failure_rate"]["value"] == 0.0


def test_score_cannot_grade_mt_bench() -> None:
    with pytest.raises(HarnessError, match="judge"):
        MTBench().score_response(_docs()[0], ["an answer"])
