"""HumanEval and MBPP: reference solutions pass, empty completions fail, pass@k, prompts and code
extraction. The reference runs execute every problem of both datasets in the sandbox."""

from __future__ import annotations

import math
from typing import Any

import psutil
import pytest

from qwenharness.data import load, load_split
from qwenharness.engines.base import Generation, GenerationRequest
from qwenharness.metrics import pass_at_k
from qwenharness.sandbox import Sandbox
from qwenharness.tasks import TaskOptions, get_task
from qwenharness.tasks.code import (
    MBPP,
    STOP_HUMANEVAL,
    HumanEval,
    extract_code,
    pass_at_k_scores,
    truncate_at_stop,
)


@pytest.fixture(scope="module")
def humaneval_docs() -> list[dict[str, Any]]:
    return load("humaneval")


@pytest.fixture(scope="module")
def mbpp_docs() -> list[dict[str, Any]]:
    return load("mbpp")


@pytest.fixture(scope="module")
def humaneval() -> HumanEval:
    return HumanEval(Sandbox())


@pytest.fixture(scope="module")
def mbpp() -> MBPP:
    return MBPP(Sandbox())


def core(metric: dict[str, Any]) -> dict[str, Any]:
    """A metric's value, standard error and n (aggregates also carry a confidence interval)."""
    return {k: metric[k] for k in ("value", "stderr", "n")}


def by_id(docs: list[dict[str, Any]], task_id: Any) -> dict[str, Any]:
    return next(d for d in docs if d["task_id"] == task_id)


# -- the registry ------------------------------------------------------------------------------------

def test_registry_gives_the_code_tasks() -> None:
    assert isinstance(get_task("humaneval"), HumanEval)
    assert isinstance(get_task("mbpp"), MBPP)


# -- gold answers ------------------------------------------------------------------------------------

def test_all_humaneval_reference_solutions_pass(humaneval: HumanEval, humaneval_docs: list[dict[str, Any]]) -> None:
    assert len(humaneval_docs) == 164
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    records = humaneval.score_responses([(d, [d["canonical_solution"]]) for d in humaneval_docs])
    failed = [(r.doc_id, r.extra["status"], r.extra["error"]) for r in records if r.scores["pass@1"] != 1.0]
    assert failed == []
    agg = humaneval.aggregate(records)
    assert list(agg) == ["pass@1"] and core(agg["pass@1"]) == {"value": 1.0, "stderr": 0.0, "n": 164}
    assert [p for p in psutil.Process().children(recursive=True) if p.pid not in before] == []


def test_all_mbpp_reference_solutions_pass(mbpp: MBPP, mbpp_docs: list[dict[str, Any]]) -> None:
    assert len(mbpp_docs) == 257
    records = mbpp.score_responses([(d, [d["code"]]) for d in mbpp_docs])
    failed = [(r.doc_id, r.extra["status"], r.extra["error"]) for r in records if r.scores["pass@1"] != 1.0]
    assert failed == []
    assert mbpp.aggregate(records)["pass@1"]["value"] == 1.0


@pytest.mark.parametrize("split", ["prompt", "train", "validation"])
def test_mbpp_reference_solutions_of_every_other_split_pass(mbpp: MBPP, split: str) -> None:
    docs = load_split("mbpp", split)
    records = mbpp.score_responses([(d, [d["code"]]) for d in docs])
    failed = [(r.doc_id, r.extra["status"], r.extra["error"]) for r in records if r.scores["pass@1"] != 1.0]
    assert docs and failed == []


def test_empty_completions_score_zero(humaneval: HumanEval, mbpp: MBPP, humaneval_docs: list[dict[str, Any]],
                                      mbpp_docs: list[dict[str, Any]]) -> None:
    he = humaneval.score_responses([(d, [""]) for d in humaneval_docs])
    assert core(humaneval.aggregate(he)["pass@1"]) == {"value": 0.0, "stderr": 0.0, "n": 164}
    assert {s for r in he for s in r.extra["status"]} <= {"failed", "error"}
    mb = mbpp.score_responses([(d, [""]) for d in mbpp_docs[:40]])
    assert mbpp.aggregate(mb)["pass@1"]["value"] == 0.0
    assert all(r.extra["status"] == ["error"] and "NameError" in r.extra["error"][0] for r in mb)


def test_wrong_solution_fails_with_its_message(humaneval: HumanEval, humaneval_docs: list[dict[str, Any]]) -> None:
    doc = by_id(humaneval_docs, "HumanEval/0")
    rec = humaneval.score_response(doc, ["    return False\n"])
    assert rec.scores == {"pass@1": 0.0}
    assert rec.extra["status"] == ["failed"] and rec.extra["error"][0].startswith("AssertionError")


# -- pass@k ------------------------------------------------------------------------------------------

def _combinatorial(n: int, c: int, k: int) -> float:
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


@pytest.mark.parametrize("n", [1, 2, 5, 10, 20])
def test_pass_at_k_matches_the_combinatorial_definition(n: int) -> None:
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(_combinatorial(n, c, k), abs=1e-12)


def test_pass_at_k_known_values() -> None:
    assert pass_at_k(10, 0, 1) == 0.0
    assert pass_at_k(10, 10, 10) == 1.0
    assert pass_at_k(5, 1, 1) == pytest.approx(0.2)
    assert pass_at_k(10, 3, 10) == 1.0  # every 10-subset contains a pass
    assert pass_at_k(4, 2, 2) == pytest.approx(1 - 1 / 6)
    with pytest.raises(ValueError):
        pass_at_k(5, 1, 10)


def test_pass_at_k_scores_report_only_the_k_that_n_allows() -> None:
    assert pass_at_k_scores(1, 1) == {"pass@1": 1.0}
    assert set(pass_at_k_scores(10, 3)) == {"pass@1", "pass@10"}
    assert set(pass_at_k_scores(100, 3)) == {"pass@1", "pass@10", "pass@100"}
    assert pass_at_k_scores(10, 3)["pass@1"] == pytest.approx(0.3)


def test_n_samples_give_pass_at_k(humaneval: HumanEval, humaneval_docs: list[dict[str, Any]]) -> None:
    doc = by_id(humaneval_docs, "HumanEval/2")  # truncate_number
    right, wrong = doc["canonical_solution"], "    return 0.0\n"
    rec = humaneval.score_response(doc, [right, wrong, "", wrong, right, wrong, wrong, wrong, wrong, wrong])
    assert rec.extra["num_passed"] == 2 and rec.extra["num_samples"] == 10
    assert rec.scores["pass@1"] == pytest.approx(0.2)
    assert rec.scores["pass@10"] == 1.0
    assert len(rec.extra["status"]) == 10 and rec.extra["status"][0] == "passed"
    other = humaneval.score_response(by_id(humaneval_docs, "HumanEval/0"), [""] * 10)
    agg = humaneval.aggregate([rec, other])
    assert agg["pass@1"]["value"] == pytest.approx(0.1) and agg["pass@10"]["value"] == pytest.approx(0.5)
    # a problem with fewer samples limits the k reported for the whole set
    assert set(humaneval.aggregate([rec, humaneval.score_response(doc, [right])])) == {"pass@1"}


# -- post-processing ---------------------------------------------------------------------------------

def test_truncate_at_the_first_stop_sequence() -> None:
    body = "    return x + 1\n"
    for tail in ("\ndef helper():\n    pass\n", "\nclass A:\n    pass\n", "\nif __name__ == '__main__':\n    f()\n",
                 "\nprint(f(1))\n", "\n# test\nassert f(1) == 2\n"):
        assert truncate_at_stop(body + tail, STOP_HUMANEVAL) == body
    assert truncate_at_stop(body, STOP_HUMANEVAL) == body
    assert truncate_at_stop("    x = 1\n    # an indented comment stays\n", STOP_HUMANEVAL).endswith("stays\n")


def test_extract_code_from_fences() -> None:
    assert extract_code("no fences here") == "no fences here"
    assert extract_code("Here:\n```python\ndef f():\n    return 1\n```\nDone.") == "def f():\n    return 1"
    assert extract_code("```\nx = 1\n```") == "x = 1"
    assert extract_code("```py\nx = 1\n```") == "x = 1"
    assert extract_code("```python\ndef f():\n    return 1\n") == "def f():\n    return 1\n"  # cut off
    two = "```text\nusage\n```\n```python\ny = 2\n```"
    assert extract_code(two) == "y = 2"
    many = "```python\nimport math\n```\nthen\n```python\ndef g(x):\n    return x\n```"
    assert extract_code(many, "g") == "def g(x):\n    return x"
    assert extract_code(many) == "import math"


def test_chat_answer_with_full_function_passes(humaneval: HumanEval, humaneval_docs: list[dict[str, Any]]) -> None:
    doc = by_id(humaneval_docs, "HumanEval/0")
    full = ("<think>pairs of numbers</think>Sure! Here it is:\n```python\nfrom typing import List\n\n"
            "def has_close_elements(numbers: List[float], threshold: float) -> bool:\n"
            "    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])\n"
            "```\nThis compares every pair.")
    rec = humaneval.score_response(doc, [full])
    assert rec.scores["pass@1"] == 1.0, rec.extra
    assert rec.outputs[0].startswith("from typing import List")
    # a full function relying on a helper from the prompt (HumanEval/10 uses is_palindrome)
    doc10 = by_id(humaneval_docs, "HumanEval/10")
    code = "def make_palindrome(string: str) -> str:\n" + doc10["canonical_solution"]
    assert humaneval.score_response(doc10, [f"```python\n{code}```"]).scores["pass@1"] == 1.0


def test_base_generation_is_truncated_before_execution(humaneval: HumanEval,
                                                       humaneval_docs: list[dict[str, Any]]) -> None:
    doc = by_id(humaneval_docs, "HumanEval/2")
    text = doc["canonical_solution"] + "\n\nprint(truncate_number(3.5))\nraise SystemExit(0)\n"
    req = humaneval.build_requests([doc], TaskOptions())[0]
    out = Generation(text=text, prompt_tokens=10, output_tokens=20, finish_reason="stop", latency_s=0.1)
    rec = humaneval.score(doc, req, [out], TaskOptions())
    assert rec.scores["pass@1"] == 1.0 and rec.outputs == [doc["canonical_solution"] + "\n"]
    assert rec.extra["raw_outputs"] == [text] and rec.output_tokens == 20


def test_mbpp_chat_answer_in_a_fence_passes(mbpp: MBPP, mbpp_docs: list[dict[str, Any]]) -> None:
    doc = mbpp_docs[0]
    answer = f"Here is my solution.\n```python\n{doc['code']}\n```\n[DONE]"
    rec = mbpp.score_response(doc, [answer])
    assert rec.scores["pass@1"] == 1.0


# -- prompts and requests ----------------------------------------------------------------------------

def test_humaneval_requests(humaneval: HumanEval, humaneval_docs: list[dict[str, Any]]) -> None:
    doc = humaneval_docs[0]
    [t] = humaneval.build_requests([doc], TaskOptions())
    [r] = t.requests
    assert t.doc_id == "HumanEval/0" and r.prompt == doc["prompt"]
    assert r.sampling.temperature == 0.0 and r.sampling.stop == STOP_HUMANEVAL
    [t] = humaneval.build_requests([doc], TaskOptions(num_samples=5, seed=7))
    temps = {r.sampling.temperature for r in t.requests}
    assert len(t.requests) == 5 and temps == {0.8}
    assert [r.sampling.seed for r in t.requests] == [7, 8, 9, 10, 11]
    assert {r.sampling.top_p for r in t.requests} == {0.95}
    [t] = humaneval.build_requests([doc], TaskOptions(num_samples=2, temperature=0.2))
    assert {r.sampling.temperature for r in t.requests} == {0.2}
    [t] = humaneval.build_requests([doc], TaskOptions(chat=True))
    msg = t.requests[0].messages
    assert msg is not None and msg[0]["role"] == "user" and doc["prompt"].strip() in msg[0]["content"]


def test_mbpp_prompt_is_three_shot_in_base_mode(mbpp: MBPP, mbpp_docs: list[dict[str, Any]]) -> None:
    shots = load_split("mbpp", "prompt")
    doc = mbpp_docs[0]
    [t] = mbpp.build_requests([doc], TaskOptions(), shots)
    prompt = t.requests[0].prompt
    assert prompt is not None
    assert prompt.startswith("You are an expert Python programmer, and here is your task: " + shots[0]["prompt"])
    assert prompt.count("[BEGIN]") == 4 and prompt.count("[DONE]") == 3
    for s in shots[:3]:
        assert s["code"] in prompt
    assert prompt.endswith(f"{doc['test_list'][-1]}\n[BEGIN]\n")
    assert t.requests[0].sampling.stop == ("[DONE]",)
    [t] = mbpp.build_requests([doc], TaskOptions(chat=True), shots)
    messages = t.requests[0].messages
    assert messages is not None and len(messages) == 1 and "[BEGIN]" not in messages[0]["content"]
    assert mbpp.fewshot_split() == "prompt"


class FakeContext:
    """A RunContext that answers every request with a fixed text (or an engine error)."""

    model_name = "fake"

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.calls = 0

    def generate(self, requests: list[GenerationRequest]) -> list[Any]:
        self.calls += 1
        return [self.answer(r) for r in requests]


def test_run_batches_generation_and_execution(humaneval: HumanEval, humaneval_docs: list[dict[str, Any]]) -> None:
    docs = humaneval_docs[:4]
    solutions = {d["prompt"]: d["canonical_solution"] for d in docs[:3]}

    def answer(r: GenerationRequest) -> Any:
        if r.prompt in solutions:
            return Generation(text=solutions[r.prompt], prompt_tokens=5, output_tokens=7, finish_reason="stop",
                              latency_s=0.0)
        return Generation(text="", prompt_tokens=5, output_tokens=0, finish_reason="error", latency_s=0.0,
                          error="engine exploded")

    ctx = FakeContext(answer)
    records = humaneval.run(docs, ctx, TaskOptions())  # type: ignore[arg-type]
    assert ctx.calls == 1 and len(records) == 4
    assert [r.scores.get("pass@1") for r in records[:3]] == [1.0, 1.0, 1.0]
    assert records[3].error is not None and "engine exploded" in records[3].error
    assert core(humaneval.aggregate(records)["pass@1"]) == {"value": 1.0, "stderr": 0.0, "n": 3}
