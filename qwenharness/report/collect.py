"""Read every stored result the reports show, and nothing else.

Sources, all under the results folder (default `results/`):

- `evaluations/<run_id>/<model>/<preset>/<dataset>.json`  aggregate metrics (`metrics: {name: {value,
  stderr, n}}`), and `evaluations/<run_id>/manifest.json`;
- `latest_summary.json`, `comprehensive_summary.json`;
- `evaluations/model_coverage/latest_summary.json` (milestone 2: one entry per configuration);
- `benchmarks/<run_id>/<model>/<preset>/<backend>.json` (throughput, latency, memory, overhead);
- `comparisons/*_comparison.json`, `comparisons/performance_matrix.json`, `comparisons/scaling_insights.json`;
- `gates/<milestone>.json` (written by the pytest plugin in qwenharness.report.html), and
  `gates/partial/<milestone>.json` (subset runs: shown, never taken as the verdict).

Files that do not parse are listed in `ResultsSnapshot.unreadable`, never silently used.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import HarnessError
from ..gate_evidence import EvidenceScope
from ..results_query import newest_per_key

EVALUATIONS = "evaluations"
COVERAGE_DIR = "model_coverage"
NOT_RUNS = {COVERAGE_DIR}  # folders under evaluations/ that are not run directories
GATES_DIR = "gates"
PARTIAL_GATES_DIR = "partial"  # gates/partial/<milestone>.json: subset runs, never a milestone's verdict
MILESTONES = ("milestone1", "milestone2", "milestone3", "milestone4", "milestone5")


def _primary_order() -> tuple[str, ...]:
    """The headline-metric preference of the scaling analysis, so every report names the same metric."""
    try:
        from ..scaling import PRIMARY_METRICS

        return tuple(PRIMARY_METRICS)
    except ImportError:
        return ("acc", "exact_match", "pass@1", "prompt_level_strict_acc", "acc_norm", "score")


@dataclass(frozen=True)
class Metric:
    value: float | None
    stderr: float | None
    n: int | None
    ci95: tuple[float, float] | None = None  # Wilson for 0/1 scores (results written before it: None)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Metric":
        ci = d.get("ci95")
        lo, hi = (_num(ci[0]), _num(ci[1])) if isinstance(ci, list) and len(ci) == 2 else (None, None)
        return cls(_num(d.get("value")), _num(d.get("stderr")), _int(d.get("n")),
                   (lo, hi) if lo is not None and hi is not None else None)


@dataclass
class Evaluation:
    """One stored aggregate: a model x preset x dataset of one run."""

    model: str
    preset: str
    dataset: str
    run_id: str
    metrics: dict[str, Metric]
    path: Path
    backend: str | None = None
    n_samples: int | None = None
    n_errors: int | None = None
    error_rate: float | None = None
    n_shot: int | None = None
    isolation: str | None = None  # code benchmarks: "bubblewrap", or "none" (run with --allow-unisolated)
    chat: bool | None = None
    thinking: bool | None = None
    sample_limit: int | None = None
    judge: str | None = None
    finished_at: str | None = None
    load_format: str | None = None  # "dummy": random weights of a real architecture (speed only)
    protocol: str | None = None

    @property
    def primary(self) -> str | None:
        """The task's headline metric (as the scaling analysis picks it), even when it has no value
        (MT-Bench `score` when every judgment was unparseable); else the first metric with a value."""
        try:
            from ..scaling import task_primary_metric

            declared = task_primary_metric(self.dataset)
        except ImportError:
            declared = None
        if declared in self.metrics:
            return declared
        for name in _primary_order():
            if name in self.metrics and self.metrics[name].value is not None:
                return name
        return next((k for k, m in self.metrics.items() if m.value is not None), None)

    def primary_metric(self) -> Metric | None:
        name = self.primary
        return self.metrics.get(name) if name else None


@dataclass
class ResultsSnapshot:
    results_dir: Path
    run_id: str | None  # the run asked for; None: newest result per key over all runs
    runs: list[str]
    evaluations: list[Evaluation]
    manifests: dict[str, dict[str, Any]]  # run id -> manifest, for the runs the evaluations come from
    latest_summary: dict[str, Any] | None
    comprehensive_summary: dict[str, Any] | None
    coverage: list[dict[str, Any]]
    benchmarks: list[dict[str, Any]]
    comparisons: list[dict[str, Any]]
    matrix: dict[str, Any] | None
    insights: dict[str, Any] | None
    gates: dict[str, dict[str, Any]]
    unreadable: list[str] = field(default_factory=list)
    partial_gates: dict[str, dict[str, Any]] = field(default_factory=dict)  # gates/partial/: subset runs
    scope: EvidenceScope | None = None  # set by scoped.narrow: only what these gate verdicts judged
    left_out: list[str] = field(default_factory=list)  # stored evaluations scoped.narrow left out, and why
    session_runs: list[str] = field(default_factory=list)  # other runs whose evaluations this session wrote

    def scope_text(self) -> str:
        """Which stored results this snapshot holds, in one sentence (without markup)."""
        if self.run_id is None:
            return "the newest result per model x preset x dataset over all runs."
        if self.scope is None:
            return f"run `{self.run_id}` only."
        left = (f"; {len(self.left_out)} other evaluation(s) stored in the run are left out, as no gate verdict "
                "judged them" if self.left_out else "")
        judged = sum(1 for e in self.evaluations if e.run_id == self.run_id)
        extra = len(self.evaluations) - judged
        also = (f"; and the {extra} evaluation(s) this session wrote into run(s) "
                f"{', '.join(f'`{r}`' for r in self.session_runs)}" if extra else "")
        return (f"run `{self.run_id}`, only the {judged} evaluation(s) judged by "
                f"{', '.join(self.scope.sources)}{left}{also}.")

    # convenience views
    @property
    def models(self) -> list[str]:
        return sorted({e.model for e in self.evaluations})

    @property
    def datasets(self) -> list[str]:
        return sorted({e.dataset for e in self.evaluations})

    def pairs(self) -> list[tuple[str, str]]:
        """Every evaluated (model, dataset)."""
        return sorted({(e.model, e.dataset) for e in self.evaluations})

    def rel(self, path: Path | str) -> str:
        try:
            return str(Path(path).resolve().relative_to(self.results_dir.resolve()))
        except ValueError:
            return str(path)


# -- small readers ---------------------------------------------------------------------------------
def _num(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x) if math.isfinite(x) else None


def _int(x: Any) -> int | None:
    return int(x) if isinstance(x, int) and not isinstance(x, bool) else None


def read_json(path: Path, unreadable: list[str]) -> Any | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        unreadable.append(f"{path}: {type(exc).__name__}: {exc}")
        return None


def list_runs(results_dir: str | Path) -> list[str]:
    """Run ids under <results>/evaluations (folders holding a manifest or aggregate files)."""
    base = Path(results_dir) / EVALUATIONS
    if not base.is_dir():
        return []
    runs = []
    for p in sorted(base.iterdir()):
        if not p.is_dir() or p.name in NOT_RUNS or p.name.startswith("."):
            continue
        if (p / "manifest.json").is_file() or any(p.glob("*/*/*.json")):
            runs.append(p.name)
    return runs


def _evaluation(data: dict[str, Any], path: Path, run_id: str) -> Evaluation | None:
    metrics_raw = data.get("metrics")
    if not isinstance(metrics_raw, dict) or "dataset" not in data:
        return None
    metrics = {str(k): Metric.from_dict(v) for k, v in metrics_raw.items()
               if isinstance(v, dict) and "value" in v}
    task = data.get("task") if isinstance(data.get("task"), dict) else {}
    options = data.get("options") if isinstance(data.get("options"), dict) else {}
    judge = data.get("judge") if isinstance(data.get("judge"), dict) else {}
    return Evaluation(
        model=str(data.get("model", path.parent.parent.name)),
        preset=str(data.get("preset", path.parent.name)),
        dataset=str(data["dataset"]),
        run_id=str(data.get("run_id") or run_id),
        metrics=metrics,
        path=path,
        backend=data.get("backend"),
        n_samples=_int(data.get("n_samples")),
        n_errors=_int(data.get("n_errors")),
        error_rate=_num(data.get("error_rate")),
        n_shot=_int(task.get("n_shot")),
        isolation=task.get("isolation") if isinstance(task.get("isolation"), str) else None,
        chat=options.get("chat") if isinstance(options.get("chat"), bool) else None,
        thinking=options.get("enable_thinking") if isinstance(options.get("enable_thinking"), bool) else None,
        sample_limit=_int(data.get("sample_limit")),
        judge=judge.get("model") if isinstance(judge.get("model"), str) else None,
        finished_at=str(data["finished_at"]) if data.get("finished_at") else None,
        load_format=_engine_load_format(data),
        protocol=task.get("protocol") if isinstance(task.get("protocol"), str) else None,
    )


def _engine_load_format(data: dict[str, Any]) -> str | None:
    engine = data.get("engine") if isinstance(data.get("engine"), dict) else {}
    extra = engine.get("extra") if isinstance(engine.get("extra"), dict) else {}
    value = extra.get("load_format")
    return value if isinstance(value, str) else None


def read_evaluations(results_dir: str | Path, run_id: str | None, unreadable: list[str]) -> list[Evaluation]:
    """The aggregates of `run_id`, or the newest one per (model, preset, dataset) over all runs."""
    base = Path(results_dir) / EVALUATIONS
    runs = [run_id] if run_id else list_runs(results_dir)
    found: list[Evaluation] = []
    for run in runs:
        for path in sorted((base / run).glob("*/*/*.json")):
            if path.name.startswith(".") or path.parent.parent.name == "cache":
                continue
            data = read_json(path, unreadable)
            if not isinstance(data, dict):
                continue
            ev = _evaluation(data, path, run)
            if ev is not None:
                found.append(ev)
    newest = newest_per_key(found, lambda e: (e.model, e.preset, e.dataset), lambda e: e.finished_at or "")
    return sorted(newest.values(), key=lambda e: (e.model, e.preset, e.dataset))


def read_coverage(results_dir: str | Path, unreadable: list[str]) -> list[dict[str, Any]]:
    """Milestone-2 entries: the coverage latest_summary's configs, else every run file's entries
    (newest per configuration key)."""
    folder = Path(results_dir) / EVALUATIONS / COVERAGE_DIR
    summary = read_json(folder / "latest_summary.json", unreadable)
    if isinstance(summary, dict) and isinstance(summary.get("configs"), dict):
        return [dict(v, key=k) for k, v in sorted(summary["configs"].items()) if isinstance(v, dict)]
    found: list[dict[str, Any]] = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        if path.name == "latest_summary.json":
            continue
        data = read_json(path, unreadable)
        found += [e for e in ((data or {}).get("entries", []) if isinstance(data, dict) else [])
                  if isinstance(e, dict) and e.get("key")]
    entries = newest_per_key(found, lambda e: e["key"], lambda e: e.get("timestamp") or 0)
    return [entries[k] for k in sorted(entries)]


def read_benchmarks(results_dir: str | Path, unreadable: list[str]) -> list[dict[str, Any]]:
    """Newest benchmark file per (model, preset, backend); each dict gains `_path`."""
    base = Path(results_dir) / "benchmarks"
    found: list[dict[str, Any]] = []
    for path in sorted(base.glob("*/*/*/*.json")) if base.is_dir() else []:
        data = read_json(path, unreadable)
        if isinstance(data, dict) and "model" in data:
            found.append({**data, "_path": str(path)})
    newest = newest_per_key(
        found, lambda d: (str(d["model"]), str(d.get("preset", Path(d["_path"]).parent.name)),
                          str(d.get("backend", Path(d["_path"]).stem))),
        lambda d: str(d.get("updated") or d.get("created") or ""))
    return [newest[k] for k in sorted(newest)]


def read_gates(results_dir: str | Path, unreadable: list[str], sub: str | None = None) -> dict[str, dict[str, Any]]:
    """gates/<milestone>.json (the verdicts), or with `sub` a folder under gates/ (partial runs)."""
    folder = Path(results_dir) / GATES_DIR / (sub or "")
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        data = read_json(path, unreadable)
        if isinstance(data, dict):
            out[path.stem] = data
    return out


def collect(results_dir: str | Path = "results", run_id: str | None = None) -> ResultsSnapshot:
    """Everything stored under `results_dir`. `run_id` restricts the evaluations to one run; an unknown
    run raises HarnessError naming the runs that exist."""
    root = Path(results_dir)
    runs = list_runs(root)
    if run_id is not None and run_id not in runs:
        have = ", ".join(runs) if runs else "none"
        raise HarnessError(f"no run '{run_id}' under {root / EVALUATIONS} (runs stored: {have})",
                           "pass one of the stored run ids to --run-id, or omit --run-id to use the newest results")
    unreadable: list[str] = []
    evaluations = read_evaluations(root, run_id, unreadable)
    manifests: dict[str, dict[str, Any]] = {}
    for run in sorted({e.run_id for e in evaluations} | ({run_id} if run_id else set())):
        m = read_json(root / EVALUATIONS / run / "manifest.json", unreadable)
        if isinstance(m, dict):
            manifests[run] = m
    comparisons = []
    comp_dir = root / "comparisons"
    for path in sorted(comp_dir.glob("*_comparison.json")) if comp_dir.is_dir() else []:
        data = read_json(path, unreadable)
        if isinstance(data, dict):
            comparisons.append({**data, "_path": str(path)})
    matrix = read_json(comp_dir / "performance_matrix.json", unreadable)
    insights = read_json(comp_dir / "scaling_insights.json", unreadable)
    latest = read_json(root / "latest_summary.json", unreadable)
    comprehensive = read_json(root / "comprehensive_summary.json", unreadable)
    return ResultsSnapshot(
        results_dir=root, run_id=run_id, runs=runs, evaluations=evaluations, manifests=manifests,
        latest_summary=latest if isinstance(latest, dict) else None,
        comprehensive_summary=comprehensive if isinstance(comprehensive, dict) else None,
        coverage=read_coverage(root, unreadable), benchmarks=read_benchmarks(root, unreadable),
        comparisons=comparisons, matrix=matrix if isinstance(matrix, dict) else None,
        insights=insights if isinstance(insights, dict) else None, gates=read_gates(root, unreadable),
        unreadable=unreadable, partial_gates=read_gates(root, unreadable, PARTIAL_GATES_DIR),
    )


# -- figures read from a benchmark file (None when absent) -------------------------------------------
def dig(data: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(k)
    return data


def bench_figures(b: dict[str, Any]) -> dict[str, float | None]:
    """The headline numbers of one benchmark file."""
    return {
        "output_tokens_per_s": _num(dig(b, "throughput", "random", "output_tokens_per_s")),
        "requests_per_s": _num(dig(b, "throughput", "random", "requests_per_s")),
        "total_tokens_per_s": _num(dig(b, "throughput", "random", "total_tokens_per_s")),
        "latency_b1_p50_s": _num(dig(b, "latency", "batch_1", "latency_s", "p50")),
        "latency_b1_p99_s": _num(dig(b, "latency", "batch_1", "latency_s", "p99")),
        "ttft_b1_p50_s": _num(dig(b, "latency", "batch_1", "ttft_s", "p50")),
        "peak_bytes": _num(dig(b, "memory", "peak_bytes")),
        "host_rss_peak_bytes": _num(dig(b, "memory", "host_rss_peak_bytes")),
        "weight_bytes": _num(dig(b, "memory", "weight_bytes")),
        "kv_cache_bytes": _num(dig(b, "memory", "kv_cache_bytes")),
        "overhead_ratio": _num(dig(b, "overhead", "ratio")),
        "bandwidth_fraction": _num(dig(b, "physical_bound", "fraction")),
        # spread over rounds / repetitions: min, max and (max - min) / median (None in older files)
        "output_tokens_per_s_min": _num(dig(b, "throughput", "random", "spread", "min")),
        "output_tokens_per_s_max": _num(dig(b, "throughput", "random", "spread", "max")),
        "output_tokens_per_s_rounds": _int(dig(b, "throughput", "random", "spread", "n")),
        "overhead_ratio_min": _num(dig(b, "overhead", "spread", "min")),
        "overhead_ratio_max": _num(dig(b, "overhead", "spread", "max")),
        "overhead_reps": _int(dig(b, "overhead", "spread", "n")),
    }


@functools.lru_cache(maxsize=None)
def parameter_count(model: str) -> int | None:
    """The registry's parameter count for a model name, or None for a name it does not know."""
    try:
        from ..models import get_model_spec

        return get_model_spec(model).parameter_count()
    except Exception:  # noqa: BLE001 - unknown or unreachable model: no count
        return None


def weights_kind(model: str) -> str:
    """"random" (chance-level by construction), "real", or "unknown" (a model that no longer resolves)."""
    try:
        from ..models import get_model_spec

        return "random" if get_model_spec(model).random_weights else "real"
    except Exception:  # noqa: BLE001 - a report never fails on a model it cannot resolve
        return "unknown"
