"""The Task interface: docs -> requests -> per-sample scores -> aggregate metrics.

A task never talks to an engine directly: it asks a RunContext, which batches requests, consults the
response cache (for resumable runs) and shows progress. Most tasks only implement `build_requests`,
`score` and `aggregate`; multi-step protocols (MT-Bench) override `run`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from ..engines.base import (
    Generation,
    GenerationRequest,
    LoglikelihoodRequest,
    LoglikelihoodResult,
)

if TYPE_CHECKING:
    from ..data.registry import DatasetSpec

Output = Generation | LoglikelihoodResult


@dataclass
class TaskOptions:
    n_shot: int | None = None  # None = the task's conventional default
    seed: int = 1234
    chat: bool = False  # wrap prompts in the model's chat template
    enable_thinking: bool | None = None  # Qwen3 thinking; None = model default
    num_samples: int = 1  # samples per problem (pass@k)
    temperature: float | None = None  # None = the task protocol's
    max_tokens: int | None = None
    fewshot_sampler: str = "harness"  # "harness" (per document) or "lm-eval" (see tasks/fewshot.py)
    # the rows of every document of the run, in split order: what the "lm-eval" sampler replays over
    fewshot_order: tuple[int, ...] | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The options as stated in aggregates and fingerprints: fewshot_order (derived from the
        documents, which the run states already) is left out, and the sampler only when it is not
        the default, so runs made before it existed keep their fingerprint."""
        out = asdict(self)
        out.pop("fewshot_order")
        if out["fewshot_sampler"] == "harness":
            out.pop("fewshot_sampler")
        return out


@dataclass
class TaskRequest:
    doc_id: str
    requests: list[GenerationRequest] | list[LoglikelihoodRequest]


@dataclass
class SampleRecord:
    """One line of <dataset>.samples.jsonl."""

    doc_id: str
    prompt: Any  # text, chat messages, or per-choice contexts
    target: Any
    outputs: list[Any]  # generated texts (thinking stripped) or per-choice log-likelihoods
    scores: dict[str, Any]  # per-sample metric values
    extra: dict[str, Any] = field(default_factory=dict)  # raw outputs with <think>, statuses, judgments
    prompt_tokens: int = 0
    output_tokens: int = 0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class RunContext(Protocol):
    """What the evaluation runner gives a task: cached, batched, progress-reporting engine calls."""

    model_name: str

    def generate(self, requests: list[GenerationRequest]) -> list[Generation]: ...

    def loglikelihood(self, requests: list[LoglikelihoodRequest]) -> list[LoglikelihoodResult]: ...

    def loglikelihood_or_errors(self, requests: list[LoglikelihoodRequest]) -> list[LoglikelihoodResult | str]:
        """Like `loglikelihood`, with an error message in place of each request that failed."""
        ...

    def judge_generate(self, requests: list[GenerationRequest]) -> list[Generation]: ...

    def apply_chat_template(self, messages: list[dict[str, str]], enable_thinking: bool | None = None) -> str: ...


class Task(ABC):
    name: str  # equals the dataset registry name
    # An outside task (registered by decorator or entry point) carries its dataset's spec here; the
    # 14 built-in ones are in qwenharness/data/registry.py.
    dataset: ClassVar["DatasetSpec | None"] = None
    output_type: Literal["loglikelihood", "generate", "multi_turn"]
    default_n_shot: int = 0
    metric_names: tuple[str, ...] = ()  # the metrics the task reports, declared as lm-eval's YAML does
    higher_is_better: bool = True
    # how examples are chosen: "seeded" (TaskOptions.fewshot_sampler's rule), or a fixed rule of the
    # task: "first_n" / "first_n_by_subject" (see tasks/fewshot.RULES)
    fewshot_rule: str = "seeded"
    needs_judge: bool = False  # its scores come from an LLM judge (RunContext.judge_generate)
    # Set by the runner on every task: the folder datasets are read from (tasks that read more than
    # their documents use it, e.g. MT-Bench's judge prompts), and a judged task's judge token budget.
    data_dir: str | None = None
    judge_max_tokens: int | None = None

    @abstractmethod
    def build_requests(self, docs: list[dict[str, Any]], options: TaskOptions,
                       fewshot_docs: list[dict[str, Any]] | None = None) -> list[TaskRequest]:
        """One TaskRequest per doc, in the order of `docs`."""

    @abstractmethod
    def score(self, doc: dict[str, Any], request: TaskRequest, outputs: list[Output],
              options: TaskOptions) -> SampleRecord:
        """Score one doc's outputs (same order as request.requests)."""

    def aggregate(self, records: list[SampleRecord]) -> dict[str, dict[str, Any]]:
        from ..metrics import aggregate_scores

        return aggregate_scores((r.scores for r in records if r.error is None), self.metric_names)

    @abstractmethod
    def score_response(self, doc: dict[str, Any], responses: list[str]) -> SampleRecord:
        """Score responses produced elsewhere (`qwenharness score`); several = n samples."""

    def score_responses(self, items: list[tuple[dict[str, Any], list[str]]]) -> list[SampleRecord]:
        """`score_response` for many documents; a sample whose scoring raises is recorded as an
        error, not fatal (tasks that score in parallel, such as the code tasks, override this)."""
        from ..errors import HarnessError

        records = []
        for doc, responses in items:
            try:
                records.append(self.score_response(doc, responses))
            except HarnessError:
                raise
            except Exception as e:  # noqa: BLE001 - one bad sample is recorded, not fatal
                records.append(SampleRecord(doc_id="", prompt=None, target=None, outputs=responses, scores={},
                                            error=f"{type(e).__name__}: {e}"))
        return records

    def metric_range(self, name: str) -> tuple[float, float]:
        """The range the metric `name` must lie in (verify.py checks every stored value against it)."""
        return (0.0, 1.0)

    def isolation(self, records: list[SampleRecord]) -> str | None:
        """How generated code ran for these records ("bubblewrap", "none"); None: the task runs none."""
        return None

    def breakdown(self, records: list[SampleRecord]) -> dict[str, Any]:
        """Per-group metrics whose groups are not fields of the documents (IFEval's instructions)."""
        return {}

    def prepare_sandbox(self, allow_unisolated: bool) -> None:
        """Tasks that execute generated code set up their sandbox now, refusing before any work
        where bubblewrap is missing (unless `allow_unisolated`); the others run no code."""

    def fewshot_split(self) -> str | None:
        """The split few-shot examples come from: its dataset spec's `fewshot_split` (one place), or
        None for a task with no spec (a test's fake, made by a task factory, reads no split)."""
        from ..data.registry import DATASETS

        spec = self.dataset or DATASETS.get(self.name)
        return spec.fewshot_split if spec is not None else None

    def n_shot(self, options: TaskOptions) -> int:
        """The number of worked examples actually put into each prompt under these options."""
        return self.default_n_shot if options.n_shot is None else options.n_shot

    def fewshot_policy(self, options: TaskOptions) -> dict[str, Any]:
        """Where the examples come from, how they are chosen and with which seed (stated in every
        aggregate and in `qwenharness datasets --list`)."""
        from .fewshot import RULES

        n = self.n_shot(options)
        if n == 0:
            return {"n_shot": 0, "split": None, "rule": None, "seed": None, "description": "zero-shot"}
        seeded = self.fewshot_rule == "seeded"
        rule = options.fewshot_sampler if seeded else self.fewshot_rule
        return {"n_shot": n, "split": self.fewshot_split(), "rule": rule,
                "seed": options.seed if seeded else None, "description": RULES[rule]}

    def seeded_shots(self, pool: list[dict[str, Any]] | None, doc: dict[str, Any], n: int,
                     options: TaskOptions) -> list[dict[str, Any]]:
        """`n` examples drawn under the options' sampler rule (tasks/fewshot.py)."""
        from ..data import get_dataset_spec
        from .fewshot import sample_fewshot

        return sample_fewshot(pool or [], doc, n, options.seed, self.name, sampler=options.fewshot_sampler,
                              order=options.fewshot_order,
                              pool_is_eval_split=self.fewshot_split() == get_dataset_spec(self.name).eval_split)

    def protocol(self, options: TaskOptions) -> str:
        """The name of the prompting and scoring protocol these options select (stated in aggregates)."""
        kind = "chat" if options.chat and self.output_type != "loglikelihood" else (
            "loglikelihood" if self.output_type == "loglikelihood" else "completion")
        return f"{self.name}-{kind}"

    def run(self, docs: list[dict[str, Any]], ctx: RunContext, options: TaskOptions,
            fewshot_docs: list[dict[str, Any]] | None = None) -> list[SampleRecord]:
        """The protocol loop: build every request, submit them in one batch, score each doc, with
        per-sample error isolation: a doc whose prompt cannot be built, whose request failed in the
        engine, or whose scoring raised becomes an error record. Tasks with another protocol
        (several engine rounds, a judge, one sandbox batch) override this."""
        from ..errors import HarnessError

        try:
            built: list[Any] = list(self.build_requests(docs, options, fewshot_docs))
        except HarnessError:
            raise
        except Exception:
            built = []
            for doc in docs:
                try:
                    built.append(self.build_requests([doc], options, fewshot_docs)[0])
                except Exception as e:  # noqa: BLE001 - recorded per sample
                    built.append(e)
        flat = [r for t in built if not isinstance(t, BaseException) for r in t.requests]
        if self.output_type == "loglikelihood":
            outs: list[Any] = ctx.loglikelihood_or_errors(flat)  # type: ignore[arg-type]
        else:
            outs = ctx.generate(flat)  # type: ignore[arg-type]
        records, i = [], 0
        for doc, t in zip(docs, built):
            if isinstance(t, BaseException):
                records.append(error_record("", f"building the prompt failed: {describe(t)}"))
                continue
            mine = outs[i:i + len(t.requests)]
            i += len(t.requests)
            failed = engine_failures(mine)
            if failed:
                rec = error_record(t.doc_id, f"engine: {failed[0]}", prompt=prompt_of(t.requests))
            else:
                try:
                    rec = self.score(doc, t, mine, options)
                except HarnessError:
                    raise
                except Exception as e:  # noqa: BLE001 - recorded per sample
                    rec = error_record(t.doc_id, f"scoring failed: {describe(e)}", prompt=prompt_of(t.requests))
            records.append(rec)
        return records


def describe(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


def error_record(doc_id: str, message: str, prompt: Any = None) -> SampleRecord:
    return SampleRecord(doc_id=doc_id, prompt=prompt, target=None, outputs=[], scores={}, error=message)


def engine_failures(outputs: list[Any]) -> list[str]:
    """The error messages among one doc's engine outputs: a failed request comes back as its message
    (log-likelihoods) or as a Generation carrying `error`."""
    return ([o for o in outputs if isinstance(o, str)]
            + [o.error for o in outputs if isinstance(o, Generation) and o.error])


def prompt_of(requests: list[Any]) -> Any:
    """What an error record shows as the prompt of a doc's first request."""
    r = requests[0] if requests else None
    if r is None:
        return None
    if isinstance(r, LoglikelihoodRequest):
        return r.context
    return r.prompt if r.prompt is not None else (list(r.messages) if r.messages else None)


def strip_thinking(text: str) -> tuple[str, str | None]:
    """Split a Qwen3 answer into (answer without <think>...</think>, the thinking or None).

    An unterminated <think> (generation cut off while thinking) leaves no answer.
    """
    start = text.find("<think>")
    if start == -1:
        end = text.find("</think>")  # chat templates may open the block in the prompt
        if end == -1:
            return text, None
        return text[end + len("</think>"):].lstrip(), text[:end]
    end = text.find("</think>", start)
    if end == -1:
        return "", text[start + len("<think>"):]
    return (text[:start] + text[end + len("</think>"):]).strip(), text[start + len("<think>"):end]
