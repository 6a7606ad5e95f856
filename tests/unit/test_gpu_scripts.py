"""The pure parts of the GPU-run scripts (scripts/gpu/): what they hand vLLM, lm-eval and the
breakdown table. No vLLM and no lm-eval here; the scripts' runs are recorded in docs/benchmarks.md."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from qwenharness.engines.vllm import engine_kwargs
from qwenharness.hardware import GPUSpec
from qwenharness.presets import get_model_config

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts" / "gpu"


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"gpu_script_{name}", SCRIPTS / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _h200() -> GPUSpec:
    return GPUSpec(name="NVIDIA H200", memory_bytes=143771 * 1024**2, count=1)


def test_serve_flags_carry_every_engine_setting() -> None:
    svi = _script("serve_vs_inprocess")
    config = get_model_config("qwen3_8b", "balanced", gpu=_h200(), load_format="dummy")
    kwargs = engine_kwargs(config, "/models/qwen3_8b-dummy")
    flags = svi.serve_flags(kwargs)
    text = " ".join(flags)
    assert "--model" not in flags and "/models/qwen3_8b-dummy" in flags  # the tokenizer folder only
    assert f"--max-model-len {config.max_model_len}" in text
    assert f"--gpu-memory-utilization {config.gpu_memory_utilization}" in text
    assert f"--max-num-batched-tokens {config.max_num_batched_tokens}" in text
    assert "--load-format dummy" in text
    assert ("--enable-prefix-caching" if config.enable_prefix_caching else "--no-enable-prefix-caching") in flags
    assert "--disable-log-stats" not in flags
    # every setting the harness gives vllm.LLM reaches the server (booleans false by default may be left out)
    named = {f[2:].replace("-", "_") for f in flags if f.startswith("--")}
    missing = {k for k, v in kwargs.items() if v not in (None, False)} - named - {"model", "disable_log_stats"}
    assert not missing, missing


def test_serve_flags_booleans() -> None:
    svi = _script("serve_vs_inprocess")
    flags = svi.serve_flags({"enforce_eager": True, "trust_remote_code": False, "enable_prefix_caching": False,
                             "compilation_config": {"level": 0}, "seed": None})
    assert flags == ["--enforce-eager", "--no-enable-prefix-caching", "--compilation-config", '{"level": 0}']


def test_lmeval_model_args_are_the_engine_kwargs() -> None:
    lmc = _script("lmeval_compare")
    config = get_model_config("qwen3_8b", "balanced", gpu=_h200(), load_format="dummy")
    kwargs = engine_kwargs(config, "/models/x")
    args = lmc.lmeval_model_args(kwargs)
    assert args["pretrained"] == "/models/x" and "model" not in args and "disable_log_stats" not in args
    assert {k: v for k, v in args.items() if k != "pretrained"} == {
        k: v for k, v in kwargs.items() if k not in ("model", "disable_log_stats") and v is not None}


def _fake_lm_tasks(root: Path) -> Path:
    (root / "hellaswag").mkdir(parents=True)
    (root / "hellaswag" / "hellaswag.yaml").write_text("task: hellaswag\n")
    (root / "gsm8k").mkdir()
    (root / "gsm8k" / "gsm8k.yaml").write_text("task: gsm8k\n")
    (root / "mmlu" / "default").mkdir(parents=True)
    for subject in ("anatomy", "virology"):
        (root / "mmlu" / "default" / f"mmlu_{subject}.yaml").write_text(
            f'"dataset_name": "{subject}"\n"include": "_default_template_yaml"\n"task": "mmlu_{subject}"\n')
    return root


def test_local_tasks_hold_exactly_the_documents(tmp_path: Path) -> None:
    lmc = _script("lmeval_compare")
    lm = _fake_lm_tasks(tmp_path / "lm_eval_tasks")
    docs = {"hellaswag": [{"ctx": "a", "label": "0", "_index": 3}, {"ctx": "b", "label": "1", "_index": 9}],
            "gsm8k": [{"question": "q", "answer": "#### 1", "_index": 0}],
            "mmlu": [{"question": "x", "subject": "anatomy", "choices": ["1", "2", "3", "4"], "answer": 0, "_index": 5}]}
    fewshot = {"hellaswag": {}, "gsm8k": {"train": [{"question": "t", "answer": "#### 2", "_index": 0}]},
               "mmlu": {"dev": [{"question": "d", "subject": "anatomy", "_index": 0},
                                {"question": "e", "subject": "virology", "_index": 1}]}}
    names = lmc.write_local_tasks(lm, tmp_path / "work", docs, fewshot)
    assert names == {"hellaswag": "qh_hellaswag", "gsm8k": "qh_gsm8k", "mmlu": "qh_mmlu"}
    tasks = tmp_path / "work" / "tasks"
    hs = json.loads((tasks / "qh_hellaswag.yaml").read_text())
    assert hs["include"] == str(lm / "hellaswag" / "hellaswag.yaml") and Path(hs["include"]).is_absolute()
    assert hs["dataset_path"] == "json" and hs["dataset_name"] is None and hs["training_split"] is None
    rows = [json.loads(line) for line in Path(hs["dataset_kwargs"]["data_files"]["validation"]).read_text().splitlines()]
    assert rows == [{"ctx": "a", "label": "0"}, {"ctx": "b", "label": "1"}]  # the harness's own fields dropped
    mm = json.loads((tasks / "qh_mmlu_anatomy.yaml").read_text())
    assert mm["num_fewshot"] == 5 and mm["tag"] == "qh_mmlu"
    assert not (tasks / "qh_mmlu_virology.yaml").exists()  # no selected document: no task
    dev = Path(mm["dataset_kwargs"]["data_files"]["dev"]).read_text().splitlines()
    assert [json.loads(x)["question"] for x in dev] == ["d"]


def test_local_tasks_refuse_an_unknown_subject(tmp_path: Path) -> None:
    lmc = _script("lmeval_compare")
    lm = _fake_lm_tasks(tmp_path / "lm")
    with pytest.raises(SystemExit, match="no lm-eval YAML"):
        lmc.write_local_tasks(lm, tmp_path / "w", {"mmlu": [{"subject": "astrology", "_index": 0}]},
                              {"mmlu": {"dev": []}})


def _agg(run: Path, model: str, dataset: str, started: str, wall: float, inference: float, load: float,
         kinds: tuple[str, ...] = ("generate",), span: tuple[float, float] | None = None,
         together: list[str] | None = None) -> None:
    d = run / model / "balanced"
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{dataset}.json").write_text(json.dumps({
        "model": model, "preset": "balanced", "dataset": dataset, "started_at": started, "n_samples": 30,
        "n_errors": 0, "engine": {"load_time_s": load},
        "timings": {"wall_s": wall, "inference_s": inference, "new_requests": 30,
                    "started_unix": span[0] if span else None, "finished_unix": span[1] if span else None,
                    "evaluated_together": together,
                    "by_kind": {k: {"requests": 30, "cache_hits": 0} for k in kinds}}}))


def test_m3_breakdown_gives_the_span_of_datasets_evaluated_together(tmp_path: Path) -> None:
    """Overlapping datasets: a model's time is the span they covered, not the sum of their walls."""
    m3 = _script("m3_breakdown")
    run = tmp_path / "m3"
    group = ["gsm8k", "mt_bench"]
    _agg(run, "a", "gsm8k", "2026-12-02T01:00:00", wall=40.0, inference=10.0, load=30.0, span=(1000.0, 1040.0),
         together=group)
    _agg(run, "a", "mt_bench", "2026-12-02T01:00:00", wall=90.0, inference=55.0, load=30.0,
         kinds=("generate", "judge"), span=(1000.5, 1090.5), together=group)
    b = m3.breakdown(run)
    a = b["models"]["a/balanced"]
    assert a["wall_s"] == pytest.approx(90.5) and a["engine_start_s"] == 30.0
    assert a["other_s"] == pytest.approx(60.5)
    table = m3.markdown(b, wall=100.0)
    assert "| a/balanced | 30.0 s | 60.5 s | 90.5 s |" in table
    assert "outside the datasets (imports, collection, engine closes): 9.5 s" in table


def test_m3_breakdown_puts_each_engine_start_once(tmp_path: Path) -> None:
    m3 = _script("m3_breakdown")
    run = tmp_path / "m3"
    _agg(run, "a", "gsm8k", "2026-12-02T01:00:00", wall=100.0, inference=20.0, load=70.0)
    _agg(run, "a", "mt_bench", "2026-12-02T01:02:00", wall=50.0, inference=45.0, load=70.0,
         kinds=("generate", "judge"))
    _agg(run, "b", "gsm8k", "2026-12-02T01:03:00", wall=10.0, inference=8.0, load=60.0)  # opened before
    b = m3.breakdown(run)
    rows = {(r["model"], r["dataset"]): r for r in b["datasets"]}
    assert rows[("a", "gsm8k")]["engine_start_s"] == 70.0 and rows[("a", "gsm8k")]["other_s"] == pytest.approx(10.0)
    assert rows[("a", "mt_bench")]["engine_start_s"] == 0.0 and rows[("a", "mt_bench")]["other_s"] == pytest.approx(5.0)
    assert rows[("b", "gsm8k")]["engine_start_s"] == 0.0
    t = b["total"]
    assert t["engine_starts"] == 2 and t["engine_start_outside_datasets_s"] == 60.0
    assert t["judged_inference_s"] == 45.0 and t["wall_s"] == 160.0
    table = m3.markdown(b, wall=300.0)
    assert "mt_bench (2 turns + judge)" in table
    assert "outside the datasets (imports, collection, engine closes): 80.0 s" in table  # 300 - 160 - 60


def test_compare_prompts_counts_identical_requests_as_multisets() -> None:
    lmc = _script("lmeval_compare")
    harness = [("ctx a", " A"), ("ctx a", " B"), ("gen q", None)]
    same = lmc.compare_prompts(harness, list(reversed(harness)))
    assert same["identical"] == 3 and same["first_difference"] is None
    off = lmc.compare_prompts(harness, [("ctx a", " A"), ("ctx a", " B"), ("gen q2", None)])
    assert off["identical"] == 2
    assert off["first_difference"] == {"harness": "gen q", "lmeval": "gen q2"}
    mixed = lmc.compare_prompts([("x", None), ("x", " A")], [("y", None), ("y", " A")])
    assert mixed["identical"] == 0 and mixed["first_difference"] == {"harness": "x", "lmeval": "y"}
