"""Dummy-weight folders of the seed's architectures: configs vLLM accepts, Qwen v1's Qwen2 stand-in,
and the real Qwen tokenizer when one is available (qwenharness.dummy_tokenizer)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qwenharness import dummy_tokenizer as dt
from qwenharness.errors import ConfigError
from qwenharness.models import SUITE_MODELS, get_model_spec
from qwenharness.tiny import CHAT_TEMPLATE, build_dummy_model_dir, dummy_model_dir


def _param_count(folder: Path) -> int:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.from_pretrained(folder)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg)
    return sum(p.numel() for p in model.parameters())


def test_wordlevel_folder_for_a_real_architecture(tmp_path: Path) -> None:
    from transformers import AutoConfig, AutoTokenizer

    spec = get_model_spec("qwen3_8b")
    folder = build_dummy_model_dir(spec, tmp_path / "q8")
    cfg = AutoConfig.from_pretrained(folder)
    assert cfg.architectures == ["Qwen3ForCausalLM"] and cfg.num_hidden_layers == 36 and cfg.head_dim == 128
    tok = AutoTokenizer.from_pretrained(folder)
    assert len(tok) == spec.vocab_size
    assert tok("t0 t5 t151935", add_special_tokens=False)["input_ids"] == [0, 5, 151935]
    assert json.loads((folder / "qwenharness_build.json").read_text())["stand_in_for"] is None


@pytest.mark.parametrize("name", ["qwen_8b", "qwen_14b"])
def test_qwen_v1_gets_a_qwen2_stand_in_of_the_same_size(name: str, tmp_path: Path) -> None:
    """vLLM 0.24+ has no QWenLMHeadModel: the folder is Qwen2ForCausalLM with Qwen v1's shapes."""
    spec = get_model_spec(name)
    folder = build_dummy_model_dir(spec, tmp_path / name)
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["architectures"] == ["Qwen2ForCausalLM"] and cfg["model_type"] == "qwen2"
    assert cfg["num_key_value_heads"] == cfg["num_attention_heads"] == spec.num_heads  # full MHA
    assert cfg["rope_theta"] == 10000.0 and cfg["qwenharness_stand_in_for"] == "QWenLMHeadModel"
    assert cfg["tie_word_embeddings"] is False and cfg["intermediate_size"] == spec.intermediate_size
    build = json.loads((folder / "qwenharness_build.json").read_text())
    assert build["stand_in_for"] == "QWenLMHeadModel"
    # the same parameters as the published Qwen v1 checkpoint (qkv bias, untied embeddings)
    assert _param_count(folder) == spec.parameter_count()
    assert abs(spec.parameter_count() / 1e9 - spec.published_params_b) / spec.published_params_b < 0.02


def test_every_suite_model_gets_a_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(dt.ENV, "none")
    names = set()
    for name in SUITE_MODELS:
        folder = dummy_model_dir(get_model_spec(name), cache_dir=tmp_path)
        assert (folder / "config.json").is_file() and (folder / "tokenizer.json").is_file()
        names.add(folder.name)
    assert len(names) == len(SUITE_MODELS)


def test_unknown_architecture_is_refused(tmp_path: Path) -> None:
    from dataclasses import replace

    spec = replace(get_model_spec("qwen3_8b"), architecture="LlamaForCausalLM")
    with pytest.raises(ConfigError, match="dummy weights are not supported"):
        build_dummy_model_dir(spec, tmp_path / "x")


@pytest.fixture
def fake_real_tokenizer(tmp_path: Path) -> Path:
    """A stand-in for the extracted Qwen tokenizer folder (same files, placeholder vocabulary)."""
    src = build_dummy_model_dir(get_model_spec("qwen3_8b"), tmp_path / "src")
    (src / "chat_template.jinja").write_text("{{ 'QWEN25-TEMPLATE' }}")
    return src


def test_real_tokenizer_is_copied_with_qwen_ids(fake_real_tokenizer: Path, tmp_path: Path) -> None:
    q3 = build_dummy_model_dir(get_model_spec("qwen3_8b"), tmp_path / "q3", fake_real_tokenizer)
    q25 = build_dummy_model_dir(get_model_spec("qwen2.5_8b"), tmp_path / "q25", fake_real_tokenizer)
    for folder in (q3, q25):
        cfg = json.loads((folder / "config.json").read_text())
        assert (cfg["bos_token_id"], cfg["eos_token_id"]) == (dt.ENDOFTEXT_ID, dt.IM_END_ID)
        gen = json.loads((folder / "generation_config.json").read_text())
        assert gen["eos_token_id"] == [dt.IM_END_ID, dt.ENDOFTEXT_ID]
        tok_cfg = json.loads((folder / "tokenizer_config.json").read_text())
        assert tok_cfg["eos_token"] == "<|im_end|>" and tok_cfg["bos_token"] is None
        assert "real Qwen2.5 tokenizer" in json.loads((folder / "qwenharness_build.json").read_text())["tokenizer"]
    # Qwen3 folders get the Qwen3-style template (enable_thinking); Qwen2.5 keeps the tokenizer's own
    assert (q3 / "chat_template.jinja").read_text() == CHAT_TEMPLATE
    assert (q25 / "chat_template.jinja").read_text() == "{{ 'QWEN25-TEMPLATE' }}"


def test_tokenizer_discovery(fake_real_tokenizer: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QWENHARNESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(dt.ENV, raising=False)
    assert dt.find_real_tokenizer() is None
    monkeypatch.setenv(dt.ENV, str(fake_real_tokenizer))
    assert dt.find_real_tokenizer() == fake_real_tokenizer
    spec = get_model_spec("qwen3_8b")
    with_real = dummy_model_dir(spec, cache_dir=tmp_path / "m")
    monkeypatch.setenv(dt.ENV, "none")
    assert dt.find_real_tokenizer() is None
    placeholder = dummy_model_dir(spec, cache_dir=tmp_path / "m")
    assert with_real != placeholder  # the cache name depends on the tokenizer
    monkeypatch.setenv(dt.ENV, str(tmp_path / "nothing-here"))
    with pytest.raises(ConfigError, match="holds no tokenizer.json"):
        dt.find_real_tokenizer()


def test_extract_refuses_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no GGUF file"):
        dt.extract_from_gguf(tmp_path / "absent.gguf", tmp_path / "out")


def test_the_real_tokenizer_when_present() -> None:
    """Only where the tokenizer was extracted (scripts/gpu/make_dummy_tokenizer.py): Qwen2.5's ids."""
    folder = dt.find_real_tokenizer()
    if folder is None:
        pytest.skip("no real Qwen tokenizer extracted on this machine (scripts/gpu/make_dummy_tokenizer.py)")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    assert tok("Hello world", add_special_tokens=False)["input_ids"] == [9707, 1879]
    assert tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>"]) == [151643, 151644, 151645]


def test_batched_pair_encoding_equals_one_at_a_time() -> None:
    """encode_pairs (one tokenizer call per batch, shared contexts once) splits exactly as the
    one-request-at-a-time lm-eval rule does, edge cases included."""
    from qwenharness.engines.base import LoglikelihoodRequest
    from qwenharness.engines.common import EncodedPair, encode_pairs
    from qwenharness.tiny import ensure_tiny_model
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(ensure_tiny_model("tiny"))

    def reference(context: str, continuation: str) -> EncodedPair:  # the rule, written out plainly
        def enc(text: str) -> list[int]:
            return list(tok(text, add_special_tokens=False)["input_ids"])
        if not context:
            return EncodedPair([7], enc(continuation))
        n = len(context) - len(context.rstrip())
        if n:
            context, continuation = context[:-n], context[-n:] + continuation
        whole, ctx = enc(context + continuation), enc(context)
        split = len(ctx)
        if whole[:split] != ctx:
            split = next((i for i, (a, b) in enumerate(zip(whole, ctx)) if a != b), min(len(whole), len(ctx)))
        split = min(split, len(whole) - 1)
        return EncodedPair(whole[:split], whole[split:])

    question = "Question: what is 2 + 2?\nA. 3\nB. 4\nAnswer:"
    cases = [(question, f" {x}") for x in "ABCD"] + [
        ("Answer: ", "yes"), ("", "Hello world"), ("   ", "x"), ("def add(a, b):", "\n\n"),
        ("The capital of France is", " Paris"), (question, " B")]
    got = encode_pairs(tok, [LoglikelihoodRequest(c, k) for c, k in cases], 7)
    assert got == [reference(c, k) for c, k in cases]


class _FakeRegistry:
    def __init__(self, archs: list[str]) -> None:
        self.archs = archs

    def get_supported_archs(self) -> list[str]:
        return self.archs


class _FakeVLLM:
    __version__ = "0.26.0"

    def __init__(self, archs: list[str]) -> None:
        self.ModelRegistry = _FakeRegistry(archs)


def test_qwen_v1_real_weights_on_a_vllm_without_it_is_a_clear_error() -> None:
    from qwenharness.engines.vllm import check_architecture
    from qwenharness.errors import EngineError
    from qwenharness.hardware import H100_80GB
    from qwenharness.presets import get_model_config

    without = _FakeVLLM(["Qwen2ForCausalLM", "Qwen3ForCausalLM"])
    real = get_model_config("qwen_8b", "balanced", gpu=H100_80GB)
    with pytest.raises(EngineError, match=r"vLLM 0\.26\.0 cannot run qwen_8b: it has no QWenLMHeadModel.*--backend hf"):
        check_architecture(without, real)
    check_architecture(without, get_model_config("qwen_8b", "balanced", gpu=H100_80GB, load_format="dummy"))
    check_architecture(without, get_model_config("qwen3_8b", "balanced", gpu=H100_80GB))
    check_architecture(_FakeVLLM(["QWenLMHeadModel"]), real)  # a vLLM that still has it: no objection
