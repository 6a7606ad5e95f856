"""Parts of a dataset: `--datasets mmlu:abstract_algebra` (one subtask) or `mmlu:stem` (a group).

A selection is written `<dataset>[:<subtask or group>]`; results are stored under the name as written.
Its documents keep their row index in the full evaluation split, so a document has the same id (and
the same few-shot examples) in `mmlu`, `mmlu:stem` and `mmlu:abstract_algebra`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import DataError, UnknownNameError
from .registry import DatasetSpec, get_dataset_spec

SEPARATOR = ":"


@dataclass(frozen=True)
class Selection:
    name: str  # as written ("mmlu:stem"); results are stored under it
    dataset: str  # the registry name ("mmlu")
    part: str | None  # the subtask or group named, None for the whole dataset
    subtasks: tuple[str, ...] | None  # the subtasks it holds; None: the whole dataset

    @property
    def spec(self) -> DatasetSpec:
        return get_dataset_spec(self.dataset)

    @property
    def is_part(self) -> bool:
        return self.part is not None

    def keeps(self, record: dict[str, Any]) -> bool:
        if self.subtasks is None:
            return True
        assert self.spec.subtasks is not None
        return record.get(self.spec.subtasks.field) in self.subtasks

    def expected_rows(self) -> int:
        """Rows of the evaluation split this selection holds."""
        spec = self.spec
        if self.subtasks is None or spec.subtasks is None:
            return spec.expected_rows
        return sum(spec.subtasks.rows[s] for s in self.subtasks)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dataset": self.dataset, "part": self.part,
                "subtasks": list(self.subtasks) if self.subtasks is not None else None}


def base_name(name: str) -> str:
    """The registry name of a selection ('mmlu:stem' -> 'mmlu'), unchecked."""
    return name.split(SEPARATOR, 1)[0].strip()


def parse_selection(name: str) -> Selection:
    """'mmlu', 'mmlu:abstract_algebra' or 'mmlu:stem'; unknown names raise with the valid ones."""
    dataset, sep, part = (s.strip() for s in name.partition(SEPARATOR))
    spec = get_dataset_spec(dataset)
    if not sep:
        return Selection(name, dataset, None, None)
    if spec.subtasks is None:
        raise UnknownNameError(f"dataset '{dataset}' has no subtasks, so '{name}' names nothing",
                               f"use --datasets {dataset}")
    if not part:
        raise UnknownNameError(f"'{name}' names no subtask or group",
                               f"write {dataset}:<subtask> or {dataset}:<group> "
                               f"(groups: {', '.join(spec.subtasks.groups)})")
    if part in spec.subtasks.groups:
        return Selection(name, dataset, part, tuple(spec.subtasks.groups[part]))
    if part in spec.subtasks.rows:
        return Selection(name, dataset, part, (part,))
    from ..console import did_you_mean

    choices = [*spec.subtasks.groups, *spec.subtasks.rows]
    raise UnknownNameError(f"'{part}' is neither a subtask nor a group of {dataset}",
                           did_you_mean(part, choices, f"groups: {', '.join(spec.subtasks.groups)}; "
                                        f"subtasks: `qwenharness datasets --list --datasets {dataset}`"))


def select_records(selection: Selection, records: list[dict[str, Any]], source: str,
                   full_rows: int) -> list[dict[str, Any]]:
    """The records of a selection's subtasks, read from a file of `full_rows` rows.

    A file holding the whole split is filtered. A smaller file (a subset of the local data) is
    accepted for a part when it holds every row of each subtask the part names; anything else is
    an error naming the subtask that is short.
    """
    kept = [r for r in records if selection.keeps(r)]
    spec = selection.spec
    if selection.subtasks is None or spec.subtasks is None or full_rows == spec.expected_rows:
        return kept
    counts: dict[str, int] = {}
    for r in kept:
        key = str(r.get(spec.subtasks.field))
        counts[key] = counts.get(key, 0) + 1
    short = [(s, counts.get(s, 0), spec.subtasks.rows[s]) for s in selection.subtasks
             if counts.get(s, 0) != spec.subtasks.rows[s]]
    if short:
        s, got, want = short[0]
        more = f" (and {len(short) - 1} more subtasks)" if len(short) > 1 else ""
        raise DataError(f"{source}: {got} rows of {spec.name} subtask '{s}', expected {want}{more}; "
                        f"a subset file must hold every row of the subtasks asked for",
                        "re-copy the file, or ask only for the subtasks it holds in full")
    return kept
