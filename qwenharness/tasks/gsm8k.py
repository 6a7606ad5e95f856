"""GSM8K: grade-school math word problems, scored as lm-evaluation-harness's `gsm8k` task.

Prompt (default, raw text): 5 worked examples from the train split, each
"Question: {question}\\nAnswer: {full worked answer ending in '#### N'}", separated by blank lines,
then "Question: {question}\\nAnswer:"; greedy, stopping at "Question:", "</s>", "<|im_end|>" or a
blank line. For instruct models, `options.chat` asks the question in a chat message (0-shot unless
n_shot says otherwise; examples then become earlier user/assistant turns) and asks the model to end
with "The final answer is N"; flexible-extract then reads the last number.

Metrics, as in lm-eval's gsm8k.yaml (its names `exact_match,strict-match` and
`exact_match,flexible-extract`, here `strict_match` and `flexible_extract`):

- strict_match: the first match of ``#### (\\-?[0-9\\.\\,]+)`` (group 1); with the chat prompt, the
  format it asks for, ``The final answer is ((-?[$0-9.,]{2,})|(-?[0-9]+))`` (lm-eval's gsm8k_cot_llama);
- flexible_extract: the LAST match of ``(-?[$0-9.,]{2,})|(-?[0-9]+)`` (the non-empty group);
- numeric_match (not lm-eval's): the last ``\\boxed{}``, else the last "The final answer is N", else the
  last number, compared with the reference as a number, so "8.0" and "$1,000.00" count (found on
  Qwen2.5-Coder's chat answers, which box "8.0" for a reference of 8);
- no match gives "[invalid]". Prediction and the full reference answer are then compared by exact
  match after removing, in order, the regexes ",", "\\$", "(?s).*#### ", "\\.$" and lower-casing
  (ignore_case true, ignore_punctuation false).
"""

from __future__ import annotations

import re
from typing import Any

from .base import TaskOptions
from .genutil import AnswerExtractionTask

STRICT_PATTERN = re.compile(r"#### (\-?[0-9\.\,]+)")
# What the chat instruction asks for, as lm-eval's chat chain-of-thought variant (gsm8k_cot_llama)
# matches it: the completion format's "#### N" never appears in a chat answer.
STRICT_CHAT_PATTERN = re.compile(r"The final answer is ((-?[$0-9.,]{2,})|(-?[0-9]+))")
FLEXIBLE_PATTERN = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
IGNORE_REGEXES = (",", r"\$", r"(?s).*#### ", r"\.$")
FALLBACK = "[invalid]"
STOP = ("Question:", "</s>", "<|im_end|>", "\n\n")

CHAT_INSTRUCTION = (
    "Solve the following math problem step by step. At the end, write the final answer on its own "
    "line as \"The final answer is N\", where N is just the number.\n\n{question}"
)


def regex_extract(text: str, pattern: re.Pattern[str], group_select: int) -> str:
    """lm-eval's `regex` filter: findall, pick one match, its first non-empty group, stripped."""
    matches = pattern.findall(text)
    if not matches:
        return FALLBACK
    match = matches[group_select]
    if isinstance(match, tuple):
        match = [g for g in match if g][0]
    return match.strip()


def strict_extract(text: str, chat: bool = False) -> str:
    return regex_extract(text, STRICT_CHAT_PATTERN if chat else STRICT_PATTERN, 0)


def flexible_extract(text: str) -> str:
    return regex_extract(text, FLEXIBLE_PATTERN, -1)


def normalize(text: str) -> str:
    """The exact_match normalisation of gsm8k.yaml: remove the ignore regexes in order, lower-case."""
    for pattern in IGNORE_REGEXES:
        text = re.sub(pattern, "", text)
    return text.lower()


def exact_match(prediction: str, reference: str) -> bool:
    return normalize(prediction) == normalize(reference)


BOXED = re.compile(r"\\boxed\{([^{}]*)\}")


def numeric_answer(text: str) -> float | None:
    """The answer as a number: the last \\boxed{...}, else the last "The final answer is ...", else
    the last number; "$1,000.00" and "8.0" read as 1000 and 8."""
    boxed = BOXED.findall(text)
    said = STRICT_CHAT_PATTERN.findall(text)
    candidate = (boxed[-1] if boxed else said[-1][0] if said else flexible_extract(text))
    numbers = re.findall(r"-?[0-9][0-9,]*(?:\.[0-9]+)?", candidate.replace("$", ""))
    if not numbers:
        return None
    try:
        return float(numbers[-1].replace(",", ""))
    except ValueError:
        return None


def numeric_match(text: str, reference: str) -> bool:
    """The answer equals the reference as a number (8.0 == 8): what lm-eval's string match misses."""
    got, want = numeric_answer(text), numeric_answer(final_answer(reference))
    return got is not None and want is not None and abs(got - want) < 1e-6


def final_answer(reference: str) -> str:
    """The number after '####' in a reference answer."""
    return reference.split("####")[-1].strip()


class GSM8K(AnswerExtractionTask):
    name = "gsm8k"
    output_type = "generate"
    default_n_shot = 5
    metric_names = ("strict_match", "flexible_extract", "numeric_match")
    stop = STOP
    raw_max_tokens = 256
    chat_max_tokens = 1024
    thinking_max_tokens = 4096


    def n_shot(self, options: TaskOptions) -> int:
        if options.n_shot is not None:
            return options.n_shot
        return 0 if options.chat else self.default_n_shot

    @staticmethod
    def raw_prompt(doc: dict[str, Any], shots: list[dict[str, Any]]) -> str:
        parts = [f"Question: {s['question']}\nAnswer: {s['answer']}" for s in shots]
        parts.append(f"Question: {doc['question']}\nAnswer:")
        return "\n\n".join(parts)

    @staticmethod
    def chat_messages(doc: dict[str, Any], shots: list[dict[str, Any]]) -> list[dict[str, str]]:
        messages: list[dict[str, str]] = []
        for s in shots:
            messages.append({"role": "user", "content": CHAT_INSTRUCTION.format(question=s["question"])})
            messages.append({"role": "assistant",
                             "content": f"{s['answer']}\nThe final answer is {final_answer(s['answer'])}"})
        messages.append({"role": "user", "content": CHAT_INSTRUCTION.format(question=doc["question"])})
        return messages

    def shots_for(self, doc: dict[str, Any], n_shot: int, options: TaskOptions,
                  fewshot_docs: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
        return self.seeded_shots(fewshot_docs, doc, n_shot, options) if n_shot else []

    def reference(self, doc: dict[str, Any]) -> str:
        return final_answer(doc["answer"])

    def _score_texts(self, doc: dict[str, Any], texts: list[str],
                     chat: bool | None = None) -> tuple[dict[str, float], dict[str, Any]]:
        # chat None (responses scored with `qwenharness score`): the format the text itself uses
        strict = [strict_extract(t, chat if chat is not None else "####" not in t) for t in texts]
        flexible = [flexible_extract(t) for t in texts]
        reference = doc["answer"]
        s_ok = [float(exact_match(p, reference)) for p in strict]
        f_ok = [float(exact_match(p, reference)) for p in flexible]
        n_ok = [float(numeric_match(t, reference)) for t in texts]
        scores = {"strict_match": sum(s_ok) / len(s_ok), "flexible_extract": sum(f_ok) / len(f_ok),
                  "numeric_match": sum(n_ok) / len(n_ok)}
        extra: dict[str, Any] = {"strict_extracted": strict, "flexible_extracted": flexible,
                                 "numeric_answer": [numeric_answer(t) for t in texts]}
        if len(texts) > 1:
            extra["per_sample"] = {"strict_match": s_ok, "flexible_extract": f_ok, "numeric_match": n_ok}
        return scores, extra

