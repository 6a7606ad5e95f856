"""Parity with lm-evaluation-harness: the same documents through both, compared request by request.

`qwenharness parity --with lm-eval --models M --datasets D,...` (commands/parity.py) runs the
harness's own evaluation (`Evaluator`, any backend) and lm-eval 0.4.x (its `hf` model class on the
same model folder and dtype) on exactly the same documents, then reports per lm-eval task:
  - requests: (context, continuation) pairs lm-eval scored, and how many of them the harness did
    not send with identical strings (`unmatched`; any is a prompt difference);
  - max |dLL|: the largest difference of summed log-likelihoods over the matched pairs;
  - argmax disagreements: documents whose highest-scoring choice differs (not for mc2, which
    has no argmax);
  - both metrics (acc, acc_norm where lm-eval defines it; TruthfulQA's mc1 and mc2).

lm-eval is fed offline: its own task YAMLs are included by absolute path from the installed
package and pointed at JSON files holding the selected documents (`dataset_path: json`), one file
per task (per subject for MMLU, with the subject's dev rows as its few-shot split). Rows keep the
Hub schema, which those YAMLs read, with one addition: BoolQ rows get `label` (lm-eval's boolq reads
SuperGLUE's `label`; google/boolq calls it `answer`). Only splits that are written are named, so
lm-eval never looks for a train split these datasets do not carry locally. Few-shot: MMLU's five
dev rows of the subject (both `first_n`); every other task is compared 0-shot (lm-eval draws its
shots from train, absent here).
"""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError, HarnessError
from .tasks.base import SampleRecord

LM_EVAL_FIX = "install it: pip install 'qwenharness[lm-eval]' (lm-eval[hf] 0.4.x)"


@dataclass(frozen=True)
class LmEvalTask:
    """One lm-eval task a dataset is compared on."""

    name: str  # lm-eval's task name
    yaml: str  # its config, relative to lm_eval/tasks
    eval_split: str  # the split name its YAML evaluates (test_split or validation_split)
    metrics: dict[str, str]  # lm-eval metric -> the harness metric it is compared with
    argmax: bool = True  # the metric is an argmax over the choices (not mc2)


# dataset -> the lm-eval tasks it is compared on (MMLU: one per subject, see _mmlu_tasks)
TASKS: dict[str, tuple[LmEvalTask, ...]] = {
    "arc_easy": (LmEvalTask("arc_easy", "arc/arc_easy.yaml", "test", {"acc": "acc", "acc_norm": "acc_norm"}),),
    "arc_challenge": (LmEvalTask("arc_challenge", "arc/arc_challenge.yaml", "test",
                                 {"acc": "acc", "acc_norm": "acc_norm"}),),
    "hellaswag": (LmEvalTask("hellaswag", "hellaswag/hellaswag.yaml", "validation",
                             {"acc": "acc", "acc_norm": "acc_norm"}),),
    "piqa": (LmEvalTask("piqa", "piqa/piqa.yaml", "validation", {"acc": "acc", "acc_norm": "acc_norm"}),),
    "winogrande": (LmEvalTask("winogrande", "winogrande/default.yaml", "validation", {"acc": "acc"}),),
    "boolq": (LmEvalTask("boolq", "super_glue/boolq/default.yaml", "validation", {"acc": "acc"}),),
    "truthfulqa_mc": (
        LmEvalTask("truthfulqa_mc1", "truthfulqa/truthfulqa_mc1.yaml", "validation", {"acc": "mc1"}),
        LmEvalTask("truthfulqa_mc2", "truthfulqa/truthfulqa_mc2.yaml", "validation", {"acc": "mc2"}, argmax=False),
    ),
    "mmlu": (),  # per subject
}
SUPPORTED = tuple(TASKS)


@dataclass
class TaskParity:
    """The comparison of one lm-eval task (MMLU: its subject tasks pooled into one row)."""

    dataset: str
    task: str
    docs: int = 0
    requests: int = 0
    unmatched: int = 0
    max_abs_dll: float = 0.0
    argmax_disagreements: int | None = 0  # None: the metric has no argmax (mc2)
    harness: dict[str, float] = field(default_factory=dict)  # lm-eval metric name -> harness value
    lm_eval: dict[str, float] = field(default_factory=dict)
    unmatched_examples: list[dict[str, str]] = field(default_factory=list)

    def ok(self, tolerance: float) -> bool:
        return (self.unmatched == 0 and self.max_abs_dll <= tolerance
                and not self.argmax_disagreements and self.requests > 0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_datasets(datasets: Iterable[str]) -> None:
    """Every name is a dataset (or a part of one, checked) that parity covers."""
    from .data.subsets import base_name, parse_selection

    for d in datasets:
        if base_name(d) not in TASKS:
            raise ConfigError(f"parity with lm-eval covers the log-likelihood tasks, not '{d}'",
                              f"choose from {', '.join(SUPPORTED)} (MMLU parts such as mmlu:stem too)")
        parse_selection(d)


# -- lm-eval's side ---------------------------------------------------------------------------

def lm_eval_tasks_dir() -> Path:
    try:
        import lm_eval
    except ImportError:
        raise HarnessError("lm-eval is not installed", LM_EVAL_FIX) from None
    return Path(lm_eval.__file__).resolve().parent / "tasks"


def _mmlu_tasks(subjects: Iterable[str]) -> list[LmEvalTask]:
    return [LmEvalTask(f"mmlu_{s}", f"mmlu/default/mmlu_{s}.yaml", "test", {"acc": "acc"}) for s in subjects]


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if not k.startswith("_")}


def _write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(_clean(r), ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


@dataclass
class LocalTask:
    """A task config written for lm-eval: its name, the spec it includes, and its documents in
    file order (lm-eval's doc_id k is docs[k])."""

    local_name: str
    spec: LmEvalTask
    dataset: str
    docs: list[dict[str, Any]]


def write_tasks(work: Path, dataset: str, docs: list[dict[str, Any]], fewshot: list[dict[str, Any]] | None,
                n_shot: int) -> list[LocalTask]:
    """Data files and lm-eval task configs (JSON, which YAML reads) under `work` for one dataset."""
    from .data.subsets import base_name

    base = base_name(dataset)
    folder = dataset.replace(":", "_")
    tasks_root = lm_eval_tasks_dir()
    out: list[LocalTask] = []
    if base == "mmlu":
        by_subject: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for d in docs:
            by_subject[d["subject"]].append(d)
        dev: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in fewshot or []:
            dev[r["subject"]].append(r)
        for spec in _mmlu_tasks(sorted(by_subject)):
            subject = spec.name[len("mmlu_"):]
            files = {"test": work / "data" / folder / subject / "test.jsonl"}
            _write_rows(files["test"], by_subject[subject])
            extra: dict[str, Any] = {"num_fewshot": n_shot}
            if n_shot:
                files["dev"] = work / "data" / folder / subject / "dev.jsonl"
                _write_rows(files["dev"], dev[subject])
            else:
                extra["fewshot_split"] = None
            out.append(_config(work, tasks_root, spec, dataset, by_subject[subject], files, extra))
        return out
    if n_shot:
        raise ConfigError(f"parity compares {base} 0-shot: lm-eval draws its shots from train, which the "
                          "local data does not carry", "drop --n-shot (MMLU's 5-shot dev examples are compared)")
    rows = [{**d, "label": int(d["answer"])} for d in docs] if base == "boolq" else docs
    for spec in TASKS[base]:
        files = {spec.eval_split: work / "data" / folder / spec.name / f"{spec.eval_split}.jsonl"}
        _write_rows(files[spec.eval_split], rows)
        out.append(_config(work, tasks_root, spec, dataset, docs, files, {"num_fewshot": 0}))
    return out


def _config(work: Path, tasks_root: Path, spec: LmEvalTask, dataset: str, docs: list[dict[str, Any]],
            files: dict[str, Path], extra: dict[str, Any]) -> LocalTask:
    part = dataset.partition(":")[2]  # mmlu and mmlu:stem in one run get tasks of their own
    local = f"qhparity_{part}_{spec.name}" if part else f"qhparity_{spec.name}"
    splits = {"training_split": None, "validation_split": None, "test_split": None}
    splits["test_split" if spec.eval_split == "test" else "validation_split"] = spec.eval_split
    cfg = {"include": str(tasks_root / spec.yaml), "task": local, "tag": [], "dataset_path": "json",
           "dataset_name": None, "dataset_kwargs": {"data_files": {k: str(v) for k, v in files.items()}},
           **splits, **extra}
    path = work / "tasks" / f"{local}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(cfg, indent=1) + "\n", encoding="utf-8")
    return LocalTask(local, spec, dataset, docs)


def run_lm_eval(model_dir: str, dtype: str, device: str, tasks: list[LocalTask], work: Path,
                batch_size: int, verbose: bool = False) -> dict[str, list[dict[str, Any]]]:
    """lm-eval's `hf` model on the written tasks, offline; its logged samples per local task name.
    Without `verbose`, lm-eval's and datasets' logs are kept to errors (lm-eval's progress bars stay)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_CACHE", str(work / "hf_datasets_cache"))
    try:
        import lm_eval
        from lm_eval.tasks import TaskManager
        from lm_eval.utils import setup_logging
    except ImportError:
        raise HarnessError("lm-eval is not installed", LM_EVAL_FIX) from None
    import datasets

    setup_logging(verbosity="INFO" if verbose else "ERROR")
    if not verbose:
        datasets.utils.logging.set_verbosity_error()
        datasets.utils.logging.disable_progress_bar()  # "Generating test split" once per task
    manager = TaskManager(include_path=str(work / "tasks"), include_defaults=False)
    results = lm_eval.simple_evaluate(
        model="hf", model_args={"pretrained": model_dir, "dtype": dtype, "device": device},
        tasks=[t.local_name for t in tasks], task_manager=manager, batch_size=batch_size, log_samples=True,
        random_seed=1234, numpy_random_seed=1234, torch_random_seed=1234, fewshot_random_seed=1234)
    if results is None:
        raise HarnessError("lm-eval returned no results", "run it again with -v to see lm-eval's log")
    return results["samples"]


# -- the comparison ----------------------------------------------------------------------------

def harness_logprobs(record: SampleRecord) -> dict[tuple[str, str], float]:
    """(context, continuation) -> summed log-likelihood, from one per-sample record."""
    outputs = record.outputs
    contexts = record.prompt if isinstance(record.prompt, list) else [record.prompt] * len(outputs)
    return {(c, o["continuation"]): float(o["logprob"]) for c, o in zip(contexts, outputs, strict=True)}


def _argmax(values: list[float]) -> int:
    return max(range(len(values)), key=lambda i: (values[i], -i))


def compare(local: LocalTask, samples: list[dict[str, Any]], records: dict[str, SampleRecord],
            doc_id_of: Any) -> TaskParity:
    """One lm-eval task's logged samples against the harness's records (doc id -> record)."""
    out = TaskParity(dataset=local.dataset, task=local.spec.name, argmax_disagreements=0 if local.spec.argmax else None)
    sums: dict[str, list[float]] = defaultdict(list)
    for s in sorted(samples, key=lambda s: s["doc_id"]):
        doc = local.docs[int(s["doc_id"])]
        rec = records.get(doc_id_of(doc))
        if rec is None or rec.error:
            raise HarnessError(f"{local.dataset}: the harness has no scored record of document {doc_id_of(doc)}",
                               "rerun the parity command; the harness's run must score every document")
        ours = harness_logprobs(rec)
        theirs = [float(r[0]) for r in s["filtered_resps"]]
        pairs = [tuple(a[:2]) for a in s["arguments"]]
        mine: list[float] = []
        for (ctx, cont), ll in zip(pairs, theirs, strict=True):
            out.requests += 1
            if (ctx, cont) not in ours:
                out.unmatched += 1
                if len(out.unmatched_examples) < 3:
                    out.unmatched_examples.append({"doc_id": doc_id_of(doc), "context_tail": ctx[-80:],
                                                   "continuation": cont})
                mine.append(math.nan)
                continue
            mine.append(ours[(ctx, cont)])
            out.max_abs_dll = max(out.max_abs_dll, abs(ours[(ctx, cont)] - ll))
        if local.spec.argmax and not any(math.isnan(v) for v in mine) and _argmax(mine) != _argmax(theirs):
            out.argmax_disagreements = (out.argmax_disagreements or 0) + 1
        for lm_metric, our_metric in local.spec.metrics.items():
            if lm_metric in s:
                sums[lm_metric].append(float(s[lm_metric]))
                sums["harness:" + lm_metric].append(float(rec.scores[our_metric]))
        out.docs += 1
    out.lm_eval = {m: sum(v) / len(v) for m, v in sums.items() if not m.startswith("harness:") and v}
    out.harness = {m[len("harness:"):]: sum(v) / len(v) for m, v in sums.items() if m.startswith("harness:") and v}
    return out


def pooled(dataset: str, rows: list[TaskParity], name: str) -> TaskParity:
    """Several lm-eval tasks (MMLU's subjects) as one row: sums, maxima and document-weighted means."""
    out = TaskParity(dataset=dataset, task=name)
    for r in rows:
        out.docs += r.docs
        out.requests += r.requests
        out.unmatched += r.unmatched
        out.max_abs_dll = max(out.max_abs_dll, r.max_abs_dll)
        out.argmax_disagreements = (out.argmax_disagreements or 0) + (r.argmax_disagreements or 0)
        out.unmatched_examples += r.unmatched_examples[: max(0, 3 - len(out.unmatched_examples))]
    for side in ("harness", "lm_eval"):
        metrics = {m for r in rows for m in getattr(r, side)}
        setattr(out, side, {m: sum(getattr(r, side)[m] * r.docs for r in rows) / max(out.docs, 1) for m in metrics})
    return out


# -- both runs -----------------------------------------------------------------------------------

def run_parity(settings: Any, out_dir: Path, *, batch_size: int = 8, console: Any | None = None,
               verbose: bool = False) -> dict[str, list[TaskParity]]:
    """The harness's evaluation of `settings` into `out_dir`, then lm-eval on the same documents;
    model -> one TaskParity per lm-eval task (MMLU's subject tasks pooled into one row)."""
    from .data import get_dataset_spec, load, load_docs
    from .data.subsets import parse_selection
    from .engines import resolve_model_dir
    from .evaluation import Evaluator
    from .hardware import detect_gpu
    from .presets import get_model_config
    from .results import ResultStore, resolve_run_paths
    from .selection import select_docs
    from .tasks import get_task
    from .tasks.base import TaskOptions

    check_datasets(settings.datasets)
    lm_eval_tasks_dir()  # lm-eval missing: say so before the harness's run
    paths = resolve_run_paths(output_dir=out_dir / "harness")
    results = Evaluator(settings, paths, console=console, argv=["qwenharness", "parity"]).run()
    failed = [r for r in results if not r.ok]
    if failed:
        raise HarnessError(f"the harness's run failed on {failed[0].model}/{failed[0].dataset}: {failed[0].error}",
                           "fix that first; parity needs the harness's records of every document")
    store = ResultStore(paths)
    preset = settings.presets[0]
    report: dict[str, list[TaskParity]] = {}
    for model in settings.models:
        config = get_model_config(model, preset, load_format=settings.load_format)
        work = out_dir / "lm_eval" / model
        locals_: list[LocalTask] = []
        records: dict[str, dict[str, SampleRecord]] = {}
        for dataset in settings.datasets:
            selection = parse_selection(dataset)
            task = get_task(dataset)
            docs_meta = load_docs(dataset, settings.limit_for(dataset), settings.seed, data_dir=settings.data_dir)
            wanted = settings.ids_for(dataset)
            if wanted is not None:
                docs_meta = select_docs(docs_meta, wanted, dataset)
            docs = [{**d.record, "_index": d.index} for d in docs_meta]
            n_shot = task.n_shot(TaskOptions(n_shot=settings.n_shot))
            split = task.fewshot_split()
            pool = load(selection.dataset, split=split, data_dir=settings.data_dir) if split and n_shot else None
            locals_ += write_tasks(work, dataset, docs, pool, n_shot)
            records[dataset] = {str(r.doc_id): r for r in store.load_records(model, preset, dataset)}
        if console is not None:
            console.print(f"lm-eval: {len(locals_)} task(s) on {model} ({config.dtype}), configs in {work / 'tasks'}")
        device = "cuda" if detect_gpu() else "cpu"
        samples = run_lm_eval(str(resolve_model_dir(config)), config.dtype, device, locals_, work, batch_size,
                              verbose)
        rows: list[TaskParity] = []
        for dataset in settings.datasets:
            spec = get_dataset_spec(parse_selection(dataset).dataset)
            mine = [t for t in locals_ if t.dataset == dataset]
            compared = [compare(t, samples.get(t.local_name, []), records[dataset], spec.doc_id) for t in mine]
            if parse_selection(dataset).dataset == "mmlu":
                rows.append(pooled(dataset, compared, f"{dataset} ({len(compared)} lm-eval subject tasks)"))
            else:
                rows += compared
        report[model] = rows
    return report
