"""Results on disk: the run directory layout, per-sample records, summaries and the response cache.

Layout (``runs_dir`` is ``results/evaluations`` by default, ``summary_dir`` its parent ``results``)::

    <runs_dir>/<run_id>/manifest.json                           versions, git, GPU, configs, argv
    <runs_dir>/<run_id>/<model>/<preset>/<dataset>.json          aggregate metrics
    <runs_dir>/<run_id>/<model>/<preset>/<dataset>.samples.jsonl one SampleRecord per line
    <runs_dir>/<run_id>/cache/<engine hash>.jsonl                 response cache (resume)
    <summary_dir>/latest_summary.json                            the run just written
    <summary_dir>/comprehensive_summary.json                     every run merged, newest wins

Crash safety: JSON files are written to a temporary file in the same folder, fsynced and renamed
over the target, so a reader sees the old or the new file, never half of one. JSONL files are
appended (one write of whole lines, then flush and fsync); a process killed mid-write leaves at
most a truncated last line, which readers ignore and the next append cuts off first. Together with
the response cache (every finished engine response is appended before its sample is scored), a run
killed at any point and rerun with the same run id loses and duplicates nothing.

One module: the store's layout, records, locks and summaries follow one locking and run-id rule,
kept in one place.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .errors import ConfigError, DataError, StorageError, storage_error
from .tasks.base import SampleRecord

MANIFEST = "manifest.json"
CACHE_DIR = "cache"
LATEST_SUMMARY = "latest_summary.json"
COMPREHENSIVE_SUMMARY = "comprehensive_summary.json"


# -- low-level file operations -----------------------------------------------------------------

def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def json_safe(obj: Any) -> Any:
    """Replace NaN/inf (not valid JSON) by None, recursively; tuples become lists."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def dumps(obj: Any, **kwargs: Any) -> str:
    return json.dumps(json_safe(obj), allow_nan=False, ensure_ascii=False, default=str, **kwargs)


# Held while a file is being written; a process that must die now (qwenharness.lifetime) takes it
# first, so a write in progress ends before the process does.
WRITE_GUARD = threading.RLock()


@contextmanager
def storage(path: Path | str) -> Iterator[None]:
    """Turn a disk-side OSError (read-only, full, no permission) into a one-line StorageError naming
    `path`; other OSErrors pass through."""
    try:
        yield
    except StorageError:
        raise
    except OSError as e:
        err = storage_error(e, path)
        if err is None:
            raise
        raise err from e


def make_dirs(folder: Path | str) -> list[Path]:
    """mkdir -p that returns the folders it created (outermost first), so a failure can remove them."""
    folder = Path(folder)
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    with storage(missing[0] if missing else folder):
        for d in reversed(missing):
            d.mkdir(exist_ok=True)
    return list(reversed(missing))


def _default_file_mode() -> int:
    """The mode open() gives a new file under this process's umask (0644 under the usual 022)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_FILE_MODE = _default_file_mode()


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` so that readers see either the old or the new content."""
    path = Path(path)
    make_dirs(path.parent)
    with WRITE_GUARD, storage(path):
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                os.fchmod(f.fileno(), _FILE_MODE)  # mkstemp makes 0600; results are shared like any file
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        _fsync_dir(path.parent)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, dumps(obj, indent=2) + "\n")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{path} is not valid JSON: {e}", "delete the file and rerun the evaluation") from e


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every complete line of a JSONL file. A truncated last line (no newline: the writer was killed
    mid-write) is ignored; a malformed line elsewhere raises DataError with its line number."""
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    lines = data.split(b"\n")
    tail = lines.pop()  # after the last newline: empty, or a line cut off mid-write
    out = []
    for i, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            out.append(json.loads(raw))
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{i}: malformed JSON line ({e})",
                            "the file was edited or corrupted; delete it to recompute it") from e
    if tail.strip():
        try:  # a complete object that only lacks its newline is still good
            obj = json.loads(tail)
            out.append(obj)
        except json.JSONDecodeError:
            pass
    return out


def _repair_tail(path: Path) -> None:
    """Cut a partial last line (left by a killed writer) so the next append starts on a fresh line."""
    if not path.exists():
        return
    size = path.stat().st_size
    if size == 0:
        return
    with open(path, "rb+") as f:
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        # find the last newline; everything after it is a partial line
        chunk = 1 << 16
        pos = size
        last_nl = -1
        while pos > 0 and last_nl < 0:
            start = max(0, pos - chunk)
            f.seek(start)
            buf = f.read(pos - start)
            idx = buf.rfind(b"\n")
            if idx >= 0:
                last_nl = start + idx
            pos = start
        tail_start = last_nl + 1
        f.seek(tail_start)
        tail = f.read()
        try:  # a complete object without its newline: keep it, add the newline
            json.loads(tail)
            f.seek(size)
            f.write(b"\n")
        except (json.JSONDecodeError, UnicodeDecodeError):
            f.truncate(tail_start)
        f.flush()
        os.fsync(f.fileno())


class LockBusy(Exception):
    """A non-blocking file lock is held by another process."""


class DatasetBusy(ConfigError):
    """A dataset of a run is being evaluated by another process."""

    def __init__(self, key: str, run_id: str, holder: int | None):
        self.key, self.holder = key, holder
        who = f"another process (pid {holder})" if holder else "another process"
        super().__init__(f"{key} of run {run_id} is being evaluated by {who}",
                         "wait for it to finish, or use another --run-id")


def _lock_holder(path: Path) -> int | None:
    try:
        return int(path.read_text().strip() or 0) or None
    except (OSError, ValueError):
        return None


@contextmanager
def file_lock(path: Path, *, blocking: bool = True) -> Iterator[None]:
    """An exclusive advisory lock (flock) on `path`; the kernel drops it when the process dies."""
    path = Path(path)
    make_dirs(path.parent)
    with storage(path):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            raise LockBusy(str(path)) from None
        yield
    finally:
        os.close(fd)  # closing releases the lock


def append_jsonl(path: Path, objs: Iterable[Any]) -> int:
    """Append objects as JSON lines in one write, then flush and fsync. Returns the count.

    The file is flocked while its tail is repaired and the lines written, so two processes
    appending to one cache never cut each other's lines. A write that fails (disk full) is undone:
    the file is cut back to its size before, and a file this call created is removed."""
    path = Path(path)
    lines = [dumps(o) + "\n" for o in objs]
    if not lines:
        return 0
    make_dirs(path.parent)
    data = "".join(lines).encode("utf-8")
    with WRITE_GUARD, storage(path):
        existed = path.exists()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            _repair_tail(path)
            size = os.fstat(fd).st_size
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            except OSError:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, size)
                if not existed and size == 0:
                    path.unlink(missing_ok=True)
                raise
        finally:
            os.close(fd)  # closing releases the lock
    return len(lines)


# -- response cache ----------------------------------------------------------------------------

def stable_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(json_safe(obj), sort_keys=True, ensure_ascii=False,
                                     default=str).encode()).hexdigest()


class ResponseCache:
    """Finished engine responses of one engine identity (model, config key, backend), on disk.

    Keys hash everything that changes a response: the request kind ("generate", "loglikelihood",
    "judge", "chat_template"), the prompt / messages / token ids, sampling parameters and
    enable_thinking. Values are the engine's result as a dict. Appends are fsynced, so whatever an
    engine returned before a crash is reused by the rerun.
    """

    def __init__(self, folder: Path, identity: dict[str, Any]):
        self.identity = identity
        self.path = Path(folder) / f"{stable_hash(identity)[:20]}.jsonl"
        self._lock = threading.Lock()
        self._entries: dict[str, Any] | None = None

    def _load(self) -> dict[str, Any]:
        if self._entries is None:
            entries: dict[str, Any] = {}
            for row in read_jsonl(self.path):
                if "k" in row and "v" in row:
                    entries[row["k"]] = row["v"]
            self._entries = entries
        return self._entries

    def key(self, kind: str, request: dict[str, Any]) -> str:
        return stable_hash({"kind": kind, "request": request})

    def get(self, key: str) -> Any | None:
        return self._load().get(key)

    def __contains__(self, key: str) -> bool:
        return key in self._load()

    def __len__(self) -> int:
        return len(self._load())

    def put_many(self, items: list[tuple[str, Any]]) -> None:
        if not items:
            return
        with self._lock:
            entries = self._load()
            if not self.path.exists():
                atomic_write_text(self.path.with_suffix(".identity.json"), dumps(self.identity, indent=2) + "\n")
            append_jsonl(self.path, ({"k": k, "v": v} for k, v in items))
            for k, v in items:
                entries[k] = v


# -- the result store --------------------------------------------------------------------------

@dataclass(frozen=True)
class RunPaths:
    runs_dir: Path  # folder holding run directories (results/evaluations)
    run_id: str

    @property
    def run_dir(self) -> Path:
        return self.runs_dir / self.run_id

    @property
    def summary_dir(self) -> Path:
        """results/ for results/evaluations; otherwise the runs folder itself."""
        return self.runs_dir.parent if self.runs_dir.name == "evaluations" else self.runs_dir


def resolve_run_paths(results_dir: str | Path = "results", run_id: str | None = None,
                      output_dir: str | Path | None = None) -> RunPaths:
    """Where a run goes. `output_dir` is the run directory itself (its name is the run id);
    otherwise the run directory is <results_dir>/evaluations/<run_id>."""
    if output_dir is not None:
        out = Path(output_dir)
        if run_id is not None and run_id != out.name:
            raise ConfigError(
                f"--run-id {run_id} disagrees with --output-dir {out} (whose name is the run id)",
                f"give only --output-dir, or --output-dir {out.parent / run_id}")
        return RunPaths(out.parent, out.name)
    return RunPaths(Path(results_dir) / "evaluations", run_id_or_new(run_id))


# Names the stores keep for themselves: evaluations/model_coverage/ (milestone 2), and its summary file.
RESERVED_RUN_IDS = ("model_coverage", "latest_summary", "cache")
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def run_id_or_new(run_id: str | None) -> str:
    """The one run-id rule of every store (evaluations, benchmarks, coverage): `run_id` checked, or a
    new one, the UTC start time (20261204-213000)."""
    if run_id is None:
        return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    if not _RUN_ID.fullmatch(run_id) or run_id in RESERVED_RUN_IDS:
        raise ConfigError(f"invalid run id '{run_id}'", "use letters, digits, '.', '-' and '_', starting with a letter "
                          f"or digit, such as 2025-06-01-baseline (not {', '.join(RESERVED_RUN_IDS)})")
    return run_id


class ResultStore:
    """Reads and writes one run directory, and the summaries beside it."""

    def __init__(self, paths: RunPaths):
        self.paths = paths
        self.run_dir = paths.run_dir
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise ConfigError(f"{self.run_dir} is a file, not a run directory", "choose another --output-dir / --run-id")
        self.created_dirs = make_dirs(self.run_dir)  # folders this store made (removed if nothing lands in them)
        self._manifest_lock = threading.Lock()

    def remove_if_unused(self) -> None:
        """Remove the folders this store created if they hold nothing but lock files (a run that
        could not write its first file leaves nothing behind)."""
        if not self.created_dirs:
            return
        files = [f for f in self.run_dir.rglob("*") if f.is_file()]
        if any(not f.name.endswith(".lock") for f in files):
            return
        for f in files:
            f.unlink(missing_ok=True)
        for d in sorted((d for d in self.run_dir.rglob("*") if d.is_dir()), key=lambda d: -len(d.parts)):
            with contextlib.suppress(OSError):
                d.rmdir()
        for d in reversed(self.created_dirs):
            with contextlib.suppress(OSError):
                d.rmdir()

    # paths
    def dataset_dir(self, model: str, preset: str) -> Path:
        return self.run_dir / _safe(model) / preset

    def aggregate_path(self, model: str, preset: str, dataset: str) -> Path:
        return self.dataset_dir(model, preset) / f"{dataset}.json"

    def samples_path(self, model: str, preset: str, dataset: str) -> Path:
        return self.dataset_dir(model, preset) / f"{dataset}.samples.jsonl"

    @property
    def manifest_path(self) -> Path:
        return self.run_dir / MANIFEST

    def cache(self, identity: dict[str, Any]) -> ResponseCache:
        return ResponseCache(self.run_dir / CACHE_DIR, identity)

    # manifest
    def read_manifest(self) -> dict[str, Any]:
        return read_json(self.manifest_path) if self.manifest_path.exists() else {}

    def update_manifest(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Merge `changes` into the manifest (dicts merge one level deep) and write it atomically."""
        with self._manifest_lock, file_lock(self.run_dir / ".manifest.lock"):
            manifest = self.read_manifest()
            for k, v in changes.items():
                if isinstance(v, dict) and isinstance(manifest.get(k), dict):
                    manifest[k] = {**manifest[k], **v}
                else:
                    manifest[k] = v
            atomic_write_json(self.manifest_path, manifest)
            return manifest

    def mutate_manifest(self, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """Read, change in place and write the manifest under its lock (for read-modify-write
        updates, such as appending an invocation, that other processes must not undo)."""
        with self._manifest_lock, file_lock(self.run_dir / ".manifest.lock"):
            manifest = self.read_manifest()
            change(manifest)
            atomic_write_json(self.manifest_path, manifest)
            return manifest

    # samples
    def load_records(self, model: str, preset: str, dataset: str) -> list[SampleRecord]:
        out = []
        for row in read_jsonl(self.samples_path(model, preset, dataset)):
            out.append(record_from_dict(row))
        return out

    def append_records(self, model: str, preset: str, dataset: str, records: list[SampleRecord]) -> None:
        append_jsonl(self.samples_path(model, preset, dataset), (r.to_dict() for r in records))

    @contextmanager
    def dataset_lock(self, model: str, preset: str, dataset: str, *, wait: bool = False) -> Iterator[None]:
        """Held while one process evaluates a dataset of this run. Another process gets DatasetBusy
        (naming the holder's pid), or with `wait` blocks until the holder is done."""
        path = self.dataset_dir(model, preset) / f".{dataset}.lock"
        try:
            with file_lock(path, blocking=wait):
                with contextlib.suppress(OSError):  # who holds it, for the other process's message
                    path.write_text(f"{os.getpid()}\n")
                yield
        except LockBusy:
            raise DatasetBusy(f"{model}/{preset}/{dataset}", self.paths.run_id, _lock_holder(path)) from None

    def discard(self, model: str, preset: str, dataset: str) -> None:
        """Delete a dataset's records and aggregate (the response cache stays: it is keyed by content)."""
        for path in (self.samples_path(model, preset, dataset), self.aggregate_path(model, preset, dataset)):
            path.unlink(missing_ok=True)

    # aggregates
    def write_aggregate(self, model: str, preset: str, dataset: str, aggregate: dict[str, Any]) -> Path:
        path = self.aggregate_path(model, preset, dataset)
        atomic_write_json(path, aggregate)
        return path

    def read_aggregate(self, model: str, preset: str, dataset: str) -> dict[str, Any] | None:
        path = self.aggregate_path(model, preset, dataset)
        return read_json(path) if path.exists() else None

    def iter_aggregates(self) -> Iterator[dict[str, Any]]:
        yield from iter_run_aggregates(self.run_dir)

    # summaries
    def write_summaries(self) -> tuple[Path, Path]:
        summary_dir = self.paths.summary_dir
        latest = build_summary(list(self.iter_aggregates()), run_id=self.paths.run_id)
        latest_path = summary_dir / LATEST_SUMMARY
        atomic_write_json(latest_path, latest)
        everything: dict[tuple[str, str, str], dict[str, Any]] = {}
        for run in sorted(p for p in self.paths.runs_dir.iterdir() if p.is_dir()):
            for agg in iter_run_aggregates(run):
                key = (agg.get("model", ""), agg.get("preset", ""), agg.get("dataset", ""))
                if key not in everything or str(agg.get("finished_at", "")) >= str(everything[key].get("finished_at", "")):
                    everything[key] = agg
        comp = build_summary(list(everything.values()), run_id=None)
        comp_path = summary_dir / COMPREHENSIVE_SUMMARY
        atomic_write_json(comp_path, comp)
        return latest_path, comp_path


def _safe(name: str) -> str:
    """A model name as a folder name (Hub ids contain '/')."""
    return name.replace("/", "__")


def iter_run_aggregates(run_dir: Path) -> Iterator[dict[str, Any]]:
    if not run_dir.is_dir():
        return
    for path in sorted(run_dir.glob("*/*/*.json")):
        if path.name.startswith(".") or path.parent.parent.name == CACHE_DIR:
            continue
        try:
            agg = read_json(path)
        except DataError:
            continue
        if isinstance(agg, dict) and "metrics" in agg and "dataset" in agg:
            agg.setdefault("run_id", run_dir.name)
            yield agg


def build_summary(aggregates: list[dict[str, Any]], run_id: str | None) -> dict[str, Any]:
    """{models, total_evaluations, results: {model: {preset: {dataset: {...}}}}, evaluations: [...]}."""
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for agg in sorted(aggregates, key=lambda a: (a["model"], a["preset"], a["dataset"])):
        results.setdefault(agg["model"], {}).setdefault(agg["preset"], {})[agg["dataset"]] = {
            "metrics": agg.get("metrics", {}),
            "n_samples": agg.get("n_samples"),
            "n_errors": agg.get("n_errors"),
            "error_rate": agg.get("error_rate"),
            "backend": agg.get("backend"),
            "run_id": agg.get("run_id"),
            "finished_at": agg.get("finished_at"),
        }
    return {
        "generated_at": now_iso(),
        "run_id": run_id,
        "models": sorted(results),
        "datasets": sorted({a["dataset"] for a in aggregates}),
        "total_evaluations": len(aggregates),
        "results": results,
    }


def record_from_dict(row: dict[str, Any]) -> SampleRecord:
    fields = SampleRecord.__dataclass_fields__
    return SampleRecord(**{k: v for k, v in row.items() if k in fields})
