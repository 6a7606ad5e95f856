"""Verify stored results before a gate or a report uses them (issue 12).

A gate that trusts an aggregate file can be fooled by an edited, truncated or deleted file. These
checks recompute every aggregate from its per-sample records with the task's own `aggregate`, check
each metric against its range, look for aggregates that should exist (a samples file, a manifest
entry or a summary line names them) and check the milestone gate files a gate builds on.

Every function returns a list of problems, one line each, naming the file: empty means verified.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .results_query import parse_stamp

EVALUATIONS = "evaluations"
NOT_RUNS = {"model_coverage"}
SAMPLES_SUFFIX = ".samples.jsonl"
SUMMARIES = ("comprehensive_summary.json", "latest_summary.json")
GATE_SESSION_ENV = "QWENHARNESS_GATE_SESSION"  # set by the gate recorder: the current pytest session
REL_TOL, ABS_TOL = 1e-9, 1e-12


def _close(stored: Any, recomputed: Any) -> bool:
    """Stored JSON value equals a recomputed one (NaN is stored as null)."""
    if isinstance(recomputed, float) and not math.isfinite(recomputed):
        return stored is None
    if isinstance(stored, bool) or isinstance(recomputed, bool):
        return stored == recomputed
    if isinstance(stored, (int, float)) and isinstance(recomputed, (int, float)):
        return math.isclose(float(stored), float(recomputed), rel_tol=REL_TOL, abs_tol=ABS_TOL)
    if isinstance(stored, list) and isinstance(recomputed, (list, tuple)):
        return len(stored) == len(recomputed) and all(_close(a, b) for a, b in zip(stored, recomputed))
    return stored == recomputed


def _rel(path: Path, root: Path | None) -> str:
    if root is None:
        return str(path)
    try:
        return str(path.resolve().relative_to(root.resolve().parent))
    except ValueError:
        return str(path)


def samples_path_of(aggregate_path: Path) -> Path:
    return aggregate_path.with_name(aggregate_path.stem + SAMPLES_SUFFIX)


def _load_records(path: Path) -> list[Any]:
    from .results import read_jsonl, record_from_dict

    return [record_from_dict(row) for row in read_jsonl(path)]


def verify_aggregate(path: Path, root: Path | None = None) -> list[str]:
    """Recompute one aggregate from its samples file; problems name the file and the field."""
    from .errors import HarnessError
    from .tasks import get_task

    name = _rel(path, root)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return [f"{name}: aggregate is missing"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return [f"{name}: aggregate does not parse ({type(exc).__name__}: {exc})"]
    if not isinstance(data, dict) or not isinstance(data.get("metrics"), dict):
        return [f"{name}: aggregate has no 'metrics' object"]
    dataset = str(data.get("dataset") or path.stem)
    try:
        task = get_task(dataset)
    except HarnessError:
        return [f"{name}: unknown dataset '{dataset}', its metrics cannot be recomputed"]
    problems: list[str] = []
    # bounds first: an out-of-range value is wrong whatever the samples say
    for metric, m in data["metrics"].items():
        if not isinstance(m, dict):
            problems.append(f"{name}: metric {metric} is not an object")
            continue
        value, lo_hi = m.get("value"), task.metric_range(metric)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value) or not lo_hi[0] <= value <= lo_hi[1]):
            problems.append(f"{name}: {metric} = {value!r} is outside its range [{lo_hi[0]:g}, {lo_hi[1]:g}]")
        se = m.get("stderr")
        if se is not None and (not isinstance(se, (int, float)) or se < 0):
            problems.append(f"{name}: {metric} stderr = {se!r} is negative or not a number")
    rate = data.get("error_rate")
    if rate is not None and (not isinstance(rate, (int, float)) or not 0 <= rate <= 1):
        problems.append(f"{name}: error_rate = {rate!r} is outside [0, 1]")
    samples = samples_path_of(path)
    if not samples.is_file():
        return problems + [f"{_rel(samples, root)}: per-sample records are missing, so {name} cannot be verified"]
    try:
        records = _load_records(samples)
    except (HarnessError, TypeError, ValueError) as exc:
        return problems + [f"{_rel(samples, root)}: per-sample records do not parse ({exc})"]
    unique: dict[str, Any] = {}
    for r in records:
        unique.setdefault(str(r.doc_id), r)  # the runner keeps the first record of a document
    records = list(unique.values())
    good = [r for r in records if r.error is None]
    if data.get("n_samples") != len(records):
        problems.append(f"{name}: n_samples = {data.get('n_samples')!r}, {_rel(samples, root)} holds "
                        f"{len(records)} documents")
    if data.get("n_errors") != len(records) - len(good):
        problems.append(f"{name}: n_errors = {data.get('n_errors')!r}, the records hold {len(records) - len(good)}")
    try:
        again = task.aggregate(good) if good else {}
    except Exception as exc:  # noqa: BLE001 - a record the task cannot read is a corrupt record
        return problems + [f"{_rel(samples, root)}: the records cannot be aggregated ({type(exc).__name__}: {exc})"]
    for metric, m in again.items():
        stored = data["metrics"].get(metric)
        if not isinstance(stored, dict):
            problems.append(f"{name}: metric {metric} is missing (the records give {m.get('value')!r})")
            continue
        for field in ("value", "n", "stderr", "ci95"):
            if field in m and (field in stored or field != "ci95") and not _close(stored.get(field), m[field]):
                problems.append(f"{name}: {metric}.{field} = {stored.get(field)!r}, recomputed from "
                                f"{_rel(samples, root)}: {m[field]!r}")
    for metric in set(data["metrics"]) - set(again):
        problems.append(f"{name}: metric {metric} does not follow from the records")
    if "groups" in data or "subtasks" in data:
        problems += _verify_groups(name, data, task, records, dataset)
    return problems


def _verify_groups(name: str, data: dict[str, Any], task: Any, records: list[Any], dataset: str) -> list[str]:
    """The subtask and group means (grouping.py) recomputed from the records' subtask names."""
    from .data.subsets import parse_selection
    from .errors import HarnessError
    from .grouping import SUBTASK_KEY, group_aggregates

    names = [r.extra.get(SUBTASK_KEY) if isinstance(r.extra, dict) else None for r in records]
    if any(n is None for n in names):  # records written before they named their subtask (a resumed run)
        return []
    try:
        again = group_aggregates(task, parse_selection(str((data.get("selection") or {}).get("name") or dataset)),
                                 records, names) or {}
    except HarnessError as exc:
        return [f"{name}: its subtasks cannot be recomputed ({exc})"]
    stored, fresh = _leaves({k: data.get(k) for k in again}), _leaves(again)
    return [f"{name}: {path} = {stored.get(path)!r}, recomputed from the records: {v!r}"
            for path, v in fresh.items() if not _close(stored.get(path), v)] + [
            f"{name}: {path} does not follow from the records" for path in set(stored) - set(fresh)]


def _leaves(tree: Any, prefix: str = "") -> dict[str, Any]:
    """A nested aggregate block as {"groups.stem.metrics.acc.macro.value": 0.25, ...}."""
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(_leaves(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: tree}


def _run_dirs(results_dir: Path, run_id: str | None = None) -> list[Path]:
    base = results_dir / EVALUATIONS
    if not base.is_dir():
        return []
    return [p for p in sorted(base.iterdir()) if p.is_dir() and p.name not in NOT_RUNS and not p.name.startswith(".")
            and (run_id is None or p.name == run_id)]


def _in_run(path: Path, results_dir: Path, run_id: str | None) -> bool:
    return run_id is None or path.parent.parent.parent == results_dir / EVALUATIONS / run_id


def _aggregate_files(run: Path) -> list[Path]:
    return [p for p in sorted(run.glob("*/*/*.json")) if not p.name.startswith(".") and p.parent.parent.name != "cache"]


def expected_aggregates(results_dir: Path, run_id: str | None = None) -> dict[Path, str]:
    """Aggregates some stored file says exist (in run `run_id`, or any) -> which file says so (samples,
    manifests, summaries)."""
    out: dict[Path, str] = {}
    for run in _run_dirs(results_dir, run_id):
        for samples in sorted(run.glob(f"*/*/*{SAMPLES_SUFFIX}")):
            out.setdefault(samples.with_name(samples.name[: -len(SAMPLES_SUFFIX)] + ".json"), _rel(samples, results_dir))
        manifest = run / "manifest.json"
        try:
            m = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        for inv in m.get("invocations") or [] if isinstance(m, dict) else []:
            for w in inv.get("wrote") or [] if isinstance(inv, dict) else []:
                if isinstance(w, dict) and isinstance(w.get("aggregate"), str):
                    out.setdefault(run / w["aggregate"], _rel(manifest, results_dir))
    for _name, path, _key, entry_agg, _entry in summary_entries(results_dir):
        if _in_run(entry_agg, results_dir, run_id):
            out.setdefault(entry_agg, _rel(path, results_dir))
    return out


def summary_entries(results_dir: Path) -> Iterator[tuple[str, Path, tuple[str, str, str], Path, dict[str, Any]]]:
    """(summary name, its path, (model, preset, dataset), the aggregate it was made from, the entry) for
    every entry with a run id in the run summaries; unreadable summaries and malformed entries are skipped."""
    for name in SUMMARIES:
        path = results_dir / name
        try:
            s = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        results = s.get("results") if isinstance(s, dict) else None
        for model, presets in results.items() if isinstance(results, dict) else []:
            for preset, datasets in presets.items() if isinstance(presets, dict) else []:
                for dataset, entry in datasets.items() if isinstance(datasets, dict) else []:
                    run_id = entry.get("run_id") if isinstance(entry, dict) else None
                    if run_id:
                        folder = results_dir / EVALUATIONS / str(run_id) / model.replace("/", "__") / preset
                        yield name, path, (model, preset, dataset), folder / f"{dataset}.json", entry


def missing_aggregates(results_dir: str | Path, models: Iterable[str] | None = None,
                       run_id: str | None = None) -> list[str]:
    """Aggregates that a samples file, manifest or summary names but that do not exist. A gate that would
    produce missing results itself checks this first: a deleted aggregate is a fault, not a gap."""
    root = Path(results_dir)
    wanted = None if models is None else {m.replace("/", "__") for m in models}
    return [f"{_rel(path, root)}: aggregate is missing ({named_by} names it)"
            for path, named_by in sorted(expected_aggregates(root, run_id).items())
            if (wanted is None or path.parent.parent.name in wanted) and not path.is_file()]


def _summary_disagreements(results_dir: Path, run_id: str | None = None) -> list[str]:
    """Summary lines (of run `run_id`, or any) whose metrics differ from the aggregate they were made from."""
    problems = []
    for name, _path, (model, preset, dataset), agg, entry in summary_entries(results_dir):
        if not _in_run(agg, results_dir, run_id):
            continue
        try:
            stored = json.loads(agg.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # reported as missing or unparseable by the aggregate checks
        if entry.get("metrics") != stored.get("metrics"):
            problems.append(f"{name}: {model}/{preset}/{dataset} metrics differ from {_rel(agg, results_dir)}")
    return problems


def verify_results(results_dir: str | Path, models: Iterable[str] | None = None,
                   run_id: str | None = None) -> list[str]:
    """Every stored aggregate (of `models`, or all; of run `run_id`, or every run) recomputes from its
    records; every aggregate that a samples file, manifest or summary names exists; the summaries agree
    with the aggregates."""
    root = Path(results_dir)
    wanted = set(models) if models is not None else None

    def selected(path: Path) -> bool:
        return wanted is None or path.parent.parent.name in {m.replace("/", "__") for m in wanted}

    problems: list[str] = []
    present = [p for run in _run_dirs(root, run_id) for p in _aggregate_files(run) if selected(p)]
    for path in present:
        problems += verify_aggregate(path, root)
    problems += missing_aggregates(root, models if wanted is None else sorted(wanted), run_id=run_id)
    problems += [p for p in _summary_disagreements(root, run_id)
                 if wanted is None or any(f": {m}/" in p for m in wanted)]
    return list(dict.fromkeys(problems))


# -- gate files -----------------------------------------------------------------------------------------
ACCEPTED = {"passed", "partial"}


def verify_gates(results_dir: str | Path, milestones: Iterable[str], session: str | None = None) -> list[str]:
    """The gate file of each milestone exists and records a verdict that is not a failure. A gate still
    'running' is accepted only when it belongs to this pytest session (`session`, by default the one
    the gate recorder published in QWENHARNESS_GATE_SESSION)."""
    session = session or os.environ.get(GATE_SESSION_ENV)
    root = Path(results_dir)
    problems = []
    for m in milestones:
        path = root / "gates" / f"{m}.json"
        name = _rel(path, root)
        try:
            g = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            problems.append(f"{name} is missing: {m} has recorded no verdict on these results (run `pytest -m {m}`)")
            continue
        except (OSError, ValueError) as exc:
            problems.append(f"{name} does not parse ({exc})")
            continue
        status = g.get("status") if isinstance(g, dict) else None
        if status == "running" and session and g.get("session") == session:
            continue
        if status not in ACCEPTED:
            why = {"running": "its session ended without a verdict", "failed": "it failed",
                   "skipped": "every test of it was skipped"}.get(str(status), "it did not pass")
            problems.append(f"{name}: status {status!r} ({why}; failures: {g.get('failures') or 'none'})")
        elif m == "milestone3":
            problems += _evaluations_after(root, g, name)
    return problems


def _judged_files(root: Path, gate: dict[str, Any]) -> list[Path]:
    """The aggregates a milestone-3 gate file judged: its evidence (gate_evidence.py) in its run; for a
    file written before evidence was recorded, every aggregate of its run (or of every run)."""
    from .gate_evidence import parse_key

    run = gate.get("run_id")
    evidence = gate.get("evidence") if isinstance(gate.get("evidence"), dict) else None
    if isinstance(run, str) and evidence is not None:
        keys = [parse_key(str(k)) for k in evidence.get("evaluations") or []]
        return [root / EVALUATIONS / run / m.replace("/", "__") / p / f"{d}.json" for (m, p, d) in filter(None, keys)]
    pattern = f"{run}/*/*/*.json" if isinstance(run, str) else "*/*/*/*.json"
    return sorted((root / EVALUATIONS).glob(pattern))


def _evaluations_after(root: Path, gate: dict[str, Any], name: str) -> list[str]:
    """A milestone-3 verdict from an earlier session vouches only for the evaluations it saw: an
    aggregate it judged that was rewritten after it is stale evidence for that verdict (the gate must be
    run again). Aggregates it did not judge (another run, other models) are not its concern."""
    verdict_at = gate.get("finished_at")
    verdict = parse_stamp(verdict_at)
    if verdict is None:
        return [f"{name} records no finished_at, so the evaluations it judged cannot be told from later ones"]
    later = []
    for path in sorted(_judged_files(root, gate)):
        try:
            written = parse_stamp(json.loads(path.read_text(encoding="utf-8")).get("finished_at"))
        except (OSError, ValueError, AttributeError):
            continue  # unreadable aggregates are verify_results' to report
        if written is not None and written > verdict:
            later.append(_rel(path, root))
    if not later:
        return []
    more = f" (and {len(later) - 1} more)" if len(later) > 1 else ""
    return [f"{later[0]}{more} was written after {name}'s verdict ({verdict_at}): milestone 3 has not judged it; "
            "run `pytest -m milestone3` on these results"]
