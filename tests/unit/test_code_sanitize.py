"""EvalPlus-style sanitizing of real instruct-model code answers (each case seen in a real output)."""

from __future__ import annotations

from qwenharness.tasks.code import MBPP, HumanEval, evalplus_prefix
from qwenharness.tasks.code_sanitize import called_function, longest_parsable_prefix, sanitize, top_level_functions
from qwenharness.tasks.base import TaskOptions


def test_usage_example_after_the_function_is_dropped() -> None:
    # SmolLM2-135M-Instruct on HumanEval/112: a print() of a call that raises would fail a program
    answer = "def reverse_delete(s, c):\n    return (s, False)\n\n# Example usage\nprint(reverse_delete('abcde', 'c'))\n"
    assert sanitize(answer, "reverse_delete") == "def reverse_delete(s, c):\n    return (s, False)\n"


def test_main_guard_and_asserts_are_dropped_imports_kept() -> None:
    answer = ("import math\nfrom typing import List\n\ndef f(xs: List[int]) -> int:\n    return math.prod(xs)\n\n"
              "assert f([2, 3]) == 7\nif __name__ == '__main__':\n    print(f([int(input())]))\n")
    out = sanitize(answer, "f")
    assert "import math" in out and "from typing import List" in out and "def f(" in out
    assert "assert" not in out and "__main__" not in out and "input()" not in out


def test_only_what_the_entry_point_needs_is_kept() -> None:
    answer = ("LIMIT = 10\nUNUSED = 3\n\ndef helper(x):\n    return x % LIMIT\n\ndef other():\n    return UNUSED\n\n"
              "def solve(x):\n    return helper(x) + 1\n")
    out = sanitize(answer, "solve")
    assert "LIMIT = 10" in out and "def helper" in out and "def solve" in out
    assert "UNUSED" not in out and "def other" not in out


def test_an_answer_cut_off_by_the_token_limit_keeps_its_complete_definitions() -> None:
    # SmolLM2 repeating definitions until max_tokens (HumanEval/21): the last one is unterminated
    answer = "def g(a):\n    return a\n\ndef g(a):\n    return [\n        a,"
    text, tree = longest_parsable_prefix(answer)
    assert tree is not None and text.rstrip().endswith("return a")
    assert sanitize(answer, "g").strip().endswith("return a")


def test_decorators_stay_with_their_function() -> None:
    answer = "import functools\n\n@functools.lru_cache(None)\ndef fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n"
    assert "@functools.lru_cache(None)\ndef fib" in sanitize(answer, "fib")


def test_unparsable_code_is_left_as_is_for_the_record() -> None:
    assert sanitize("this is not python at all (", "f") == "this is not python at all ("


def test_mbpp_entry_point_is_the_function_the_first_assert_calls() -> None:
    doc = {"code": "def helper(x):\n    return x\n\ndef similar_elements(a, b):\n    return tuple(set(a) & set(b))\n",
           "test_list": ["assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))"],
           "prompt": "Write a function to find the shared elements from the given two lists.", "test_imports": []}
    assert top_level_functions(doc["code"]) == {"helper", "similar_elements"}
    assert called_function(doc["test_list"][0], top_level_functions(doc["code"])) == "similar_elements"
    assert MBPP().entry_point(doc) == "similar_elements"
    assert MBPP.evalplus_problem(doc) == ('"""\nWrite a function to find the shared elements from the given two '
                                          'lists.\nassert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == '
                                          'set((4, 5))\n"""\n')


def test_humaneval_chat_requests_follow_the_evalplus_instruct_protocol() -> None:
    doc = {"task_id": "HumanEval/0", "prompt": "def f(x):\n    \"\"\"doc\"\"\"\n", "entry_point": "f",
           "canonical_solution": "    return x\n", "test": "def check(c):\n    assert c(1) == 1\n"}
    task = HumanEval()
    options = TaskOptions(chat=True, enable_thinking=None)
    (treq,) = task.build_requests([doc], options)
    (req,) = treq.requests
    assert req.messages == ({"role": "user", "content": "Please provide a self-contained Python script that solves "
                             "the following problem in a markdown code block:\n```\ndef f(x):\n    \"\"\"doc\"\"\"\n```\n"},)
    assert req.assistant_prefix == evalplus_prefix()
    assert evalplus_prefix().endswith("passes corresponding tests:\n```python\n")
    assert req.sampling.temperature == 0.0 and req.sampling.max_tokens == 768 and req.sampling.stop == ("\n```",)
    assert task.protocol(options) == "evalplus-instruct"
    # the continuation after the pre-filled fence is the code itself
    assert task.completion(doc, "def f(x):\n    return x\n\nprint(f(2))", chat=True) == "def f(x):\n    return x\n"


def test_thinking_on_gets_no_prefilled_answer() -> None:
    doc = {"task_id": "HumanEval/0", "prompt": "def f(x):\n    pass\n", "entry_point": "f"}
    (treq,) = HumanEval().build_requests([doc], TaskOptions(chat=True, enable_thinking=True))
    assert treq.requests[0].assistant_prefix is None

