"""The embedded default models (`tiny`, `tiny-2x`) and dummy-weight folders for real architectures.

`ensure_tiny_model(name)` builds a complete Hugging Face model folder on this machine, offline and
deterministically: a Qwen3 configuration (`Qwen3ForCausalLM`), random float32 weights from a fixed
seed, a byte-level BPE tokenizer trained with the `tokenizers` library on Python's own documentation
and a few standard-library modules, and a Qwen3-style ChatML chat template with the
`enable_thinking` switch. The folder lands in a cache directory named after a hash of the build
recipe (the architecture, the recipe version and the training text), so a changed recipe builds a
new folder and an unchanged one is reused. The build happens in a temporary folder that is renamed
into place, so a crash never leaves half a model behind.

`build_dummy_model_dir(spec, path)` writes what vLLM needs to run a real registry architecture with
`load_format="dummy"` (random weights, no download): its config.json and a tokenizer. The tokenizer
is the real Qwen one where `qwenharness.dummy_tokenizer` finds it (extracted from the
qwen2.5_coder_1.5b GGUF; Qwen2.5, Qwen3 and Qwen v1 share its vocabulary), so dataset text tokenizes
to realistic lengths; otherwise a WordLevel tokenizer that maps `t0 ... t{vocab-1}` to ids, for
token-id prompts.

Qwen (v1), `QWenLMHeadModel`: vLLM dropped that class after 0.23.0 (0.26's registry lists it under
`_PREVIOUSLY_SUPPORTED_MODELS`), and its config needs remote code that is not available offline. Its
dummy folder is therefore a `Qwen2ForCausalLM` config with Qwen v1's shapes: full multi-head
attention (kv heads = heads), qkv bias, untied embeddings, rope base 10000, RMSNorm, SwiGLU of the
same width. Within the model's `seq_length` (where Qwen v1's dynamic-NTK and log-n scaling are
inactive) that is the same computation, so load time, speed and memory are Qwen v1's; the folder's
`qwenharness_build.json` says `stand_in_for: QWenLMHeadModel`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import dummy_tokenizer as dt
from .errors import ConfigError, UnknownNameError
from .models import ModelSpec, get_model_spec, is_tiny

RECIPE_VERSION = 1  # bump when anything below changes the built files
WEIGHT_SEED = 20240601
EMBED_STD = 0.3  # logits spread a few nats: greedy choices are well separated, not near ties
BYTE_TOKEN_SCALE = 0.1  # the 256 single-byte tokens get small embeddings, so the model rarely
# emits lone bytes (which decode to U+FFFD) and its random text stays valid, re-tokenizable UTF-8
N_BYTE_TOKENS = 256

ENDOFTEXT, IM_START, IM_END, THINK, END_THINK = "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"
SPECIAL_TOKENS = (ENDOFTEXT, IM_START, IM_END)  # control tokens: dropped by skip_special_tokens
TEXT_TOKENS = (THINK, END_THINK)  # added tokens that stay in decoded text, as in Qwen3

# Qwen2/Qwen3's pre-tokenizer split: contractions, letter runs, single digits, punctuation, spaces.
PRETOKENIZE_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# Standard-library modules whose source joins Python's documentation as training text (code, prose).
CORPUS_MODULES = ("textwrap", "argparse", "json/decoder", "json/encoder", "string", "fractions",
                  "statistics", "csv", "difflib", "heapq")

# A Qwen3-style ChatML template. Earlier assistant turns lose their <think> block; with
# enable_thinking false the assistant prefix gets an empty think block, as Qwen3's template does.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- set content = message['content'] if message['content'] is string else '' %}"
    "{%- if message['role'] == 'assistant' and '</think>' in content %}"
    "{%- set content = content.split('</think>')[-1].lstrip('\\n') %}"
    "{%- endif %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + content + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{- '<think>\\n\\n</think>\\n\\n' }}"
    "{%- endif %}"
    "{%- endif %}"
)

_FILES = ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
          "tokenizer_config.json", "qwenharness_build.json")


# -- public API ----------------------------------------------------------------------------------
def cache_root() -> Path:
    """Where built models live: `$QWENHARNESS_CACHE/models`, else `~/.cache/qwenharness/models`."""
    base = os.environ.get("QWENHARNESS_CACHE")
    root = Path(base).expanduser() if base else Path.home() / ".cache" / "qwenharness"
    return root / "models"


def ensure_tiny_model(name: str = "tiny", cache_dir: str | Path | None = None) -> Path:
    """Return the folder of an embedded model, building it first if it is not cached yet."""
    if not is_tiny(name):
        raise UnknownNameError(f"'{name}' is not an embedded model", "use tiny or tiny-2x")
    spec = get_model_spec(name)
    corpus = _corpus_texts()
    digest = _recipe_hash(spec, corpus)
    root = Path(cache_dir).expanduser() if cache_dir is not None else cache_root()
    target = root / f"{name}-{digest}"
    if _complete(target):
        return target
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
    try:
        build_tiny_model_dir(spec, tmp, corpus=corpus, recipe_hash=digest)
        try:
            tmp.rename(target)
        except OSError:
            if not _complete(target):  # not a concurrent build that finished first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def build_tiny_model_dir(spec: ModelSpec, path: Path, *, corpus: list[tuple[str, str]] | None = None,
                         recipe_hash: str | None = None) -> None:
    """Write an embedded model's files into `path` (which must exist)."""
    corpus = corpus if corpus is not None else _corpus_texts()
    tokenizer = train_tokenizer(corpus, spec.vocab_size)
    tokenizer.save(str(path / "tokenizer.json"))
    ids = {t: tokenizer.token_to_id(t) for t in SPECIAL_TOKENS + TEXT_TOKENS}
    _write_json(path / "config.json", hf_config(spec, bos_id=ids[ENDOFTEXT], eos_id=ids[IM_END]))
    _write_json(path / "generation_config.json", {
        "bos_token_id": ids[ENDOFTEXT],
        "eos_token_id": [ids[IM_END], ids[ENDOFTEXT]],
        "pad_token_id": ids[ENDOFTEXT],
        "do_sample": False,
    })
    _write_json(path / "tokenizer_config.json", {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": None,
        "eos_token": IM_END,
        "pad_token": ENDOFTEXT,
        "unk_token": None,
        "add_bos_token": False,
        "add_prefix_space": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": spec.context_length,
        "errors": "replace",
        "chat_template": CHAT_TEMPLATE,
    })
    _write_weights(spec, path / "model.safetensors")
    _write_json(path / "qwenharness_build.json", {
        "model": spec.name, "recipe_version": RECIPE_VERSION, "recipe_hash": recipe_hash,
        "weight_seed": WEIGHT_SEED, "corpus": [name for name, _ in corpus],
    })


QWEN_V1_ARCHITECTURE = "QWenLMHeadModel"
QWEN_V1_STAND_IN = "Qwen2ForCausalLM"
QWEN_V1_ROPE_THETA = 10000.0  # Qwen-7B/14B config.json rotary_emb_base
DUMMY_ARCHITECTURES = ("Qwen3ForCausalLM", "Qwen2ForCausalLM", QWEN_V1_ARCHITECTURE)


def dummy_hf_config(spec: ModelSpec, *, bos_id: int, eos_id: int) -> dict[str, Any]:
    """The config.json of a dummy folder: the published shape, Qwen v1 as its Qwen2 stand-in."""
    cfg = hf_config(spec, bos_id=bos_id, eos_id=eos_id, dtype=spec.default_dtype)
    # as in the published configs; without it transformers 5 suspects a Mistral tokenizer and warns
    cfg["transformers_version"] = "4.51.0"
    if spec.architecture == QWEN_V1_ARCHITECTURE:
        cfg.update(architectures=[QWEN_V1_STAND_IN], model_type="qwen2", rope_theta=QWEN_V1_ROPE_THETA,
                   qwenharness_stand_in_for=QWEN_V1_ARCHITECTURE)
    return cfg


def build_dummy_model_dir(spec: ModelSpec, path: str | Path, tokenizer_dir: str | Path | None = None) -> Path:
    """Write config.json and a tokenizer for vLLM's `load_format="dummy"`; return `path`.

    `tokenizer_dir`: a folder with the real Qwen tokenizer (`qwenharness.dummy_tokenizer`); None
    writes the WordLevel placeholder tokenizer (token-id prompts only)."""
    if spec.architecture not in DUMMY_ARCHITECTURES:
        raise ConfigError(
            f"dummy weights are not supported for {spec.name} ({spec.architecture})",
            "use one of the seed's Qwen models (architectures " + ", ".join(DUMMY_ARCHITECTURES)
            + ") with load_format dummy, or real weights",
        )
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if tokenizer_dir is not None:
        source = _copy_real_tokenizer(spec, Path(tokenizer_dir), path)
        bos, eos, eos_list = dt.ENDOFTEXT_ID, dt.IM_END_ID, [dt.IM_END_ID, dt.ENDOFTEXT_ID]
    else:
        source = _write_wordlevel_tokenizer(spec, path)
        bos = eos = spec.vocab_size - 1
        eos_list = eos
    _write_json(path / "config.json", dummy_hf_config(spec, bos_id=bos, eos_id=eos))
    _write_json(path / "generation_config.json", {"bos_token_id": bos, "eos_token_id": eos_list})
    _write_json(path / "qwenharness_build.json", {
        "model": spec.name, "load_format": "dummy", "tokenizer": source,
        "stand_in_for": QWEN_V1_ARCHITECTURE if spec.architecture == QWEN_V1_ARCHITECTURE else None,
    })
    return path


def _write_wordlevel_tokenizer(spec: ModelSpec, path: Path) -> str:
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {f"t{i}": i for i in range(spec.vocab_size)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="t0"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.save(str(path / "tokenizer.json"))
    eos = spec.vocab_size - 1
    _write_json(path / "tokenizer_config.json", {
        "tokenizer_class": "PreTrainedTokenizerFast", "eos_token": f"t{eos}", "pad_token": f"t{eos}",
        "unk_token": "t0", "model_max_length": spec.context_length,
    })
    return "wordlevel placeholder (t0 ... t{vocab-1})"


def _copy_real_tokenizer(spec: ModelSpec, source: Path, path: Path) -> str:
    """The real tokenizer's files; Qwen3 folders get the Qwen3-style template (enable_thinking)."""
    shutil.copyfile(source / "tokenizer.json", path / "tokenizer.json")
    config = json.loads((source / "tokenizer_config.json").read_text()) if (source / "tokenizer_config.json").is_file() else {}
    config.pop("chat_template", None)
    config.update(eos_token=IM_END, pad_token=ENDOFTEXT, bos_token=None, add_bos_token=False,
                  model_max_length=spec.context_length)
    config.setdefault("tokenizer_class", "Qwen2Tokenizer")
    _write_json(path / "tokenizer_config.json", config)
    template = source / "chat_template.jinja"
    if spec.architecture == "Qwen3ForCausalLM" or not template.is_file():
        (path / "chat_template.jinja").write_text(CHAT_TEMPLATE, encoding="utf-8")
    else:
        shutil.copyfile(template, path / "chat_template.jinja")
    return f"real Qwen2.5 tokenizer from {source} ({dt.fingerprint(source)})"


def dummy_model_dir(spec: ModelSpec, cache_dir: str | Path | None = None) -> Path:
    """A cached dummy-weight folder for `spec` (built on first use), with the real Qwen tokenizer when
    `qwenharness.dummy_tokenizer.find_real_tokenizer()` finds one."""
    tokenizer_dir = dt.find_real_tokenizer()
    recipe = {"config": dummy_hf_config(spec, bos_id=0, eos_id=0),
              "tokenizer": dt.fingerprint(tokenizer_dir) if tokenizer_dir else "wordlevel"}
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]
    root = Path(cache_dir).expanduser() if cache_dir is not None else cache_root()
    target = root / f"dummy-{spec.name}-{digest}"
    if (target / "qwenharness_build.json").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".dummy-{spec.name}-", dir=root))
    try:
        build_dummy_model_dir(spec, tmp, tokenizer_dir)
        try:
            tmp.rename(target)
        except OSError:
            if not (target / "qwenharness_build.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def hf_config(spec: ModelSpec, *, bos_id: int, eos_id: int, dtype: str | None = None) -> dict[str, Any]:
    """A config.json in the shape of the published Qwen2/Qwen3 ones."""
    qwen3 = spec.architecture == "Qwen3ForCausalLM"
    cfg: dict[str, Any] = {
        "architectures": [spec.architecture],
        "model_type": "qwen3" if qwen3 else "qwen2",
        "vocab_size": spec.vocab_size,
        "hidden_size": spec.hidden_size,
        "intermediate_size": spec.intermediate_size,
        "num_hidden_layers": spec.num_layers,
        "num_attention_heads": spec.num_heads,
        "num_key_value_heads": spec.num_kv_heads,
        "hidden_act": "silu",
        "max_position_embeddings": spec.context_length,
        "max_window_layers": spec.num_layers,
        "initializer_range": 0.02,
        "rms_norm_eps": 1e-06,
        "rope_scaling": None,
        "rope_theta": 1000000.0,
        "sliding_window": None,
        "use_sliding_window": False,
        "use_cache": True,
        "tie_word_embeddings": spec.tie_word_embeddings,
        "attention_dropout": 0.0,
        "bos_token_id": bos_id,
        "eos_token_id": eos_id,
        "torch_dtype": dtype or spec.default_dtype,
    }
    if qwen3:
        cfg["head_dim"] = spec.head_dim
        cfg["attention_bias"] = False
    return cfg


def train_tokenizer(corpus: list[tuple[str, str]], vocab_size: int) -> Any:
    """A byte-level BPE tokenizer of exactly `vocab_size` tokens, the added tokens last (as Qwen)."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    n_added = len(SPECIAL_TOKENS) + len(TEXT_TOKENS)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - n_added, min_frequency=2, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[],
    )
    tok.train_from_iterator((text for _, text in corpus), trainer=trainer)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in TEXT_TOKENS])
    if tok.get_vocab_size() != vocab_size:
        raise ConfigError(
            f"the tokenizer trained for the embedded model has {tok.get_vocab_size()} tokens, not {vocab_size}",
            "the training text is too small for this vocabulary: check Python's pydoc_data is installed",
        )
    return tok


# -- internals -----------------------------------------------------------------------------------
def _corpus_texts() -> list[tuple[str, str]]:
    """(name, text) pairs: Python's documentation topics and a few standard-library sources."""
    try:
        from pydoc_data.topics import topics
    except ImportError as e:  # some distributions strip it
        raise ConfigError("Python's pydoc_data module is missing: the embedded model's tokenizer trains on it",
                          "use a full CPython installation (python3-doc / the python.org build)") from e
    texts = [(f"pydoc_data.topics:{key}", topics[key]) for key in sorted(topics)]
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for module in CORPUS_MODULES:
        file = stdlib / f"{module}.py"
        if file.is_file():
            texts.append((f"stdlib:{module}.py", file.read_text(encoding="utf-8")))
    return texts


def _recipe_hash(spec: ModelSpec, corpus: list[tuple[str, str]]) -> str:
    h = hashlib.sha256()
    recipe = {
        "recipe_version": RECIPE_VERSION, "weight_seed": WEIGHT_SEED, "embed_std": EMBED_STD,
        "byte_token_scale": BYTE_TOKEN_SCALE,
        "config": hf_config(spec, bos_id=0, eos_id=0), "chat_template": CHAT_TEMPLATE,
        "regex": PRETOKENIZE_REGEX, "special": SPECIAL_TOKENS + TEXT_TOKENS,
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
    }
    h.update(json.dumps(recipe, sort_keys=True).encode())
    for name, text in corpus:
        h.update(name.encode())
        h.update(hashlib.sha256(text.encode()).digest())
    return h.hexdigest()[:12]


def _weight_shapes(spec: ModelSpec) -> Iterator[tuple[str, tuple[int, ...], str]]:
    """(name, shape, init) for every tensor of a Qwen3ForCausalLM checkpoint, in a fixed order."""
    h, q, kv, d = spec.hidden_size, spec.num_heads * spec.head_dim, spec.num_kv_heads * spec.head_dim, spec.head_dim
    yield "model.embed_tokens.weight", (spec.vocab_size, h), "embed"
    for i in range(spec.num_layers):
        p = f"model.layers.{i}"
        yield f"{p}.input_layernorm.weight", (h,), "ones"
        yield f"{p}.self_attn.q_proj.weight", (q, h), "linear"
        yield f"{p}.self_attn.k_proj.weight", (kv, h), "linear"
        yield f"{p}.self_attn.v_proj.weight", (kv, h), "linear"
        yield f"{p}.self_attn.o_proj.weight", (h, q), "linear"
        yield f"{p}.self_attn.q_norm.weight", (d,), "ones"
        yield f"{p}.self_attn.k_norm.weight", (d,), "ones"
        yield f"{p}.post_attention_layernorm.weight", (h,), "ones"
        yield f"{p}.mlp.gate_proj.weight", (spec.intermediate_size, h), "linear"
        yield f"{p}.mlp.up_proj.weight", (spec.intermediate_size, h), "linear"
        yield f"{p}.mlp.down_proj.weight", (h, spec.intermediate_size), "linear"
    yield "model.norm.weight", (h,), "ones"
    if not spec.tie_word_embeddings:
        yield "lm_head.weight", (spec.vocab_size, h), "embed"


def _write_weights(spec: ModelSpec, file: Path) -> None:
    """Random float32 weights from numpy's PCG64 (stable across numpy versions), 1/sqrt(fan_in) scale."""
    import numpy as np
    from safetensors.numpy import save_file

    rng = np.random.Generator(np.random.PCG64(WEIGHT_SEED))
    tensors: dict[str, Any] = {}
    for name, shape, init in _weight_shapes(spec):
        if init == "ones":
            tensors[name] = np.ones(shape, dtype=np.float32)
        else:
            std = EMBED_STD if init == "embed" else shape[1] ** -0.5
            values = rng.standard_normal(shape) * std
            if init == "embed":
                values[:N_BYTE_TOKENS] *= BYTE_TOKEN_SCALE  # BPE puts the byte alphabet first
            tensors[name] = values.astype(np.float32)
    save_file(tensors, str(file), metadata={"format": "pt"})


def _complete(folder: Path) -> bool:
    return all((folder / f).is_file() for f in _FILES)


def _write_json(file: Path, data: dict[str, Any]) -> None:
    file.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
