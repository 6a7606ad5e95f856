"""DatasetSpec registry: the 14 benchmarks, where each lives on the Hub and on disk, and its schema.

One spec serves both sources. On the Hub a split is read with `datasets.load_dataset(hub_id,
hub_config, split=..., revision=...)`, or, for data kept as plain files in a Hub repo or on GitHub
(MT-Bench), downloaded as a JSONL file. On disk every split is `<data_dir>/<folder>/<split>.jsonl`
in the Hub schema (the layout of ../shared/data and of the download cache). Records from either
source are normalised (`normalize`) and projected onto the declared fields, so `load()` returns the
same records whichever source it read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import DataError, UnknownNameError

# JSON types a field may have. "int" excludes bool; "float" accepts ints.
FieldType = str  # "str" | "int" | "float" | "bool" | "list" | "dict"


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: FieldType
    required: bool = True


@dataclass(frozen=True)
class RemoteFile:
    """A split kept as a JSONL file in a Hub repository (space/dataset/model) or at a plain URL."""

    path: str  # file inside the repository, or a full https:// URL
    repo_id: str | None = None  # None: `path` is a URL
    repo_type: str = "space"
    revision: str | None = None


@dataclass(frozen=True)
class Subtasks:
    """A dataset's named parts: each record of the evaluation split belongs to one subtask (the value
    of `field`), and groups gather subtasks (MMLU: 57 subjects in 4 categories)."""

    field: str
    rows: dict[str, int]  # subtask -> rows in the evaluation split
    groups: dict[str, tuple[str, ...]]  # group -> its subtasks

    def group_of(self, subtask: str) -> str | None:
        return next((g for g, members in self.groups.items() if subtask in members), None)


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    title: str
    task: str  # kind of task: "multiple_choice" | "generate" | "code" | "instructions" | "multi_turn"
    hub_id: str  # Hugging Face id (dataset, or the repository of `remote_files`)
    hub_config: str | None
    eval_split: str
    splits: dict[str, int]  # split name -> expected rows (the local file is <split>.jsonl)
    fields: tuple[FieldSpec, ...]
    license: str
    fewshot_split: str | None = None
    id_field: str | None = None  # the dataset's own id; None: the row index in the split ("_index")
    hub_revision: str | None = None
    hub_splits: dict[str, str] = field(default_factory=dict)  # local split -> Hub split, where they differ
    remote_files: dict[str, RemoteFile] = field(default_factory=dict)  # split -> file, instead of datasets
    folder: str | None = None  # folder under the data directory; default: name
    normalize: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    notes: str = ""
    subtasks: Subtasks | None = None  # `--datasets name:subtask` / `name:group` select a part

    @property
    def local_folder(self) -> str:
        return self.folder or self.name

    # -- the names other modules use -----------------------------------------------------------
    @property
    def split(self) -> str:
        """The evaluation split."""
        return self.eval_split

    @property
    def local_dir(self) -> str:
        """The dataset's folder under a data directory."""
        return self.local_folder

    @property
    def family(self) -> str:
        return self.task

    @property
    def expected_rows(self) -> int:
        """Rows of the evaluation split."""
        return self.splits[self.eval_split]

    @property
    def required_fields(self) -> tuple[str, ...]:
        """Fields every record of the evaluation split has."""
        return tuple(f.name for f in self.fields if f.required)

    def doc_id(self, row: dict[str, Any]) -> str:
        """The dataset's own id of a loaded row (`task_id` for HumanEval/MBPP), else its row index."""
        if self.id_field is not None and self.id_field in row:
            return str(row[self.id_field])
        if "_index" not in row:
            raise DataError(f"a {self.name} row has no '_index' and no '{self.id_field or 'id'}' field",
                            f"load rows with qwenharness.data.load('{self.name}'), which numbers them")
        return str(row["_index"])

    def local_file(self, split: str) -> str:
        """Path of a split's file relative to a data directory."""
        return f"{self.local_folder}/{split}.jsonl"

    def hub_split(self, split: str) -> str:
        return self.hub_splits.get(split, split)

    def hub_source(self, split: str | None = None) -> str:
        """Where the Hub path reads a split from, for messages and the summary."""
        split = split or self.eval_split
        remote = self.remote_files.get(split)
        if remote is not None:
            if remote.repo_id is None:
                return remote.path
            return f"{remote.repo_type}:{remote.repo_id}/{remote.path}"
        cfg = f"[{self.hub_config}]" if self.hub_config else ""
        rev = f"@{self.hub_revision}" if self.hub_revision else ""
        return f"{self.hub_id}{cfg}{rev}:{self.hub_split(split)}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "title": self.title, "task": self.task, "hub_id": self.hub_id,
            "hub_config": self.hub_config, "hub_revision": self.hub_revision, "eval_split": self.eval_split,
            "fewshot_split": self.fewshot_split, "splits": dict(self.splits),
            "hub_sources": {s: self.hub_source(s) for s in self.splits},
            "local_files": {s: self.local_file(s) for s in self.splits},
            "fields": {f.name: f.type + ("" if f.required else "?") for f in self.fields},
            "id_field": self.id_field, "license": self.license, "notes": self.notes,
            "subtasks": None if self.subtasks is None else {
                "field": self.subtasks.field, "rows": dict(self.subtasks.rows),
                "groups": {g: list(m) for g, m in self.subtasks.groups.items()}},
        }


def _f(spec: str) -> tuple[FieldSpec, ...]:
    """'name:type name:type? ...' -> FieldSpecs ('?' marks an optional field)."""
    out = []
    for item in spec.split():
        name, typ = item.split(":")
        out.append(FieldSpec(name, typ.rstrip("?"), required=not typ.endswith("?")))
    return tuple(out)


def _ifeval_normalize(rec: dict[str, Any]) -> dict[str, Any]:
    # On the Hub `kwargs` is an Arrow struct: every instruction's dict carries all keys of all
    # instructions, unset ones as None. The original file (and lm-evaluation-harness, which drops the
    # Nones before calling a checker) has only the keys an instruction takes.
    kwargs = rec.get("kwargs")
    if isinstance(kwargs, list):
        rec["kwargs"] = [{k: v for k, v in kw.items() if v is not None} if isinstance(kw, dict) else kw
                         for kw in kwargs]
    return rec


def _mt_bench_normalize(rec: dict[str, Any]) -> dict[str, Any]:
    if rec.get("reference") is None:
        rec.pop("reference", None)  # only math, reasoning and coding questions carry one
    return rec


def _mmlu_subtasks() -> Subtasks:
    from .mmlu_categories import CATEGORIES, SUBJECTS, subjects_of

    return Subtasks("subject", {s: rows for s, (_, rows) in SUBJECTS.items()},
                    {c: subjects_of(c) for c in CATEGORIES})


_FASTCHAT_DATA = "https://raw.githubusercontent.com/lm-sys/FastChat/main/fastchat/llm_judge/data"

_ARC_FIELDS = _f("id:str question:str choices:dict answerKey:str")
_ARC_NOTE = ("The local test files come from a copy without the original ids (ids are "
             "'<name>-test-<row>') and with choice labels A.. by position; the Hub's test split has the "
             "original ids and, for a few questions, labels 1-4. Validation files are the Hub's rows.")

_SPECS: tuple[DatasetSpec, ...] = (
    DatasetSpec(
        name="humaneval", title="HumanEval", task="code", hub_id="openai/openai_humaneval", hub_config=None,
        eval_split="test", splits={"test": 164}, id_field="task_id", license="MIT",
        fields=_f("task_id:str prompt:str canonical_solution:str test:str entry_point:str"),
    ),
    DatasetSpec(
        name="mbpp", title="MBPP (sanitized)", task="code", hub_id="google-research-datasets/mbpp",
        hub_config="sanitized", eval_split="test", fewshot_split="prompt", id_field="task_id",
        splits={"test": 257, "train": 120, "validation": 43, "prompt": 7}, license="CC-BY-4.0",
        fields=_f("source_file:str task_id:int prompt:str code:str test_imports:list test_list:list"),
    ),
    DatasetSpec(
        name="gsm8k", title="GSM8K", task="generate", hub_id="openai/gsm8k", hub_config="main",
        eval_split="test", fewshot_split="train", splits={"test": 1319, "train": 7473}, license="MIT",
        fields=_f("question:str answer:str"),
    ),
    DatasetSpec(
        name="hellaswag", title="HellaSwag", task="multiple_choice", hub_id="Rowan/hellaswag", hub_config=None,
        eval_split="validation", splits={"validation": 10042}, license="MIT",
        fewshot_split="validation",  # no train split here; the doc itself is always excluded
        fields=_f("ind:int activity_label:str ctx_a:str ctx_b:str ctx:str endings:list source_id:str "
                  "split:str split_type:str label:str"),
    ),
    DatasetSpec(
        name="mt_bench", title="MT-Bench", task="multi_turn", hub_id="lmsys/mt-bench", hub_config=None,
        eval_split="question", license="Apache-2.0",
        splits={"question": 80, "judge_prompts": 8, "reference_answer_gpt-4": 30},
        remote_files={
            "question": RemoteFile("data/mt_bench/question.jsonl", repo_id="lmsys/mt-bench", repo_type="space"),
            "judge_prompts": RemoteFile(f"{_FASTCHAT_DATA}/judge_prompts.jsonl"),
            "reference_answer_gpt-4": RemoteFile(f"{_FASTCHAT_DATA}/mt_bench/reference_answer/gpt-4.jsonl"),
        },
        # Only the question split's schema is declared; the judge prompts and reference answers are
        # read as they are (see `extra_split_fields`).
        fields=_f("question_id:int category:str turns:list reference:list?"),
        normalize=_mt_bench_normalize,
        notes="FastChat llm_judge data, not a Hub dataset: questions from the lmsys/mt-bench Space, judge "
              "prompts and GPT-4 reference answers from FastChat's repository.",
    ),
    DatasetSpec(
        name="arc_challenge", title="ARC-Challenge", task="multiple_choice", hub_id="allenai/ai2_arc",
        hub_config="ARC-Challenge", eval_split="test", fewshot_split="validation", splits={"test": 1172, "validation": 299},
        license="CC-BY-SA-4.0", fields=_ARC_FIELDS, notes=_ARC_NOTE,
    ),
    DatasetSpec(
        name="arc_easy", title="ARC-Easy", task="multiple_choice", hub_id="allenai/ai2_arc",
        hub_config="ARC-Easy", eval_split="test", fewshot_split="validation", splits={"test": 2376, "validation": 570},
        license="CC-BY-SA-4.0", fields=_ARC_FIELDS, notes=_ARC_NOTE,
    ),
    DatasetSpec(
        name="mmlu", title="MMLU", task="multiple_choice", hub_id="cais/mmlu", hub_config="all",
        eval_split="test", fewshot_split="dev", splits={"test": 14042, "validation": 1531, "dev": 285},
        license="MIT", fields=_f("question:str subject:str choices:list answer:int"),
        subtasks=_mmlu_subtasks(),
        notes="Subtasks: the 57 subjects (mmlu:abstract_algebra, ...) and the four categories of lm-eval "
              "(mmlu:stem, mmlu:humanities, mmlu:social_sciences, mmlu:other).",
    ),
    DatasetSpec(
        name="truthfulqa_mc", title="TruthfulQA (multiple choice)", task="multiple_choice",
        hub_id="truthfulqa/truthful_qa", hub_config="multiple_choice", eval_split="validation",
        splits={"validation": 817}, license="Apache-2.0",
        fields=_f("question:str mc1_targets:dict mc2_targets:dict"),
    ),
    DatasetSpec(
        name="winogrande", title="WinoGrande (XL, validation)", task="multiple_choice",
        hub_id="allenai/winogrande", hub_config="winogrande_xl", eval_split="validation",
        fewshot_split="validation", splits={"validation": 1267}, license="Apache-2.0",
        fields=_f("sentence:str option1:str option2:str answer:str"),
    ),
    DatasetSpec(
        name="piqa", title="PIQA", task="multiple_choice", hub_id="ybisk/piqa", hub_config="default",
        hub_revision="refs/convert/parquet", eval_split="validation", fewshot_split="validation",
        splits={"validation": 1838},
        license="AFL-3.0", fields=_f("goal:str sol1:str sol2:str label:int"),
        notes="ybisk/piqa's main branch is a loading script, which datasets>=4 refuses; the Hub's own "
              "Parquet conversion (refs/convert/parquet, config 'default') has the same rows.",
    ),
    DatasetSpec(
        name="boolq", title="BoolQ", task="multiple_choice", hub_id="google/boolq", hub_config=None,
        eval_split="validation", fewshot_split="validation", splits={"validation": 3270},
        license="CC-BY-SA-3.0",
        fields=_f("question:str answer:bool passage:str"),
    ),
    DatasetSpec(
        name="math500", title="MATH-500", task="generate", hub_id="HuggingFaceH4/MATH-500", hub_config=None,
        eval_split="test", splits={"test": 500}, license="MIT",
        fields=_f("problem:str solution:str answer:str level:int"),
        notes="The Hub also has subject and unique_id; the local copy lacks them, so records from both "
              "sources carry problem, solution, answer and level only.",
    ),
    DatasetSpec(
        name="ifeval", title="IFEval", task="instructions", hub_id="google/IFEval", hub_config=None,
        eval_split="train", splits={"train": 541}, license="Apache-2.0",
        fields=_f("key:int prompt:str instruction_id_list:list kwargs:list"), normalize=_ifeval_normalize,
        notes="kwargs keep only the keys each instruction takes (the Hub's Arrow struct adds the others "
              "as null; they are dropped, as lm-evaluation-harness does).",
    ),
)

DATASETS: dict[str, DatasetSpec] = {s.name: s for s in _SPECS}

# Auxiliary splits whose schema differs from the dataset's main records.
extra_split_fields: dict[tuple[str, str], tuple[FieldSpec, ...]] = {
    ("mt_bench", "judge_prompts"): _f("name:str type:str system_prompt:str prompt_template:str "
                                      "description:str category:str output_format:str"),
    ("mt_bench", "reference_answer_gpt-4"): _f("question_id:int answer_id:str model_id:str choices:list "
                                               "tstamp:float"),
}


def get_available_datasets() -> list[str]:
    """The 14 built-in datasets, then those of tasks registered by decorator or entry point."""
    from ..registry import TASKS

    return [*DATASETS, *(n for n in TASKS.names() if n not in DATASETS)]


available_datasets = get_available_datasets


def get_dataset_spec(name: str) -> DatasetSpec:
    """A built-in dataset's spec, or the one an outside task carries (`Task.dataset`)."""
    if name in DATASETS:
        return DATASETS[name]
    from ..registry import TASKS

    spec = TASKS.get(name, or_all=True).dataset
    if spec is None:
        raise UnknownNameError(f"task '{name}' carries no DatasetSpec", "set the class attribute `dataset`")
    return spec


def resolve_dataset_names(value: str | list[str] | None) -> list[str]:
    """Comma-separated names (or a list), 'all', or None (all); unknown names raise."""
    if value is None:
        return get_available_datasets()
    names = [v.strip() for v in value.split(",")] if isinstance(value, str) else list(value)
    names = [n for n in names if n]
    if not names or names == ["all"]:
        return get_available_datasets()
    for n in names:
        get_dataset_spec(n)
    return list(dict.fromkeys(names))


def fields_for(spec: DatasetSpec, split: str) -> tuple[FieldSpec, ...]:
    return extra_split_fields.get((spec.name, split), spec.fields)
