"""Which stored results a gate, or a pytest session's reports, may read (issue 14).

`gated_snapshot`: one run, narrowed to what the gate files' evidence says the milestone-3 and -4
verdicts judged (qwenharness/gate_evidence.py); milestone 5 reads it strictly. `session_snapshot`:
what the session's reports show, the same plus what the session itself wrote into other runs.
`collect` (report/collect.py) stays the reader of everything stored, for `qwenharness report`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import HarnessError
from ..gate_evidence import EvidenceScope, read_scope
from ..results_query import parse_stamp
from .collect import EVALUATIONS, Evaluation, ResultsSnapshot, collect, list_runs, read_evaluations, read_json


def narrow(snapshot: ResultsSnapshot, scope: EvidenceScope | None) -> ResultsSnapshot:
    """A snapshot of one run (collected with its run id) narrowed to the run's own benchmarks and
    coverage entries and, with `scope`, to the evaluations its gate verdicts judged and the coverage
    entries of milestone 2's selection; `left_out` names the evaluations dropped."""
    run_id = snapshot.run_id
    if run_id is None:
        raise ValueError("narrow() needs a snapshot of one run: collect(results_dir, run_id)")

    def bench_run(b: dict[str, Any]) -> str | None:
        parts = Path(str(b.get("_path", ""))).parts
        return parts[-4] if len(parts) >= 4 else None

    def judged(e: Evaluation) -> bool:
        return scope is None or scope.admits_evaluation(e.model, e.preset, e.dataset)

    return replace(snapshot, evaluations=[e for e in snapshot.evaluations if judged(e)], scope=scope,
                   left_out=[f"{snapshot.rel(e.path)} (no gate verdict judged it)" for e in snapshot.evaluations
                             if not judged(e)],
                   benchmarks=[b for b in snapshot.benchmarks if bench_run(b) == run_id],
                   coverage=[c for c in snapshot.coverage if c.get("run_id") in (None, run_id)
                             and (scope is None or scope.admits_coverage(c))])


def gated_snapshot(results_dir: str | Path, run_id: str, milestones: tuple[str, ...] = ("milestone3", "milestone4"),
                   strict: bool = True) -> ResultsSnapshot:
    """What a gate or a session's report may read (gate_evidence.py): run `run_id`, narrowed to what
    `milestones`' gate files judged. `strict` (milestone 5): a missing run, or a gate file that is missing,
    judged another run or records no evidence, raises HarnessError naming the gate to run. Otherwise (the
    reports at session end) the gate files that do record evidence for the run are used, and where none
    does, the whole run is shown; with no such run, no evaluation is."""
    root = Path(results_dir)
    if run_id not in list_runs(root):
        if strict:
            collect(root, run_id)  # raises, naming the runs stored
        return narrow(replace(collect(root), run_id=run_id, evaluations=[], manifests={}), None)
    snapshot = collect(root, run_id)
    if strict:
        return narrow(snapshot, read_scope(root, run_id, milestones))
    usable = []
    for m in milestones:
        try:
            read_scope(root, run_id, [m], coverage_from=None)
            usable.append(m)
        except HarnessError:
            continue
    return narrow(snapshot, read_scope(root, run_id, usable) if usable else None)


def session_snapshot(results_dir: str | Path, run_id: str, started_at: str) -> ResultsSnapshot:
    """What a pytest session's reports show: its run as the gates may read it (`gated_snapshot`,
    not strict), plus the evaluations the session itself wrote into other runs since `started_at`
    (tests/real's reference run); for a key the gated run holds, the gated result is the one shown."""
    root = Path(results_dir)
    s = gated_snapshot(root, run_id, strict=False)
    since = parse_stamp(started_at)
    if since is None:
        return s
    have = {(e.model, e.preset, e.dataset) for e in s.evaluations}
    extra: list[Evaluation] = []
    for run in list_runs(root):
        if run == run_id:
            continue
        for e in read_evaluations(root, run, s.unreadable):
            written = parse_stamp(e.finished_at)
            if written is not None and written >= since and (e.model, e.preset, e.dataset) not in have:
                extra.append(e)
    if not extra:
        return s
    runs = sorted({e.run_id for e in extra})
    manifests = dict(s.manifests)
    for run in runs:
        m = read_json(root / EVALUATIONS / run / "manifest.json", s.unreadable)
        if isinstance(m, dict):
            manifests[run] = m
    return replace(s, evaluations=sorted(s.evaluations + extra, key=lambda e: (e.model, e.preset, e.dataset, e.run_id)),
                   manifests=manifests, session_runs=runs)
