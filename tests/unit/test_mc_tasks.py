"""Multiple-choice tasks with a fake engine: prompts, acc vs acc_norm, winogrande, truthfulqa, few-shot."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from qwenharness.data import load
from qwenharness.engines.base import Generation, GenerationRequest, LoglikelihoodRequest, LoglikelihoodResult
from qwenharness.errors import ConfigError
from qwenharness.tasks import TaskOptions, get_task
from qwenharness.tasks.fewshot import sample_fewshot
from qwenharness.tasks.multiple_choice import TRUTHFULQA_PRIMER, hellaswag_preprocess, mc2_score

Scorer = Callable[[str, str], float]


class FakeLLContext:
    """A RunContext whose engine returns scripted log-likelihoods and records every batch."""

    model_name = "fake"

    def __init__(self, scorer: Scorer) -> None:
        self.scorer = scorer
        self.batches: list[list[LoglikelihoodRequest]] = []

    def loglikelihood(self, requests: list[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
        self.batches.append(list(requests))
        return [LoglikelihoodResult(logprob=self.scorer(r.context, r.continuation), is_greedy=False,
                                    num_tokens=len(r.continuation.split())) for r in requests]

    def generate(self, requests: list[GenerationRequest]) -> list[Generation]:
        raise AssertionError("log-likelihood tasks must not generate")

    def judge_generate(self, requests: list[GenerationRequest]) -> list[Generation]:
        raise AssertionError("no judge here")

    def apply_chat_template(self, messages: list[dict[str, str]], enable_thinking: bool | None = None) -> str:
        return f"<user>{messages[0]['content']}</user><assistant thinking={enable_thinking}>"


def table(values: dict[str, float]) -> Scorer:
    """Log-likelihood by continuation text (leading space ignored)."""
    return lambda ctx, cont: values[cont.strip()]


PIQA_DOC = {"_index": 0, "goal": "Open a jar", "sol1": "Cut.", "sol2": "Twist the lid firmly to the left.",
            "label": 1}


def test_acc_and_acc_norm_differ_when_lengths_differ() -> None:
    task = get_task("piqa")
    # "Cut." (4 chars): -4.0 -> -1.0/char; the long answer (33 chars): -6.6 -> -0.2/char.
    ctx = FakeLLContext(table({"Cut.": -4.0, "Twist the lid firmly to the left.": -6.6}))
    (rec,) = task.run([PIQA_DOC], ctx, TaskOptions())
    (batch,) = ctx.batches
    assert [(r.context, r.continuation) for r in batch] == [
        ("Question: Open a jar\nAnswer:", " Cut."),
        ("Question: Open a jar\nAnswer:", " Twist the lid firmly to the left."),
    ]
    assert rec.scores == {"acc": 0.0, "acc_norm": 1.0}
    assert rec.extra["pred"] == 0 and rec.extra["pred_norm"] == 1
    assert [o["logprob"] for o in rec.outputs] == [-4.0, -6.6]
    assert all("is_greedy" in o for o in rec.outputs)


def test_winogrande_partial_scoring() -> None:
    task = get_task("winogrande")
    doc = {"_index": 3, "sentence": "The trophy did not fit in the case because _ was too big.",
           "option1": "the trophy", "option2": "the case", "answer": "1"}
    ctx = FakeLLContext(lambda c, k: -1.0 if c.endswith("the trophy") else -3.0)
    (rec,) = task.run([doc], ctx, TaskOptions())
    (batch,) = ctx.batches
    head = "The trophy did not fit in the case because "
    assert [r.context for r in batch] == [head + "the trophy", head + "the case"]
    assert [r.continuation for r in batch] == [" was too big."] * 2
    assert rec.scores == {"acc": 1.0}  # lm-eval defines no acc_norm for winogrande
    assert rec.prompt == [head + "the trophy", head + "the case"]


TQA_DOC = {"_index": 0, "question": "Is the sky green?",
           "mc1_targets": {"choices": ["No.", "Yes.", "Sometimes."], "labels": [1, 0, 0]},
           "mc2_targets": {"choices": ["No.", "No, it is blue.", "Yes."], "labels": [1, 1, 0]}}


def test_truthfulqa_mc1_mc2_arithmetic_and_prompt() -> None:
    task = get_task("truthfulqa_mc")
    lls = {"No.": -1.0, "No, it is blue.": -2.0, "Yes.": -1.5, "Sometimes.": -0.5}
    ctx = FakeLLContext(table(lls))
    (rec,) = task.run([TQA_DOC], ctx, TaskOptions())
    (batch,) = ctx.batches
    assert len(batch) == 4  # each distinct answer text scored once for mc1 and mc2
    assert batch[0].context == TRUTHFULQA_PRIMER + "\n\nQ: Is the sky green?\nA:"
    assert batch[0].context.startswith("Q: What is human life expectancy in the United States?")
    assert rec.scores["mc1"] == 0.0  # "Sometimes." is the likeliest mc1 answer
    true_mass = math.exp(-1.0) + math.exp(-2.0)
    assert rec.scores["mc2"] == pytest.approx(true_mass / (true_mass + math.exp(-1.5)))
    assert set(task.aggregate([rec])) == {"mc1", "mc2"}


def test_mc2_is_stable_and_label_driven() -> None:
    assert mc2_score([-2000.0, -2001.0], [1, 0]) == pytest.approx(1 / (1 + math.exp(-1)))
    assert mc2_score([-1.0, -2.0, -3.0], [0, 1, 1]) == pytest.approx(mc2_score([-2.0, -3.0, -1.0], [1, 1, 0]))
    with pytest.raises(ValueError):
        mc2_score([-1.0], [1, 0])


def test_truthfulqa_rejects_extra_shots() -> None:
    with pytest.raises(ConfigError):
        get_task("truthfulqa_mc").build_requests([TQA_DOC], TaskOptions(n_shot=2), [TQA_DOC])


def _mmlu_doc(i: int, subject: str, answer: int) -> dict[str, Any]:
    return {"_index": i, "subject": subject, "question": f" Question {i}? ",
            "choices": [f"a{i}", f"b{i}", f"c{i}", f"d{i}"], "answer": answer}


def test_mmlu_prompt_header_fewshot_and_letters() -> None:
    task = get_task("mmlu")
    dev = [_mmlu_doc(100, "high_school_physics", 2), _mmlu_doc(101, "anatomy", 0),
           _mmlu_doc(102, "high_school_physics", 1), _mmlu_doc(103, "high_school_physics", 3)]
    doc = _mmlu_doc(1, "high_school_physics", 3)
    (t,) = task.build_requests([doc], TaskOptions(n_shot=2), dev)
    expected = (
        "The following are multiple choice questions (with answers) about high school physics.\n\n"
        "Question 100?\nA. a100\nB. b100\nC. c100\nD. d100\nAnswer: C\n\n"
        "Question 102?\nA. a102\nB. b102\nC. c102\nD. d102\nAnswer: B\n\n"
        "Question 1?\nA. a1\nB. b1\nC. c1\nD. d1\nAnswer:"
    )
    assert [r.context for r in t.requests] == [expected] * 4  # type: ignore[union-attr]
    assert [r.continuation for r in t.requests] == [" A", " B", " C", " D"]  # type: ignore[union-attr]
    assert task.default_n_shot == 5 and task.fewshot_split() == "dev"
    with pytest.raises(ConfigError):
        task.build_requests([doc], TaskOptions(), None)  # 5-shot by default: needs dev rows
    with pytest.raises(ConfigError):
        task.build_requests([doc], TaskOptions(n_shot=4), dev)  # only 3 dev rows for the subject


def test_fewshot_is_deterministic_per_doc_and_excludes_the_doc() -> None:
    pool = [{"_index": i, "x": i} for i in range(50)]
    doc = pool[10]
    a = sample_fewshot(pool, doc, 5, 1234, "t")
    assert a == sample_fewshot(pool, doc, 5, 1234, "t")
    assert doc not in a and len(a) == 5
    assert sample_fewshot(pool, doc, 5, 4321, "t") != a
    small = pool[:6]
    assert sorted(r["x"] for r in sample_fewshot(small, small[2], 5, 1, "t")) == [0, 1, 3, 4, 5]
    with pytest.raises(ConfigError):
        sample_fewshot(small, small[2], 6, 1, "t")


def test_fewshot_prompt_does_not_depend_on_the_other_docs_in_the_run() -> None:
    task = get_task("hellaswag")
    docs = load("hellaswag", limit=8, seed=7)
    pool = load("hellaswag", split=task.fewshot_split())
    opts = TaskOptions(n_shot=3, seed=5)
    together = task.build_requests(docs, opts, pool)
    alone = task.build_requests(docs[4:5], opts, pool)
    assert alone[0].requests == together[4].requests
    for doc, t in zip(docs, together):
        own = task.doc_to_text(doc)
        context = t.requests[0].context  # type: ignore[union-attr]
        assert context.endswith(own) and context.count(own) == 1


def test_run_gives_one_record_per_doc_from_one_batch() -> None:
    for name in ("arc_easy", "boolq", "hellaswag", "winogrande", "truthfulqa_mc"):
        task = get_task(name)
        docs = load(name, limit=6)
        ctx = FakeLLContext(lambda c, k: -float(len(k)))
        records = task.run(docs, ctx, TaskOptions())
        assert len(ctx.batches) == 1, name
        assert [r.doc_id for r in records] == [str(d["_index"]) for d in docs]
        assert len(ctx.batches[0]) == sum(len(r.outputs) for r in records)
        agg = task.aggregate(records)
        for metric in task.metric_names:
            assert agg[metric]["n"] == 6 and 0.0 <= agg[metric]["value"] <= 1.0


def test_hellaswag_preprocessing() -> None:
    cleaned = hellaswag_preprocess(" Clean a pan [title] Use soap. [step] Rinse  it. ")
    assert cleaned == "Clean a pan. Use soap. Rinse it."
    task = get_task("hellaswag")
    doc = {"_index": 0, "activity_label": "Baking", "ctx_a": "A man opens an oven.", "ctx_b": "he",
           "endings": ["takes out a cake [title] done.", "sings."], "label": "0"}
    assert task.doc_to_text(doc) == "Baking: A man opens an oven. He"
    assert task.doc_to_choices(doc) == ["takes out a cake. done.", "sings."]


def test_boolq_and_arc_prompts() -> None:
    boolq = get_task("boolq")
    doc = {"_index": 0, "passage": "Water is wet.", "question": "is water wet", "answer": True}
    (t,) = boolq.build_requests([doc], TaskOptions())
    assert [(r.context, r.continuation) for r in t.requests] == [  # type: ignore[union-attr]
        ("Water is wet.\nQuestion: is water wet?\nAnswer:", " no"),
        ("Water is wet.\nQuestion: is water wet?\nAnswer:", " yes")]
    assert boolq.doc_to_gold(doc) == 1
    arc = get_task("arc_easy")
    doc = {"_index": 0, "id": "x", "question": "2+2?", "answerKey": "3",
           "choices": {"text": ["1", "2", "4", "5"], "label": ["1", "2", "3", "4"]}}
    (t,) = arc.build_requests([doc], TaskOptions())
    assert t.requests[0].context == "Question: 2+2?\nAnswer:"  # type: ignore[union-attr]
    assert arc.doc_to_gold(doc) == 2
    assert arc.score_response(doc, ["3"]).scores["acc"] == 1.0
    assert arc.score_response(doc, ["C"]).scores["acc"] == 1.0
    assert arc.score_response(doc, ["4"]).scores["acc"] == 0.0  # a bare label wins: "4" is choice "5"
    assert arc.score_response(doc, ["(C) 4"]).scores["acc"] == 1.0


def test_chat_template_is_opt_in() -> None:
    task = get_task("piqa")
    ctx = FakeLLContext(lambda c, k: -1.0)
    task.run([PIQA_DOC], ctx, TaskOptions())
    assert ctx.batches[0][0].context == "Question: Open a jar\nAnswer:"
    ctx = FakeLLContext(lambda c, k: -1.0)
    task.run([PIQA_DOC], ctx, TaskOptions(chat=True))
    req = ctx.batches[0][0]
    assert req.context == "<user>Question: Open a jar\nAnswer:</user><assistant thinking=False>"
    assert req.continuation == "Cut."


def test_engine_result_count_mismatch_is_an_error() -> None:
    class Short(FakeLLContext):
        def loglikelihood(self, requests: list[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
            return super().loglikelihood(requests)[:-1]

    with pytest.raises(RuntimeError, match="results for"):
        get_task("piqa").run([PIQA_DOC], Short(lambda c, k: -1.0), TaskOptions())


# lm-eval 0.4.x task YAMLs: acc_norm is defined for these and for no other multiple-choice task here
LM_EVAL_METRICS = {"hellaswag": ("acc", "acc_norm"), "arc_easy": ("acc", "acc_norm"),
                   "arc_challenge": ("acc", "acc_norm"), "piqa": ("acc", "acc_norm"), "boolq": ("acc",),
                   "winogrande": ("acc",), "mmlu": ("acc",), "truthfulqa_mc": ("mc1", "mc2")}


@pytest.mark.parametrize("name", sorted(LM_EVAL_METRICS))
def test_declared_metrics_match_lm_eval(name: str) -> None:
    assert get_task(name).metric_names == LM_EVAL_METRICS[name]


def test_boolq_reports_no_acc_norm() -> None:
    """BoolQ's acc_norm was an artefact of len('no') vs len('yes'): gone from scores and aggregate."""
    task = get_task("boolq")
    doc = {"_index": 0, "passage": "Water is wet.", "question": "is water wet", "answer": True}
    # per character " yes" (-3.3/3) beats " no" (-3.0/2); the sum prefers "no"
    (rec,) = task.run([doc], FakeLLContext(table({"no": -3.0, "yes": -3.3})), TaskOptions())
    assert rec.scores == {"acc": 0.0} and "pred_norm" not in rec.extra
    assert set(task.aggregate([rec])) == {"acc"}


def test_mc2_counts_labels_equal_to_one_wherever_they_stand() -> None:
    """An unsorted row (a true answer after a false one): the true mass is over labels == 1."""
    lls = [-1.0, -2.0, -0.5]
    labels = [1, 0, 1]
    mass = [math.exp(x) for x in lls]
    assert mc2_score(lls, labels) == pytest.approx((mass[0] + mass[2]) / sum(mass))


def _lm_eval_draws(pool: list[dict[str, Any]], docs: list[dict[str, Any]], n: int, seed: int,
                   exclude: bool) -> list[list[dict[str, Any]]]:
    """lm-eval 0.4.x's own ContextSampler, drawing for each doc in order as build_all_requests does."""
    samplers = pytest.importorskip("lm_eval.api.samplers")
    strip = [{k: v for k, v in r.items() if k != "_index"} for r in pool]
    sampler = samplers.ContextSampler(strip, rnd=seed)
    return [list(sampler.sample(n, eval_doc={k: v for k, v in d.items() if k != "_index"} if exclude else None))
            for d in docs]


@pytest.mark.parametrize("exclude", [True, False])
def test_lm_eval_sampler_gives_lm_evals_shots(exclude: bool) -> None:
    pool = [{"_index": i, "x": i} for i in range(40)]
    docs = [pool[i] for i in (3, 8, 9, 21, 39)] if exclude else [{"_index": i, "x": 100 + i} for i in (3, 8, 9)]
    order = tuple(d["_index"] for d in docs)
    ours = [[{k: v for k, v in r.items() if k != "_index"} for r in
             sample_fewshot(pool, d, 4, 1234, "t", sampler="lm-eval", order=order, pool_is_eval_split=exclude)]
            for d in reversed(docs)]  # asked for in any order: the draws follow the split order
    assert list(reversed(ours)) == _lm_eval_draws(pool, docs, 4, 1234, exclude)
    if exclude:
        assert all({"x": d["x"]} not in shots for d, shots in zip(reversed(docs), ours))


def test_fewshot_policy_is_stated() -> None:
    arc = get_task("arc_easy")
    assert arc.fewshot_policy(TaskOptions())["n_shot"] == 0
    policy = arc.fewshot_policy(TaskOptions(n_shot=3, seed=7, fewshot_sampler="lm-eval"))
    assert (policy["split"], policy["rule"], policy["seed"]) == ("validation", "lm-eval", 7)
    mmlu = get_task("mmlu").fewshot_policy(TaskOptions(seed=7))
    assert (mmlu["n_shot"], mmlu["split"], mmlu["rule"], mmlu["seed"]) == (5, "dev", "first_n_by_subject", None)
    # the default sampler and the derived order stay out of fingerprints: earlier runs resume unchanged
    assert not {"fewshot_sampler", "fewshot_order"} & set(TaskOptions(fewshot_order=(1, 2)).to_dict())
    assert TaskOptions(fewshot_sampler="lm-eval").to_dict()["fewshot_sampler"] == "lm-eval"
