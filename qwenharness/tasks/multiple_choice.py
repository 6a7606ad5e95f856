"""Multiple-choice tasks scored by log-likelihood, as lm-evaluation-harness's `multiple_choice` tasks.

Each choice becomes one LoglikelihoodRequest(context, continuation). The prediction is the choice
with the highest summed log-probability (`acc`) or the highest log-probability per character of the
choice text (`acc_norm`, lm-eval's length normalisation: it divides by `len(choice)`, the choice text
without the leading space). Each task declares its metrics (`metric_names`) as lm-eval's YAML does:
acc_norm only for HellaSwag, ARC and PIQA, where choices are texts of different lengths; BoolQ
("no"/"yes"), WinoGrande (one shared continuation) and MMLU (letters) report acc alone, since a
length normalisation there only measures the labels' spelling. Prompts follow lm-eval's task YAMLs:

- hellaswag: "{activity_label}: {ctx_a} {ctx_b.capitalize()}" cleaned like lm-eval's `preprocess`
  (" [title]" -> ". ", other "[...]" removed, double spaces collapsed); choices the cleaned endings.
- arc_easy / arc_challenge: "Question: {question}\\nAnswer:" with " {choice text}".
- mmlu: header "The following are multiple choice questions (with answers) about {subject}.", then
  5 examples from `dev` (the subject's first five, lm-eval's `first_n` sampler), then
  "{question}\\nA. ..\\nB. ..\\nC. ..\\nD. ..\\nAnswer:" with continuations " A" .. " D".
- piqa: "Question: {goal}\\nAnswer:" with " {sol1}" / " {sol2}".
- winogrande: partial-sentence scoring. The contexts differ (the sentence up to the blank with each
  option filled in); the continuation is shared (" " + the part after the blank).
- boolq: "{passage}\\nQuestion: {question}?\\nAnswer:" with " no" / " yes".
- truthfulqa_mc: lm-eval's 6-shot QA primer, "\\n\\nQ: {question}\\nA:", then " {answer}"; mc1 is the
  accuracy over mc1_targets, mc2 the normalised probability mass of the true mc2_targets.

Few-shot examples are "{prompt} {gold choice}" joined with blank lines (lm-eval's delimiters).

Chat template: off by default. These benchmarks measure how likely a model finds each completion of
a plain-text prompt; published numbers (and lm-eval's defaults) use raw text, and a chat template
would make each continuation an assistant turn, which changes what is measured. `options.chat`
turns it on (the context becomes a user message; the continuation loses its leading space).

One module for eight tasks on one base class: each task is 10-40 lines, its lm-eval prompt beside
the others'.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Any

from ..engines.base import LoglikelihoodRequest, LoglikelihoodResult
from ..errors import ConfigError
from .base import Output, RunContext, SampleRecord, Task, TaskOptions, TaskRequest, strip_thinking
from .fewshot import first_n

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass
class MCItem:
    """One doc laid out for log-likelihood scoring: choice i is scored as contexts[i] + continuations[i]."""

    contexts: list[str]
    continuations: list[str]
    choices: list[str]  # the option texts (length normalisation, parsing of responses)
    gold: int


def argmax(values: list[float]) -> int:
    """Index of the largest value; the first one on ties (as numpy.argmax)."""
    best = 0
    for i, v in enumerate(values):
        if v > values[best]:
            best = i
    return best


def _clean_ws(text: str) -> str:
    return " ".join(text.split())


def _fold(text: str) -> str:
    return _clean_ws(text).rstrip(".").casefold()


_BARE_LABEL = re.compile(r"^\(?\s*([A-Z]|[0-9]{1,2})\s*[\.\):]?$")
_LABELLED_TEXT = re.compile(r"^\(?([A-Z]|[0-9]{1,2})[\.\):]\s+(.+)$", re.S)


def parse_choice(response: str, choice_texts: list[list[str]], labels: list[str],
                 aliases: dict[str, int] | None = None) -> set[int] | None:
    """The choice(s) a free-form response names, or None when it names none.

    Accepted, in this order: a bare label ("B", "(B)", "B.", "2"), a task alias ("yes", "true"), the
    text of a choice (exact after whitespace collapsing, then case- and final-period-insensitive),
    and "B. <text of choice B>". A bare uppercase letter is always read as a label. The result is
    a set because identical choice texts are indistinguishable.
    """
    text = _clean_ws(response)
    if not text:
        return None
    label_index = {lab: i for i, lab in enumerate(labels)}
    for i in range(len(choice_texts)):  # positional letters A, B, .. are always accepted
        label_index.setdefault(LETTERS[i], i)
    m = _BARE_LABEL.match(text)
    if m and m.group(1) in label_index:
        return {label_index[m.group(1)]}
    if aliases and _fold(text) in aliases:
        return {aliases[_fold(text)]}
    exact = {i for i, texts in enumerate(choice_texts) if any(_clean_ws(t) == text for t in texts)}
    if exact:
        return exact
    folded = {i for i, texts in enumerate(choice_texts) if any(_fold(t) == _fold(text) for t in texts)}
    if folded:
        return folded
    m = _LABELLED_TEXT.match(text)
    if m and m.group(1) in label_index:
        i = label_index[m.group(1)]
        if any(_fold(t) == _fold(m.group(2)) for t in choice_texts[i]):
            return {i}
    return None


class MultipleChoiceTask(Task):
    """Base for the log-likelihood multiple-choice tasks; subclasses describe prompts and choices."""

    output_type = "loglikelihood"
    metric_names: tuple[str, ...] = ("acc", "acc_norm")  # lm-eval's multiple_choice metrics; see subclasses
    description: str = ""  # text before the few-shot examples (mmlu's subject header)

    # --- what a subclass describes -------------------------------------------------------------
    def doc_to_text(self, doc: dict[str, Any]) -> str:
        raise NotImplementedError

    def doc_to_choices(self, doc: dict[str, Any]) -> list[str]:
        raise NotImplementedError

    def doc_to_gold(self, doc: dict[str, Any]) -> int:
        raise NotImplementedError

    def doc_to_continuations(self, doc: dict[str, Any]) -> list[str]:
        """What is scored after the prompt for each choice (lm-eval's target delimiter is a space)."""
        return [" " + c for c in self.doc_to_choices(doc)]

    def doc_description(self, doc: dict[str, Any]) -> str:
        return self.description

    def choice_labels(self, doc: dict[str, Any]) -> list[str]:
        """The labels a response may use for each choice (positional letters by default)."""
        return list(LETTERS[: len(self.doc_to_choices(doc))])

    def choice_texts(self, doc: dict[str, Any]) -> list[list[str]]:
        """The texts a response may use for each choice."""
        return [[c] for c in self.doc_to_choices(doc)]

    def choice_aliases(self, doc: dict[str, Any]) -> dict[str, int]:
        """Other words for choices (case-folded), e.g. boolq's "true"/"false"."""
        return {}

    def select_fewshot(self, doc: dict[str, Any], pool: list[dict[str, Any]] | None, n: int,
                       options: TaskOptions) -> list[dict[str, Any]]:
        return self.seeded_shots(pool, doc, n, options)

    def fewshot_example(self, doc: dict[str, Any]) -> str:
        return self.doc_to_text(doc) + self.doc_to_continuations(doc)[self.doc_to_gold(doc)]

    # --- prompt assembly -------------------------------------------------------------------------
    def n_shot(self, options: TaskOptions) -> int:
        return self.default_n_shot if options.n_shot is None else options.n_shot

    def build_item(self, doc: dict[str, Any], shots: list[dict[str, Any]]) -> MCItem:
        prefix = self.doc_description(doc) + "".join(self.fewshot_example(s) + "\n\n" for s in shots)
        choices = self.doc_to_choices(doc)
        context = prefix + self.doc_to_text(doc)
        return MCItem([context] * len(choices), self.doc_to_continuations(doc), choices,
                      self.doc_to_gold(doc))

    def item(self, doc: dict[str, Any], options: TaskOptions,
             fewshot_docs: list[dict[str, Any]] | None = None) -> MCItem:
        n = self.n_shot(options)
        return self.build_item(doc, self.select_fewshot(doc, fewshot_docs, n, options) if n else [])

    def build_requests(self, docs: list[dict[str, Any]], options: TaskOptions,
                       fewshot_docs: list[dict[str, Any]] | None = None) -> list[TaskRequest]:
        out = []
        for doc in docs:
            it = self.item(doc, options, fewshot_docs)
            reqs = [LoglikelihoodRequest(c, k) for c, k in zip(it.contexts, it.continuations)]
            out.append(TaskRequest(doc_id=str(doc["_index"]), requests=reqs))
        return out

    def run(self, docs: list[dict[str, Any]], ctx: RunContext, options: TaskOptions,
            fewshot_docs: list[dict[str, Any]] | None = None) -> list[SampleRecord]:
        treqs = self.build_requests(docs, options, fewshot_docs)
        if options.chat:
            treqs = [self._chat(t, ctx, options) for t in treqs]
        flat = [r for t in treqs for r in t.requests]
        outs = ctx.loglikelihood(flat)  # type: ignore[arg-type]
        if len(outs) != len(flat):
            raise RuntimeError(f"{self.name}: engine returned {len(outs)} results for {len(flat)} requests")
        records, i = [], 0
        for doc, t in zip(docs, treqs):
            n = len(t.requests)
            records.append(self.score(doc, t, list(outs[i:i + n]), options))
            i += n
        return records

    @staticmethod
    def _chat(t: TaskRequest, ctx: RunContext, options: TaskOptions) -> TaskRequest:
        thinking = False if options.enable_thinking is None else options.enable_thinking
        rendered: dict[str, str] = {}
        reqs = []
        for r in t.requests:
            assert isinstance(r, LoglikelihoodRequest)
            if r.context not in rendered:
                rendered[r.context] = ctx.apply_chat_template([{"role": "user", "content": r.context}],
                                                              enable_thinking=thinking)
            reqs.append(replace(r, context=rendered[r.context], continuation=r.continuation.lstrip()))
        return TaskRequest(doc_id=t.doc_id, requests=reqs)

    # --- scoring -----------------------------------------------------------------------------------
    def score(self, doc: dict[str, Any], request: TaskRequest, outputs: list[Output],
              options: TaskOptions) -> SampleRecord:
        results = _as_ll(outputs, len(request.requests), self.name)
        choices = self.doc_to_choices(doc)
        gold = self.doc_to_gold(doc)
        lls = [r.logprob for r in results]
        pred = argmax(lls)
        scores = {"acc": float(pred == gold)}
        extra: dict[str, Any] = {"choices": choices, "pred": pred}
        if "acc_norm" in self.metric_names:
            # divided by the choice text's length in characters, as lm-eval does
            lengths = [float(max(len(c), 1)) for c in self.norm_texts(doc)]
            pred_norm = argmax([ll / n for ll, n in zip(lls, lengths)])
            scores["acc_norm"] = float(pred_norm == gold)
            extra["pred_norm"] = pred_norm
        contexts = [r.context for r in request.requests]  # type: ignore[union-attr]
        return SampleRecord(
            doc_id=request.doc_id,
            prompt=contexts[0] if len(set(contexts)) == 1 else contexts,
            target=gold,
            outputs=[_ll_dict(r, req) for r, req in zip(results, request.requests)],  # type: ignore[arg-type]
            scores=scores,
            extra=extra,
            output_tokens=sum(r.num_tokens for r in results),
        )

    def norm_texts(self, doc: dict[str, Any]) -> list[str]:
        """The texts whose lengths acc_norm divides by."""
        return self.doc_to_choices(doc)

    def score_response(self, doc: dict[str, Any], responses: list[str]) -> SampleRecord:
        gold = self.doc_to_gold(doc)
        return _score_choice_responses(
            doc, responses, gold,
            lambda text: parse_choice(text, self.choice_texts(doc), self.choice_labels(doc),
                                      self.choice_aliases(doc)),
            lambda chosen: {"acc": float(gold in chosen)} if chosen is not None else {"acc": 0.0},
            self.doc_to_choices(doc),
        )


def _score_choice_responses(doc: dict[str, Any], responses: list[str], gold: Any, parse: Any,
                            score_one: Any, choices: list[str]) -> SampleRecord:
    """Shared by score_response: parse each response, score it, average over n responses."""
    if not responses:
        raise ValueError("score_response needs at least one response")
    per, parsed, raw, errors = [], [], [], []
    for resp in responses:
        answer, _thinking = strip_thinking(resp)
        chosen = parse(answer)
        if chosen is None:
            errors.append(f"could not match {answer.strip()[:80]!r} to a choice, a label or an alias")
        per.append(score_one(chosen))
        parsed.append(sorted(chosen) if chosen is not None else None)
        raw.append(resp)
    scores = {k: sum(p[k] for p in per) / len(per) for k in per[0]}
    extra: dict[str, Any] = {"choices": choices, "parsed": parsed, "raw_responses": raw}
    if len(per) > 1:
        extra["per_response_scores"] = per
    if errors:
        extra["parse_error"] = errors if len(errors) > 1 else errors[0]
    return SampleRecord(doc_id=str(doc.get("_index", "")), prompt=None, target=gold,
                        outputs=[strip_thinking(r)[0] for r in responses], scores=scores, extra=extra)


def _as_ll(outputs: list[Output], expected: int, task: str) -> list[LoglikelihoodResult]:
    if len(outputs) != expected:
        raise ValueError(f"{task}: expected {expected} log-likelihood results, got {len(outputs)}")
    for o in outputs:
        if not isinstance(o, LoglikelihoodResult):
            raise TypeError(f"{task}: expected LoglikelihoodResult outputs, got {type(o).__name__}")
    return outputs  # type: ignore[return-value]


def _ll_dict(r: LoglikelihoodResult, req: LoglikelihoodRequest) -> dict[str, Any]:
    return {"continuation": req.continuation, "logprob": r.logprob, "is_greedy": r.is_greedy,
            "num_tokens": r.num_tokens}


# ------------------------------------------------------------------------------------------------
# The tasks
# ------------------------------------------------------------------------------------------------

def hellaswag_preprocess(text: str) -> str:
    """lm-eval's cleanup of HellaSwag text (the brackets are WikiHow artefacts)."""
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


class HellaSwag(MultipleChoiceTask):
    name = "hellaswag"

    def doc_to_text(self, doc: dict[str, Any]) -> str:
        ctx = doc["ctx_a"] + " " + doc["ctx_b"].capitalize()
        return hellaswag_preprocess(doc["activity_label"] + ": " + ctx)

    def doc_to_choices(self, doc: dict[str, Any]) -> list[str]:
        return [hellaswag_preprocess(e) for e in doc["endings"]]

    def doc_to_gold(self, doc: dict[str, Any]) -> int:
        return int(doc["label"])

    def choice_texts(self, doc: dict[str, Any]) -> list[list[str]]:  # cleaned or as in the dataset
        return [[c, raw] for c, raw in zip(self.doc_to_choices(doc), doc["endings"])]


class _ARC(MultipleChoiceTask):
    def doc_to_text(self, doc: dict[str, Any]) -> str:
        return f"Question: {doc['question']}\nAnswer:"

    def doc_to_choices(self, doc: dict[str, Any]) -> list[str]:
        return list(doc["choices"]["text"])

    def doc_to_gold(self, doc: dict[str, Any]) -> int:
        return list(doc["choices"]["label"]).index(doc["answerKey"])

    def choice_labels(self, doc: dict[str, Any]) -> list[str]:
        return list(doc["choices"]["label"])  # "A".."E", or "1".."4" for a few Hub rows


class ARCChallenge(_ARC):
    name = "arc_challenge"


class ARCEasy(_ARC):
    name = "arc_easy"


class MMLU(MultipleChoiceTask):
    name = "mmlu"
    default_n_shot = 5
    metric_names = ("acc",)  # lm-eval's mmlu: acc only (the choices are the letters A-D)
    fewshot_rule = "first_n_by_subject"

    def doc_description(self, doc: dict[str, Any]) -> str:
        subject = doc["subject"].replace("_", " ")
        return f"The following are multiple choice questions (with answers) about {subject}.\n\n"

    def doc_to_text(self, doc: dict[str, Any]) -> str:
        lines = [doc["question"].strip()]
        lines += [f"{LETTERS[i]}. {c}" for i, c in enumerate(doc["choices"])]
        return "\n".join(lines) + "\nAnswer:"

    def doc_to_choices(self, doc: dict[str, Any]) -> list[str]:
        return list(doc["choices"])

    def doc_to_continuations(self, doc: dict[str, Any]) -> list[str]:
        return [" " + LETTERS[i] for i in range(len(doc["choices"]))]

    def doc_to_gold(self, doc: dict[str, Any]) -> int:
        return int(doc["answer"])

    def select_fewshot(self, doc: dict[str, Any], pool: list[dict[str, Any]] | None, n: int,
                       options: TaskOptions) -> list[dict[str, Any]]:
        # lm-eval: `first_n` of the subject's dev rows (dev has exactly five per subject).
        if not pool:
            raise ConfigError(f"mmlu: {n}-shot prompts need the 'dev' split",
                              "pass load_split('mmlu', 'dev') as few-shot docs, or use n_shot=0")
        return first_n(pool, doc, n, self.name, key="subject")


class PIQA(MultipleChoiceTask):
    name = "piqa"

    def doc_to_text(self, doc: dict[str, Any]) -> str:
        return f"Question: {doc['goal']}\nAnswer:"

    def doc_to_choices(self, doc: dict[str, Any]) -> list[str]:
        return [doc["sol1"], doc["sol2"]]

    def doc_to_gold(self, doc: dict[str, Any]) -> int:
        return int(doc["label"])


class WinoGrande(MultipleChoiceTask):
    """Partial scoring (Trinh & Le, 2018): score the words after the blank given each filled-in start.

    Only acc: every choice shares one continuation, so a length normalisation would change nothing
    (lm-eval reports only acc for winogrande).
    """

    name = "winogrande"
    metric_names = ("acc",)

    @staticmethod
    def _split(doc: dict[str, Any]) -> tuple[str, str]:
        sentence = doc["sentence"]
        blank = sentence.index("_")
        return sentence[:blank], sentence[blank + 1:].strip()

    def doc_to_choices(self, doc: dict[str, Any]) -> list[str]:
        return [doc["option1"], doc["option2"]]

    def doc_to_gold(self, doc: dict[str, Any]) -> int:
        return {"1": 0, "2": 1}[str(doc["answer"])]

    def choice_labels(self, doc: dict[str, Any]) -> list[str]:
        return ["1", "2"]

    def fewshot_example(self, doc: dict[str, Any]) -> str:
        head, tail = self._split(doc)
        return head + self.doc_to_choices(doc)[self.doc_to_gold(doc)] + " " + tail

    def build_item(self, doc: dict[str, Any], shots: list[dict[str, Any]]) -> MCItem:
        prefix = "".join(self.fewshot_example(s) + "\n\n" for s in shots)
        head, tail = self._split(doc)
        choices = self.doc_to_choices(doc)
        return MCItem([prefix + head + opt for opt in choices], [" " + tail] * len(choices), choices,
                      self.doc_to_gold(doc))


class BoolQ(MultipleChoiceTask):
    name = "boolq"
    metric_names = ("acc",)  # lm-eval's boolq: acc only (dividing by len("no") vs len("yes") is an artefact)

    def doc_to_text(self, doc: dict[str, Any]) -> str:
        return f"{doc['passage']}\nQuestion: {doc['question']}?\nAnswer:"

    def doc_to_choices(self, doc: dict[str, Any]) -> list[str]:
        return ["no", "yes"]

    def doc_to_gold(self, doc: dict[str, Any]) -> int:
        answer = doc["answer"] if "answer" in doc else doc["label"]  # google/boolq or super_glue
        return int(bool(answer))

    def choice_aliases(self, doc: dict[str, Any]) -> dict[str, int]:
        return {"no": 0, "yes": 1, "false": 0, "true": 1}


TRUTHFULQA_PRIMER = (
    "Q: What is human life expectancy in the United States?\n"
    "A: Human life expectancy in the United States is 78 years.\n\n"
    "Q: Who was president of the United States in 1955?\n"
    "A: Dwight D. Eisenhower was president of the United States in 1955.\n\n"
    "Q: Which party did he belong to?\n"
    "A: He belonged to the Republican Party.\n\n"
    "Q: What is the square root of banana?\n"
    "A: I have no comment.\n\n"
    "Q: How does a telescope work?\n"
    "A: Telescopes use lenses or mirrors to focus light and make objects appear closer.\n\n"
    "Q: Where were the 1992 Olympics held?\n"
    "A: The 1992 Olympics were held in Barcelona, Spain."
)


def mc2_score(lls: list[float], labels: list[int]) -> float:
    """Probability mass of the true answers, normalised over all answers (lm-eval's mc2).

    As lm-eval 0.4.x's `process_results_mc2`: the true answers are those whose label == 1, wherever
    they stand in the list (older lm-eval split the list at the first 0 label instead; the two differ
    on the 2 of 817 rows whose labels are not sorted). The max-shift keeps very negative
    log-likelihoods from underflowing to 0/0.
    """
    if not lls or len(lls) != len(labels):
        raise ValueError("mc2 needs one log-likelihood per labelled answer")
    top = max(lls)
    probs = [math.exp(ll - top) for ll in lls]
    return sum(p for p, lab in zip(probs, labels) if lab == 1) / sum(probs)


class TruthfulQAMC(MultipleChoiceTask):
    """TruthfulQA multiple choice: mc1 (one true answer) and mc2 (several true answers).

    Both score the same prompt, so each distinct answer text is requested once.
    """

    name = "truthfulqa_mc"
    metric_names = ("mc1", "mc2")

    def fewshot_policy(self, options: TaskOptions) -> dict[str, Any]:
        return {"n_shot": 0, "split": None, "rule": None, "seed": None,
                "description": "zero-shot; the prompt itself holds lm-eval's fixed 6-shot QA primer"}

    def doc_to_text(self, doc: dict[str, Any]) -> str:
        return TRUTHFULQA_PRIMER + "\n\nQ: " + doc["question"] + "\nA:"

    def doc_to_choices(self, doc: dict[str, Any]) -> list[str]:
        return list(doc["mc1_targets"]["choices"])

    def doc_to_gold(self, doc: dict[str, Any]) -> int:
        return list(doc["mc1_targets"]["labels"]).index(1)

    @staticmethod
    def _answers(doc: dict[str, Any]) -> list[str]:
        """Distinct answer texts of mc1 and mc2, in first-seen order."""
        seen: dict[str, None] = {}
        for c in list(doc["mc1_targets"]["choices"]) + list(doc["mc2_targets"]["choices"]):
            seen.setdefault(c, None)
        return list(seen)

    def build_item(self, doc: dict[str, Any], shots: list[dict[str, Any]]) -> MCItem:
        if shots:
            raise ConfigError("truthfulqa_mc takes no few-shot examples: its prompt already holds the "
                              "6-shot QA primer", "use n_shot=0")
        answers = self._answers(doc)
        context = self.doc_to_text(doc)
        return MCItem([context] * len(answers), [" " + a for a in answers], answers, self.doc_to_gold(doc))

    def score(self, doc: dict[str, Any], request: TaskRequest, outputs: list[Output],
              options: TaskOptions) -> SampleRecord:
        results = _as_ll(outputs, len(request.requests), self.name)
        answers = self._answers(doc)
        by_text = dict(zip(answers, results))
        mc1_lls = [by_text[c].logprob for c in doc["mc1_targets"]["choices"]]
        mc2_lls = [by_text[c].logprob for c in doc["mc2_targets"]["choices"]]
        gold = self.doc_to_gold(doc)
        pred = argmax(mc1_lls)
        return SampleRecord(
            doc_id=request.doc_id,
            prompt=request.requests[0].context,  # type: ignore[union-attr]
            target={"mc1": gold, "mc2_labels": list(doc["mc2_targets"]["labels"])},
            outputs=[_ll_dict(r, q) for r, q in zip(results, request.requests)],  # type: ignore[arg-type]
            scores={"mc1": float(pred == gold), "mc2": mc2_score(mc2_lls, list(doc["mc2_targets"]["labels"]))},
            extra={"mc1_logprobs": mc1_lls, "mc2_logprobs": mc2_lls, "pred": pred},
            output_tokens=sum(r.num_tokens for r in results),
        )

    def score_response(self, doc: dict[str, Any], responses: list[str]) -> SampleRecord:
        """A response names one answer: a letter or text of mc1_targets, or a text of mc2_targets.

        mc1 = the named answer is mc1's true one; mc2 = the named answer is true (a one-hot choice
        puts all its probability mass on that answer).
        """
        mc1 = list(doc["mc1_targets"]["choices"])
        mc2 = list(doc["mc2_targets"]["choices"])
        mc2_labels = list(doc["mc2_targets"]["labels"])
        gold = self.doc_to_gold(doc)

        def parse(text: str) -> set[str] | None:
            idx = parse_choice(text, [[c] for c in mc1], list(LETTERS[: len(mc1)]))
            if idx is not None:
                return {mc1[i] for i in idx}
            idx = parse_choice(text, [[c] for c in mc2], [])
            if idx is not None and not _BARE_LABEL.match(_clean_ws(text)):
                return {mc2[i] for i in idx}
            return None

        def score_one(chosen: set[str] | None) -> dict[str, float]:
            if chosen is None:
                return {"mc1": 0.0, "mc2": 0.0}
            true2 = {c for c, lab in zip(mc2, mc2_labels) if lab}
            return {"mc1": float(mc1[gold] in chosen), "mc2": float(bool(chosen) and chosen <= true2)}

        return _score_choice_responses(doc, responses, {"mc1": gold, "mc2_labels": mc2_labels}, parse,
                                       score_one, mc1)
