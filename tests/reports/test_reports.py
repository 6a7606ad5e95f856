"""Milestone 5: production readiness of the stored results and the reports built from them.

Runs after milestones 1-4 (pytest.ini's testpaths order). It first verifies the stored results
(qwenharness.verify: every aggregate recomputed from its per-sample records, none missing, the gate
files of milestones 1-4 present and not failed), builds the final Markdown report and the tracker from
them (the files themselves are written once at session end), then checks that the comprehensive summary, the performance matrix,
the scaling insights and the final report exist, parse, cover every evaluated model x dataset and
contain no placeholder text; and that the validator rejects a report with a section removed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from qwenharness.report import published, validate
from qwenharness.report.collect import ResultsSnapshot
from qwenharness.report.scoped import gated_snapshot
from qwenharness.report.html import render_results_fragment
from qwenharness.report.markdown import FINAL_REPORT, SECTIONS, TRACKER, section_text, write_reports
from qwenharness.testing import HarnessOptions

pytestmark = pytest.mark.milestone5
EARLIER_GATES = ("milestone1", "milestone2", "milestone3", "milestone4")  # their gate files must record a verdict
JUDGING_GATES = ("milestone3", "milestone4")  # the evaluations they judged are what this gate reads


@pytest.fixture(scope="module")
def snapshot(harness: HarnessOptions) -> ResultsSnapshot:
    """This session's run (--run-id, default `pytest`), narrowed to what the milestone-3 and -4 gate
    files say they judged; verified before anything is read from it."""
    from qwenharness.errors import HarnessError
    from qwenharness.verify import verify_gates, verify_results

    root = Path(harness.results_dir)
    problems = verify_gates(root, EARLIER_GATES)
    if problems:
        pytest.fail("stored results failed verification:\n" + "\n".join(problems[:40]), pytrace=False)
    try:
        s = gated_snapshot(root, harness.run_id, JUDGING_GATES)
    except HarnessError as exc:
        pytest.fail(f"no results a gate verdict stands behind: {exc}; run the earlier milestones in this run "
                    "first (`pytest -m 'milestone3 or milestone4'`, or plain `pytest`)", pytrace=False)
    if not s.evaluations:
        pytest.fail(f"no evaluation judged by {', '.join(JUDGING_GATES)} under {root.resolve()}/evaluations/"
                    f"{harness.run_id}: run the earlier milestones first (`pytest -m 'milestone3 or milestone4'`, "
                    "or plain `pytest`)", pytrace=False)
    problems = verify_results(root, run_id=harness.run_id)
    if problems:
        pytest.fail("stored results failed verification:\n" + "\n".join(problems[:40]), pytrace=False)
    return s


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory, snapshot: ResultsSnapshot) -> dict[str, Path]:
    """The reports built from the snapshot, checked here; the files under --results-dir are written
    once, at session end, from one read of the results after every gate has its verdict."""
    return write_reports(tmp_path_factory.mktemp("reports"), tracker=True, snapshot=snapshot)


def _keys(s: ResultsSnapshot) -> list[tuple[str, str, str]]:
    return [(e.model, e.preset, e.dataset) for e in s.evaluations]


def _fmt(problems: list[str]) -> str:
    return "\n".join(problems[:40])


def test_no_stored_result_file_is_unreadable(snapshot: ResultsSnapshot) -> None:
    assert snapshot.unreadable == [], _fmt(snapshot.unreadable)


def test_comprehensive_summary_covers_every_evaluation(snapshot: ResultsSnapshot) -> None:
    assert snapshot.comprehensive_summary is not None, (
        f"{snapshot.results_dir}/comprehensive_summary.json is missing or does not parse (written by the evaluation runner)")
    problems = validate.validate_summary(snapshot.comprehensive_summary, _keys(snapshot))
    assert problems == [], _fmt(problems)


def test_performance_matrix_covers_every_evaluated_model_and_preset(snapshot: ResultsSnapshot) -> None:
    assert snapshot.matrix is not None, (
        f"{snapshot.results_dir}/comparisons/performance_matrix.json is missing (run `pytest -m milestone4` or "
        "`qwenharness compare`)")
    scored = [(e.model, e.preset, e.dataset) for e in snapshot.evaluations
              if (m := e.primary_metric()) is not None and m.stderr is not None and m.n is not None]
    problems = validate.validate_matrix(snapshot.matrix, scored)
    assert problems == [], _fmt(problems)


def test_scaling_insights_state_numbers(snapshot: ResultsSnapshot) -> None:
    assert snapshot.insights is not None, (
        f"{snapshot.results_dir}/comparisons/scaling_insights.json is missing (run `pytest -m milestone4`)")
    problems = validate.validate_insights(snapshot.insights)
    assert problems == [], _fmt(problems)


def test_final_report_is_complete_and_free_of_placeholders(reports: dict[str, Path], snapshot: ResultsSnapshot) -> None:
    path = reports["final_report"]
    assert path.name == FINAL_REPORT and path.is_file()
    problems = validate.validate_final_report(path.read_text(encoding="utf-8"), snapshot.pairs())
    assert problems == [], _fmt(problems)


@pytest.mark.parametrize("section", SECTIONS)
def test_validator_rejects_the_report_without_a_section(reports: dict[str, Path], snapshot: ResultsSnapshot,
                                                         section: str) -> None:
    text = reports["final_report"].read_text(encoding="utf-8")
    body = section_text(text, section)
    assert body is not None
    damaged = text.replace(f"## {section}\n{body}", "")
    assert f"section '## {section}' is missing" in validate.validate_final_report(damaged, snapshot.pairs())


def test_tracker_lists_every_milestone(reports: dict[str, Path]) -> None:
    path = reports["tracker"]
    assert path.name == TRACKER
    text = path.read_text(encoding="utf-8")
    for m in ("milestone1", "milestone2", "milestone3", "milestone4", "milestone5"):
        assert f"| {m} |" in text
    assert validate.find_placeholders(text) == []


def test_earlier_milestone_gates_did_not_fail(snapshot: ResultsSnapshot) -> None:
    failed = {m: g.get("failures") for m, g in snapshot.gates.items()
              if m != "milestone5" and g.get("status") == "failed"}
    assert not failed, f"milestone gates failed: {failed}"


def test_html_results_section_shows_every_evaluation_and_a_plot(snapshot: ResultsSnapshot) -> None:
    fragment = render_results_fragment(snapshot)
    assert 'id="qh-metrics"' in fragment and 'id="qh-gates"' in fragment
    assert 'id="qh-plot-accuracy"' in fragment and "data:image/png;base64," in fragment
    for model, dataset in snapshot.pairs():
        assert f"<td>{model}</td>" in fragment and f"<td>{dataset}</td>" in fragment


def test_published_references_carry_their_source() -> None:
    entries = published.load_published()
    assert entries
    for e in entries:
        assert e.source.get("url", "").startswith("https://"), e
        assert e.source.get("citation"), e
