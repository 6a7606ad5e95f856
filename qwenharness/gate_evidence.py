"""What each milestone gate judged, and the one rule for what later gates and reports may read (issue 14).

A gate test names the stored results it checked (`GateEvidence.add`, attached to its pytest report as a
user property, so it reaches the controller under pytest-xdist too). The gate recorder writes them into
gates/<milestone>.json beside the verdict, with the run id of the session:

    "run_id": "pytest",
    "evidence": {"evaluations": ["tiny/balanced/arc_easy", ...], "benchmarks": ["tiny/balanced/vllm", ...]}

Milestones 4 and 5 and the session's reports then read one run (`--run-id`, default `pytest`) and,
inside it, only what an earlier gate's verdict vouched for (`read_scope`): a result another run wrote,
or one left in the run by an older session that no verdict judged, is never used, and a missing or
foreign verdict fails with a message that says which gate to run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .errors import HarnessError

EVIDENCE_PROPERTY = "qwenharness_evidence"  # the user_properties name a gate test's report carries
KINDS = ("evaluations", "benchmarks")
Key = tuple[str, str, str]  # (model, preset, dataset) or (model, preset, backend)


def key_text(model: str, preset: str, third: str) -> str:
    return f"{model}/{preset}/{third}"


def parse_key(text: str) -> Key | None:
    """'model/preset/third' -> tuple; a model name may itself hold a '/' (a Hub id)."""
    parts = text.rsplit("/", 2)
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 and all(parts) else None


class _HasUserProperties(Protocol):
    user_properties: list[tuple[str, object]]


@dataclass
class GateEvidence:
    """Handed to a gate test (the `gate_evidence` fixture): what it adds travels on its report."""

    node: _HasUserProperties
    run_id: str

    def add(self, kind: str, model: str, preset: str, third: str) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown evidence kind {kind!r} (one of {', '.join(KINDS)})")
        self.node.user_properties.append(
            (EVIDENCE_PROPERTY, {"kind": kind, "run_id": self.run_id, "key": key_text(model, preset, third)}))

    def add_all(self, kind: str, keys: Iterable[Key]) -> None:
        for k in keys:
            self.add(kind, *k)


def evidence_of(user_properties: Iterable[tuple[str, object]]) -> list[dict[str, str]]:
    """The evidence entries among a report's user properties."""
    return [v for name, v in user_properties
            if name == EVIDENCE_PROPERTY and isinstance(v, dict) and v.get("kind") in KINDS]


@dataclass(frozen=True)
class EvidenceScope:
    """One run, and inside it the results the named gate verdicts judged."""

    run_id: str
    evaluations: frozenset[Key]
    benchmarks: frozenset[Key]  # what milestone 4 used (a record; reports show every benchmark of the run)
    sources: tuple[str, ...]  # the gate files it was read from
    coverage: dict[str, list[str]] = field(default_factory=dict)  # milestone 2's models/presets/backends

    def admits_evaluation(self, model: str, preset: str, dataset: str) -> bool:
        return (model, preset, dataset) in self.evaluations

    def admits_coverage(self, entry: dict[str, Any]) -> bool:
        if entry.get("run_id") not in (None, self.run_id):
            return False
        return all(not self.coverage.get(k) or entry.get(f) in self.coverage[k]
                   for k, f in (("models", "model"), ("presets", "preset"), ("backends", "backend")))


def _read_gate(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_scope(results_dir: str | Path, run_id: str, milestones: Sequence[str],
               coverage_from: str | None = "milestone2") -> EvidenceScope:
    """The union of the evidence that `milestones`' gate files record for `run_id`. HarnessError when a
    gate file is missing, records no evidence (written before evidence was recorded) or judged another
    run: the message names the file and the command that records it. Verdicts themselves are
    verify.verify_gates' to check."""
    root = Path(results_dir)
    found: dict[str, set[Key]] = {k: set() for k in KINDS}
    sources = []
    for m in milestones:
        path = root / "gates" / f"{m}.json"
        gate = _read_gate(path)
        rerun = f"run `pytest -m {m} --results-dir {root} --run-id {run_id}`"
        if gate is None:
            raise HarnessError(f"{path} is missing or unreadable: no {m} verdict says which results it judged", rerun)
        if not isinstance(gate.get("evidence"), dict):
            raise HarnessError(f"{path} records no evidence (which results {m} judged): it was written by an "
                               "older qwenharness or by a session that judged nothing", rerun)
        if gate.get("run_id") != run_id:
            raise HarnessError(f"{path} judged run '{gate.get('run_id')}', but this session reads run '{run_id}'",
                               f"{rerun}, or pass --run-id {gate.get('run_id')}")
        for kind in KINDS:
            for text in gate["evidence"].get(kind) or []:
                k = parse_key(str(text))
                if k is not None:
                    found[kind].add(k)
        sources.append(str(Path("gates") / path.name))
    coverage: dict[str, list[str]] = {}
    cov_gate = _read_gate(root / "gates" / f"{coverage_from}.json") if coverage_from else None
    if cov_gate is not None and cov_gate.get("run_id") == run_id and isinstance(cov_gate.get("coverage"), dict):
        coverage = {k: [str(x) for x in cov_gate["coverage"].get(k) or []] for k in ("models", "presets", "backends")}
    return EvidenceScope(run_id, frozenset(found["evaluations"]), frozenset(found["benchmarks"]), tuple(sources),
                         coverage)
