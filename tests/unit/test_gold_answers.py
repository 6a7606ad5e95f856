"""Gold-answer tests: the scorers give the reference answers full marks and wrong answers none.

Pure Python over the full evaluation splits (issue 4, item 5): GSM8K's 1319 reference solutions,
MATH-500's 500 reference solutions, and each multiple-choice dataset's gold option, through
`score_response` as `qwenharness score` uses it.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import pytest

from qwenharness.data import load
from qwenharness.tasks import get_task
from qwenharness.tasks.multiple_choice import LETTERS, MultipleChoiceTask

MC_DATASETS = ["hellaswag", "arc_challenge", "arc_easy", "mmlu", "piqa", "winogrande", "boolq", "truthfulqa_mc"]
EXPECTED_ROWS = {"gsm8k": 1319, "math500": 500, "hellaswag": 10042, "arc_challenge": 1172, "arc_easy": 2376,
                 "mmlu": 14042, "piqa": 1838, "winogrande": 1267, "boolq": 3270, "truthfulqa_mc": 817}
_BARE_LABEL = re.compile(r"^\(?\s*([A-Z]|[0-9]{1,2})\s*[\.\):]?$")


def _reads_as_label(task: MultipleChoiceTask, doc: dict[str, Any], text: str) -> bool:
    """Whether a choice text is itself one of the doc's labels ("B"): such a response is a label."""
    m = _BARE_LABEL.match(" ".join(text.split()))
    n = len(task.doc_to_choices(doc))
    return bool(m) and m.group(1) in set(task.choice_labels(doc)) | set(LETTERS[:n])


@cache
def _docs(name: str) -> list[dict[str, Any]]:
    docs = load(name)
    assert len(docs) == EXPECTED_ROWS[name], f"{name}: expected the full evaluation split"
    return docs


def test_gsm8k_reference_answers_score_one_on_all_1319() -> None:
    task = get_task("gsm8k")
    docs = _docs("gsm8k")
    records = [task.score_response(d, [d["answer"]]) for d in docs]
    failures = [(r.doc_id, r.extra) for r in records
                if r.scores["strict_match"] != 1.0 or r.scores["flexible_extract"] != 1.0]
    assert not failures, failures[:5]
    agg = task.aggregate(records)
    for name in ("strict_match", "flexible_extract"):
        assert {k: agg[name][k] for k in ("value", "stderr", "n")} == {"value": 1.0, "stderr": 0.0, "n": 1319}
        assert agg[name]["ci95"][1] == 1.0 and 0.99 < agg[name]["ci95"][0] < 1.0


def test_gsm8k_other_problems_answers_score_zero() -> None:
    task = get_task("gsm8k")
    docs = _docs("gsm8k")
    final = [d["answer"].split("####")[-1].strip().replace(",", "") for d in docs]
    checked = 0
    for i, d in enumerate(docs):
        j = (i + 1) % len(docs)
        if final[i] == final[j]:
            continue
        r = task.score_response(d, [docs[j]["answer"]])
        assert r.scores == {"strict_match": 0.0, "flexible_extract": 0.0, "numeric_match": 0.0}, (d["_index"], r.extra)
        checked += 1
    assert checked > 1200


def test_math500_reference_solutions_score_one_on_all_500() -> None:
    task = get_task("math500")
    docs = _docs("math500")
    records = [task.score_response(d, [d["solution"]]) for d in docs]
    failures = [(r.doc_id, r.extra.get("extracted"), r.target) for r in records if r.scores["exact_match"] != 1.0]
    assert not failures, failures[:5]
    m = task.aggregate(records)["exact_match"]
    assert {k: m[k] for k in ("value", "stderr", "n")} == {"value": 1.0, "stderr": 0.0, "n": 500}


def test_math500_wrong_integer_answers_score_zero() -> None:
    task = get_task("math500")
    integer_docs = [d for d in _docs("math500") if re.fullmatch(r"-?\d+", d["answer"].strip())]
    assert len(integer_docs) > 200
    for d in integer_docs:
        wrong = int(d["answer"]) + 1
        r = task.score_response(d, [f"So the answer is $\\boxed{{{wrong}}}$."])
        assert r.scores["exact_match"] == 0.0, (d["_index"], d["answer"], r.extra)


def _gold_labels(task: MultipleChoiceTask, doc: dict[str, Any]) -> list[str]:
    gold = task.doc_to_gold(doc)
    return sorted({task.choice_labels(doc)[gold], LETTERS[gold]})


def _metric(name: str) -> str:
    return "mc1" if name == "truthfulqa_mc" else "acc"


@pytest.mark.parametrize("name", MC_DATASETS)
def test_mc_gold_option_scores_one_by_label_and_text(name: str) -> None:
    task = get_task(name)
    assert isinstance(task, MultipleChoiceTask)
    key = _metric(name)
    failures = []
    for doc in _docs(name):
        gold = task.doc_to_gold(doc)
        gold_text = task.doc_to_choices(doc)[gold]
        responses = _gold_labels(task, doc)
        # A choice whose text is itself a bare label ("B") is read as that label, by design.
        if not _reads_as_label(task, doc, gold_text):
            responses.append(gold_text)
        for resp in responses:
            r = task.score_response(doc, [resp])
            if r.scores[key] != 1.0 or "parse_error" in r.extra:
                failures.append((doc["_index"], resp, r.extra.get("parsed")))
    assert not failures, failures[:5]


@pytest.mark.parametrize("name", MC_DATASETS)
def test_mc_wrong_option_scores_zero(name: str) -> None:
    task = get_task(name)
    assert isinstance(task, MultipleChoiceTask)
    key = _metric(name)
    failures, checked = [], 0
    for doc in _docs(name):
        choices = task.doc_to_choices(doc)
        gold = task.doc_to_gold(doc)
        wrong = next((i for i, c in enumerate(choices)
                      if " ".join(c.split()).casefold() != " ".join(choices[gold].split()).casefold()
                      and not _reads_as_label(task, doc, c)), None)
        if wrong is None:
            continue  # every other option reads like the gold one
        for resp in (choices[wrong], LETTERS[wrong]):
            r = task.score_response(doc, [resp])
            if r.scores[key] != 0.0 or "parse_error" in r.extra:
                failures.append((doc["_index"], resp))
        checked += 1
    assert not failures, failures[:5]
    assert checked >= 0.99 * EXPECTED_ROWS[name]


def test_mc_dataset_specific_answer_words() -> None:
    boolq = get_task("boolq")
    doc = next(d for d in _docs("boolq") if d["answer"] is True)
    for resp, want in [("yes", 1.0), ("Yes.", 1.0), ("true", 1.0), ("B", 1.0), ("no", 0.0), ("False", 0.0)]:
        assert boolq.score_response(doc, [resp]).scores["acc"] == want, resp
    wino = get_task("winogrande")
    doc = next(d for d in _docs("winogrande") if d["answer"] == "2")
    assert wino.score_response(doc, ["2"]).scores["acc"] == 1.0
    assert wino.score_response(doc, ["1"]).scores["acc"] == 0.0
    assert wino.score_response(doc, [doc["option2"]]).scores["acc"] == 1.0


@pytest.mark.parametrize("name", ["arc_easy", "mmlu", "truthfulqa_mc"])
def test_mc_unparseable_response_scores_zero_with_parse_error(name: str) -> None:
    task = get_task(name)
    doc = _docs(name)[0]
    r = task.score_response(doc, ["I am not sure about this one"])
    assert r.scores[_metric(name)] == 0.0
    assert "parse_error" in r.extra
