"""Milestone 4: the scaling analysis over stored results, every figure recomputed from the files.

Models: `harness.scaling_models()` (tiny and tiny-2x on CPU; qwen3_8b and qwen3_14b on a GPU; or
--models). Results are read from one run, <--results-dir>/{evaluations,benchmarks}/<--run-id> (default
`pytest`): the evaluations milestone 3's gate file says it judged, and what this module produces itself
with the library where a selected model x preset lacks them (a short benchmark, and a small evaluation
unless the weights are dummy), so the gate always runs on real numbers that a verdict stands behind.
Each test's report names what the analysis used (`gate_evidence`), for milestone 5.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterator

import pytest

from qwenharness import bench, scaling
from qwenharness.models import get_model_spec
from qwenharness.presets import DEFAULT_PRESET
from qwenharness.testing import HarnessOptions

pytestmark = [pytest.mark.milestone4, pytest.mark.slow]

CPU_DATASETS = ["arc_easy", "piqa"]  # log-likelihood tasks: seconds on CPU with either backend
CPU_SAMPLE_LIMIT = 20
CPU_BENCH = bench.BenchOptions(input_len=32, output_len=16, num_prompts=16, batch_sizes=(1, 4), warmup=1, iters=3,
                               overhead_reps=2, text_dataset=None)
GPU_BENCH = bench.BenchOptions(input_len=128, output_len=128, num_prompts=256, batch_sizes=(1, 32), text_dataset=None)
REQUIRED_RATIOS = ("parameter_ratio", "throughput_ratio", "cost_per_token_ratio", "latency_ratio_batch_1",
                   "weight_memory_ratio")


# -- producing what is missing -----------------------------------------------------------------------------
def _presets(config: pytest.Config, options: HarnessOptions) -> list[str]:
    return options.presets if config.getoption("--presets") or options.gpu else [DEFAULT_PRESET]


def _datasets(config: pytest.Config, options: HarnessOptions) -> list[str]:
    return options.datasets if config.getoption("--datasets") else CPU_DATASETS


@pytest.fixture(scope="module")
def selection(pytestconfig: pytest.Config, harness: HarnessOptions) -> dict[str, Any]:
    return {"models": scaling.order_by_size(harness.scaling_models()),
            "presets": _presets(pytestconfig, harness), "backend": harness.backends[0],
            "datasets": _datasets(pytestconfig, harness), "root": Path(harness.results_dir),
            "run_id": harness.run_id}


def _judged_by_milestone3(root: Path, run_id: str) -> tuple[frozenset[tuple[str, str, str]], str | None]:
    """The evaluations of `run_id` that the milestone-3 gate file says it judged, and why it cannot
    say (no gate file, another run, an older format), if so."""
    from qwenharness.errors import HarnessError
    from qwenharness.gate_evidence import read_scope

    try:
        return read_scope(root, run_id, ["milestone3"], coverage_from=None).evaluations, None
    except HarnessError as exc:
        return frozenset(), str(exc)


@pytest.fixture(scope="module")
def stored(selection: dict[str, Any], harness: HarnessOptions, engine_pool: Any) -> dict[str, Any]:
    """Make sure every selected model x preset has a benchmark and (real weights) evaluations in this
    session's run: those milestone 3 judged are used as they are; the others are evaluated here (the
    run's record cache makes a repeat quick), so no result that no verdict judged is ever used. Stored
    evaluations with no readable milestone-3 gate file to vouch for them fail the gate."""
    from qwenharness.verify import missing_aggregates

    root, backend, run_id = selection["root"], selection["backend"], selection["run_id"]
    missing = missing_aggregates(root, selection["models"], run_id=run_id)
    if missing:  # a deleted aggregate is a fault to report, not a gap to fill in
        pytest.fail("stored results failed verification:\n" + "\n".join(missing[:40]), pytrace=False)
    cells = [(m, p) for m in selection["models"] for p in selection["presets"]]
    benches = scaling.load_benchmarks(root, selection["models"], run_id)
    store = bench.BenchmarkStore(root, run_id)
    for m, p in cells:
        if (m, p, backend) not in benches:
            engine = engine_pool.get(m, p, backend)
            bench.run_suite(engine, engine_pool.current_config, backend, GPU_BENCH if harness.gpu else CPU_BENCH, store)
    judged, unreadable = _judged_by_milestone3(root, run_id)
    if unreadable and scaling.load_evaluations(root, selection["models"], run_id):
        # evaluations are stored but no verdict says which it judged: a fault, not a gap to fill in
        pytest.fail(f"stored results failed verification:\n{unreadable}", pytrace=False)
    produced_evals: list[tuple[str, str, str]] = []
    if harness.load_format != "dummy":  # dummy weights have no tokenizer for real text
        from qwenharness.evaluation import EvalSettings, Evaluator
        from qwenharness.results import resolve_run_paths

        for m, p in cells:
            todo = [d for d in selection["datasets"] if (m, p, d) not in judged]
            if not todo:
                continue
            settings = EvalSettings(models=[m], presets=[p], datasets=todo, backend=backend,
                                    sample_limit=harness.sample_limits.default or CPU_SAMPLE_LIMIT, data_dir=harness.data_dir,
                                    load_format=harness.load_format)
            results = Evaluator(settings, resolve_run_paths(root, run_id), pool=engine_pool).run()
            failed = [f"{r.model}/{r.preset}/{r.dataset}: {r.error}" for r in results if not r.ok]
            assert not failed, f"the evaluation needed for the analysis failed: {failed}"
            produced_evals += [(r.model, r.preset, r.dataset) for r in results]
    used = set(scaling.load_evaluations(root, selection["models"], run_id, judged | set(produced_evals)))
    return {"produced_evaluations": produced_evals, "evaluations": used,
            "benchmarks": set(scaling.load_benchmarks(root, selection["models"], run_id)) & {
                (m, p, backend) for m, p in cells}}


@pytest.fixture(scope="module")
def verified(selection: dict[str, Any], stored: dict[str, Any]) -> None:
    """Before any figure is used: every stored aggregate of the selected models in this run recomputes
    from its per-sample records and lies in its range, none that a file names is missing, and the
    milestone-3 gate whose evaluations are used recorded a verdict (unless this session produced every
    evaluation used)."""
    from qwenharness.verify import verify_gates, verify_results

    root = selection["root"]
    problems = verify_results(root, selection["models"], run_id=selection["run_id"])
    if stored["evaluations"] - set(stored["produced_evaluations"]):
        problems += verify_gates(root, ["milestone3"])
    if problems:
        pytest.fail("stored results failed verification:\n" + "\n".join(problems[:40]), pytrace=False)


@pytest.fixture(scope="module")
def analysis(selection: dict[str, Any], stored: dict[str, Any], verified: None) -> dict[str, Any]:
    return scaling.analyze(selection["root"], selection["models"], detailed=True, backend=selection["backend"],
                           run_id=selection["run_id"], evaluations=stored["evaluations"])


@pytest.fixture(autouse=True)
def _name_the_evidence(request: pytest.FixtureRequest, gate_evidence: Any) -> None:
    """Each milestone-4 test's report names the evaluations and benchmarks the analysis used, so the
    gate file records them and milestone 5 reads exactly those."""
    if "analysis" in request.fixturenames:
        used = request.getfixturevalue("stored")
        gate_evidence.add_all("evaluations", sorted(used["evaluations"]))
        gate_evidence.add_all("benchmarks", sorted(used["benchmarks"]))


# -- an independent recomputation of every quantity ----------------------------------------------------------
RECOMPUTE = {
    "ratio": lambda a, b: a / b,
    "difference": lambda a, b: a - b,
    "product": lambda a, b: a * b,
    "se_diff": lambda a, b: (a**2 + b**2) ** 0.5,
    "log_ratio_elasticity": lambda a, b: math.log(a) / math.log(b),
}


def quantities(node: Any) -> Iterator[dict[str, Any]]:
    """Every quantity in a nested structure (outermost first; a derived one's args follow it)."""
    if isinstance(node, dict):
        if "value" in node and any(k in node for k in ("source", "fact", "const", "op")):
            yield node
            for arg in node.get("args", []):
                yield from quantities(arg)
            return
        for v in node.values():
            yield from quantities(v)
    elif isinstance(node, list):
        for v in node:
            yield from quantities(v)


def check_quantity(q: dict[str, Any], root: Path) -> None:
    value = q["value"]
    assert isinstance(value, (int, float)) and math.isfinite(value), q
    if "source" in q:
        node: Any = json.loads((root / q["source"]).read_text())
        for k in q["key"]:
            node = node[k]
        assert node == value, f"{q['source']}:{'.'.join(q['key'])} holds {node}, the analysis says {value}"
    elif "fact" in q:
        assert q["fact"] == "parameter_count"
        assert get_model_spec(q["model"]).parameter_count() == value
    elif "op" in q:
        args = [a["value"] for a in q["args"]]
        assert RECOMPUTE[q["op"]](*args) == pytest.approx(value, rel=1e-12), q["op"]
    else:
        assert q["const"]


def _bench_file(root: Path, run_id: str, model: str, preset: str, backend: str) -> dict[str, Any]:
    """The newest stored benchmark of a key in the run, found by reading the files."""
    files = [json.loads(p.read_text()) for p in (root / "benchmarks" / run_id).glob(f"*/{preset}/{backend}.json")]
    files = [f for f in files if f.get("model") == model]
    assert files, f"no benchmark of {model}/{preset}/{backend} under {root / 'benchmarks' / run_id}"
    return max(files, key=lambda f: str(f.get("updated") or f.get("created") or ""))


def _eval_files(root: Path, run_id: str, keys: set[tuple[str, str, str]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """The newest aggregate of each used key in the run, read directly."""
    newest: dict[tuple[str, str, str], dict[str, Any]] = {}
    for path in (root / "evaluations" / run_id).glob("*/*/*.json"):
        data = json.loads(path.read_text())
        if not isinstance(data.get("metrics"), dict) or "dataset" not in data:
            continue
        key = (data["model"], data["preset"], data["dataset"])
        if key in keys and (key not in newest or str(data.get("finished_at")) > str(newest[key].get("finished_at"))):
            newest[key] = data
    return newest


# -- the gates --------------------------------------------------------------------------------------------
def test_comparison_files_are_written(analysis: dict[str, Any], selection: dict[str, Any]) -> None:
    models = selection["models"]
    out_dir = selection["root"] / "comparisons"
    for a, b in zip(models, models[1:]):
        path = out_dir / scaling.comparison_name(a, b)
        assert path.is_file(), f"missing {path}"
        assert json.loads(path.read_text())["models"] == {"a": a, "b": b}
    if models == ["qwen3_8b", "qwen3_14b"]:
        assert (out_dir / "8b_vs_14b_comparison.json").is_file()
    assert (out_dir / "performance_matrix.json").is_file()
    assert (out_dir / "scaling_insights.json").is_file()


def test_ratios_are_finite_and_match_the_stored_files(analysis: dict[str, Any], selection: dict[str, Any]) -> None:
    root, backend, run_id = selection["root"], selection["backend"], selection["run_id"]
    for c in analysis["comparisons"]:
        a, b = c["models"]["a"], c["models"]["b"]
        assert c["parameter_ratio"]["value"] == pytest.approx(
            get_model_spec(b).parameter_count() / get_model_spec(a).parameter_count())
        for preset in selection["presets"]:
            ratios = c["presets"][preset]["ratios"]
            missing = [k for k in REQUIRED_RATIOS if ratios[k] is None]
            assert not missing, f"{a} vs {b} ({preset}): no {missing}"
            for name, q in ratios.items():
                assert q is None or math.isfinite(q["value"]), name
            fa, fb = _bench_file(root, run_id, a, preset, backend), _bench_file(root, run_id, b, preset, backend)
            tput = [f["throughput"]["random"]["output_tokens_per_s"] for f in (fa, fb)]
            lat = [f["latency"]["batch_1"]["latency_s"]["p50"] for f in (fa, fb)]
            weights = [f["memory"]["weight_bytes"] for f in (fa, fb)]
            assert ratios["throughput_ratio"]["value"] == pytest.approx(tput[1] / tput[0])
            assert ratios["cost_per_token_ratio"]["value"] == pytest.approx(tput[0] / tput[1])
            assert ratios["latency_ratio_batch_1"]["value"] == pytest.approx(lat[1] / lat[0])
            assert ratios["weight_memory_ratio"]["value"] == pytest.approx(weights[1] / weights[0])


def test_every_quantity_recomputes_from_the_files(analysis: dict[str, Any], selection: dict[str, Any]) -> None:
    qs = list(quantities(analysis["comparisons"])) + list(quantities(analysis["insights"]))
    assert qs
    for q in qs:
        check_quantity(q, selection["root"])


def test_accuracy_deltas_and_significance(analysis: dict[str, Any], selection: dict[str, Any],
                                         stored: dict[str, Any]) -> None:
    evals = _eval_files(selection["root"], selection["run_id"], stored["evaluations"])
    for c in analysis["comparisons"]:
        a, b = c["models"]["a"], c["models"]["b"]
        for preset, cmp in c["presets"].items():
            expected = {d for (m, p, d) in evals if (m, p) == (a, preset)} & {
                d for (m, p, d) in evals if (m, p) == (b, preset)}
            skipped = cmp["accuracy_not_compared"]
            assert set(cmp["accuracy"]) | set(skipped) == expected and not set(cmp["accuracy"]) & set(skipped)
            for ds in skipped:  # only a dataset whose headline metric has no value on one side is left out
                assert any(evals[(m, preset, ds)]["metrics"][scaling.primary_metric(evals[(m, preset, ds)])]["value"] is None
                           for m in (a, b)), ds
            for ds, x in cmp["accuracy"].items():
                ma, mb = evals[(a, preset, ds)]["metrics"][x["metric"]], evals[(b, preset, ds)]["metrics"][x["metric"]]
                assert x["delta"]["value"] == pytest.approx(mb["value"] - ma["value"])
                se = math.sqrt(ma["stderr"] ** 2 + mb["stderr"] ** 2)
                assert x["se"]["value"] == pytest.approx(se)
                paired = x["paired"]
                if paired is None:
                    assert x["significant"] == (min(ma["n"], mb["n"]) >= scaling.MIN_PAIRED_N
                                                and abs(mb["value"] - ma["value"]) > 1.96 * se)
                    continue
                # re-derive the paired test from the per-sample records of both models
                rel_a, rel_b = paired["source"].split(" vs ")
                sa, sb = (scaling.per_sample_scores(scaling.Stored(selection["root"] / rel, rel, {}), x["metric"])
                          for rel in (rel_a, rel_b))
                again = scaling.paired_test(sa, sb, paired["source"])
                assert again == paired
                assert x["significant"] == paired["significant"]
                if paired["n_shared"] < scaling.MIN_PAIRED_N:
                    assert paired["verdict"] == "not enough samples" and not x["significant"]


def test_matrix_covers_every_evaluated_and_benchmarked_cell(analysis: dict[str, Any], selection: dict[str, Any],
                                                          stored: dict[str, Any]) -> None:
    root = selection["root"]
    rows = {(r["model"], r["preset"]): r for r in analysis["matrix"]["rows"]}
    evals = _eval_files(root, selection["run_id"], stored["evaluations"])
    assert set(evals) == stored["evaluations"], "every evaluation the analysis used is read back"
    wanted = {(m, p) for (m, p, _) in evals} | {(m, p) for m in selection["models"] for p in selection["presets"]}
    assert wanted <= set(rows), f"matrix lacks {sorted(wanted - set(rows))}"
    for (m, p, ds), data in evals.items():
        cell = rows[(m, p)]["accuracy"][ds]
        stored_metric = data["metrics"][cell["metric"]]
        assert (cell["value"], cell["stderr"], cell["n"]) == (
            stored_metric["value"], stored_metric["stderr"], stored_metric["n"])
    for m in selection["models"]:
        for p in selection["presets"]:
            row, f = rows[(m, p)], _bench_file(root, selection["run_id"], m, p, selection["backend"])
            assert row["throughput"]["random"]["output_tokens_per_s"] == f["throughput"]["random"]["output_tokens_per_s"]
            assert row["memory"]["weight_bytes"] == f["memory"]["weight_bytes"]
            assert row["gpu_utilization_pct"] == f["memory"]["gpu_util_mean"]


def test_insights_and_recommendations_cite_their_numbers(analysis: dict[str, Any]) -> None:
    ins = analysis["insights"]["insights"]
    assert ins, "no insight was derived"
    recs = [r for c in analysis["comparisons"] for r in c["recommendations"]]
    assert recs, "no recommendation was derived"
    for item in ins + recs:
        assert item["rule"] and item["numbers"], item
        assert all(q is not None for q in item["numbers"].values()), item
        assert any(ch.isdigit() for ch in item["text"]), item["text"]
        assert list(quantities(item["numbers"])), item


def test_compare_command_writes_the_same_files(analysis: dict[str, Any], selection: dict[str, Any],
                                              tmp_path: Path) -> None:
    """`qwenharness compare` on the run (in a copy: the gate's own files stay as the analysis wrote them)."""
    import shutil

    from qwenharness.cli import main

    models, root = selection["models"], tmp_path / "results"
    for sub in ("evaluations", "benchmarks"):
        shutil.copytree(selection["root"] / sub / selection["run_id"], root / sub / selection["run_id"],
                        ignore=shutil.ignore_patterns("cache"))
    assert main(["compare", "--models", ",".join(models), "--results-dir", str(root),
                 "--backend", selection["backend"], "--run-id", selection["run_id"]]) == 0
    written = json.loads((root / "comparisons" / scaling.comparison_name(models[0], models[1])).read_text())
    assert written["presets"].keys() == analysis["comparisons"][0]["presets"].keys()
    assert written["parameter_ratio"]["value"] == pytest.approx(analysis["comparisons"][0]["parameter_ratio"]["value"])
