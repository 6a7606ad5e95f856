"""Engine settings (issue 15): the named flags and `--engine-args` reach the memory plan and vLLM's
keyword arguments, mistakes are one line with the fix, and every flag an error message recommends
exists (the memory-fit error's suggestions all parse)."""

from __future__ import annotations

import argparse

import pytest

from qwenharness.cli import build_parser
from qwenharness.engine_args import EngineSettings, check_for_backend, parse_engine_args
from qwenharness.errors import ConfigError
from qwenharness.flag_audit import FLAG, cli_flags, pytest_flags, unknown_message_flags
from qwenharness.hardware import GPUSpec, GiB
from qwenharness.presets import get_model_config

FIELDS = {"enforce_eager": False, "max_num_batched_tokens": None, "compilation_config": None,
          "enable_prefix_caching": None, "max_model_len": None, "seed": 0, "block_size": None}


def test_engine_args_parse_values() -> None:
    got = parse_engine_args('enforce-eager=true,max_num_batched_tokens=4096,compilation_config={"level": 0, '
                            '"x": [1, 2]},block_size=16', FIELDS)
    assert got == {"enforce_eager": True, "max_num_batched_tokens": 4096,
                   "compilation_config": {"level": 0, "x": [1, 2]}, "block_size": 16}


@pytest.mark.parametrize("text,needle", [
    ("enforce_eagr=true", "vLLM's EngineArgs has no 'enforce_eagr' (did you mean enforce_eager?"),
    ("max_model_len=2048", "has its own flag (use --max-model-len instead)"),
    ("seed=3", "which the harness decides (set it through --seed)"),
    ("enforce_eager=yes", "enforce_eager takes true or false"),
    ("enforce_eager", "has no '='"),
    ("compilation_config={bad", "is not valid JSON"),
])
def test_engine_args_mistakes_are_one_line(text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_engine_args(text, FIELDS)
    assert needle in str(e.value) and "\n" not in str(e.value)


@pytest.mark.vllm
def test_engine_args_checked_against_vllm() -> None:
    assert parse_engine_args("enforce_eager=true,max_num_batched_tokens=2048") == {
        "enforce_eager": True, "max_num_batched_tokens": 2048}
    with pytest.raises(ConfigError, match="did you mean enable_prefix_caching"):
        parse_engine_args("enable_prefix_cachin=true")


def test_named_settings_reach_the_plan_and_vllm_kwargs() -> None:
    from qwenharness.engines.vllm import engine_kwargs

    settings = EngineSettings(max_model_len=2048, max_num_seqs=8, gpu_memory_utilization=0.7,
                              kv_cache_dtype="fp8", engine_args={"enforce_eager": True})
    gpu = GPUSpec(name="NVIDIA H100", memory_bytes=80 * GiB, count=2)
    config = get_model_config("qwen3_8b", "balanced", gpu=gpu, tensor_parallel_size=2, **settings.overrides())
    assert (config.max_model_len, config.max_num_seqs, config.gpu_memory_utilization) == (2048, 8, 0.7)
    assert config.kv_cache_dtype == "fp8" and config.tensor_parallel_size == 2
    base = get_model_config("qwen3_8b", "balanced", gpu=gpu)
    assert config.memory.budget_bytes < base.memory.budget_bytes, "the plan uses the given utilisation"
    assert config.memory.kv_bytes_per_token * 2 * 2 == base.memory.kv_bytes_per_token, "fp8 and TP 2 in the plan"
    kwargs = engine_kwargs(config, "/m")
    assert kwargs["max_model_len"] == 2048 and kwargs["tensor_parallel_size"] == 2 and kwargs["enforce_eager"] is True
    assert "enforce_eager=True" in config.key, "passthrough arguments are part of the config identity"


def test_engine_settings_refused_for_a_server() -> None:
    with pytest.raises(ConfigError, match="--max-model-len set the in-process engine"):
        check_for_backend(EngineSettings(max_model_len=2048), "openai")
    with pytest.raises(ConfigError, match="backend hf takes none"):
        check_for_backend(EngineSettings(engine_args={"enforce_eager": True}), "hf")


def test_evaluate_accepts_the_engine_flags(tmp_path) -> None:  # noqa: ANN001
    from qwenharness.commands.evaluate import build_settings
    from qwenharness.evaluation import make_pool

    args = build_parser().parse_args(["evaluate", "--models", "tiny", "--datasets", "arc_easy", "--max-model-len",
                                      "2048", "--tensor-parallel-size", "1", "--max-num-seqs", "4", "--dtype",
                                      "float32", "--results-dir", str(tmp_path)])
    settings = build_settings(args, None)
    config = make_pool(settings).resolve("tiny", "balanced")
    assert (config.max_model_len, config.max_num_seqs, config.tensor_parallel_size) == (2048, 4, 1)
    resumed = build_settings(build_parser().parse_args(["evaluate", "--results-dir", str(tmp_path)]), settings.to_dict())
    assert resumed.engine == settings.engine, "a resumed run keeps the engine settings of its manifest"


def test_memory_fit_error_suggestions_all_parse() -> None:
    """Each flag the memory-fit error recommends is accepted by evaluate and bench, with a value."""
    small = GPUSpec(name="NVIDIA L4", memory_bytes=24 * GiB, count=1)
    with pytest.raises(ConfigError) as e:
        get_model_config("qwen3_14b", "performance", gpu=small)
    fix = e.value.fix or ""
    flags = FLAG.findall(fix)
    assert {"--presets", "--max-model-len", "--max-num-seqs", "--tensor-parallel-size"} <= set(flags), fix
    values = {"--presets": "memory_optimized", "--max-model-len": "2048", "--max-num-seqs": "8",
              "--tensor-parallel-size": "2"}
    for command in ("evaluate", "bench"):
        argv = [command] + [x for f in flags for x in (f, values[f])]
        args = build_parser().parse_args(argv)
        assert isinstance(args, argparse.Namespace)


def test_every_flag_an_error_names_exists() -> None:
    assert unknown_message_flags() == {}
    assert "--max-model-len" in cli_flags() and "--max-model-len" in pytest_flags()


def test_compilation_belongs_to_vllm() -> None:
    with pytest.raises(ConfigError, match="--compilation sets how vLLM starts"):
        check_for_backend(EngineSettings(compilation="graphs"), "hf")
    with pytest.raises(ConfigError, match="--compilation set the in-process engine"):
        check_for_backend(EngineSettings(compilation="eager"), "openai")
    check_for_backend(EngineSettings(compilation="full"), "vllm")


def test_an_evaluation_starts_vllm_without_compilation(tmp_path) -> None:  # noqa: ANN001
    """Default: CUDA graphs without torch.compile where a dataset of the job generates text, eager
    where all are log-likelihoods; a gate that runs one dataset per test decides over the whole job,
    so one engine serves every dataset of a model. --compilation and other backends are left alone."""
    from qwenharness.evaluation import EvalSettings, Evaluator
    from qwenharness.scheduling import evaluation_compilation
    from qwenharness.results import resolve_run_paths

    assert evaluation_compilation(["arc_easy", "hellaswag"]) == "eager"
    assert evaluation_compilation(["arc_easy", "gsm8k"]) == "graphs"
    assert evaluation_compilation(["mt_bench"]) == "graphs"
    assert evaluation_compilation(["no_such_dataset"]) == "graphs", "it fails on its own later"
    paths = resolve_run_paths(tmp_path, "x")

    def overrides(**fields) -> dict:  # noqa: ANN003
        return Evaluator(EvalSettings(models=["tiny"], **fields), paths)._overrides

    assert overrides(datasets=["arc_easy"])["compilation"] == "eager"
    assert overrides(datasets=["humaneval"])["compilation"] == "graphs"
    assert overrides(datasets=["arc_easy"], job_datasets=["arc_easy", "ifeval"])["compilation"] == "graphs"
    assert overrides(datasets=["gsm8k"], engine={"compilation": "full"})["compilation"] == "full"
    assert "compilation" not in overrides(datasets=["gsm8k"], backend="hf")


def test_evaluate_takes_compilation_and_a_resume_keeps_it(tmp_path) -> None:  # noqa: ANN001
    from qwenharness.commands.evaluate import build_settings

    args = build_parser().parse_args(["evaluate", "--models", "tiny", "--datasets", "gsm8k", "--compilation",
                                      "full", "--results-dir", str(tmp_path)])
    settings = build_settings(args, None)
    assert settings.engine["compilation"] == "full"
    resumed = build_settings(build_parser().parse_args(["evaluate", "--results-dir", str(tmp_path)]),
                             settings.to_dict())
    assert resumed.engine["compilation"] == "full"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["evaluate", "--compilation", "inductor"])
