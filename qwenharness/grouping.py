"""Aggregates per subtask and per group (MMLU subjects and categories), as lm-evaluation-harness does.

For a dataset with subtasks (`DatasetSpec.subtasks`), the aggregate gets
  "subtasks": {subtask: {"n": docs scored, "metrics": task.aggregate(its records)}}
  "groups":   {group: {"subtasks": [...present], "complete": bool, "n": docs scored,
                       "metrics": {metric: {"size_weighted": {...}, "macro": {...}}}}}
Two means are named, since they differ whenever subtasks differ in size:
  - size_weighted: lm-eval's group aggregate (`weight_by_size: True`, what its mmlu groups report): the
    subtask means weighted by their document counts, which is the mean over the group's documents; it
    comes with the task's interval over those documents.
  - macro: the unweighted mean of the subtask means (lm-eval with `weight_by_size: False`), with the
    number of subtasks it averages.
Groups: for the whole dataset, the registry's groups (stem, humanities, social_sciences, other) whose
subtasks appear in the records, plus the dataset itself (named after it); for a group (`mmlu:stem`),
that group; for one subtask, none.
`complete` says whether every subtask of the group is present with all of its rows.
"""

from __future__ import annotations

from typing import Any

from .data.subsets import Selection
from .tasks.base import SampleRecord, Task


SUBTASK_KEY = "subtask"  # the key of SampleRecord.extra naming a record's subtask (verify.py reads it)


def group_aggregates(task: Task, selection: Selection, records: list[SampleRecord],
                     subtasks_of: list[str]) -> dict[str, Any] | None:
    """The "subtasks" and "groups" blocks of an aggregate, or None for a dataset without subtasks.
    `subtasks_of` names each record's subtask (parallel to `records`)."""
    spec = selection.spec.subtasks
    if spec is None:
        return None
    by_subtask: dict[str, list[SampleRecord]] = {}
    for rec, subtask in zip(records, subtasks_of, strict=True):
        if rec.error is None:
            by_subtask.setdefault(str(subtask), []).append(rec)
    subtasks = {s: {"n": len(rs), "metrics": task.aggregate(rs)} for s, rs in sorted(by_subtask.items())}
    present = set(subtasks)
    groups: dict[str, Any] = {}
    if selection.part is None:  # the whole dataset: every group, and the dataset itself
        candidates = [*((g, tuple(m)) for g, m in spec.groups.items()), (selection.dataset, tuple(spec.rows))]
    elif selection.part in spec.groups:
        candidates = [(selection.part, tuple(spec.groups[selection.part]))]
    else:  # one subtask: its own entry is all there is
        candidates = []
    for group, members in candidates:
        here = [s for s in members if s in present]
        if not here:
            continue
        complete = all(s in present and subtasks[s]["n"] == spec.rows[s] for s in members)
        groups[group] = {"subtasks": here, "complete": complete,
                         "n": sum(subtasks[s]["n"] for s in here),
                         "metrics": _group_metrics(task, here, subtasks, by_subtask)}
    return {"subtasks": subtasks, "groups": groups}


def _group_metrics(task: Task, members: list[str], subtasks: dict[str, Any],
                   by_subtask: dict[str, list[SampleRecord]]) -> dict[str, Any]:
    pooled = task.aggregate([r for s in members for r in by_subtask[s]])
    out: dict[str, Any] = {}
    for metric in task.metric_names:
        values = [subtasks[s]["metrics"][metric]["value"] for s in members
                  if metric in subtasks[s]["metrics"] and subtasks[s]["metrics"][metric].get("value") is not None]
        if metric not in pooled or not values:
            continue
        out[metric] = {"size_weighted": pooled[metric],
                       "macro": {"value": sum(values) / len(values), "n_subtasks": len(values)}}
    return out
