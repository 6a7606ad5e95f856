"""Milestone 3: every selected model x dataset evaluates end to end and leaves parseable results.

Defaults on CPU: `tiny` x all 14 datasets, 5 samples each (`--sample-limit` overrides), on the first
selected backend, preset `balanced` (or the first selected preset). Results go to
<results-dir>/evaluations/<run-id> (default results/evaluations/pytest); the session's engine pool
keeps one engine alive across datasets, and on a GPU a model's datasets are evaluated together by
its first test (qwenharness/gate_evaluations.py). The error budget comes from
qwenharness/config/gates.toml.
Each test names the aggregate it judged (`gate_evidence`): milestones 4 and 5 read only those.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from qwenharness.data import load_docs
from qwenharness.evaluation import error_budget
from qwenharness.report.tables import not_scored_reason
from qwenharness.results import read_jsonl, resolve_run_paths
from qwenharness.tasks import get_task

pytestmark = pytest.mark.milestone3

JUDGED_METRIC_PREFIX = "score"  # MT-Bench scores may be empty when the judge never gives a rating


def _read_json(path: Path) -> dict:
    assert path.is_file(), f"{path} was not written"
    return json.loads(path.read_text())


def test_dataset_evaluation(harness, gate_evaluations, gate_evidence, model_name: str, dataset_name: str) -> None:
    settings, result = gate_evaluations.evaluate(model_name, dataset_name)
    gate_evidence.add_all("evaluations", [(result.model, result.preset, result.dataset)])  # judged, pass or fail
    assert result.ok, f"{model_name}/{dataset_name} failed: {result.error}"
    wanted = harness.doc_ids.for_dataset(dataset_name)
    limit = settings.limit_for(dataset_name)
    preset = settings.presets[0]
    paths = resolve_run_paths(harness.results_dir, harness.run_id)

    # every sample produced exactly one record
    expected = list(wanted) if wanted else [
        d.id for d in load_docs(dataset_name, limit, settings.seed, data_dir=harness.data_dir)]
    run_dir = paths.run_dir
    samples = read_jsonl(run_dir / model_name / preset / f"{dataset_name}.samples.jsonl")
    ids = [s["doc_id"] for s in samples]
    assert sorted(ids) == sorted(expected), "one record per selected sample, none missing or duplicated"

    # aggregate: counts, error budget, metric ranges
    agg = _read_json(run_dir / model_name / preset / f"{dataset_name}.json")
    assert agg["n_samples"] == len(expected)
    assert agg["n_errors"] == sum(1 for s in samples if s.get("error"))
    budget = error_budget()
    assert agg["error_rate"] <= budget, (
        f"{agg['n_errors']}/{agg['n_samples']} samples failed (budget {budget:.0%}): {agg['error_examples']}")
    task = get_task(dataset_name)
    assert agg["metrics"], "no metrics were computed"
    for name, m in agg["metrics"].items():
        value = m["value"]
        if value is None or (isinstance(value, float) and math.isnan(value)):
            assert m["n"] == 0, f"{name} has {m['n']} values but no mean"
            assert task.output_type == "multi_turn" and name.startswith(JUDGED_METRIC_PREFIX), (
                f"{name} has no value: every sample it covers failed")
            continue
        lo, hi = task.metric_range(name)
        assert lo <= value <= hi, f"{name} = {value} is outside [{lo}, {hi}]"
        assert m["n"] > 0 and m["stderr"] is not None and m["stderr"] >= 0
    if task.output_type == "multi_turn":
        assert agg["metrics"]["judge_parse_failure_rate"]["n"] > 0, "the judge's verdicts must be counted"
        assert agg["judge"]["max_tokens"] == settings.judge_max_tokens, "the judge's length is a setting used"

    # run files
    manifest = _read_json(run_dir / "manifest.json")
    assert manifest["environment"]["versions"]["python"]
    assert f"{model_name}/{preset}" in manifest["resolved_configs"]
    for name in ("latest_summary.json", "comprehensive_summary.json"):
        summary = _read_json(paths.summary_dir / name)
        assert dataset_name in summary["results"][model_name][preset], f"{name} lacks {dataset_name}"
        assert summary["total_evaluations"] >= 1

    # a dataset without its headline metric is not scored: never a pass (the reports say so too)
    reason = not_scored_reason(dataset_name, agg)
    if reason:
        pytest.skip(f"{model_name}/{dataset_name} not scored: {reason}")
