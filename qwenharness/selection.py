"""Which documents of each dataset a run evaluates.

Per-dataset sample counts: `--sample-limit 20` for every dataset, or
`--sample-limit arc_easy=200,humaneval=164,default=20` (datasets not named get `default`, else all).
Documents by id: `--doc-ids '{"arc_easy": [3, 17]}'` or a file holding that object; a dataset named
there gets exactly those documents (naming it in --sample-limit too is an error)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class SampleLimits:
    default: int | None = None  # None: every document
    per_dataset: dict[str, int] = field(default_factory=dict)

    def for_dataset(self, dataset: str) -> int | None:
        return self.per_dataset.get(dataset, self.default)

    def __str__(self) -> str:
        parts = [f"{k}={v}" for k, v in self.per_dataset.items()]
        if self.default is not None:
            parts.append(f"default={self.default}" if parts else str(self.default))
        return ",".join(parts) or "all"


def parse_sample_limits(text: str | int | None, known: list[str] | None = None) -> SampleLimits:
    """Parse the option; a count below 1 or an unknown dataset name is an error naming the fix."""
    if text is None or text == "":
        return SampleLimits()
    if isinstance(text, int):
        return SampleLimits(default=_count(str(text), "--sample-limit"))
    default: int | None = None
    per: dict[str, int] = {}
    items = [p.strip() for p in str(text).split(",")]
    if len(items) > 1 and any(i and "=" not in i for i in items):
        raise ConfigError(f"--sample-limit '{text}': a bare count must stand alone",
                          "use default=N beside name=N items")
    for item in (p.strip() for p in str(text).split(",")):
        if not item:
            raise ConfigError(f"--sample-limit '{text}' has an empty item", "write N or name=N,name=N")
        if "=" not in item:
            default = _count(item, "--sample-limit")
            continue
        name, _, value = (s.strip() for s in item.partition("="))
        if name == "default":
            default = _count(value, f"--sample-limit {name}")
            continue
        if known is not None and name not in known:
            from difflib import get_close_matches

            near = get_close_matches(name, known, n=1)
            raise ConfigError(f"--sample-limit names an unknown dataset '{name}'",
                              f"did you mean {near[0]}?" if near else f"choose from {', '.join(known)}")
        per[name] = _count(value, f"--sample-limit {name}")
    return SampleLimits(default=default, per_dataset=per)


def _count(value: str, what: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise ConfigError(f"{what} must be a whole number, got '{value}'", "use e.g. --sample-limit 20") from None
    if n < 1:
        raise ConfigError(f"{what} must be at least 1, got {n}", "use e.g. --sample-limit 20")
    return n


# -- documents by id: --doc-ids ---------------------------------------------------------------------
_DOC_IDS_FIX = ('give a JSON object of dataset -> list of document ids, e.g. --doc-ids \'{"arc_easy": [0, 5]}\', '
                "or the path of a file holding one")


@dataclass(frozen=True)
class DocIds:
    """`--doc-ids`: the documents to evaluate, per dataset (lm-eval's `--samples`). Ids are the ones in
    `.samples.jsonl` (`doc_id`): the dataset's own id (HumanEval/MBPP task_id) or the row in the split."""

    per_dataset: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def for_dataset(self, dataset: str) -> tuple[str, ...] | None:
        return self.per_dataset.get(dataset)

    def to_dict(self) -> dict[str, list[str]]:
        return {k: list(v) for k, v in self.per_dataset.items()}

    def __bool__(self) -> bool:
        return bool(self.per_dataset)


def parse_doc_ids(value: str | dict[str, Any] | None, known: list[str] | None = None) -> DocIds:
    """A JSON object (or the path of a file holding one) of dataset -> ids; ids may be strings or
    whole numbers. Empty lists, repeated ids and (with `known`) datasets not evaluated are errors."""
    if value is None or value == "" or value == {}:
        return DocIds()
    if isinstance(value, dict):
        obj: Any = value
    else:
        text = str(value).strip()
        if not text.startswith("{"):
            path = Path(text).expanduser()
            if not path.is_file():
                raise ConfigError(f"--doc-ids '{text}' is neither a JSON object nor a file", _DOC_IDS_FIX)
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                raise ConfigError(f"--doc-ids: cannot read {path}: {e}", _DOC_IDS_FIX) from None
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"--doc-ids is not valid JSON ({e.msg} at column {e.colno})", _DOC_IDS_FIX) from None
    if not isinstance(obj, dict) or not obj:
        raise ConfigError("--doc-ids must be a JSON object with at least one dataset", _DOC_IDS_FIX)
    per: dict[str, tuple[str, ...]] = {}
    for name, ids in obj.items():
        if known is not None and name not in known:
            from difflib import get_close_matches

            near = get_close_matches(name, known, n=1)
            raise ConfigError(f"--doc-ids names dataset '{name}', which is not being evaluated",
                              f"did you mean {near[0]}?" if near else f"evaluated: {', '.join(known)}")
        if not isinstance(ids, list) or not ids:
            raise ConfigError(f"--doc-ids {name}: expected a non-empty list of ids, got {json.dumps(ids)[:60]}",
                              _DOC_IDS_FIX)
        out: list[str] = []
        for i in ids:
            if isinstance(i, bool) or not isinstance(i, (str, int)):
                raise ConfigError(f"--doc-ids {name}: id {json.dumps(i)[:40]} is not a string or a whole number",
                                  _DOC_IDS_FIX)
            out.append(str(i))
        repeated = sorted({i for i in out if out.count(i) > 1})
        if repeated:
            raise ConfigError(f"--doc-ids {name}: id {repeated[0]} is listed more than once", "list each id once")
        per[name] = tuple(out)
    return DocIds(per)


def select_docs(docs: list[T], wanted: tuple[str, ...] | list[str], dataset: str,
                id_of: Callable[[T], str] = lambda d: str(d.id)) -> list[T]:  # type: ignore[attr-defined]
    """Exactly the docs whose ids are `wanted`, in the split's order; unknown ids are an error naming
    them and what the ids look like."""
    by_id = {id_of(d): d for d in docs}
    unknown = [i for i in wanted if i not in by_id]
    if unknown:
        shown = ", ".join(repr(i) for i in unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        sample = ", ".join(repr(id_of(d)) for d in docs[:3])
        raise ConfigError(f"--doc-ids {dataset}: {len(unknown)} id(s) not in the dataset: {shown}",
                          f"ids are the doc_id of .samples.jsonl records; {dataset} has {len(docs)} documents "
                          f"with ids such as {sample}")
    keep = set(wanted)
    return [d for d in docs if id_of(d) in keep]
