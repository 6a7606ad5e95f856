"""The embedded tiny model: deterministic build, loadable by transformers, working tokenizer and template."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from qwenharness.errors import UnknownNameError
from qwenharness.models import get_model_spec
from qwenharness.tiny import ensure_tiny_model


def _digests(folder: Path) -> dict[str, str]:
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_tiny_model("tiny", tmp_path_factory.mktemp("cache-a"))


@pytest.fixture(scope="module")
def tokenizer(tiny_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_dir)


def test_build_is_deterministic_and_small(tiny_dir: Path, tmp_path: Path) -> None:
    again = ensure_tiny_model("tiny", tmp_path)
    assert again.name == tiny_dir.name  # same recipe hash
    assert _digests(again) == _digests(tiny_dir)
    size = sum(f.stat().st_size for f in tiny_dir.iterdir())
    assert size < 2_000_000, size


def test_cached_folder_is_reused(tiny_dir: Path) -> None:
    stamp = (tiny_dir / "model.safetensors").stat().st_mtime_ns
    assert ensure_tiny_model("tiny", tiny_dir.parent) == tiny_dir
    assert (tiny_dir / "model.safetensors").stat().st_mtime_ns == stamp
    assert not [p for p in tiny_dir.parent.iterdir() if p.name.startswith(".")]  # no temp folders left


def test_variants_differ_and_unknown_name_fails(tiny_dir: Path) -> None:
    big = ensure_tiny_model("tiny-2x", tiny_dir.parent)
    assert big != tiny_dir
    assert json.loads((big / "config.json").read_text())["num_hidden_layers"] == 4
    with pytest.raises(UnknownNameError, match="tiny or tiny-2x"):
        ensure_tiny_model("qwen3_8b", tiny_dir.parent)


def test_config_matches_the_registry(tiny_dir: Path) -> None:
    spec = get_model_spec("tiny")
    cfg = json.loads((tiny_dir / "config.json").read_text())
    assert cfg["architectures"] == ["Qwen3ForCausalLM"]
    assert (cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"], cfg["num_key_value_heads"],
            cfg["head_dim"], cfg["intermediate_size"], cfg["vocab_size"]) == (
        spec.hidden_size, spec.num_layers, spec.num_heads, spec.num_kv_heads, spec.head_dim,
        spec.intermediate_size, spec.vocab_size)
    assert cfg["tie_word_embeddings"] is True and cfg["torch_dtype"] == "float32"


def test_loads_in_transformers_with_the_expected_parameter_count(tiny_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    assert type(model).__name__ == "Qwen3ForCausalLM"
    assert model.dtype == torch.float32
    assert sum(p.numel() for p in model.parameters()) == get_model_spec("tiny").parameter_count()
    with torch.inference_mode():
        logits = model(torch.tensor([[1, 2, 3]])).logits
    assert logits.shape == (1, 3, 2048) and torch.isfinite(logits).all()


def test_tokenizer_vocabulary_and_round_trip(tokenizer) -> None:
    assert len(tokenizer) == 2048
    for token in ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"):
        ids = tokenizer(token, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1, token
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"
    for text in ("Hello, world!  12345", "def f(x):\n\treturn x ** 2  # ünïcødé ✓ 数学", "   leading spaces"):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.decode(ids) == text
    assert len(tokenizer("the function returns the value")["input_ids"]) <= 8  # it learned English words


def test_chat_template_with_and_without_thinking(tokenizer) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    thinking = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert thinking == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    plain = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, enable_thinking=False)
    assert plain == thinking + "<think>\n\n</think>\n\n"
    history = messages + [{"role": "assistant", "content": "<think>\nhmm\n</think>\n\nHello"},
                          {"role": "user", "content": "Again"}]
    text = tokenizer.apply_chat_template(history, tokenize=False, add_generation_prompt=False)
    assert "hmm" not in text and "<|im_start|>assistant\nHello<|im_end|>\n" in text
