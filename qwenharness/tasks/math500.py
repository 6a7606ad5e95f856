"""MATH-500 (HuggingFaceH4/MATH-500): competition math, scored by final-answer equivalence.

Prompts:
- default, 0-shot: the problem and an instruction to reason step by step and put the final answer
  in \\boxed{} (raw text "Problem:\\n..\\n\\nSolution:", or one chat message with `options.chat`);
- n_shot 1..4: the Minerva prompt (Lewkowycz et al., 2022, as lm-evaluation-harness's minerva_math
  uses it): worked examples ending in "Final Answer: The final answer is $X$. I hope it is correct."

Scoring (`exact_match`): the last \\boxed{} of the response (else its "final answer is X"), then
`math_equiv.is_equiv` against the dataset's `answer` (normalised strings, element-wise tuples and
lists, sympy where the strings differ).
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from .base import TaskOptions
from .genutil import AnswerExtractionTask
from .math_equiv import extract_answer, is_equiv, last_boxed, normalize_answer

INSTRUCTION = "Solve the following problem step by step. Put your final answer within \\boxed{}."
STOP = ("\n\nProblem:", "<|im_end|>", "</s>")

# The four Minerva examples (problem, solution), as in the paper's appendix.
MINERVA_EXAMPLES: tuple[tuple[str, str], ...] = (
    (
        "Find the domain of the expression  $\\frac{\\sqrt{x-2}}{\\sqrt{5-x}}$.}",
        "The expressions inside each square root must be non-negative. Therefore, $x-2 \\ge 0$, so "
        "$x\\ge2$, and $5 - x \\ge 0$, so $x \\le 5$. Also, the denominator cannot be equal to zero, so "
        "$5-x>0$, which gives $x<5$. Therefore, the domain of the expression is $\\boxed{[2,5)}$.\n"
        "Final Answer: The final answer is $[2,5)$. I hope it is correct.",
    ),
    (
        "If $\\det \\mathbf{A} = 2$ and $\\det \\mathbf{B} = 12,$ then find "
        "$\\det (\\mathbf{A} \\mathbf{B}).$",
        "We have that $\\det (\\mathbf{A} \\mathbf{B}) = (\\det \\mathbf{A})(\\det \\mathbf{B}) = "
        "(2)(12) = \\boxed{24}.$\nFinal Answer: The final answer is $24$. I hope it is correct.",
    ),
    (
        "Terrell usually lifts two 20-pound weights 12 times. If he uses two 15-pound weights instead, "
        "how many times must Terrell lift them in order to lift the same total weight?",
        "If Terrell lifts two 20-pound weights 12 times, he lifts a total of $2\\cdot 12\\cdot20=480$ "
        "pounds of weight.  If he lifts two 15-pound weights instead for $n$ times, he will lift a total "
        "of $2\\cdot15\\cdot n=30n$ pounds of weight.  Equating this to 480 pounds, we can solve for $n$:\n"
        "\\begin{align*}\n30n&=480\\\\\n\\Rightarrow\\qquad n&=480/30=\\boxed{16}\n\\end{align*}\n"
        "Final Answer: The final answer is $16$. I hope it is correct.",
    ),
    (
        "If the system of equations\n\n\\begin{align*}\n6x-4y&=a,\\\\\n6y-9x &=b.\n\\end{align*}has a "
        "solution $(x, y)$ where $x$ and $y$ are both nonzero,\nfind $\\frac{a}{b},$ assuming $b$ is "
        "nonzero.",
        "If we multiply the first equation by $-\\frac{3}{2}$, we obtain\n\n$$6y-9x=-\\frac{3}{2}a.$$"
        "Since we also know that $6y-9x=b$, we have\n\n$$-\\frac{3}{2}a=b\\Rightarrow\\frac{a}{b}="
        "\\boxed{-\\frac{2}{3}}.$$\nFinal Answer: The final answer is $-\\frac{2}{3}$. I hope it is correct.",
    ),
)


class MATH500(AnswerExtractionTask):
    name = "math500"
    output_type = "generate"
    default_n_shot = 0
    metric_names = ("exact_match",)
    stop = STOP
    raw_max_tokens = 1024
    chat_max_tokens = 2048
    thinking_max_tokens = 8192

    def n_shot(self, options: TaskOptions) -> int:
        n = self.default_n_shot if options.n_shot is None else options.n_shot
        if not 0 <= n <= len(MINERVA_EXAMPLES):
            raise ConfigError(f"math500 supports 0 to {len(MINERVA_EXAMPLES)} shots (the Minerva prompt), "
                              f"got {n}", f"use n_shot between 0 and {len(MINERVA_EXAMPLES)}")
        return n

    @staticmethod
    def raw_prompt(doc: dict[str, Any], n_shot: int) -> str:
        if n_shot == 0:
            return f"{INSTRUCTION}\n\nProblem:\n{doc['problem']}\n\nSolution:"
        shots = [f"Problem:\n{p}\n\nSolution:\n{s}" for p, s in MINERVA_EXAMPLES[:n_shot]]
        return "\n\n".join(shots) + f"\n\nProblem:\n{doc['problem']}\n\nSolution:"

    @staticmethod
    def chat_messages(doc: dict[str, Any], n_shot: int) -> list[dict[str, str]]:
        messages: list[dict[str, str]] = []
        for p, s in MINERVA_EXAMPLES[:n_shot]:
            messages += [{"role": "user", "content": f"{p}\n\n{INSTRUCTION}"}, {"role": "assistant", "content": s}]
        messages.append({"role": "user", "content": f"{doc['problem']}\n\n{INSTRUCTION}"})
        return messages

    def reference(self, doc: dict[str, Any]) -> str:
        answer = doc.get("answer")
        if answer:
            return str(answer)
        boxed = last_boxed(doc.get("solution", ""))
        if boxed is None:
            raise ValueError(f"math500 doc {doc.get('_index')} has neither an answer nor a boxed solution")
        return boxed

    def _score_texts(self, doc: dict[str, Any], texts: list[str],
                     chat: bool | None = None) -> tuple[dict[str, float], dict[str, Any]]:
        gold = self.reference(doc)
        extracted = [extract_answer(t) for t in texts]
        ok = [float(is_equiv(e, gold)) for e in extracted]
        extra: dict[str, Any] = {
            "extracted": extracted,
            "normalized": [normalize_answer(e) if e is not None else None for e in extracted],
            "normalized_target": normalize_answer(gold),
        }
        missing = [i for i, e in enumerate(extracted) if e is None]
        if missing:
            extra["parse_error"] = f"no \\boxed{{}} or 'final answer is' in response(s) {missing}"
        if len(texts) > 1:
            extra["per_sample"] = ok
        return {"exact_match": sum(ok) / len(ok)}, extra

