"""The evaluation runner: models x presets x datasets -> tasks -> ResultStore.

For each (model, preset) the engine comes from an EnginePool (one engine alive at a time; pass the
pytest session's pool to reuse its engines) and is opened only when a request misses the run's
response cache. For each dataset the runner loads the reproducible subset (`sample_limit`, `seed`),
skips docs that already have a per-sample record in this run, runs the task on the rest through a
CachedRunContext, appends the new records, aggregates all of them and writes the aggregate, the
manifest and both summaries. A failing sample becomes a record with `error` set; a failing dataset
(missing data, an engine that will not start) is reported and the run goes on.

Defaults: chat template on for instruct models (ModelSpec.is_instruct) on generation tasks and off
for log-likelihood tasks; Qwen3 thinking off (`thinking=True` switches it on); the MT-Bench judge is
the model under test unless `judge_model` names another (on GPU use a strong instruct model, e.g.
`--judge-model qwen2.5_14b`; the tiny CPU model's judgments are mostly unparseable, which the
`judge_parse_failure_rate` metric shows).

One module: the runner's steps (selection, resume, staleness, manifest, aggregation) share the run's
store and locks; the protocol loop is Task.run and the summary table is in run_summary.py.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from .errors import ConfigError, EngineDiedError, HarnessError, StorageError
from .presets import DEFAULT_PRESET, DEFAULT_SEED, ResolvedConfig
from .results import DatasetBusy, ResultStore, RunPaths, now_iso, stable_hash
from .engines.merging import MergingEngine
from .run_context import CachedRunContext, EngineFn
from .scheduling import concurrent_datasets_apply, evaluation_compilation
from .run_summary import engine_header, format_metric, summary_table  # noqa: F401 - re-exported
from .data.registry import DATASETS
from .data.subsets import base_name, parse_selection
from .grouping import SUBTASK_KEY, group_aggregates
from .selection import SampleLimits, parse_sample_limits, select_docs
from .tasks.base import SampleRecord, Task, TaskOptions, describe, error_record

DEFAULT_ERROR_BUDGET = 0.05  # used only when qwenharness/config/gates.toml cannot be read
BREAKDOWN_FIELDS = ("subject", "category", "type", "level")
MAX_ERROR_EXAMPLES = 10


def error_budget() -> float:
    """The milestone-3 error budget from the gates file (fallback: the seed's 5%)."""
    try:
        from .gates import load_gates

        return load_gates().error_budget
    except (ImportError, HarnessError):
        return DEFAULT_ERROR_BUDGET


@dataclass
class EvalSettings:
    models: list[str]
    datasets: list[str]
    presets: list[str] = field(default_factory=lambda: [DEFAULT_PRESET])
    backend: str = "vllm"
    # samples per dataset: one count, or per-dataset counts ("arc_easy=200,default=40" or a
    # selection.SampleLimits; stored in the manifest as that text)
    sample_limit: int | str | SampleLimits | None = None
    # exact documents per dataset (--doc-ids): dataset -> ids; a dataset named here ignores sample_limit
    doc_ids: dict[str, list[str]] | None = None
    seed: int = DEFAULT_SEED
    fewshot_sampler: str = "harness"  # or "lm-eval": lm-evaluation-harness's draw (tasks/fewshot.py)
    data_dir: str | None = None
    n_shot: int | None = None
    num_samples: int = 1
    thinking: bool = False
    chat: bool | None = None  # None: instruct models on generation tasks
    max_tokens: int | None = None
    temperature: float | None = None
    judge_model: str | None = None  # None: the model under test
    judge_max_tokens: int = 2048
    load_format: str = "auto"
    detailed: bool = False
    progress: bool | None = None  # None: when stderr is a terminal
    # in-process engine settings (qwenharness.engine_args.EngineSettings.to_dict()); {}: the preset's
    engine: dict[str, Any] = field(default_factory=dict)
    # backend "openai": the servers (engines.openai.ServerEndpoint.to_dict()) of the model and the judge
    server: dict[str, Any] | None = None
    judge_server: dict[str, Any] | None = None
    # the datasets of the whole job when this runner does part of it (a pytest gate runs one dataset
    # per test): the default compilation mode is chosen over them, so one engine serves the job
    job_datasets: list[str] | None = None
    # evaluate a model's datasets at once with their generation calls merged: "on", "off", or "auto"
    # (on for vLLM on a GPU)
    concurrent_datasets: str = "auto"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if isinstance(self.sample_limit, SampleLimits):
            limits = self.sample_limit
            out["sample_limit"] = str(limits) if limits.per_dataset else limits.default
        return out

    @property
    def judge_backend(self) -> str:
        """The judge's backend: "openai" when it has a server of its own, else the model's."""
        return "openai" if self.judge_server else self.backend

    def limit_for(self, dataset: str) -> int | None:
        """The sample count of one dataset (None: every document, or the ones --doc-ids names)."""
        if self.ids_for(dataset) is not None:
            return None
        limits = self.sample_limit
        if not isinstance(limits, SampleLimits):
            limits = parse_sample_limits(limits)
        return limits.for_dataset(dataset)

    def ids_for(self, dataset: str) -> list[str] | None:
        """The document ids --doc-ids gives for one dataset, or None."""
        ids = (self.doc_ids or {}).get(dataset)
        return [str(i) for i in ids] if ids is not None else None


@dataclass
class DatasetResult:
    model: str
    preset: str
    dataset: str
    ok: bool
    aggregate: dict[str, Any] | None = None
    error: str | None = None
    path: Path | None = None


# -- the engine pool --------------------------------------------------------------------------

def make_pool(settings: EvalSettings) -> Any:
    from .engine_args import EngineSettings
    from .engines.openai import ServerEndpoint
    from .engines.pool import EnginePool

    return EnginePool(
        load_format=settings.load_format, overrides=EngineSettings.from_dict(settings.engine).overrides(),
        server=ServerEndpoint.from_dict(settings.server) if settings.server else None,
        judge_server=ServerEndpoint.from_dict(settings.judge_server) if settings.judge_server else None)


class EngineSource(Protocol):
    """What the runner needs of an engine pool (EnginePool; the tests' fakes declare the same)."""

    current_key: tuple[Any, ...] | None  # the open engine's key (model, preset, backend, ...), None if none

    def resolve(self, model: str, preset: str, backend: str | None = None, **overrides: Any) -> ResolvedConfig: ...
    def get(self, model: str, preset: str, backend: str, **kwargs: Any) -> Any: ...
    def close(self) -> None: ...


def resolve_config(pool: EngineSource, model: str, preset: str, backend: str = "vllm",
                   overrides: dict[str, Any] | None = None) -> ResolvedConfig:
    """The configuration the pool would open; `overrides`: the run's engine settings (in-process only)."""
    if backend == "openai":
        return pool.resolve(model, preset, backend)
    return pool.resolve(model, preset, **(overrides or {}))


# -- task options -----------------------------------------------------------------------------

def task_options(task: Task, model: str, settings: EvalSettings) -> TaskOptions:
    from .models import get_model_spec

    spec = get_model_spec(model)
    chat = settings.chat
    if chat is None:
        chat = spec.is_instruct and task.output_type != "loglikelihood"
    return TaskOptions(
        n_shot=settings.n_shot, seed=settings.seed, chat=chat,
        enable_thinking=settings.thinking if spec.thinking_mode else None,
        num_samples=settings.num_samples, temperature=settings.temperature, max_tokens=settings.max_tokens,
        fewshot_sampler=settings.fewshot_sampler,
    )


def chat_template_hash(config: ResolvedConfig) -> str | None:
    """sha256 (16 hex digits) of the chat template the model's tokenizer applies, where the model
    folder is on disk; "chatml-builtin" where the harness supplies ChatML itself."""
    import hashlib
    import json

    from .engines import resolve_model_dir

    if config.model.chat_template == "chatml-builtin":
        return "chatml-builtin"
    folder = Path(resolve_model_dir(config))
    template = None
    if (folder / "chat_template.jinja").is_file():
        template = (folder / "chat_template.jinja").read_text()
    elif (folder / "tokenizer_config.json").is_file():
        template = json.loads((folder / "tokenizer_config.json").read_text()).get("chat_template")
    return hashlib.sha256(template.encode()).hexdigest()[:16] if isinstance(template, str) else None


# -- running one task -------------------------------------------------------------------------

def run_task(task: Task, docs: list[dict[str, Any]], ids: list[str], ctx: CachedRunContext,
             options: TaskOptions, fewshot: list[dict[str, Any]] | None) -> list[SampleRecord]:
    """Run a task on docs; never raises for a single sample's failure. Records come back in doc
    order with the dataset's doc ids."""
    if not docs:
        return []
    try:
        records = task.run(docs, ctx, options, fewshot)
    except HarnessError:
        raise
    except Exception as e:  # noqa: BLE001 - isolate the doc at fault, one at a time (cached)
        if len(docs) == 1:
            return [error_record(ids[0], describe(e))]
        records = []
        for doc, did in zip(docs, ids):
            records += run_task(task, [doc], [did], ctx, options, fewshot)
        return records
    if len(records) != len(docs):
        raise HarnessError(f"task {task.name} returned {len(records)} records for {len(docs)} docs",
                           "this is a bug in the task; it must return one record per doc, in order")
    for rec, did in zip(records, ids):
        rec.doc_id = did  # the dataset's own id, whatever the task wrote
    return records


# -- the runner -------------------------------------------------------------------------------

class _Group(NamedTuple):
    """The datasets of one model x preset evaluated together, and the engine they share."""

    key: tuple[str, str, str]  # (model, preset, backend)
    engine: MergingEngine
    datasets: list[str]


class Evaluator:
    """Runs EvalSettings into one run directory. Pass `pool` to reuse an open EnginePool."""

    def __init__(self, settings: EvalSettings, paths: RunPaths, *, pool: EngineSource | None = None,
                 console: Any | None = None, argv: list[str] | None = None,
                 task_factory: Callable[[str], Task] | None = None,
                 docs_loader: Callable[..., list[Any]] | None = None,
                 split_loader: Callable[..., list[dict[str, Any]]] | None = None,
                 chunk_sizes: dict[str, int] | None = None, replace_stale: bool = False):
        """`task_factory`, `docs_loader` (like data.load_docs) and `split_loader` (like data.load with
        split=) default to the registries; tests pass fakes. `replace_stale`: a dataset already in the
        run with other options is recomputed (its old records deleted) instead of refused; the pytest
        gates use it because their run id is fixed ("pytest")."""
        self.replace_stale = replace_stale
        self.settings = settings
        self.task_factory = task_factory
        self.docs_loader = docs_loader
        self.split_loader = split_loader
        self.chunk_sizes = chunk_sizes
        self.store = ResultStore(paths)
        self._own_pool = pool is None
        self.pool = pool if pool is not None else make_pool(settings)
        self.argv = argv if argv is not None else list(sys.argv)
        self.console = console
        self.results: list[DatasetResult] = []
        self._invocation: dict[str, Any] | None = None  # this process's entry in manifest["invocations"]
        self._current_entries: set[str] = set()  # the evaluations this process is running now
        self._invocation_lock = threading.RLock()
        self._group: _Group | None = None  # the datasets being evaluated together, if any
        self.on_start: Callable[[Path], Any] | None = None  # called with the run directory once it exists
        from .engine_args import EngineSettings

        self._overrides = EngineSettings.from_dict(settings.engine).overrides()  # in-process engines only
        if settings.backend == "vllm" and "compilation" not in self._overrides:
            self._overrides["compilation"] = evaluation_compilation(settings.job_datasets or settings.datasets,
                                                                    task_factory)

    # manifest
    def _start_manifest(self) -> None:
        from . import environment

        manifest = self.store.read_manifest()
        previous = manifest.get("settings")
        if previous and previous.get("backend") not in (None, self.settings.backend) and not self.replace_stale:
            raise ConfigError(
                f"run {self.store.paths.run_id} was made with backend {previous['backend']}, not "
                f"{self.settings.backend}", "use another --run-id for another backend")
        started = now_iso()
        self._invocation = {"id": uuid.uuid4().hex[:12], "command_line": self.argv, "pid": os.getpid(),
                            "started_at": started, "ended_at": None, "status": "running",
                            "wrote": [], "waited_for": []}
        fields = {
            "run_id": self.store.paths.run_id,
            "command_line": self.argv,
            "started_at": started,
            "ended_at": None,
            "settings": self.settings.to_dict(),
            # sample selection, few-shot choice and per-request sampling seeds derive from this one;
            # each engine's own seed is in resolved_configs
            "seeds": {"evaluation": self.settings.seed},
            "environment": environment.describe(),
            "gpus": _gpu_inventory(),
        }

        def start(m: dict[str, Any]) -> None:  # under the manifest lock: concurrent runs keep both entries
            m.update(fields)
            m.setdefault("created_at", started)
            m.setdefault("invocations", []).append(dict(self._invocation))
        manifest = self.store.mutate_manifest(start)
        resumed = len(manifest["invocations"]) > 1
        self._say(f"run [bold]{self.store.paths.run_id}[/bold] -> {self.store.run_dir}"
                  + (" (resuming)" if resumed else ""))

    def _update_invocation(self, **changes: Any) -> None:
        """Change this process's entry in the manifest's `invocations` (found by its id)."""
        if self._invocation is None:  # evaluate() called without run(): no invocation to record
            return
        invocation = self._invocation

        def change(m: dict[str, Any]) -> None:
            for inv in m.setdefault("invocations", []):
                if inv.get("id") == invocation["id"]:
                    inv.update(invocation)
                    break
            else:
                m["invocations"].append(dict(invocation))
            if changes.get("ended_at"):
                m["ended_at"] = changes["ended_at"]
        with self._invocation_lock:  # datasets evaluated together finish in their own threads
            invocation.update(changes)
            self.store.mutate_manifest(change)

    def _end_manifest(self, status: str) -> None:
        self._update_invocation(ended_at=now_iso(), status=status)
        entries = set(self._current_entries)

        def end(m: dict[str, Any]) -> None:
            m["status"] = status  # the latest invocation's end: done, done with failures, interrupted, failed
            for entry in entries:
                held = m.get("evaluations", {}).get(entry)
                if held and held.get("status") == "running":  # a dataset in flight when it stopped
                    held["status"] = status
        self.store.mutate_manifest(end)

    # the loop
    def run(self) -> list[DatasetResult]:
        """Every (model, preset, dataset). A dataset another process is evaluating is skipped and
        done at the end, once that process lets go of it (by then its records are reused). A disk
        error (StorageError) ends the run at once; what this invocation made and left empty is removed."""
        try:
            self._start_manifest()
        except StorageError:
            self.store.remove_if_unused()
            raise
        if self.on_start is not None:
            with contextlib.suppress(OSError):  # the log file is a convenience; results come first
                self.on_start(self.store.run_dir)
        status = "failed"
        try:
            deferred: list[tuple[str, str, str, ResolvedConfig]] = []
            for model in self.settings.models:
                for preset in self.settings.presets:
                    try:
                        config = resolve_config(self.pool, model, preset,
                                                self.settings.backend, self._overrides)
                    except HarnessError as e:
                        for ds in self.settings.datasets:
                            self._fail(model, preset, ds, f"configuration: {e}")
                        continue
                    self.store.update_manifest({"resolved_configs": {f"{model}/{preset}": config.to_dict()}})
                    datasets = self._ordered_datasets()
                    together = self._together(model, datasets, config)
                    busy = self._evaluate_together(model, preset, together, config) if together else []
                    for dataset in datasets:
                        if dataset in together:
                            continue
                        if self.evaluate(model, preset, dataset, config, wait=False) is None:
                            busy.append(dataset)
                    deferred += [(model, preset, dataset, config) for dataset in busy]
            if deferred and self._own_pool:
                self.pool.close()  # waiting: free the engine (reopened only if records are missing)
            for model, preset, dataset, config in deferred:
                self._say(f"[yellow]{model}/{preset}/{dataset}: waiting for the other process to finish "
                          "it[/yellow]")
                self._update_invocation(waited_for=[*self._invocation["waited_for"], f"{model}/{preset}/{dataset}"])
                self.evaluate(model, preset, dataset, config, wait=True)
            self.store.write_summaries()
            self._end_manifest("done" if all(r.ok for r in self.results) else "done with failures")
            status = "ended"
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        finally:
            if status != "ended":
                with contextlib.suppress(StorageError):  # a full disk: the first error is the one to report
                    self._end_manifest(status)
            if self._own_pool:
                self.pool.close()
        return self.results

    def _needs_judge(self, dataset: str) -> bool:
        """Whether the dataset's task is judged (False for one that cannot be made: it fails on its own)."""
        from .tasks import get_task

        try:
            return (self.task_factory or get_task)(dataset).needs_judge
        except HarnessError:
            return False

    def _ordered_datasets(self) -> list[str]:
        """Judged datasets last, so a separate judge engine displaces the model's engine only once."""
        return sorted(self.settings.datasets, key=self._needs_judge)

    def _together(self, model: str, datasets: list[str], config: ResolvedConfig) -> list[str]:
        """The datasets of one model x preset to evaluate at once (at least two, else none).

        See `concurrent_datasets_apply`. A judged dataset whose judge is another engine stays out: the
        two engines would displace each other."""
        if not concurrent_datasets_apply(self.settings.concurrent_datasets, self.settings.backend,
                                         config.device == "cuda"):
            return []
        own_judge = self._judge_shares_engine(model)
        chosen = [d for d in datasets if own_judge or not self._needs_judge(d)]
        return chosen if len(chosen) > 1 else []

    def _judge_shares_engine(self, model: str) -> bool:
        """Whether the judge of `model`'s judged datasets is the model's own engine."""
        s = self.settings
        return s.judge_model in (None, model) and s.judge_backend == s.backend and not s.judge_server

    def _evaluate_together(self, model: str, preset: str, datasets: list[str],
                           config: ResolvedConfig) -> list[str]:
        """Evaluate `datasets` at once, one thread each, sharing one engine whose generation calls
        are merged (engines/merging.py). Returns the datasets another process holds (done later)."""
        backend = self.settings.backend
        merger = MergingEngine(lambda: self._open_engine(model, preset, backend))
        self._group = _Group((model, preset, backend), merger, list(datasets))
        outcome: dict[str, DatasetResult | BaseException | None] = {}

        def work(dataset: str) -> None:
            with merger.party():
                try:
                    outcome[dataset] = self.evaluate(model, preset, dataset, config, wait=False)
                except BaseException as e:  # noqa: BLE001 - raised again in the runner's thread
                    outcome[dataset] = e

        before = len(self.results)
        threads = [threading.Thread(target=work, args=(d,), name=f"evaluate-{d}", daemon=True) for d in datasets]
        try:
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        finally:
            self._group = None
        self.results[before:] = sorted(self.results[before:], key=lambda r: datasets.index(r.dataset))
        self._say(f"{model}/{preset}: {len(datasets)} datasets evaluated together, "
                  f"{merger.stats.submissions} generation calls in {merger.stats.engine_calls} engine calls")
        for value in outcome.values():
            if isinstance(value, BaseException):
                raise value
        return [d for d in datasets if d in outcome and outcome[d] is None]

    def _fail(self, model: str, preset: str, dataset: str, message: str) -> DatasetResult:
        res = DatasetResult(model, preset, dataset, ok=False, error=message)
        self.results.append(res)
        self._say(f"[red]x {model}/{preset}/{dataset}: {message}[/red]")
        return res

    def _say(self, text: str) -> None:
        if self.console is not None:
            self.console.print(text)

    def evaluate(self, model: str, preset: str, dataset: str, config: ResolvedConfig | None = None,
                 *, wait: bool = True) -> DatasetResult | None:
        """Evaluate one dataset under its lock. If another process holds it: with `wait`, block
        until it is free; without, say so and return None (the caller comes back to it)."""
        try:
            if config is None:
                config = resolve_config(self.pool, model, preset, self.settings.backend,
                                        self._overrides)
            with contextlib.ExitStack() as held:
                try:
                    held.enter_context(self.store.dataset_lock(model, preset, dataset))
                except DatasetBusy:
                    if not wait:
                        raise
                    held.enter_context(self.store.dataset_lock(model, preset, dataset, wait=True))
                res = self._evaluate(model, preset, dataset, config)
        except DatasetBusy as e:
            self._say(f"[yellow]{e.problem}; doing the others first[/yellow]")
            return None
        except StorageError:
            raise  # the disk, not the dataset: nothing else can be written either
        except EngineDiedError as e:
            self.pool.close()  # the next dataset starts a new engine
            return self._fail(model, preset, dataset, str(e))
        except HarnessError as e:
            return self._fail(model, preset, dataset, str(e))
        self.results.append(res)
        return res

    def _engine(self, model: str, preset: str, backend: str, role: str = "model") -> Any:
        """The engine for a model (or judge): the shared one of a group of datasets evaluated
        together, else the pool's."""
        if (self._group is not None and self._group.key == (model, preset, backend)
                and (role == "model" or self._judge_shares_engine(model))):
            return self._group.engine
        return self._open_engine(model, preset, backend, role)

    def _open_engine(self, model: str, preset: str, backend: str, role: str = "model") -> Any:
        """The pool's engine; one header line each time an engine is started."""
        before = self.pool.current_key
        if backend == "vllm" and before != (model, preset, backend):  # vLLM writes run.log itself
            from .console import flush_run_log

            flush_run_log()
        t0 = time.perf_counter()
        if backend == "openai":
            engine = self.pool.get(model, preset, backend, role=role)
        else:  # the run's engine settings (--max-model-len ...), whoever made the pool
            engine = self.pool.get(model, preset, backend, **self._overrides)
        if self.pool.current_key != before or before is None:
            self._say(engine_header(engine, model, preset, backend, role, time.perf_counter() - t0))
            if not engine.capabilities.in_process:  # the server's identity (models, max length, version)
                server = engine.info().extra.get("server")
                self.store.update_manifest({"servers": {f"{role}:{model}/{preset}": server}})
        return engine

    def _judge(self, model: str, preset: str) -> tuple[str, ResolvedConfig]:
        judge = self.settings.judge_model or model
        return judge, resolve_config(self.pool, judge, preset, self.settings.judge_backend,
                                     self._overrides)

    def _evaluate(self, model: str, preset: str, dataset: str, config: ResolvedConfig) -> DatasetResult:
        from .data import load, load_docs
        from .tasks import get_task

        s = self.settings
        load_docs = self.docs_loader or load_docs
        load = self.split_loader or load
        started, t0, t0_unix = now_iso(), time.perf_counter(), time.time()
        task = (self.task_factory or get_task)(dataset)
        task.data_dir = s.data_dir
        options = task_options(task, model, s)
        limit = s.limit_for(dataset)
        wanted = s.ids_for(dataset)
        docs_meta = load_docs(dataset, limit, s.seed, data_dir=s.data_dir)
        if wanted is not None:
            docs_meta = select_docs(docs_meta, wanted, dataset)
        selection = parse_selection(dataset) if base_name(dataset) in DATASETS else None
        docs = [{**d.record, "_index": d.index} for d in docs_meta]
        ids = [d.id for d in docs_meta]
        if options.fewshot_sampler == "lm-eval":  # its draws follow the run's documents in order
            options = replace(options, fewshot_order=tuple(d["_index"] for d in docs))
        fewshot = None
        split = task.fewshot_split()
        n_shot = task.n_shot(options)
        if split and n_shot > 0:  # zero-shot runs need no few-shot pool (HellaSwag's is 10k rows)
            fewshot = [{**r, "_index": i} for i, r in enumerate(load(dataset, split=split, data_dir=s.data_dir))]

        backend = s.backend
        judge_name = judge_config = None
        uses_judge = task.needs_judge
        if uses_judge:
            judge_name, judge_config = self._judge(model, preset)
            task.judge_max_tokens = s.judge_max_tokens
        fingerprint_src = {
            "options": options.to_dict(), "sample_limit": limit, "seed": s.seed, "config_key": config.key,
            "backend": backend, "judge": judge_config.key if judge_config else None,
            "judge_max_tokens": s.judge_max_tokens if uses_judge else None,
        }
        if wanted is not None:  # only when given, so runs made before --doc-ids keep their fingerprint
            fingerprint_src["doc_ids"] = wanted
        fingerprint = stable_hash(fingerprint_src)[:16]
        entry_key = f"{model}/{preset}/{dataset}"
        previous = self.store.read_manifest().get("evaluations", {}).get(entry_key)
        existing = self.store.load_records(model, preset, dataset)
        if existing and previous and previous.get("fingerprint") != fingerprint:
            if not self.replace_stale:
                raise ConfigError(
                    f"run {self.store.paths.run_id} already holds {entry_key} made with other options "
                    f"({previous.get('settings')})", "use a new --run-id, or rerun with the same options")
            self._say(f"[yellow]{entry_key}: options changed; its earlier records are replaced[/yellow]")
            self.store.discard(model, preset, dataset)
            existing = []
        self.store.update_manifest({"evaluations": {entry_key: {
            "fingerprint": fingerprint, "settings": fingerprint_src, "status": "running", "started_at": started}}})
        self._current_entries.add(entry_key)

        cache = self.store.cache({"model": model, "config_key": config.key, "backend": backend})
        judge_cache = None
        if judge_config is not None:
            judge_cache = self.store.cache({"model": judge_name, "config_key": judge_config.key,
                                            "backend": s.judge_backend, "role": "judge"})
        engine_fn: EngineFn = lambda: self._engine(model, preset, backend)  # noqa: E731
        judge_fn: EngineFn | None = ((lambda: self._engine(judge_name, preset, s.judge_backend, role="judge"))  # noqa: E731
                                     if judge_name else None)
        ctx = CachedRunContext(
            model, engine_fn, cache, judge_name=judge_name, judge_fn=judge_fn, judge_cache=judge_cache,
            label=f"{model}/{dataset}", progress=s.progress, chunk_sizes=self.chunk_sizes)

        done: dict[str, SampleRecord] = {}
        for rec in existing:
            done.setdefault(str(rec.doc_id), rec)
        todo = [(doc, did) for doc, did in zip(docs, ids) if did not in done]
        self._say(f"[bold]{model}[/bold]/{preset}/[bold]{dataset}[/bold]: {len(docs)} samples"
                  + (f" ({len(docs) - len(todo)} already done)" if len(todo) < len(docs) else ""))
        new: list[SampleRecord] = []
        if todo:
            new = run_task(task, [d for d, _ in todo], [i for _, i in todo], ctx, options, fewshot)
            field_name = selection.spec.subtasks.field if selection and selection.spec.subtasks else None
            if field_name is not None:  # each record names its subtask: verify.py recomputes the groups
                for rec, (doc, _) in zip(new, todo):
                    rec.extra[SUBTASK_KEY] = doc[field_name]
            self.store.append_records(model, preset, dataset, new)
            for rec in new:
                done[str(rec.doc_id)] = rec
        records = [done[i] for i in ids]

        aggregate = self._aggregate(task, records, docs, ids)
        grouped = None
        if selection is not None and selection.spec.subtasks is not None:
            grouped = group_aggregates(task, selection, records, [d[selection.spec.subtasks.field] for d in docs])
        if grouped is not None:
            aggregate.update(grouped)
        engine_info = None
        current = self.pool.current_key
        if ctx.engine_opened and current and tuple(current[:3]) == (model, preset, backend):
            try:
                engine_info = self._engine(model, preset, backend).info().to_dict()
            except Exception:  # noqa: BLE001 - informational only
                engine_info = None
        aggregate.update({
            "run_id": self.store.paths.run_id, "model": model, "preset": preset, "dataset": dataset,
            "backend": backend, "config_key": config.key, "fingerprint": fingerprint,
            "task": {"name": task.name, "output_type": task.output_type, "n_shot": task.n_shot(options),
                     "metrics": list(task.metric_names), "fewshot": task.fewshot_policy(options),
                     "protocol": task.protocol(options), "chat_template": options.chat,
                     "chat_template_sha256": chat_template_hash(config) if options.chat else None,
                     "generation_settings": ctx.stats.generation_settings,
                     "isolation": task.isolation(records)},
            "options": options.to_dict(), "sample_limit": limit, "seed": s.seed,
            "selection": {**(selection.to_dict() if selection is not None else {"name": dataset}),
                          "doc_ids": wanted},
            "judge": ({"model": judge_name, "config_key": judge_config.key, "max_tokens": s.judge_max_tokens}
                      if judge_config else None),
            "timings": {"wall_s": time.perf_counter() - t0, "resumed_records": len(docs) - len(todo),
                        "started_unix": t0_unix, "finished_unix": time.time(),
                        "evaluated_together": list(self._group.datasets) if self._group else None,
                        **ctx.stats.to_dict()},
            "engine": engine_info, "started_at": started, "finished_at": now_iso(),
        })
        previous_agg = self.store.read_aggregate(model, preset, dataset) if existing else None
        history = (previous_agg or {}).get("timings_history", [])
        aggregate["timings_history"] = history + [{"finished_at": aggregate["finished_at"], **aggregate["timings"]}]
        path = self.store.write_aggregate(model, preset, dataset, aggregate)
        self.store.update_manifest({"evaluations": {entry_key: {
            "fingerprint": fingerprint, "settings": fingerprint_src, "status": "done", "started_at": started,
            "finished_at": aggregate["finished_at"]}}})
        self._current_entries.discard(entry_key)
        written = {"evaluation": entry_key, "new_records": len(new), "reused_records": len(docs) - len(todo),
                   "errors": aggregate["n_errors"], "aggregate": str(path.relative_to(self.store.run_dir))}
        with self._invocation_lock:  # read and extended in one step: another thread may be finishing too
            self._update_invocation(wrote=[*(self._invocation or {}).get("wrote", []), written])
        self.store.write_summaries()
        return DatasetResult(model, preset, dataset, ok=True, aggregate=aggregate, path=path)

    def _aggregate(self, task: Task, records: list[SampleRecord], docs: list[dict[str, Any]],
                   ids: list[str]) -> dict[str, Any]:
        good = [r for r in records if r.error is None]
        n_errors = len(records) - len(good)
        out: dict[str, Any] = {
            "metrics": task.aggregate(good) if good else {},
            "n_samples": len(records),
            "n_errors": n_errors,
            "error_rate": n_errors / len(records) if records else 0.0,
            "error_examples": [{"doc_id": r.doc_id, "error": r.error} for r in records if r.error][:MAX_ERROR_EXAMPLES],
        }
        if self.settings.detailed:
            out["breakdown"] = breakdown(task, records, docs)
            out["error_samples"] = [r.to_dict() for r in records if r.error]
        return out


def breakdown(task: Task, records: list[SampleRecord], docs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-group metrics for the fields a dataset has (MMLU subject, MT-Bench category, ...)."""
    out: dict[str, Any] = dict(task.breakdown(records))  # groups that are not per-doc fields (IFEval)
    for name in BREAKDOWN_FIELDS:
        groups: dict[str, list[SampleRecord]] = {}
        for rec, doc in zip(records, docs):
            value = doc.get(name, rec.extra.get(name) if isinstance(rec.extra, dict) else None)
            if value is None or rec.error is not None:
                continue
            for v in (value if isinstance(value, list) else [value]):
                groups.setdefault(str(v), []).append(rec)
        if len(groups) > 1:
            out[name] = {g: task.aggregate(rs) for g, rs in sorted(groups.items())}
    return out


def _gpu_inventory() -> list[dict[str, Any]]:
    try:
        from .gpu import list_gpus

        return [g.to_dict() for g in list_gpus()]
    except Exception:  # noqa: BLE001 - no NVML: none
        return []
