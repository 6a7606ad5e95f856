"""qwenharness.scaling over hand-made result files: ratios, significance, rules, naming, reading."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest

from qwenharness import scaling
from qwenharness.errors import HarnessError
from qwenharness.models import get_model_spec


def write_bench(root: Path, model: str, preset: str, *, tput: float, lat: float, weight: int,
                peak: int | None = None, run: str = "r1", backend: str = "vllm", updated: str = "2026-01-01T00:00:00",
                kv: int = 10) -> Path:
    data = {
        "model": model, "preset": preset, "backend": backend, "run_id": run, "updated": updated,
        "throughput": {"random": {"requests_per_s": tput / 100, "output_tokens_per_s": tput,
                                  "total_tokens_per_s": 2 * tput}},
        "latency": {"batch_1": {"latency_s": {"p50": lat, "p90": 1.5 * lat, "p99": 2 * lat}}},
        "memory": {"weight_bytes": weight, "kv_cache_bytes": kv, "peak_bytes": peak, "gpu_util_mean": None},
        "overhead": {"ratio": 0.99}, "physical_bound": {"fraction": None},
    }
    path = root / "benchmarks" / run / model / preset / f"{backend}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def write_eval(root: Path, model: str, preset: str, dataset: str, value: float, stderr: float, n: int = 100,
               run: str = "e1", extra: dict[str, Any] | None = None, finished: str = "2026-01-01T00:00:00") -> Path:
    metrics = {"acc": {"value": value, "stderr": stderr, "n": n}, **(extra or {})}
    data = {"model": model, "preset": preset, "dataset": dataset, "metrics": metrics, "finished_at": finished}
    path = root / "evaluations" / run / model / preset / f"{dataset}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def results(tmp_path: Path) -> Path:
    write_bench(tmp_path, "tiny", "balanced", tput=1000.0, lat=0.10, weight=1_000_000, peak=4_000_000)
    write_bench(tmp_path, "tiny-2x", "balanced", tput=600.0, lat=0.18, weight=1_500_000, peak=5_000_000)
    write_bench(tmp_path, "tiny", "performance", tput=1200.0, lat=0.09, weight=1_000_000)
    write_bench(tmp_path, "tiny-2x", "performance", tput=700.0, lat=0.17, weight=1_500_000)
    write_eval(tmp_path, "tiny", "balanced", "gsm8k", 0.20, 0.02)
    write_eval(tmp_path, "tiny-2x", "balanced", "gsm8k", 0.30, 0.02)  # +0.10, se 0.028: significant
    write_eval(tmp_path, "tiny", "balanced", "arc_easy", 0.50, 0.05)
    write_eval(tmp_path, "tiny-2x", "balanced", "arc_easy", 0.52, 0.05)  # +0.02: not significant
    return tmp_path


# -- naming -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("a,b,name", [
    ("qwen3_8b", "qwen3_14b", "8b_vs_14b_comparison.json"),
    ("tiny", "tiny-2x", "tiny_vs_tiny-2x_comparison.json"),
    ("qwen2.5_8b", "qwen2.5_14b", "qwen2.5_8b_vs_14b_comparison.json"),
    ("qwen_8b", "qwen_14b", "qwen_8b_vs_14b_comparison.json"),
    ("qwen2.5_8b", "qwen3_14b", "qwen2.5_8b_vs_qwen3_14b_comparison.json"),
    ("Qwen/Qwen3-4B", "qwen3_8b", "Qwen__Qwen3-4B_vs_qwen3_8b_comparison.json"),
])
def test_comparison_name(a: str, b: str, name: str) -> None:
    assert scaling.comparison_name(a, b) == name


def test_models_are_ordered_by_parameter_count() -> None:
    assert scaling.order_by_size(["qwen3_14b", "qwen3_8b", "qwen3_8b"]) == ["qwen3_8b", "qwen3_14b"]


# -- quantities and significance ---------------------------------------------------------------------------
def test_derive_records_its_inputs_and_refuses_non_finite() -> None:
    a, b = scaling.const(6.0, "six"), scaling.const(3.0, "three")
    q = scaling.derive("ratio", a, b)
    assert q == {"value": 2.0, "op": "ratio", "args": [a, b]}
    assert scaling.derive("ratio", a, scaling.const(0.0, "zero")) is None
    assert scaling.derive("ratio", a, None) is None
    assert scaling.derive("se_diff", a, b)["value"] == pytest.approx(math.sqrt(45))


def _acc(v: float, se: float) -> tuple[str, dict, dict, dict]:
    return "acc", scaling.const(v, "v"), scaling.const(se, "se"), scaling.const(100, "n")


@pytest.mark.parametrize("delta,se_each,significant", [
    (0.10, 0.02, True),     # se_diff 0.0283, 1.96 se = 0.0554
    (0.05, 0.02, False),    # 0.05 < 0.0554
    (-0.10, 0.02, True),    # losses count too
    (0.0, 0.0, False),
])
def test_significance_rule(delta: float, se_each: float, significant: bool) -> None:
    d = scaling.accuracy_delta(_acc(0.5, se_each), _acc(0.5 + delta, se_each))
    assert d["delta"]["value"] == pytest.approx(delta)
    assert d["se"]["value"] == pytest.approx(math.sqrt(2) * se_each)
    assert d["significant"] is significant


# -- the analysis over hand-made files ------------------------------------------------------------------------
def test_pair_ratios_match_the_files(results: Path) -> None:
    out = scaling.analyze(results, ["tiny-2x", "tiny"])
    (c,) = out["comparisons"]
    assert c["models"] == {"a": "tiny", "b": "tiny-2x"}
    assert c["headline_preset"] == "balanced"
    r = c["presets"]["balanced"]["ratios"]
    pa, pb = get_model_spec("tiny").parameter_count(), get_model_spec("tiny-2x").parameter_count()
    assert r["parameter_ratio"]["value"] == pytest.approx(pb / pa)
    assert r["throughput_ratio"]["value"] == pytest.approx(0.6)
    assert r["cost_per_token_ratio"]["value"] == pytest.approx(1000 / 600)
    assert r["latency_ratio_batch_1"]["value"] == pytest.approx(1.8)
    assert r["weight_memory_ratio"]["value"] == pytest.approx(1.5)
    assert r["peak_memory_ratio"]["value"] == pytest.approx(1.25)
    assert c["presets"]["performance"]["ratios"]["peak_memory_ratio"] is None  # not measured there
    eff = c["presets"]["balanced"]["efficiency"]["a"]
    assert eff["tokens_per_s_per_weight_gb"]["value"] == pytest.approx(1000 / 1e-3)
    assert eff["tokens_per_s_per_billion_params"]["value"] == pytest.approx(1000 / (pa / 1e9))
    # raw quantities cite the file and key they came from
    tput_b = r["throughput_ratio"]["args"][0]
    assert tput_b["source"] == "benchmarks/r1/tiny-2x/balanced/vllm.json"
    assert tput_b["key"] == ["throughput", "random", "output_tokens_per_s"]
    acc = c["presets"]["balanced"]["accuracy"]
    assert acc["gsm8k"]["significant"] and not acc["arc_easy"]["significant"]
    assert acc["gsm8k"]["delta"]["value"] == pytest.approx(0.10)


def test_files_written_with_the_naming_rule(results: Path) -> None:
    out = scaling.analyze(results, ["tiny", "tiny-2x"])
    comp = results / "comparisons"
    assert sorted(p.name for p in comp.iterdir()) == [
        "performance_matrix.json", "scaling_insights.json", "tiny_vs_tiny-2x_comparison.json"]
    assert json.loads((comp / "tiny_vs_tiny-2x_comparison.json").read_text()) == json.loads(
        json.dumps(out["comparisons"][0]))
    matrix = json.loads((comp / "performance_matrix.json").read_text())
    cells = {(r["model"], r["preset"]) for r in matrix["rows"]}
    assert cells == {("tiny", "balanced"), ("tiny-2x", "balanced"), ("tiny", "performance"),
                     ("tiny-2x", "performance")}
    row = next(r for r in matrix["rows"] if (r["model"], r["preset"]) == ("tiny-2x", "balanced"))
    assert row["throughput"]["random"]["output_tokens_per_s"] == 600.0
    assert row["accuracy"]["gsm8k"] == {"metric": "acc", "value": 0.30, "stderr": 0.02, "n": 100,
                                        "source": "evaluations/e1/tiny-2x/balanced/gsm8k.json"}


def _texts(recs: list[dict[str, Any]]) -> str:
    return "\n".join(r["text"] for r in recs)


def test_recommendations_follow_the_rules(results: Path) -> None:
    (c,) = scaling.analyze(results, ["tiny", "tiny-2x"], write=False)["comparisons"]
    recs = c["recommendations"]
    assert all(r["rule"] and r["numbers"] for r in recs)
    gain = [r for r in recs if r["text"].startswith("tiny-2x gains")]
    assert len(gain) == 1 and "gsm8k" in gain[0]["text"] and "10 points" in gain[0]["text"]
    assert gain[0]["numbers"]["cost_per_token_ratio"]["value"] == pytest.approx(1000 / 600)
    assert "1.67x the cost per output token" in gain[0]["text"]
    assert "No evaluated dataset" not in _texts(recs)  # there is a significant gain
    params = c["parameter_ratio"]["value"]  # 1.43 for tiny-2x / tiny, below the cost ratio 1.67
    assert params < 1000 / 600
    assert "its cost grows at least as fast as its size" in _texts(recs)
    assert "grows less than its size" not in _texts(recs)


def test_equal_reservations_are_explained_by_the_kv_cache_left(tmp_path: Path) -> None:
    # vLLM reserves the preset's fraction up front: the peaks match and the larger model's cost is KV cache.
    write_bench(tmp_path, "tiny", "balanced", tput=1000.0, lat=0.1, weight=10, peak=64_000, kv=47_000)
    write_bench(tmp_path, "tiny-2x", "balanced", tput=600.0, lat=0.2, weight=18, peak=64_100, kv=34_500)
    (c,) = scaling.analyze(tmp_path, ["tiny", "tiny-2x"], write=False)["comparisons"]
    ratios = c["presets"]["balanced"]["ratios"]
    assert ratios["kv_cache_ratio"]["value"] == pytest.approx(34_500 / 47_000)
    text = _texts(c["recommendations"])
    assert "same reservation" in text and "0.734x the KV cache" in text and "fewer tokens" in text
    assert "needs 1x the peak GPU memory" not in text
    # unequal peaks keep the plain memory-ratio statement
    write_bench(tmp_path, "tiny-2x", "balanced", tput=600.0, lat=0.2, weight=18, peak=96_000, kv=34_500, run="r2",
                updated="2026-02-01T00:00:00")
    (c,) = scaling.analyze(tmp_path, ["tiny", "tiny-2x"], write=False)["comparisons"]
    assert "needs 1.5x the peak GPU memory" in _texts(c["recommendations"])


def test_no_significant_gain_prefers_the_smaller_model(tmp_path: Path) -> None:
    write_bench(tmp_path, "tiny", "balanced", tput=1000.0, lat=0.1, weight=10)
    write_bench(tmp_path, "tiny-2x", "balanced", tput=500.0, lat=0.2, weight=20)
    write_eval(tmp_path, "tiny", "balanced", "gsm8k", 0.20, 0.05)
    write_eval(tmp_path, "tiny-2x", "balanced", "gsm8k", 0.22, 0.05)
    (c,) = scaling.analyze(tmp_path, ["tiny", "tiny-2x"], write=False)["comparisons"]
    text = _texts(c["recommendations"])
    assert "No evaluated dataset shows a significant gain of tiny-2x" in text
    assert "2 points on gsm8k" in text and "costs 2x per output token" in text and "prefer tiny." in text


def test_no_significant_gain_and_cheaper_larger_model_prefers_it(tmp_path: Path) -> None:
    write_bench(tmp_path, "tiny", "balanced", tput=500.0, lat=0.1, weight=10)
    write_bench(tmp_path, "tiny-2x", "balanced", tput=1000.0, lat=0.2, weight=20)
    write_eval(tmp_path, "tiny", "balanced", "gsm8k", 0.20, 0.05)
    write_eval(tmp_path, "tiny-2x", "balanced", "gsm8k", 0.22, 0.05)
    (c,) = scaling.analyze(tmp_path, ["tiny", "tiny-2x"], write=False)["comparisons"]
    text = _texts(c["recommendations"])
    assert "costs 0.5x per output token (preset balanced): prefer tiny-2x." in text


def test_significant_loss_is_reported(tmp_path: Path) -> None:
    write_bench(tmp_path, "tiny", "balanced", tput=1000.0, lat=0.1, weight=10)
    write_bench(tmp_path, "tiny-2x", "balanced", tput=500.0, lat=0.2, weight=20)
    write_eval(tmp_path, "tiny", "balanced", "gsm8k", 0.40, 0.01)
    write_eval(tmp_path, "tiny-2x", "balanced", "gsm8k", 0.30, 0.01)
    (c,) = scaling.analyze(tmp_path, ["tiny", "tiny-2x"], write=False)["comparisons"]
    assert "tiny-2x loses 10 points of acc on gsm8k" in _texts(c["recommendations"])


def test_detailed_metrics_add_percentiles_and_other_metrics(results: Path) -> None:
    write_eval(results, "tiny", "balanced", "gsm8k", 0.20, 0.02, run="e2", finished="2026-02-01",
               extra={"exact_match_flexible": {"value": 0.25, "stderr": 0.02, "n": 100}})
    write_eval(results, "tiny-2x", "balanced", "gsm8k", 0.30, 0.02, run="e2", finished="2026-02-01",
               extra={"exact_match_flexible": {"value": 0.26, "stderr": 0.02, "n": 100}})
    (c,) = scaling.analyze(results, ["tiny", "tiny-2x"], detailed=True, write=False)["comparisons"]
    bal = c["presets"]["balanced"]
    assert bal["latency_ratios"]["batch_1"]["p99"]["value"] == pytest.approx(1.8)
    assert bal["throughput_ratios"]["random"]["total_tokens_per_s"]["value"] == pytest.approx(0.6)
    other = bal["accuracy"]["gsm8k"]["other_metrics"]["exact_match_flexible"]
    assert other["delta"]["value"] == pytest.approx(0.01) and not other["significant"]


def test_newest_result_wins_and_run_id_selects(results: Path) -> None:
    write_bench(results, "tiny", "balanced", tput=2000.0, lat=0.1, weight=1_000_000, run="r2",
                updated="2026-06-01T00:00:00")
    figs = scaling.collect(results, ["tiny", "tiny-2x"])
    assert figs[("tiny", "balanced")].throughput()["value"] == 2000.0
    figs = scaling.collect(results, ["tiny", "tiny-2x"], run_id="r1")
    assert figs[("tiny", "balanced")].throughput()["value"] == 1000.0


def test_backend_choice_prefers_vllm(results: Path) -> None:
    write_bench(results, "tiny", "balanced", tput=50.0, lat=1.0, weight=1_000_000, backend="hf",
                updated="2027-01-01T00:00:00")
    assert scaling.collect(results, ["tiny"])[("tiny", "balanced")].throughput()["value"] == 1000.0
    assert scaling.collect(results, ["tiny"], backend="hf")[("tiny", "balanced")].throughput()["value"] == 50.0


def test_insights_carry_rules_and_numbers(results: Path) -> None:
    ins = scaling.analyze(results, ["tiny", "tiny-2x"], write=False)["insights"]["insights"]
    ids = {i["id"] for i in ins}
    assert "throughput_scaling:tiny:tiny-2x:balanced" in ids and "preset_spread:tiny" in ids
    el = next(i for i in ins if i["id"] == "throughput_scaling:tiny:tiny-2x:balanced")
    params = get_model_spec("tiny-2x").parameter_count() / get_model_spec("tiny").parameter_count()
    assert el["numbers"]["elasticity"]["value"] == pytest.approx(math.log(0.6) / math.log(params))
    spread = next(i for i in ins if i["id"] == "preset_spread:tiny")
    assert spread["numbers"]["ratio"]["value"] == pytest.approx(1.2) and "performance" in spread["text"]


def test_missing_results_and_single_model_are_errors(results: Path) -> None:
    with pytest.raises(HarnessError, match="qwen3_14b"):
        scaling.analyze(results, ["tiny", "qwen3_14b"], write=False)
    with pytest.raises(HarnessError, match="at least two"):
        scaling.analyze(results, ["tiny"], write=False)


def test_unreadable_and_foreign_files_are_ignored(results: Path) -> None:
    bad = results / "evaluations" / "e1" / "tiny" / "balanced" / "broken.json"
    bad.write_text("{not json")
    (results / "evaluations" / "e1" / "manifest.json").write_text("{}")
    os.utime(bad)
    evals = scaling.load_evaluations(results, ["tiny"])
    assert set(evals) == {("tiny", "balanced", "gsm8k"), ("tiny", "balanced", "arc_easy")}


def test_compare_command_prints_ratios_and_says_why_accuracy_is_missing(tmp_path: Path, capsys) -> None:
    from qwenharness.cli import main

    write_bench(tmp_path, "tiny", "balanced", tput=1000.0, lat=0.1, weight=10, peak=64_000, kv=47_000)
    write_bench(tmp_path, "tiny-2x", "balanced", tput=600.0, lat=0.2, weight=18, peak=64_100, kv=34_500)
    assert main(["compare", "--models", "tiny,tiny-2x", "--results-dir", str(tmp_path)]) == 0
    out = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert "KV cache" in out and "0.734" in out and "1.67" in out  # kv ratio, cost per token
    assert "no dataset has stored results for both tiny and tiny-2x" in out
    assert (tmp_path / "comparisons" / "tiny_vs_tiny-2x_comparison.json").exists()


def test_paired_test_on_shared_documents() -> None:
    from qwenharness.scaling import MIN_PAIRED_N, paired_test

    a = {str(i): 1.0 for i in range(40)}
    b = {**a, **{str(i): 0.0 for i in range(12)}}  # b loses 12 documents a got right, wins none
    r = paired_test(a, b, "x vs y")
    assert r["test"] == "mcnemar_exact" and (r["only_a_right"], r["only_b_right"]) == (12, 0)
    assert r["p_value"] == pytest.approx(2 / 2 ** 12) and r["significant"] and r["verdict"] == "significant"
    # the same documents, one discordant pair each way: not significant
    c = {**a, "0": 0.0}
    d = {**a, "1": 0.0}
    assert not paired_test(c, d, "")["significant"]
    # n = 5: never called significant, whatever the scores (0/5 against 5/5)
    five_a = {str(i): 0.0 for i in range(5)}
    five_b = {str(i): 1.0 for i in range(5)}
    r5 = paired_test(five_a, five_b, "")
    assert r5["n_shared"] == 5 < MIN_PAIRED_N and r5["verdict"] == "not enough samples" and not r5["significant"]
    # only shared documents count: a's extra documents are ignored
    assert paired_test({**five_a, "99": 1.0}, five_b, "")["n_shared"] == 5
