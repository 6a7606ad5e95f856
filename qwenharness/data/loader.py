"""Loading the 14 datasets from local files, the download cache or the Hub, and reporting what is where.

Where a split is read from, first match wins:
  1. the data directory: `data_dir` argument (`--data-dir`), else $QWENHARNESS_DATA_DIR, else
     `../shared/data` beside a source checkout when it exists; a directory that is named but does not
     exist is an error, not a silent fallback;
  2. the download cache: $QWENHARNESS_CACHE_DIR/datasets, else ~/.cache/qwenharness/datasets
     (`qwenharness datasets --download` fills it; same layout as the data directory);
  3. the Hugging Face Hub (see hub.py), which fails within seconds when the machine is offline.
Every file is `<dir>/<dataset>/<split>.jsonl`, one JSON object per line, in the Hub schema.
"""

from __future__ import annotations

import json
import os
import random
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DataError
from . import hub
from .registry import DatasetSpec, FieldSpec, fields_for, get_dataset_spec, resolve_dataset_names
from .subsets import parse_selection, select_records

DEFAULT_SEED = 1234
DATA_DIR_ENV = "QWENHARNESS_DATA_DIR"
CACHE_DIR_ENV = "QWENHARNESS_CACHE_DIR"

_DATA_DIR_FIX = ("pass --data-dir (or set QWENHARNESS_DATA_DIR to) a folder with one subfolder per dataset, "
                 "such as ../shared/data, or leave both unset to use the download cache and the Hub")


# -- where data lives ----------------------------------------------------------------------------
def default_data_dir() -> Path | None:
    """$QWENHARNESS_DATA_DIR if set, else `../shared/data` beside the source checkout if it exists, else
    None (the cache, then the Hub)."""
    env = os.environ.get(DATA_DIR_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    repo = Path(__file__).resolve().parents[2]
    candidate = repo.parent / "shared" / "data"
    if (repo / "pyproject.toml").is_file() and candidate.is_dir():
        return candidate
    return None


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """The data directory in force: the argument, else `default_data_dir()`.

    A directory that is named (argument or environment) but missing raises DataError.
    """
    if data_dir is not None and str(data_dir).strip() != "":
        path, origin = Path(data_dir).expanduser(), "--data-dir"
    else:
        path, origin = default_data_dir(), DATA_DIR_ENV
        if path is None or not os.environ.get(DATA_DIR_ENV, "").strip():
            return path
    if not path.exists():
        raise DataError(f"data directory {path} ({origin}) does not exist", _DATA_DIR_FIX)
    if not path.is_dir():
        raise DataError(f"data directory {path} ({origin}) is not a directory", _DATA_DIR_FIX)
    return path


def cache_dir() -> Path:
    """Where `--download` puts datasets (not created until something is written)."""
    base = os.environ.get(CACHE_DIR_ENV)
    if base:
        return Path(base).expanduser() / "datasets"
    xdg = os.environ.get("XDG_CACHE_HOME")
    root = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return root / "qwenharness" / "datasets"


def _locations(data_dir: str | os.PathLike[str] | None) -> list[tuple[str, Path]]:
    locs = []
    local = resolve_data_dir(data_dir)
    if local is not None:
        locs.append(("local", local))
    cache = cache_dir()
    if local is None or cache.resolve() != local.resolve():
        locs.append(("cached", cache))
    return locs


def find_split_file(name: str, split: str | None = None,
                    data_dir: str | os.PathLike[str] | None = None) -> tuple[str, Path] | None:
    """(status, path) of the first local copy of a split, or None when it must come from the Hub."""
    spec = get_dataset_spec(name)
    split = _check_split(spec, split)
    for status, root in _locations(data_dir):
        path = root / spec.local_file(split)
        if path.is_file():
            return status, path
    return None


# -- reading and checking records ----------------------------------------------------------------
def read_jsonl(path: str | os.PathLike[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; DataError naming path and line otherwise."""
    path = Path(path)
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below; errors must name the path
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror}", "check the path and its permissions") from e
    with fh:
        for lineno, raw in enumerate(fh, start=1):
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"{path}:{lineno}: not UTF-8 text (byte {e.start + 1})",
                                "re-copy or re-download the file") from e
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as e:
                if not raw.endswith(b"\n"):
                    raise DataError(f"{path}:{lineno}: truncated file: the last line ends inside a JSON "
                                    f"record ({e.msg} at column {e.colno})",
                                    "re-copy or re-download the file") from e
                raise DataError(f"{path}:{lineno}: malformed JSON ({e.msg} at column {e.colno})",
                                "fix or replace the file; each line must be one JSON object") from e
            if not isinstance(obj, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object, found {type(obj).__name__}",
                                "each line must be one JSON object")
            yield lineno, obj


def count_rows(path: str | os.PathLike[str]) -> int:
    """Non-blank lines of a JSONL file, without parsing them."""
    n = 0
    with open(path, "rb") as fh:
        for raw in fh:
            if raw.strip():
                n += 1
    return n


_TYPES: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,),
                                       "list": (list,), "dict": (dict,)}


def _type_ok(value: Any, typ: str) -> bool:
    if isinstance(value, bool) and typ in ("int", "float"):
        return False
    return isinstance(value, _TYPES[typ])


def _prepare(spec: DatasetSpec, fields: tuple[FieldSpec, ...], row: dict[str, Any], where: str) -> dict[str, Any]:
    """Normalise a raw row, check it against the schema and keep only the declared fields."""
    rec = dict(row)
    if spec.normalize is not None and fields is spec.fields:
        rec = spec.normalize(rec)
    out: dict[str, Any] = {}
    for f in fields:
        value = rec.get(f.name)
        if value is None:
            if f.required:
                raise DataError(f"{where}: missing field '{f.name}' (dataset '{spec.name}')",
                                "the file must be in the Hub schema of the dataset; re-copy or re-download it")
            continue
        if not _type_ok(value, f.type):
            raise DataError(f"{where}: field '{f.name}' is {type(value).__name__}, expected {f.type} "
                            f"(dataset '{spec.name}')", "the file must be in the Hub schema of the dataset")
        out[f.name] = value
    return out


def _check_split(spec: DatasetSpec, split: str | None) -> str:
    split = split or spec.eval_split
    if split not in spec.splits:
        raise DataError(f"dataset '{spec.name}' has no split '{split}'",
                        f"choose one of {', '.join(spec.splits)}")
    return split


@dataclass
class SplitData:
    name: str
    split: str
    records: list[dict[str, Any]]
    status: str  # "local" | "cached" | "hub"
    source: str  # file path or Hub source


def _numbered(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for i, rec in enumerate(records):
        rec["_index"] = i
    return records


def read_split(name: str, split: str | None = None, *, data_dir: str | os.PathLike[str] | None = None,
               strict: bool = True) -> SplitData:
    """Every record of one split, from the first source that has it, checked against the schema and
    numbered: each record gets "_index", its row in the split.

    With `strict`, a local file whose row count differs from the benchmark's raises DataError (a
    file cut at a line boundary parses but is short); a Hub split that differs only warns.
    """
    spec = get_dataset_spec(name)
    split = _check_split(spec, split)
    fields = fields_for(spec, split)
    expected = spec.splits[split]
    found = find_split_file(name, split, data_dir)
    if found is not None:
        status, path = found
        records, last = [], 0
        for lineno, row in read_jsonl(path):
            records.append(_prepare(spec, fields, row, f"{path}:{lineno}"))
            last = lineno
        if strict and len(records) != expected:
            raise DataError(f"{path}:{last}: {len(records)} rows, expected {expected} for {spec.title} "
                            f"{split} (the file looks truncated or is not the full split)",
                            "re-copy or re-download it, or pass strict=False for a file of your own")
        return SplitData(name, split, _numbered(records), status, str(path))
    searched = " or ".join(str(root / spec.local_file(split)) for _, root in _locations(data_dir))
    rows, source = hub.fetch_split(spec, split, context=f"no local copy ({searched}), and ")
    records = [_prepare(spec, fields, row, f"{source} row {i}") for i, row in enumerate(rows)]
    if len(records) != expected:
        warnings.warn(f"{source}: {len(records)} rows, expected {expected}; the Hub copy may have changed",
                      stacklevel=2)
    return SplitData(name, split, _numbered(records), "hub", source)


# -- the public loading API ----------------------------------------------------------------------
def select_indices(n: int, limit: int | None, seed: int = DEFAULT_SEED) -> list[int]:
    """A reproducible subset of range(n): `limit` indices drawn with random.Random(seed), in order."""
    if limit is None or limit >= n:
        return list(range(n))
    if limit <= 0:
        raise DataError(f"sample limit must be a positive number, got {limit}",
                        "pass --sample-limit N with N >= 1, or leave it out for every sample")
    return sorted(random.Random(seed).sample(range(n), limit))


def load(name: str, limit: int | None = None, seed: int = DEFAULT_SEED, split: str | None = None,
         data_dir: str | os.PathLike[str] | None = None, *, strict: bool = True) -> list[dict[str, Any]]:
    """Rows of a dataset's evaluation split (or `split`) in its Hub schema, the same from local files,
    the cache and the Hub; each row has "_index", its row in the split.

    `limit` takes a reproducible subset (see `select_indices`), in the split's order. `name` may
    name a part (`mmlu:stem`, see subsets.py): its rows of the evaluation split, numbered as in the
    full split; other splits (few-shot pools) are read whole.
    """
    records = _selected_records(name, split, data_dir, strict)
    if limit is None or limit >= len(records):
        return records
    return [records[i] for i in select_indices(len(records), limit, seed)]


def _selected_records(name: str, split: str | None, data_dir: str | os.PathLike[str] | None,
                      strict: bool) -> list[dict[str, Any]]:
    selection = parse_selection(name)
    spec = selection.spec
    if not selection.is_part or (split or spec.eval_split) != spec.eval_split:
        return read_split(selection.dataset, split, data_dir=data_dir, strict=strict).records
    data = read_split(selection.dataset, split, data_dir=data_dir, strict=False)
    if not strict:
        return [r for r in data.records if selection.keeps(r)]
    return select_records(selection, data.records, data.source, len(data.records))


def load_split(name: str, split: str, data_dir: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """Every row of one split (few-shot sources: gsm8k train, mmlu dev, mbpp prompt; MT-Bench's
    judge_prompts and reference_answer_gpt-4), numbered with "_index". A part's name reads its dataset's split."""
    return read_split(parse_selection(name).dataset, split, data_dir=data_dir).records


def doc_id(name: str, row: dict[str, Any]) -> str:
    return get_dataset_spec(name).doc_id(row)


@dataclass
class Doc:
    index: int  # row in the split (also record["_index"])
    id: str  # the dataset's own id (task_id for HumanEval/MBPP), else str(index)
    record: dict[str, Any]


def load_docs(name: str, limit: int | None = None, seed: int = DEFAULT_SEED, split: str | None = None,
              data_dir: str | os.PathLike[str] | None = None, *, strict: bool = True) -> list[Doc]:
    """`load` with each row's index and id alongside (for per-sample results, resume and `score`)."""
    spec = parse_selection(name).spec
    return [Doc(r["_index"], spec.doc_id(r), r)
            for r in load(name, limit, seed, split, data_dir, strict=strict)]


# -- the dataset manager -------------------------------------------------------------------------
@dataclass
class DatasetStatus:
    name: str
    status: str  # "local" | "cached" | "missing"
    eval_split: str
    rows: int | None  # rows of the evaluation split on disk
    expected_rows: int
    split_rows: dict[str, int | None]
    size_bytes: int
    source: str  # the folder read from, or the Hub source the loader would use
    problems: list[str] = field(default_factory=list)
    parses: bool = True  # every line of every local file is valid JSON (schema checks: --check)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def dataset_status(name: str, data_dir: str | os.PathLike[str] | None = None) -> DatasetStatus:
    """Where a dataset's files are, their row counts and size; every line is parsed as JSON (a
    malformed one is a problem and `parses` is False). Schema checks are `verify_dataset`'s."""
    spec = get_dataset_spec(name)
    split_rows: dict[str, int | None] = {}
    size = 0
    problems: list[str] = []
    parses = True
    main: tuple[str, Path] | None = None
    for split, expected in spec.splits.items():
        found = find_split_file(name, split, data_dir)
        if found is None:
            split_rows[split] = None
            continue
        status, path = found
        if split == spec.eval_split:
            main = found
        try:
            rows = sum(1 for _ in read_jsonl(path))
        except DataError as e:
            rows = count_rows(path)
            problems.append(e.problem)
            parses = False
        split_rows[split] = rows
        size += path.stat().st_size
        if rows != expected:
            problems.append(f"{path}: {rows} rows, expected {expected}")
    if main is None:
        return DatasetStatus(name, "missing", spec.eval_split, None, spec.splits[spec.eval_split], split_rows,
                             size, spec.hub_source(), problems, parses)
    problems[:0] = [f"split {s} missing" for s, n in split_rows.items() if n is None]
    status, path = main
    return DatasetStatus(name, status, spec.eval_split, split_rows[spec.eval_split],
                         spec.splits[spec.eval_split], split_rows, size, str(path.parent), problems, parses)


def summary(data_dir: str | os.PathLike[str] | None = None,
            names: str | list[str] | None = None) -> list[dict[str, Any]]:
    """The dataset manager's view (`qwenharness datasets --summary`): per dataset its status (local /
    cached / missing), rows, size_bytes and source, plus split_rows, expected_rows and problems."""
    resolve_data_dir(data_dir)  # a named but missing directory is an error before anything else
    return [dataset_status(n, data_dir).to_dict() for n in resolve_dataset_names(names)]


def verify_dataset(name: str, data_dir: str | os.PathLike[str] | None = None) -> dict[str, SplitData]:
    """Read and check every split of a dataset (schema and row counts); DataError on the first problem."""
    spec = get_dataset_spec(name)
    return {split: read_split(name, split, data_dir=data_dir, strict=True) for split in spec.splits}


def _write_jsonl_atomic(path: Path, records: list[dict[str, Any]]) -> None:
    from ..results import atomic_write_text

    atomic_write_text(path, "".join(json.dumps(rec, ensure_ascii=False) + "\n" for rec in records))


def download(names: str | list[str] | None = None, *, force: bool = False) -> list[Path]:
    """Fetch the selected datasets (every split) from the Hub into the cache; returns the files written.

    Splits already cached are kept unless `force`. Raises DataError (offline, unknown id, bad rows).
    """
    written = []
    root = cache_dir()
    for name in resolve_dataset_names(names):
        spec = get_dataset_spec(name)
        for split in spec.splits:
            target = root / spec.local_file(split)
            if target.is_file() and not force:
                continue
            rows, source = hub.fetch_split(spec, split)
            fields = fields_for(spec, split)
            records = [_prepare(spec, fields, row, f"{source} row {i}") for i, row in enumerate(rows)]
            _write_jsonl_atomic(target, records)
            written.append(target)
    return written
