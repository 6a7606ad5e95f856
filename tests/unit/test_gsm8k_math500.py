"""GSM8K and MATH-500 tasks: prompts, lm-eval's GSM8K filters, boxed-answer equivalence, run()."""

from __future__ import annotations

from typing import Any

import pytest

from qwenharness.engines.base import Generation, GenerationRequest, LoglikelihoodRequest, LoglikelihoodResult
from qwenharness.errors import ConfigError
from qwenharness.tasks import TaskOptions, get_task
from qwenharness.tasks.gsm8k import GSM8K, exact_match, flexible_extract, strict_extract
from qwenharness.tasks.math500 import MATH500
from qwenharness.tasks.math_equiv import extract_answer, is_equiv, normalize_answer, sympy_available


class FakeGenContext:
    """A RunContext whose engine answers each prompt with a scripted text."""

    model_name = "fake"

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.calls: list[list[GenerationRequest]] = []

    def generate(self, requests: list[GenerationRequest]) -> list[Generation]:
        self.calls.append(list(requests))
        return [Generation(text=self.answer(r), prompt_tokens=10, output_tokens=5, finish_reason="stop",
                           latency_s=0.0) for r in requests]

    def loglikelihood(self, requests: list[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
        raise AssertionError("generation tasks must not ask for log-likelihoods")

    def judge_generate(self, requests: list[GenerationRequest]) -> list[Generation]:
        raise AssertionError("no judge here")

    def apply_chat_template(self, messages: list[dict[str, str]], enable_thinking: bool | None = None) -> str:
        raise AssertionError("generation requests carry messages; the engine applies the template")


GSM_DOC = {"_index": 7, "question": "Tom has 3 apples and buys 4 more. How many apples?",
           "answer": "Tom has 3 + 4 = <<3+4=7>>7 apples.\n#### 7"}
TRAIN = [{"_index": i, "question": f"Q{i}?", "answer": f"Work {i}.\n#### {i}"} for i in range(40)]


# --- GSM8K filters, exactly as lm-eval's gsm8k.yaml -------------------------------------------------

@pytest.mark.parametrize("text, strict, flexible", [
    ("so 5 + 2 = 7\n#### 7", "7", "7"),
    ("#### 1,234.", "1,234.", "1,234."),
    ("#### -3 and then 12 more", "-3", "12"),
    ("The answer is $18.", "[invalid]", "$18."),
    ("I think 4 or maybe 5", "[invalid]", "5"),
    ("no digits at all", "[invalid]", "[invalid]"),
    ("#### 72\n\n#### 9", "72", "9"),
])
def test_gsm8k_filters(text: str, strict: str, flexible: str) -> None:
    assert strict_extract(text) == strict
    assert flexible_extract(text) == flexible


@pytest.mark.parametrize("prediction, reference, same", [
    ("1,234.", "blah\n#### 1234", True),  # "," and a final "." are ignored
    ("$18", "#### 18", True),
    ("18.0", "#### 18", False),  # exact match: no numeric equivalence in lm-eval
    ("-3", "#### 3", False),
    ("[invalid]", "#### 3", False),
])
def test_gsm8k_exact_match_normalisation(prediction: str, reference: str, same: bool) -> None:
    assert exact_match(prediction, reference) is same


def test_gsm8k_default_prompt_is_5_shot_from_train_and_deterministic() -> None:
    task = get_task("gsm8k")
    assert isinstance(task, GSM8K) and task.fewshot_split() == "train"
    opts = TaskOptions(seed=1234)
    (a,) = task.build_requests([GSM_DOC], opts, TRAIN)
    (b,) = task.build_requests([GSM_DOC], opts, TRAIN)
    req = a.requests[0]
    assert isinstance(req, GenerationRequest) and req.prompt is not None
    assert req.prompt == b.requests[0].prompt  # type: ignore[union-attr]
    blocks = req.prompt.split("\n\n")
    assert len(blocks) == 6
    for block in blocks[:5]:
        q, ans = block.split("\nAnswer: ")
        i = int(q.removeprefix("Question: Q").removesuffix("?"))
        assert ans == TRAIN[i]["answer"]
    assert blocks[5] == f"Question: {GSM_DOC['question']}\nAnswer:"
    assert req.sampling.temperature == 0.0
    assert set(req.sampling.stop) == {"Question:", "</s>", "<|im_end|>", "\n\n"}
    (c,) = task.build_requests([GSM_DOC], TaskOptions(seed=99), TRAIN)
    assert c.requests[0].prompt != req.prompt  # type: ignore[union-attr]


def test_gsm8k_chat_is_zero_shot_messages() -> None:
    task = get_task("gsm8k")
    (t,) = task.build_requests([GSM_DOC], TaskOptions(chat=True, enable_thinking=False), TRAIN)
    req = t.requests[0]
    assert isinstance(req, GenerationRequest) and req.messages is not None and req.prompt is None
    assert len(req.messages) == 1 and GSM_DOC["question"] in req.messages[0]["content"]
    assert "The final answer is" in req.messages[0]["content"]
    assert req.enable_thinking is False


def test_gsm8k_run_scores_generations_and_strips_thinking() -> None:
    task = get_task("gsm8k")
    docs = [GSM_DOC, {**GSM_DOC, "_index": 8, "answer": "x\n#### 1,000"}]

    def answer(req: GenerationRequest) -> str:
        return "<think>maybe #### 99</think>3+4=7\nThe final answer is 7"

    ctx = FakeGenContext(answer)
    records = task.run(docs, ctx, TaskOptions(chat=True), TRAIN)
    assert len(ctx.calls) == 1 and len(ctx.calls[0]) == 2  # one batch for the whole dataset
    assert [r.doc_id for r in records] == ["7", "8"]
    first, second = records
    # the chat answer's "The final answer is 7" is what strict_match reads with the chat prompt
    assert first.scores == {"strict_match": 1.0, "flexible_extract": 1.0, "numeric_match": 1.0}
    assert second.scores == {"strict_match": 0.0, "flexible_extract": 0.0, "numeric_match": 0.0}
    assert "99" not in first.outputs[0] and "<think>" in first.extra["raw_outputs"][0]
    assert first.extra["thinking"] == ["maybe #### 99"]
    agg = task.aggregate(records)
    assert agg["flexible_extract"]["value"] == 0.5 and agg["flexible_extract"]["n"] == 2


# --- MATH-500 ------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, answer", [
    ("so $\\boxed{\\frac{1}{2}}$ and finally $\\boxed{\\frac{\\sqrt{3}}{2}}$.", "\\frac{\\sqrt{3}}{2}"),
    ("nested \\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}", "\\left( 3, \\frac{\\pi}{2} \\right)"),
    ("\\fbox{7}", "7"),
    ("the answer is $\\boxed 5$.", "5"),
    ("Final Answer: The final answer is $24$. I hope it is correct.", "24"),
    ("\\boxed{3} then \\boxed{4", "3"),
    ("no answer here", None),
])
def test_math_extraction(text: str, answer: str | None) -> None:
    assert extract_answer(text) == answer


@pytest.mark.parametrize("a, b", [
    ("0.5", "\\frac12"), ("\\dfrac{1}{2}", "\\frac{1}{2}"), ("x = 3", "3"), ("10^\\circ", "10"),
    ("\\$5", "5"), ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})"), ("1,000", "1000"),
    ("10,\\!080", "10080"), ("\\text{(C)}", "C"), ("5.4 \\text{ cents}", "5.4"), ("15\\mbox{ cm}^2", "15"),
    (".0000672", "0.0000672"), ("1,-2", "-2, 1"), ("4210_{5}", "4210_5"), ("x \\in [-2,7]", "[-2,7]"),
    ("2.50", "2.5"), ("50\\%", "50"), ("\\sqrt3", "\\sqrt{3}"), ("3.", "3"),
])
def test_math_equivalent_by_normalisation(a: str, b: str) -> None:
    assert is_equiv(a, b), (normalize_answer(a), normalize_answer(b))


@pytest.mark.skipif(not sympy_available(), reason="sympy's LaTeX parser needs antlr4-python3-runtime 4.11")
@pytest.mark.parametrize("a, b", [
    ("2\\sqrt{2}", "\\sqrt{8}"), ("x^2+1", "1+x^2"), ("\\tfrac{3}{4}", "0.75"), ("\\frac{\\pi}{2}", "\\pi/2"),
    ("\\begin{pmatrix} -1/3 \\\\ 2/3 \\end{pmatrix}", "\\begin{pmatrix} -\\frac13 \\\\ \\frac{2}{3} \\end{pmatrix}"),
])
def test_math_equivalent_by_sympy(a: str, b: str) -> None:
    assert normalize_answer(a) != normalize_answer(b)
    assert is_equiv(a, b)


@pytest.mark.parametrize("a, b", [
    ("3", "4"), ("\\frac{1}{2}", "\\frac{1}{3}"), ("x^2+1", "x^2+2"), ("\\pi", "3.14"), ("(1,-2)", "(-2,1)"),
    ("\\text{Sunday}", "Sun"), ("[2,5)", "[2,5]"), ("1,2", "1,2,3"), (None, "3"),
])
def test_math_not_equivalent(a: str | None, b: str) -> None:
    assert not is_equiv(a, b)


def test_math500_prompts() -> None:
    task = get_task("math500")
    assert isinstance(task, MATH500)
    doc = {"_index": 0, "problem": "What is $1+1$?", "solution": "$1+1=\\boxed{2}$", "answer": "2"}
    (zero,) = task.build_requests([doc], TaskOptions())
    prompt = zero.requests[0].prompt  # type: ignore[union-attr]
    assert "\\boxed{}" in prompt and prompt.endswith("Problem:\nWhat is $1+1$?\n\nSolution:")
    (four,) = task.build_requests([doc], TaskOptions(n_shot=4))
    prompt4 = four.requests[0].prompt  # type: ignore[union-attr]
    assert prompt4.count("Problem:\n") == 5 and prompt4.count("I hope it is correct.") == 4
    (chat,) = task.build_requests([doc], TaskOptions(chat=True))
    assert chat.requests[0].messages[-1]["content"].startswith("What is $1+1$?")  # type: ignore[index]
    with pytest.raises(ConfigError):
        task.build_requests([doc], TaskOptions(n_shot=5))


def test_math500_run_and_parse_error() -> None:
    task = get_task("math500")
    docs = [{"_index": 0, "problem": "p", "solution": "s", "answer": "\\frac{1}{2}"},
            {"_index": 1, "problem": "q", "solution": "s", "answer": "3"}]
    texts = {"p": "It is $\\boxed{\\dfrac12}$.", "q": "I give up."}
    ctx = FakeGenContext(lambda r: texts["p" if "\np\n" in r.prompt else "q"])
    records = task.run(docs, ctx, TaskOptions())
    assert [r.scores["exact_match"] for r in records] == [1.0, 0.0]
    assert "parse_error" in records[1].extra and "parse_error" not in records[0].extra
    rec = task.score_response(docs[0], ["<think>\\boxed{7}</think>so \\boxed{0.5}"])
    assert rec.scores["exact_match"] == 1.0 and rec.extra["extracted"] == ["0.5"]


def test_time_limit_raises_and_keeps_an_outer_alarm() -> None:
    import signal
    import time

    from qwenharness.tasks.math_equiv import _time_limit

    old = signal.signal(signal.SIGALRM, lambda *a: None)
    signal.setitimer(signal.ITIMER_REAL, 100.0)
    try:
        with pytest.raises(TimeoutError):
            with _time_limit(0.05):
                time.sleep(2)
        remaining, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 90.0 < remaining <= 100.0
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def test_models_without_a_thinking_switch_get_the_chat_token_budget() -> None:
    # Found on SmolLM2 (no thinking switch: enable_thinking None): GSM8K asked for the 4096-token
    # thinking budget, so a looping answer ran 4x longer than the protocol's 1024.
    doc = {"question": "1+1?", "answer": "#### 2", "_index": 0}
    for thinking, expected in ((None, 1024), (False, 1024), (True, 4096)):
        (treq,) = GSM8K().build_requests([doc], TaskOptions(chat=True, enable_thinking=thinking))
        assert treq.requests[0].sampling.max_tokens == expected, thinking
    (treq,) = MATH500().build_requests([{"problem": "1+1", "answer": "2", "_index": 0}],
                                       TaskOptions(chat=True, enable_thinking=None))
    assert treq.requests[0].sampling.max_tokens == 2048


def test_strict_match_reads_the_format_the_chat_prompt_asks_for() -> None:
    # Found on SmolLM2 and Qwen2.5-Coder answers: chat answers end "The final answer is 28." and never
    # contain the completion format's "#### N", so strict_match was 0 by construction.
    doc = {"question": "q", "answer": "so 28 in all\n#### 28", "_index": 0}
    task = GSM8K()
    reply = "Step 1: 14 + 14 = 28.\nThe final answer is 28."
    scores, extra = task._score_texts(doc, [reply], chat=True)
    assert scores == {"strict_match": 1.0, "flexible_extract": 1.0, "numeric_match": 1.0}
    assert extra["strict_extracted"] == ["28."]
    assert task._score_texts(doc, ["14 + 14 = 28\n#### 28"], chat=False)[0]["strict_match"] == 1.0
    assert task._score_texts(doc, ["The final answer is 28."], chat=False)[0]["strict_match"] == 0.0
    # lower-case mid-sentence wording is not the asked-for line (lm-eval's pattern is case-sensitive)
    assert task._score_texts(doc, ["so the final answer is 28."], chat=True)[0] == {
        "strict_match": 0.0, "flexible_extract": 1.0, "numeric_match": 1.0}
    # `qwenharness score` on text of unknown origin: the format the text uses
    assert task.score_response(doc, [reply]).scores["strict_match"] == 1.0


def test_numeric_match_counts_a_right_answer_written_as_a_decimal() -> None:
    # Found on Qwen2.5-Coder-1.5B-Instruct (GSM8K, chat): "\boxed{8.0}" for a reference of 8 is right,
    # but lm-eval's string match (flexible_extract) scores it 0; numeric_match compares numbers.
    doc = {"question": "q", "answer": "4 + 4 = 8\n#### 8", "_index": 0}
    reply = "print(total_cost)\n```\n```output\n8.0\n```\nThe total is \\(\\boxed{8.0}\\)."
    scores, extra = GSM8K()._score_texts(doc, [reply], chat=True)
    assert scores == {"strict_match": 0.0, "flexible_extract": 0.0, "numeric_match": 1.0}
    assert extra["numeric_answer"] == [8.0]
    big = {"question": "q", "answer": "#### 1,000", "_index": 0}
    assert GSM8K()._score_texts(big, ["The final answer is $1,000.00"], chat=True)[0]["numeric_match"] == 1.0
    assert GSM8K()._score_texts(doc, ["\\boxed{268}"], chat=True)[0]["numeric_match"] == 0.0
    assert GSM8K()._score_texts(doc, ["I cannot say"], chat=True)[0]["numeric_match"] == 0.0
