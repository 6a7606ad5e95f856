"""Gates that verify (issue 12): stored aggregates are recomputed from their per-sample records before
milestones 4 and 5 use them, and the gate files they build on must hold a verdict.

The first tests check qwenharness.verify on hand-made result files; the last ones run the real
milestone-4 and milestone-5 test modules in a pytest subprocess on such a folder (no engine is opened:
every result they need is stored), once untouched (both pass) and once per forgery (both fail, naming
the file).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from qwenharness.results import build_summary, record_from_dict
from qwenharness.tasks import get_task
from qwenharness.verify import verify_aggregate, verify_gates, verify_results

REPO = Path(__file__).resolve().parents[2]
MODELS = ("tiny", "tiny-2x")
DATASET = "arc_easy"
N_DOCS = 24


def _records(model: str) -> list[dict]:
    rng = random.Random(model)
    rows = []
    for i in range(N_DOCS):
        acc = float(rng.random() < (0.3 if model == "tiny" else 0.6))
        rows.append({"doc_id": str(i), "prompt": f"q{i}", "target": 0, "outputs": [], "error": None,
                     "scores": {"acc": acc, "acc_norm": float(rng.random() < 0.5)}, "extra": {},
                     "prompt_tokens": 0, "output_tokens": 4})
    return rows


def _aggregate(model: str, rows: list[dict], run: str) -> dict:
    task = get_task(DATASET)
    metrics = task.aggregate([record_from_dict(r) for r in rows])
    return {"metrics": metrics, "n_samples": len(rows), "n_errors": 0, "error_rate": 0.0, "run_id": run,
            "model": model, "preset": "balanced", "dataset": DATASET, "backend": "vllm",
            "task": {"name": DATASET, "output_type": "loglikelihood", "n_shot": 0, "protocol": "arc_easy-loglikelihood",
                     "chat_template": False, "chat_template_sha256": None, "generation_settings": []},
            "options": {"n_shot": None, "chat": False, "enable_thinking": None}, "sample_limit": N_DOCS,
            "finished_at": "2026-01-01T00:00:00+00:00"}


def _bench(model: str, tput: float, lat: float, weight: int) -> dict:
    return {"model": model, "preset": "balanced", "backend": "vllm", "run_id": "pytest", "updated": "2026-01-01T00:00:00",
            "environment": {"gpu": None},
            "throughput": {"random": {"requests_per_s": tput / 100, "output_tokens_per_s": tput,
                                      "total_tokens_per_s": 2 * tput}},
            "latency": {"batch_1": {"latency_s": {"p50": lat, "p90": 1.5 * lat, "p99": 2 * lat}}},
            "memory": {"weight_bytes": weight, "kv_cache_bytes": 10, "peak_bytes": None, "gpu_util_mean": None},
            "overhead": {"ratio": None}, "physical_bound": {"fraction": None}}


def make_results(root: Path, run: str = "pytest") -> Path:
    """Two models' arc_easy evaluations (records, aggregates, manifest, summaries), benchmarks, and the
    gate files of milestones 1-3: everything milestones 4 and 5 read."""
    aggs = []
    wrote = []
    for model in MODELS:
        folder = root / "evaluations" / run / model / "balanced"
        folder.mkdir(parents=True)
        rows = _records(model)
        (folder / f"{DATASET}.samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        agg = _aggregate(model, rows, run)
        (folder / f"{DATASET}.json").write_text(json.dumps(agg))
        aggs.append(agg)
        wrote.append({"evaluation": f"{model}/balanced/{DATASET}", "aggregate": f"{model}/balanced/{DATASET}.json"})
    manifest = {"run_id": run, "settings": {"models": list(MODELS), "datasets": [DATASET], "presets": ["balanced"],
                                            "backend": "vllm", "sample_limit": N_DOCS, "seed": 1234},
                "invocations": [{"id": "x", "command_line": ["qwenharness", "evaluate"], "wrote": wrote}]}
    (root / "evaluations" / run / "manifest.json").write_text(json.dumps(manifest))
    for name in ("latest_summary.json", "comprehensive_summary.json"):
        (root / name).write_text(json.dumps(build_summary(aggs, run_id=run if name.startswith("latest") else None)))
    for model, tput, lat, weight in (("tiny", 1000.0, 0.10, 1_000_000), ("tiny-2x", 600.0, 0.18, 1_500_000)):
        path = root / "benchmarks" / run / model / "balanced" / "vllm.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(_bench(model, tput, lat, weight)))
    (root / "benchmarks" / "latest.json").write_text(json.dumps({"entries": {
        f"{m}/balanced/vllm": {"run_id": run, "path": f"{run}/{m}/balanced/vllm.json"} for m in MODELS}}))
    (root / "gates").mkdir()
    for m in ("milestone1", "milestone2", "milestone3"):
        (root / "gates" / f"{m}.json").write_text(json.dumps(
            {"milestone": m, "status": "passed", "counts": {"passed": 3, "failed": 0, "error": 0, "skipped": 0},
             "failures": [], "command": f"pytest -m {m}", "session": "earlier", "finished_at": "2026-01-01T00:00:00",
             "run_id": run, "coverage": {"models": list(MODELS), "presets": ["balanced"], "datasets": [DATASET],
                                         "backends": ["vllm"]},
             "evidence": {"evaluations": [f"{x}/balanced/{DATASET}" for x in MODELS]} if m == "milestone3" else {}}))
    return root


def _agg_path(root: Path, model: str = "tiny") -> Path:
    return root / "evaluations" / "pytest" / model / "balanced" / f"{DATASET}.json"


# -- forgeries: each returns the file a gate must name ---------------------------------------------------------
def forge_value(root: Path) -> str:
    p = _agg_path(root)
    d = json.loads(p.read_text())
    d["metrics"]["acc"]["value"] = 0.99
    p.write_text(json.dumps(d))
    return "evaluations/pytest/tiny/balanced/arc_easy.json"


def forge_out_of_range(root: Path) -> str:
    p = _agg_path(root, "tiny-2x")
    d = json.loads(p.read_text())
    d["metrics"]["acc"]["value"] = 1.7
    p.write_text(json.dumps(d))
    return "evaluations/pytest/tiny-2x/balanced/arc_easy.json"


def delete_aggregate(root: Path) -> str:
    _agg_path(root).unlink()
    return "evaluations/pytest/tiny/balanced/arc_easy.json"


def corrupt_samples(root: Path) -> str:
    p = _agg_path(root).with_name(f"{DATASET}.samples.jsonl")
    lines = p.read_text().splitlines()
    lines[3] = lines[3][: len(lines[3]) // 2]  # a line cut in half in the middle of the file
    p.write_text("\n".join(lines) + "\n")
    return "evaluations/pytest/tiny/balanced/arc_easy.samples.jsonl"


def delete_gate(root: Path) -> str:
    (root / "gates" / "milestone3.json").unlink()
    return "gates/milestone3.json"


FORGERIES = [forge_value, forge_out_of_range, delete_aggregate, corrupt_samples, delete_gate]


# -- the library --------------------------------------------------------------------------------------------------
@pytest.fixture
def results(tmp_path: Path) -> Path:
    return make_results(tmp_path / "results")


def test_untouched_results_verify(results: Path) -> None:
    assert verify_results(results) == []
    assert verify_gates(results, ["milestone1", "milestone2", "milestone3"]) == []


@pytest.mark.parametrize("forge", FORGERIES, ids=lambda f: f.__name__)
def test_each_forgery_is_found_and_names_the_file(results: Path, forge) -> None:  # noqa: ANN001
    named = forge(results)
    problems = verify_results(results) + verify_gates(results, ["milestone1", "milestone2", "milestone3"])
    assert problems, f"{forge.__name__} went unnoticed"
    assert any(named in p for p in problems), problems


def test_a_changed_score_in_the_records_disagrees_with_the_aggregate(results: Path) -> None:
    p = _agg_path(results).with_name(f"{DATASET}.samples.jsonl")
    rows = [json.loads(line) for line in p.read_text().splitlines()]
    rows[0]["scores"]["acc"] = 1.0 - rows[0]["scores"]["acc"]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    problems = verify_aggregate(_agg_path(results), results)
    assert any("acc.value" in x and "recomputed from" in x for x in problems), problems


def test_a_summary_that_disagrees_with_its_aggregate_is_named(results: Path) -> None:
    s = json.loads((results / "comprehensive_summary.json").read_text())
    s["results"]["tiny"]["balanced"][DATASET]["metrics"]["acc"]["value"] = 0.5
    (results / "comprehensive_summary.json").write_text(json.dumps(s))
    assert any(p.startswith("comprehensive_summary.json: tiny/balanced/arc_easy") for p in verify_results(results))


def test_running_gate_is_accepted_only_from_the_same_session(results: Path) -> None:
    g = json.loads((results / "gates" / "milestone3.json").read_text())
    g.update(status="running", session="s1")
    (results / "gates" / "milestone3.json").write_text(json.dumps(g))
    assert verify_gates(results, ["milestone3"], session="s1") == []
    assert "session ended without a verdict" in verify_gates(results, ["milestone3"], session="s2")[0]


def test_an_evaluation_written_after_the_milestone3_verdict_is_stale_evidence(pristine: Path, tmp_path: Path) -> None:
    results = tmp_path / "results"
    shutil.copytree(pristine, results)
    assert verify_gates(results, ["milestone3"]) == []
    agg = results / "evaluations" / "pytest" / "tiny" / "balanced" / f"{DATASET}.json"
    data = json.loads(agg.read_text())
    data["finished_at"] = "2026-01-02T00:00:00+00:00"  # a day after the gate's verdict
    agg.write_text(json.dumps(data))
    (problem,) = verify_gates(results, ["milestone3"])
    assert f"tiny/balanced/{DATASET}.json was written after results/gates/milestone3.json's verdict" in problem
    assert "run `pytest -m milestone3`" in problem


# -- the gates themselves: milestones 4 and 5 in a pytest subprocess -----------------------------------------------
def run_gates(results: Path, html: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QWENHARNESS_HTML": str(html) if html else "none", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("QWENHARNESS_GATE_SESSION", None)
    cmd = [sys.executable, "-m", "pytest", "tests/scaling/test_scaling_analysis.py", "tests/reports/test_reports.py",
           "-p", "no:cacheprovider", "-p", "no:randomly", "-q", "-rfE", "--no-header",
           "--results-dir", str(results), "--models", ",".join(MODELS), "--presets", "balanced",
           "--backend", "vllm", "--datasets", DATASET]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def _gate_status(results: Path, m: str) -> str:
    return json.loads((results / "gates" / f"{m}.json").read_text())["status"]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_results(tmp_path_factory.mktemp("pristine") / "results")


@pytest.fixture(scope="module")
def gated(pristine: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The untouched results after one milestone-4 + milestone-5 session (with its pytest-html report)."""
    results = tmp_path_factory.mktemp("gated") / "results"
    shutil.copytree(pristine, results)
    html = results.parent / "gates.html"
    proc = run_gates(results, html)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return results, html


@pytest.mark.slow
def test_gates_pass_on_untouched_results(gated: tuple[Path, Path]) -> None:
    results, _ = gated
    assert _gate_status(results, "milestone4") == "passed" and _gate_status(results, "milestone5") == "passed"


@pytest.mark.slow
@pytest.mark.parametrize("forge", FORGERIES, ids=lambda f: f.__name__)
def test_milestones_4_and_5_fail_on_each_forgery_naming_the_file(pristine: Path, tmp_path: Path, forge) -> None:  # noqa: ANN001
    results = tmp_path / "results"
    shutil.copytree(pristine, results)
    named = forge(results)
    proc = run_gates(results)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-4000:]
    assert _gate_status(results, "milestone4") == "failed", out[-4000:]
    assert _gate_status(results, "milestone5") == "failed", out[-4000:]
    assert "stored results failed verification" in out and named in out, out[-4000:]
    # both modules' verification fixtures named it (milestone 4's and milestone 5's)
    assert out.count("stored results failed verification") >= 2, out[-4000:]


# -- gates read their own run, and only what a verdict judged (issue 14) ----------------------------------------------
def _stray(root: Path, run: str, model: str, value: float | None = None) -> Path:
    """A copy of tiny's arc_easy aggregate and records under `run` as `model` (its acc forged to `value`)."""
    src = _agg_path(root)
    folder = root / "evaluations" / run / model / "balanced"
    folder.mkdir(parents=True, exist_ok=True)
    data = json.loads(src.read_text())
    data.update(model=model, run_id=run)
    if value is not None:
        data["metrics"]["acc"]["value"] = value
    data["finished_at"] = "2026-06-01T00:00:00+00:00"  # newer than anything the gates judged
    (folder / f"{DATASET}.json").write_text(json.dumps(data))
    shutil.copy(src.with_name(f"{DATASET}.samples.jsonl"), folder / f"{DATASET}.samples.jsonl")
    return folder / f"{DATASET}.json"


@pytest.mark.slow
def test_gates_ignore_other_runs_and_what_no_verdict_judged(pristine: Path, tmp_path: Path) -> None:
    from qwenharness.report.scoped import gated_snapshot

    results = tmp_path / "results"
    shutil.copytree(pristine, results)
    _stray(results, "20260601-000000", "tiny", value=0.99)  # a later CLI run, even a forged one
    _stray(results, "pytest", "smollm2_135m")  # valid, in the gates' run, but milestone 3 never judged it
    proc = run_gates(results)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    report = (results / "LARGE_SCALE_EVALUATION_FINAL_REPORT.md").read_text()
    assert "smollm2_135m" not in report and "0.990" not in report
    s = gated_snapshot(results, "pytest")
    assert {(e.model, e.run_id) for e in s.evaluations} == {(m, "pytest") for m in MODELS}
    assert s.left_out == ["evaluations/pytest/smollm2_135m/balanced/arc_easy.json (no gate verdict judged it)"]
    matrix = json.loads((results / "comparisons" / "performance_matrix.json").read_text())
    assert matrix["analysis"]["run_id"] == "pytest"
    assert sorted(map(tuple, matrix["analysis"]["evaluations"])) == [(m, "balanced", DATASET) for m in MODELS]
    gate4 = json.loads((results / "gates" / "milestone4.json").read_text())
    assert gate4["run_id"] == "pytest"
    assert gate4["evidence"]["evaluations"] == sorted(f"{m}/balanced/{DATASET}" for m in MODELS)
    assert gate4["evidence"]["benchmarks"] == sorted(f"{m}/balanced/vllm" for m in MODELS)


def _edit_gate(root: Path, m: str, **changes: object) -> None:
    path = root / "gates" / f"{m}.json"
    g = json.loads(path.read_text())
    for k, v in changes.items():
        if v is None:
            g.pop(k, None)
        else:
            g[k] = v
    path.write_text(json.dumps(g))


@pytest.mark.slow
@pytest.mark.parametrize("change, says", [
    ({"run_id": "20260101-000000"}, "judged run '20260101-000000', but this session reads run 'pytest'"),
    ({"evidence": None}, "records no evidence (which results milestone3 judged)"),
], ids=["another-run", "no-evidence"])
def test_a_milestone3_verdict_that_does_not_name_this_run_fails_4_and_5(pristine: Path, tmp_path: Path,
                                                                        change: dict, says: str) -> None:
    results = tmp_path / "results"
    shutil.copytree(pristine, results)
    _edit_gate(results, "milestone3", **change)
    proc = run_gates(results)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-4000:]
    assert _gate_status(results, "milestone4") == "failed" and _gate_status(results, "milestone5") == "failed"
    assert out.count(says) >= 2 and "gates/milestone3.json" in out, out[-4000:]


def test_the_session_report_adds_what_the_session_wrote_into_other_runs(pristine: Path, tmp_path: Path) -> None:
    """tests/real writes its reference run beside the gates' run: the session's report shows those
    evaluations too, but not one an earlier session left in another run."""
    from qwenharness.report.scoped import session_snapshot

    results = tmp_path / "results"
    shutil.copytree(pristine, results)
    for run, model, written in (("real-reference", "smollm2_135m", "2026-03-01T12:00:05+00:00"),  # this session
                                ("older-run", "qwen2.5_coder_1.5b", "2026-02-01T00:00:00+00:00")):  # before it
        path = _stray(results, run, model)
        data = json.loads(path.read_text())
        data["finished_at"] = written
        path.write_text(json.dumps(data))
    s = session_snapshot(results, "pytest", "2026-03-01T12:00:00+00:00")
    assert sorted((e.model, e.run_id) for e in s.evaluations) == [
        ("smollm2_135m", "real-reference"), ("tiny", "pytest"), ("tiny-2x", "pytest")]
    assert s.session_runs == ["real-reference"]
    assert "and the 1 evaluation(s) this session wrote into run(s) `real-reference`" in s.scope_text()


def test_gated_snapshot_names_the_missing_run(pristine: Path) -> None:
    from qwenharness.errors import HarnessError
    from qwenharness.report.scoped import gated_snapshot

    with pytest.raises(HarnessError, match=r"no run 'nightly' under .*evaluations \(runs stored: pytest\)"):
        gated_snapshot(pristine, "nightly")
    assert gated_snapshot(pristine, "nightly", strict=False).evaluations == []


# -- one snapshot per report --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_no_milestone_is_shown_running_after_the_session(gated: tuple[Path, Path]) -> None:
    results, html = gated
    for g in sorted((results / "gates").glob("*.json")):
        data = json.loads(g.read_text())
        assert data["status"] != "running" and data["finished_at"], g
    for name in ("LARGE_SCALE_EVALUATION_FINAL_REPORT.md", "PROJECT_TRACKER.md"):
        text = (results / name).read_text()
        assert "| running |" not in text, name
        assert "| milestone4 | scaling analysis | passed |" in text and "| milestone5 |" in text, name
    page = html.read_text()
    assert "qh-gates" in page and "running" not in _html_cells(page, "qh-gates")


def _html_cells(page: str, table_id: str) -> str:
    import html as html_lib

    page = html_lib.unescape(html_lib.unescape(page))  # pytest-html embeds the summary escaped
    start = page.index(f'id="{table_id}"')
    return page[start:page.index("</table>", start)]


@pytest.mark.slow
def test_every_number_in_the_reports_equals_the_stored_value_it_cites(gated: tuple[Path, Path], tmp_path: Path) -> None:
    from qwenharness.report.citations import check_report_numbers

    results, html = gated
    assert check_report_numbers(results, html, expect_rows=len(MODELS)) == []
    # and the check can fail: a stored value changed after the reports were written is named
    copy = tmp_path / "results"
    shutil.copytree(results, copy)
    agg = copy / "evaluations" / "pytest" / "tiny" / "balanced" / f"{DATASET}.json"
    data = json.loads(agg.read_text())
    metric = next(iter(data["metrics"]))
    data["metrics"][metric]["value"] = 0.987
    agg.write_text(json.dumps(data))
    problems = check_report_numbers(copy, html, expect_rows=len(MODELS))
    assert any(f"{DATASET}.json holds ('0.987'" in p for p in problems), problems
    assert sum("final report" in p or "tracker" in p for p in problems) >= 2, problems


@pytest.mark.slow
def test_a_benchmark_rerun_after_the_analysis_is_caught_and_recomputed(gated: tuple[Path, Path], tmp_path: Path) -> None:
    from qwenharness import scaling

    results = tmp_path / "results"
    shutil.copytree(gated[0], results)
    bench = results / "benchmarks" / "pytest" / "tiny" / "balanced" / "vllm.json"
    data = json.loads(bench.read_text())
    data["throughput"]["random"]["output_tokens_per_s"] = 1234.5
    bench.write_text(json.dumps(data))
    stale = scaling.stale_citations(results)
    assert stale and all("benchmarks/pytest/tiny/balanced/vllm.json" in s for s in stale), stale
    assert scaling.refresh_if_stale(results) is True
    assert scaling.stale_citations(results) == []
    matrix = json.loads((results / "comparisons" / "performance_matrix.json").read_text())
    row = next(r for r in matrix["rows"] if r["model"] == "tiny")
    assert row["throughput"]["random"]["output_tokens_per_s"] == 1234.5


@pytest.mark.slow
def test_compare_twice_on_unchanged_results_gives_identical_output(gated: tuple[Path, Path], tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from qwenharness.cli import main

    results = tmp_path / "results"
    shutil.copytree(gated[0], results)
    outputs = []
    for _ in range(2):
        assert main(["compare", "--models", ",".join(MODELS), "--results-dir", str(results), "--detailed-metrics"]) == 0
        files = {p.name: p.read_bytes() for p in sorted((results / "comparisons").glob("*.json"))}
        outputs.append((capsys.readouterr().out, files))
    assert outputs[0][0] == outputs[1][0]
    assert outputs[0][1] == outputs[1][1] and len(outputs[0][1]) == 3


def test_a_subset_run_records_a_partial_gate_never_the_verdict(pristine: Path, tmp_path: Path) -> None:
    results = tmp_path / "results"
    shutil.copytree(pristine, results)
    env = {**os.environ, "QWENHARNESS_HTML": "none", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("QWENHARNESS_GATE_SESSION", None)
    proc = subprocess.run([sys.executable, "-m", "pytest", "tests/validation/test_environment.py", "-k", "versions_are_recorded",
                           "-p", "no:cacheprovider", "-q", "--results-dir", str(results)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
    partial = json.loads((results / "gates" / "partial" / "milestone1.json").read_text())
    assert partial["scope"] == "partial" and partial["status"] == "passed", partial
    assert any("deselected" in w for w in partial["partial_because"])
    assert any("test_datasets.py" in w for w in partial["partial_because"])  # other milestone-1 files not run
    verdict = json.loads((results / "gates" / "milestone1.json").read_text())
    assert verdict["session"] == "earlier" and verdict["status"] == "passed"  # the verdict file is untouched


# -- gates that cannot pass vacuously -------------------------------------------------------------------------
def test_a_judge_that_cannot_be_parsed_leaves_mt_bench_not_scored() -> None:
    from qwenharness.gates import load_gates
    from qwenharness.report.tables import not_scored_reason

    limit = load_gates().max_judge_parse_failure_rate
    failed = {"metrics": {"score": {"value": None}, "judge_parse_failure_rate": {"value": 1.0}}}
    assert "unparseable for 100%" in not_scored_reason("mt_bench", failed)
    mostly = {"metrics": {"score": {"value": 6.0}, "judge_parse_failure_rate": {"value": min(1.0, limit + 0.1)}}}
    assert "max_judge_parse_failure_rate" in not_scored_reason("mt_bench", mostly)
    fine = {"metrics": {"score": {"value": 6.0}, "judge_parse_failure_rate": {"value": limit / 2}}}
    assert not_scored_reason("mt_bench", fine) is None
    assert "headline metric acc has no value" in not_scored_reason("arc_easy", {"metrics": {"acc": {"value": None}}})


# -- the manifest accumulates invocations; "Reproduce" lists every one ------------------------------------------
def test_reproduce_lists_every_invocation_that_wrote_into_the_run(results: Path) -> None:
    from qwenharness.report import markdown
    from qwenharness.report.collect import collect

    path = results / "evaluations" / "pytest" / "manifest.json"
    m = json.loads(path.read_text())
    m["invocations"] = [
        {"command_line": ["/v/bin/qwenharness", "evaluate", "--models", "tiny", "--datasets", "arc_easy"],
         "wrote": [{"evaluation": "tiny/balanced/arc_easy"}]},
        {"command_line": ["/v/lib/python3.11/site-packages/pytest/__main__.py", "-m", "milestone3 or milestone4"],
         "wrote": [{"evaluation": "tiny-2x/balanced/arc_easy"}]},
    ]
    m["settings"]["datasets"] = ["mt_bench"]  # the last call's settings alone would reproduce only that
    path.write_text(json.dumps(m))
    text = markdown.build_final_report(collect(results))
    repro = markdown.section_text(text, "Appendix: manifest and reproduction").split("### Reproduce", 1)[1]
    assert "qwenharness evaluate --models tiny --datasets arc_easy" in repro
    assert "python -m pytest -m 'milestone3 or milestone4'" in repro
    assert "wrote 1 evaluation(s): tiny-2x/balanced/arc_easy" in repro and "mt_bench" not in repro


def test_result_files_are_readable_by_the_group(tmp_path: Path) -> None:
    from qwenharness.results import atomic_write_json

    path = tmp_path / "r" / "x.json"
    atomic_write_json(path, {"a": 1})
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask
    if not mask & 0o040:
        assert path.stat().st_mode & 0o040, "group cannot read a result file"


def test_a_gate_left_running_by_a_dead_session_is_shown_unfinished(results: Path) -> None:
    from qwenharness.report.collect import collect
    from qwenharness.report.tables import gates_table

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    g = json.loads((results / "gates" / "milestone3.json").read_text())
    g.update(status="running", session=f"{dead.stdout.strip()}-1")
    (results / "gates" / "milestone3.json").write_text(json.dumps(g))
    row = next(r for r in gates_table(collect(results)).rows if r[0] == "milestone3")
    assert row[2].startswith("unfinished")
    g.update(session=f"{os.getpid()}-1")  # a live session: still running
    (results / "gates" / "milestone3.json").write_text(json.dumps(g))
    row = next(r for r in gates_table(collect(results)).rows if r[0] == "milestone3")
    assert row[2] == "running"
